// convkit-run: a benchdnn-style driver for one problem at a time.
//
//   convkit-run conv mb1ic64ih56oc64kh3ph1 --backend=highway,onednn --verify
//   convkit-run pool mb32ic64ih112kh3sh2ph1 --alg=max --dir=BWD_D
//   convkit-run deconv mb8ic128ih16oc64kh4sh2ph1 --verify
//
// Runs each problem on the given backends, prints the median time of repeated calls, GFLOP/s
// (convolution) or GB/s (pooling) and the speed ratios to onednn and reference; with --verify,
// checks every backend's output against the reference backend's on integer-valued data, where all
// backends must agree exactly (benchdnn's trick: every partial sum is exact in fp32).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "convkit/convkit.hpp"

namespace convkit::tools {
namespace {

constexpr const char kUsage[] = R"(usage: convkit-run conv|deconv|pool [options] PROBLEM...

PROBLEM is a benchdnn descriptor: keys followed by values, '_' separators allowed.
  conv: mb ic ih iw oc oh ow kh kw sh sw ph pw dh dw g   e.g. mb1ic64ih56oc64kh3ph1
  deconv: as conv, for the transposed convolution (benchdnn's deconv): ih/iw are x's, oc is
        C_out, oh/ow default to (ih - 1) * sh - 2 * ph + (kh - 1) * (dh + 1) + 1; a larger oh/ow
        given is output_padding.                      e.g. mb8ic128ih16oc64kh4sh2ph1
  pool: mb ic ih iw oh ow kh kw sh sw ph pw              e.g. mb1ic64ih112kh3sh2ph1
  Defaults as benchdnn: mb2, iw=ih, kw=kh, sw=sh=1, pw=ph=0, g1. Dilation counts as in benchdnn
  (dh0 = dense, dh1 = one gap: convkit's dilation_h = dh + 1). oh/ow, when given, must match.
  A trailing n<name> names the problem.

options:
  --backend=LIST    backends to run, comma-separated: built backends and auto, whose row shows
                    the implementation it chose (default: every backend built in)
  --dir=DIR         conv, deconv: FWD_B (default, with bias), FWD_D, BWD_D, BWD_W, BWD_WB
                    pool: FWD_D (default), BWD_D
  --alg=ALG         pool: max (default), avg_np (exclude padding), avg_p (include padding)
  --ceil            pool: ceil_mode
  --attr-post-ops=OPS  conv, deconv forward: fused post-ops in benchdnn's spelling, joined by
                     '+': relu, relu:ALPHA (leaky), clip:LO:HI, logistic, tanh, swish, hardswish,
                     hardsigmoid:ALPHA:BETA, gelu_erf, then linear:SCALE:SHIFT (SCALE * act +
                     SHIFT); sum adds a residual before (sum+relu) or after (relu+sum) the
                     activation. --relu is --attr-post-ops=relu
  --attr-fpmath=MODE  conv and deconv forward: strict (default, fp32) or bf16 (x, w may be rounded)
  --verify          compare each backend's output with the reference backend's
  --repeats=N       timed repeats, the median is reported (default 25; fewer past ~2 s of work)
  --threads=N       threads per call (default OMP_NUM_THREADS or all cores)
)";

using Clock = std::chrono::steady_clock;

[[noreturn]] void Fail(const std::string& message) { throw std::invalid_argument(message); }

// ---------------------------------------------------------------------------------------------
// Problem descriptors.

struct Descriptor {
  std::map<std::string, int64_t> values;
  std::string name;

  int64_t Get(const std::string& key, int64_t fallback) const {
    const auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  }
  bool Has(const std::string& key) const { return values.count(key) != 0; }
};

Descriptor ParseDescriptor(std::string_view text, const std::vector<std::string>& keys) {
  Descriptor d;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '_') {
      ++i;
      continue;
    }
    if (text[i] == 'n') {  // no key starts with n: the name, which runs to the end
      d.name = std::string(text.substr(i + 1));
      d.name.erase(std::remove(d.name.begin(), d.name.end(), '"'), d.name.end());
      break;
    }
    size_t j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    const std::string key(text.substr(i, j - i));
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      Fail("unknown key '" + key + "' in '" + std::string(text) + "'");
    }
    size_t k = j;
    while (k < text.size() && std::isdigit(static_cast<unsigned char>(text[k]))) ++k;
    if (k == j) Fail("key '" + key + "' has no value in '" + std::string(text) + "'");
    d.values[key] = std::atoll(std::string(text.substr(j, k - j)).c_str());
    i = k;
  }
  if (!d.Has("ic") || !d.Has("ih")) Fail("'" + std::string(text) + "' needs at least ic and ih");
  return d;
}

