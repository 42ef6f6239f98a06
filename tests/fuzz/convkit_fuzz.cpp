// libFuzzer target over convkit's parameter space (issue 6): the input bytes choose an op
// (convolution or pooling, forward or backward, one-shot or plan), its parameters and tensor dims
// (mostly small, sometimes 0, negative or near INT64_MAX), a backend, and sometimes one defect in
// the call (a wrong dim, null data, an output aliasing an input).
//
// The property checked:
//   valid call   -> runs (or the backend refuses it with kUnsupported) and matches reference bit
//   for
//                   bit on small-integer data, where every partial sum is exact in fp32;
//   invalid call -> convkit::Error, never another exception, a crash or an out-of-bounds access
//                   (AddressSanitizer), and nothing written to the outputs.
// A violation prints the call as one line and aborts, which libFuzzer reports with the input.
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "convkit/convkit.hpp"

namespace {

using convkit::Activation;
using convkit::Conv2dParams;
using convkit::Dims;
using convkit::ErrorCode;
using convkit::Pads;
using convkit::Pool2dParams;
using convkit::PoolMode;

constexpr int64_t kMaxElements = 1 << 14;  // per tensor: keeps one execution well under 1 ms
constexpr float kSentinel = 1234.5f;

// Reads the fuzzer's bytes; past the end, everything reads as 0.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  // Mostly lo..hi; one byte in 16 picks a hostile value instead.
  int64_t Extent(int64_t lo, int64_t hi) {
    const uint8_t b = Byte();
    if (b >= 240) {
      static constexpr int64_t kHostile[] = {0,
                                             -1,
                                             -7,
                                             std::numeric_limits<int64_t>::max(),
                                             std::numeric_limits<int64_t>::min(),
                                             std::numeric_limits<int64_t>::max() / 2,
                                             int64_t{1} << 31,
                                             int64_t{1} << 32,
                                             (int64_t{1} << 62) + 1,
                                             int64_t{1} << 21,
                                             3037000500,  // ~sqrt(INT64_MAX)
                                             65536,
                                             100,
                                             -(int64_t{1} << 40),
                                             1,
                                             2};
      return kHostile[b - 240];
    }
    return lo + b % (hi - lo + 1);
  }
  uint64_t Seed() {
    uint64_t s = 0;
    for (int i = 0; i < 4; ++i) s = (s << 8) | Byte();
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

[[noreturn]] void Die(const std::string& call, const std::string& why) {
  std::fprintf(stderr, "\nconvkit_fuzz: %s\n  call: %s\n", why.c_str(), call.c_str());
  std::abort();
}

// Small integers in [-3, 3] (0 excluded), from splitmix64.
void FillIntegers(std::vector<float>& v, uint64_t seed, float scale = 1.0f) {
  for (float& f : v) {
    int k = 0;
    while (k == 0) {
      uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      k = static_cast<int>((z ^ (z >> 31)) % 7) - 3;
    }
    f = static_cast<float>(k) * scale;
  }
}

// The element count of dims when every extent is >= 0 and the count is at most kMaxElements.
std::optional<int64_t> SmallCount(const Dims& d) {
  int64_t n = 1;
  for (int64_t e : d) {
    if (e < 0 || (e > 0 && n > kMaxElements / e)) return std::nullopt;
    n *= e;
  }
  return n;
}

// Every extent at most 64: a valid call of batch 0 may have H = 2^40 and no elements, and
// then loops over H in the backends (or in AverageScale here) take forever.
bool SmallExtents(const Dims& d) {
  for (int64_t e : d) {
    if (e > 64) return false;
  }
  return true;
}

// A buffer for a tensor of dims `d`: its true size when small, else a 64-element stand-in (a
// call with such dims must be rejected before anything is read, or ASan reports it).
std::vector<float> Buffer(const Dims& d, float fill = 0.0f) {
  return std::vector<float>(static_cast<size_t>(SmallCount(d).value_or(64)), fill);
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i])) return false;
  }
  return true;
}

