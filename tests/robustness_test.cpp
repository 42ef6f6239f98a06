// Robustness tests (DESIGN §6, issue 6): bad input through the public API on every backend, and
// guard zones around every output.
//
// 1. A table of kinds of bad input (sizes, overflows, shapes, null data, aliasing, backend names,
//    plans run with the wrong tensors). Each must raise convkit::Error with the right code, never
//    crash, and write nothing: every output lives between guard zones of canaries and is pre-filled
//    with a sentinel, and both are checked after the throw. errors_test.cpp checks the message of
//    each rule; this suite checks the code, the absence of writes and every backend.
// 2. Guard zones on success: every op on every backend writes its whole output (it matches
//    reference bit for bit on integer data) and not one element outside it. Channel counts 1, 3,
//    17 and 33 put vector tails at the end of the buffer, where an unmasked store would spill.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tests/test_util.hpp"

namespace convkit::test {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr float kSentinel = 1234.5f;  // what a bad call must leave in every output element

// The tensors of one call: valid ones to start from, outputs between guard zones. A bad-input
// kind edits a copy of these, then calls the API.
struct Call {
  std::string backend;
  Conv2dParams conv;  // 3x3, pad 1, stride 1 on x {2, 6, 7, 6}: y {2, 6, 7, 4}
  Pool2dParams pool;  // max 3x3, stride 2, pad 1 on x: y {2, 3, 4, 6}
  Tensor x{{2, 6, 7, 6}}, w{{3, 3, 6, 4}};
  std::vector<float> b = std::vector<float>(4, 0.5f);
  Tensor dy_conv{{2, 6, 7, 4}}, dy_pool{{2, 3, 4, 6}};
  GuardedTensor y{{2, 6, 7, 4}, kSentinel};
  GuardedTensor y_pool{{2, 3, 4, 6}, kSentinel};
  GuardedTensor dx{{2, 6, 7, 6}, kSentinel};
  GuardedTensor dw{{3, 3, 6, 4}, kSentinel};
  GuardedTensor db{{1, 1, 1, 4}, kSentinel};
  GuardedTensor padded{{2, 8, 9, 6}, kSentinel};

  explicit Call(std::string name) : backend(std::move(name)) {
    conv.kernel_h = conv.kernel_w = 3;
    conv.pad = Pads::uniform(1);
    pool.window_h = pool.window_w = 3;
    pool.stride_h = pool.stride_w = 2;
    pool.pad = Pads::uniform(1);
    Rng rng(11);
    FillIntegers(Span(x), rng, -3, 3, true);
    FillIntegers(Span(w), rng, -3, 3, true);
    FillIntegers(Span(dy_conv), rng, -3, 3, true);
    FillIntegers(Span(dy_pool), rng, -3, 3, true);
  }

  void ConvForward() { conv2d_forward(conv, x, w, b, y.view(), backend); }
  void ConvForward(const Conv2dParams& p) { conv2d_forward(p, x, w, b, y.view(), backend); }
  Conv2dGrads AllGrads() { return {dx.view(), dw.view(), db.span()}; }
  void ConvBackward() { conv2d_backward(conv, x, w, dy_conv, AllGrads(), backend); }
  void PoolForward(const Pool2dParams& p) { pool2d_forward(p, x, y_pool.view(), backend); }
  void PoolBackward() { pool2d_backward(pool, x, dy_pool, dx.view(), backend); }
  Conv2d ConvPlan() { return Conv2d(conv, x.dims(), w, b, backend); }
  Pool2d PoolPlan() { return Pool2d(pool, x.dims(), backend); }

