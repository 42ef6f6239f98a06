// Softmax of float32 tensors for convkit.onnx's Softmax op, on convkit's threads.
#pragma once

#include "python/src/glue.hpp"

namespace convkit::python {

// y[o, :, j] = softmax(x[o, :, j]) for x and y (O, K, J), C-ordered: softmax over the middle
// axis (a detector's 16 box bins with the anchors inner, a recogniser's classes with J = 1: a
// row each, or any axis of a tensor seen so), as
// numpy computes it (max, e^(x - max), the sum in axis order, one division), within 1 ulp per
// exponential. y may be x. Throws convkit::Error (shape mismatch) naming y's expected and given
// shape.
void softmax_middle(const ConstArray3& x, const Array3& y);

}  // namespace convkit::python
