// The plan classes of convkit._convkit (Conv2d, Conv2dTranspose, Pool2d, Conv2dBackward,
// Pool2dBackward): the C++
// plans (convkit/plan.hpp) with Python arguments. Constructors take the one-shot functions' keyword
// arguments plus x_shape; run() reads numpy arrays and DLPack producers in place when they are
// dense float32 C-ordered, writes into `out` when given, and releases the GIL while computing.
// Errors are convkit::Error (module.cpp maps them to convkit.Error) naming the argument; nothing
// is written then.
#pragma once

#include <nanobind/nanobind.h>

#include <optional>
#include <string>

#include "convkit/plan.hpp"
#include "python/src/arrays.hpp"

namespace convkit::python {

class Conv2dPlan {
 public:
  Conv2dPlan(const InputArray& w, const std::optional<InputArray>& b, nanobind::handle x_shape,
             nanobind::handle stride, nanobind::handle padding, nanobind::handle dilation,
             nanobind::handle groups, nanobind::handle activation, bool residual_after_activation,
             const std::optional<std::string>& backend, const std::string& fpmath);

  // y, into `out` (returned) when it is not None, else a new array; `residual` None or y's shape;
  // `x_scale` None or (N, 1, 1, C_in).
  nanobind::object run(nanobind::handle x, nanobind::handle out, nanobind::handle residual,
                       nanobind::handle x_scale) const;
  const Conv2d& plan() const { return plan_; }

 private:
  Conv2d plan_;
};

class Conv2dTransposePlan {
 public:
  Conv2dTransposePlan(const InputArray& w, const std::optional<InputArray>& b,
                      nanobind::handle x_shape, nanobind::handle stride, nanobind::handle padding,
                      nanobind::handle output_padding, nanobind::handle dilation,
                      nanobind::handle groups, nanobind::handle activation,
                      bool residual_after_activation, const std::optional<std::string>& backend,
                      const std::string& fpmath);

  nanobind::object run(nanobind::handle x, nanobind::handle out, nanobind::handle residual) const;
  const Conv2dTranspose& plan() const { return plan_; }

 private:
  Conv2dTranspose plan_;
};

class Pool2dPlan {
 public:
  Pool2dPlan(nanobind::handle window, nanobind::handle x_shape, nanobind::handle stride,
             nanobind::handle padding, const std::string& mode, bool ceil_mode,
             bool count_include_pad, const std::optional<std::string>& backend);

  nanobind::object run(nanobind::handle x, nanobind::handle out) const;
  const Pool2d& plan() const { return plan_; }

 private:
  Pool2d plan_;
};

class Conv2dBackwardPlan {
 public:
  Conv2dBackwardPlan(const InputArray& w, nanobind::handle x_shape, nanobind::handle stride,
                     nanobind::handle padding, nanobind::handle dilation, nanobind::handle groups,
                     bool dx, bool dw, bool db, const std::optional<std::string>& backend);

  void set_weights(nanobind::handle w);
  // (dx, dw, db), None for a gradient not planned; `out` None or a 3-sequence of arrays or None.
  nanobind::tuple run(nanobind::handle x, nanobind::handle dy, nanobind::handle out) const;
  const Conv2dBackward& plan() const { return plan_; }

 private:
  Conv2dBackward plan_;
};

class Pool2dBackwardPlan {
 public:
  Pool2dBackwardPlan(nanobind::handle window, nanobind::handle x_shape, nanobind::handle stride,
                     nanobind::handle padding, const std::string& mode, bool ceil_mode,
                     bool count_include_pad, const std::optional<std::string>& backend);

  nanobind::object run(nanobind::handle x, nanobind::handle dy, nanobind::handle out) const;
  const Pool2dBackward& plan() const { return plan_; }

 private:
  Pool2dBackward plan_;
};

// Registers the five classes in `m`.
void add_plans(nanobind::module_& m);

}  // namespace convkit::python
