// One entry of the forward convolution's variant list (conv2d_fwd.cpp): when it runs a problem,
// how it makes a plan, and how it runs a one-shot call. Each variant's file defines its entry.
#pragma once

#include <memory>
#include <string>

#include "api/src/backend.hpp"
#include "api/src/problem.hpp"

namespace convkit::internal::highway {

// What the choice looks at: the problem, and whether the call is a one-shot call (which pays for
// any weight packing on every call) or a plan creation.
struct Conv2dFwdQuery {
  const Conv2dProblem& p;
  bool one_shot = false;
};

struct Conv2dFwdVariant {
  const char* name;
  // Null when the variant runs q, otherwise why not (a static string; see common/variants.hpp).
  const char* (*refuses)(const Conv2dFwdQuery& q);
  // A plan: packs w and copies b; keeps no reference to either.
  std::unique_ptr<Conv2dFwdImpl> (*create)(const Conv2dProblem& p, const float* w, const float* b);
  // A one-shot call reading w as given, or null: the call then makes a plan and runs it once.
  void (*one_shot)(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                   const float* r, float* y, std::string* impl_name);
};

// The entries, in the order conv2d_fwd.cpp tries them.
Conv2dFwdVariant Conv2dFwdBf16Variant();             // conv2d_fwd_bf16.cpp
Conv2dFwdVariant Conv2dFwdWinogradVariant();         // conv2d_fwd_winograd.cpp
Conv2dFwdVariant Conv2dFwdWinogradSubgridVariant();  // conv2d_fwd_winograd.cpp
Conv2dFwdVariant Conv2dFwdGroupedVariant();          // conv2d_fwd_grouped.cpp
Conv2dFwdVariant Conv2dFwdGroupCopyVariant();        // conv2d_fwd_grouped.cpp
Conv2dFwdVariant Conv2dFwdDepthwiseVariant();        // conv2d_fwd_direct.cpp
Conv2dFwdVariant Conv2dFwdStemVariant();             // conv2d_fwd_stem.cpp
Conv2dFwdVariant Conv2dFwdIgemmVariant();            // conv2d_fwd_direct.cpp: accepts every problem

}  // namespace convkit::internal::highway
