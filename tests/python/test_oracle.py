"""convkit against the float64 numpy oracle (seed_oracle.py) on random shapes, on every backend.

Two kinds of data, as DESIGN §4 asks:
- integer-valued fills small enough that every partial sum is exact in float32: results must equal
  the oracle bit for bit, whatever the backend's summation order;
- real-valued (normal) fills: agreement within a tolerance that grows with the reduction length.
The oracle runs on the float32-rounded inputs, so both see the same numbers.
"""

import numpy as np
import pytest

import convkit
import seed_oracle as oracle


def real_fill(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def integer_fill(rng, shape, low=-3, high=3):
    return rng.integers(low, high + 1, size=shape).astype(np.float32)


def assert_matches(actual, expected, reduction_length, what):
    """Within float32 rounding for a sum of `reduction_length` products of normal values."""
    assert actual.dtype == np.float32 and actual.shape == expected.shape, what
    atol = 2e-6 * max(reduction_length, 1) ** 0.5 * 8
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=atol, err_msg=what)
    assert np.count_nonzero(expected) == 0 or np.count_nonzero(actual) > 0, what


def assert_exact(actual, expected, what):
    assert actual.dtype == np.float32 and actual.shape == expected.shape, what
    mismatch = np.argwhere(actual != expected.astype(np.float32))
    if mismatch.size:
        where = tuple(mismatch[0])
        pytest.fail(f"{what}: {len(mismatch)} elements differ; first at {where}: "
                    f"expected {expected[where]!r}, given {actual[where]!r}")


# ---- The seed's functions on random shapes (square kernels, symmetric pads, as the seed has). ----

SEED_CONV_CASES = [
    # (m, n_H_prev, n_W_prev, n_C_prev, f, n_C, pad, stride)
    (1, 5, 5, 1, 3, 1, 0, 1),
    (2, 7, 9, 3, 3, 4, 0, 2),
    (2, 6, 5, 2, 2, 3, 1, 1),
    (3, 8, 8, 5, 3, 2, 2, 3),
    (1, 4, 7, 3, 1, 6, 0, 1),
    (2, 9, 6, 4, 5, 3, 2, 2),
    (1, 3, 3, 2, 3, 17, 0, 1),
    (2, 5, 4, 16, 2, 3, 1, 2),
]


def seed_conv_case(fill, rng, m, h, w, c, f, n_c, pad, stride):
    """A_prev, W, b and hparameters of a case, and its description for failure messages."""
    hparameters = {"pad": pad, "stride": stride}
    what = f"A_prev {(m, h, w, c)} W {(f, f, c, n_c)} {hparameters}"
    A_prev, W, b = fill(rng, (m, h, w, c)), fill(rng, (f, f, c, n_c)), fill(rng, (1, 1, 1, n_c))
    return A_prev, W, b, hparameters, what


@pytest.mark.parametrize("m,h,w,c,f,n_c,pad,stride", SEED_CONV_CASES)
def test_conv_forward(backend, rng, m, h, w, c, f, n_c, pad, stride):
    A_prev, W, b, hparameters, what = seed_conv_case(real_fill, rng, m, h, w, c, f, n_c, pad,
                                                     stride)
    Z, _ = convkit.conv_forward(A_prev, W, b, hparameters, backend=backend)
    assert_matches(Z, oracle.conv_forward(A_prev, W, b, hparameters), f * f * c,
                   f"Z: {what} on {backend}")


@pytest.mark.parametrize("m,h,w,c,f,n_c,pad,stride", SEED_CONV_CASES)
def test_conv_backward(backend, rng, m, h, w, c, f, n_c, pad, stride):
    A_prev, W, b, hparameters, what = seed_conv_case(real_fill, rng, m, h, w, c, f, n_c, pad,
                                                     stride)
    what += f" on {backend}"
    n_H, n_W = (h - f + 2 * pad) // stride + 1, (w - f + 2 * pad) // stride + 1
    dZ = real_fill(rng, (m, n_H, n_W, n_c))
    dA_prev, dW, db = convkit.conv_backward(dZ, (A_prev, W, b, hparameters), backend=backend)
    e_dA, e_dW, e_db = oracle.conv_backward(dZ, A_prev, W, hparameters)
    assert_matches(dA_prev, e_dA, f * f * n_c, "dA_prev: " + what)
    assert_matches(dW, e_dW, m * n_H * n_W, "dW: " + what)
    assert_matches(db, e_db, m * n_H * n_W, "db: " + what)


