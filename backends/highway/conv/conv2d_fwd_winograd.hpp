// The Highway backend's Winograd F(2x2, 3x3) forward convolution (conv2d_fwd_winograd.cc): when
// it runs, and its plan and one-shot entry points, reached from conv2d_fwd.cpp.
//
// Eligible: 3x3 kernel, stride 1, dilation 1, groups 1 (any padding, N, H, W, C, bias, post-ops).
// Chosen per problem by CONVKIT_HIGHWAY_WINOGRAD, read at each plan creation and one-shot call:
//   auto (or unset, or empty)  eligible problems where WinogradPays (measured; see the .cc)
//   on                          every eligible problem
//   off                         never
// Any other value is an error (convkit::Error, invalid argument) naming the variable.
#pragma once

#include <memory>
#include <string>

#include "api/src/backend.hpp"
#include "api/src/problem.hpp"

namespace convkit::internal::highway {

// True when the plan or one-shot call for p runs the Winograd kernel (see above). Throws
// convkit::Error for an unknown value of CONVKIT_HIGHWAY_WINOGRAD.
bool UseWinograd(const Conv2dProblem& p, bool one_shot);

// A plan for an eligible p: transforms and packs the weights once. Keeps no reference to w or b.
std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwdWinograd(const Conv2dProblem& p, const float* w,
                                                       const float* b);

// A one-shot call for an eligible p: transforms the weights into a buffer allocated per call.
void Conv2dFwdWinogradOneShot(const Conv2dProblem& p, const float* x, const float* w,
                              const float* b, const float* r, float* y, std::string* impl_name);

}  // namespace convkit::internal::highway
