// Thread tests (DESIGN §5, §8): a plan's run is const and thread-safe, and one-shot calls on
// distinct data may run concurrently.
//
// One plan is run from kThreads std::threads at once, each on its own input and output, many
// times; every result must be bit-identical to what the same plan gives for that input when run
// alone. Distinct inputs per thread make any shared scratch buffer show up as one thread's data in
// another's output. Correctness of the single-threaded results is the equivalence suite's job;
// here the single-threaded run is also checked against reference so that a wrong-but-stable
// result cannot pass. Timing never decides anything here.
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.hpp"

namespace convkit::test {
namespace {

constexpr int kThreads = 8;
constexpr int kRunsPerThread = 12;

// Runs body(t) on kThreads threads released together; returns the sum of what they return
// (mismatch counts). Exceptions in a thread are counted as mismatches and reported.
template <typename Body>
int RunConcurrently(const std::string& what, Body body) {
  std::latch start(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      try {
        failures += body(t);
      } catch (const std::exception& e) {
        ADD_FAILURE() << what << ": thread " << t << " threw: " << e.what();
        ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return failures.load();
}

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.dims() == b.dims() &&
         std::equal(a.data(), a.data() + a.size(), b.data(), [](float x, float y) {
           return std::bit_cast<uint32_t>(x) == std::bit_cast<uint32_t>(y);
         });
}

struct ThreadConvCase {
  const char* name;
  Dims x;
  Conv2dParams params;
  int64_t oc;
};

Conv2dParams Conv(int64_t k, int64_t s, int64_t pad, int64_t g = 1,
                  Activation a = Activation::kNone) {
  Conv2dParams p;
  p.kernel_h = p.kernel_w = k;
  p.stride_h = p.stride_w = s;
  p.pad = Pads::uniform(pad);
  p.groups = g;
  p.activation = a;
  return p;
}

// Large enough that the backends thread internally (several MFLOPs), small enough for 8 x 12 runs.
std::vector<ThreadConvCase> ThreadConvCases() {
  return {
      {"3x3 C 32 -> 48 relu", {2, 17, 19, 32}, Conv(3, 1, 1, 1, Activation::kRelu), 48},
      {"1x1 stride 2, C 33 -> 17", {1, 21, 23, 33}, Conv(1, 2, 0), 17},
      {"depthwise 3x3, C 64", {2, 15, 15, 64}, Conv(3, 1, 1, 64), 64},
      {"groups 2, 5x5, C 16 -> 16", {1, 13, 11, 16}, Conv(5, 2, 2, 2), 16},
      {"8 groups of 4, 3x3, C 32 -> 32", {2, 13, 15, 32}, Conv(3, 1, 1, 8), 32},
  };
}

class ThreadsTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
};

TEST_P(ThreadsTest, ConvPlanRunFromEightThreads) {
  int ran = 0;
  for (const ThreadConvCase& c : ThreadConvCases()) {
    const std::string where = backend() + ": " + c.name;
    const Dims w_dims{c.params.kernel_h, c.params.kernel_w, c.x[3] / c.params.groups, c.oc};
    Rng rng(21);
    Tensor w(w_dims);
    std::vector<float> b(static_cast<size_t>(c.oc));
    FillIntegers(Span(w), rng, -3, 3, true);
    FillIntegers(Span(b), rng, -3, 3, true);
    std::optional<Conv2d> plan;
    if (auto why = RefusalOf([&] { plan.emplace(c.params, c.x, w, b, backend()); })) continue;
    ++ran;
    // Per thread: its own input, and the plan's single-threaded answer for it.
    std::vector<Tensor> xs, expected;
    for (int t = 0; t < kThreads; ++t) {
      xs.emplace_back(c.x);
      FillIntegers(Span(xs.back()), rng, -3, 3, true);
      expected.emplace_back(plan->y_dims());
      plan->run(xs.back(), expected.back());
    }
    Tensor y_ref(plan->y_dims());
    conv2d_forward(c.params, xs[0], w, b, y_ref, "reference");
    ASSERT_TRUE(CompareTensors(where, "single-threaded run vs reference", y_ref, expected[0]));
    ASSERT_TRUE(NotMostlyZero(where, "y", y_ref, 0.6));

    const int mismatches = RunConcurrently(where, [&](int t) {
      int bad = 0;
      Tensor y(plan->y_dims());
      for (int run = 0; run < kRunsPerThread; ++run) {
        std::fill_n(y.data(), y.size(), -1.0f);
        plan->run(xs[static_cast<size_t>(t)], y);
        if (!SameBits(y, expected[static_cast<size_t>(t)])) ++bad;
      }
      return bad;
    });
    EXPECT_EQ(mismatches, 0) << where << ": " << mismatches << " of " << kThreads * kRunsPerThread
                             << " concurrent runs differ from the single-threaded result";
  }
  if (ran == 0) GTEST_SKIP() << backend() << " refused every case";
}

TEST_P(ThreadsTest, PoolPlanRunFromEightThreads) {
  int ran = 0;
  for (const PoolMode mode : {PoolMode::kMax, PoolMode::kAverage}) {
    Pool2dParams params;
    params.mode = mode;
    params.window_h = params.window_w = 3;
    params.stride_h = params.stride_w = 2;
    params.pad = Pads::uniform(1);
    params.ceil_mode = true;
    const Dims x_dims{2, 31, 29, 67};
    const std::string where =
        backend() + ": " + (mode == PoolMode::kMax ? "max" : "average") + " 3x3 s2 p1 ceil";
    std::optional<Pool2d> plan;
    if (auto why = RefusalOf([&] { plan.emplace(params, x_dims, backend()); })) continue;
    ++ran;
    Rng rng(22);
    std::vector<Tensor> xs, expected;
    for (int t = 0; t < kThreads; ++t) {
      xs.emplace_back(x_dims);
      FillIntegers(Span(xs.back()), rng, -100, 100, true);
      for (float& v : Span(xs.back())) v *= 36.0f;  // multiples of every divisor (1..9)
      expected.emplace_back(plan->y_dims());
      plan->run(xs.back(), expected.back());
    }
    Tensor y_ref(plan->y_dims());
    pool2d_forward(params, xs[0], y_ref, "reference");
    ASSERT_TRUE(CompareTensors(where, "single-threaded run vs reference", y_ref, expected[0]));

    const int mismatches = RunConcurrently(where, [&](int t) {
      int bad = 0;
      Tensor y(plan->y_dims());
      for (int run = 0; run < kRunsPerThread; ++run) {
        std::fill_n(y.data(), y.size(), -1.0f);
        plan->run(xs[static_cast<size_t>(t)], y);
        if (!SameBits(y, expected[static_cast<size_t>(t)])) ++bad;
      }
      return bad;
    });
    EXPECT_EQ(mismatches, 0) << where << ": " << mismatches << " of " << kThreads * kRunsPerThread
                             << " concurrent runs differ from the single-threaded result";
  }
  if (ran == 0) GTEST_SKIP() << backend() << " refused every case";
}

// The backward plans from eight threads: each thread its own dy (and x), all three gradients of
// a convolution, dx of a max pooling; bits as the plan gives them run alone.
TEST_P(ThreadsTest, BackwardPlansRunFromEightThreads) {
  int ran = 0;
  for (const ThreadConvCase& c : ThreadConvCases()) {
    Conv2dParams params = c.params;
    params.activation = Activation::kNone;
    const std::string where = backend() + ": backward " + c.name;
    const Dims w_dims{c.params.kernel_h, c.params.kernel_w, c.x[3] / c.params.groups, c.oc};
    Rng rng(23);
    Tensor w(w_dims);
    FillIntegers(Span(w), rng, -3, 3, true);
    std::optional<Conv2dBackward> plan;
    if (auto why = RefusalOf([&] { plan.emplace(params, c.x, w, Conv2dGradsWanted{}, backend()); }))
      continue;
    ++ran;
    struct Grads {
      Tensor dx, dw, db;
      Conv2dGrads view() { return {dx.view(), dw.view(), std::span(db.data(), db.size())}; }
    };
    const auto make_grads = [&] {
      return Grads{Tensor(c.x, -1.0f), Tensor(w_dims, -1.0f), Tensor({c.oc, 1, 1, 1}, -1.0f)};
    };
    std::vector<Tensor> xs, dys;
    std::vector<Grads> expected;
    for (int t = 0; t < kThreads; ++t) {
      xs.emplace_back(c.x);
      dys.emplace_back(plan->y_dims());
      FillIntegers(Span(xs.back()), rng, -3, 3, true);
      FillIntegers(Span(dys.back()), rng, -3, 3, true);
      expected.push_back(make_grads());
      plan->run(xs.back(), dys.back(), expected.back().view());
    }
    Grads ref = make_grads();
    conv2d_backward(params, xs[0], w, dys[0], ref.view(), "reference");
    ASSERT_TRUE(CompareTensors(where, "dx vs reference", ref.dx, expected[0].dx));
    ASSERT_TRUE(CompareTensors(where, "dw vs reference", ref.dw, expected[0].dw));
    ASSERT_TRUE(CompareTensors(where, "db vs reference", ref.db, expected[0].db));
    const int mismatches = RunConcurrently(where, [&](int t) {
      int bad = 0;
      Grads g = make_grads();
      const Grads& want = expected[static_cast<size_t>(t)];
      for (int run = 0; run < kRunsPerThread; ++run) {
        plan->run(xs[static_cast<size_t>(t)], dys[static_cast<size_t>(t)], g.view());
        bad += !SameBits(g.dx, want.dx) || !SameBits(g.dw, want.dw) || !SameBits(g.db, want.db);
      }
      return bad;
    });
    EXPECT_EQ(mismatches, 0) << where << ": " << mismatches << " of " << kThreads * kRunsPerThread
                             << " concurrent runs differ from the single-threaded result";
  }

  Pool2dParams pool{.window_h = 3, .window_w = 3, .stride_h = 2, .stride_w = 2};
  pool.pad = Pads::uniform(1);
  const Dims x_dims{2, 31, 29, 67};
  std::optional<Pool2dBackward> plan;
  if (!RefusalOf([&] { plan.emplace(pool, x_dims, backend()); })) {
    ++ran;
    Rng rng(24);
    std::vector<Tensor> xs, dys, expected;
    for (int t = 0; t < kThreads; ++t) {
      xs.emplace_back(x_dims);
      dys.emplace_back(plan->y_dims());
      FillIntegers(Span(xs.back()), rng, -100, 100, true);
      FillIntegers(Span(dys.back()), rng, -3, 3, true);
      expected.emplace_back(x_dims);
      plan->run(xs.back(), dys.back(), expected.back());
    }
    Tensor dx_ref(x_dims);
    pool2d_backward(pool, xs[0], dys[0], dx_ref, "reference");
    ASSERT_TRUE(
        CompareTensors(backend() + ": max pool backward", "dx vs reference", dx_ref, expected[0]));
    const int mismatches = RunConcurrently("pool backward", [&](int t) {
      int bad = 0;
      Tensor dx(x_dims);
      for (int run = 0; run < kRunsPerThread; ++run) {
        std::fill_n(dx.data(), dx.size(), -1.0f);
        plan->run(xs[static_cast<size_t>(t)], dys[static_cast<size_t>(t)], dx);
        bad += !SameBits(dx, expected[static_cast<size_t>(t)]);
      }
      return bad;
    });
    EXPECT_EQ(mismatches, 0) << backend() << ": pool backward: " << mismatches
                             << " concurrent runs differ from the single-threaded result";
  }
  if (ran == 0) GTEST_SKIP() << backend() << " refused every case";
}

// One-shot calls (forward and backward, conv and pool) from eight threads on distinct data.
TEST_P(ThreadsTest, OneShotCallsFromEightThreads) {
  const ThreadConvCase c = ThreadConvCases()[0];
  const Dims w_dims{3, 3, c.x[3], c.oc};
  Conv2dParams linear = c.params;
  linear.activation = Activation::kNone;
  Pool2dParams pool;
  pool.window_h = pool.window_w = 2;
  pool.stride_h = pool.stride_w = 2;
  Rng rng(23);
  Tensor w(w_dims);
  FillIntegers(Span(w), rng, -3, 3, true);
  const Dims y_dims = conv2d_output_dims(c.x, w_dims, c.params);
  const Dims p_dims = pool2d_output_dims(c.x, pool);
  struct PerThread {
    Tensor x, dy, y, dx, dw, p, pdx;
  };
  std::vector<PerThread> data;
  for (int t = 0; t < kThreads; ++t) {
    PerThread d{Tensor(c.x),    Tensor(y_dims), Tensor(y_dims), Tensor(c.x),
                Tensor(w_dims), Tensor(p_dims), Tensor(c.x)};
    FillIntegers(Span(d.x), rng, -3, 3, true);
    FillIntegers(Span(d.dy), rng, -3, 3, true);
    conv2d_forward(c.params, d.x, w, {}, d.y, "reference");
    conv2d_backward(linear, d.x, w, d.dy, {d.dx.view(), d.dw.view(), std::nullopt}, "reference");
    pool2d_forward(pool, d.x, d.p, "reference");
    pool2d_backward(pool, d.x, d.p, d.pdx, "reference");  // dy = y: any values do
    data.push_back(std::move(d));
  }
  CONVKIT_RUN_OR_SKIP(backend(), {
    Tensor y(y_dims);
    conv2d_forward(c.params, data[0].x, w, {}, y, backend());
  });
  const int mismatches = RunConcurrently(backend(), [&](int t) {
    const PerThread& d = data[static_cast<size_t>(t)];
    int bad = 0;
    for (int run = 0; run < 3; ++run) {
      Tensor y(y_dims, -1.0f), dx(c.x, -1.0f), dw(w_dims, -1.0f), p(p_dims, -1.0f), pdx(c.x, -1.0f);
      conv2d_forward(c.params, d.x, w, {}, y, backend());
      conv2d_backward(linear, d.x, w, d.dy, {dx.view(), dw.view(), std::nullopt}, backend());
      pool2d_forward(pool, d.x, p, backend());
      pool2d_backward(pool, d.x, d.p, pdx, backend());
      bad += !SameBits(y, d.y) + !SameBits(dx, d.dx) + !SameBits(dw, d.dw) + !SameBits(p, d.p) +
             !SameBits(pdx, d.pdx);
    }
    return bad;
  });
  EXPECT_EQ(mismatches, 0) << backend() << ": concurrent one-shot results differ from reference";
}

// Issue 5: backward convolution and pooling give the same bits for any thread count (each
// reduction is split by the shape, not by the threads), on real-valued data where a different
// summation order would show. Forward too. Every ThreadConvCases() case plus a 1x1 with a long
// reduction over N*OH*OW for dw; threads 1 to 4 through convkit::set_num_threads.
TEST_P(ThreadsTest, BitsDoNotDependOnThreadCount) {
  if (backend() == "onednn") {
    GTEST_SKIP() << "oneDNN does not promise results independent of the thread count";
  }
  std::vector<ThreadConvCase> cases = ThreadConvCases();
  cases.push_back({"1x1 C 96 -> 80, 2x37x41", {2, 37, 41, 96}, Conv(1, 1, 0), 80});
  Rng rng(29);
  int ran = 0;
  for (const ThreadConvCase& c : cases) {
    const Dims w_dims{c.params.kernel_h, c.params.kernel_w, c.x[3] / c.params.groups, c.oc};
    Conv2dParams linear = c.params;
    linear.activation = Activation::kNone;
    Tensor x(c.x), w(w_dims);
    FillNormal(Span(x), rng);
    FillNormal(Span(w), rng);
    const Dims y_dims = conv2d_output_dims(c.x, w_dims, c.params);
    Tensor dy(y_dims);
    FillNormal(Span(dy), rng);
    Pool2dParams pool;
    pool.mode = PoolMode::kAverage;
    pool.window_h = pool.window_w = 3;
    pool.stride_h = pool.stride_w = 2;
    pool.pad = Pads::uniform(1);
    const Dims p_dims = pool2d_output_dims(c.x, pool);
    Tensor pdy(p_dims);
    FillNormal(Span(pdy), rng);
    struct Results {
      Tensor y, dx, dw, pdx;
      std::vector<float> db;
    };
    const auto compute = [&](int threads) {
      set_num_threads(threads);
      Results r{Tensor(y_dims), Tensor(c.x), Tensor(w_dims), Tensor(c.x),
                std::vector<float>(static_cast<size_t>(c.oc))};
      conv2d_forward(c.params, x, w, {}, r.y, backend());
      conv2d_backward(linear, x, w, dy, {r.dx.view(), r.dw.view(), std::span<float>(r.db)},
                      backend());
      pool2d_backward(pool, x, pdy, r.pdx, backend());
      return r;
    };
    const Results one = compute(1);
    for (int threads = 2; threads <= 4; ++threads) {
      const Results many = compute(threads);
      EXPECT_TRUE(SameBits(many.y, one.y)) << c.name << ": y, " << threads << " threads";
      EXPECT_TRUE(SameBits(many.dx, one.dx)) << c.name << ": dx, " << threads << " threads";
      EXPECT_TRUE(SameBits(many.dw, one.dw)) << c.name << ": dw, " << threads << " threads";
      EXPECT_TRUE(SameBits(many.pdx, one.pdx)) << c.name << ": pool dx, " << threads << " threads";
      EXPECT_TRUE(std::equal(many.db.begin(), many.db.end(), one.db.begin(),
                             [](float a, float b) {
                               return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
                             }))
          << c.name << ": db, " << threads << " threads";
    }
    EXPECT_TRUE(NotMostlyZero(c.name, "dw", one.dw));
    ++ran;
  }
  set_num_threads(0);  // back to the OpenMP default
  EXPECT_EQ(ran, static_cast<int>(cases.size()));
}

// The comparison the tests rely on sees one flipped bit.
TEST(ThreadsHarness, SameBitsSeesOneBit) {
  Tensor a({1, 2, 2, 3}, 1.0f), b = a;
  EXPECT_TRUE(SameBits(a, b));
  b(0, 1, 1, 2) = std::nextafter(1.0f, 2.0f);
  EXPECT_FALSE(SameBits(a, b));
  Tensor z({1, 1, 1, 1}, 0.0f), nz({1, 1, 1, 1}, -0.0f);
  EXPECT_FALSE(SameBits(z, nz));
}

INSTANTIATE_TEST_SUITE_P(EveryBackend, ThreadsTest, ::testing::ValuesIn(BackendsToTest()),
                         BackendParamName);

}  // namespace
}  // namespace convkit::test