void CheckGivenOutput(const Descriptor& d, const char* key, int64_t computed) {
  if (d.Has(key) && d.Get(key, 0) != computed) {
    Fail(std::string(key) + std::to_string(d.Get(key, 0)) + " given, but the other values give " +
         key + std::to_string(computed));
  }
}

std::string FormatDims(const Dims& d) { return to_string(d); }

// ---------------------------------------------------------------------------------------------
// Cases: a problem with its inputs, preparing one call per backend.

// One backend's call, with the outputs it writes (owned here, one set per backend).
struct Prepared {
  std::string impl;
  std::vector<std::string> output_names;
  std::shared_ptr<std::vector<Tensor>> outputs;
  std::function<void()> run;
};

class Case {
 public:
  virtual ~Case() = default;
  virtual std::string Describe() const = 0;
  // Work of one call: FLOPs for convolutions, bytes read + written for pooling.
  virtual double Work() const = 0;
  virtual bool WorkIsBytes() const = 0;
  virtual Prepared Prepare(const std::string& backend) const = 0;
};

// The forward convolution's post-ops as --attr-post-ops spells them.
struct PostOpsSpec {
  Activation activation = Activation::kNone;
  float alpha = 0.0f;
  float beta = 0.0f;
  bool residual = false;
  bool residual_after_activation = false;
  float scale = 1.0f;  // linear:SCALE:SHIFT after the activation
  float shift = 0.0f;
};

// One number of an eltwise entry ("relu:0.1"); `entry` names the whole entry in the error.
float PostOpNumber(std::string_view text, std::string_view entry) {
  const std::string s(text);
  char* end = nullptr;
  const float v = std::strtof(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) {
    Fail("--attr-post-ops: " + std::string(entry) + ": '" + s + "' is not a number");
  }
  return v;
}

// "sum+relu", "clip:0:6", "swish+sum", "hardswish+linear:0.5:1", ...: at most one activation,
// then at most one linear entry, and one sum.
PostOpsSpec ParsePostOps(std::string_view text) {
  PostOpsSpec spec;
  bool have_activation = false;
  bool have_linear = false;
  while (!text.empty()) {
    const size_t plus = text.find('+');
    const std::string_view entry = text.substr(0, plus);
    text = plus == std::string_view::npos ? std::string_view() : text.substr(plus + 1);
    std::vector<std::string_view> parts;
    for (std::string_view rest = entry;;) {
      const size_t colon = rest.find(':');
      parts.push_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    const std::string_view name = parts[0];
    const size_t params = parts.size() - 1;
    if (name == "sum" && params == 0 && !spec.residual) {
      spec.residual = true;
      spec.residual_after_activation = have_activation;
      continue;
    }
    if (name == "linear" && params == 2 && !have_linear) {
      have_activation = have_linear = true;
      spec.scale = PostOpNumber(parts[1], entry);
      spec.shift = PostOpNumber(parts[2], entry);
      continue;
    }
    if (have_activation)
      Fail("--attr-post-ops: at most one activation, then one linear entry, given " +
           std::string(entry));
    have_activation = true;
    if (name == "relu" && params <= 1) {
      spec.alpha = params == 1 ? PostOpNumber(parts[1], entry) : 0.0f;
      spec.activation = spec.alpha == 0.0f ? Activation::kRelu : Activation::kLeakyRelu;
    } else if (name == "clip" && params == 2) {
      spec.activation = Activation::kClip;
      spec.alpha = PostOpNumber(parts[1], entry);
      spec.beta = PostOpNumber(parts[2], entry);
    } else if (name == "hardsigmoid" && params == 2) {
      spec.activation = Activation::kHardSigmoid;
      spec.alpha = PostOpNumber(parts[1], entry);
      spec.beta = PostOpNumber(parts[2], entry);
    } else if (name == "logistic" && params == 0) {
      spec.activation = Activation::kSigmoid;
    } else if (name == "tanh" && params == 0) {
      spec.activation = Activation::kTanh;
    } else if (name == "swish" && (params == 0 || (params == 1 && parts[1] == "1"))) {
      spec.activation = Activation::kSilu;
    } else if (name == "hardswish" && params == 0) {
      spec.activation = Activation::kHardSwish;
    } else if (name == "gelu_erf" && params == 0) {
      spec.activation = Activation::kGelu;
    } else {
      Fail("--attr-post-ops: unknown entry '" + std::string(entry) +
           "' (relu, relu:ALPHA, clip:LO:HI, logistic, tanh, swish, hardswish, "
           "hardsigmoid:ALPHA:BETA, gelu_erf, linear:SCALE:SHIFT, sum)");
    }
  }
  return spec;
}

// Integer values in [-2, 2] (benchdnn's fill): sums of products stay exact in fp32.
Tensor IntegerFilled(const Dims& dims, uint32_t seed) {
  Tensor t(dims);
  uint32_t s = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < t.size(); ++i) {
    s = s * 1664525u + 1013904223u;
    t.data()[i] = static_cast<float>(static_cast<int>((s >> 16) % 5) - 2);
  }
  return t;
}

