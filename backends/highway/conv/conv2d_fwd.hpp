// The Highway backend's forward convolution entry points, called by highway_backend.cpp. Both
// choose the variant through the ordered list in conv2d_fwd.cpp.
#pragma once

#include <memory>
#include <string>

#include "api/src/backend.hpp"
#include "api/src/problem.hpp"

namespace convkit::internal::highway {

// A plan: chooses the variant and the target once, packs the weights for it, copies the bias.
// Keeps no reference to w or b.
std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwd(const Conv2dProblem& p, const float* w,
                                               const float* b);

// A plan for one run, as a one-shot call makes it: a variant that can read HWIO weights in place
// keeps a reference to w and b (which must outlive the plan) instead of packing them. Its name()
// is known after its run; it runs once, on one thread.
std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwdOneShot(const Conv2dProblem& p, const float* w,
                                                      const float* b);

// A one-shot call: the same variants; those that can read HWIO weights in place do (no packing).
// Stores the implementation's name in impl_name if non-null.
void Conv2dFwdOneShot(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                      const float* r, float* y, std::string* impl_name);

}  // namespace convkit::internal::highway