std::string Str(const Dims& d) { return convkit::to_string(d); }

// Changes an extent by one, without overflowing on hostile values.
void Bump(int64_t& extent) {
  if (extent == std::numeric_limits<int64_t>::max()) {
    --extent;
  } else {
    ++extent;
  }
}

// What the call gets wrong, if anything.
enum class Defect { kNone, kXDims, kOutDims, kNullX, kNullOut, kAlias };

Defect PickDefect(Reader& in) {
  switch (in.Byte() % 12) {
    case 0:
      return Defect::kXDims;
    case 1:
      return Defect::kOutDims;
    case 2:
      return Defect::kNullX;
    case 3:
      return Defect::kNullOut;
    case 4:
      return Defect::kAlias;
    default:
      return Defect::kNone;
  }
}

const char* DefectName(Defect d) {
  static const char* kNames[] = {"none",   "x dims",      "output dims",
                                 "null x", "null output", "output aliases x"};
  return kNames[static_cast<int>(d)];
}

// Null data and overlap are errors only for tensors with elements: on a valid call where the
// tensor concerned is empty, the defect is no defect.
Defect DropIfHarmless(Defect defect, bool valid, const Dims& x_dims, const Dims& out_dims,
                      std::string* desc) {
  if (!valid) return defect;
  const bool x_empty = SmallCount(x_dims).value_or(1) == 0;
  const bool out_empty = SmallCount(out_dims).value_or(1) == 0;
  if ((defect == Defect::kNullX && x_empty) || (defect == Defect::kNullOut && out_empty) ||
      (defect == Defect::kAlias && (x_empty || out_empty))) {
    *desc += " (harmless: empty tensor)";
    return Defect::kNone;
  }
  return defect;
}

// Runs `call`. Returns true when it completed, false when it raised convkit::Error with
// kUnsupported (a backend refusing a valid call). Any other outcome is checked against
// `expect_error`: an Error is fine only when an error was expected, and nothing else is ever fine.
template <typename F>
bool Run(const std::string& desc, bool expect_error, F&& call) {
  try {
    call();
  } catch (const convkit::Error& e) {
    if (e.code() == ErrorCode::kUnsupported && !expect_error) return false;
    if (!expect_error) Die(desc, std::string("valid call raised: ") + e.what());
    if (std::strlen(e.what()) == 0) Die(desc, "empty error message");
    return false;
  } catch (const std::exception& e) {
    Die(desc, std::string("raised a non-convkit exception: ") + e.what());
  } catch (...) {
    Die(desc, "raised a non-exception");
  }
  if (expect_error) Die(desc, "invalid call did not raise convkit::Error");
  return true;
}

void CheckUntouched(const std::string& desc, const std::vector<float>& out, const char* what) {
  for (float v : out) {
    if (v != kSentinel) Die(desc, std::string(what) + " was written on an error path");
  }
}