std::shared_ptr<std::vector<Tensor>> NanOutputs(const std::vector<Dims>& dims) {
  auto outputs = std::make_shared<std::vector<Tensor>>();
  for (const Dims& d : dims) outputs->emplace_back(d, std::nanf(""));  // unwritten shows as NaN
  return outputs;
}

// The fields Conv2dParams and Conv2dTransposeParams share, from a conv or deconv descriptor
// (benchdnn's defaults and dilation counting) and the post-ops.
template <typename Params>
void ReadConvParams(const Descriptor& d, const PostOpsSpec& post, Params* params) {
  const int64_t kh = d.Get("kh", 1);
  params->kernel_h = kh;
  params->kernel_w = d.Get("kw", kh);
  params->stride_h = d.Get("sh", 1);
  params->stride_w = d.Get("sw", params->stride_h);
  const int64_t ph = d.Get("ph", 0), pw = d.Get("pw", ph);
  params->pad = Pads{ph, ph, pw, pw};
  params->dilation_h = d.Get("dh", 0) + 1;
  params->dilation_w = d.Get("dw", d.Get("dh", 0)) + 1;
  params->groups = d.Get("g", 1);
  params->activation = post.activation;
  params->activation_alpha = post.alpha;
  params->activation_beta = post.beta;
  params->residual_after_activation = post.residual_after_activation;
  params->post_scale = post.scale;
  params->post_shift = post.shift;
}

// The post-ops and fpmath attributes belong to the forward pass (--dir=FWD_B or FWD_D).
void CheckForwardAttrs(const std::string& dir, const PostOpsSpec& post, Fpmath fpmath) {
  if (dir.rfind("FWD", 0) == 0) return;
  if (post.activation != Activation::kNone || post.residual || post.scale != 1.0f ||
      post.shift != 0.0f) {
    Fail("--attr-post-ops is for the forward pass");
  }
  if (fpmath != Fpmath::kStrict) Fail("--attr-fpmath=bf16 is for the forward pass");
}

class ConvCase final : public Case {
 public:
  ConvCase(const Descriptor& d, std::string dir, const PostOpsSpec& post, Fpmath fpmath)
      : dir_(std::move(dir)), residual_(post.residual) {
    ReadConvParams(d, post, &params_);
    params_.fpmath = fpmath;
    const int64_t ih = d.Get("ih", 0);
    const int64_t ic = d.Get("ic", 0);
    x_dims_ = {d.Get("mb", 2), ih, d.Get("iw", ih), ic};
    const int64_t oc = d.Get("oc", ic);
    w_dims_ = {params_.kernel_h, params_.kernel_w, params_.groups > 0 ? ic / params_.groups : ic,
               oc};
    if (dir_ != "FWD_B" && dir_ != "FWD_D" && dir_ != "BWD_D" && dir_ != "BWD_W" &&
        dir_ != "BWD_WB") {
      Fail("--dir=" + dir_ + ": conv takes FWD_B, FWD_D, BWD_D, BWD_W or BWD_WB");
    }
    CheckForwardAttrs(dir_, post, fpmath);
    y_dims_ = conv2d_output_dims(x_dims_, w_dims_, params_);  // throws on invalid parameters
    CheckGivenOutput(d, "oh", y_dims_[1]);
    CheckGivenOutput(d, "ow", y_dims_[2]);
    x_ = IntegerFilled(x_dims_, 1);
    w_ = IntegerFilled(w_dims_, 2);
    b_ = IntegerFilled({1, 1, 1, oc}, 3);
    dy_ = IntegerFilled(y_dims_, 4);
    if (residual_) r_ = IntegerFilled(y_dims_, 5);
  }

