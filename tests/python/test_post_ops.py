"""conv2d's fused post-ops (DESIGN §3-§4): every activation form of the `activation` keyword and
the residual before or after it, against the float64 numpy oracle, on every backend (a backend
that refuses a post-op skips, with its reason); and the errors naming the argument."""

import math

import numpy as np
import pytest

import convkit
import seed_oracle as oracle

ERF = np.vectorize(math.erf)


def activate(z, activation):
    """The activation in float64, as DESIGN §4 defines it."""
    if activation is None:
        return z
    name, *params = activation if isinstance(activation, tuple) else (activation,)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "relu6":
        return np.clip(z, 0, 6)
    if name == "clip":
        return np.clip(z, params[0], params[1])
    if name == "leaky_relu":
        return np.where(z > 0, z, params[0] * z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "silu":
        return z / (1 + np.exp(-z))
    if name == "hardswish":
        return z * np.clip(z + 3, 0, 6) / 6
    if name == "hardsigmoid":
        return np.clip(params[0] * z + params[1], 0, 1)
    if name == "gelu":
        return z * (1 + ERF(z / math.sqrt(2))) / 2
    raise AssertionError(name)


ACTIVATIONS = [None, "relu", "relu6", "sigmoid", "tanh", "silu", "hardswish", "gelu",
               ("clip", -1.5, 2.0), ("leaky_relu", 0.1), ("hardsigmoid", 0.2, 0.5)]


def conv_case(rng, residual):
    """x, w, b, r of a 3x3 padded convolution and the oracle's z = conv + b (+ r before the
    activation)."""
    x = rng.standard_normal((2, 6, 7, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 17)).astype(np.float32)
    b = rng.standard_normal(17).astype(np.float32)
    r = rng.standard_normal((2, 6, 7, 17)).astype(np.float32)
    z = oracle.conv2d(x, w, b, padding=1)
    return x, w, b, r, z + r if residual == "before" else z


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("residual", [None, "before", "after"])
def test_post_ops_match_the_oracle(backend, rng, activation, residual):
    x, w, b, r, z = conv_case(rng, residual)
    expected = activate(z, activation) + (r if residual == "after" else 0)
    y = convkit.conv2d(x, w, b, padding=1, activation=activation,
                       residual=None if residual is None else r,
                       residual_after_activation=residual == "after", backend=backend)
    assert y.dtype == np.float32 and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=3e-5,
                               err_msg=f"{activation} residual {residual} on {backend}")


@pytest.mark.parametrize("activation", [None, "relu6", "hardswish", "sigmoid"], ids=str)
@pytest.mark.parametrize("residual", [None, "before", "after"])
def test_linear_after_the_activation_matches_the_oracle(backend, rng, activation, residual):
    """[activation, ('linear', s, t)]: y = s * act(z) + t, before a residual added after the
    activation (PP-LCNetV3's learnable affine), one-shot and through a plan."""
    x, w, b, r, z = conv_case(rng, residual)
    expected = -0.75 * activate(z, activation) + 1.25 + (r if residual == "after" else 0)
    spec = [activation, ("linear", -0.75, 1.25)] if activation else ("linear", -0.75, 1.25)
    kwargs = dict(residual_after_activation=residual == "after", backend=backend)
    try:
        y = convkit.conv2d(x, w, b, padding=1, activation=spec,
                           residual=None if residual is None else r, **kwargs)
    except convkit.Error as error:
        assert error.code == "unsupported", error
        pytest.skip(str(error))
    plan = convkit.Conv2d(w, b, x_shape=x.shape, padding=1, activation=spec, **kwargs)
    y_plan = plan.run(x, residual=None if residual is None else r)
    for got in (y, y_plan):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=3e-5,
                                   err_msg=f"{spec} residual {residual} on {backend}")