  // Every output still holds the sentinel and its guard zones the canary.
  ::testing::AssertionResult NothingWritten(const std::string& kind) const {
    const std::pair<const char*, const GuardedTensor*> outputs[] = {
        {"y", &y}, {"y_pool", &y_pool}, {"dx", &dx}, {"dw", &dw}, {"db", &db}, {"padded", &padded}};
    for (const auto& [name, t] : outputs) {
      if (auto guards = t->GuardsIntact(kind, name); !guards) return guards;
      for (int64_t i = 0; i < t->size(); ++i) {
        if (t->data()[i] != kSentinel) {
          return ::testing::AssertionFailure()
                 << kind << ": " << name << " was written on an error path at "
                 << IndexString(t->view().dims, i) << ": " << FloatString(t->data()[i]);
        }
      }
    }
    return ::testing::AssertionSuccess();
  }
};

struct BadInput {
  const char* kind;
  ErrorCode code;
  std::function<void(Call&)> run;
};

// Parameters with one field changed.
Conv2dParams With(Conv2dParams p, const std::function<void(Conv2dParams&)>& edit) {
  edit(p);
  return p;
}
Pool2dParams With(Pool2dParams p, const std::function<void(Pool2dParams&)>& edit) {
  edit(p);
  return p;
}

const std::vector<BadInput>& BadInputs() {
  using E = ErrorCode;
  static const std::vector<BadInput> table = {
      // ---- Convolution parameters ----
      {"conv kernel_h 0", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.kernel_h = 0; })); }},
      {"conv kernel_w negative", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.kernel_w = -3; })); }},
      {"conv stride_h 0", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.stride_h = 0; })); }},
      {"conv stride_w negative", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.stride_w = -1; })); }},
      {"conv dilation_h 0", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.dilation_h = 0; })); }},
      {"conv groups 0", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.groups = 0; })); }},
      {"conv groups not dividing C_in", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.groups = 4; })); }},
      {"conv negative pad", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.pad.right = -1; })); }},
      {"conv pad sum overflows", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) {
                       p.pad = {kMax, kMax, 1, 1};
                     })); }},
      {"conv dilated kernel overflows", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.dilation_w = kMax / 2; })); }},
      {"conv activation out of range", E::kInvalidArgument,
       [](Call& c) {
         c.ConvForward(With(c.conv, [](auto& p) { p.activation = static_cast<Activation>(11); }));
       }},
      {"conv kernel larger than padded input", E::kInvalidArgument,
       [](Call& c) { c.ConvForward(With(c.conv, [](auto& p) { p.dilation_h = 4; })); }},
      // ---- Convolution tensors ----
      {"conv x negative batch", E::kInvalidArgument,
       [](Call& c) {
         conv2d_forward(c.conv, {c.x.data(), {-1, 6, 7, 6}}, c.w, c.b, c.y.view(), c.backend);
       }},
      {"conv x zero height", E::kInvalidArgument,
       [](Call& c) {
         conv2d_forward(c.conv, {c.x.data(), {2, 0, 7, 6}}, c.w, c.b, c.y.view(), c.backend);
       }},
      {"conv x zero channels", E::kInvalidArgument,
       [](Call& c) {
         conv2d_forward(c.conv, {c.x.data(), {2, 6, 7, 0}}, c.w, c.b, c.y.view(), c.backend);
       }},
      {"conv x element count overflows", E::kInvalidArgument,
       [](Call& c) {
         conv2d_forward(c.conv, {c.x.data(), {int64_t{1} << 40, 6, int64_t{1} << 30, 6}}, c.w, c.b,
                        c.y.view(), c.backend);
       }},
      {"conv y element count overflows (huge C_out)", E::kInvalidArgument,
       [](Call& c) {
         Conv2dParams p = c.conv;
         p.kernel_h = p.kernel_w = 1;
         p.pad = {};
         conv2d_forward(p, {c.x.data(), {int64_t{1} << 20, 1, 1, 1}},
                        {c.w.data(), {1, 1, 1, int64_t{1} << 50}}, {}, c.y.view(), c.backend);
       }},
      {"conv w C_in/groups mismatch", E::kShapeMismatch,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, {c.w.data(), {3, 3, 5, 4}}, c.b, c.y.view(), c.backend);
       }},
      {"conv w kernel dims mismatch", E::kShapeMismatch,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, {c.w.data(), {3, 2, 6, 4}}, c.b, c.y.view(), c.backend);
       }},
      {"conv w C_out 0", E::kShapeMismatch,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, {c.w.data(), {3, 3, 6, 0}}, {}, c.y.view(), c.backend);
       }},
      {"conv w C_out negative", E::kShapeMismatch,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, {c.w.data(), {3, 3, 6, -4}}, {}, c.y.view(), c.backend);
       }},
      {"conv b wrong length", E::kShapeMismatch,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, c.w, std::span<const float>(c.b).first(3), c.y.view(),
                        c.backend);
       }},
      {"conv y wrong dims", E::kShapeMismatch,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, c.w, c.b, {c.y.data(), {2, 6, 7, 3}}, c.backend);
       }},
      {"conv y transposed dims", E::kShapeMismatch,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, c.w, c.b, {c.y.data(), {2, 7, 6, 4}}, c.backend);
       }},
      {"conv x null data", E::kInvalidArgument,
       [](Call& c) {
         conv2d_forward(c.conv, {nullptr, c.x.dims()}, c.w, c.b, c.y.view(), c.backend);
       }},
      {"conv w null data", E::kInvalidArgument,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, {nullptr, c.w.dims()}, c.b, c.y.view(), c.backend);
       }},
      {"conv b null data, C_out elements", E::kInvalidArgument,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, c.w,
                        std::span<const float>(static_cast<const float*>(nullptr), 4), c.y.view(),
                        c.backend);
       }},
      {"conv y null data", E::kInvalidArgument,
       [](Call& c) {
         conv2d_forward(c.conv, c.x, c.w, c.b, {nullptr, c.y.view().dims}, c.backend);
       }},
      {"conv y aliases x", E::kInvalidArgument,
       [](Call& c) {
         // y's memory is the start of x (x has more elements than y).
         conv2d_forward(c.conv, c.x, c.w, c.b, {c.x.data(), c.y.view().dims}, c.backend);
       }},
      {"conv y overlaps the end of w", E::kInvalidArgument,
       [](Call& c) {
         std::vector<float> shared(static_cast<size_t>(c.w.size() + c.y.size()), 1.0f);
         conv2d_forward(c.conv, c.x, {shared.data(), c.w.dims()}, c.b,
                        {shared.data() + c.w.size() - 1, c.y.view().dims}, c.backend);
       }},
      {"conv y overlaps b", E::kInvalidArgument,
       [](Call& c) {
         std::vector<float> shared(static_cast<size_t>(c.y.size()), 1.0f);
         conv2d_forward(c.conv, c.x, c.w, std::span<const float>(shared.data() + 8, 4),
                        {shared.data(), c.y.view().dims}, c.backend);
       }},
      // ---- Backend names ----
      {"unknown backend", E::kBackendUnavailable,
       [](Call& c) { conv2d_forward(c.conv, c.x, c.w, c.b, c.y.view(), "cuda"); }},
      {"backend name with wrong case", E::kBackendUnavailable,
       [](Call& c) { conv2d_forward(c.conv, c.x, c.w, c.b, c.y.view(), "Reference"); }},
      {"backend name with trailing space", E::kBackendUnavailable,
       [](Call& c) { pool2d_forward(c.pool, c.x, c.y_pool.view(), "reference "); }},
      // ---- Convolution backward ----
      {"conv backward with ReLU", E::kInvalidArgument,
       [](Call& c) {
         conv2d_backward(With(c.conv, [](auto& p) { p.activation = Activation::kRelu; }), c.x, c.w,
                         c.dy_conv, c.AllGrads(), c.backend);
       }},
      {"conv backward dy wrong dims", E::kShapeMismatch,
       [](Call& c) {
         conv2d_backward(c.conv, c.x, c.w, {c.dy_conv.data(), {2, 6, 6, 4}}, c.AllGrads(),
                         c.backend);
       }},
      {"conv backward dx wrong dims", E::kShapeMismatch,
       [](Call& c) {
         conv2d_backward(c.conv, c.x, c.w, c.dy_conv,
                         {TensorView{c.dx.data(), {2, 6, 7, 5}}, c.dw.view(), c.db.span()},
                         c.backend);
       }},
      {"conv backward dw wrong dims", E::kShapeMismatch,
       [](Call& c) {
         conv2d_backward(c.conv, c.x, c.w, c.dy_conv,
                         {c.dx.view(), TensorView{c.dw.data(), {3, 3, 4, 6}}, c.db.span()},
                         c.backend);
       }},
      {"conv backward db wrong length", E::kShapeMismatch,
       [](Call& c) {
         conv2d_backward(c.conv, c.x, c.w, c.dy_conv,
                         {c.dx.view(), c.dw.view(), c.db.span().first(2)}, c.backend);
       }},
      {"conv backward dy null data", E::kInvalidArgument,
       [](Call& c) {
         conv2d_backward(c.conv, c.x, c.w, {nullptr, c.dy_conv.dims()}, c.AllGrads(), c.backend);
       }},
      {"conv backward dx aliases dy", E::kInvalidArgument,
       [](Call& c) {
         Tensor big({2, 6, 7, 6});
         conv2d_backward(c.conv, c.x, c.w, {big.data(), c.dy_conv.dims()},
                         {big.view(), c.dw.view(), c.db.span()}, c.backend);
       }},
      {"conv backward dw overlaps dx", E::kInvalidArgument,
       [](Call& c) {
         conv2d_backward(c.conv, c.x, c.w, c.dy_conv,
                         {c.dx.view(), TensorView{c.dx.data() + 5, c.w.dims()}, c.db.span()},
                         c.backend);
       }},
      {"conv backward db overlaps dw", E::kInvalidArgument,
       [](Call& c) {
         conv2d_backward(c.conv, c.x, c.w, c.dy_conv,
                         {c.dx.view(), c.dw.view(), std::span<float>(c.dw.data() + 3, 4)},
                         c.backend);
       }},
      {"conv backward dx aliases x", E::kInvalidArgument,
       [](Call& c) {
         conv2d_backward(c.conv, c.x, c.w, c.dy_conv, {c.x.view(), c.dw.view(), c.db.span()},
                         c.backend);
       }},
      // ---- Pooling ----
      {"pool window 0", E::kInvalidArgument,
       [](Call& c) { c.PoolForward(With(c.pool, [](auto& p) { p.window_w = 0; })); }},
      {"pool stride 0", E::kInvalidArgument,
       [](Call& c) { c.PoolForward(With(c.pool, [](auto& p) { p.stride_h = 0; })); }},
      {"pool pad == window", E::kInvalidArgument,
       [](Call& c) { c.PoolForward(With(c.pool, [](auto& p) { p.pad.bottom = 3; })); }},
      {"pool negative pad", E::kInvalidArgument,
       [](Call& c) { c.PoolForward(With(c.pool, [](auto& p) { p.pad.left = -1; })); }},
      {"pool global with padding", E::kInvalidArgument,
       [](Call& c) { c.PoolForward(With(c.pool, [](auto& p) { p.global = true; })); }},
      {"pool mode out of range", E::kInvalidArgument,
       [](Call& c) {
         c.PoolForward(With(c.pool, [](auto& p) { p.mode = static_cast<PoolMode>(5); }));
       }},
      {"pool window larger than padded input", E::kInvalidArgument,
       [](Call& c) {
         c.PoolForward(With(c.pool, [](auto& p) {
           p.window_h = 9;
           p.ceil_mode = true;
         }));
       }},
      {"pool huge window (overflowing sum)", E::kInvalidArgument,
       [](Call& c) {
         c.PoolForward(With(c.pool, [](auto& p) {
           p.window_w = kMax;
           p.pad = {0, 0, kMax - 1, kMax - 1};
         }));
       }},
      {"pool y wrong dims", E::kShapeMismatch,
       [](Call& c) {
         pool2d_forward(c.pool, c.x, {c.y_pool.data(), {2, 3, 3, 6}}, c.backend);
       }},
      {"pool y aliases x", E::kInvalidArgument,
       [](Call& c) {
         pool2d_forward(c.pool, c.x, {c.x.data(), c.y_pool.view().dims}, c.backend);
       }},
      {"pool x null data", E::kInvalidArgument,
       [](Call& c) {
         pool2d_forward(c.pool, {nullptr, c.x.dims()}, c.y_pool.view(), c.backend);
       }},
      {"pool backward dx wrong dims", E::kShapeMismatch,
       [](Call& c) {
         pool2d_backward(c.pool, c.x, c.dy_pool, {c.dx.data(), {2, 6, 7, 5}}, c.backend);
       }},
      {"pool backward x wrong dims (average, x unread)", E::kShapeMismatch,
       [](Call& c) {
         pool2d_backward(With(c.pool, [](auto& p) { p.mode = PoolMode::kAverage; }),
                         {c.x.data(), {2, 6, 8, 6}}, c.dy_pool, c.dx.view(), c.backend);
       }},
      {"pool backward dy wrong dims", E::kShapeMismatch,
       [](Call& c) {
         pool2d_backward(c.pool, c.x, {c.dy_pool.data(), {2, 4, 3, 6}}, c.dx.view(), c.backend);
       }},
      {"pool backward dx aliases dy", E::kInvalidArgument,
       [](Call& c) {
         Tensor big(c.x.dims());
         pool2d_backward(c.pool, c.x, {big.data() + 7, c.dy_pool.dims()}, big.view(), c.backend);
       }},
      // ---- zero_pad ----
      {"zero_pad negative pad", E::kInvalidArgument,
       [](Call& c) {
         zero_pad(c.x, {1, 1, -1, 3}, c.padded.view());
       }},
      {"zero_pad y wrong dims", E::kShapeMismatch,
       [](Call& c) {
         zero_pad(c.x, Pads::uniform(1), {c.padded.data(), {2, 8, 8, 6}});
       }},
      {"zero_pad y aliases x", E::kInvalidArgument,
       [](Call& c) {
         Tensor big({2, 8, 9, 6});
         zero_pad({big.data() + 100, c.x.dims()}, Pads::uniform(1), big.view());
       }},
      {"zero_pad pad overflows", E::kInvalidArgument,
       [](Call& c) {
         zero_pad(c.x, {kMax, 1, 0, 0}, c.padded.view());
       }},
      // ---- Plans ----
      {"Conv2d plan, w wrong dims", E::kShapeMismatch,
       [](Call& c) {
         Conv2d(c.conv, c.x.dims(), {c.w.data(), {3, 3, 6, 5}}, c.b, c.backend);
       }},
      {"Conv2d plan, unknown backend", E::kBackendUnavailable,
       [](Call& c) { Conv2d(c.conv, c.x.dims(), c.w, c.b, "refrence"); }},
      {"Conv2d run, x of another batch", E::kShapeMismatch,
       [](Call& c) {
         const Conv2d plan = c.ConvPlan();
         plan.run({c.x.data(), {1, 6, 7, 6}}, c.y.view());
       }},
      {"Conv2d run, y wrong dims", E::kShapeMismatch,
       [](Call& c) {
         const Conv2d plan = c.ConvPlan();
         plan.run(c.x, {c.y.data(), {2, 6, 7, 5}});
       }},
      {"Conv2d run, x null data", E::kInvalidArgument,
       [](Call& c) {
         const Conv2d plan = c.ConvPlan();
         plan.run({nullptr, c.x.dims()}, c.y.view());
       }},
      {"Conv2d run, y aliases x", E::kInvalidArgument,
       [](Call& c) {
         const Conv2d plan = c.ConvPlan();
         plan.run(c.x, {c.x.data() + 1, c.y.view().dims});
       }},
      {"Conv2d run on a moved-from plan", E::kInvalidArgument,
       [](Call& c) {
         Conv2d plan = c.ConvPlan();
         const Conv2d other = std::move(plan);
         plan.run(c.x, c.y.view());  // NOLINT(bugprone-use-after-move): on purpose
       }},
      {"Pool2d plan, pad >= window", E::kInvalidArgument,
       [](Call& c) {
         Pool2d(With(c.pool, [](auto& p) { p.pad.top = 5; }), c.x.dims(), c.backend);
       }},
      {"Pool2d run, x wrong dims", E::kShapeMismatch,
       [](Call& c) {
         const Pool2d plan = c.PoolPlan();
         plan.run({c.x.data(), {2, 6, 7, 5}}, c.y_pool.view());
       }},
      {"Pool2d run, y aliases x", E::kInvalidArgument,
       [](Call& c) {
         const Pool2d plan = c.PoolPlan();
         plan.run(c.x, {c.x.data(), c.y_pool.view().dims});
       }},
      {"Pool2d run on a moved-from plan", E::kInvalidArgument,
       [](Call& c) {
         Pool2d plan = c.PoolPlan();
         const Pool2d other = std::move(plan);
         plan.run(c.x, c.y_pool.view());  // NOLINT(bugprone-use-after-move): on purpose
       }},
      // ---- Shape queries and runtime ----
      {"conv2d_output_dims, kernel too large", E::kInvalidArgument,
       [](Call& c) {
         conv2d_output_dims({1, 2, 2, 6}, c.w.dims(), With(c.conv, [](auto& p) { p.pad = {}; }));
       }},
      {"pool2d_output_dims, negative extent", E::kInvalidArgument,
       [](Call& c) {
         pool2d_output_dims({1, -6, 7, 6}, c.pool);
       }},
      {"Tensor with an overflowing element count", E::kInvalidArgument,
       [](Call&) {
         Tensor({kMax, kMax, 1, 1});
       }},
      {"set_num_threads negative", E::kInvalidArgument, [](Call&) { set_num_threads(-4); }},
  };
  return table;
}

