"""The numpy ops ("glue"): one builder per ONNX op type, working on NHWC data where it can.

A builder takes a kernel.Context and returns a kernel.Kernel. Builders are called twice: once by
`infer` with every input PLAIN (to fold constants and learn shapes) and once by the runner with the
real layouts. Anything a builder cannot run exactly raises UnsupportedError naming the node.
Here: elementwise, layout and shape ops, softmax, reductions, Gemm/MatMul; normalisations are in
norms.py, gathers and scatters in indexing.py, resampling in resize.py, the convkit layers in
layers.py.
"""

import os

import numpy as np

from .. import _convkit as ck
from . import layout as L
from . import numerics
from .adapter import PoolLayer
from .kernel import Kernel

BUILDERS = {}


def op(*names):
    def register(builder):
        for name in names:
            BUILDERS[name] = builder
        return builder

    return register


def _normalize_axis(axis, rank):
    return axis + rank if axis < 0 else axis


def _follow_layout(ctx, out_rank=None):
    """NHWC if a runtime input is NHWC and the output (of the inputs' broadcast rank unless
    given) is 4-D, else PLAIN."""
    if not ctx.runtime_nhwc:
        return L.PLAIN
    if out_rank is None:
        out_rank = max(len(ctx.in_shape(i)) for i in range(len(ctx.node.inputs))
                       if ctx.has_input(i))
    return L.NHWC if out_rank == 4 else L.PLAIN


class _Output:
    """The float32 array a glue step writes: with `reuse`, the same array every run (no
    allocation, no page faults; runner.Model copies graph outputs, and may set `out` to memory
    it shares between steps), else a new one."""

    def __init__(self, reuse):
        self.reuse = reuse
        self.out = None

    def get(self, shape):
        if self.out is not None and self.out.shape == tuple(shape):
            return self.out
        array = L.aligned_empty(shape)
        self.out = array if self.reuse else None
        return array


def _onnx_dtype(ctx, elem_type):
    """numpy's dtype for a Cast's target type. 8-bit floats only without saturation: ONNX's
    default saturate=1 clamps to the largest finite value where numpy gives inf or NaN."""
    import onnx

    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        raise ctx.fail(f"unsupported element type {elem_type}") from None
    if dtype.name.startswith("float8") and (ctx.attr("saturate", 1) or "e8m0" in dtype.name):
        raise ctx.fail(f"a cast to {dtype.name} with saturate={ctx.attr('saturate', 1)} "
                       "(supported: 8-bit floats with saturate=0, except e8m0)")
    return dtype


# ------------------------------------------------------------------------------------------------
# Elementwise.

def _clip_bounds(ctx):
    if ctx.opset < 11:
        return ctx.attr("min", -np.inf), ctx.attr("max", np.inf)
    lo = ctx.require_const(1, "Clip's min")
    hi = ctx.require_const(2, "Clip's max")
    return (None if lo is None else lo.item()), (None if hi is None else hi.item())


def _unary_fn(ctx):
    name = ctx.node.op
    simple = {
        "Relu": numerics.relu, "Sigmoid": numerics.sigmoid, "Tanh": np.tanh, "Exp": np.exp,
        "Log": np.log, "Sqrt": np.sqrt, "Neg": np.negative, "Abs": np.abs,
        "Reciprocal": np.reciprocal, "Floor": np.floor, "Ceil": np.ceil, "Round": np.round,
        "Not": np.logical_not, "Sign": np.sign, "Sin": np.sin, "Cos": np.cos,
        "HardSwish": numerics.hardswish, "Identity": lambda x: x,
        "Erf": lambda x: numerics.erf(x).astype(x.dtype),
        "Softplus": lambda x: np.logaddexp(0, x).astype(x.dtype),
        "Mish": lambda x: (x * np.tanh(np.logaddexp(0, x))).astype(x.dtype),
        "Softsign": lambda x: x / (1 + np.abs(x)),
        "IsNaN": np.isnan, "Tan": np.tan, "Atan": np.arctan, "Asin": np.arcsin,
        "Acos": np.arccos, "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh,
        "Acosh": np.arccosh, "Atanh": np.arctanh,
    }
    if name in simple:
        return simple[name]
    if name == "Clip":
        lo, hi = _clip_bounds(ctx)
        return lambda x: numerics.clip(x, lo, hi)
    if name == "LeakyRelu":
        alpha = ctx.attr("alpha", 0.01)
        return lambda x: numerics.leaky_relu(x, alpha)
    if name == "HardSigmoid":
        alpha, beta = ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5)
        return lambda x: numerics.hardsigmoid(x, alpha, beta)
    if name == "Elu":
        alpha = ctx.attr("alpha", 1.0)
        return lambda x: np.where(x > 0, x, alpha * np.expm1(x)).astype(x.dtype)
    if name == "Gelu":
        approximate = ctx.attr("approximate", "none")
        if approximate not in ("none", "tanh"):
            raise ctx.fail(f"approximate='{approximate}' (supported: 'none', 'tanh')")
        return numerics.gelu if approximate == "none" else numerics.gelu_tanh
    if name == "Cast":
        dtype = _onnx_dtype(ctx, ctx.attr("to"))
        return lambda x: x.astype(dtype)
    if name == "Selu":
        alpha, gamma = ctx.attr("alpha", 1.67326319217681884765625), ctx.attr(
            "gamma", 1.05070102214813232421875)
        return lambda x: (gamma * np.where(x > 0, x, alpha * np.expm1(x))).astype(x.dtype)
    if name == "Celu":
        alpha = ctx.attr("alpha", 1.0)
        return lambda x: (np.maximum(x, 0) + np.minimum(0, alpha * np.expm1(x / alpha))).astype(
            x.dtype)
    if name == "ThresholdedRelu":
        alpha = ctx.attr("alpha", 1.0)
        return lambda x: np.where(x > alpha, x, 0).astype(x.dtype)
    if name == "Shrink":
        bias, lambd = ctx.attr("bias", 0.0), ctx.attr("lambd", 0.5)
        return lambda x: np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0)).astype(
            x.dtype)
    if name == "Swish":
        alpha = ctx.attr("alpha", 1.0)
        return lambda x: x * numerics.sigmoid((x * np.float32(alpha)).astype(x.dtype))
    if name == "IsInf":
        positive, negative = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
        return lambda x: np.isinf(x) & (((x > 0) & bool(positive)) | ((x < 0) & bool(negative)))
    raise ctx.fail("no unary function")  # unreachable: only registered names arrive


