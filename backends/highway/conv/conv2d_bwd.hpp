// The Highway backend's backward convolution: what the target-independent driver (conv2d_bwd.cpp)
// shares with the per-target kernels in conv2d_bwd_data.cc and conv2d_bwd_weights.cc.
//
// Backward data reuses the forward implicit-GEMM microkernel (conv2d_igemm-inl.h) and the forward
// weight layout (Conv2dFwdWeights): dx is a forward-style GEMM over dx pixels whose "weights" are
// w with its input and output channels swapped, so each dx element is one gather-sum.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api/src/backend.hpp"
#include "api/src/problem.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"
#include "hwy/aligned_allocator.h"

namespace convkit::internal::highway {

// What the backward-data kernels apply to each dx element as they store it, for the transposed
// convolution (whose y is this dx): b[c] for dx channel c, then the post-ops (residual r, of dx's
// dims, before or after the activation). Empty for conv2d_backward's dx. r may equal dx (each
// vector is read before it is written), never dy.
struct DxEpilogue {
  const float* b = nullptr;           // dx channels (the convolution's IC) floats, or null
  const PostOps* post_ops = nullptr;  // null: none
  const float* r = nullptr;           // null: no residual
  const float* dx = nullptr;          // the dx that r is aligned with (set by the plan's Run)

  bool empty() const {
    return b == nullptr && r == nullptr && (post_ops == nullptr || !post_ops->has_elementwise());
  }
};

// Backward data. w holds w^T in the forward weight layout: for group g, row (kh * KW + kw) * OCg
// + oc, column ic (of the group's ICg); conv2d_bwd.cpp stores each column block contiguously
// (row_stride == block_cols). `zeros` holds at least OCg zero floats (taps that fall
// outside dy read them). Not owned; dy and dx do not overlap.
struct Conv2dBwdDataArgs {
  const Conv2dProblem* p = nullptr;
  const float* dy = nullptr;
  Conv2dFwdWeights w;
  const float* zeros = nullptr;
  const float* w_hwio = nullptr;  // w as given (HWIO), for the narrow-channel path
  float* dx = nullptr;
  DxEpilogue epilogue;
  int threads = 1;  // OpenMP threads; 1 runs on the calling thread with no parallel region
};

// Backward weights (dw, HWIO, overwritten) and bias (db, OC floats, overwritten); either output
// may be null. Not owned; inputs and outputs do not overlap.
struct Conv2dBwdWeightsArgs {
  const Conv2dProblem* p = nullptr;
  const float* x = nullptr;
  const float* dy = nullptr;
  float* dw = nullptr;
  float* db = nullptr;
  int threads = 1;
};

// One target's backward data kernel: entry point, vector width in floats, the widest block (in
// vectors) its microkernel holds, target name. VecsPerBlock applies as in the forward pass.
struct Conv2dBwdDataKernel {
  void (*run)(const Conv2dBwdDataArgs& args) = nullptr;
  int64_t lanes = 1;
  int64_t max_vecs = 1;
  const char* isa = "";
};
struct Conv2dBwdWeightsKernel {
  void (*run)(const Conv2dBwdWeightsArgs& args) = nullptr;
  const char* isa = "";
};

// The chosen target's kernels (one HWY_DYNAMIC_DISPATCH each). The narrow-channel data kernel
// reads w_hwio (not w) and builds its own w^T per call.
Conv2dBwdDataKernel ChooseConv2dBwdDataKernel();
Conv2dBwdDataKernel ChooseConv2dBwdNarrowDataKernel();
Conv2dBwdWeightsKernel ChooseConv2dBwdWeightsKernel();
// Depthwise (groups == IC == OC; w is HWIO {KH, KW, 1, C}, read in place through w_hwio; w and
// zeros are not read): vector-over-channels kernels for dx (conv2d_bwd_depthwise_data.cc) and for
// dw with db (conv2d_bwd_depthwise_weights.cc). The latter requires dw != null and N > 0, writes db
// when db != null, and its bits do not depend on the thread count.
Conv2dBwdDataKernel ChooseConv2dBwdDepthwiseDataKernel();
// Narrow groups (conv2d_bwd_data_grouped.cc; ICg dividing the vector width, OCg <= ICg): reads w
// as PackGroupedDataWeights lays it out (Conv2dBwdDataArgs::w, zeros of at least OC floats).
Conv2dBwdDataKernel ChooseConv2dBwdDataGroupedKernel();
// Narrow groups, dw (+ db) (conv2d_bwd_weights_grouped.cc): OCg dividing the vector width (in
// floats: Conv2dBwdWeightsGroupedLanes, 1 where the kernel does not run), ICg in {1, 2, 4, 8, 16}
// and <= OCg, dw != null, N > 0. Its bits do not depend on the thread count.
Conv2dBwdWeightsKernel ChooseConv2dBwdWeightsGroupedKernel();
int64_t Conv2dBwdWeightsGroupedLanes();
Conv2dBwdWeightsKernel ChooseConv2dBwdDepthwiseWeightsKernel();

// How a backward-data kernel reads w: HWIO in place (Conv2dBwdDataArgs::w_hwio); w^T in column
// blocks (Conv2dBwdDataArgs::w, conv2d_bwd.cpp's BlockedLayout); or in the narrow-groups kernel's
// blocks (Conv2dBwdDataArgs::w, PackGroupedDataWeights). kForward: no backward kernel, dx is a
// forward convolution (DataAsForwardProblem) run by a forward plan of DataAsForwardWeights.
// kShuffle: a DataShuffle (kernel <= stride) with its own forward plan of the 1x1 convolution.
enum class DxWeights { kHwio, kTransposedBlocks, kGroupedBlocks, kForward, kShuffle };

// Backward data of a stride-1 convolution as a forward one (conv2d_bwd_data_as_fwd.cpp): null when
// p qualifies (stride 1, each pad within 0..(K - 1) * dilation), otherwise why not.
const char* RefusesDataAsForward(const Conv2dProblem& p);
// The forward convolution whose y is p's dx given p's dy as x, with the given bias and post-ops.
Conv2dProblem DataAsForwardProblem(const Conv2dProblem& p, bool has_bias, const PostOps& post_ops);
// Its weights (HWIO of that problem: KH x KW x OCg x IC): w flipped in space, each group's input
// and output channels swapped. w_fwd holds KH * KW * ICg * OC floats.
void DataAsForwardWeights(const Conv2dProblem& p, const float* w, float* w_fwd);

// Backward data where the kernel is at most the stride (conv2d_bwd_data_shuffle.cpp): null when p
// qualifies (one group, no dilation, KH <= stride_h and KW <= stride_w, a stride above 1, N > 0),
// otherwise why not.
const char* RefusesDataShuffle(const Conv2dProblem& p);
// One dx row of the shuffle, per target (conv2d_bwd_data_shuffle.cc): see ShuffleRow there.
using ShuffleRowFn = void (*)(const Conv2dProblem& p, const float* cols, int64_t kh,
                              const DxEpilogue& e, float* buf, float* dx_row);
ShuffleRowFn ChooseShuffleRow();
// dx as the 1x1 convolution of dy into KH * KW * IC channels (a forward plan, created with the
// weights rearranged), moved into place by ShuffleRow with the epilogue. Run is const and
// thread-safe; its buffers (one chunk's 1x1 output, a dx row per thread) are thread-local, grown
// on a thread's first run.
class DataShuffle {
 public:
  // one_shot: the 1x1 convolution reads its weights (w transposed, kept here) in place instead
  // of packing them (a one-shot call runs once).
  DataShuffle(const Conv2dProblem& p, const float* w, bool one_shot);
  ~DataShuffle();
  void Run(const float* dy, const DxEpilogue& e, float* dx) const;
  // The forward plan's "<variant>:<isa>", e.g. "igemm:AVX3".
  std::string forward_name() const;

