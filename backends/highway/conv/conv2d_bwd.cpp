// Backward convolution plans of the Highway backend: weight transposition (once per plan and per
// set_weights), threading policy, and the calls into the per-target kernels (conv2d_bwd_data.cc,
// conv2d_bwd_weights.cc, conv2d_bwd_depthwise_*.cc). One-shot calls create a plan and run it.
#include "backends/highway/conv/conv2d_bwd.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/src/backend.hpp"
#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_fwd.hpp"
#include "hwy/aligned_allocator.h"

namespace convkit::internal::highway {
namespace {

// w^T in column blocks of block_cols input channels, each block contiguous: for group g and
// block b, row tap * OCg + oc holds w(tap, ic, g * OCg + oc) for the block's ic (zeros past ICg).
// A block is what one backward-data tile reads, row after row at a 64-float (256 B) stride: a
// row stride of IC floats instead (2 KiB at IC = 512) maps the rows to a few of the L1D's 64 sets
// and evicts them between tiles (res5 3x3 s2: 0.66x oneDNN).
struct BlockedWeights {
  hwy::AlignedFreeUniquePtr<float[]> data;
  int64_t block_stride = 0, group_stride = 0;
};

// Square tiles of the transposition: kTile lines of w (contiguous over oc) in, kTile lines of w^T
// (contiguous over ic) out, all within L1, so every cache line is read and written once. Writing
// one w^T column at a time over all OC rows instead (a 256 B stride: 512 KiB at OC = 2048) went to
// L2 on every store and, single-threaded, cost more than the GEMM at N = 1 (res5 1x1 512 -> 2048:
// 0.23x oneDNN). The tile reads w line by line: gathering a w^T line from kTile w lines instead
// reads lines OC floats apart, 8 KiB at OC = 2048, all in one L1 set (8 ways), and was no faster
// than the column-at-a-time loop. Measured for 512 x 2048, one thread: 0.34 ms (was 0.76 ms;
// a 4 MiB memcpy: 0.09 ms).
constexpr int64_t kTile = 16;

// One tap of one column block: dst[oc * block_cols + j] = w(tap, ic0 + j, oc0 + oc) for j < cols,
// 0 for cols <= j < block_cols, oc < ocg. src points at w(tap, ic0, oc0), rows of src_stride.
void TransposeBlockTap(const float* src, int64_t src_stride, int64_t cols, int64_t block_cols,
                       int64_t ocg, float* dst) {
  for (int64_t oc0 = 0; oc0 < ocg; oc0 += kTile) {
    const int64_t ocs = std::min(kTile, ocg - oc0);
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t js = std::min(kTile, cols - j0);
      for (int64_t j = 0; j < js; ++j) {  // one src line in, one float to each of ocs dst lines
        const float* in = src + (j0 + j) * src_stride + oc0;
        float* out = dst + oc0 * block_cols + j0 + j;
        for (int64_t oc = 0; oc < ocs; ++oc) out[oc * block_cols] = in[oc];
      }
    }
    for (int64_t oc = 0; oc < ocs; ++oc) {
      std::fill(dst + (oc0 + oc) * block_cols + cols, dst + (oc0 + oc + 1) * block_cols, 0.0f);
    }
  }
}

// The layout of w^T in column blocks of block_cols: strides of a block and of a group.
BlockedWeights BlockedLayout(const Conv2dProblem& p, int64_t block_cols) {
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group(), taps = p.kh * p.kw;
  const int64_t blocks = (icg + block_cols - 1) / block_cols;
  BlockedWeights wt;
  wt.block_stride = taps * ocg * block_cols;
  wt.group_stride = blocks * wt.block_stride;
  wt.data = hwy::AllocateAligned<float>(static_cast<size_t>(
      std::max<int64_t>(1, p.groups * wt.group_stride)));  // every element is written by Transpose
  return wt;
}

// Every (group, block, tap) slab of w transposed by TransposeBlockTap into wt (BlockedLayout's),
// the slabs split over `threads`.
void TransposeWeights(const Conv2dProblem& p, const float* w, int64_t block_cols, int threads,
                      BlockedWeights* wt) {
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group(), taps = p.kh * p.kw;
  const int64_t blocks = (icg + block_cols - 1) / block_cols;
  const int64_t slabs = p.groups * blocks * taps;
  float* out = wt->data.get();
  const int64_t group_stride = wt->group_stride, block_stride = wt->block_stride;
  const auto run_slab = [&](int64_t s) {
    const int64_t tap = s % taps, b = (s / taps) % blocks, g = s / (taps * blocks);
    const int64_t ic0 = b * block_cols;
    TransposeBlockTap(w + (tap * icg + ic0) * p.oc + g * ocg, p.oc, std::min(block_cols, icg - ic0),
                      block_cols, ocg,
                      out + g * group_stride + b * block_stride + tap * ocg * block_cols);
  };
  ParallelFor(threads, slabs, run_slab);
}

// The narrow-groups data kernel's w (conv2d_bwd_data_grouped.cc): blocks of P = lanes / ICg
// consecutive groups; block j, tap t, dy channel oc, lane l at ((j * KH * KW + t) * OCg + oc) *
// lanes + l holds w(t, l % ICg, (j * P + l / ICg) * OCg + oc), 0 past the last group. Every element
// of the blocks is written.
int64_t GroupedBlockStride(const Conv2dProblem& p, int64_t lanes) {
  return p.kh * p.kw * p.oc_per_group() * lanes;
}
int64_t GroupedBlocks(const Conv2dProblem& p, int64_t lanes) {
  const int64_t per_block = lanes / p.ic_per_group();
  return (p.groups + per_block - 1) / per_block;
}
void PackGroupedDataWeights(const Conv2dProblem& p, const float* w, int64_t lanes, float* out) {
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group(), taps = p.kh * p.kw;
  const int64_t per_block = lanes / icg;
  const int64_t blocks = GroupedBlocks(p, lanes);
  for (int64_t j = 0; j < blocks; ++j) {
    for (int64_t t = 0; t < taps; ++t) {
      for (int64_t oc = 0; oc < ocg; ++oc, out += lanes) {
        for (int64_t l = 0; l < lanes; ++l) {
          const int64_t g = j * per_block + l / icg;
          out[l] = g < p.groups ? w[(t * icg + l % icg) * p.oc + g * ocg + oc] : 0.0f;
        }
      }
    }
  }
}

Conv2dBwdWeightsArgs WeightsArgs(const Conv2dProblem& p, const float* x, const float* dy, float* dw,
                                 float* db, int threads) {
  Conv2dBwdWeightsArgs a;
  a.p = &p;
  a.x = x;
  a.dy = dy;
  a.dw = dw;
  a.db = db;
  a.threads = threads;
  return a;
}

}  // namespace

