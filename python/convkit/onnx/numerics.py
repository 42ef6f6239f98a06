"""Activation functions in numpy, with the semantics of ONNX and of convkit's fused activations.

Used by glue ops and by the layer adapter when a fused activation is not available in convkit.
All take and return float32 arrays and may work in place on a fresh array they own (`inplace`).
"""

import numpy as np


def erf(x):
    """erf in float64 (numpy has none): Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7."""
    x = np.asarray(x, dtype=np.float64)
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 +
                                                                        t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def sigmoid(x):
    with np.errstate(over="ignore"):
        y = np.negative(x, dtype=np.float32) if x.dtype == np.float32 else -x
        np.exp(y, out=y)
        y += 1
        return np.reciprocal(y, out=y)


def relu(x):
    return np.maximum(x, 0)


def clip(x, lo, hi):
    y = x
    if lo is not None and lo > -np.inf:
        y = np.maximum(y, np.asarray(lo, dtype=x.dtype))
    if hi is not None and hi < np.inf:
        y = np.minimum(y, np.asarray(hi, dtype=x.dtype))
    return y if y is not x else x.copy()


def hardsigmoid(x, alpha, beta):
    y = x * np.float32(alpha)
    y += np.float32(beta)
    return np.clip(y, 0, 1, out=y)


def hardswish(x):
    return x * hardsigmoid(x, 1.0 / 6.0, 0.5)


def silu(x):
    return x * sigmoid(x)


def gelu(x):
    return (0.5 * x.astype(np.float64) * (1.0 + erf(x / np.sqrt(2.0)))).astype(x.dtype)


def gelu_tanh(x):
    x64 = x.astype(np.float64)
    inner = np.sqrt(2.0 / np.pi) * (x64 + 0.044715 * x64 ** 3)
    return (0.5 * x64 * (1.0 + np.tanh(inner))).astype(x.dtype)


def leaky_relu(x, alpha):
    return np.where(x < 0, x * np.float32(alpha), x).astype(x.dtype, copy=False)


def apply_activation(x, activation, inplace=False):
    """x after convkit's activation spec (None, a name, or a tuple such as ("clip", lo, hi)).
    inplace: x is a fresh float32 array the caller owns, which may be overwritten and returned."""
    if activation is None:
        return x
    name, args = (activation, ()) if isinstance(activation, str) else (activation[0],
                                                                       activation[1:])
    out = x if inplace else None
    if name == "relu":
        return np.maximum(x, 0, out=out)
    if name in ("relu6", "clip"):
        lo, hi = (0.0, 6.0) if name == "relu6" else args
        return np.clip(x, lo, hi, out=out)
    if name == "leaky_relu":
        return leaky_relu(x, *args)
    if name == "sigmoid":
        return sigmoid(x)
    if name == "tanh":
        return np.tanh(x, out=out)
    if name == "silu":
        return np.multiply(x, sigmoid(x), out=out)
    if name == "hardswish":
        return np.multiply(x, hardsigmoid(x, 1.0 / 6.0, 0.5), out=out)
    if name == "hardsigmoid":
        return hardsigmoid(x, *args)
    if name == "gelu":
        return gelu(x)
    raise ValueError(f"unknown activation {activation!r}")
