"""The convkit layers a model runs, behind one small adapter.

ConvLayer and PoolLayer are created once at load for fixed input dims and run many times. They use
what this copy of convkit offers, best first: a plan (convkit.Conv2d, Conv2dTranspose, Pool2d)
created here, else the one-shot function; the activation and residual add fused into convkit when
it accepts them for this problem, else the same post-ops in numpy after the call (correct,
slower); for a transposed convolution without convkit support, numpy. Everything here is NHWC.
"""

import functools

import numpy as np

from .. import _convkit as ck
from . import layout as L
from . import numerics

_ONE = (1, 1, 1, 1)


def _zeros(shape=_ONE):
    return np.zeros(shape, np.float32)


def _activation_spec(activation, linear):
    """convkit's `activation` keyword for an activation spec and a linear map (scale, shift)
    after it, either None."""
    if linear is None:
        return activation
    spec = ("linear", float(linear[0]), float(linear[1]))
    return spec if activation is None else [activation, spec]


def _fusion_kwargs(activation, linear, residual, fuse_activation, fuse_residual):
    kwargs = {}
    if fuse_activation and (activation is not None or linear is not None):
        kwargs["activation"] = _activation_spec(activation, linear)
    if fuse_residual and residual == "after":
        kwargs["residual_after_activation"] = True
    return kwargs


@functools.lru_cache(maxsize=None)
def _api_accepts(kind, activation, linear, residual):
    """Whether this convkit's API takes these fusions for `kind` (conv2d or conv2d_transpose):
    probed once on a 1x1 problem, through the plan class if there is one, else the function."""
    kwargs = _fusion_kwargs(activation, linear, residual, True, residual is not None)
    r = {"residual": _zeros()} if residual is not None else {}
    plan_class = getattr(ck, _PLAN_CLASSES[kind], None)
    try:
        if plan_class is not None:
            plan_class(_zeros(), None, x_shape=_ONE, **kwargs).run(_zeros(), **r)
        else:
            getattr(ck, kind)(_zeros(), _zeros(), None, **kwargs, **r)
    except (TypeError, ck.Error):
        return False
    return True


_PLAN_CLASSES = {"conv2d": "Conv2d", "conv2d_transpose": "Conv2dTranspose"}


def _fusion_options(activation, residual):
    """(fuse activation, fuse residual) to try, most fused first. An activation after an
    unfused residual cannot run inside the convolution."""
    options = [(True, True)] if residual is not None else []
    if residual != "before":
        options.append((True, False))
    options.append((False, False))
    return options


def implementation_name(plan):
    for attribute in ("impl_name", "implementation", "impl"):
        value = getattr(plan, attribute, None)
        if isinstance(value, str) and value:
            return value
    return None


def _output_buffer(plan, reuse):
    """The array every run of `plan` writes (reuse: no allocation and no page faults per run, at
    the price of one buffer per layer and runs that are not reentrant), or None."""
    shape = getattr(plan, "y_shape", None)
    return L.aligned_empty(tuple(shape)) if reuse and shape is not None else None