class BadInputTest : public ::testing::TestWithParam<std::string> {};

// Every kind on every backend: the right code, no crash, nothing written.
TEST_P(BadInputTest, EveryKindRaisesItsCodeAndWritesNothing) {
  for (const BadInput& bad : BadInputs()) {
    Call call(GetParam());
    const std::string where = GetParam() + ": " + bad.kind;
    try {
      bad.run(call);
      ADD_FAILURE() << where << ": no error raised";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), bad.code)
          << where << ": raised " << error_code_name(e.code()) << " instead of "
          << error_code_name(bad.code) << ": " << e.what();
      EXPECT_NE(std::string(e.what()), "") << where;
    } catch (const std::exception& e) {
      ADD_FAILURE() << where
                    << ": raised a std::exception that is not convkit::Error: " << e.what();
    }
    EXPECT_TRUE(call.NothingWritten(where));
  }
}

// The table's size and spread (the issue asks for at least 30 kinds).
TEST(BadInputTable, HasEnoughDistinctKinds) {
  std::set<std::string> kinds;
  std::map<ErrorCode, int> codes;
  for (const BadInput& bad : BadInputs()) {
    EXPECT_TRUE(kinds.insert(bad.kind).second) << "duplicate kind " << bad.kind;
    codes[bad.code]++;
  }
  EXPECT_GE(kinds.size(), 30u);
  EXPECT_GE(codes[ErrorCode::kInvalidArgument], 10);
  EXPECT_GE(codes[ErrorCode::kShapeMismatch], 10);
  EXPECT_GE(codes[ErrorCode::kBackendUnavailable], 3);
}