@pytest.mark.parametrize("m,h,w,c,f,n_c,pad,stride", SEED_CONV_CASES)
def test_conv_integer_data_exact(backend, rng, m, h, w, c, f, n_c, pad, stride):
    A_prev, W, b, hparameters, what = seed_conv_case(integer_fill, rng, m, h, w, c, f, n_c, pad,
                                                     stride)
    what += f" on {backend}"
    Z, cache = convkit.conv_forward(A_prev, W, b, hparameters, backend=backend)
    assert_exact(Z, oracle.conv_forward(A_prev, W, b, hparameters), "Z: " + what)
    dZ = integer_fill(rng, Z.shape)
    dA_prev, dW, db = convkit.conv_backward(dZ, cache, backend=backend)
    e_dA, e_dW, e_db = oracle.conv_backward(dZ, A_prev, W, hparameters)
    assert_exact(dA_prev, e_dA, "dA_prev: " + what)
    assert_exact(dW, e_dW, "dW: " + what)
    assert_exact(db, e_db, "db: " + what)


SEED_POOL_CASES = [
    # (m, n_H_prev, n_W_prev, n_C, f, stride)
    (1, 4, 4, 1, 2, 2),
    (2, 5, 5, 3, 3, 1),
    (2, 5, 5, 3, 3, 2),  # stride 2 with overlapping windows: where the stride-less solution fails
    (3, 7, 6, 2, 2, 1),
    (2, 9, 8, 5, 3, 3),
    (1, 6, 9, 17, 4, 2),
    (2, 3, 3, 4, 3, 1),
]


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("m,h,w,c,f,stride", SEED_POOL_CASES)
def test_pool_forward_backward(backend, rng, mode, m, h, w, c, f, stride):
    hparameters = {"f": f, "stride": stride}
    what = f"A_prev {(m, h, w, c)} {hparameters} {mode} on {backend}"
    A_prev = real_fill(rng, (m, h, w, c))
    A, cache = convkit.pool_forward(A_prev, hparameters, mode=mode, backend=backend)
    assert_matches(A, oracle.pool_forward(A_prev, hparameters, mode), f * f, "A: " + what)
    dA = real_fill(rng, A.shape)
    dA_prev = convkit.pool_backward(dA, cache, mode=mode, backend=backend)
    assert_matches(dA_prev, oracle.pool_backward(dA, A_prev, hparameters, mode), f * f,
                   "dA_prev: " + what)


@pytest.mark.parametrize("m,h,w,c,f,stride", SEED_POOL_CASES)
def test_max_pool_ties_exact(backend, rng, m, h, w, c, f, stride):
    """Few distinct values, so windows hold ties: the gradient goes to the first maximum only."""
    hparameters = {"f": f, "stride": stride}
    what = f"A_prev {(m, h, w, c)} {hparameters} on {backend}"
    A_prev = integer_fill(rng, (m, h, w, c), 0, 2)
    A, cache = convkit.pool_forward(A_prev, hparameters, backend=backend)
    assert_exact(A, oracle.pool_forward(A_prev, hparameters), "A: " + what)
    dA = integer_fill(rng, A.shape)
    dA_prev = convkit.pool_backward(dA, cache, backend=backend)
    assert_exact(dA_prev, oracle.pool_backward(dA, A_prev, hparameters), "dA_prev: " + what)


def test_helpers_random(backend, rng):
    for shape in [(1, 1), (2, 3), (3, 3), (4, 5)]:
        x = real_fill(rng, shape)
        mask = convkit.create_mask_from_window(x, backend=backend)
        assert np.array_equal(mask, oracle.create_mask_from_window(x)), x
        dz = float(rng.standard_normal())
        a = convkit.distribute_value(dz, shape, backend=backend)
        np.testing.assert_allclose(a, oracle.distribute_value(np.float32(dz), shape), rtol=1e-6)
    for pad in [0, 1, 4]:
        x = real_fill(rng, (2, 3, 4, 5))
        assert np.array_equal(convkit.zero_pad(x, pad, backend=backend), oracle.zero_pad(x, pad))


# ---- The full API: what the seed does not have. ----

CONV_CASES = [
    # (x shape, (KH, KW), C_out, stride, padding, dilation, groups, activation)
    ((2, 7, 8, 4), (3, 3), 6, 1, (1, 2, 0, 1), 1, 1, None),
    ((1, 9, 9, 3), (3, 2), 5, (2, 1), (2, 1), 2, 1, "relu"),
    ((2, 6, 7, 4), (3, 3), 4, 1, 1, 1, 4, None),  # depthwise
    ((2, 8, 5, 6), (2, 3), 9, (1, 2), 0, (2, 1), 3, "relu"),
    ((1, 5, 5, 8), (1, 1), 16, 2, 0, 1, 2, None),
    ((3, 4, 11, 2), (3, 5), 3, 3, (0, 2, 1, 0), 1, 1, None),
    ((0, 5, 5, 3), (3, 3), 2, 1, 1, 1, 1, None),  # an empty batch: dw and db are zeros
]