  std::string Describe() const override {
    return "x " + FormatDims(x_dims_) + " w " + FormatDims(w_dims_) + " -> y " +
           FormatDims(y_dims_) + ", " + to_string(params_) + (residual_ ? " residual" : "") + ", " +
           dir_;
  }

  double Work() const override {
    return 2.0 * static_cast<double>(y_dims_[0] * y_dims_[1] * y_dims_[2]) *
           static_cast<double>(y_dims_[3]) * static_cast<double>(w_dims_[0] * w_dims_[1]) *
           static_cast<double>(w_dims_[2]);
  }
  bool WorkIsBytes() const override { return false; }

  Prepared Prepare(const std::string& backend) const override {
    Prepared p;
    const std::span<const float> bias =
        dir_ == "FWD_B" ? std::span<const float>(b_.data(), b_.size()) : std::span<const float>();
    if (dir_ == "FWD_B" || dir_ == "FWD_D") {
      auto plan = std::make_shared<Conv2d>(params_, x_dims_, w_, bias, backend);
      p.impl = plan->impl_name();
      p.output_names = {"y"};
      p.outputs = NanOutputs({y_dims_});
      p.run = [this, plan, out = p.outputs] {
        if (residual_) return plan->run(x_, r_, (*out)[0]);
        plan->run(x_, (*out)[0]);
      };
      return p;
    }
    const bool data = dir_ == "BWD_D", with_db = dir_ == "BWD_WB";
    auto plan = std::make_shared<Conv2dBackward>(params_, x_dims_, w_,
                                                 Conv2dGradsWanted{data, !data, with_db}, backend);
    p.impl = plan->impl_name();
    if (data) {
      p.output_names = {"dx"};
      p.outputs = NanOutputs({x_dims_});
    } else {
      p.output_names = {"dw"};
      std::vector<Dims> dims = {w_dims_};
      if (with_db) {
        p.output_names.push_back("db");
        dims.push_back({1, 1, 1, w_dims_[3]});
      }
      p.outputs = NanOutputs(dims);
    }
    p.run = [this, plan, data, with_db, out = p.outputs] {
      Conv2dGrads grads;
      if (data) {
        grads.dx = (*out)[0].view();
      } else {
        grads.dw = (*out)[0].view();
        if (with_db) grads.db = std::span<float>((*out)[1].data(), (*out)[1].size());
      }
      plan->run(x_, dy_, grads);
    };
    return p;
  }

 private:
  std::string dir_;
  bool residual_ = false;
  Conv2dParams params_;
  Dims x_dims_{}, w_dims_{}, y_dims_{};
  Tensor x_, w_, b_, dy_, r_;
};

// The transposed convolution: x {mb, ih, iw, ic} -> y {mb, oh, ow, oc}, w {kh, kw, oc / g, ic}.
class DeconvCase final : public Case {
 public:
  DeconvCase(const Descriptor& d, std::string dir, const PostOpsSpec& post, Fpmath fpmath)
      : dir_(std::move(dir)), residual_(post.residual) {
    ReadConvParams(d, post, &params_);
    params_.fpmath = fpmath;
    const int64_t ih = d.Get("ih", 0);
    const int64_t ic = d.Get("ic", 0), oc = d.Get("oc", ic);
    x_dims_ = {d.Get("mb", 2), ih, d.Get("iw", ih), ic};
    w_dims_ = {params_.kernel_h, params_.kernel_w, params_.groups > 0 ? oc / params_.groups : oc,
               ic};
    if (dir_ != "FWD_B" && dir_ != "FWD_D" && dir_ != "BWD_D" && dir_ != "BWD_W" &&
        dir_ != "BWD_WB") {
      Fail("--dir=" + dir_ + ": deconv takes FWD_B, FWD_D, BWD_D, BWD_W or BWD_WB");
    }
    CheckForwardAttrs(dir_, post, fpmath);
    // oh/ow beyond the size without output padding are the output padding.
    const Dims unpadded = conv2d_transpose_output_dims(x_dims_, w_dims_, params_);
    params_.output_padding_h = d.Get("oh", unpadded[1]) - unpadded[1];
    params_.output_padding_w = d.Get("ow", unpadded[2]) - unpadded[2];
    y_dims_ = conv2d_transpose_output_dims(x_dims_, w_dims_, params_);  // throws if invalid
    x_ = IntegerFilled(x_dims_, 1);
    w_ = IntegerFilled(w_dims_, 2);
    b_ = IntegerFilled({1, 1, 1, oc}, 3);
    dy_ = IntegerFilled(y_dims_, 4);
    if (residual_) r_ = IntegerFilled(y_dims_, 5);
  }