// The check itself can fail: a write into the output or one element past it is seen.
TEST(BadInputTable, NothingWrittenSeesWrites) {
  Call call("reference");
  EXPECT_TRUE(call.NothingWritten("clean"));
  call.y.data()[call.y.size() - 1] = 0.0f;
  EXPECT_FALSE(call.NothingWritten("inside"));
  Call past("reference");
  past.db.data()[past.db.size()] = 0.0f;  // the first guard element after db
  EXPECT_FALSE(past.NothingWritten("after"));
  Call before("reference");
  before.dw.data()[-1] = 0.0f;
  EXPECT_FALSE(before.NothingWritten("before"));
}

INSTANTIATE_TEST_SUITE_P(EveryBackend, BadInputTest, ::testing::ValuesIn([] {
                           std::vector<std::string> names = BackendsToTest();
                           names.push_back("auto");
                           return names;
                         }()),
                         BackendParamName);

// ---- Guard zones on success ----

struct GuardConvCase {
  const char* name;
  Dims x;
  Conv2dParams params;
  int64_t oc;
  bool bias;
};

std::vector<GuardConvCase> GuardConvCases() {
  return {
      {"3x3 pad 1, C 17 -> 33, bias, hardswish",
       {2, 5, 7, 17},
       With(MakeConv(3, 1, Pads::uniform(1)),
            [](Conv2dParams& p) { p.activation = Activation::kHardSwish; }),
       33,
       true},
      {"1x1 stride 2, C 3 -> 1", {1, 5, 5, 3}, MakeConv(1, 2, {}), 1, false},
      {"depthwise 3x3, C 17", {1, 6, 5, 17}, MakeConv(3, 1, Pads::uniform(1), 1, 17), 17, true},
      {"depthwise 5x5 stride 2, C 33 x2",
       {1, 7, 9, 33},
       MakeConv(5, 2, {2, 1, 2, 1}, 1, 33),
       66,
       true},
      {"groups 2, dilation 2, C 6 -> 10",
       {2, 9, 8, 6},
       MakeConv(3, 1, {1, 2, 0, 3}, 2, 2),
       10,
       true},
      {"7x7 stride 3, C 1 -> 31", {1, 11, 13, 1}, MakeConv(7, 3, Pads::uniform(3)), 31, true},
      {"3x3 C 64 -> 17, batch 3", {3, 4, 5, 64}, MakeConv(3, 2, {0, 1, 1, 0}), 17, false},
  };
}