Conv2dBwdDataPlan::Conv2dBwdDataPlan(const Conv2dProblem& p, const float* w, DxUse use,
                                     const float* b, const PostOps& post_ops)
    : p_(p), use_(use), choice_(ChooseConv2dBwdData(p, use)), post_ops_(post_ops) {
  if (b != nullptr) b_.assign(b, b + p.ic);
  if (choice_.weights == DxWeights::kHwio) {  // reads w in place
    if (use != DxUse::kOneShot) w_copy_.assign(w, w + p.w_size());
    w_hwio_ = use != DxUse::kOneShot ? w_copy_.data() : w;
    return;
  }
  if (choice_.weights != DxWeights::kForward && choice_.weights != DxWeights::kShuffle) {
    const int64_t zero_count = std::max<int64_t>(p.oc, choice_.kernel.lanes);
    zeros_ = hwy::AllocateAligned<float>(static_cast<size_t>(zero_count));
    std::fill_n(zeros_.get(), zero_count, 0.0f);
  }
  Pack(w);
}

Conv2dBwdDataPlan::~Conv2dBwdDataPlan() = default;

// w into the layout of the chosen variant (once at creation, again by SetWeights).
void Conv2dBwdDataPlan::Pack(const float* w) {
  const Conv2dBwdDataKernel& kernel = choice_.kernel;
  if (choice_.weights == DxWeights::kShuffle) {
    shuffle_ = std::make_unique<DataShuffle>(p_, w, use_ == DxUse::kOneShot);
    return;
  }
  if (choice_.weights == DxWeights::kForward) {
    w_fwd_.resize(static_cast<size_t>(p_.w_size()));
    DataAsForwardWeights(p_, w, w_fwd_.data());
    const Conv2dProblem f = DataAsForwardProblem(p_, !b_.empty(), post_ops_);
    const float* b = b_.empty() ? nullptr : b_.data();
    if (use_ == DxUse::kOneShot) {
      forward_ = CreateConv2dFwdOneShot(f, w_fwd_.data(), b);  // reads w_fwd_ in place
      return;
    }
    forward_ = CreateConv2dFwd(f, w_fwd_.data(), b);  // packs: w_fwd_ is not needed after
    w_fwd_ = {};
    return;
  }
  if (choice_.weights == DxWeights::kGroupedBlocks) {
    const int64_t block_stride = GroupedBlockStride(p_, kernel.lanes);
    if (!wt_) {
      wt_ = hwy::AllocateAligned<float>(static_cast<size_t>(
          std::max<int64_t>(1, GroupedBlocks(p_, kernel.lanes) * block_stride)));
    }
    PackGroupedDataWeights(p_, w, kernel.lanes, wt_.get());
    wt_layout_ = {wt_.get(), kernel.lanes, 0, block_stride, kernel.lanes};
    return;
  }
  const int64_t block_cols =
      VecsPerBlock(p_.ic_per_group(), kernel.lanes, kernel.max_vecs) * kernel.lanes;
  BlockedWeights wt;
  if (wt_) {  // SetWeights: in place
    wt.data = std::move(wt_);
    wt.group_stride = wt_layout_.group_stride;
    wt.block_stride = wt_layout_.block_stride;
  } else {
    wt = BlockedLayout(p_, block_cols);
  }
  TransposeWeights(p_, w, block_cols, ThreadsFor(p_.flops()), &wt);
  wt_layout_ = {wt.data.get(), block_cols, wt.group_stride, wt.block_stride, block_cols};
  wt_ = std::move(wt.data);
}

