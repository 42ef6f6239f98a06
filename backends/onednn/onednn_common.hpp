// What every oneDNN call of this backend shares: the one CPU engine, the OpenMP thread-count scope,
// memory descriptors for convkit's layouts, implementation names and error translation.
//
// convkit's vocabulary (x w b y, dy dx dw db) meets oneDNN's (src weights bias dst, diff_*) here
// and in the op files only (STYLE rule 4).
#pragma once

#include <cstdint>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

#include "api/src/problem.hpp"
#include "convkit/error.hpp"

namespace convkit::internal::onednn {

// The process-wide CPU engine. Thread-safe; lives until exit.
const dnnl::engine& Engine();

// Sets the calling thread's OpenMP thread count (the ICV oneDNN reads through omp_get_max_threads)
// to `n` for its lifetime and restores the caller's value after, so convkit's count governs
// oneDNN without leaking into the caller's own OpenMP regions.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int n);
  ~ScopedOmpThreads();
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int saved_;
};

// NHWC activations {n, h, w, c} (oneDNN's logical order is {n, c, h, w}).
dnnl::memory::desc ActivationDesc(int64_t n, int64_t h, int64_t w, int64_t c);

// Convolution weights, logical {oc, ic, kh, kw}, or {g, oc/g, ic/g, kh, kw} with groups.
// Hwio: convkit's layout {kh, kw, ic/g, oc} (oc = g * oc/g + o). Any: oneDNN picks.
dnnl::memory::desc WeightDescHwio(const Conv2dProblem& p);
dnnl::memory::desc WeightDescAny(const Conv2dProblem& p);

// {oc}, dense.
dnnl::memory::desc BiasDesc(int64_t oc);

// A memory object over a caller's buffer; oneDNN only reads it when it is an input.
dnnl::memory Wrap(const dnnl::memory::desc& desc, const float* data);

// "onednn:" + oneDNN's impl_info_str(), e.g. "onednn:brgconv:avx512_core".
std::string ImplName(const dnnl::primitive_desc_base& pd);

// The implementation name of a primitive created with fpmath = bf16 (`bf16`): oneDNN's own name
// tells when a bf16 kernel ran ("...avx512_core_bf16..."); when it does not, the name says the mode
// was allowed and an fp32 kernel ran.
std::string ImplName(const dnnl::primitive_desc_base& pd, bool bf16);

// Runs `prim` once on a fresh stream and waits (one-shot calls; scratchpad in library mode).
void ExecuteOnce(const dnnl::primitive& prim, const std::unordered_map<int, dnnl::memory>& args);

// Runs `body`, turning oneDNN's exceptions into convkit::Error: out of memory stays out of memory;
// anything else means a problem supports() accepted and oneDNN refused, reported as unsupported
// with `what` (e.g. "conv2d forward") and oneDNN's message.
[[noreturn]] void ThrowFromDnnl(std::string_view what, const dnnl::error& e);

template <typename Body>
decltype(auto) TranslateErrors(std::string_view what, Body&& body) {
  try {
    return body();
  } catch (const dnnl::error& e) {
    ThrowFromDnnl(what, e);
  }
}

}  // namespace convkit::internal::onednn
