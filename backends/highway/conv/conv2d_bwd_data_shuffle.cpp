// Backward data where the kernel is at most the stride (conv2d_bwd.hpp): each dx pixel is under
// at most one tap of one dy pixel (a 2x2 stride-2 transposed convolution: UNet's and DBNet's
// upsampling; a patchify stem's backward data; a 1x1 stride-2 projection's, where 3 dx pixels in
// 4 are under none). dx is then a 1x1 convolution of dy into KH * KW * IC channels, each dy
// pixel's KH x KW patch of dx side by side, moved into place (depth to space) with the epilogue,
// and zeros where no tap reaches. The implicit GEMM over dx pixels spent half its FMAs on the
// zero pixels of a 1x1 stride-2 layer's tiles (ResNet-50's res3 projection at N = 8: 0.67x oneDNN).
// The 1x1 convolution runs as a forward plan (the direct kernels at their forward speed), over
// chunks of dy rows sized to keep its output in L2 for the shuffle. The gather kernels filled IC of
// every vector's lanes, or (narrow) scattered KW * IC floats per dy pixel on one thread per image:
// DBNet's 24 -> 1 head at 320x320, 3.9 ms.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/common/transpose.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"
#include "backends/highway/conv/conv2d_fwd.hpp"

namespace convkit::internal::highway {
namespace {

// The 1x1 convolution's output per chunk: 1 MiB, each thread's share within its L2, where the
// shuffle reads it back (256 KiB chunks measured up to 1.5x slower: twice the runs, each a fork
// and join of the team for a few hundred pixels).
constexpr int64_t kChunkFloats = int64_t{1} << 18;

// The 1x1 convolution of `rows` dy rows (as one image of rows x OW pixels): OC -> KH * KW * IC.
Conv2dProblem ChunkProblem(const Conv2dProblem& p, int64_t rows) {
  Conv2dProblem f;
  f.n = 1;
  f.ih = f.oh = rows;
  f.iw = f.ow = p.ow;
  f.ic = p.oc;
  f.oc = p.kh * p.kw * p.ic;
  f.kh = f.kw = 1;
  return f;  // fpmath strict: dx in fp32, as by the other backward-data variants
}

// The calling thread's buffer for the 1x1 convolution's output, kept across runs (a fresh 1 MiB
// each run is page faults). Not slot 0: the forward plan uses that one meanwhile.
float* ChunkOutput(int64_t floats) { return ThreadScratch<kShuffleScratchSlot>(floats); }

}  // namespace

const char* RefusesDataShuffle(const Conv2dProblem& p) {
  if (p.groups != 1) return "groups > 1";
  if (p.dilation_h != 1 || p.dilation_w != 1) return "dilated";
  if (p.kh > p.stride_h || p.kw > p.stride_w) return "kernel > stride";
  if (p.stride_h * p.stride_w == 1) return "stride 1";
  if (p.n == 0) return "empty batch";
  return nullptr;
}

DataShuffle::DataShuffle(const Conv2dProblem& p, const float* w, bool one_shot)
    : p_(p), row_(ChooseShuffleRow()) {
  const int64_t cols = p.kh * p.kw * p.ic, dy_rows = p.n * p.oh;
  chunk_rows_ = std::clamp<int64_t>(kChunkFloats / (p.ow * cols), 1, dy_rows);
  // HWIO of the 1x1 convolution: w_1x1(oc, tap * IC + ic) = w(tap, ic, oc), w^T of w's rows.
  w_1x1_.resize(static_cast<size_t>(p.oc * cols));
  TransposeMatrix(w, cols, p.oc, w_1x1_.data());
  const auto create = one_shot ? &CreateConv2dFwdOneShot : &CreateConv2dFwd;
  chunk_ = create(ChunkProblem(p, chunk_rows_), w_1x1_.data(), nullptr);
  if (dy_rows % chunk_rows_ != 0) {
    tail_ = create(ChunkProblem(p, dy_rows % chunk_rows_), w_1x1_.data(), nullptr);
  }
  if (!one_shot) w_1x1_ = {};  // packed by the plans
}

DataShuffle::~DataShuffle() = default;

std::string DataShuffle::forward_name() const {
  const std::string name = chunk_->name();  // "highway:igemm:AVX3" -> "igemm:AVX3"
  return name.substr(name.find(':') + 1);
}

void DataShuffle::Run(const float* dy, const DxEpilogue& e, float* dx) const {
  const Conv2dProblem& p = p_;
  const int64_t cols = p.kh * p.kw * p.ic, dy_rows = p.n * p.oh, dx_row = p.iw * p.ic;
  float* out = ChunkOutput(chunk_rows_ * p.ow * cols);
  // dx rows [begin, end) of the items: item i is row r = i % stride_h of dy row first + i /
  // stride_h's band of dx rows, tap row r when r < KH, else a row no tap reaches (zeros).
  const auto shuffle = [&](int64_t first, int64_t items) {
    ParallelRanges(ThreadsFor(4.0 * items * dx_row), items, [&](int64_t begin, int64_t end) {
      float* buf = ThreadScratch(dx_row);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t row = first + i / p.stride_h, r = i % p.stride_h;
        const int64_t n = row / p.oh, ih = row % p.oh * p.stride_h + r - p.pad.top;
        if (ih < 0 || ih >= p.ih) continue;  // cropped by the padding
        const float* cols_row = r < p.kh ? out + (i / p.stride_h) * p.ow * cols : nullptr;
        row_(p, cols_row, r, e, buf, dx + (n * p.ih + ih) * dx_row);
      }
    });
  };
  for (int64_t first = 0; first < dy_rows; first += chunk_rows_) {
    const int64_t rows = std::min(chunk_rows_, dy_rows - first);
    (rows == chunk_rows_ ? chunk_ : tail_)->run(dy + first * p.ow * p.oc, nullptr, out);
    shuffle(first, rows * p.stride_h);
  }
  // The dx rows below every dy row's taps (output padding): zeros through the epilogue.
  const int64_t reached = std::max<int64_t>(0, p.oh * p.stride_h - p.pad.top);
  if (reached >= p.ih) return;
  float* buf = ThreadScratch(dx_row);
  for (int64_t n = 0; n < p.n; ++n) {
    for (int64_t ih = reached; ih < p.ih; ++ih) {
      row_(p, nullptr, 0, e, buf, dx + (n * p.ih + ih) * dx_row);
    }
  }
}

}  // namespace convkit::internal::highway