void Conv2dBwdDataPlan::SetWeights(const float* w) {
  if (choice_.weights == DxWeights::kHwio) {
    std::copy(w, w + w_copy_.size(), w_copy_.begin());
    return;
  }
  Pack(w);
}

void Conv2dBwdDataPlan::Run(const float* dy, const float* r, float* dx) const {
  if (forward_) return forward_->run(dy, r, dx);
  const DxEpilogue epilogue{b_.empty() ? nullptr : b_.data(), &post_ops_, r, dx};
  if (shuffle_) return shuffle_->Run(dy, epilogue, dx);
  Conv2dBwdDataArgs a;
  a.p = &p_;
  a.dy = dy;
  a.w = wt_layout_;
  a.zeros = zeros_.get();
  a.w_hwio = w_hwio_;
  a.dx = dx;
  a.epilogue = epilogue;
  a.threads = ThreadsFor(p_.flops());
  choice_.kernel.run(a);
}

std::string Conv2dBwdDataPlan::name() const {
  if (forward_) {  // "highway:winograd:AVX3" -> "bwd_data_as_fwd_winograd:AVX3"
    const std::string fwd = forward_->name();
    return std::string(choice_.variant) + "_" + fwd.substr(fwd.find(':') + 1);
  }
  if (shuffle_) return std::string(choice_.variant) + "_" + shuffle_->forward_name();
  return std::string(choice_.variant) + ":" + choice_.kernel.isa;
}

namespace {

// The backward plan: a Conv2dBwdDataPlan for dx, the weights kernel chosen
// once for dw and db.
class Conv2dBwdPlan final : public Conv2dBwdImpl {
 public:
  Conv2dBwdPlan(const Conv2dProblem& p, const float* w, const Conv2dGradsWanted& wanted, DxUse use)
      : p_(p), wanted_(wanted), weights_(ChooseConv2dBwdWeights(p, wanted.dw)) {
    if (wanted.dx) data_.emplace(p, w, use);
  }

  void set_weights(const float* w) override {
    if (data_) data_->SetWeights(w);  // dw and db do not read w
  }

  void run(const float* x, const float* dy, float* dx, float* dw, float* db) const override {
    if (data_) data_->Run(dy, /*r=*/nullptr, dx);
    if (wanted_.dw || wanted_.db)
      weights_.kernel.run(WeightsArgs(p_, x, dy, dw, db, ThreadsFor(p_.flops())));
  }

  std::string name() const override {
    if (!wanted_.dw && !wanted_.db) return "highway:" + data_->name();
    std::string name = "highway:";
    if (data_) name += std::string(data_->variant()) + "+";
    return name + weights_.variant + ":" + weights_.kernel.isa;
  }

 private:
  const Conv2dProblem p_;
  const Conv2dGradsWanted wanted_;
  const Conv2dBwdWeightsChoice weights_;
  std::optional<Conv2dBwdDataPlan> data_;  // when dx is wanted
};

}  // namespace

std::unique_ptr<Conv2dBwdImpl> CreateConv2dBwd(const Conv2dProblem& p, const float* w,
                                               const Conv2dGradsWanted& wanted, DxUse use) {
  return std::make_unique<Conv2dBwdPlan>(p, w, wanted, use);
}

}  // namespace convkit::internal::highway
