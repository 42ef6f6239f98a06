"""The assignment's functions ("Convolutional Neural Networks: Step by Step"), computed by convkit.

Same names, arguments and results as the numpy assignment, plus `backend=None` (see the package
docstring). Results are float32. Two deliberate differences from the circulating solutions:
pool_backward honours the stride, and create_mask_from_window (and max pool_backward) marks only the
first maximal element of a window when several tie.
"""

import numpy as np

from . import _convkit
from ._convkit import Error


def _error(code, op, arg, expected, given):
    """A convkit.Error in the C++ library's format, with its code ("invalid argument", ...)."""
    error = Error(f"{op}: {arg}: expected {expected}, given {given}")
    error.code = code
    return error


def _hparameter(op, hparameters, key):
    try:
        return hparameters[key]
    except (KeyError, TypeError, IndexError):
        raise _error("invalid argument", op, "hparameters", f"a dict with key '{key}'",
                     repr(hparameters)) from None


def _shape_error(op, arg, expected, given):
    return _error("shape mismatch", op, arg, expected, f"shape {tuple(given.shape)}")


def zero_pad(X, pad, backend=None):
    """Pads X (m, n_H, n_W, n_C) with zeros on the height and width axes.

    pad: an int (every side), a pair (pad_h, pad_w) or (top, bottom, left, right).
    Returns X_pad (m, n_H + 2 * pad, n_W + 2 * pad, n_C). Zero padding is the same on every
    backend: `backend` is only checked.
    """
    if backend is not None and backend != "auto" and backend not in _convkit.backends():
        names = ", ".join(["auto", *_convkit.backends()])
        raise _error("backend unavailable", "zero_pad", "backend", f"one of {names}",
                     f"'{backend}'")
    return _convkit.zero_pad(np.asarray(X), pad)


def conv_single_step(a_slice_prev, W, b, backend=None):
    """One output of the convolution: sum(a_slice_prev * W) + b, as a float32 scalar.

    a_slice_prev, W: (f, f, n_C_prev); b: one element, e.g. of shape (1, 1, 1).
    """
    a_slice_prev = np.asarray(a_slice_prev)
    W = np.asarray(W)
    if a_slice_prev.ndim != 3:
        raise _shape_error("conv_single_step", "a_slice_prev", "shape (f, f, n_C_prev)",
                           a_slice_prev)
    if W.shape != a_slice_prev.shape:
        raise _shape_error(
            "conv_single_step", "W", f"the shape of a_slice_prev {a_slice_prev.shape}", W
        )
    b = np.asarray(b)
    Z = _convkit.conv2d(a_slice_prev[np.newaxis], W[..., np.newaxis], b, backend=backend)
    return Z[0, 0, 0, 0]


def conv_forward(A_prev, W, b, hparameters, backend=None):
    """Forward convolution.

    A_prev (m, n_H_prev, n_W_prev, n_C_prev); W (f, f, n_C_prev, n_C); b (1, 1, 1, n_C);
    hparameters {"pad": ..., "stride": ...}. Returns (Z, cache): Z (m, n_H, n_W, n_C) and the
    cache (A_prev, W, b, hparameters) that conv_backward takes.
    """
    pad = _hparameter("conv_forward", hparameters, "pad")
    stride = _hparameter("conv_forward", hparameters, "stride")
    Z = _convkit.conv2d(np.asarray(A_prev), np.asarray(W), np.asarray(b), stride=stride,
                        padding=pad, backend=backend)
    return Z, (A_prev, W, b, hparameters)


def conv_backward(dZ, cache, backend=None):
    """Backward convolution: (dA_prev, dW, db) given dZ and conv_forward's cache.

    dA_prev has A_prev's shape, dW W's, db (1, 1, 1, n_C).
    """
    A_prev, W, _, hparameters = cache
    pad = _hparameter("conv_backward", hparameters, "pad")
    stride = _hparameter("conv_backward", hparameters, "stride")
    dA_prev, dW, db = _convkit.conv2d_backward(
        np.asarray(dZ), np.asarray(A_prev), np.asarray(W), stride=stride, padding=pad,
        backend=backend
    )
    return dA_prev, dW, db.reshape(1, 1, 1, -1)


def pool_forward(A_prev, hparameters, mode="max", backend=None):
    """Forward pooling, mode "max" or "average", without padding.

    hparameters {"f": ..., "stride": ...}. Returns (A, cache): A (m, n_H, n_W, n_C) and the
    cache (A_prev, hparameters) that pool_backward takes.
    """
    f = _hparameter("pool_forward", hparameters, "f")
    stride = _hparameter("pool_forward", hparameters, "stride")
    A = _convkit.pool2d(np.asarray(A_prev), f, stride=stride, mode=mode, backend=backend)
    return A, (A_prev, hparameters)


def pool_backward(dA, cache, mode="max", backend=None):
    """Backward pooling: dA_prev (A_prev's shape) given dA and pool_forward's cache.

    Honours the stride. Max gives each gradient to the first maximal element of its window.
    """
    A_prev, hparameters = cache
    f = _hparameter("pool_backward", hparameters, "f")
    stride = _hparameter("pool_backward", hparameters, "stride")
    return _convkit.pool2d_backward(np.asarray(dA), np.asarray(A_prev), f, stride=stride,
                                    mode=mode, backend=backend)


def create_mask_from_window(x, backend=None):
    """A boolean array of x's shape (f_h, f_w), True at the first maximal element of x."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise _shape_error("create_mask_from_window", "x", "shape (f, f)", x)
    f_h, f_w = x.shape
    dx = _convkit.pool2d_backward(
        np.ones((1, 1, 1, 1), np.float32),
        x.reshape(1, f_h, f_w, 1),
        (f_h, f_w),
        mode="max",
        backend=backend,
    )
    return dx.reshape(f_h, f_w) != 0


def distribute_value(dz, shape, backend=None):
    """dz spread evenly over an array of shape (n_H, n_W): each entry dz / (n_H * n_W)."""
    try:
        n_H, n_W = shape
    except (TypeError, ValueError):
        raise _error("invalid argument", "distribute_value", "shape", "a pair (n_H, n_W)",
                     repr(shape)) from None
    dx = _convkit.pool2d_backward(
        np.full((1, 1, 1, 1), dz, np.float32),
        np.zeros((1, n_H, n_W, 1), np.float32),
        (n_H, n_W),
        mode="average",
        backend=backend,
    )
    return dx.reshape(n_H, n_W)