# Standalone activations convkit's epilogue computes (within DESIGN §4's 4 ulp, NaN kept).
_CONVKIT_ACTIVATIONS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish"}


def _activation_plan(ctx):
    """act(x) through convkit for a float32 tensor of at least 16 Ki elements: a 1x1 depthwise
    Conv2d plan with unit weights (x * 1 is exact) over x seen as (1, H, W, C), so the
    fused epilogue runs it in one pass on convkit's threads (numpy's sigmoid: four passes on one
    thread, a detector's class map 0.14 ms). None where that does not apply."""
    activation = _CONVKIT_ACTIVATIONS.get(ctx.node.op)
    size = int(np.prod(ctx.in_shape(0), dtype=np.int64))
    if activation is None or size < 16384 or ctx.graph.dtypes.get(ctx.node.inputs[0]) != np.float32:
        return None
    # Many channels, whole vectors: the depthwise kernel's cost per pixel is what a short channel
    # count pays (a detector's 168,000-logit class map: 59 us as 16 channels, 20 as 800).
    channels = next((c for c in range(1024, 15, -16) if size % c == 0), None)
    channels = channels or next(c for c in (8, 4, 2, 1) if size % c == 0)
    pixels = size // channels
    # Rows of at most 512 pixels, which convkit's threads share out.
    width = next(w for w in range(min(pixels, 512), 0, -1) if pixels % w == 0)
    width = width if width >= 16 or pixels <= 512 else pixels  # no short rows: one long row
    shape = (1, pixels // width, width, channels)
    try:
        plan = ck.Conv2d(np.ones((1, 1, 1, channels), np.float32), None, x_shape=shape,
                         groups=channels, activation=activation, backend=ctx.backend)
    except ck.Error:  # a backend that refuses the activation (oneDNN's sigmoid): numpy's
        return None
    output = _Output(ctx.reuse_buffers)

    def run(x):
        y = output.get(x.shape)
        plan.run(np.ascontiguousarray(x).reshape(shape), out=y.reshape(shape))
        return y

    return Kernel(run, [L.ANY], [L.ANY], output=output, fresh=True)


@op("Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Floor", "Ceil",
    "Round", "Not", "Sign", "Sin", "Cos", "HardSwish", "Identity", "Erf", "Softplus", "Mish",
    "Clip", "LeakyRelu", "HardSigmoid", "Elu", "Gelu", "Cast", "Softsign", "IsNaN",
    "IsInf", "Tan", "Atan", "Asin", "Acos", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Selu",
    "Celu", "ThresholdedRelu", "Shrink", "Swish")
def build_unary(ctx):
    plan = _activation_plan(ctx) if len(ctx.node.inputs) == 1 else None
    if plan is not None:
        return plan
    f = _unary_fn(ctx)
    extra = len(ctx.node.inputs) - 1
    with_errstate = ctx.node.op in ("Exp", "Log", "Sqrt", "Reciprocal", "Tan", "Asin", "Acos",
                                    "Sinh", "Cosh", "Acosh", "Atanh", "Selu", "Celu", "Swish")

    def run(x, *_):
        if with_errstate:
            with np.errstate(all="ignore"):
                return f(x)
        return f(x)

    return Kernel(run, [L.ANY] + [L.ANY] * extra, [L.ANY])


@op("CastLike")
def build_cast_like(ctx):
    """x cast to the element type of the second input (whose layout does not matter)."""
    dtype = ctx.graph.dtypes[ctx.node.inputs[1]]
    if dtype.name.startswith("float8") and ctx.attr("saturate", 1):
        raise ctx.fail(f"a cast to {dtype.name} with saturate=1 (supported: saturate=0)")
    # The output has input 0's layout (ANY would follow the first runtime input, maybe input 1).
    out = ctx.in_layouts[0] if ctx.is_runtime(0) else L.PLAIN
    return Kernel(lambda x, _: x.astype(dtype), [L.ANY, L.ANY], [out])


@op("Dropout")
def build_dropout(ctx):
    """The identity (and an all-true mask): inference, or training with ratio 0. Training mode
    with a non-zero ratio (random) is refused."""
    if ctx.has_input(2):
        training = ctx.require_const(2, "Dropout's training_mode")
        ratio = ctx.require_const(1, "Dropout's ratio") if ctx.has_input(1) else 0.5
        if bool(np.asarray(training).reshape(-1)[0]) and float(np.asarray(ratio).reshape(-1)[0]):
            raise ctx.fail("training_mode=true with a non-zero ratio (supported: inference)")
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        return Kernel(lambda x, *_: (x, np.ones(x.shape, dtype=bool)),
                      [L.ANY] * len(ctx.node.inputs), [L.ANY, L.ANY])
    return Kernel(lambda x, *_: x, [L.ANY] * len(ctx.node.inputs), [L.ANY])


def _int_div(a, b):
    if np.issubdtype(np.result_type(a, b), np.integer):
        return (np.trunc(np.true_divide(a, b))).astype(np.result_type(a, b))
    return np.divide(a, b)


_BINARY = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _int_div,
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or,
    "Xor": np.logical_xor,
}


