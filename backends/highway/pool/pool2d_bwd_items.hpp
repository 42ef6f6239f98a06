// How backward pooling's work is cut into items, shared by its three variants (pool2d_bwd.cc,
// pool2d_bwd_gather.cc), and the stack buffers that bound their channel blocks, which the backward
// variant list (pool2d.cpp) checks. Target-independent: the vector width comes in as an argument.
//
// A work item owns the dx of one image, one block of channels and one band of dx rows: no other
// item writes it, so items run on any threads in any order. Within an item, every dx element
// receives its terms in the reference's (oh, ow) order, so the bits do not depend on the split.
// Each variant's item function is HWY_NOINLINE, called per item from its parallel loop: inlined
// into that loop, the average gather's registers were allocated worse (3 % slower on one thread
// over the pooling set's average backward).
#pragma once

#include <algorithm>
#include <cstdint>

#include "api/src/problem.hpp"
#include "backends/highway/pool/pool2d.hpp"

namespace convkit::internal::highway {

// The band variant's ring of dx rows, in floats: 96 KB on the stack, within the 1 MB L2. It holds
// the KH x IW x C_block partial sums in flight: 3 x 112 x 64 floats (86 KB) for ResNet-50's stem
// pool, so its channels need no split.
constexpr int64_t kRingFloats = 24 * 1024;

// The dx rows the band ring holds: those one window row touches.
inline int64_t RingRows(const Pool2dProblem& p) { return std::min(p.kh, p.ih); }

// The channels the band ring holds for every one of its rows (the band variant needs a vector).
inline int64_t RingChannels(const Pool2dProblem& p) { return kRingFloats / (RingRows(p) * p.iw); }

// The avg_gather variant's ring, in floats: the R = ceil(KH / SH) dy rows a dx row can meet, their
// shares dy / divisor gathered along W (R x IW x C_block floats), and one row of shares (OW x
// C_block), on the stack.
constexpr int64_t kShareFloats = 24 * 1024;

// The most dy rows a dx row can meet that avg_gather takes: windows up to 64 rows high at stride 1;
// taller ones scatter.
constexpr int64_t kMaxShareRows = 64;

// R = ceil(KH / SH), at most OH: the dy rows a dx row can meet.
inline int64_t ShareRingRows(const Pool2dProblem& p) {
  return std::min(p.oh, p.kh / p.stride_h + (p.kh % p.stride_h != 0));  // ceil, no overflow
}

// The part of the avg_gather ring wide channel blocks fill, in floats: 16 KB, so that the ring
// stays in L1 beside the dx rows streaming through it (a global pool's 7 x 1024 channels in one
// block, 28 KB, ran 1.3x slower). Only for blocks of at least kGatherL1Block channels: narrower
// ones would split the pixels' cache lines among items (VGG's pool1 at N = 32, 64 channels in
// blocks of 16: 3.6x slower).
constexpr int64_t kGatherL1Floats = 4 * 1024;
constexpr int64_t kGatherL1Block = 256;

// The avg_gather ring's floats per channel of its block: R rows of IW and one of OW.
inline int64_t GatherRingPixels(const Pool2dProblem& p) {
  return std::max<int64_t>(1, ShareRingRows(p) * p.iw + p.ow);
}

// The channels per item of avg_gather: whole vectors, the ring within kGatherL1Floats if that
// leaves blocks of kGatherL1Block channels, else within kShareFloats; 0 when the windows are too
// tall or not even one vector fits (the list then refuses avg_gather).
inline int64_t GatherBlock(const Pool2dProblem& p, int64_t lanes) {
  if (ShareRingRows(p) > kMaxShareRows) return 0;
  const int64_t pixels = GatherRingPixels(p);
  const int64_t in_l1 = kGatherL1Floats / pixels / lanes * lanes;
  const int64_t fit = in_l1 >= kGatherL1Block ? in_l1 : kShareFloats / pixels / lanes * lanes;
  return std::min(fit, (p.c + lanes - 1) / lanes * lanes);
}

// The channels per item of the band variant: what the ring holds, whole steps of `step` floats
// when it holds one, else whole vectors (>= 1 vector: the list checked RingChannels).
inline int64_t BandBlock(const Pool2dProblem& p, int64_t lanes, int64_t step) {
  int64_t fit = RingChannels(p);
  fit = fit >= step ? fit / step * step : fit / lanes * lanes;
  return std::min({fit, kWideBlock, (p.c + lanes - 1) / lanes * lanes});
}

// The channels per item of the in_place variant: whole steps of `step` floats, only as many blocks
// as it takes to give every thread ~4 items when the batch alone does not.
inline int64_t InPlaceBlock(const Pool2dProblem& p, int threads, int64_t step) {
  const int64_t steps = (p.c + step - 1) / step;
  const int64_t wanted = threads <= 1 ? 1 : (4 * threads + p.n - 1) / p.n;
  const int64_t blocks_wanted = std::max<int64_t>(1, std::min(steps, wanted));
  return std::min(kWideBlock / step, (steps + blocks_wanted - 1) / blocks_wanted) * step;
}

// One work item: dx rows [r0, r1) of image n, channels [c_begin, c_end).
struct BwdItem {
  int64_t n;
  int64_t c_begin, c_end;
  int64_t r0, r1;
};

// The items of one call: images x channel blocks x bands of dx rows, numbered image-major, then
// band, then block. Bands only when the images and channel blocks alone would leave threads idle
// (ResNet-50's stem pool at N = 1): ~4 items per thread, bands at least KH rows high so that a
// window is recomputed by at most two bands (each adds only to its own rows).
class BwdItems {
 public:
  // block_c: channels per item (> 0); threads: those the call runs on.
  BwdItems(const Pool2dProblem& p, int threads, int64_t block_c)
      : p_(p), block_c_(block_c), blocks_((p.c + block_c - 1) / block_c) {
    const int64_t per_band = p.n * blocks_;
    const int64_t wanted = threads <= 1 ? 1 : 4 * threads;
    const int64_t bands = std::min((wanted + per_band - 1) / per_band, p.ih / p.kh);
    band_h_ = per_band < wanted && bands > 1 ? (p.ih + bands - 1) / bands : p.ih;
    bands_ = (p.ih + band_h_ - 1) / band_h_;
  }

  int64_t count() const { return p_.n * blocks_ * bands_; }

  BwdItem operator[](int64_t t) const {
    const int64_t n = t / (blocks_ * bands_), rest = t % (blocks_ * bands_);
    const int64_t c_begin = (rest % blocks_) * block_c_, r0 = (rest / blocks_) * band_h_;
    return {n, c_begin, std::min(p_.c, c_begin + block_c_), r0, std::min(p_.ih, r0 + band_h_)};
  }

 private:
  const Pool2dProblem& p_;
  int64_t block_c_, blocks_;
  int64_t band_h_ = 0, bands_ = 0;
};

}  // namespace convkit::internal::highway