struct GuardPoolCase {
  const char* name;
  Dims x;
  Pool2dParams params;
};

std::vector<GuardPoolCase> GuardPoolCases() {
  Pool2dParams global;
  global.mode = PoolMode::kAverage;
  global.global = true;
  return {
      {"max 3x3 s2 p1 ceil, C 17",
       {2, 7, 8, 17},
       MakePool(PoolMode::kMax, 3, 2, Pads::uniform(1), true)},
      {"max 2x2 s2, C 1", {1, 5, 5, 1}, MakePool(PoolMode::kMax, 2, 2, {})},
      {"average 3x3 s1 p1 incl pad, C 33",
       {1, 6, 5, 33},
       MakePool(PoolMode::kAverage, 3, 1, Pads::uniform(1), false, true)},
      {"average 2x2 s2 p1 ceil, C 3",
       {2, 5, 7, 3},
       MakePool(PoolMode::kAverage, 2, 2, Pads::uniform(1), true)},
      {"global average, C 31", {2, 5, 3, 31}, global},
  };
}

class GuardZoneTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
};

// Checks `out` against `expected` (exact) and its guards.
void ExpectWrittenExactly(const std::string& where, const char* what, ConstTensorView expected,
                          const GuardedTensor& out) {
  EXPECT_TRUE(out.GuardsIntact(where, what));
  EXPECT_TRUE(CompareTensors(where, what, expected, out.view()));
}

