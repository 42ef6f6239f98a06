// Tap tables for the implicit GEMM's plans (conv2d_fwd_taps.hpp).
#include "backends/highway/conv/conv2d_fwd_taps.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backends/highway/conv/conv2d_fwd_kernel.hpp"

namespace convkit::internal::highway {
namespace {

// Tap tables are for small-channel problems: with ICg <= 32 a tap is only a few FMA steps per
// pixel, so computing its offsets (PixelTile) costs as much as the FMAs. Larger ICg and pointwise
// GEMMs (no index arithmetic) keep the kernel's own path; so do tables past 4 MiB. With groups
// the offsets are group 0's (the kernel adds its group's first channel), and taps merge only
// where one group has all the channels (a group's slices of x are not consecutive across taps). A
// table is read once per run, front to back (about 100 bytes per tile of ~650 FMA cycles), so its
// size matters little: 224x224 3 -> 64 3x3 ran 1.1x faster with its ~1 MiB table than through
// PixelTile, 7x7/2 3 -> 64 1.05x.
constexpr int64_t kTapTableMaxChannels = 32;
// With groups, only up to half that: ResNeXt's 32 x 16-channel 3x3 ran 1.15x faster with a table,
// its 32 x 32-channel 3x3 at 7x7 0.85x (a table fixes the tile height: no shorter last tile).
constexpr int64_t kGroupedTapTableMaxChannels = 16;
constexpr int64_t kTapTableMaxInts = int64_t{1} << 20;

}  // namespace

bool WantsTapTable(const Conv2dProblem& p, int64_t rows) {
  if (rows <= 0) return false;
  if (p.ic_per_group() > (p.groups == 1 ? kTapTableMaxChannels : kGroupedTapTableMaxChannels)) {
    return false;
  }
  if (IsPointwise(p)) return false;  // its pixels need no offsets (and run_scaled has no table)
  if (p.n * p.ih * p.iw * p.ic >= (int64_t{1} << 31)) return false;
  const int64_t tiles = (p.n * p.oh * p.ow + rows - 1) / rows;
  // With dense columns the taps of a kernel row merge into one entry, except near the padding.
  const int64_t entries = p.dilation_w == 1 ? std::min(2 * p.kh, p.kh * p.kw) : p.kh * p.kw;
  return tiles * entries * (Conv2dFwdTaps::kEntryHeader + rows) <= kTapTableMaxInts;
}

// Builds the table for tiles of `rows` pixels, merging consecutive taps whose input is consecutive
// for every pixel (or in the padding for every pixel reading it).
TapTable BuildTapTable(const Conv2dProblem& p, int64_t rows) {
  TapTable t;
  t.rows = rows;
  const int64_t m_end = p.n * p.oh * p.ow;
  const int64_t tiles = (m_end + rows - 1) / rows;
  const int64_t entry_ints = Conv2dFwdTaps::kEntryHeader + rows;
  const int64_t icg = p.ic_per_group();
  std::vector<int64_t> off(static_cast<size_t>(rows));
  t.tile_begin.push_back(0);
  for (int64_t tile = 0; tile < tiles; ++tile) {
    int64_t open = -1;  // index of the entry the next tap may extend, or -1
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        bool any = false;
        for (int64_t i = 0; i < rows; ++i) {
          const int64_t m = std::min(tile * rows + i, m_end - 1);
          const int64_t n = m / (p.oh * p.ow);
          const int64_t ih = (m / p.ow) % p.oh * p.stride_h - p.pad.top + kh * p.dilation_h;
          const int64_t iw = m % p.ow * p.stride_w - p.pad.left + kw * p.dilation_w;
          const bool inside = ih >= 0 && ih < p.ih && iw >= 0 && iw < p.iw;
          off[i] = inside ? ((n * p.ih + ih) * p.iw + iw) * p.ic : -1;
          any |= inside;
        }
        if (!any) {  // skipped; the next tap's weight rows do not follow the open entry's
          open = -1;
          continue;
        }
        if (open >= 0) {
          const int32_t* e = t.entries.data() + open * entry_ints;
          const int64_t steps = e[1];
          bool extends = true;
          for (int64_t i = 0; i < rows && extends; ++i) {
            const int64_t prev = e[Conv2dFwdTaps::kEntryHeader + i];
            extends = prev < 0 ? off[i] < 0 : off[i] == prev + steps;
          }
          if (extends) {
            t.entries[static_cast<size_t>(open * entry_ints + 1)] += static_cast<int32_t>(icg);
            t.zeros = std::max(t.zeros, steps + icg);
            continue;
          }
        }
        open = static_cast<int64_t>(t.entries.size()) / entry_ints;
        t.entries.push_back(static_cast<int32_t>((kh * p.kw + kw) * icg));
        t.entries.push_back(static_cast<int32_t>(icg));
        for (int64_t i = 0; i < rows; ++i) t.entries.push_back(static_cast<int32_t>(off[i]));
        t.zeros = std::max(t.zeros, icg);
      }
    }
    t.tile_begin.push_back(static_cast<int32_t>(t.entries.size() / entry_ints));
  }
  return t;
}

}  // namespace convkit::internal::highway
