"""Normalisations in numpy (glue ops): LRN, InstanceNormalization, LayerNormalization,
GroupNormalization, LpNormalization, MeanVarianceNormalization; the statistics in float64. LRN
and InstanceNormalization work on NHWC data as it is, the others on NCHW."""

import numpy as np

from . import layout as L
from .kernel import Kernel
from .ops import _normalize_axis, op


def _channel_layout(ctx):
    """(layout, physical channel axis, physical spatial axes) for an (N, C, ...) input."""
    rank = len(ctx.in_shape(0))
    layout = L.NHWC if ctx.in_layouts[0] == L.NHWC else L.PLAIN
    channel = L.physical_axis(1, rank, layout)
    spatial = tuple(L.physical_axis(a, rank, layout) for a in range(2, rank))
    return layout, channel, spatial


@op("LRN")
def build_lrn(ctx):
    size = int(ctx.attr("size"))
    alpha, beta, bias = ctx.attr("alpha", 1e-4), ctx.attr("beta", 0.75), ctx.attr("bias", 1.0)
    layout, channel, _ = _channel_layout(ctx)
    before, after = (size - 1) // 2, size // 2  # ONNX: floor((size-1)/2), ceil((size-1)/2)

    def run(x):
        square = np.moveaxis(np.square(x, dtype=np.float64), channel, -1)
        padded = np.pad(square, [(0, 0)] * (square.ndim - 1) + [(before + 1, after)])
        sums = np.cumsum(padded, axis=-1)
        window = sums[..., size:] - sums[..., :-size]
        scale = np.moveaxis(np.power(bias + alpha / size * window, beta), -1, channel)
        return (x / scale).astype(x.dtype)

    return Kernel(run, [layout], [layout])


@op("InstanceNormalization")
def build_instance_norm(ctx):
    gamma = ctx.require_const(1, "the scale").astype(np.float64)
    beta = ctx.require_const(2, "the bias").astype(np.float64)
    epsilon = ctx.attr("epsilon", 1e-5)
    layout, channel, spatial = _channel_layout(ctx)
    view = [1] * len(ctx.in_shape(0))
    view[channel] = -1
    gamma, beta = gamma.reshape(view), beta.reshape(view)

    def run(x, *_):
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=spatial, keepdims=True)
        var = np.square(x64 - mean).mean(axis=spatial, keepdims=True)
        return ((x64 - mean) / np.sqrt(var + epsilon) * gamma + beta).astype(x.dtype)

    return Kernel(run, [layout, L.ANY, L.ANY], [layout])


@op("LayerNormalization")
def build_layer_norm(ctx):
    """(x - mean) / sqrt(var + epsilon) * scale + bias over the axes from `axis` on (ConvNeXt's
    and the attention blocks' norm), the statistics in float64; the optional Mean and InvStdDev
    outputs too. On NCHW data (a channel-last norm of NHWC data is a Transpose away in ONNX)."""
    rank = len(ctx.in_shape(0))
    axis = _normalize_axis(ctx.attr("axis", -1), rank)
    epsilon = ctx.attr("epsilon", 1e-5)
    axes = tuple(range(axis, rank))

    def run(x, scale, bias=None):
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=axes, keepdims=True)
        inv_std = 1 / np.sqrt(np.square(x64 - mean).mean(axis=axes, keepdims=True) + epsilon)
        y = (x64 - mean) * inv_std * scale
        if bias is not None:
            y = y + bias
        return y.astype(x.dtype), mean.astype(np.float32), inv_std.astype(np.float32)

    outputs = len(ctx.node.outputs)
    return Kernel(lambda *xs: run(*xs)[:outputs] if outputs > 1 else run(*xs)[0],
                  [L.PLAIN] * len(ctx.node.inputs), [L.PLAIN] * outputs)


@op("GroupNormalization")
def build_group_norm(ctx):
    """Normalisation over groups of channels and space, then a scale and bias per channel (opset
    21) or per group (opset 18), the statistics in float64."""
    groups = int(ctx.attr("num_groups"))
    epsilon = ctx.attr("epsilon", 1e-5)
    shape = ctx.in_shape(0)
    n, c = shape[0], shape[1]
    if groups < 1 or c % groups:
        raise ctx.fail(f"num_groups {groups} for {c} channels (supported: a divisor)")
    per_group = ctx.opset < 21
    view = (1, c) + (1,) * (len(shape) - 2)

    def run(x, scale, bias):
        x64 = x.astype(np.float64).reshape(n, groups, -1)
        mean = x64.mean(axis=2, keepdims=True)
        var = np.square(x64 - mean).mean(axis=2, keepdims=True)
        y = ((x64 - mean) / np.sqrt(var + epsilon)).reshape(shape)
        if per_group:
            scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
        return (y * scale.reshape(view) + bias.reshape(view)).astype(x.dtype)

    return Kernel(run, [L.PLAIN] * 3, [L.PLAIN])


@op("LpNormalization")
def build_lp_normalization(ctx):
    axis, p = ctx.attr("axis", -1), ctx.attr("p", 2)
    if p not in (1, 2):
        raise ctx.fail(f"p={p} (supported: 1, 2)")

    def run(x):
        x64 = x.astype(np.float64)
        norm = np.sum(np.abs(x64), axis=axis, keepdims=True) if p == 1 else np.sqrt(
            np.sum(np.square(x64), axis=axis, keepdims=True))
        with np.errstate(all="ignore"):
            return np.where(norm == 0, 0, x64 / norm).astype(x.dtype)

    return Kernel(run, [L.PLAIN], [L.PLAIN])


@op("MeanVarianceNormalization")
def build_mean_variance_normalization(ctx):
    axes = tuple(ctx.attr("axes", [0, 2, 3]))

    def run(x):
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=axes, keepdims=True)
        std = np.sqrt(np.square(x64 - mean).mean(axis=axes, keepdims=True))
        return ((x64 - mean) / (std + 1e-9)).astype(x.dtype)

    return Kernel(run, [L.PLAIN], [L.PLAIN])