TEST_P(GuardZoneTest, ConvForwardAndBackward) {
  int ran = 0;
  for (const GuardConvCase& c : GuardConvCases()) {
    const std::string where = backend() + ": " + c.name;
    Rng rng(5);
    const Dims w_dims{c.params.kernel_h, c.params.kernel_w, c.x[3] / c.params.groups, c.oc};
    Tensor x(c.x), w(w_dims);
    std::vector<float> b(static_cast<size_t>(c.bias ? c.oc : 0));
    FillIntegers(Span(x), rng, -3, 3, true);
    FillIntegers(Span(w), rng, -3, 3, true);
    FillIntegers(Span(b), rng, -3, 3, true);
    const Dims y_dims = conv2d_output_dims(c.x, w_dims, c.params);
    Tensor expected(y_dims);
    conv2d_forward(c.params, x, w, b, expected, "reference");

    GuardedTensor y(y_dims, kSentinel), y_plan(y_dims, kSentinel);
    if (RefusalOf([&] { conv2d_forward(c.params, x, w, b, y.view(), backend()); })) continue;
    ++ran;
    ExpectWrittenExactly(where + " (one-shot)", "y", expected, y);
    const Conv2d plan(c.params, c.x, w, b, backend());
    plan.run(x, y_plan.view());
    ExpectWrittenExactly(where + " (plan)", "y", expected, y_plan);

    Conv2dParams linear = c.params;
    linear.activation = Activation::kNone;
    Tensor dy(y_dims), dx_ref(c.x), dw_ref(w_dims);
    std::vector<float> db_ref(static_cast<size_t>(c.oc));
    FillIntegers(Span(dy), rng, -3, 3, true);
    conv2d_backward(linear, x, w, dy, {dx_ref.view(), dw_ref.view(), Span(db_ref)}, "reference");
    GuardedTensor dx(c.x, kSentinel), dw(w_dims, kSentinel), db({1, 1, 1, c.oc}, kSentinel);
    if (RefusalOf([&] {
          conv2d_backward(linear, x, w, dy, {dx.view(), dw.view(), db.span()}, backend());
        })) {
      continue;
    }
    ExpectWrittenExactly(where + " (backward)", "dx", dx_ref, dx);
    ExpectWrittenExactly(where + " (backward)", "dw", dw_ref, dw);
    ExpectWrittenExactly(where + " (backward)", "db",
                         ConstTensorView(db_ref.data(), {1, 1, 1, c.oc}), db);
  }
  if (ran == 0) GTEST_SKIP() << backend() << " refused every case";
}

