"""Resampling: Resize and Upsample (nearest, linear and cubic, separable, one axis at a time, in
any layout) and GridSample (2-D, NCHW)."""

import numpy as np

from .. import _convkit as ck
from . import layout as L
from .kernel import Kernel
from .ops import _Output, op

_COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                     "asymmetric")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coordinates(out_size, in_size, scale, mode):
    """Float64 source coordinate of each output index along one axis (ONNX's formulas)."""
    x = np.arange(out_size, dtype=np.float64)
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":
        return x * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros_like(x)
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_size > 1 else np.full_like(x, -0.5)
    if mode == "half_pixel_symmetric":
        adjustment = out_size / (scale * in_size)
        offset = in_size / 2 * (1 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    return (x + 0.5) / scale - 0.5  # half_pixel


def nearest_indices(coords, in_size, mode):
    if mode == "round_prefer_floor":
        index = np.ceil(coords - 0.5)
    elif mode == "round_prefer_ceil":
        index = np.floor(coords + 0.5)
    elif mode == "floor":
        index = np.floor(coords)
    else:
        index = np.ceil(coords)
    return np.clip(index, 0, in_size - 1).astype(np.intp)


def linear_taps(coords, in_size):
    """(i0, i1, weight of i1) with edge clamping, as ONNX Runtime and onnx.reference do."""
    coords = np.clip(coords, 0, in_size - 1)
    i0 = np.floor(coords).astype(np.intp)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (coords - i0).astype(np.float32)


def cubic_taps(coords, in_size, a, exclude_outside):
    """(indices, weights), each (out, 4): the cubic convolution's taps x0 - 1 .. x0 + 2 around
    each coordinate (x0 = ceil(x) - 1, so t = x - x0 lies in (0, 1], as onnx.reference picks
    them), indices clamped to the edge; with exclude_outside the taps past an edge weigh 0 and
    the rest are renormalised."""
    x0 = np.ceil(coords) - 1
    t = coords - x0
    d = np.stack([t + 1, t, 1 - t, 2 - t], axis=1)  # distance of each tap
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    weights = np.where(d <= 1, near, far)
    taps = x0.astype(np.intp)[:, None] + np.arange(-1, 3)[None, :]
    if exclude_outside:
        weights = np.where((taps < 0) | (taps >= in_size), 0, weights)
        weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(taps, 0, in_size - 1), weights.astype(np.float32)


def _resize_params(ctx):
    """(mode, coordinate mode, nearest mode, scales per logical axis, sizes per logical axis)."""
    node = ctx.node
    shape = ctx.in_shape(0)
    rank = len(shape)
    if node.op == "Upsample":
        mode = ctx.attr("mode", "nearest")
        coordinate_mode, nearest_mode = "asymmetric", "floor"
        scales = ctx.attr("scales") if ctx.opset < 9 else ctx.require_const(1, "the scales")
        sizes = None
    else:
        mode = ctx.attr("mode", "nearest")
        coordinate_mode = ctx.attr("coordinate_transformation_mode",
                                   "asymmetric" if ctx.opset < 11 else "half_pixel")
        nearest_mode = ctx.attr("nearest_mode", "round_prefer_floor")
        if ctx.opset < 11:
            scales, sizes = ctx.require_const(1, "the scales"), None
        else:
            scales = ctx.require_const(2, "the scales") if ctx.has_input(2) else None
            sizes = ctx.require_const(3, "the sizes") if ctx.has_input(3) else None
        if ctx.attr("antialias", 0):
            raise ctx.fail(f"antialias={ctx.attr('antialias')} (supported: 0)")
        if ctx.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise ctx.fail("keep_aspect_ratio_policy other than 'stretch'")
    if mode == "bilinear":
        mode = "linear"
    if mode not in ("nearest", "linear", "cubic"):
        raise ctx.fail(f"mode '{mode}' (supported: nearest, linear, cubic)")
    if coordinate_mode not in _COORDINATE_MODES:
        raise ctx.fail(f"coordinate_transformation_mode '{coordinate_mode}' (supported: "
                       f"{', '.join(_COORDINATE_MODES)})")
    if mode == "nearest" and nearest_mode not in _NEAREST_MODES:
        raise ctx.fail(f"nearest_mode '{nearest_mode}' (supported: {', '.join(_NEAREST_MODES)})")
    axes = ctx.attr("axes")
    axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
    full_scales = [1.0] * rank
    full_sizes = list(shape)
    if sizes is not None and sizes.size:
        for axis, size in zip(axes, sizes):
            full_sizes[axis] = int(size)
            full_scales[axis] = int(size) / shape[axis]
    elif scales is not None and len(scales):
        for axis, scale in zip(axes, scales):
            full_scales[axis] = float(scale)
            full_sizes[axis] = int(np.floor(shape[axis] * float(scale)))
    else:
        raise ctx.fail("neither scales nor sizes given")
    return mode, coordinate_mode, nearest_mode, full_scales, full_sizes


@op("Resize", "Upsample")
def build_resize(ctx):
    mode, coordinate_mode, nearest_mode, scales, sizes = _resize_params(ctx)
    shape = ctx.in_shape(0)
    rank = len(shape)
    layout = L.NHWC if ctx.in_layouts[0] == L.NHWC else L.PLAIN
    steps = []  # (physical axis, nearest indices) or (physical axis, (i0, i1, weight))
    for axis in range(rank):
        if sizes[axis] == shape[axis] and scales[axis] == 1.0:
            continue
        coords = source_coordinates(sizes[axis], shape[axis], scales[axis], coordinate_mode)
        phys = L.physical_axis(axis, rank, layout)
        if mode == "nearest":
            steps.append((phys, nearest_indices(coords, shape[axis], nearest_mode)))
        elif mode == "linear":
            steps.append((phys, linear_taps(coords, shape[axis])))
        else:
            steps.append((phys, cubic_taps(coords, shape[axis], ctx.attr("cubic_coeff_a", -0.75),
                                           ctx.attr("exclude_outside", 0))))

    if mode == "nearest" and layout == L.NHWC and {axis for axis, _ in steps} <= {1, 2}:
        output = _Output(ctx.reuse_buffers)
        return Kernel(_gather_pixels(steps, shape, sizes, output),
                      [layout] + [L.ANY] * (len(ctx.node.inputs) - 1), [layout], output=output,
                      fresh=True)

    def run(x, *_):
        for axis, taps in steps:
            view = [1] * x.ndim
            view[axis] = -1
            if isinstance(taps, tuple) and len(taps) == 2:  # cubic
                indices, weights = taps
                y = np.take(x, indices[:, 0], axis=axis) * weights[:, 0].reshape(view)
                for k in range(1, 4):
                    y += np.take(x, indices[:, k], axis=axis) * weights[:, k].reshape(view)
                x = y.astype(x.dtype, copy=False)
            elif isinstance(taps, tuple):
                i0, i1, weight = taps
                a = np.take(x, i0, axis=axis)
                b = np.take(x, i1, axis=axis)
                b -= a
                b *= weight.reshape(view)
                x = a + b
            else:
                x = np.take(x, taps, axis=axis)
        return x

    return Kernel(run, [layout] + [L.ANY] * (len(ctx.node.inputs) - 1), [layout])


def _gather_pixels(steps, shape, sizes, output):
    """Nearest resizing of NHWC data over H and W in one pass on convkit's threads (numpy's take
    along H, then W: 2.5 ms for DBNet's 96 x 80 x 80 -> 160 x 160)."""
    index = {axis: np.ascontiguousarray(taps, dtype=np.int64) for axis, taps in steps}
    rows = index.get(1, np.arange(shape[2], dtype=np.int64))
    cols = index.get(2, np.arange(shape[3], dtype=np.int64))

    def run(x, *_):
        if x.dtype != np.float32:
            return x[:, rows][:, :, cols]
        y = output.get((x.shape[0], sizes[2], sizes[3], x.shape[3]))
        ck._gather_pixels(np.ascontiguousarray(x), rows, cols, y)
        return y

    return run


def _reflect(v, lo, hi):
    """v reflected at lo and hi until it lies between them (GridSample's reflection padding)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(v, lo)
    below, above = v < lo, v > hi
    dx = np.where(below, lo - v, v - hi)
    turns = np.floor(dx / span)
    r = dx - turns * span
    even = turns % 2 == 0
    return np.where(below, np.where(even, lo + r, hi - r),
                    np.where(above, np.where(even, hi - r, lo + r), v))


@op("GridSample")
def build_grid_sample(ctx):
    """x (N, C, H, W) sampled at grid (N, H_out, W_out, 2) of normalised (x, y) coordinates:
    nearest (ties to even) or bilinear, zeros, border or reflection padding, as onnx.reference
    and PyTorch's grid_sample (spatial transformers, flow warping)."""
    mode = ctx.attr("mode", "bilinear" if ctx.opset < 20 else "linear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    padding = ctx.attr("padding_mode", "zeros")
    align = bool(ctx.attr("align_corners", 0))
    if len(ctx.in_shape(0)) != 4:
        raise ctx.fail(f"input of rank {len(ctx.in_shape(0))} (supported: 4, NCHW)")
    if mode not in ("linear", "nearest") or padding not in ("zeros", "border", "reflection"):
        raise ctx.fail(f"mode '{mode}', padding_mode '{padding}' (supported: nearest, linear; "
                       "zeros, border, reflection)")

    def bounds(size):
        return (0.0, size - 1.0) if align else (-0.5, size - 0.5)

    def coordinates(g, size):  # unnormalised, then moved inside for border / reflection
        v = (g + 1) / 2 * (size - 1) if align else ((g + 1) * size - 1) / 2
        v = v.astype(np.float32).astype(np.float64)
        if mode == "nearest":
            v = np.rint(v)
        lo, hi = bounds(size)
        if padding == "border":
            v = np.where((v < lo) | (v > hi), np.clip(v, 0, size - 1), v)
        elif padding == "reflection":
            v = _reflect(v, lo, hi)
        return v

    def index(i, size):  # (index to read, whether it is inside) per padding mode
        if padding == "reflection":
            i = np.trunc(_reflect(i.astype(np.float64), *bounds(size)))
        inside = (i >= 0) & (i < size)
        return np.clip(i, 0, size - 1).astype(np.intp), inside | (padding != "zeros")

    def run(x, grid):
        n, c, h, w = x.shape
        px = coordinates(grid[..., 0].astype(np.float64), w)
        py = coordinates(grid[..., 1].astype(np.float64), h)
        pixels = x.transpose(0, 2, 3, 1)
        images = np.arange(n).reshape(n, 1, 1)

        def at(yi, xi):
            (ys, y_in), (xs, x_in) = index(yi, h), index(xi, w)
            return pixels[images, ys, xs] * (y_in & x_in)[..., None].astype(x.dtype)

        if mode == "nearest":
            y = at(py, px)
        else:
            x0, y0 = np.floor(px), np.floor(py)
            wx1, wy1 = (px - x0).astype(x.dtype)[..., None], (py - y0).astype(x.dtype)[..., None]
            wx0, wy0 = 1 - wx1, 1 - wy1
            top = wx0 * at(y0, x0) + wx1 * at(y0, x0 + 1)  # along W first, as the reference
            bottom = wx0 * at(y0 + 1, x0) + wx1 * at(y0 + 1, x0 + 1)
            y = wy0 * top + wy1 * bottom
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2)).astype(x.dtype, copy=False)

    return Kernel(run, [L.PLAIN, L.PLAIN], [L.PLAIN])
