"""The seed assignment's test cells through convkit's Python API, on every backend.

Inputs are drawn exactly as the seed draws them (np.random.seed(1), then np.random.randn in its
order and shapes). Expected values are the ones the seed texts print (shared/seeds/002_*, 003_*);
where the seeds print the code of a cell but not its output (conv_forward on 2x5x7x4 and
pool_forward with stride 1 in 003), the values are the Coursera notebook's expected output, which
the float64 oracle reproduces (test_oracle.py).

convkit computes in float32 on the float32-rounded inputs, so comparisons use a relative tolerance
of 1e-5 with an absolute floor of 1e-5; the seed's own 1e-15 checks of copied values are made
against the float32-rounded input instead.
"""

import numpy as np
import pytest

import convkit

RTOL = 1e-5
ATOL = 1e-5


def assert_close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def test_zero_pad_pad3(backend):
    np.random.seed(1)
    x = np.random.randn(4, 3, 3, 2)
    x_pad = convkit.zero_pad(x, 3, backend=backend)
    assert type(x_pad) == np.ndarray and x_pad.dtype == np.float32
    assert x_pad.shape == (4, 9, 9, 2)
    assert np.array_equal(x_pad[0, 0:2, :, 0], np.zeros((2, 9)))
    assert np.array_equal(x_pad[0, :, 7:9, 1].transpose(), np.zeros((2, 9)))
    assert np.array_equal(x_pad[:, 3:6, 3:6, :], x.astype(np.float32))
    assert np.count_nonzero(x_pad) == x.size


def test_zero_pad_pad2_prints(backend):
    np.random.seed(1)
    x = np.random.randn(4, 3, 3, 2)
    x_pad = convkit.zero_pad(x, 2, backend=backend)
    assert x_pad.shape == (4, 7, 7, 2)
    assert np.array_equal(x_pad[1, 1], np.zeros((7, 2)))
    printed_x11 = [[0.90085595, -0.68372786], [-0.12289023, -0.93576943], [-0.26788808, 0.53035547]]
    assert_close(x_pad[1, 3, 2:5], printed_x11, "x[1, 1] inside x_pad")


def test_conv_single_step(backend):
    np.random.seed(1)
    a_slice_prev = np.random.randn(4, 4, 3)
    W = np.random.randn(4, 4, 3)
    b = np.random.randn(1, 1, 1)
    Z = convkit.conv_single_step(a_slice_prev, W, b, backend=backend)
    assert type(Z) == np.float64 or type(Z) == np.float32
    assert np.isclose(Z, -6.999089450680221)
    assert_close(Z, -6.99908945068, "Z")


def test_conv_forward_2x5x7x4(backend):
    np.random.seed(1)
    A_prev = np.random.randn(2, 5, 7, 4)
    W = np.random.randn(3, 3, 4, 8)
    b = np.random.randn(1, 1, 1, 8)
    hparameters = {"pad": 1, "stride": 2}
    Z, cache_conv = convkit.conv_forward(A_prev, W, b, hparameters, backend=backend)
    assert Z.shape == (2, 3, 4, 8) and Z.dtype == np.float32
    assert_close(np.mean(Z), 0.5511276474566768, "Z's mean")
    z021 = [-2.17796037, 8.07171329, -0.5772704, 3.36286738,
            4.48113645, -2.89198428, 10.99288867, 3.03171932]
    assert_close(Z[0, 2, 1], z021, "Z[0,2,1]")
    assert_close(cache_conv[0][1][2][3], [-1.1191154, 1.9560789, -0.3264995, -1.34267579],
                 "cache_conv[0][1][2][3]")
    assert cache_conv[1] is W and cache_conv[2] is b and cache_conv[3] is hparameters


