"""Bad input raises convkit.Error (a ValueError) carrying the library's message and code, on every
backend: validation happens before any backend runs, so the message does not depend on it."""

import numpy as np
import pytest

import convkit

X = np.ones((2, 5, 7, 4), np.float32)
W = np.ones((3, 3, 4, 8), np.float32)


def check(call, code, message):
    with pytest.raises(convkit.Error) as info:
        call()
    assert str(info.value) == message
    assert info.value.code == code
    assert isinstance(info.value, ValueError)


CONV_ERRORS = [
    (lambda b: convkit.conv2d(X, W[:, :, :3], backend=b), "shape mismatch",
     "conv2d_forward: w: expected dims {3, 3, 4, 8} (KH, KW, C_in / groups, C_out), "
     "given {3, 3, 3, 8}"),
    (lambda b: convkit.conv2d(X, W, np.ones(7), backend=b), "shape mismatch",
     "conv2d_forward: b: expected 8 elements (C_out), given 7 elements"),
    (lambda b: convkit.conv2d(X, W, padding=-1, backend=b), "invalid argument",
     "conv2d_forward: params.pad.top: expected >= 0, given -1"),
    (lambda b: convkit.conv2d(X, W, stride=(1, 0), backend=b), "invalid argument",
     "conv2d_forward: params.stride_w: expected >= 1, given 0"),
    (lambda b: convkit.conv2d(X, W, groups=3, backend=b), "invalid argument",
     "conv2d_forward: params.groups: expected a divisor of C_in = 4, given 3"),
    (lambda b: convkit.conv2d(X[:, :2], W, backend=b), "invalid argument",
     "conv2d_forward: x height (H + pad.top + pad.bottom): expected a padded input extent >= the "
     "(dilated) window extent 3, given 2 + 0 + 0 = 2"),
    (lambda b: convkit.conv2d(X, W, dilation=4, backend=b), "invalid argument",
     "conv2d_forward: x height (H + pad.top + pad.bottom): expected a padded input extent >= the "
     "(dilated) window extent 9, given 5 + 0 + 0 = 5"),
    (lambda b: convkit.conv2d(X, W, stride=1.5, backend=b), "invalid argument",
     "conv2d_forward: stride: expected an int or a pair of ints (h, w), given 1.5"),
    (lambda b: convkit.conv2d(X, W, padding=(1, 2, 3), backend=b), "invalid argument",
     "conv2d_forward: padding: expected an int, a pair (pad_h, pad_w) or a 4-tuple "
     "(top, bottom, left, right), given (1, 2, 3)"),
    (lambda b: convkit.conv2d(X, W, activation="swish", backend=b), "invalid argument",
     "conv2d_forward: activation: expected None, 'relu', 'relu6', 'sigmoid', 'tanh', 'silu', "
     "'hardswish', 'gelu', ('clip', lo, hi), ('leaky_relu', alpha), ('hardsigmoid', alpha, "
     "beta), ('linear', scale, shift) or a list [activation, ('linear', scale, shift)], given "
     "'swish'"),
    (lambda b: convkit.conv2d(X[0], W, backend=b), "shape mismatch",
     "conv2d_forward: x: expected a 4-D array (N, H, W, C), given shape (5, 7, 4)"),
    (lambda b: convkit.conv2d(X, W[0], backend=b), "shape mismatch",
     "conv2d_forward: w: expected a 4-D array (KH, KW, C_in / groups, C_out), given shape "
     "(3, 4, 8)"),
    (lambda b: convkit.conv2d(X, W, padding=2**70, backend=b), "invalid argument",
     "conv2d_forward: padding: expected an int that fits in int64, given "
     "1180591620717411303424"),
    (lambda b: convkit.conv2d_backward(np.ones((2, 3, 4, 8)), X, W, backend=b), "shape mismatch",
     "conv2d_backward: dy: expected dims {2, 3, 5, 8}, given {2, 3, 4, 8}"),
    (lambda b: convkit.conv2d_backward(np.ones((2, 3, 5, 8)), X, W[..., :7], groups=2,
                                       backend=b), "shape mismatch",
     "conv2d_backward: w: expected C_out (dims[3]) >= 1 and a multiple of groups = 2, "
     "given {3, 3, 4, 7}"),
]

