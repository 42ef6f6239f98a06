"""Conv, ConvTranspose and the pooling ops: one convkit layer per node, created at load.

ONNX weights OIHW become convkit's HWIO; ConvTranspose's IOHW becomes {KH, KW, C_out/g, C_in}.
Pads [top, left, bottom, right] become (top, bottom, left, right); auto_pad is resolved here.
Conv nodes may carry the fusion rewrite's private attributes `_activation` (convkit's spec),
`_linear` ((scale, shift) after the activation), `_residual` ("before"/"after" the activation,
with the residual as input 3), `_x_scale` (with
the per-channel gate as input 4) and `_pieces` (x as channel pieces: input 0, then inputs 5 on).
"""

import numpy as np

from .. import _convkit as ck

from . import layout as L
from . import rewrite
from .adapter import ConvLayer, PoolLayer
from .kernel import Kernel
from .ops import BUILDERS, op

SHAPES = {}  # op type -> function(ctx) returning the output shape without running the op


def shape_function(*names):
    def register(f):
        for name in names:
            SHAPES[name] = f
        return f

    return register


def _pair(ctx, key, default):
    value = ctx.attr(key)
    if value is None:
        return default
    if len(value) != 2:
        raise ctx.fail(f"{key}={list(value)} (supported: 2-D, two values)")
    return tuple(int(v) for v in value)


def _check_2d(ctx):
    shape = ctx.in_shape(0)
    if len(shape) != 4:
        raise ctx.fail(f"input of rank {len(shape)} {tuple(shape)} (supported: 2-D, NCHW input "
                       "of rank 4)")


def _same_pads(in_size, kernel, stride, dilation, upper):
    out = -(-in_size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - in_size, 0)
    small, large = total // 2, total - total // 2
    return (small, large) if upper else (large, small)