  std::string Describe() const override {
    return "x " + FormatDims(x_dims_) + " w " + FormatDims(w_dims_) + " -> y " +
           FormatDims(y_dims_) + ", " + to_string(params_) + (residual_ ? " residual" : "") + ", " +
           dir_;
  }

  // 2 * N * H * W * C_in * KH * KW * C_out / groups: every input pixel's window.
  double Work() const override {
    return 2.0 * static_cast<double>(x_dims_[0] * x_dims_[1] * x_dims_[2]) *
           static_cast<double>(x_dims_[3]) * static_cast<double>(w_dims_[0] * w_dims_[1]) *
           static_cast<double>(w_dims_[2]);
  }
  bool WorkIsBytes() const override { return false; }

  Prepared Prepare(const std::string& backend) const override {
    Prepared p;
    const std::span<const float> bias =
        dir_ == "FWD_B" ? std::span<const float>(b_.data(), b_.size()) : std::span<const float>();
    if (dir_ == "FWD_B" || dir_ == "FWD_D") {
      auto plan = std::make_shared<Conv2dTranspose>(params_, x_dims_, w_, bias, backend);
      p.impl = plan->impl_name();
      p.output_names = {"y"};
      p.outputs = NanOutputs({y_dims_});
      p.run = [this, plan, out = p.outputs] {
        if (residual_) return plan->run(x_, r_, (*out)[0]);
        plan->run(x_, (*out)[0]);
      };
      return p;
    }
    p.impl = backend + " (one-shot)";
    p.output_names = {dir_ == "BWD_D" ? "dx" : "dw"};
    std::vector<Dims> dims = {dir_ == "BWD_D" ? x_dims_ : w_dims_};
    if (dir_ == "BWD_WB") {
      p.output_names.push_back("db");
      dims.push_back({1, 1, 1, y_dims_[3]});
    }
    p.outputs = NanOutputs(dims);
    p.run = [this, backend, out = p.outputs] {
      Conv2dGrads grads;
      if (dir_ == "BWD_D") {
        grads.dx = (*out)[0].view();
      } else {
        grads.dw = (*out)[0].view();
        if (dir_ == "BWD_WB") grads.db = std::span<float>((*out)[1].data(), (*out)[1].size());
      }
      conv2d_transpose_backward(params_, x_, w_, dy_, grads, backend);
    };
    return p;
  }

 private:
  std::string dir_;
  bool residual_ = false;
  Conv2dTransposeParams params_;
  Dims x_dims_{}, w_dims_{}, y_dims_{};
  Tensor x_, w_, b_, dy_, r_;
};