TEST_P(GuardZoneTest, PoolForwardAndBackward) {
  int ran = 0;
  for (const GuardPoolCase& c : GuardPoolCases()) {
    const std::string where = backend() + ": " + c.name;
    Rng rng(6);
    Tensor x(c.x);
    FillIntegers(Span(x), rng, -8, 8, true);
    if (c.params.mode == PoolMode::kAverage) {
      for (float& v : Span(x)) v *= 3600.0f;  // a multiple of every divisor: exact averages
    }
    const Dims y_dims = pool2d_output_dims(c.x, c.params);
    Tensor expected(y_dims);
    pool2d_forward(c.params, x, expected, "reference");
    GuardedTensor y(y_dims, kSentinel), y_plan(y_dims, kSentinel);
    if (RefusalOf([&] { pool2d_forward(c.params, x, y.view(), backend()); })) continue;
    ++ran;
    ExpectWrittenExactly(where + " (one-shot)", "y", expected, y);
    const Pool2d plan(c.params, c.x, backend());
    plan.run(x, y_plan.view());
    ExpectWrittenExactly(where + " (plan)", "y", expected, y_plan);

    Tensor dy(y_dims), dx_ref(c.x);
    FillIntegers(Span(dy), rng, -3, 3, true);
    for (float& v : Span(dy)) v *= 3600.0f;
    pool2d_backward(c.params, x, dy, dx_ref, "reference");
    GuardedTensor dx(c.x, kSentinel);
    if (RefusalOf([&] { pool2d_backward(c.params, x, dy, dx.view(), backend()); })) continue;
    ExpectWrittenExactly(where + " (backward)", "dx", dx_ref, dx);
  }
  if (ran == 0) GTEST_SKIP() << backend() << " refused every case";
}