@op(*_BINARY, "Pow", "Max", "Min", "Sum", "Mean", "Where", "PRelu", "Mod")
def build_elementwise(ctx):
    name = ctx.node.op
    if name == "Mul" and ctx.attr("_shift"):
        return _scale_shift(ctx)
    if name in _BINARY:
        f = _BINARY[name]
    elif name == "Pow":
        def f(a, b):
            return np.power(a, b).astype(a.dtype)
    elif name in ("Max", "Min", "Sum"):
        reduce = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add}[name]

        def f(*xs):
            y = xs[0]
            for x in xs[1:]:
                y = reduce(y, x)
            return y
    elif name == "Mean":
        def f(*xs):
            y = xs[0]
            for x in xs[1:]:
                y = y + x
            return (y / len(xs)).astype(xs[0].dtype)
    elif name == "Where":
        f = np.where
    elif name == "PRelu":
        if _channel_slope(ctx, _follow_layout(ctx)):
            output = _Output(ctx.reuse_buffers)
            return Kernel(_prelu_channels(output), [L.NHWC, L.PLAIN], [L.NHWC], output=output,
                          fresh=True)

        def f(x, slope):
            return np.where(x < 0, x * slope, x).astype(x.dtype)
    else:  # Mod
        fmod = ctx.attr("fmod", 0)
        f = np.fmod if fmod else np.mod
    layout = _follow_layout(ctx)
    big = _channel_scale_operand(ctx, layout)
    if big is not None:
        output = _Output(ctx.reuse_buffers)
        return Kernel(_channel_scale(big, output), [layout] * 2, [layout], output=output,
                      fresh=True)

    def run(*xs):
        with np.errstate(all="ignore"):
            return f(*xs)

    output = None
    if name in _THREADED_BINARY:
        output = _Output(ctx.reuse_buffers)
        run = _threaded_binary(name, run, output)
    return Kernel(run, [layout] * len(ctx.node.inputs), [layout], output=output,
                  fresh=output is not None)  # numpy's arithmetic or convkit's loop


_THREADED_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


def _scale_shift(ctx):
    """x * s + t (rewrite.merge_scale_shift's Mul): s and t float32 constants, one value or one per
    channel, taken in channel order; one pass of convkit's loop on NHWC data or with scalars."""
    layout = _follow_layout(ctx)
    output = _Output(ctx.reuse_buffers)

    def run(x, s, t):
        per_channel = max(s.size, t.size) > 1
        if x.dtype != np.float32 or (per_channel and layout != L.NHWC):
            return np.multiply(x, s) + t
        y = output.get(x.shape)
        k = x.shape[-1] if per_channel else x.size
        ck._affine(np.ascontiguousarray(x).reshape(-1, k), s.reshape(1, -1), t.reshape(1, -1),
                   y.reshape(-1, k))
        return y

    return Kernel(run, [layout, L.PLAIN, L.PLAIN], [layout], output=output, fresh=True)


def _threaded_binary(name, numpy_run, output):
    """numpy_run(a, b), or convkit's loop on its threads where both are float32 with at least
    64 Ki elements and the smaller broadcasts simply: the same shape, one element, or a row along
    the last axis (a per-channel constant of NHWC data). The same IEEE operations, the same bits;
    into output's array, one per run with reuse (a fresh one costs page faults: DBNet's 13 MB
    adds)."""
    op = _THREADED_BINARY[name]

    def run(a, b):
        if a.dtype != np.float32 or b.dtype != np.float32 or max(a.size, b.size) < 65536:
            return numpy_run(a, b)
        swapped = b.size > a.size
        big, small = (b, a) if swapped else (a, b)
        if not big.flags.c_contiguous or small.ndim > big.ndim:
            return numpy_run(a, b)
        if small.size == 1 or small.shape == big.shape:
            rows, k = 1, big.size
        elif small.shape[-1] == big.shape[-1] and small.size == big.shape[-1]:
            rows, k = big.size // big.shape[-1], big.shape[-1]
        else:
            return numpy_run(a, b)
        y = output.get(big.shape)
        small = np.ascontiguousarray(small).reshape(1, small.size if small.size > 1 else 1)
        ck._binary(op, big.reshape(rows, k), small, y.reshape(rows, k), swapped)
        return y

    return run


def _channel_scale_operand(ctx, layout):
    """Which input of a Mul is an NHWC tensor (N, C, H, W) scaled by the other, a factor per
    image and channel (N or 1, C, 1, 1): the squeeze-and-excitation block's Mul. None for other
    ops and shapes."""
    if ctx.node.op != "Mul" or len(ctx.node.inputs) != 2 or layout != L.NHWC:
        return None
    shapes = [tuple(ctx.in_shape(i)) for i in range(2)]
    if any(len(shape) != 4 for shape in shapes):
        return None
    for big in (0, 1):
        n, c, h, w = shapes[big]
        if shapes[1 - big] in ((n, c, 1, 1), (1, c, 1, 1)) and h * w > 1:
            return big
    return None


def _channel_slope(ctx, layout):
    """Whether a PRelu is NHWC data (N, C, H, W) with a slope per channel or one slope (the
    slope's elements then are in channel order, whatever its rank)."""
    if layout != L.NHWC or len(ctx.in_shape(0)) != 4:
        return False
    n, c, h, w = ctx.in_shape(0)
    slope = tuple(ctx.in_shape(1))
    return slope in ((1, c, 1, 1), (c, 1, 1)) or int(np.prod(slope)) == 1


def _prelu_channels(output):
    """PRelu of NHWC x by a slope per channel: convkit's loop (numpy's broadcast over a short
    channel axis runs a few elements per inner loop: 10-20x slower on MTCNN's 10-32 channels)."""

    def run(x, slope):
        if x.dtype != np.float32 or slope.dtype != np.float32:
            return np.where(x < 0, x * slope, x).astype(x.dtype)
        n, h, w, c = x.shape
        y = output.get(x.shape)
        factors = np.ascontiguousarray(np.broadcast_to(slope.reshape(-1), (n, c)))
        ck._prelu_channels(np.ascontiguousarray(x).reshape(n, h * w, c), factors,
                           y.reshape(n, h * w, c))
        return y

    return run


