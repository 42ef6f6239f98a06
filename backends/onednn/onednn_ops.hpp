// The oneDNN backend's operations, called from its registration point (onednn_backend.cpp).
// Contracts as in api/src/backend.hpp; problems arrive validated.
#pragma once

#include <memory>
#include <string>

#include "api/src/backend.hpp"

namespace convkit::internal::onednn {

// A planned forward convolution: inference primitive with bias and post-ops fused, weights
// reordered once into the layout oneDNN chose (format_tag::any). Uses the thread count in effect
// now for every run.
std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwd(const Conv2dProblem& p, const float* w,
                                               const float* b);

// A planned backward convolution: the primitives of the wanted passes created once (one-shot calls
// make one per call; oneDNN's primitive cache makes that cheap), w reordered once into the
// backward-data layout (again by set_weights). Uses the thread count in effect now for every run.
std::unique_ptr<Conv2dBwdImpl> CreateConv2dBwd(const Conv2dProblem& p, const float* w,
                                               const Conv2dGradsWanted& wanted);

// Why oneDNN's deconvolution cannot run `p` exactly; empty when it can.
std::string Conv2dTransposeRefusal(const Conv2dTransposeProblem& p);

// A planned transposed convolution (onednn_deconv.cpp): deconvolution inference primitive with
// bias and post-ops fused, weights reordered once into oneDNN's chosen layout.
std::unique_ptr<Conv2dFwdImpl> CreateConv2dTransposeFwd(const Conv2dTransposeProblem& p,
                                                        const float* w, const float* b);

// Why oneDNN cannot pool `p` exactly as DESIGN §4 says; empty when it can.
std::string Pool2dRefusal(const Pool2dProblem& p);

// A planned forward pooling (inference primitive). Max pooling checks x for NaN and -inf first
// and then takes an exact scalar path (onednn_pool_exact.hpp).
std::unique_ptr<Pool2dFwdImpl> CreatePool2dFwd(const Pool2dProblem& p);

// A planned pooling backward. Max pooling recomputes the forward pass in training mode to get
// oneDNN's workspace (the argmax of each window) into per-slot temporaries, then runs the backward
// primitive on it; x holding NaN or -inf takes the exact path, as forward.
std::unique_ptr<Pool2dBwdImpl> CreatePool2dBwd(const Pool2dProblem& p);

// Pooling backward, one-shot: the exact path, or a plan run once.
void Pool2dBwd(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
               std::string* impl_name);

}  // namespace convkit::internal::onednn
