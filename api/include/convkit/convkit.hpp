// The whole C++ API of convkit.
#pragma once

#include "convkit/error.hpp"
#include "convkit/ops.hpp"
#include "convkit/params.hpp"
#include "convkit/plan.hpp"
#include "convkit/runtime.hpp"
#include "convkit/tensor.hpp"