def conv_case(rng, x_shape, kernel, oc, stride, padding, dilation, groups):
    x = real_fill(rng, x_shape)
    w = real_fill(rng, (*kernel, x_shape[3] // groups, oc))
    b = real_fill(rng, (oc,))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, b, kw, kernel[0] * kernel[1] * w.shape[2], f"x {x_shape} w {w.shape} {kw}"


@pytest.mark.parametrize("x_shape,kernel,oc,stride,padding,dilation,groups,activation", CONV_CASES)
def test_conv2d(backend, rng, x_shape, kernel, oc, stride, padding, dilation, groups, activation):
    x, w, b, kw, reduction, what = conv_case(rng, x_shape, kernel, oc, stride, padding, dilation,
                                             groups)
    y = convkit.conv2d(x, w, b, activation=activation, backend=backend, **kw)
    assert_matches(y, oracle.conv2d(x, w, b, activation=activation, **kw), reduction,
                   f"y: {what} {activation} on {backend}")


@pytest.mark.parametrize("x_shape,kernel,oc,stride,padding,dilation,groups,activation", CONV_CASES)
def test_conv2d_backward(backend, rng, x_shape, kernel, oc, stride, padding, dilation, groups,
                         activation):
    x, w, _, kw, reduction, what = conv_case(rng, x_shape, kernel, oc, stride, padding, dilation,
                                             groups)
    what += f" on {backend}"
    dy = real_fill(rng, oracle.conv2d(x, w, **kw).shape)
    dx, dw, db = convkit.conv2d_backward(dy, x, w, backend=backend, **kw)
    e_dx, e_dw, e_db = oracle.conv2d_backward(dy, x, w, **kw)
    assert db.shape == (oc,)
    pixels = dy.shape[0] * dy.shape[1] * dy.shape[2]
    assert_matches(dx, e_dx, reduction, "dx: " + what)
    assert_matches(dw, e_dw, pixels, "dw: " + what)
    assert_matches(db, e_db, pixels, "db: " + what)


def test_conv2d_without_bias(backend, rng):
    x, w = real_fill(rng, (2, 5, 6, 3)), real_fill(rng, (3, 3, 3, 4))
    assert_matches(convkit.conv2d(x, w, padding=1, backend=backend),
                   oracle.conv2d(x, w, padding=1), 27, "no bias")


POOL_CASES = [
    # (x shape, window, stride, padding, ceil_mode, count_include_pad)
    ((2, 7, 7, 3), 3, 2, 1, False, False),
    ((2, 7, 7, 3), 3, 2, 1, False, True),
    ((1, 8, 6, 5), (2, 3), (2, 1), (1, 0, 1, 2), False, False),
    ((2, 6, 6, 2), 3, 2, 0, True, False),
    ((2, 6, 6, 2), 3, 2, 1, True, True),
    ((1, 5, 8, 4), 2, None, 0, False, False),
    ((3, 9, 5, 17), (3, 2), (3, 2), (1, 1), True, False),
]


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("x_shape,window,stride,padding,ceil_mode,count_include_pad", POOL_CASES)
def test_pool2d_full_api(backend, rng, mode, x_shape, window, stride, padding, ceil_mode,
                         count_include_pad):
    x = real_fill(rng, x_shape)
    kw = dict(stride=stride, padding=padding, mode=mode, ceil_mode=ceil_mode,
              count_include_pad=count_include_pad)
    what = f"x {x_shape} window {window} {kw} on {backend}"
    y = convkit.pool2d(x, window, backend=backend, **kw)
    area = np.prod(oracle.pair(window))
    assert_matches(y, oracle.pool2d(x, window, **kw), area, "y: " + what)
    dy = real_fill(rng, y.shape)
    dx = convkit.pool2d_backward(dy, x, window, backend=backend, **kw)
    assert_matches(dx, oracle.pool2d_backward(dy, x, window, **kw), area, "dx: " + what)


def test_max_pool_nan_propagates(backend):
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    x[0, 1, 0, 0] = np.nan
    x[0, 1, 1, 0] = np.nan
    y = convkit.pool2d(x, 2, backend=backend)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 1, 1, 0])
    dx = convkit.pool2d_backward(np.ones_like(y), x, 2, backend=backend)
    # The first NaN of the window (row-major) gets the gradient.
    assert dx[0, 1, 0, 0] == 1 and dx[0, 1, 1, 0] == 0