void FuzzConv(Reader& in, const std::string& backend, int op) {
  Conv2dParams p;
  p.kernel_h = in.Extent(1, 5);
  p.kernel_w = in.Extent(1, 5);
  p.stride_h = in.Extent(1, 3);
  p.stride_w = in.Extent(1, 3);
  p.dilation_h = in.Extent(1, 3);
  p.dilation_w = in.Extent(1, 3);
  p.pad = {in.Extent(0, 3), in.Extent(0, 3), in.Extent(0, 3), in.Extent(0, 3)};
  const int64_t group_kind = in.Byte() % 4;
  int64_t ic = in.Extent(1, 17);
  int64_t oc = in.Extent(1, 17);
  if (group_kind == 1) {
    p.groups = ic;  // depthwise (with a multiplier when oc is a multiple of it)
    const int64_t multiplier = 1 + in.Byte() % 2;
    oc = ic < 1 || ic > 64 ? ic : ic * multiplier;  // a hostile ic would overflow the product
  } else if (group_kind == 2) {
    p.groups = in.Extent(1, 4);
  }
  p.activation =
      op == 1 ? Activation::kNone : (in.Byte() % 2 ? Activation::kRelu : Activation::kNone);
  const bool bias = in.Byte() % 2 == 0;
  const Dims x_dims{in.Extent(0, 3), in.Extent(1, 12), in.Extent(1, 12), ic};
  const int64_t w_ic = p.groups > 0 && ic % p.groups == 0 ? ic / p.groups : ic;
  const Dims w_dims{p.kernel_h, p.kernel_w, w_ic, oc};
  Defect defect = PickDefect(in);
  const uint64_t seed = in.Seed();
  static const char* kOps[] = {"conv2d_forward", "conv2d_backward", "Conv2d::run"};
  std::string desc = std::string(kOps[op]) + " backend " + backend + " x " + Str(x_dims) + " w " +
                     Str(w_dims) + " " + convkit::to_string(p) + (bias ? " bias" : "") +
                     " defect: " + DefectName(defect);

  bool valid = true;
  Dims y_dims{};
  try {
    y_dims = convkit::conv2d_output_dims(x_dims, w_dims, p);
  } catch (const convkit::Error&) {
    valid = false;
  } catch (...) {
    Die(desc, "conv2d_output_dims raised a non-convkit exception");
  }
  if (valid) {
    const auto xs = SmallCount(x_dims), ws = SmallCount(w_dims), ys = SmallCount(y_dims);
    if (!xs || !ws || !ys || !SmallExtents(x_dims) || !SmallExtents(w_dims)) {
      return;  // valid but too large to run quickly (batch 0 hides huge H or W from the count)
    }
    const double macs = static_cast<double>(*ys) * p.kernel_h * p.kernel_w * w_ic;
    if (macs > 2e5) return;
  } else {
    y_dims = {x_dims[0], 3, 3, oc};  // any dims: the call must be rejected anyway
  }
  desc += " y " + Str(y_dims);
  if (std::getenv("CONVKIT_FUZZ_PRINT") != nullptr) std::fprintf(stderr, "%s\n", desc.c_str());

  std::vector<float> x = Buffer(x_dims), w = Buffer(w_dims);
  std::vector<float> b(bias && oc > 0 && oc <= kMaxElements ? static_cast<size_t>(oc) : 0);
  std::vector<float> dy = Buffer(y_dims);
  FillIntegers(x, seed);
  FillIntegers(w, seed ^ 1);
  FillIntegers(b, seed ^ 2);
  FillIntegers(dy, seed ^ 3);
  defect = DropIfHarmless(defect, valid, x_dims, op == 1 ? x_dims : y_dims, &desc);
  // Bumping C_in can mend an invalid call (C_in 1 with 2 groups becomes 2 with 2): then the
  // "defective" call is valid and nothing may be expected of it, so drop that defect.
  if (!valid && defect == Defect::kXDims) {
    defect = Defect::kNone;
    desc += " (x dims defect dropped: the call is invalid anyway)";
  }
  const bool expect_error = !valid || defect != Defect::kNone;

  Dims x_given = x_dims, out_given = op == 1 ? x_dims : y_dims;
  const float* x_ptr = x.data();
  if (defect == Defect::kXDims) Bump(x_given[3]);  // C: H or W might still fit the stride
  if (defect == Defect::kOutDims) Bump(out_given[3]);
  if (defect == Defect::kNullX) x_ptr = nullptr;

  std::vector<float> out = Buffer(out_given, kSentinel);
  float* out_ptr = out.data();
  if (defect == Defect::kNullOut) out_ptr = nullptr;
  if (defect == Defect::kAlias) out_ptr = x.data();  // only valid if the call is rejected

  if (op == 0 || op == 2) {
    bool ran = false;
    if (op == 0) {
      ran = Run(desc, expect_error, [&] {
        convkit::conv2d_forward(p, {x_ptr, x_given}, {w.data(), w_dims}, b, {out_ptr, out_given},
                                backend);
      });
    } else {
      ran = Run(desc, expect_error, [&] {
        const convkit::Conv2d plan(p, x_dims, {w.data(), w_dims}, b, backend);
        plan.run({x_ptr, x_given}, {out_ptr, out_given});
      });
    }
    if (expect_error) {
      if (defect != Defect::kAlias) CheckUntouched(desc, out, "y");
      return;
    }
    if (!ran) return;
    std::vector<float> expected(out.size(), -1.0f);
    convkit::conv2d_forward(p, {x.data(), x_dims}, {w.data(), w_dims}, b, {expected.data(), y_dims},
                            "reference");
    if (!SameBits(expected, out)) Die(desc, "y differs from reference");
    return;
  }

  // Backward: dx (possibly defective), dw and db.
  std::vector<float> dw(w.size(), kSentinel), db(b.empty() ? 0 : b.size(), kSentinel);
  convkit::Conv2dGrads grads;
  grads.dx = convkit::TensorView{out_ptr, out_given};
  grads.dw = convkit::TensorView{dw.data(), w_dims};
  if (!db.empty()) grads.db = std::span<float>(db);
  const bool ran = Run(desc, expect_error, [&] {
    convkit::conv2d_backward(p, {x_ptr, x_given}, {w.data(), w_dims}, {dy.data(), y_dims}, grads,
                             backend);
  });
  if (expect_error) {
    if (defect != Defect::kAlias) CheckUntouched(desc, out, "dx");
    CheckUntouched(desc, dw, "dw");
    CheckUntouched(desc, db, "db");
    return;
  }
  if (!ran) return;
  std::vector<float> dx_ref(out.size()), dw_ref(dw.size()), db_ref(db.size());
  convkit::Conv2dGrads ref;
  ref.dx = convkit::TensorView{dx_ref.data(), x_dims};
  ref.dw = convkit::TensorView{dw_ref.data(), w_dims};
  if (!db_ref.empty()) ref.db = std::span<float>(db_ref);
  convkit::conv2d_backward(p, {x.data(), x_dims}, {w.data(), w_dims}, {dy.data(), y_dims}, ref,
                           "reference");
  if (!SameBits(dx_ref, out)) Die(desc, "dx differs from reference");
  if (!SameBits(dw_ref, dw)) Die(desc, "dw differs from reference");
  if (!SameBits(db_ref, db)) Die(desc, "db differs from reference");
}