class ConvLayer:
    """y = post-ops(conv2d(x, w) + b) on NHWC x of `x_shape`, or its transposed convolution.

    w: HWIO {KH, KW, C_in / groups, C_out}, or for transposed {KH, KW, C_out / groups, C_in}.
    pads: (top, bottom, left, right). activation: None or convkit's spec ("relu", ("clip", lo,
    hi) ...). linear: None or (scale, shift) applied after the activation. residual: None,
    "before" or "after" the activation (and the linear map); run() then takes r of y's shape.
    reuse_output: every run returns the same array (overwritten by the next run).
    """

    def __init__(self, w, b, *, x_shape, stride, pads, dilation, groups, activation=None,
                 linear=None, residual=None, transpose=False, output_padding=(0, 0),
                 backend=None, fpmath="strict", reuse_output=False):
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.b = None if b is None else np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
        self.x_shape = tuple(x_shape)
        self.activation, self.residual = activation, residual
        self.linear = None if linear is None else tuple(float(v) for v in linear)
        self.kind = "conv2d_transpose" if transpose else "conv2d"
        self.params = dict(stride=stride, padding=pads, dilation=dilation, groups=groups,
                           backend=backend)
        if fpmath != "strict":  # convkits without fpmath still run strict layers
            self.params["fpmath"] = fpmath
        if transpose:
            self.params["output_padding"] = output_padding
        self.plan, self.impl_name, self.out = None, None, None
        self._glue = None  # _unfused_input's steps
        self._copies = {}  # _dense's arrays, by input
        self.reuse_output = reuse_output
        self.function = getattr(ck, self.kind, None)
        self.fuse_activation = self.fuse_residual = False
        if self.function is None and not hasattr(ck, _PLAN_CLASSES[self.kind]):
            return  # numpy (transposed convolution on a convkit without it)
        for fuse_activation, fuse_residual in _fusion_options(activation, residual):
            if not _api_accepts(self.kind, activation if fuse_activation else None,
                                self.linear if fuse_activation else None,
                                residual if fuse_residual else None):
                continue
            self.fuse_activation, self.fuse_residual = fuse_activation, fuse_residual
            if self._make_plan():
                break

    @property
    def uses_convkit(self):
        return self.plan is not None or self.function is not None

    @property
    def numpy_post_ops(self):
        """Whether run() applies an activation, linear map or residual add in numpy after
        convkit."""
        return (((self.activation is not None or self.linear is not None)
                 and not self.fuse_activation)
                or (self.residual is not None and not self.fuse_residual))

    def _kwargs(self):
        return _fusion_kwargs(self.activation, self.linear, self.residual, self.fuse_activation,
                              self.fuse_residual)

    def _make_plan(self):
        """Creates the plan if convkit has plans; False if it refuses these fusions here."""
        plan_class = getattr(ck, _PLAN_CLASSES[self.kind], None)
        if plan_class is None:
            return True
        try:
            self.plan = plan_class(self.w, self.b, x_shape=self.x_shape, **self.params,
                                   **self._kwargs())
        except ck.Error as error:
            if getattr(error, "code", "") == "unsupported" and (self.fuse_activation or
                                                                self.fuse_residual):
                return False
            raise
        self.impl_name = implementation_name(self.plan)
        self.out = _output_buffer(self.plan, self.reuse_output)
        return True

    def _unfused_input(self, x, x_scale):
        """x as one dense array, for a plan that neither reads pieces nor fuses the scale here
        (fpmath bf16, oneDNN, another kernel): convkit's threaded glue, into arrays the layer
        keeps as the Concat and Mul steps it replaces kept theirs."""
        from . import ops  # ops imports this module

        if self._glue is None:
            self._glue = (ops._concat(3, ops._Output(self.reuse_output)),
                          ops._channel_scale(0, ops._Output(self.reuse_output)))
        if isinstance(x, list):
            x = self._glue[0](*x)
        return x if x_scale is None else self._glue[1](x, x_scale)

    def _dense(self, key, a):
        """a itself when C-contiguous, else its copy by convkit's threaded copy into the array
        the layer keeps for `key` (`_copies[key]`, an ops._Output): a channel slice (a Split's
        part: YOLOv8's C2f blocks), which convkit's array conversion would copy on one thread
        into fresh memory each run (2x the time of the 80x80x16 3x3 layer reading it)."""
        if a is None or a.flags.c_contiguous or a.ndim != 4 or a.dtype != np.float32:
            return a
        from . import ops  # ops imports this module

        output = self._copies.setdefault(key, ops._Output(self.reuse_output))
        return ops._concat(3, output)(a)

    def _call(self, x, r, x_scale):
        if not isinstance(x, list):
            x = self._dense("x", x)
        pieces = x if isinstance(x, list) else [x]
        if self.fuse_residual and any(np.may_share_memory(r, piece) for piece in pieces):
            r = r.copy()  # convkit reads r while writing y, so r must not be x (x + conv(x))
        elif self.fuse_residual:
            r = self._dense("r", r)
        residual = {"residual": r} if self.fuse_residual else {}
        if x_scale is not None and getattr(self.plan, "fuses_x_scale", False):
            return self.plan.run(x, out=self.out, x_scale=x_scale, **residual)
        if x_scale is not None or (isinstance(x, list) and not getattr(self.plan, "fuses_concat",
                                                                        False)):
            x = self._unfused_input(x, x_scale)
        if self.plan is not None:
            return self.plan.run(x, out=self.out, **residual)
        try:
            return self.function(x, self.w, self.b, **self.params, **self._kwargs(), **residual)
        except ck.Error as error:
            # A backend refusing the fused post-ops for this problem: unfuse for good, retry.
            if getattr(error, "code", "") != "unsupported" or not (self.fuse_activation or
                                                                   self.fuse_residual):
                raise
            self.fuse_activation = self.fuse_residual = False
            return self.function(x, self.w, self.b, **self.params)

    def run(self, x, r=None, x_scale=None):
        """y for NHWC x (or a list of NHWC pieces of x along C), with the residual r when the
        layer has one, and x multiplied by x_scale (N, 1, 1, C_in) per image and channel first
        when given."""
        if self.uses_convkit:
            y = self._call(x, r, x_scale)
        else:
            y = self._transpose_numpy(self._unfused_input(x, x_scale))
        if self.residual == "before" and not self.fuse_residual:
            y += r
        if not self.fuse_activation:
            y = numerics.apply_activation(y, self.activation, inplace=True)
            if self.linear is not None:
                y *= np.float32(self.linear[0])
                y += np.float32(self.linear[1])
        if self.residual == "after" and not self.fuse_residual:
            y += r
        return y

    def _transpose_numpy(self, x):
        """The transposed convolution in numpy: one matrix product per tap and group, scattered
        into the uncropped output, then cropped by the pads."""
        n, h, w_in, c_in = x.shape
        kh, kw, c_out_g, _ = self.w.shape
        (sh, sw), (dh, dw) = self.params["stride"], self.params["dilation"]
        g = self.params["groups"]
        top, bottom, left, right = self.params["padding"]
        output_padding = self.params["output_padding"]
        oh = (h - 1) * sh - top - bottom + dh * (kh - 1) + output_padding[0] + 1
        ow = (w_in - 1) * sw - left - right + dw * (kw - 1) + output_padding[1] + 1
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
                 count_include_pad=False, backend=None, reuse_output=False):
        self.x_shape = tuple(x_shape)
        self.kwargs = dict(stride=stride, padding=pads, mode=mode, ceil_mode=ceil_mode,
                           count_include_pad=count_include_pad, backend=backend)
        self.window = window
        self.uses_convkit = True
        self.plan, self.impl_name, self.out = None, None, None
        if hasattr(ck, "Pool2d"):
            self.plan = ck.Pool2d(window, x_shape=self.x_shape, **self.kwargs)
            self.impl_name = implementation_name(self.plan)
            self.out = _output_buffer(self.plan, reuse_output)

    def run(self, x):
        if self.plan is not None:
            return self.plan.run(x, out=self.out)
        return ck.pool2d(x, self.window, **self.kwargs)
