// Dilated convolutions at stride 1 as dense ones (the space-to-batch form of DeepLab's atrous
// convolution): output pixel (rh + i * dh, rw + j * dw) reads only input pixels (rh' + i' * dh,
// rw' + j' * dw) of one residue pair, so the dh * dw sub-grids of x are dh * dw separate images of
// a dense convolution with the same weights. With pads that are multiples of the dilation, the
// output sub-grid (rh, rw) reads the input sub-grid (rh, rw) with the pads divided by the dilation;
// every sub-grid is cut to the largest one's size, the missing rows and columns read as zeros (they
// lie in the original padding or past the input). A variant with a faster dense kernel (Winograd)
// runs dilated layers through it.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "api/src/backend.hpp"
#include "api/src/problem.hpp"

namespace convkit::internal::highway {

// The dense problem over p's sub-grids: N * dh * dw images of ceil(IH / dh) x ceil(IW / dw) input
// and ceil(OH / dh) x ceil(OW / dw) output pixels, dilation 1, pads divided by the dilation (the
// bottom and right ones as the output size needs). Nothing when p has stride > 1, no dilation, a
// top or left pad that is not a multiple of the dilation, or a dilation past the output's extent.
std::optional<Conv2dProblem> SubgridProblem(const Conv2dProblem& p);

// A plan for p that gathers x (and the residual) into sub-grids, runs `inner` (a plan for
// SubgridProblem(p), with p's bias and post-ops) and scatters its output into y. Scratch per
// calling thread: the sub-grids of x, of y and of the residual.
std::unique_ptr<Conv2dFwdImpl> MakeSubgridPlan(const Conv2dProblem& p, const Conv2dProblem& sub,
                                               std::unique_ptr<Conv2dFwdImpl> inner,
                                               std::string name);

}  // namespace convkit::internal::highway