def test_conv_forward_10x4x4x3(backend):
    np.random.seed(1)
    A_prev = np.random.randn(10, 4, 4, 3)
    W = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    Z, cache_conv = convkit.conv_forward(A_prev, W, b, {"pad": 2, "stride": 2}, backend=backend)
    assert Z.shape == (10, 4, 4, 8)
    assert_close(np.mean(Z), 0.048995203528855794, "Z's mean")
    z321 = [-0.61490741, -6.7439236, -2.55153897, 1.75698377,
            3.56208902, 0.53036437, 5.18531798, 8.75898442]
    assert_close(Z[3, 2, 1], z321, "Z[3,2,1]")
    assert_close(cache_conv[0][1][2][3], [-0.20075807, 0.18656139, 0.41005165],
                 "cache_conv[0][1][2][3]")


def test_pool_forward_stride1(backend):
    np.random.seed(1)
    A_prev = np.random.randn(2, 5, 5, 3)
    hparameters = {"stride": 1, "f": 3}
    A, cache = convkit.pool_forward(A_prev, hparameters, mode="max", backend=backend)
    assert A.shape == (2, 3, 3, 3)
    assert_close(A[1, 1], [[1.96710175, 0.84616065, 1.27375593],
                           [1.96710175, 0.84616065, 1.23616403],
                           [1.62765075, 1.12141771, 1.2245077]], "max A[1, 1]")
    assert cache[0] is A_prev and cache[1] is hparameters
    A, cache = convkit.pool_forward(A_prev, hparameters, mode="average", backend=backend)
    assert A.shape == (2, 3, 3, 3)
    assert_close(A[1, 1], [[0.44497696, -0.00261695, -0.31040307],
                           [0.50811474, -0.23493734, -0.23961183],
                           [0.11872677, 0.17255229, -0.22112197]], "average A[1, 1]")


def test_pool_forward_stride2(backend):
    np.random.seed(1)
    A_prev = np.random.randn(2, 5, 5, 3)
    hparameters = {"stride": 2, "f": 3}
    A, _ = convkit.pool_forward(A_prev, hparameters, backend=backend)
    assert A.shape == (2, 2, 2, 3)
    assert_close(A[0], [[[1.74481176, 0.90159072, 1.65980218],
                         [1.74481176, 1.6924546, 1.65980218]],
                        [[1.13162939, 1.51981682, 2.18557541],
                         [1.13162939, 1.6924546, 2.18557541]]], "max A[0]")
    A, _ = convkit.pool_forward(A_prev, hparameters, mode="average", backend=backend)
    assert A.shape == (2, 2, 2, 3)
    assert_close(A[1], [[[-0.17313416, 0.32377198, -0.34317572],
                         [0.02030094, 0.14141479, -0.01231585]],
                        [[0.42944926, 0.08446996, -0.27290905],
                         [0.15077452, 0.28911175, 0.00123239]]], "average A[1]")


def test_pool_forward_2x4x4x3(backend):
    np.random.seed(1)
    A_prev = np.random.randn(2, 4, 4, 3)
    hparameters = {"stride": 2, "f": 3}
    A, _ = convkit.pool_forward(A_prev, hparameters, backend=backend)
    assert_close(A, [[[[1.74481176, 0.86540763, 1.13376944]]],
                     [[[1.13162939, 1.51981682, 2.18557541]]]], "max A")
    A, _ = convkit.pool_forward(A_prev, hparameters, mode="average", backend=backend)
    assert_close(A, [[[[0.02105773, -0.20328806, -0.40389855]]],
                     [[[-0.22154621, 0.51716526, 0.48155844]]]], "average A")


def test_conv_backward(backend):
    np.random.seed(1)
    A_prev = np.random.randn(10, 4, 4, 3)
    W = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    Z, cache_conv = convkit.conv_forward(A_prev, W, b, {"pad": 2, "stride": 2}, backend=backend)
    dA, dW, db = convkit.conv_backward(Z, cache_conv, backend=backend)
    for grad in (dA, dW, db):
        assert type(grad) == np.ndarray and grad.dtype == np.float32
    assert dA.shape == (10, 4, 4, 3)
    assert dW.shape == (2, 2, 3, 8)
    assert db.shape == (1, 1, 1, 8)
    assert np.isclose(np.mean(dA), 1.4524377)
    assert np.isclose(np.mean(dW), 1.7269914)
    assert np.isclose(np.mean(db), 7.8392325)
    assert_close(np.mean(dA), 1.45243777754, "dA_mean")
    assert_close(np.mean(dW), 1.72699145831, "dW_mean")
    assert_close(np.mean(db), 7.83923256462, "db_mean")


