// The Highway backend's grouped convolution with narrow groups (conv2d_fwd_grouped.cc): when it
// runs, and its plan, reached from conv2d_fwd.cpp.
//
// Eligible: groups > 1, not depthwise, OC / groups a proper divisor of the vector width and
// IC / groups <= OC / groups (ResNeXt's 32 groups of 4 or 8 channels, RegNet's groups of 8 on
// AVX-512), any kernel, stride, padding, dilation, bias, ReLU. The implicit GEMM kernel fills only
// OC / groups lanes of each vector there (a quarter at ResNeXt-50's conv2); this kernel packs the
// groups of a vector into one block and fills every lane.
#pragma once

#include <memory>

#include "api/src/backend.hpp"
#include "api/src/problem.hpp"

namespace convkit::internal::highway {

// True when plans for p run the grouped kernel (see above) on the chosen target.
bool UseGrouped(const Conv2dProblem& p);

// A plan for an eligible p, running on `threads` OpenMP threads (1: on the calling thread): packs
// the weights once. Keeps no reference to w or b.
std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwdGrouped(const Conv2dProblem& p, const float* w,
                                                      const float* b, int threads);

}  // namespace convkit::internal::highway