def _channel_scale(big, output):
    """x (NHWC) times s (N or 1, 1, 1, C): convkit's scale for float32 (2-3x numpy's
    broadcasting multiply on the shapes of EfficientNet's blocks)."""

    def run(*xs):
        x, s = xs[big], xs[1 - big]
        if x.dtype != np.float32 or s.dtype != np.float32:
            return np.multiply(*xs)
        n, h, w, c = x.shape
        y = output.get(x.shape)
        factors = np.ascontiguousarray(np.broadcast_to(s.reshape(s.shape[0], c), (n, c)))
        ck._scale_channels(np.ascontiguousarray(x).reshape(n, h * w, c), factors,
                           y.reshape(n, h * w, c))
        return y

    return run


@op("BatchNormalization")
def build_batch_norm(ctx):
    if ctx.attr("training_mode", 0) or (len(ctx.node.outputs) > 1 and any(ctx.node.outputs[1:])):
        raise ctx.fail("training mode (supported: inference, one output)")
    params = [ctx.require_const(i, name) for i, name in
              enumerate(["", "scale", "B", "input_mean", "input_var"]) if i]
    scale, shift = batch_norm_affine(*params, ctx.attr("epsilon", 1e-5))
    rank = len(ctx.in_shape(0))
    layout = _follow_layout(ctx, rank)
    shape = (-1,) if layout == L.NHWC else (-1,) + (1,) * (rank - 2)
    scale, shift = scale.reshape(shape), shift.reshape(shape)

    def run(x, *_):
        return x * scale + shift

    return Kernel(run, [layout] + [L.ANY] * 4, [layout])


def batch_norm_affine(gamma, beta, mean, var, epsilon):
    """(scale, shift) float32 with BN(x) = x * scale + shift, computed in float64."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return scale.astype(np.float32), shift.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Axis ops: Concat, Split, Slice, Transpose, Softmax, reductions, Pad.

@op("Concat")
def build_concat(ctx):
    rank = len(ctx.in_shape(0))
    layout = _follow_layout(ctx, rank)
    output = _Output(ctx.reuse_buffers)
    if layout == L.NHWC and ctx.attr("axis") in (1, -3) and _read_in_plain_only(ctx):
        return Kernel(_concat_channels_to_plain(output), [L.NHWC] * len(ctx.node.inputs),
                      [L.PLAIN], output=output, fresh=True)
    axis = L.physical_axis(ctx.attr("axis"), rank, layout)
    return Kernel(_concat(axis, output), [layout] * len(ctx.node.inputs), [layout],
                  output=output, fresh=True)


_RESHAPE_LIKE = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def _read_in_plain_only(ctx):
    """Whether every reader of the node's float32 output takes it in PLAIN layout: reshape-like
    nodes (build_reshape_like) of a tensor whose NHWC order differs from NCHW's, as a detector
    head's Concat of box and class maps before its Reshape to (N, C, H * W)."""
    name = ctx.node.outputs[0]
    readers = ctx.graph.consumers().get(name, [])
    return (bool(readers) and name not in ctx.graph.outputs
            and ctx.graph.dtypes.get(name) == np.float32
            and not L.same_order(ctx.graph.shapes[name])
            and all(r.op in _RESHAPE_LIKE and r.inputs[0] == name and name not in r.inputs[1:]
                    for r in readers))


def _concat_channels_to_plain(output):
    """Concatenation of NHWC tensors along the channels, written in PLAIN (NCHW) layout: each
    input transposed straight into its channel slice, one pass instead of a concatenation and a
    layout transpose of its result (YOLOv8n's head: 0.13 + 0.13 ms for its 80x80x144 level)."""

    def run(*xs):
        n, h, w = xs[0].shape[:3]
        y = output.get((n, sum(x.shape[3] for x in xs), h, w))
        c0 = 0
        for x in xs:
            c = x.shape[3]
            for b in range(n):  # image b's channel slice of y is contiguous
                L.to_plain(x[b:b + 1], out=y[b:b + 1, c0:c0 + c])
            c0 += c
        return y

    return run


def _concat(axis, output):
    """Concatenation along `axis`: convkit's threaded copy for float32, each x seen as rows of
    its elements from `axis` on (C floats per pixel for the channels of NHWC tensors; a
    detector's (1, 144, A_i) levels, 144 rows each): numpy copies each row's run one at a time
    on one thread, 2-5x slower."""

    def run(*xs):
        if any(x.dtype != np.float32 for x in xs) or xs[0].ndim == 0:
            return np.concatenate(xs, axis=axis)
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        y = output.get(tuple(shape))
        if y.size:
            rows = int(np.prod(shape[:axis], dtype=np.int64))
            ck._concat_channels([_unit_rows(x.reshape(rows, -1)) for x in xs],
                                y.reshape(rows, -1))
        return y

    return run


def _unit_rows(rows):
    """rows (R, K) with unit element stride and a non-negative row stride, as _concat_channels
    reads them: a copy of a broadcast or reversed view."""
    if (rows.shape[1] > 1 and rows.strides[1] != rows.itemsize) or rows.strides[0] < 0:
        return np.ascontiguousarray(rows)
    return rows


