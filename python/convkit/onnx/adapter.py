"""The convkit layers a model runs, behind one small adapter.

ConvLayer and PoolLayer are created once at load for fixed input dims and run many times. They use
what this copy of convkit offers: plans (convkit.Conv2d / Pool2d) when present, else the one-shot
functions; a fused activation or residual add when convkit accepts it, else the same post-op in
numpy after the call (correct, slower). Everything here is NHWC.
"""

import functools

import numpy as np

from .. import _convkit as ck
from . import numerics


@functools.lru_cache(maxsize=None)
def _accepts(function, **kwargs):
    """Whether convkit.<function> accepts these keyword arguments (probed on a 1x1 problem)."""
    f = getattr(ck, function, None)
    if f is None:
        return False
    x = np.zeros((1, 1, 1, 1), np.float32)
    w = np.zeros((1, 1, 1, 1), np.float32)
    kwargs = {k: (np.zeros((1, 1, 1, 1), np.float32) if k == "residual" else v)
              for k, v in kwargs.items()}
    try:
        f(x, w, **kwargs)
    except (TypeError, ck.Error):
        return False
    return True


def fused_activation_supported(function, activation):
    return activation is None or _accepts(function, activation=activation)


def fused_residual_supported(function):
    return _accepts(function, residual=True)


class ConvLayer:
    """y = post-ops(conv2d(x, w) + b) on NHWC x of `x_shape`, or its transposed convolution.

    w: HWIO {KH, KW, C_in / groups, C_out}, or for transposed {KH, KW, C_out / groups, C_in}.
    pads: (top, bottom, left, right). activation: None or convkit's spec ("relu", ("clip", lo,
    hi) ...). residual: None, "before" or "after" the activation; run() then takes r of y's shape.
    """

    def __init__(self, w, b, *, x_shape, stride, pads, dilation, groups, activation=None,
                 residual=None, transpose=False, output_padding=(0, 0), backend=None):
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.b = None if b is None else np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
        self.x_shape = tuple(x_shape)
        self.stride, self.pads, self.dilation, self.groups = stride, pads, dilation, groups
        self.output_padding = output_padding
        self.transpose = transpose
        self.activation, self.residual = activation, residual
        self.backend = backend
        function = "conv2d_transpose" if transpose else "conv2d"
        self.function = getattr(ck, function, None)
        can_fuse = self.function is not None and fused_activation_supported(function, activation)
        self.fuse_residual = (residual is not None and can_fuse
                              and fused_residual_supported(function))
        # An activation after an unfused residual cannot run inside the convolution.
        self.fuse_activation = can_fuse and (residual != "before" or self.fuse_residual)
        self.kind = "Conv2dTranspose" if transpose else "Conv2d"

    @property
    def uses_convkit(self):
        return self.function is not None

    def _call(self, x, r):
        kwargs = dict(stride=self.stride, padding=self.pads, dilation=self.dilation,
                      groups=self.groups, backend=self.backend)
        if self.transpose:
            kwargs["output_padding"] = self.output_padding
        if self.fuse_activation:
            kwargs["activation"] = self.activation
        if self.fuse_residual:
            kwargs["residual"] = r
            kwargs["residual_after_activation"] = self.residual == "after"
        return self.function(x, self.w, self.b, **kwargs)

    def run(self, x, r=None):
        y = self._call(x, r) if self.function is not None else self._transpose_numpy(x)
        if self.residual == "before" and not self.fuse_residual:
            y += r
        if not self.fuse_activation:
            y = numerics.apply_activation(y, self.activation, inplace=True)
        if self.residual == "after" and not self.fuse_residual:
            y += r
        return y

    def _transpose_numpy(self, x):
        """The transposed convolution in numpy: one matrix product per tap and group, scattered
        into the uncropped output, then cropped by the pads."""
        n, h, w_in, c_in = x.shape
        kh, kw, c_out_g, _ = self.w.shape
        (sh, sw), (dh, dw), g = self.stride, self.dilation, self.groups
        top, bottom, left, right = self.pads
        oh = (h - 1) * sh - top - bottom + dh * (kh - 1) + self.output_padding[0] + 1
        ow = (w_in - 1) * sw - left - right + dw * (kw - 1) + self.output_padding[1] + 1
        full_h = max((h - 1) * sh + dh * (kh - 1) + 1, top + oh)
        full_w = max((w_in - 1) * sw + dw * (kw - 1) + 1, left + ow)
        c_in_g = c_in // g
        y = np.zeros((n, full_h, full_w, c_out_g * g), np.float32)
        for group in range(g):
            xg = x[..., group * c_in_g:(group + 1) * c_in_g]
            out = slice(group * c_out_g, (group + 1) * c_out_g)
            for i in range(kh):
                for j in range(kw):
                    tap = self.w[i, j, :, group * c_in_g:(group + 1) * c_in_g]  # {C_out/g, C_in/g}
                    y[:, i * dh:i * dh + (h - 1) * sh + 1:sh,
                      j * dw:j * dw + (w_in - 1) * sw + 1:sw, out] += xg @ tap.T
        y = np.ascontiguousarray(y[:, top:top + oh, left:left + ow])
        if self.b is not None:
            y += self.b
        return y


class PoolLayer:
    """Max or average pooling of NHWC x of `x_shape` (a global pool is a window of (H, W))."""

    def __init__(self, *, x_shape, window, stride, pads, mode, ceil_mode=False,
                 count_include_pad=False, backend=None):
        self.x_shape = tuple(x_shape)
        self.kwargs = dict(window=window, stride=stride, padding=pads, mode=mode,
                           ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                           backend=backend)
        self.kind = "Pool2d"
        self.uses_convkit = True

    def run(self, x):
        return ck.pool2d(x, **self.kwargs)
