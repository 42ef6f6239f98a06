// The geometry of the group-copy forward kernel (conv2d_fwd_group_copy.cc): groups of exactly one
// vector of output channels, each group's input copied into a zero-padded block so that a tile's
// pixels lie at fixed offsets from one pointer per output row. Target-independent: the variant's
// choice (conv2d_fwd_grouped.cpp) and the kernel compute it alike.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "api/src/problem.hpp"

namespace convkit::internal::highway {

// Input channels per pixel of the copy: a group's channels are cut into slabs of this many, each
// pixel of a slab kGroupCopySlab floats apart (whatever the group's channel count), so that the
// tile's offsets are compile-time constants.
constexpr int64_t kGroupCopySlab = 16;

// At most this many floats of copy per work item (128 KiB, in L2 beside the weights): the band of
// input rows a work item copies is cut to fit.
constexpr int64_t kGroupCopyFloats = int64_t{32} << 10;

// Stride 1 only (the kernel's choice refuses others). Tiles cover tile_rows output rows x tile_cols
// output columns of one group; each output row is cut into row_tiles tiles of tile_cols columns
// (the last one may run past OW: it reads the copy's zero columns and stores only OW's). The copy
// of one band of input rows holds, per slab and row, `cols` pixels: padded input column q (0 at
// the left padding's first) at pixel q.
struct GroupCopyGeometry {
  int64_t tile_cols = 0;
  int64_t tile_rows = 0;
  int64_t row_tiles = 0;
  int64_t cols = 0;
  int64_t row_floats = 0;   // one input row of one slab: cols * kGroupCopySlab
  int64_t slabs = 0;        // ceil(ICg / kGroupCopySlab)
  int64_t band_tiles = 0;   // tile rows per band (work item); 0: not even one fits
  int64_t band_rows = 0;    // input rows of a band (its last row of tiles may need fewer)
  int64_t copy_floats = 0;  // the copy of one band: slabs x (band_rows + 1 zero row) x row_floats
};

// Output rows per tile for tiles of `cols` columns, in a kernel of at most max_tile pixels and
// max_tile_rows rows a tile: several rows when a row's tile is narrow (enough accumulators to hide
// the FMA latency). The kernel instantiates its tiles by it; the geometry uses it alike.
constexpr int64_t GroupCopyTileRows(int64_t max_tile, int64_t max_tile_rows, int64_t cols) {
  return std::clamp<int64_t>(max_tile / cols, 1, max_tile_rows);
}

// The input rows `tiles` rows of tiles read.
inline double GroupCopyInputRows(const Conv2dProblem& p, int64_t tile_rows, double tiles) {
  return tiles * static_cast<double>(tile_rows) +
         static_cast<double>(p.kh - 1) * static_cast<double>(p.dilation_h);
}

// The geometry for a kernel whose tiles hold at most max_tile pixels, in at most max_tile_rows
// rows (GroupCopyTileRows); band_tiles 0 when one row of
// tiles does not fit kGroupCopyFloats. Computed in double first: any dimension the problem admits
// (pads near 2^62) gives a band that does not fit, never an overflow.
inline GroupCopyGeometry GroupCopyGeometryFor(const Conv2dProblem& p, int64_t max_tile,
                                              int64_t max_tile_rows) {
  GroupCopyGeometry g;
  const double row_tiles = std::ceil(static_cast<double>(p.ow) / static_cast<double>(max_tile));
  const double tile_cols = std::ceil(static_cast<double>(p.ow) / row_tiles);
  const double cols =
      row_tiles * tile_cols + static_cast<double>(p.kw - 1) * static_cast<double>(p.dilation_w);
  const double row_floats = cols * kGroupCopySlab;
  const double slabs = std::ceil(static_cast<double>(p.ic_per_group()) / kGroupCopySlab);
  // tile_cols <= max_tile. Tiles of one row when the output has fewer rows than a tile's.
  const double rows_max = static_cast<double>(
      GroupCopyTileRows(max_tile, max_tile_rows, static_cast<int64_t>(tile_cols)));
  const double tile_rows = static_cast<double>(p.oh) >= rows_max ? rows_max : 1.0;
  const double all_tiles = std::ceil(static_cast<double>(p.oh) / tile_rows);
  const auto floats = [&](double tiles) {
    return slabs * (GroupCopyInputRows(p, static_cast<int64_t>(tile_rows), tiles) + 1) * row_floats;
  };
  if (floats(1) > static_cast<double>(kGroupCopyFloats)) return g;
  // The most rows of tiles whose copy fits, by bisection (floats grows with the tiles).
  double lo = 1, hi = all_tiles;
  while (lo < hi) {
    const double mid = std::ceil((lo + hi) / 2);
    if (floats(mid) <= static_cast<double>(kGroupCopyFloats)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  g.tile_cols = static_cast<int64_t>(tile_cols);
  g.tile_rows = static_cast<int64_t>(tile_rows);
  g.row_tiles = static_cast<int64_t>(row_tiles);
  g.cols = static_cast<int64_t>(cols);
  g.row_floats = static_cast<int64_t>(row_floats);
  g.slabs = static_cast<int64_t>(slabs);
  g.band_tiles = static_cast<int64_t>(lo);
  g.band_rows = static_cast<int64_t>(GroupCopyInputRows(p, g.tile_rows, lo));
  g.copy_floats = static_cast<int64_t>(floats(lo));
  return g;
}

}  // namespace convkit::internal::highway
