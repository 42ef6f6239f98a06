#include "backends/onednn/onednn_common.hpp"

#include <omp.h>

#include <string>

namespace convkit::internal::onednn {

using dnnl::memory;

const dnnl::engine& Engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

ScopedOmpThreads::ScopedOmpThreads(int n) : saved_(omp_get_max_threads()) {
  if (n != saved_) omp_set_num_threads(n);
}

ScopedOmpThreads::~ScopedOmpThreads() {
  if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
}

memory::desc ActivationDesc(int64_t n, int64_t h, int64_t w, int64_t c) {
  return memory::desc({n, c, h, w}, memory::data_type::f32, memory::format_tag::nhwc);
}

namespace {

memory::dims WeightDims(const Conv2dProblem& p) {
  if (p.groups == 1) return {p.oc, p.ic, p.kh, p.kw};
  return {p.groups, p.oc_per_group(), p.ic_per_group(), p.kh, p.kw};
}

}  // namespace

memory::desc WeightDescHwio(const Conv2dProblem& p) {
  // Element (kh, kw, i, oc) of HWIO sits at ((kh * KW + kw) * IC/g + i) * OC + oc.
  const int64_t oc = p.oc, icg = p.ic_per_group(), ocg = p.oc_per_group();
  const int64_t kw_stride = icg * oc, kh_stride = p.kw * kw_stride;
  if (p.groups == 1) {
    return memory::desc(WeightDims(p), memory::data_type::f32,
                        memory::dims{1, oc, kh_stride, kw_stride});
  }
  return memory::desc(WeightDims(p), memory::data_type::f32,
                      memory::dims{ocg, 1, oc, kh_stride, kw_stride});
}

memory::desc WeightDescAny(const Conv2dProblem& p) {
  return memory::desc(WeightDims(p), memory::data_type::f32, memory::format_tag::any);
}

memory::desc BiasDesc(int64_t oc) {
  return memory::desc({oc}, memory::data_type::f32, memory::format_tag::x);
}

memory Wrap(const memory::desc& desc, const float* data) {
  return memory(desc, Engine(), const_cast<float*>(data));
}

std::string ImplName(const dnnl::primitive_desc_base& pd) {
  return std::string("onednn:") + pd.impl_info_str();
}

std::string ImplName(const dnnl::primitive_desc_base& pd, bool bf16) {
  std::string name = ImplName(pd);
  if (bf16 && name.find("bf16") == std::string::npos) name += "(fpmath=bf16 unused)";
  return name;
}

void ExecuteOnce(const dnnl::primitive& prim, const std::unordered_map<int, memory>& args) {
  dnnl::stream stream(Engine());
  prim.execute(stream, args);
  stream.wait();
}

void ThrowFromDnnl(std::string_view what, const dnnl::error& e) {
  const std::string message = "onednn: " + std::string(what) + ": " + e.what();
  if (e.status == dnnl_out_of_memory) throw Error(ErrorCode::kOutOfMemory, message);
  throw Error(ErrorCode::kUnsupported, message);
}

}  // namespace convkit::internal::onednn