POOL_ERRORS = [
    (lambda b: convkit.pool2d(X, 2, padding=2, backend=b), "invalid argument",
     "pool2d_forward: params.pad.top: expected < window_h = 2 (every window must touch the "
     "input), given 2"),
    (lambda b: convkit.pool2d(X, 2, mode="mean", backend=b), "invalid argument",
     "pool2d_forward: mode: expected 'max' or 'average', given 'mean'"),
    (lambda b: convkit.pool2d(X, (2, 2, 2), backend=b), "invalid argument",
     "pool2d_forward: window: expected an int or a pair of ints (h, w), given (2, 2, 2)"),
    (lambda b: convkit.pool2d(X, 6, backend=b), "invalid argument",
     "pool2d_forward: x height (H + pad.top + pad.bottom): expected a padded input extent >= "
     "the (dilated) window extent 6, given 5 + 0 + 0 = 5"),
    (lambda b: convkit.pool2d(X, 0, backend=b), "invalid argument",
     "pool2d_forward: params.window_h: expected >= 1, given 0"),
    (lambda b: convkit.pool2d_backward(np.ones((2, 2, 3, 4)), X, 3, backend=b), "shape mismatch",
     "pool2d_backward: dy: expected dims {2, 1, 2, 4}, given {2, 2, 3, 4}"),
    (lambda b: convkit.pool_forward(X, {"f": 9, "stride": 1}, backend=b), "invalid argument",
     "pool2d_forward: x height (H + pad.top + pad.bottom): expected a padded input extent >= "
     "the (dilated) window extent 9, given 5 + 0 + 0 = 5"),
]

SEED_ERRORS = [
    (lambda b: convkit.conv_forward(X, W, np.ones((1, 1, 1, 8)), {"pad": 1}, backend=b),
     "invalid argument",
     "conv_forward: hparameters: expected a dict with key 'stride', given {'pad': 1}"),
    (lambda b: convkit.pool_forward(X, {"stride": 1}, backend=b), "invalid argument",
     "pool_forward: hparameters: expected a dict with key 'f', given {'stride': 1}"),
    (lambda b: convkit.conv_single_step(np.ones((3, 3, 2)), np.ones((3, 3, 3)), 1.0, backend=b),
     "shape mismatch",
     "conv_single_step: W: expected the shape of a_slice_prev (3, 3, 2), given shape (3, 3, 3)"),
    (lambda b: convkit.conv_single_step(np.ones((3, 3)), np.ones((3, 3)), 1.0, backend=b),
     "shape mismatch",
     "conv_single_step: a_slice_prev: expected shape (f, f, n_C_prev), given shape (3, 3)"),
    (lambda b: convkit.create_mask_from_window(np.ones(3), backend=b), "shape mismatch",
     "create_mask_from_window: x: expected shape (f, f), given shape (3,)"),
    (lambda b: convkit.distribute_value(1.0, 3, backend=b), "invalid argument",
     "distribute_value: shape: expected a pair (n_H, n_W), given 3"),
    (lambda b: convkit.zero_pad(X, -1, backend=b), "invalid argument",
     "zero_pad: pad.top: expected >= 0, given -1"),
    (lambda b: convkit.pool_backward(np.ones((2, 2, 3, 4)), (X, {"f": 2, "stride": 2}),
                                     mode="min", backend=b), "invalid argument",
     "pool2d_backward: mode: expected 'max' or 'average', given 'min'"),
]


@pytest.mark.parametrize("call,code,message", CONV_ERRORS + POOL_ERRORS + SEED_ERRORS)
def test_error_message(backend, call, code, message):
    check(lambda: call(backend), code, message)


def test_unknown_backend():
    names = ", ".join(["auto", *convkit.backends()])
    for call, op in [(lambda: convkit.conv2d(X, W, backend="gpu"), "conv2d_forward"),
                     (lambda: convkit.pool2d(X, 2, backend="gpu"), "pool2d_forward"),
                     (lambda: convkit.zero_pad(X, 1, backend="gpu"), "zero_pad"),
                     (lambda: convkit.distribute_value(1.0, (2, 2), backend="gpu"),
                      "pool2d_backward")]:
        check(call, "backend unavailable", f"{op}: backend: expected one of {names}, given 'gpu'")


def test_non_numeric_array_is_a_type_error():
    with pytest.raises(TypeError):
        convkit.conv2d(np.array([[["a"]]]), W)


def test_error_leaves_nothing_behind():
    """A failed call returns no partial result and the next call works."""
    with pytest.raises(convkit.Error):
        convkit.conv2d(X, W[:, :, :3])
    assert convkit.conv2d(X, W, padding=1).shape == (2, 5, 7, 8)