// zero_pad is backend-independent but an output all the same: border zeros, interior x.
TEST(GuardZone, ZeroPad) {
  Tensor x({2, 3, 5, 17});
  Rng rng(8);
  FillIntegers(Span(x), rng, 1, 9);
  const Pads pad{1, 2, 0, 3};
  GuardedTensor y(zero_pad_output_dims(x.dims(), pad), kSentinel);
  zero_pad(x, pad, y.view());
  EXPECT_TRUE(y.GuardsIntact("zero_pad", "y"));
  const Dims d = y.view().dims;
  for (int64_t n = 0; n < d[0]; ++n) {
    for (int64_t h = 0; h < d[1]; ++h) {
      for (int64_t w = 0; w < d[2]; ++w) {
        for (int64_t c = 0; c < d[3]; ++c) {
          const bool inside = h >= 1 && h < 4 && w < 5;
          const float want = inside ? x(n, h - 1, w, c) : 0.0f;
          ASSERT_EQ(y.data()[((n * d[1] + h) * d[2] + w) * d[3] + c], want)
              << "zero_pad y at (" << n << ", " << h << ", " << w << ", " << c << ")";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryBackend, GuardZoneTest, ::testing::ValuesIn(BackendsToTest()),
                         BackendParamName);

}  // namespace
}  // namespace convkit::test