class PoolCase final : public Case {
 public:
  PoolCase(const Descriptor& d, std::string dir, const std::string& alg, bool ceil_mode)
      : dir_(std::move(dir)) {
    if (d.Has("dh") || d.Has("dw") || d.Has("oc") || d.Has("g")) {
      Fail("pool takes mb ic ih iw oh ow kh kw sh sw ph pw");
    }
    if (alg == "max") {
      params_.mode = PoolMode::kMax;
    } else if (alg == "avg_np" || alg == "avg_p") {
      params_.mode = PoolMode::kAverage;
      params_.count_include_pad = alg == "avg_p";
    } else {
      Fail("--alg=" + alg + ": pool takes max, avg_np or avg_p");
    }
    if (dir_ == "FWD" || dir_ == "FWD_I" || dir_ == "FWD_B") dir_ = "FWD_D";
    if (dir_ != "FWD_D" && dir_ != "BWD_D") Fail("--dir=" + dir_ + ": pool takes FWD_D or BWD_D");
    const int64_t kh = d.Get("kh", 1), ih = d.Get("ih", 0);
    params_.window_h = kh;
    params_.window_w = d.Get("kw", kh);
    params_.stride_h = d.Get("sh", 1);
    params_.stride_w = d.Get("sw", params_.stride_h);
    const int64_t ph = d.Get("ph", 0), pw = d.Get("pw", ph);
    params_.pad = Pads{ph, ph, pw, pw};
    params_.ceil_mode = ceil_mode;
    x_dims_ = {d.Get("mb", 2), ih, d.Get("iw", ih), d.Get("ic", 0)};
    y_dims_ = pool2d_output_dims(x_dims_, params_);
    CheckGivenOutput(d, "oh", y_dims_[1]);
    CheckGivenOutput(d, "ow", y_dims_[2]);
    x_ = IntegerFilled(x_dims_, 1);
    dy_ = IntegerFilled(y_dims_, 4);
  }

  std::string Describe() const override {
    return "x " + FormatDims(x_dims_) + " -> y " + FormatDims(y_dims_) + ", " + to_string(params_) +
           ", " + dir_;
  }

  // Forward: x read, y written. Backward: dy read, dx written, and x read by max pooling.
  double Work() const override {
    const double x = static_cast<double>(num_elements(x_dims_));
    const double y = static_cast<double>(num_elements(y_dims_));
    if (dir_ == "FWD_D") return (x + y) * sizeof(float);
    return (y + x + (params_.mode == PoolMode::kMax ? x : 0.0)) * sizeof(float);
  }
  bool WorkIsBytes() const override { return true; }

  Prepared Prepare(const std::string& backend) const override {
    Prepared p;
    if (dir_ == "FWD_D") {
      auto plan = std::make_shared<Pool2d>(params_, x_dims_, backend);
      p.impl = plan->impl_name();
      p.output_names = {"y"};
      p.outputs = NanOutputs({y_dims_});
      p.run = [this, plan, out = p.outputs] { plan->run(x_, (*out)[0]); };
      return p;
    }
    auto plan = std::make_shared<Pool2dBackward>(params_, x_dims_, backend);
    p.impl = plan->impl_name();
    p.output_names = {"dx"};
    p.outputs = NanOutputs({x_dims_});
    p.run = [this, plan, out = p.outputs] { plan->run(x_, dy_, (*out)[0]); };
    return p;
  }

 private:
  std::string dir_;
  Pool2dParams params_;
  Dims x_dims_{}, y_dims_{};
  Tensor x_, dy_;
};

// ---------------------------------------------------------------------------------------------
// Timing and verification.

struct Timing {
  double median_s = 0;
  double min_s = 0;
  int repeats = 0;
};

// Median of up to max_repeats measurements, each of enough back-to-back calls to last ~1 ms
// (a steady_clock read costs ~20 ns; 1 ms keeps that and OpenMP wake-up noise small), within a
// budget of ~2 s of calls.
Timing TimeCalls(const std::function<void()>& run, int max_repeats) {
  const auto time_calls = [&](int64_t calls) {
    const auto start = Clock::now();
    for (int64_t i = 0; i < calls; ++i) run();
    return std::chrono::duration<double>(Clock::now() - start).count() / static_cast<double>(calls);
  };
  const double first = std::max(time_calls(1), 1e-9);
  const int64_t calls = std::max<int64_t>(1, static_cast<int64_t>(1e-3 / first));
  const int repeats = static_cast<int>(std::clamp<double>(2.0 / (first * calls), 3, max_repeats));
  std::vector<double> samples;
  for (int r = 0; r < repeats; ++r) samples.push_back(time_calls(calls));
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples.front(), repeats};
}