 private:
  Conv2dProblem p_;
  ShuffleRowFn row_;
  int64_t chunk_rows_ = 1;                // dy rows per 1x1 run
  std::vector<float> w_1x1_;              // the 1x1 convolution's HWIO weights (one-shot only)
  std::unique_ptr<Conv2dFwdImpl> chunk_;  // chunk_rows_ rows
  std::unique_ptr<Conv2dFwdImpl> tail_;   // the rest, when N * OH is not a multiple
};

// The backward variant lists (conv2d_bwd_variants.cpp; common/variants.hpp): for dx
//   bwd_data_shuffle, bwd_data_grouped, bwd_data_as_fwd, bwd_data_depthwise, bwd_data_narrow,
//   bwd_data_igemm (accepts every problem);
// for dw and db
//   bwd_weights_depthwise (needs dw wanted and N > 0), bwd_weights_grouped (the same),
//   bwd_weights_gemm (accepts every problem).
// What a backward-data plan is made for. Plans, run many times, keep what they read (a copy of w
// for the kernels that read it in place): kPlan with fixed weights (the transposed convolution's),
// kTrainingPlan for conv2d_backward's plans, whose set_weights typically follows every run, so
// the weights' rewrite for bwd_data_as_fwd is weighed as a one-shot call's. A one-shot call's plan
// (kOneShot) runs once while the caller's w is alive: it reads w in place and takes the forward
// convolution's one-shot path (no weight packing where a variant can read HWIO).
enum class DxUse { kPlan, kTrainingPlan, kOneShot };

struct Conv2dBwdDataChoice {
  const char* variant;
  Conv2dBwdDataKernel kernel;
  DxWeights weights;
};
struct Conv2dBwdWeightsChoice {
  const char* variant;
  Conv2dBwdWeightsKernel kernel;
};
Conv2dBwdDataChoice ChooseConv2dBwdData(const Conv2dProblem& p, DxUse use);
Conv2dBwdWeightsChoice ChooseConv2dBwdWeights(const Conv2dProblem& p, bool dw_wanted);

// Backward data with everything but dy decided once: the variant and target, w in the layout its
// kernel reads (or the forward plan of bwd_data_as_fwd), the zero row, and the epilogue's fixed
// part: b and the post-ops (the transposed convolution's; none for conv2d_backward's dx). The
// backward plan (CreateConv2dBwd) and the transposed convolution's plan keep one. Run is const and
// thread-safe for kPlan; it allocates nothing except on the narrow-channel path (a per-thread dcol
// buffer and w^T), in the depthwise kernel (tap lists), where the forward variant does, and in
// the shuffle on a thread's first run (DataShuffle).
class Conv2dBwdDataPlan {
 public:
  // b: IC floats or null (copied); post_ops: applied after b (and the residual, as they say).
  // kOneShot: w must outlive the plan, which runs once.
  Conv2dBwdDataPlan(const Conv2dProblem& p, const float* w, DxUse use, const float* b = nullptr,
                    const PostOps& post_ops = {});
  ~Conv2dBwdDataPlan();