def test_linear_after_the_transposed_convolution(backend, rng):
    x = rng.standard_normal((1, 5, 4, 6)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 6)).astype(np.float32)
    plain = convkit.conv2d_transpose(x, w, stride=2, backend="reference")
    try:
        y = convkit.conv2d_transpose(x, w, stride=2, activation=("linear", 2.0, -1.0),
                                     backend=backend)
    except convkit.Error as error:
        assert error.code == "unsupported", error
        pytest.skip(str(error))
    np.testing.assert_allclose(y, 2 * plain - 1, rtol=1e-5, atol=1e-5)


def test_activation_keeps_nan(backend):
    x = np.array([np.nan, -2.0, 3.0], np.float32).reshape(1, 1, 3, 1)
    w = np.ones((1, 1, 1, 1), np.float32)
    for activation in ["relu", "tanh", ("leaky_relu", 0.5), ("clip", 0.0, 1.0)]:
        try:
            y = convkit.conv2d(x, w, activation=activation, backend=backend)
        except convkit.Error as error:
            assert error.code == "unsupported"
            continue
        assert np.isnan(y[0, 0, 0, 0]), (activation, backend)
        assert not np.isnan(y[0, 0, 1:]).any(), (activation, backend)


X = np.ones((1, 4, 4, 3), np.float32)
W = np.ones((1, 1, 3, 3), np.float32)
FORMS = ("None, 'relu', 'relu6', 'sigmoid', 'tanh', 'silu', 'hardswish', 'gelu', "
         "('clip', lo, hi), ('leaky_relu', alpha), ('hardsigmoid', alpha, beta), "
         "('linear', scale, shift) or a list [activation, ('linear', scale, shift)]")


@pytest.mark.parametrize("activation,given", [
    ("swish", "'swish'"),
    (("clip", 1.0), "('clip', 1.0)"),
    (("relu", 1.0), "('relu', 1.0)"),
    (("leaky_relu", "a"), "('leaky_relu', 'a')"),
    (3, "3"),
    (("linear", 1.0), "('linear', 1.0)"),
    (["relu", "relu"], "['relu', 'relu']"),
    ([("linear", 1.0, 2.0), "relu"], "[('linear', 1.0, 2.0), 'relu']"),
    ([("linear", 2.0, 0.0), ("linear", 1.0, 2.0)], "[('linear', 2.0, 0.0), ('linear', 1.0, 2.0)]"),
    (["relu", ("linear", 1.0, 2.0), "tanh"], "['relu', ('linear', 1.0, 2.0), 'tanh']"),
])
def test_bad_activation_names_the_argument(activation, given):
    with pytest.raises(convkit.Error) as info:
        convkit.conv2d(X, W, activation=activation)
    assert str(info.value) == f"conv2d_forward: activation: expected {FORMS}, given {given}"
    assert info.value.code == "invalid argument"


def test_bad_parameters_are_named():
    with pytest.raises(convkit.Error) as info:
        convkit.conv2d(X, W, activation=("clip", 6, 0))
    assert str(info.value) == ("conv2d_forward: params.activation_alpha: expected clip's lo "
                               "(alpha) <= hi (beta) = 0, given 6")
    with pytest.raises(convkit.Error) as info:
        convkit.conv2d(X, W, activation=("leaky_relu", float("nan")))
    assert "params.activation_alpha: expected a finite value for leaky_relu" in str(info.value)
    with pytest.raises(convkit.Error) as info:
        convkit.conv2d(X, W, activation=["relu", ("linear", float("inf"), 0.0)])
    assert str(info.value) == ("conv2d_forward: params.post_scale: expected a finite value for "
                               "the scale after the activation, given inf")


def test_bad_residual_is_named():
    with pytest.raises(convkit.Error) as info:
        convkit.conv2d(X, W, residual=np.ones((1, 4, 4, 2), np.float32))
    assert str(info.value) == "conv2d_forward: r: expected dims {1, 4, 4, 3}, given {1, 4, 4, 2}"
    assert info.value.code == "shape mismatch"
    with pytest.raises(convkit.Error) as info:
        convkit.conv2d(X, W, residual=X)  # y has x's shape here: r may not be x
    assert str(info.value) == ("conv2d_forward: r: expected memory that does not overlap x, "
                               "given overlapping memory")