def _split_sizes(ctx, dim):
    count = len(ctx.node.outputs)
    if ctx.opset >= 13 and ctx.has_input(1):
        sizes = [int(s) for s in ctx.require_const(1, "Split's split")]
    elif ctx.opset < 13 and ctx.attr("split") is not None:
        sizes = [int(s) for s in ctx.attr("split")]
    else:
        count = ctx.attr("num_outputs", count)
        chunk = -(-dim // count)
        sizes = [min(chunk, dim - i * chunk) for i in range(count)]
    if sum(sizes) != dim or len(sizes) != len(ctx.node.outputs):
        raise ctx.fail(f"split sizes {sizes} do not cover the axis of size {dim} in "
                       f"{len(ctx.node.outputs)} outputs")
    return sizes


@op("Split")
def build_split(ctx):
    shape = ctx.in_shape(0)
    axis = _normalize_axis(ctx.attr("axis", 0), len(shape))
    sizes = _split_sizes(ctx, shape[axis])
    layout = L.NHWC if ctx.in_layouts[0] == L.NHWC else L.PLAIN
    phys = L.physical_axis(axis, len(shape), layout)
    # Views by precomputed slices (np.split costs 5 us a call, a YOLOv8n has ten)
    ends = np.cumsum(sizes)
    parts = [(slice(None),) * phys + (slice(int(end - size), int(end)),)
             for size, end in zip(sizes, ends)]

    def run(x, *_):
        return tuple(x[part] for part in parts)

    return Kernel(run, [layout] + [L.ANY] * (len(ctx.node.inputs) - 1),
                  [layout] * len(ctx.node.outputs))


@op("Slice")
def build_slice(ctx):
    shape = ctx.in_shape(0)
    rank = len(shape)
    if ctx.opset < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes"), None
    else:
        starts = ctx.require_const(1, "Slice's starts")
        ends = ctx.require_const(2, "Slice's ends")
        axes = ctx.require_const(3, "Slice's axes")
        steps = ctx.require_const(4, "Slice's steps")
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    layout = L.NHWC if ctx.in_layouts[0] == L.NHWC else L.PLAIN
    index = [slice(None)] * rank
    for axis, start, end, step in zip(axes, starts, ends, steps):
        if step == 0:
            raise ctx.fail("a step of 0")
        index[L.physical_axis(axis, rank, layout)] = slice(int(start), int(end), step)
    index = tuple(index)
    return Kernel(lambda x, *_: x[index], [layout] + [L.ANY] * (len(ctx.node.inputs) - 1),
                  [layout])


@op("DepthToSpace", "SpaceToDepth")
def build_depth_space(ctx):
    """DepthToSpace and SpaceToDepth of a 4-D tensor (DCR or CRD channel order) as a reshape, a
    transpose and a reshape, on NHWC data as it is (no layout change) or on NCHW."""
    b = int(ctx.attr("blocksize"))
    mode = ctx.attr("mode", "DCR")
    n, c, h, w = ctx.in_shape(0)
    to_space = ctx.node.op == "DepthToSpace"
    if mode not in ("DCR", "CRD"):
        raise ctx.fail(f"mode '{mode}' (supported: DCR, CRD)")
    if b < 1 or (c % (b * b) if to_space else h % b or w % b):
        raise ctx.fail(f"blocksize {b} for input shape {(n, c, h, w)}")
    nhwc = ctx.in_layouts[0] == L.NHWC
    dcr = mode == "DCR"  # channel (i * b + j) * C' + k, else (CRD) k * b * b + i * b + j
    if to_space:
        co = c // (b * b)
        if nhwc:
            split = (n, h, w, b, b, co) if dcr else (n, h, w, co, b, b)
            order = (0, 1, 3, 2, 4, 5) if dcr else (0, 1, 4, 2, 5, 3)
            out = (n, h * b, w * b, co)
        else:
            split = (n, b, b, co, h, w) if dcr else (n, co, b, b, h, w)
            order = (0, 3, 4, 1, 5, 2) if dcr else (0, 1, 4, 2, 5, 3)
            out = (n, co, h * b, w * b)
    elif nhwc:
        split = (n, h // b, b, w // b, b, c)
        order = (0, 1, 3, 2, 4, 5) if dcr else (0, 1, 3, 5, 2, 4)
        out = (n, h // b, w // b, b * b * c)
    else:
        split = (n, c, h // b, b, w // b, b)
        order = (0, 3, 5, 1, 2, 4) if dcr else (0, 1, 3, 5, 2, 4)
        out = (n, b * b * c, h // b, w // b)
    layout = L.NHWC if nhwc else L.PLAIN

    def run(x):
        return np.ascontiguousarray(x.reshape(split).transpose(order)).reshape(out)

    return Kernel(run, [layout], [layout])


@op("Transpose")
def build_transpose(ctx):
    rank = len(ctx.in_shape(0))
    perm = ctx.attr("perm") or list(reversed(range(rank)))
    perm = [int(p) for p in perm]
    # The transposes NHWC models are exported with, between their layout and ONNX's, cost
    # nothing: NCHW -> NHWC of an NHWC tensor is its array, read as PLAIN; NHWC -> NCHW of a
    # PLAIN tensor is the NHWC layout of the result.
    if ctx.in_layouts[0] == L.NHWC and tuple(perm) == L.TO_NHWC:
        return Kernel(lambda x: x, [L.NHWC], [L.PLAIN])
    if ctx.in_layouts[0] != L.NHWC and tuple(perm) == L.FROM_NHWC:
        return Kernel(np.ascontiguousarray, [L.PLAIN], [L.NHWC])
    if ctx.in_layouts[0] != L.NHWC:
        return Kernel(lambda x: x.transpose(perm), [L.PLAIN], [L.PLAIN])
    # x = logical.transpose(TO_NHWC); the NHWC array of logical.transpose(perm) is x transposed
    # by FROM_NHWC[perm[TO_NHWC[i]]] (the identity when perm moves C last, as NHWC models do).
    phys = [L.FROM_NHWC[perm[L.TO_NHWC[i]]] for i in range(4)]
    if phys == [0, 1, 2, 3]:
        return Kernel(lambda x: x, [L.NHWC], [L.NHWC])
    return Kernel(lambda x: x.transpose(phys), [L.NHWC], [L.NHWC])


_POOL = []  # a thread pool for numpy work split by rows, created on first use


def _in_parallel(x, axis, f):
    """f(x) computed as f of row blocks of x split along `axis` on convkit's thread count, or
    None for one thread: numpy releases the GIL in its loops, so the blocks run at once (an OCR
    recogniser's softmax over 18,710 classes for 40 positions: one thread took 0.6 ms)."""
    threads = min(ck.num_threads(), x.shape[axis])
    if threads < 2:
        return None
    if not _POOL:
        import concurrent.futures

        _POOL.append(concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2))
    parts = np.array_split(x, threads, axis=axis)
    return np.concatenate(list(_POOL[0].map(f, parts)), axis=axis)


def _softmax(x, axis, log, output=None):
    axis = _normalize_axis(axis, x.ndim)
    if not log:
        y = _softmax_convkit(x, axis, output)
        if y is not None:
            return y
    outer = next((a for a in range(x.ndim) if a != axis and x.shape[a] > 1), None)
    if x.size >= 1 << 18 and outer is not None:
        y = _in_parallel(x, outer, lambda part: _softmax_one_thread(part, axis, log))
        if y is not None:
            return y
    return _softmax_one_thread(x, axis, log)


def _softmax_convkit(x, axis, output=None):
    """Softmax of float32 x over `axis` by convkit's fused loop, in x's memory order (a transposed
    view, as a detector's box bins are, gives the same view of the result), into output's array
    (an _Output; None: a new array. With reuse, the same one every run: fresh memory cost a
    detector's box bins ~35 µs of page faults a run): numpy's max, exp, sum and divide are four
    passes on one thread
    (0.11 ms for those bins; an OCR recogniser's 40 x 18,710 classes, last axis: 0.9 ms on two;
    3-6x for attention's 40 x 40 rows, 4x for 2 classes). None where x is not one dense block or
    the axis has 2 to 15 floats inside it (the loops run 16 floats at a time, across rows or
    along one)."""
    if x.dtype != np.float32 or x.size == 0:
        return None
    order = [int(a) for a in np.argsort([-s for s in x.strides], kind="stable")]
    base = x.transpose(order)
    if not base.flags.c_contiguous:
        return None
    a = order.index(axis)
    outer, k = int(np.prod(base.shape[:a], dtype=np.int64)), base.shape[a]
    inner = int(np.prod(base.shape[a + 1:], dtype=np.int64))
    if 1 < inner < 16:
        return None
    y = (output or _Output(False)).get(base.shape)
    ck._softmax_middle(base.reshape(outer, k, inner), y.reshape(outer, k, inner))
    return y.transpose(np.argsort(order))


def _softmax_one_thread(x, axis, log):  # axis normalised by _softmax
    if axis == x.ndim - 1 and x.shape[axis] <= 32 and x.size >= 4096:
        return _softmax_short_last_axis(x, log)
    y = x - np.max(x, axis=axis, keepdims=True)
    if log:
        return y - np.log(np.sum(np.exp(y), axis=axis, keepdims=True))
    np.exp(y, out=y)
    y /= np.sum(y, axis=axis, keepdims=True)
    return y


def _softmax_short_last_axis(x, log):
    """_softmax over a short last axis (a detector's 2 classes or 16 box bins per pixel): its
    max and sum as elementwise ops over the axis' slices; numpy reduces a short inner axis a few
    elements per loop (3-5x slower)."""
    slices = np.moveaxis(x, -1, 0)
    peak = slices[0].copy()
    for s in slices[1:]:
        np.maximum(peak, s, out=peak)
    y = x - peak[..., None]
    e = np.exp(y)
    total = np.moveaxis(e, -1, 0)[0].copy()
    for s in np.moveaxis(e, -1, 0)[1:]:
        total += s
    if log:
        return y - np.log(total)[..., None]
    e /= total[..., None]
    return e


@op("Softmax", "LogSoftmax")
def build_softmax(ctx):
    shape = ctx.in_shape(0)
    rank = len(shape)
    log = ctx.node.op == "LogSoftmax"
    if ctx.opset >= 13:
        layout = L.NHWC if ctx.in_layouts[0] == L.NHWC else L.PLAIN
        axis = L.physical_axis(ctx.attr("axis", -1), rank, layout)
        output = _Output(ctx.reuse_buffers)  # not the Kernel's: the result may be a view of it
        return Kernel(lambda x: _softmax(x, axis, log, output), [layout], [layout])
    # Before opset 13 the input is coerced to 2-D at `axis` and normalised over the second.
    axis = _normalize_axis(ctx.attr("axis", 1), rank)
    rows = int(np.prod(shape[:axis], dtype=np.int64))

    def run(x):
        return _softmax(x.reshape(rows, -1), 1, log).reshape(x.shape)

    return Kernel(run, [L.PLAIN], [L.PLAIN])


def _lowest(dtype):
    if dtype == np.bool_:
        return False
    return np.iinfo(dtype).min if np.issubdtype(dtype, np.integer) else -np.inf  # bfloat16 too


def _highest(dtype):
    if dtype == np.bool_:
        return True
    return np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else np.inf


def _log_sum_exp(x, axis, keepdims):
    x64 = x.astype(np.float64)
    peak = np.max(x64, axis=axis, keepdims=True, initial=-np.inf)
    peak = np.where(np.isfinite(peak), peak, 0)
    y = np.log(np.sum(np.exp(x64 - peak), axis=axis, keepdims=True)) + peak
    return y if keepdims else np.squeeze(y, axis=axis)


_REDUCE = {
    "ReduceMean": np.mean, "ReduceSum": np.sum,
    # Over an empty set ONNX gives the identity of the reduction: the lowest / highest value.
    "ReduceMax": lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims,
                                                  initial=_lowest(x.dtype)),
    "ReduceMin": lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims,
                                                  initial=_highest(x.dtype)),
    "ReduceProd": np.prod,
    "ReduceLogSum": lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "ReduceLogSumExp": lambda x, axis, keepdims: _log_sum_exp(x, axis, keepdims),
    "ReduceL1": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "ReduceL2": lambda x, axis, keepdims: np.sqrt(np.sum(np.square(x), axis=axis,
                                                         keepdims=keepdims)),
    "ReduceSumSquare": lambda x, axis, keepdims: np.sum(np.square(x), axis=axis,
                                                        keepdims=keepdims),
}


@op(*_REDUCE)
def build_reduce(ctx):
    shape = ctx.in_shape(0)
    rank = len(shape)
    axes_as_input = ctx.opset >= 18 or (ctx.node.op == "ReduceSum" and ctx.opset >= 13)
    axes = ctx.require_const(1, "the axes") if axes_as_input else ctx.attr("axes")
    keepdims = bool(ctx.attr("keepdims", 1))
    if axes is None or len(axes) == 0:
        if ctx.attr("noop_with_empty_axes", 0):
            return Kernel(lambda x, *_: x, [L.ANY] * len(ctx.node.inputs), [L.ANY])
        axes = range(rank)
    axes = sorted(_normalize_axis(int(a), rank) for a in axes)
    layout = L.NHWC if ctx.in_layouts[0] == L.NHWC else L.PLAIN
    phys = tuple(L.physical_axis(a, rank, layout) for a in axes)
    pool = _spatial_pool(ctx, axes, keepdims, layout)
    if pool is not None:
        return pool
    f = _REDUCE[ctx.node.op]
    out_layout = layout if keepdims else L.PLAIN
    order = None
    if layout == L.NHWC and not keepdims:
        # The remaining physical axes hold these logical axes; put them back in logical order.
        kept = [L.TO_NHWC[i] for i in range(4) if i not in phys]
        order = list(np.argsort(kept)) if kept != sorted(kept) else None

    def run(x, *_):
        y = np.asarray(f(x, axis=phys, keepdims=keepdims)).astype(x.dtype, copy=False)
        return y.transpose(order) if order is not None else y

    return Kernel(run, [layout] + [L.ANY] * (len(ctx.node.inputs) - 1), [out_layout])


def _spatial_pool(ctx, axes, keepdims, layout):
    """ReduceMean/ReduceMax over H and W of NHWC float32 data as convkit's global pool (a
    channel-attention squeeze: numpy's mean over 160 x 160 pixels with 32 channels inside took
    0.38 ms on a PP-OCR detector); NaN propagates as in numpy. None otherwise."""
    modes = {"ReduceMean": "average", "ReduceMax": "max"}
    x = ctx.node.inputs[0]
    if ctx.node.op not in modes or layout != L.NHWC or list(axes) != [2, 3] or \
            ctx.graph.dtypes.get(x) != np.float32 or 0 in ctx.in_shape(0):
        return None
    n, c, h, w = ctx.in_shape(0)
    layer = PoolLayer(x_shape=(n, h, w, c), window=(h, w), stride=(1, 1), pads=(0, 0, 0, 0),
                      mode=modes[ctx.node.op], backend=ctx.backend,
                      reuse_output=ctx.reuse_buffers)
    extra = [L.ANY] * (len(ctx.node.inputs) - 1)
    if keepdims:
        return Kernel(lambda x, *_: layer.run(x), [L.NHWC] + extra, [L.NHWC], layer=layer)
    return Kernel(lambda x, *_: layer.run(x).reshape(n, c), [L.NHWC] + extra, [L.PLAIN],
                  layer=layer)


@op("ArgMax", "ArgMin")
def build_argmax(ctx):
    if ctx.attr("select_last_index", 0):
        raise ctx.fail("select_last_index=1 (supported: 0)")
    axis = ctx.attr("axis", 0)
    keepdims = bool(ctx.attr("keepdims", 1))
    f = np.argmax if ctx.node.op == "ArgMax" else np.argmin

    def run(x):
        y = f(x, axis=axis).astype(np.int64)
        return np.expand_dims(y, axis) if keepdims else y

    return Kernel(run, [L.PLAIN], [L.PLAIN])


@op("Pad")
def build_pad(ctx):
    shape = ctx.in_shape(0)
    rank = len(shape)
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.fail(f"mode '{mode}' (supported: constant, reflect, edge, wrap)")
    if ctx.opset < 11:
        pads, value, axes = ctx.attr("pads"), ctx.attr("value", 0.0), None
    else:
        pads = ctx.require_const(1, "Pad's pads")
        value = ctx.require_const(2, "Pad's constant_value")
        value = 0 if value is None or value.size == 0 else value.item()
        axes = ctx.require_const(3, "Pad's axes")
    axes = list(range(rank)) if axes is None else [_normalize_axis(int(a), rank) for a in axes]
    pads = [int(p) for p in pads]
    count = len(axes)
    layout = L.NHWC if ctx.in_layouts[0] == L.NHWC else L.PLAIN
    widths = [(0, 0)] * rank
    for k, axis in enumerate(axes):
        widths[L.physical_axis(axis, rank, layout)] = (pads[k], pads[k + count])
    grow = [(max(a, 0), max(b, 0)) for a, b in widths]
    crop = tuple(slice(-min(a, 0), None if b >= 0 else b) for a, b in widths)
    kwargs = {"constant_values": value} if mode == "constant" else {}

    def run(x, *_):
        y = np.pad(x, grow, mode=mode, **kwargs) if any(a or b for a, b in grow) else x
        return y[crop]

    return Kernel(run, [layout] + [L.ANY] * (len(ctx.node.inputs) - 1), [layout])


# ------------------------------------------------------------------------------------------------
# Shape ops: Reshape, Flatten, Squeeze, Unsqueeze, Expand, Tile; shape values.

def _reshape_target(ctx, shape):
    in_shape = ctx.in_shape(0)
    allowzero = ctx.attr("allowzero", 0)
    target = [in_shape[i] if d == 0 and not allowzero else int(d) for i, d in enumerate(shape)]
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
        total = int(np.prod(in_shape, dtype=np.int64))
        target[target.index(-1)] = total // known if known else 0
    return tuple(target)


def _out_shape_of_reshape_like(ctx):
    shape = ctx.in_shape(0)
    rank = len(shape)
    name = ctx.node.op
    if name == "Reshape":
        return _reshape_target(ctx, ctx.require_const(1, "Reshape's shape")
                               if ctx.opset >= 5 else ctx.attr("shape"))
    if name == "Flatten":
        axis = _normalize_axis(ctx.attr("axis", 1), rank)
        return (int(np.prod(shape[:axis], dtype=np.int64)),
                int(np.prod(shape[axis:], dtype=np.int64)))
    axes = ctx.require_const(1, f"{name}'s axes") if ctx.opset >= 13 else ctx.attr("axes")
    if name == "Squeeze":
        if axes is None:
            return tuple(d for d in shape if d != 1)
        axes = {_normalize_axis(int(a), rank) for a in axes}
        return tuple(d for i, d in enumerate(shape) if i not in axes)
    out_rank = rank + len(axes)
    axes = {_normalize_axis(int(a), out_rank) for a in axes}
    dims = iter(shape)
    return tuple(1 if i in axes else next(dims) for i in range(out_rank))


@op("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def build_reshape_like(ctx):
    out_shape = _out_shape_of_reshape_like(ctx)
    # The NHWC array can be reshaped as it is when its element order is NCHW's.
    in_layout = L.ANY if L.same_order(ctx.in_shape(0)) else L.PLAIN
    return Kernel(lambda x, *_: x.reshape(out_shape),
                  [in_layout] + [L.ANY] * (len(ctx.node.inputs) - 1), [L.PLAIN])


@op("Expand")
def build_expand(ctx):
    shape = tuple(int(d) for d in ctx.require_const(1, "Expand's shape"))

    def run(x, _):
        return np.broadcast_to(x, np.broadcast_shapes(x.shape, shape))

    return Kernel(run, [L.PLAIN, L.ANY], [L.PLAIN])


@op("Tile")
def build_tile(ctx):
    repeats = tuple(int(r) for r in ctx.require_const(1, "Tile's repeats"))
    return Kernel(lambda x, _: np.tile(x, repeats), [L.PLAIN, L.ANY], [L.PLAIN])


@op("Shape")
def build_shape(ctx):
    shape = np.array(ctx.in_shape(0), dtype=np.int64)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    value = shape[start:end]
    return Kernel(lambda x: value, [L.ANY], [L.PLAIN])


@op("Size")
def build_size(ctx):
    value = np.array(int(np.prod(ctx.in_shape(0), dtype=np.int64)), dtype=np.int64)
    return Kernel(lambda x: value, [L.ANY], [L.PLAIN])


@op("Constant")
def build_constant(ctx):
    attrs = ctx.node.attrs
    if "value" in attrs:
        value = np.asarray(attrs["value"])
    elif "value_float" in attrs:
        value = np.array(attrs["value_float"], dtype=np.float32)
    elif "value_floats" in attrs:
        value = np.array(attrs["value_floats"], dtype=np.float32)
    elif "value_int" in attrs:
        value = np.array(attrs["value_int"], dtype=np.int64)
    elif "value_ints" in attrs:
        value = np.array(attrs["value_ints"], dtype=np.int64)
    else:
        raise ctx.fail(f"attributes {sorted(attrs)} (supported: value, value_float(s), "
                       "value_int(s))")
    return Kernel(lambda: value, [], [L.PLAIN])


@op("ConstantOfShape")
def build_constant_of_shape(ctx):
    value = ctx.attr("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)

    def run(shape):
        return np.full(tuple(int(d) for d in shape), fill[0], dtype=fill.dtype)

    return Kernel(run, [L.PLAIN], [L.PLAIN])


@op("Range")
def build_range(ctx):
    """Folded at load: its inputs must be constants (its output's shape depends on them)."""
    values = [ctx.require_const(i, f"Range's {what}")
              for i, what in enumerate(("start", "limit", "delta"))]
    if any(v.size != 1 for v in values):
        raise ctx.fail(f"inputs of shapes {[v.shape for v in values]} (supported: scalars)")
    if values[2].item() == 0:
        raise ctx.fail("delta 0 (supported: non-zero)")

    def run(start, limit, delta):
        dtype = np.result_type(start, limit, delta)
        start, limit, delta = (np.asarray(v).reshape(()) for v in (start, limit, delta))
        return np.arange(start, limit, delta, dtype=dtype)

    return Kernel(run, [L.PLAIN] * 3, [L.PLAIN])


@op("Gather")
def build_gather(ctx):
    axis = ctx.attr("axis", 0)
    return Kernel(lambda x, i: np.take(x, i, axis=axis), [L.PLAIN, L.PLAIN], [L.PLAIN])


# ------------------------------------------------------------------------------------------------
# Dense: MatMul, Gemm.

@op("MatMul")
def build_matmul(ctx):
    return Kernel(np.matmul, [L.PLAIN, L.PLAIN], [L.PLAIN])


@op("Gemm")
def build_gemm(ctx):
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    trans_a, trans_b = ctx.attr("transA", 0), ctx.attr("transB", 0)
    b_const = ctx.const(1)
    # A constant B is transposed and scaled once, here.
    b_ready = None
    if b_const is not None:
        b_ready = np.ascontiguousarray((b_const.T if trans_b else b_const) * np.float32(alpha))

    def run(a, b, c=None):
        a = a.T if trans_a else a
        if b_ready is not None:
            y = a @ b_ready
        else:
            y = (a @ (b.T if trans_b else b)) * np.float32(alpha)
        if c is not None:
            y = y + (c if beta == 1 else c * np.float32(beta))
        return y.astype(a.dtype, copy=False)

    return Kernel(run, [L.PLAIN] * len(ctx.node.inputs), [L.PLAIN])