def _pads(ctx, kernel, stride, dilation):
    """(top, bottom, left, right) from pads or auto_pad."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    _, _, h, w = ctx.in_shape(0)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        upper = auto_pad == "SAME_UPPER"
        top, bottom = _same_pads(h, kernel[0], stride[0], dilation[0], upper)
        left, right = _same_pads(w, kernel[1], stride[1], dilation[1], upper)
        return top, bottom, left, right
    if auto_pad == "VALID":
        return 0, 0, 0, 0
    if auto_pad != "NOTSET":
        raise ctx.fail(f"auto_pad='{auto_pad}' (supported: NOTSET, SAME_UPPER, SAME_LOWER, "
                       "VALID)")
    pads = ctx.attr("pads") or [0, 0, 0, 0]
    if len(pads) != 4:
        raise ctx.fail(f"pads={list(pads)} (supported: 4 values for 2-D)")
    top, left, bottom, right = (int(p) for p in pads)
    return top, bottom, left, right


def _out_size(in_size, pad, kernel, stride, dilation, ceil_mode=False):
    span = in_size + pad[0] + pad[1] - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= in_size + pad[0]:
        out -= 1  # the last window would start in the bottom/right padding (PyTorch's rule)
    return out


# ------------------------------------------------------------------------------------------------
# Conv.

def _conv_params(ctx):
    _check_2d(ctx)
    w = ctx.require_const(1, "Conv's weights")
    if w.ndim != 4:
        raise ctx.fail(f"weights of rank {w.ndim} (supported: 2-D convolution, OIHW weights)")
    kernel = tuple(w.shape[2:])
    if ctx.attr("kernel_shape") is not None and tuple(ctx.attr("kernel_shape")) != kernel:
        raise ctx.fail(f"kernel_shape {ctx.attr('kernel_shape')} differs from the weights' "
                       f"{kernel}")
    stride = _pair(ctx, "strides", (1, 1))
    dilation = _pair(ctx, "dilations", (1, 1))
    return w, kernel, stride, dilation, _pads(ctx, kernel, stride, dilation), ctx.attr("group", 1)


@shape_function("Conv")
def conv_shape(ctx):
    w, kernel, stride, dilation, pads, _ = _conv_params(ctx)
    n, _, h, wi = ctx.in_shape(0)
    return (n, w.shape[0], _out_size(h, pads[:2], kernel[0], stride[0], dilation[0]),
            _out_size(wi, pads[2:], kernel[1], stride[1], dilation[1]))


def _layer_kernel(ctx, layer):
    in_layouts = [L.NHWC if i in (0, 3, 4) or i >= 5 else L.ANY
                  for i in range(len(ctx.node.inputs))]  # x, the residual, the gate, pieces

    def run(x, w=None, b=None, r=None, x_scale=None, *pieces):
        return layer.run([x, *pieces] if pieces else x, r, x_scale)
    return Kernel(run, in_layouts, [L.NHWC], layer=layer)


@op("Conv")
def build_conv(ctx):
    w, kernel, stride, dilation, pads, groups = _conv_params(ctx)
    b = ctx.require_const(2, "Conv's bias")
    n, _, h, wi = ctx.in_shape(0)
    c = w.shape[1] * groups  # x's channels, also when x comes in pieces
    layer = ConvLayer(w.transpose(2, 3, 1, 0), b, x_shape=(n, h, wi, c), stride=stride,
                      pads=pads, dilation=dilation, groups=groups,
                      activation=ctx.attr("_activation"), linear=ctx.attr("_linear"),
                      residual=ctx.attr("_residual"), backend=ctx.backend, fpmath=ctx.fpmath,
                      reuse_output=ctx.reuse_buffers)
    return _layer_kernel(ctx, layer)


# ------------------------------------------------------------------------------------------------
# ConvTranspose.

def _conv_transpose_params(ctx):
    _check_2d(ctx)
    w = ctx.require_const(1, "ConvTranspose's weights")
    if w.ndim != 4:
        raise ctx.fail(f"weights of rank {w.ndim} (supported: 2-D, IOHW weights)")
    groups = ctx.attr("group", 1)
    kernel = tuple(w.shape[2:])
    stride = _pair(ctx, "strides", (1, 1))
    dilation = _pair(ctx, "dilations", (1, 1))
    output_padding = _pair(ctx, "output_padding", (0, 0))
    _, _, h, wi = ctx.in_shape(0)
    output_shape = ctx.attr("output_shape")
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if output_shape is None:
            output_shape = (h * stride[0], wi * stride[1])
        output_shape = tuple(int(s) for s in output_shape[-2:])
        pads = []
        for axis, size in enumerate((h, wi)):
            total = (stride[axis] * (size - 1) + output_padding[axis]
                     + (kernel[axis] - 1) * dilation[axis] + 1 - output_shape[axis])
            if total < 0:
                raise ctx.fail(f"output_shape {output_shape} larger than the full output "
                               "(supported: output_shape reachable by cropping)")
            small, large = total // 2, total - total // 2
            pads += [small, large] if auto_pad == "SAME_UPPER" else [large, small]
        pads = tuple(pads)
    elif auto_pad == "VALID":
        pads = (0, 0, 0, 0)
    elif auto_pad == "NOTSET":
        top, left, bottom, right = (int(p) for p in (ctx.attr("pads") or [0, 0, 0, 0]))
        pads = (top, bottom, left, right)
    else:
        raise ctx.fail(f"auto_pad='{auto_pad}' (supported: NOTSET, SAME_UPPER, SAME_LOWER, "
                       "VALID)")
    return w, kernel, stride, dilation, pads, groups, output_padding


@shape_function("ConvTranspose")
def conv_transpose_shape(ctx):
    w, kernel, stride, dilation, pads, groups, output_padding = _conv_transpose_params(ctx)
    n, _, h, wi = ctx.in_shape(0)
    sizes = [(size - 1) * stride[a] - pads[2 * a] - pads[2 * a + 1]
             + dilation[a] * (kernel[a] - 1) + output_padding[a] + 1
             for a, size in enumerate((h, wi))]
    return (n, w.shape[1] * groups, sizes[0], sizes[1])


@op("ConvTranspose")
def build_conv_transpose(ctx):
    w, kernel, stride, dilation, pads, groups, output_padding = _conv_transpose_params(ctx)
    b = ctx.require_const(2, "ConvTranspose's bias")
    n, c, h, wi = ctx.in_shape(0)
    layer = ConvLayer(w.transpose(2, 3, 1, 0), b, x_shape=(n, h, wi, c), stride=stride,
                      pads=pads, dilation=dilation, groups=groups, transpose=True,
                      output_padding=output_padding, activation=ctx.attr("_activation"),
                      linear=ctx.attr("_linear"), residual=ctx.attr("_residual"),
                      backend=ctx.backend, fpmath=ctx.fpmath,
                      reuse_output=ctx.reuse_buffers)
    return _layer_kernel(ctx, layer)


# ------------------------------------------------------------------------------------------------
# Pooling.

def _pool_params(ctx):
    _check_2d(ctx)
    name = ctx.node.op
    _, _, h, w = ctx.in_shape(0)
    if name.startswith("Global"):
        return (h, w), (1, 1), (0, 0, 0, 0), False, False
    if _pair(ctx, "dilations", (1, 1)) != (1, 1):
        raise ctx.fail(f"dilations={ctx.attr('dilations')} (supported: 1)")
    window = _pair(ctx, "kernel_shape", None)
    if window is None:
        raise ctx.fail("no kernel_shape")
    stride = _pair(ctx, "strides", (1, 1))
    pads = _pads(ctx, window, stride, (1, 1))
    return (window, stride, pads, bool(ctx.attr("ceil_mode", 0)),
            bool(ctx.attr("count_include_pad", 0)))


@shape_function("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
def pool_shape(ctx):
    window, stride, pads, ceil_mode, _ = _pool_params(ctx)
    n, c, h, w = ctx.in_shape(0)
    return (n, c, _out_size(h, pads[:2], window[0], stride[0], 1, ceil_mode),
            _out_size(w, pads[2:], window[1], stride[1], 1, ceil_mode))


@op("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
def build_pool(ctx):
    if ctx.node.op == "MaxPool" and len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        return _max_pool_with_indices(ctx)
    window, stride, pads, ceil_mode, count_include_pad = _pool_params(ctx)
    n, c, h, w = ctx.in_shape(0)
    mode = "max" if "Max" in ctx.node.op else "average"
    layer = PoolLayer(x_shape=(n, h, w, c), window=window, stride=stride, pads=pads, mode=mode,
                      ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                      backend=ctx.backend, reuse_output=ctx.reuse_buffers)
    return Kernel(lambda x: layer.run(x), [L.NHWC], [L.NHWC], layer=layer)



def _max_pool_with_indices(ctx):
    """MaxPool's values and Indices (for MaxUnpool: SegNet, ENet) in numpy on NCHW data: each
    window's first largest element and its index into the flattened input (storage_order 0: row
    major, 1: column major over H and W)."""
    window, stride, pads, ceil_mode, _ = _pool_params(ctx)
    column_major = bool(ctx.attr("storage_order", 0))
    n, c, h, w = ctx.in_shape(0)
    oh = _out_size(h, pads[:2], window[0], stride[0], 1, ceil_mode)
    ow = _out_size(w, pads[2:], window[1], stride[1], 1, ceil_mode)
    top, left = pads[0], pads[2]
    bottom = max(0, (oh - 1) * stride[0] + window[0] - h - top)
    right = max(0, (ow - 1) * stride[1] + window[1] - w - left)
    kh, kw = window
    rows = np.arange(oh).reshape(oh, 1) * stride[0] - top
    cols = np.arange(ow).reshape(1, ow) * stride[1] - left
    planes = (np.arange(n).reshape(n, 1, 1, 1) * c + np.arange(c).reshape(1, c, 1, 1)) * (h * w)

    def run(x):
        padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)),
                        constant_values=-np.inf)
        windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=(2, 3))
        windows = windows[:, :, ::stride[0], ::stride[1]][:, :, :oh, :ow].reshape(n, c, oh, ow, -1)
        best = np.argmax(windows, axis=-1)
        values = np.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
        hh, ww = rows + best // kw, cols + best % kw
        flat = hh * w + ww if not column_major else ww * h + hh
        return values.astype(x.dtype), (planes + flat).astype(np.int64)

    return Kernel(run, [L.PLAIN], [L.PLAIN, L.PLAIN])


@op("MaxUnpool")
def build_max_unpool(ctx):
    """MaxPool's inverse: zeros of the unpooled shape (output_shape's, when given) with each value
    put back at its index into it, as ONNX Runtime and PyTorch's max_unpool2d (onnx.reference
    scatters into the inferred shape and pads that instead)."""
    _check_2d(ctx)
    n, c, h, w = ctx.in_shape(0)
    window = _pair(ctx, "kernel_shape", None)
    stride = _pair(ctx, "strides", (1, 1))
    pads = ctx.attr("pads") or [0, 0, 0, 0]
    if ctx.has_input(2):
        shape = tuple(int(d) for d in ctx.require_const(2, "MaxUnpool's output_shape"))
    else:
        shape = (n, c, (h - 1) * stride[0] + window[0] - pads[0] - pads[2],
                 (w - 1) * stride[1] + window[1] - pads[1] - pads[3])

    size = int(np.prod(shape))

    def run(x, indices, *_):
        flat = indices.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= size):
            raise ck.Error(f"indices: expected values in [0, {size}) (the unpooled shape "
                           f"{shape}), given {flat.min()} .. {flat.max()}")
        y = np.zeros(size, x.dtype)
        y[flat] = x.reshape(-1)
        return y.reshape(shape)

    return Kernel(run, [L.PLAIN] * len(ctx.node.inputs), [L.PLAIN])


# ------------------------------------------------------------------------------------------------
# Gemm and MatMul by a constant: a 1x1 convolution, so fully connected layers run in convkit
# (and on its threads) rather than in numpy's BLAS. Other forms stay numpy's (ops.py).

_NUMPY_GEMM = BUILDERS["Gemm"]
_NUMPY_MATMUL = BUILDERS["MatMul"]


def _dense_kernel(ctx, w_km, bias):
    """y = post-ops(a @ w_km + bias) for runtime a (..., K), as a 1x1 convolution of
    (1, rows, 1, K), with the fusion rewrite's `_activation`, `_linear` and `_residual` (the
    residual, of y's shape, as input 3)."""
    a_shape = ctx.in_shape(0)
    k, m = w_km.shape
    rows = int(np.prod(a_shape[:-1], dtype=np.int64))
    layer = ConvLayer(w_km.reshape(1, 1, k, m), bias, x_shape=(1, rows, 1, k), stride=(1, 1),
                      pads=(0, 0, 0, 0), dilation=(1, 1), groups=1,
                      activation=ctx.attr("_activation"), linear=ctx.attr("_linear"),
                      residual=ctx.attr("_residual"), backend=ctx.backend, fpmath=ctx.fpmath)
    out_shape = tuple(a_shape[:-1]) + (m,)

    def run(a, w=None, b=None, r=None):
        r = None if r is None else r.reshape(1, rows, 1, m)
        return layer.run(a.reshape(1, rows, 1, k), r).reshape(out_shape)

    layouts = [L.PLAIN, L.ANY, L.ANY, L.PLAIN]  # a, w, the bias, the residual
    return Kernel(run, layouts[:len(ctx.node.inputs)], [L.PLAIN], layer=layer)


@op("Gemm")
def build_gemm(ctx):
    if not rewrite.is_dense_layer(ctx.graph, ctx.node):
        return _NUMPY_GEMM(ctx)
    b, c = ctx.const(1), ctx.const(2)
    w = (b.T if ctx.attr("transB", 0) else b).astype(np.float64) * ctx.attr("alpha", 1.0)
    bias = None
    if c is not None:
        bias = np.broadcast_to(c.reshape(-1).astype(np.float64) * ctx.attr("beta", 1.0),
                               (w.shape[1],)).astype(np.float32)
    return _dense_kernel(ctx, w.astype(np.float32), bias)


@op("MatMul")
def build_matmul(ctx):
    if not rewrite.is_dense_layer(ctx.graph, ctx.node):
        return _NUMPY_MATMUL(ctx)
    bias = ctx.const(2) if ctx.attr("_bias") else None
    return _dense_kernel(ctx, ctx.const(1).astype(np.float32), bias)