// "exact", or the worst element; false when it is outside the tolerance (or NaN).
bool Compare(const Tensor& expected, const Tensor& actual, const std::string& name,
             std::string* report) {
  double worst = 0;
  int64_t worst_i = -1;
  for (int64_t i = 0; i < expected.size(); ++i) {
    const double e = expected.data()[i], a = actual.data()[i];
    const double diff = std::isnan(e) && std::isnan(a) ? 0.0 : std::fabs(a - e);
    if (std::isnan(diff) || diff > worst) {
      worst = std::isnan(diff) ? INFINITY : diff;
      worst_i = i;
      if (std::isnan(diff)) break;
    }
  }
  if (worst_i < 0) {
    *report += name + " exact";
    return true;
  }
  // Integer data: convolutions and max pooling are exact; averages differ by rounding of the
  // division at most.
  const double e = expected.data()[worst_i], a = actual.data()[worst_i];
  const bool ok = worst <= 1e-5 * std::max(1.0, std::fabs(e));
  const Dims& d = expected.dims();
  const int64_t c = worst_i % d[3], w = worst_i / d[3] % d[2], h = worst_i / d[3] / d[2] % d[1],
                n = worst_i / d[3] / d[2] / d[1];
  char buffer[200];
  std::snprintf(buffer, sizeof(buffer),
                "%s %s: max |diff| %g at (%lld, %lld, %lld, %lld): %g vs %g", name.c_str(),
                ok ? "ok" : "MISMATCH", worst, static_cast<long long>(n), static_cast<long long>(h),
                static_cast<long long>(w), static_cast<long long>(c), a, e);
  *report += buffer;
  return ok;
}

// ---------------------------------------------------------------------------------------------
// The driver.

struct Options {
  std::string kind;
  std::vector<std::string> problems;
  std::vector<std::string> backends;
  std::string dir;
  std::string alg = "max";
  bool ceil_mode = false;
  PostOpsSpec post_ops;
  Fpmath fpmath = Fpmath::kStrict;
  bool verify = false;
  int repeats = 25;
  int threads = 0;
};

std::vector<std::string> SplitList(std::string_view list) {
  std::vector<std::string> items;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (comma != 0) items.emplace_back(list.substr(0, comma));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return items;
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&](std::string_view flag) -> std::optional<std::string> {
      if (arg.substr(0, flag.size() + 1) == std::string(flag) + "=") {
        return std::string(arg.substr(flag.size() + 1));
      }
      return std::nullopt;
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (auto v = value("--backend")) {
      o.backends = SplitList(*v);
    } else if (auto v = value("--dir")) {
      o.dir = *v;
    } else if (auto v = value("--alg")) {
      o.alg = *v;
    } else if (auto v = value("--attr-post-ops")) {
      o.post_ops = ParsePostOps(*v);
    } else if (auto v = value("--attr-fpmath")) {
      if (*v != "strict" && *v != "bf16") Fail("--attr-fpmath: strict or bf16");
      o.fpmath = *v == "bf16" ? Fpmath::kBf16 : Fpmath::kStrict;
    } else if (auto v = value("--repeats")) {
      o.repeats = std::max(1, std::atoi(v->c_str()));
    } else if (auto v = value("--threads")) {
      o.threads = std::atoi(v->c_str());
    } else if (arg == "--relu") {
      o.post_ops = ParsePostOps("relu");
    } else if (arg == "--ceil") {
      o.ceil_mode = true;
    } else if (arg == "--verify") {
      o.verify = true;
    } else if (arg.substr(0, 2) == "--") {
      Fail("unknown option " + std::string(arg));
    } else if (o.kind.empty()) {
      o.kind = std::string(arg);
    } else {
      o.problems.emplace_back(arg);
    }
  }
  if (o.kind != "conv" && o.kind != "deconv" && o.kind != "pool") {
    Fail("the first argument must be conv, deconv or pool");
  }
  if (o.problems.empty()) Fail("no problem given");
  if (o.dir.empty()) o.dir = o.kind == "pool" ? "FWD_D" : "FWD_B";
  if (o.backends.empty()) o.backends = available_backends();
  return o;
}

struct Row {
  std::string backend;
  std::string impl;
  std::optional<Timing> timing;
  std::string note;  // the error, or the verification report
};