// A multiple of every divisor an average window of at most kh x kw can have.
float AverageScale(int64_t kh, int64_t kw) {
  uint64_t scale = 1;
  for (int64_t r = 1; r <= kh; ++r) {
    for (int64_t c = 1; c <= kw; ++c) scale = std::lcm(scale, static_cast<uint64_t>(r * c));
  }
  return static_cast<float>(scale);
}

void FuzzPool(Reader& in, const std::string& backend, int op) {
  Pool2dParams p;
  p.mode = in.Byte() % 2 ? PoolMode::kMax : PoolMode::kAverage;
  p.window_h = in.Extent(1, 5);
  p.window_w = in.Extent(1, 5);
  p.stride_h = in.Extent(1, 3);
  p.stride_w = in.Extent(1, 3);
  p.pad = {in.Extent(0, 2), in.Extent(0, 2), in.Extent(0, 2), in.Extent(0, 2)};
  const uint8_t flags = in.Byte();
  p.ceil_mode = flags & 1;
  p.count_include_pad = flags & 2;
  p.global = (flags & 0x1c) == 0x1c;
  if (p.global && (flags & 0x20)) p.pad = {};
  const Dims x_dims{in.Extent(0, 3), in.Extent(1, 12), in.Extent(1, 12), in.Extent(1, 33)};
  Defect defect = PickDefect(in);
  const uint64_t seed = in.Seed();
  static const char* kOps[] = {"pool2d_forward", "pool2d_backward", "Pool2d::run"};
  std::string desc = std::string(kOps[op]) + " backend " + backend + " x " + Str(x_dims) + " " +
                     convkit::to_string(p) + (p.global ? " global" : "") +
                     " defect: " + DefectName(defect);

  bool valid = true;
  Dims y_dims{};
  try {
    y_dims = convkit::pool2d_output_dims(x_dims, p);
  } catch (const convkit::Error&) {
    valid = false;
  } catch (...) {
    Die(desc, "pool2d_output_dims raised a non-convkit exception");
  }
  float scale = 1.0f;
  if (valid) {
    if (!SmallCount(x_dims) || !SmallCount(y_dims) || !SmallExtents(x_dims)) return;
    const int64_t kh = p.global ? x_dims[1] : p.window_h, kw = p.global ? x_dims[2] : p.window_w;
    // A hostile window (with pads as large) is valid, but its exact-average scale is unbounded.
    if (p.mode == PoolMode::kAverage && (kh > 16 || kw > 16)) return;
    if (p.mode == PoolMode::kAverage)
      scale = p.global ? static_cast<float>(kh * kw) : AverageScale(kh, kw);
  } else {
    y_dims = {x_dims[0], 2, 2, x_dims[3]};
  }
  desc += " y " + Str(y_dims);
  if (std::getenv("CONVKIT_FUZZ_PRINT") != nullptr) std::fprintf(stderr, "%s\n", desc.c_str());

  std::vector<float> x = Buffer(x_dims), dy = Buffer(y_dims);
  FillIntegers(x, seed, scale);
  FillIntegers(dy, seed ^ 5, scale);
  defect = DropIfHarmless(defect, valid, x_dims, op == 1 ? x_dims : y_dims, &desc);
  const bool expect_error = !valid || defect != Defect::kNone;

  Dims x_given = x_dims, out_given = op == 1 ? x_dims : y_dims;
  const float* x_ptr = x.data();
  if (defect == Defect::kXDims) Bump(x_given[3]);  // C: H or W might still fit the stride
  if (defect == Defect::kOutDims) Bump(out_given[2]);
  if (defect == Defect::kNullX) x_ptr = nullptr;
  std::vector<float> out = Buffer(out_given, kSentinel);
  float* out_ptr = out.data();
  if (defect == Defect::kNullOut) out_ptr = nullptr;
  if (defect == Defect::kAlias) out_ptr = x.data();

  bool ran = false;
  if (op == 0) {
    ran = Run(desc, expect_error, [&] {
      convkit::pool2d_forward(p, {x_ptr, x_given}, {out_ptr, out_given}, backend);
    });
  } else if (op == 2) {
    ran = Run(desc, expect_error, [&] {
      const convkit::Pool2d plan(p, x_dims, backend);
      plan.run({x_ptr, x_given}, {out_ptr, out_given});
    });
  } else {
    ran = Run(desc, expect_error, [&] {
      convkit::pool2d_backward(p, {x_ptr, x_given}, {dy.data(), y_dims}, {out_ptr, out_given},
                               backend);
    });
  }
  if (expect_error) {
    if (defect != Defect::kAlias) CheckUntouched(desc, out, op == 1 ? "dx" : "y");
    return;
  }
  if (!ran) return;
  std::vector<float> expected(out.size(), -1.0f);
  if (op == 1) {
    convkit::pool2d_backward(p, {x.data(), x_dims}, {dy.data(), y_dims}, {expected.data(), x_dims},
                             "reference");
  } else {
    convkit::pool2d_forward(p, {x.data(), x_dims}, {expected.data(), y_dims}, "reference");
  }
  if (!SameBits(expected, out))
    Die(desc, op == 1 ? "dx differs from reference" : "y differs from reference");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> backends = [] {
    std::vector<std::string> names = convkit::available_backends();
    names.push_back("auto");
    convkit::set_num_threads(1);  // libFuzzer runs one input at a time; OpenMP adds only noise
    return names;
  }();
  Reader in(data, size);
  const uint8_t selector = in.Byte();
  const std::string& backend = backends[in.Byte() % backends.size()];
  const int op = selector % 3;
  if ((selector / 3) % 2 == 0) {
    FuzzConv(in, backend, op);
  } else {
    FuzzPool(in, backend, op);
  }
  return 0;
}