def test_create_mask_from_window(backend):
    np.random.seed(1)
    x = np.random.randn(2, 3)
    mask = convkit.create_mask_from_window(x, backend=backend)
    assert np.array_equal(mask, [[True, False, False], [False, False, False]])
    x = np.array([[-1, 2, 3], [2, -3, 2], [1, 5, -2]])
    y = np.array([[False, False, False], [False, False, False], [False, True, False]])
    mask = convkit.create_mask_from_window(x, backend=backend)
    assert type(mask) == np.ndarray
    assert mask.shape == x.shape
    assert mask.dtype == np.bool_
    assert np.array_equal(mask, y)


def test_create_mask_from_window_ties_first_maximum(backend):
    # The seed's (x == np.max(x)) would mark both 3s; convkit marks the first, as PyTorch does.
    mask = convkit.create_mask_from_window(np.array([[1, 3], [3, 0]]), backend=backend)
    assert np.array_equal(mask, [[False, True], [False, False]])


def test_distribute_value(backend):
    a = convkit.distribute_value(2, (2, 2), backend=backend)
    assert type(a) == np.ndarray
    assert a.shape == (2, 2)
    assert np.sum(a) == 2
    assert np.array_equal(a, [[0.5, 0.5], [0.5, 0.5]])
    a = convkit.distribute_value(100, (10, 10), backend=backend)
    assert a.shape == (10, 10)
    assert np.sum(a) == 100


def test_pool_backward(backend):
    np.random.seed(1)
    A_prev = np.random.randn(5, 5, 3, 2)
    hparameters = {"stride": 1, "f": 2}
    A, cache = convkit.pool_forward(A_prev, hparameters, backend=backend)
    assert A.shape == (5, 4, 2, 2)
    assert cache[0].shape == (5, 5, 3, 2)
    dA = np.random.randn(5, 4, 2, 2)
    assert_close(np.mean(dA), 0.145713902729, "mean of dA")

    dA_prev1 = convkit.pool_backward(dA, cache, mode="max", backend=backend)
    assert type(dA_prev1) == np.ndarray
    assert dA_prev1.shape == (5, 5, 3, 2)
    assert_close(dA_prev1[1, 1], [[0, 0], [5.05844394, -1.68282702], [0, 0]], "max dA_prev[1,1]")

    dA_prev2 = convkit.pool_backward(dA, cache, mode="average", backend=backend)
    assert dA_prev2.shape == (5, 5, 3, 2)
    assert_close(dA_prev2[1, 1], [[0.08485462, 0.2787552],
                                  [1.26461098, -0.25749373],
                                  [1.17975636, -0.53624893]], "average dA_prev[1,1]")


@pytest.mark.parametrize("name", ["conv_forward", "pool_forward"])
def test_default_backend_matches(name, backend):
    """backend=None ($CONVKIT_BACKEND or auto) and an explicit backend agree on the seed data."""
    np.random.seed(1)
    A_prev = np.random.randn(2, 5, 7, 4)
    W = np.random.randn(3, 3, 4, 8)
    b = np.random.randn(1, 1, 1, 8)
    if name == "conv_forward":
        run = lambda chosen: convkit.conv_forward(A_prev, W, b, {"pad": 1, "stride": 2},
                                                  backend=chosen)[0]
    else:
        run = lambda chosen: convkit.pool_forward(A_prev, {"f": 3, "stride": 2},
                                                  backend=chosen)[0]
    np.testing.assert_allclose(run(None), run(backend), rtol=RTOL, atol=ATOL)