// Runs one problem; returns false when a verification failed.
bool RunProblem(const Options& o, const std::string& text) {
  std::unique_ptr<Case> c;
  if (o.kind == "conv") {
    c = std::make_unique<ConvCase>(
        ParseDescriptor(text, {"mb", "g", "ic", "ih", "iw", "oc", "oh", "ow", "kh", "kw", "sh",
                               "sw", "ph", "pw", "dh", "dw"}),
        o.dir, o.post_ops, o.fpmath);
  } else if (o.kind == "deconv") {
    c = std::make_unique<DeconvCase>(
        ParseDescriptor(text, {"mb", "g", "ic", "ih", "iw", "oc", "oh", "ow", "kh", "kw", "sh",
                               "sw", "ph", "pw", "dh", "dw"}),
        o.dir, o.post_ops, o.fpmath);
  } else {
    c = std::make_unique<PoolCase>(ParseDescriptor(text, {"mb", "ic", "ih", "iw", "oh", "ow", "kh",
                                                          "kw", "sh", "sw", "ph", "pw"}),
                                   o.dir, o.alg, o.ceil_mode);
  }
  const double work = c->Work();
  std::printf("%s %s: %s\n  %.4g %s per call, %d threads\n", o.kind.c_str(), text.c_str(),
              c->Describe().c_str(), c->WorkIsBytes() ? work * 1e-6 : work * 1e-9,
              c->WorkIsBytes() ? "MB" : "GFLOP", num_threads());

  std::optional<Prepared> expected;
  if (o.verify) {
    expected = c->Prepare("reference");
    expected->run();
  }

  bool all_ok = true;
  std::vector<Row> rows;
  for (const std::string& backend : o.backends) {
    Row row{backend, "", std::nullopt, ""};
    try {
      Prepared p = c->Prepare(backend);
      row.impl = p.impl;
      p.run();
      if (expected) {
        for (size_t i = 0; i < p.outputs->size(); ++i) {
          if (i > 0) row.note += "; ";
          all_ok &= Compare((*expected->outputs)[i], (*p.outputs)[i], p.output_names[i], &row.note);
        }
      }
      row.timing = TimeCalls(p.run, o.repeats);
    } catch (const Error& e) {
      row.note =
          std::string(e.code() == ErrorCode::kUnsupported ? "unsupported: " : "error: ") + e.what();
    }
    rows.push_back(std::move(row));
  }

  const auto median_of = [&](std::string_view backend) -> std::optional<double> {
    for (const Row& r : rows) {
      if (r.backend == backend && r.timing) return r.timing->median_s;
    }
    return std::nullopt;
  };
  const std::optional<double> onednn = median_of("onednn"), reference = median_of("reference");
  std::printf("  %-10s %-28s %10s %10s %9s %10s %10s  %s\n", "backend", "implementation",
              "median ms", "min ms", c->WorkIsBytes() ? "GB/s" : "GFLOP/s", "vs onednn", "vs ref",
              o.verify ? "verify" : "");
  for (const Row& r : rows) {
    if (!r.timing) {
      std::printf("  %-10s %-28s %s\n", r.backend.c_str(), r.impl.c_str(), r.note.c_str());
      continue;
    }
    const double t = r.timing->median_s;
    const auto ratio = [&](const std::optional<double>& other, std::string_view name) {
      char buffer[32] = "-";
      if (other && r.backend != name) std::snprintf(buffer, sizeof(buffer), "%.2fx", *other / t);
      return std::string(buffer);
    };
    std::printf("  %-10s %-28s %10.4f %10.4f %9.2f %10s %10s  %s\n", r.backend.c_str(),
                r.impl.c_str(), t * 1e3, r.timing->min_s * 1e3, work / t * 1e-9,
                ratio(onednn, "onednn").c_str(), ratio(reference, "reference").c_str(),
                r.note.c_str());
  }
  std::printf("\n");
  return all_ok;
}

int Main(int argc, char** argv) {
  Options o;
  try {
    o = ParseOptions(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "convkit-run: %s\n\n%s", e.what(), kUsage);
    return 2;
  }
  if (o.threads > 0) set_num_threads(o.threads);
  bool all_ok = true;
  for (const std::string& problem : o.problems) {
    try {
      all_ok &= RunProblem(o, problem);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "convkit-run: %s: %s\n", problem.c_str(), e.what());
      return 2;
    }
  }
  if (o.verify) std::printf("%s\n", all_ok ? "verify: all passed" : "verify: FAILED");
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace convkit::tools

int main(int argc, char** argv) { return convkit::tools::Main(argc, argv); }
