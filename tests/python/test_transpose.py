"""convkit.conv2d_transpose against a numpy scatter oracle, on every backend.

The oracle is PyTorch's ConvTranspose2d written out in NHWC and float64: every input pixel adds
x * w over its (dilated, strided) window into the full output, then the pads crop it and
output_padding extends it at the bottom and right. Integer-valued data must match bit for bit;
real-valued data within float32 rounding.
"""

import math

import numpy as np
import pytest

import convkit


def pairs(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def scatter_oracle(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                   activation=None):
    """y (N, OH, OW, C_out) in float64. padding: int or (top, bottom, left, right)."""
    sh, sw = pairs(stride)
    dh, dw = pairs(dilation)
    oph, opw = pairs(output_padding)
    top, bottom, left, right = (padding,) * 4 if isinstance(padding, int) else padding
    n, h, wd, c_in = x.shape
    kh_n, kw_n, c_out_g, _ = w.shape
    c_in_g = c_in // groups
    full_h = (h - 1) * sh + dh * (kh_n - 1) + 1 + oph
    full_w = (wd - 1) * sw + dw * (kw_n - 1) + 1 + opw
    full = np.zeros((n, full_h, full_w, c_out_g * groups))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for g in range(groups):
        xg = x64[..., g * c_in_g:(g + 1) * c_in_g]
        for kh in range(kh_n):
            for kw in range(kw_n):
                wg = w64[kh, kw, :, g * c_in_g:(g + 1) * c_in_g]  # (C_out / groups, C_in / groups)
                rows = slice(kh * dh, kh * dh + (h - 1) * sh + 1, sh)
                cols = slice(kw * dw, kw * dw + (wd - 1) * sw + 1, sw)
                full[:, rows, cols, g * c_out_g:(g + 1) * c_out_g] += np.einsum(
                    "nhwi,oi->nhwo", xg, wg)
    y = full[:, top:full_h - bottom, left:full_w - right, :]
    if b is not None:
        y = y + np.asarray(b, dtype=np.float64).reshape(-1)
    if activation == "relu":
        y = np.maximum(y, 0.0)
    return y


CASES = [
    # (x shape, C_out, kernel, kwargs)
    ((1, 5, 6, 16), 8, 2, dict(stride=2)),
    ((2, 4, 5, 17), 15, 4, dict(stride=2, padding=1)),
    ((1, 6, 7, 3), 16, 3, dict(padding=1, activation="relu")),
    ((2, 5, 4, 3), 17, 3, dict(stride=2, padding=(1, 0, 2, 1), output_padding=1)),
    ((1, 4, 5, 15), 3, 3, dict(stride=(3, 2), padding=(0, 1, 2, 0), output_padding=(2, 1))),
    ((1, 5, 5, 16), 8, 3, dict(dilation=2, output_padding=1)),  # output_padding >= stride
    ((1, 5, 5, 6), 4, 3, dict(stride=2, padding=1, output_padding=1, groups=2)),
    ((1, 6, 7, 17), 17, 3, dict(stride=2, padding=1, output_padding=1, groups=17)),
    ((0, 4, 4, 8), 8, 2, dict(stride=2)),
]


def case_arrays(fill, rng, x_shape, c_out, k, kwargs, bias=True):
    groups = kwargs.get("groups", 1)
    x = fill(rng, x_shape)
    w = fill(rng, (k, k, c_out // groups, x_shape[3]))
    b = fill(rng, (c_out,)) if bias else None
    return x, w, b


def integer_fill(rng, shape):
    return rng.integers(-3, 4, size=shape).astype(np.float32)


def real_fill(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("x_shape,c_out,k,kwargs", CASES)
def test_integer_data_exact(backend, rng, x_shape, c_out, k, kwargs):
    x, w, b = case_arrays(integer_fill, rng, x_shape, c_out, k, kwargs)
    y = convkit.conv2d_transpose(x, w, b, backend=backend, **kwargs)
    expected = scatter_oracle(x, w, b, **kwargs)
    assert y.dtype == np.float32 and y.shape == expected.shape
    np.testing.assert_array_equal(y, expected.astype(np.float32))
    if y.size:
        assert np.count_nonzero(y) > y.size // 4


@pytest.mark.parametrize("x_shape,c_out,k,kwargs", CASES)
def test_real_data_close(backend, rng, x_shape, c_out, k, kwargs):
    x, w, b = case_arrays(real_fill, rng, x_shape, c_out, k, kwargs, bias=False)
    y = convkit.conv2d_transpose(x, w, b, backend=backend, **kwargs)
    expected = scatter_oracle(x, w, b, **kwargs)
    reduction = k * k * x_shape[3] // kwargs.get("groups", 1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5 * reduction ** 0.5 * 8)


@pytest.mark.parametrize("after", [False, True])
def test_residual(backend, rng, after):
    x, w, b = case_arrays(integer_fill, rng, (2, 4, 5, 16), 8, 4, {})
    kwargs = dict(stride=2, padding=1)
    z = scatter_oracle(x, w, b, **kwargs)
    r = integer_fill(rng, z.shape)
    y = convkit.conv2d_transpose(x, w, b, activation="relu", residual=r,
                                 residual_after_activation=after, backend=backend, **kwargs)
    expected = np.maximum(z, 0.0) + r if after else np.maximum(z + r, 0.0)
    np.testing.assert_array_equal(y, expected.astype(np.float32))
    with pytest.raises(convkit.Error, match="r: expected dims"):
        convkit.conv2d_transpose(x, w, b, residual=r[:, :-1], backend=backend, **kwargs)


def test_output_size_formula(backend, rng):
    # OH = (H - 1) * stride - top - bottom + dilation * (KH - 1) + output_padding + 1.
    x = integer_fill(rng, (1, 7, 3, 2))
    w = integer_fill(rng, (4, 2, 5, 2))
    y = convkit.conv2d_transpose(x, w, stride=(3, 2), padding=(2, 1, 0, 1), output_padding=(2, 0),
                                 dilation=(1, 2), backend=backend)
    assert y.shape == (1, 6 * 3 - 3 + 3 + 2 + 1, 2 * 2 - 1 + 2 + 0 + 1, 5)


def test_errors():
    x = np.ones((1, 4, 4, 8), np.float32)
    w = np.ones((3, 3, 4, 8), np.float32)
    with pytest.raises(convkit.Error, match="output_padding_h: expected < stride = 2 or < "
                                            "dilation = 1, given 2"):
        convkit.conv2d_transpose(x, w, stride=2, output_padding=2)
    with pytest.raises(convkit.Error, match="params.groups: expected a divisor of C_in = 8"):
        convkit.conv2d_transpose(x, w, groups=3)
    with pytest.raises(convkit.Error, match=r"w: expected dims \{3, 3, 4, 8\} \(KH, KW, "
                                            r"C_out / groups, C_in\), given \{3, 3, 4, 7\}"):
        convkit.conv2d_transpose(x, np.ones((3, 3, 4, 7), np.float32))
    with pytest.raises(convkit.Error, match="y height: expected an output extent >= 1"):
        convkit.conv2d_transpose(np.ones((1, 1, 4, 8), np.float32), w, padding=(2, 1, 0, 0))
    with pytest.raises(convkit.Error, match="activation"):
        convkit.conv2d_transpose(x, w, activation="swish_typo")
    with pytest.raises(convkit.Error, match="activation_alpha"):
        convkit.conv2d_transpose(x, w, activation=("clip", 2.0, 1.0))


@pytest.mark.parametrize("activation", ["tanh", "hardswish", ("leaky_relu", 0.5), ("clip", -2, 5),
                                        "silu", "gelu", ("hardsigmoid", 0.25, 0.5)])
def test_activations(backend, rng, activation):
    x, w, b = case_arrays(real_fill, rng, (1, 5, 4, 16), 8, 3, {})
    z = scatter_oracle(x, w, b, stride=2, padding=1).astype(np.float32).astype(np.float64)
    name = activation if isinstance(activation, str) else activation[0]
    f = {"tanh": np.tanh,
         "hardswish": lambda v: v * np.clip(v + 3, 0, 6) / 6,
         "leaky_relu": lambda v: np.where(v > 0, v, activation[1] * v) if name == "leaky_relu" else v,
         "clip": lambda v: np.clip(v, activation[1], activation[2]) if name == "clip" else v,
         "silu": lambda v: v / (1 + np.exp(-v)),
         "gelu": lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2))),
         "hardsigmoid": (lambda v: np.clip(activation[1] * v + activation[2], 0, 1))
         if name == "hardsigmoid" else None}[name]
    y = convkit.conv2d_transpose(x, w, b, stride=2, padding=1, activation=activation,
                                 backend=backend)
    # z is the float32 sum (its rounding differs per backend by a few ulp of the sum).
    np.testing.assert_allclose(y, f(z), rtol=1e-5, atol=1e-5)
