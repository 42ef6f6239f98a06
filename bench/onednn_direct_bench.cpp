// Forward convolution through oneDNN called directly, without convkit: the baseline for the oneDNN
// backend's plans (issue 3: within 5 % on ResNet-50 layers, at most 2 us more per call).
//
// One benchmark per convolution shape of shape_sets.hpp, named
// "conv2d_fwd/onednn_direct/<set>/<shape>/N<batch>", so the comparison shows it as one more column
// beside convkit's "conv2d_fwd/<backend>/...". Set up as an application using oneDNN well would:
// one engine and stream, an inference primitive with bias (as convkit_bench's plans have), the
// weights in the layout oneDNN chose (format_tag::any) reordered once, memory objects and the
// argument map built once, the default (library) scratchpad. The timed loop is execute() alone.
// The thread count is convkit's (--threads), set through OpenMP when this file is built with it.
//
// "conv2d_fwd_bf16/onednn_direct/...": the same with oneDNN's bf16 convolution (x and w in bf16,
// y fp32), the peer of convkit's fpmath = bf16. oneDNN 2.6.3 ignores fpmath_mode::bf16 on an f32
// convolution, so this is the way to get its bf16 kernels. x is converted to bf16 before the timed
// loop, as a network that keeps its activations in bf16 would have it: the timing leaves out the
// conversion convkit does inside its call.
#include <benchmark/benchmark.h>

#include <chrono>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bench_common.hpp"
#include "bench/shape_sets.hpp"
#include "convkit/runtime.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit::bench {
namespace {

using dnnl::memory;

memory::desc Nhwc(const Dims& d, memory::data_type type = memory::data_type::f32) {
  return memory::desc({d[0], d[3], d[1], d[2]}, type, memory::format_tag::nhwc);
}

// HWIO {kh, kw, ic/g, oc} as oneDNN's logical {oc, ic, kh, kw} or {g, oc/g, ic/g, kh, kw}; with
// `any`, in the layout and type oneDNN chooses for the primitive.
memory::desc Weights(const ConvShape& shape, bool any,
                     memory::data_type type = memory::data_type::f32) {
  const Dims w = shape.w_dims();
  const int64_t g = shape.params.groups, oc = shape.c_out, icg = w[2];
  const int64_t kw_stride = icg * oc, kh_stride = w[1] * kw_stride;
  const memory::dims dims =
      g == 1 ? memory::dims{oc, icg, w[0], w[1]} : memory::dims{g, oc / g, icg, w[0], w[1]};
  if (any) return memory::desc(dims, type, memory::format_tag::any);
  const memory::dims strides = g == 1 ? memory::dims{1, oc, kh_stride, kw_stride}
                                      : memory::dims{oc / g, 1, oc, kh_stride, kw_stride};
  return memory::desc(dims, memory::data_type::f32, strides);
}

void BenchDirect(benchmark::State& state, const ConvShape& shape, int64_t batch, bool bf16) {
#ifdef _OPENMP
  omp_set_num_threads(convkit::num_threads());  // before creation: oneDNN sizes its work split
#endif
  const Conv2dParams& p = shape.params;
  const Dims x_dims = shape.x_dims(batch), y_dims = ConvOutputDims(shape, batch);
  std::vector<float> x(static_cast<size_t>(num_elements(x_dims)));
  std::vector<float> w(static_cast<size_t>(num_elements(shape.w_dims())));
  std::vector<float> b(static_cast<size_t>(shape.c_out));
  std::vector<float> y(static_cast<size_t>(num_elements(y_dims)));
  FillUniform(x.data(), static_cast<int64_t>(x.size()), 1);
  FillUniform(w.data(), static_cast<int64_t>(w.size()), 2);
  FillUniform(b.data(), shape.c_out, 3);

  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc bias_desc({shape.c_out}, memory::data_type::f32, memory::format_tag::x);
  const memory::data_type in_type = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  const dnnl::convolution_forward::primitive_desc pd(
      dnnl::convolution_forward::desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
          Nhwc(x_dims, in_type), Weights(shape, /*any=*/true, in_type), bias_desc, Nhwc(y_dims),
          {p.stride_h, p.stride_w}, {p.dilation_h - 1, p.dilation_w - 1}, {p.pad.top, p.pad.left},
          {p.pad.bottom, p.pad.right}),
      engine);
  const dnnl::convolution_forward conv(pd);

  memory w_user(Weights(shape, /*any=*/false), engine, w.data());
  memory w_packed(pd.weights_desc(), engine);
  dnnl::reorder(w_user, w_packed).execute(stream, w_user, w_packed);
  memory x_user(Nhwc(x_dims), engine, x.data());
  memory x_mem = x_user;
  if (bf16) {  // converted once, outside the timing
    x_mem = memory(pd.src_desc(), engine);
    dnnl::reorder(x_user, x_mem).execute(stream, x_user, x_mem);
  }
  const std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, x_mem},
      {DNNL_ARG_WEIGHTS, w_packed},
      {DNNL_ARG_BIAS, memory(bias_desc, engine, b.data())},
      {DNNL_ARG_DST, memory(pd.dst_desc(), engine, y.data())}};
  conv.execute(stream, args);  // warm-up, as convkit_bench does
  stream.wait();
  state.SetLabel(std::string("onednn:") + pd.impl_info_str() + " (direct)");

  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    conv.execute(stream, args);
    stream.wait();
    benchmark::ClobberMemory();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  SetGflopsCounter(state, ConvFlops(shape, batch), seconds);
}

void RegisterOnednnDirect(const Config& config) {
  for (const bool bf16 : {false, true}) {
    const char* op = bf16 ? "conv2d_fwd_bf16" : "conv2d_fwd";
    if (!config.WantsOp(op)) continue;
    for (const ConvShape& shape : ConvShapes()) {
      if (!config.WantsSet(shape.set)) continue;
      const int64_t batch = config.BatchFor(shape.default_batch());
      benchmark::RegisterBenchmark(
          BenchmarkName(op, "onednn_direct", shape.set, shape.name, batch).c_str(),
          [&shape, batch, bf16](benchmark::State& state) {
            try {  // only set-up throws (e.g. no bf16 implementation); the loop does not
              BenchDirect(state, shape, batch, bf16);
            } catch (const dnnl::error& e) {
              state.SkipWithError((std::string("unsupported: ") + e.what()).c_str());
            }
          })
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

const bool kRegistered = AddRegistrar(&RegisterOnednnDirect);

}  // namespace
}  // namespace convkit::bench