  // dx = the backward data of dy, then b, the residual r (dx's dims; null: none; may equal dx)
  // and the post-ops on the way out.
  void Run(const float* dy, const float* r, float* dx) const;
  // "<variant>:<isa>", e.g. "bwd_data_igemm:AVX3"; bwd_data_as_fwd names the forward variant,
  // e.g. "bwd_data_as_fwd_winograd:AVX3" (after the Run, for kOneShot).
  std::string name() const;
  const char* variant() const { return choice_.variant; }
  // Replaces w (same dims): the copy and the kernel's layout, in place (bwd_data_as_fwd: a new
  // forward plan). kPlan only; not during a Run.
  void SetWeights(const float* w);

 private:
  void Pack(const float* w);

  Conv2dProblem p_;
  DxUse use_;
  Conv2dBwdDataChoice choice_;
  std::vector<float> b_;  // IC floats, or empty
  PostOps post_ops_;
  std::vector<float> w_copy_;  // HWIO, for the kernels that read it in place (kPlan)
  const float* w_hwio_ = nullptr;
  hwy::AlignedFreeUniquePtr<float[]> wt_;  // w^T in column blocks (generic kernel)
  Conv2dFwdWeights wt_layout_;
  hwy::AlignedFreeUniquePtr<float[]> zeros_;
  std::vector<float> w_fwd_;                // bwd_data_as_fwd, kOneShot: what forward_ reads
  std::unique_ptr<Conv2dFwdImpl> forward_;  // bwd_data_as_fwd
  std::unique_ptr<DataShuffle> shuffle_;    // bwd_data_shuffle
};

// The backend's plan: computes the wanted gradients, each overwritten, dw and db zeros when
// p.n == 0. dx by a Conv2dBwdDataPlan (w copied and transposed at creation and by set_weights); dw
// and db by the weights variant; named "highway:<variants used, joined by +>:<isa>". Runs still
// allocate kernel scratch: the depthwise kernels' per-chunk dw partials and tap lists, the
// narrow-channel data kernel's w^T and tile, the weights kernel's packing panels (README, "Plans
// and allocation").
std::unique_ptr<Conv2dBwdImpl> CreateConv2dBwd(const Conv2dProblem& p, const float* w,
                                               const Conv2dGradsWanted& wanted,
                                               DxUse use = DxUse::kTrainingPlan);

// The transposed convolution's forward plan (conv2d_transpose.cpp): a Conv2dBwdDataPlan of p.conv
// with x as its dy, y as its dx, and bias + activation as its epilogue. Keeps copies of w and b;
// named "highway:<bwd_data variant>:<isa>".
std::unique_ptr<Conv2dFwdImpl> CreateConv2dTransposeFwd(const Conv2dTransposeProblem& p,
                                                        const float* w, const float* b,
                                                        DxUse use = DxUse::kPlan);

}  // namespace convkit::internal::highway
