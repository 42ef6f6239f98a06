"""The plans (Conv2d, Pool2d, Conv2dBackward, Pool2dBackward): the same bits as the one-shot calls
on integer data, out= writing and its errors, zero-copy inputs (numpy, a bare DLPack producer,
torch when importable), outputs that DLPack consumers take without a copy, properties."""

import numpy as np
import pytest

import convkit

# (x_shape, w_shape, keyword arguments): sizes around the vector width, groups, depthwise.
CONV_CASES = [
    ((2, 5, 7, 4), (3, 3, 4, 8), dict(stride=2, padding=1)),  # the seed's conv_forward
    ((1, 9, 8, 3), (3, 3, 3, 17), dict(padding=(1, 0, 2, 1))),
    ((2, 6, 6, 16), (1, 1, 16, 15), {}),
    ((1, 7, 9, 31), (3, 3, 31, 16), dict(dilation=2, padding=2)),
    ((1, 8, 8, 16), (3, 3, 1, 16), dict(groups=16, padding=1)),
    ((1, 10, 7, 6), (5, 3, 3, 4), dict(groups=2, stride=(2, 1))),
]

POOL_CASES = [
    ((2, 5, 7, 3), dict(window=2)),
    ((1, 9, 8, 17), dict(window=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 6, 6, 16), dict(window=(2, 3), stride=1, mode="average")),
    ((2, 7, 5, 15), dict(window=3, stride=2, padding=1, mode="average", count_include_pad=True)),
]


def integers(rng, shape, scale=1.0):
    """Small nonzero integers: every partial sum is exact in fp32 (DESIGN §4)."""
    values = rng.integers(1, 4, size=shape) * rng.choice([-1, 1], size=shape)
    return (values * scale).astype(np.float32)


def pool_data(rng, x_shape, kwargs):
    # Average pooling divides by window counts: multiples of every possible divisor stay exact.
    scale = 360.0 if kwargs.get("mode") == "average" else 1.0
    return integers(rng, x_shape, scale)


def pool_kwargs(kwargs):
    return {k: v for k, v in kwargs.items() if k != "window"}


@pytest.mark.parametrize("x_shape,w_shape,kwargs", CONV_CASES)
def test_conv2d_plan_equals_one_shot(backend, rng, x_shape, w_shape, kwargs):
    x, w, b = integers(rng, x_shape), integers(rng, w_shape), integers(rng, w_shape[3])
    for activation in (None, "relu"):
        plan = convkit.Conv2d(w, b, x_shape=x_shape, activation=activation, backend=backend,
                              **kwargs)
        expected = convkit.conv2d(x, w, b, activation=activation, backend=backend, **kwargs)
        assert plan.x_shape == x_shape and plan.y_shape == expected.shape
        assert plan.impl.startswith(backend + ":") and plan.impl.count(":") >= 2
        assert np.array_equal(plan.run(x), expected)
        assert np.array_equal(plan(x), expected)  # __call__
        out = np.full(plan.y_shape, np.nan, np.float32)
        assert plan.run(x, out=out) is out
        assert np.array_equal(out, expected)
        # The plan copied w and b: changing them afterwards changes nothing.
        w_saved = w.copy()
        w += 1
        assert np.array_equal(plan.run(x), expected)
        w[...] = w_saved


@pytest.mark.parametrize("x_shape,kwargs", POOL_CASES)
def test_pool2d_plans_equal_one_shot(backend, rng, x_shape, kwargs):
    x = pool_data(rng, x_shape, kwargs)
    window = kwargs["window"]
    plan = convkit.Pool2d(window, x_shape=x_shape, backend=backend, **pool_kwargs(kwargs))
    expected = convkit.pool2d(x, window, backend=backend, **pool_kwargs(kwargs))
    assert plan.y_shape == expected.shape
    assert np.array_equal(plan.run(x), expected)
    out = np.empty(plan.y_shape, np.float32)
    assert plan(x, out=out) is out and np.array_equal(out, expected)

    dy = pool_data(rng, plan.y_shape, kwargs)
    bwd = convkit.Pool2dBackward(window, x_shape=x_shape, backend=backend, **pool_kwargs(kwargs))
    assert bwd.x_shape == x_shape and bwd.y_shape == plan.y_shape
    dx = convkit.pool2d_backward(dy, x, window, backend=backend, **pool_kwargs(kwargs))
    assert np.array_equal(bwd.run(x, dy), dx)
    out = np.empty(x_shape, np.float32)
    assert bwd(x, dy, out=out) is out and np.array_equal(out, dx)


@pytest.mark.parametrize("x_shape,w_shape,kwargs", CONV_CASES)
def test_conv2d_backward_plan_equals_one_shot(backend, rng, x_shape, w_shape, kwargs):
    x, w = integers(rng, x_shape), integers(rng, w_shape)
    plan = convkit.Conv2dBackward(w, x_shape=x_shape, backend=backend, **kwargs)
    assert plan.x_shape == x_shape and plan.w_shape == w_shape
    dy = integers(rng, plan.y_shape)
    expected = convkit.conv2d_backward(dy, x, w, backend=backend, **kwargs)
    for got, want in zip(plan.run(x, dy), expected):
        assert np.array_equal(got, want)
    # Only some gradients: the others are None, and x is not needed without dw.
    dx_only = convkit.Conv2dBackward(w, x_shape=x_shape, dw=False, db=False, backend=backend,
                                     **kwargs)
    dx, dw, db = dx_only.run(None, dy)
    assert dw is None and db is None and np.array_equal(dx, expected[0])
    weights = convkit.Conv2dBackward(w, x_shape=x_shape, dx=False, backend=backend, **kwargs)
    out = (None, np.empty(w_shape, np.float32), np.empty(w_shape[3], np.float32))
    dx, dw, db = weights(x, dy, out=out)
    assert dx is None and dw is out[1] and db is out[2]
    assert np.array_equal(dw, expected[1]) and np.array_equal(db, expected[2])


def test_set_weights_gives_a_fresh_plans_result(backend, rng):
    x_shape, w_shape, kwargs = CONV_CASES[0]
    x, w, w2 = integers(rng, x_shape), integers(rng, w_shape), integers(rng, w_shape)
    plan = convkit.Conv2dBackward(w, x_shape=x_shape, backend=backend, **kwargs)
    dy = integers(rng, plan.y_shape)
    before = plan.run(x, dy)
    plan.set_weights(w2)
    fresh = convkit.Conv2dBackward(w2, x_shape=x_shape, backend=backend, **kwargs).run(x, dy)
    after = plan.run(x, dy)
    for a, f in zip(after, fresh):
        assert np.array_equal(a, f)
    assert not np.array_equal(after[0], before[0])  # dx follows w
    with pytest.raises(convkit.Error, match=r"set_weights: w: expected shape \(3, 3, 4, 8\)"):
        plan.set_weights(w2[:, :, :2])
    assert np.array_equal(plan.run(x, dy)[0], fresh[0])  # unchanged by the failed call


def test_inputs_convert_once_per_call(rng):
    x_shape, w_shape, kwargs = CONV_CASES[0]
    x, w = integers(rng, x_shape), integers(rng, w_shape)
    plan = convkit.Conv2d(w.astype(np.float64), x_shape=x_shape, **kwargs)
    expected = plan.run(x)
    assert np.array_equal(plan.run(x.astype(np.float64)), expected)
    assert np.array_equal(plan.run(np.asfortranarray(x)), expected)
    wide = np.zeros(x_shape[:3] + (8,), np.float32)
    wide[..., :4] = x
    assert np.array_equal(plan.run(wide[..., :4]), expected)  # strided view


class DLPackOnly:
    """A DLPack producer that is nothing else (no buffer protocol, not a numpy array)."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def test_dense_float32_inputs_are_read_in_place(rng):
    # A 3x3 "same" convolution: y has x's shape, so out=x is possible. The plan refuses it as
    # overlapping x, which it can only see when it reads x's own memory (no copy was made).
    x = integers(rng, (1, 6, 5, 4))
    plan = convkit.Conv2d(integers(rng, (3, 3, 4, 4)), x_shape=x.shape, padding=1)
    for source in (x, DLPackOnly(x)):
        with pytest.raises(convkit.Error, match="out: expected memory that does not overlap x"):
            plan.run(source, out=x)
    expected = plan.run(x)
    assert np.array_equal(plan.run(DLPackOnly(x)), expected)
    # A float64 x is converted first: writing y over the original is then allowed.
    x64 = x.astype(np.float64)
    plan.run(x64, out=x)
    assert np.array_equal(x, expected)


def test_outputs_are_dlpack_exporters(rng):
    x_shape, w_shape, kwargs = CONV_CASES[0]
    plan = convkit.Conv2d(integers(rng, w_shape), x_shape=x_shape, **kwargs)
    y = plan.run(integers(rng, x_shape))
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.flags.writeable
    view = np.from_dlpack(y)
    assert np.shares_memory(view, y) and np.array_equal(view, y)


def test_torch_round_trip(rng):
    torch = pytest.importorskip("torch", reason="torch is optional: the DLPack round trip with "
                                                "torch runs only where it is installed")
    x_shape, w_shape, kwargs = CONV_CASES[0]
    x, w = integers(rng, x_shape), integers(rng, w_shape)
    plan = convkit.Conv2d(w, x_shape=x_shape, **kwargs)
    expected = plan.run(x)
    x_torch = torch.from_numpy(x.copy())
    y = plan.run(x_torch)  # a torch CPU tensor in, through __dlpack__
    assert np.array_equal(y, expected)
    y_torch = torch.from_dlpack(y)  # zero-copy out
    assert y_torch.data_ptr() == y.ctypes.data
    assert np.array_equal(y_torch.numpy(), expected)
    out = torch.empty(plan.y_shape, dtype=torch.float32)
    assert plan.run(x_torch, out=out) is out
    assert np.array_equal(out.numpy(), expected)
    with pytest.raises(convkit.Error, match="out: expected memory that does not overlap x"):
        convkit.Conv2d(w[:, :, :, :4], x_shape=x_shape, padding=1).run(x_torch, out=x_torch)
    assert np.array_equal(plan.run(x_torch.double()), expected)  # converted by torch, once
    with pytest.raises(convkit.Error, match="out: expected a writable C-contiguous float32"):
        plan.run(x_torch, out=torch.empty(plan.y_shape, dtype=torch.float64))


def test_run_errors_name_the_argument_and_write_nothing(rng):
    x_shape, w_shape, kwargs = CONV_CASES[0]
    x, w = integers(rng, x_shape), integers(rng, w_shape)
    plan = convkit.Conv2d(w, x_shape=x_shape, **kwargs)
    y_shape = plan.y_shape
    cases = [
        (dict(x=x[:1]), r"Conv2d.run: x: expected shape \(2, 5, 7, 4\), given \(1, 5, 7, 4\)"),
        (dict(x="x"), r"Conv2d.run: x: expected an array .* given builtins.str"),
        (dict(x=x, out=np.empty(y_shape, np.float64)),
         r"out: expected a writable C-contiguous float32 array of shape \(2, 3, 4, 8\), "
         r"given numpy.ndarray float64"),
        (dict(x=x, out=np.empty(y_shape[:3] + (9,), np.float32)),
         r"out: expected .* of shape \(2, 3, 4, 8\), given shape \(2, 3, 4, 9\)"),
        (dict(x=x, out=np.empty(y_shape[::-1], np.float32).transpose(3, 2, 1, 0)),
         r"out: expected a writable C-contiguous .* strides"),
        (dict(x=x, out=[0.0] * 8), r"out: expected a writable .* given builtins.list"),
    ]
    for args, message in cases:
        out = args.get("out")
        before = None if not isinstance(out, np.ndarray) else out.copy()
        with pytest.raises(convkit.Error, match=message):
            plan.run(**args)
        if before is not None:
            assert np.array_equal(out, before, equal_nan=True)
    read_only = np.zeros(y_shape, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(convkit.Error, match=r"out: .* \(read-only\)"):
        plan.run(x, out=read_only)

    bwd = convkit.Conv2dBackward(w, x_shape=x_shape, dw=False, **kwargs)
    dy = integers(rng, bwd.y_shape)
    with pytest.raises(convkit.Error, match=r"out\[1\] \(dw\): expected None"):
        bwd.run(x, dy, out=(None, np.empty(w_shape, np.float32), None))
    with pytest.raises(convkit.Error, match=r"out: expected 3 items"):
        bwd.run(x, dy, out=(None, None))
    with pytest.raises(convkit.Error, match=r"out\[2\] \(db\): expected .* of shape \(8,\)"):
        bwd.run(x, dy, out=(None, None, np.empty(7, np.float32)))
    with pytest.raises(convkit.Error, match=r"dy: expected shape \(2, 3, 4, 8\)"):
        bwd.run(x, x)
    dx = np.full(x_shape, 5.0, np.float32)
    with pytest.raises(convkit.Error, match=r"out\[2\] \(db\): expected memory that does not "
                                            r"overlap out\[0\] \(dx\)"):
        bwd.run(x, dy, out=(dx, None, dx.reshape(-1)[:8]))
    assert np.all(dx == 5.0)


def test_creation_errors():
    w = np.ones((3, 3, 4, 8), np.float32)
    with pytest.raises(convkit.Error, match=r"Conv2d: x_shape: expected a shape of 4 ints"):
        convkit.Conv2d(w, x_shape=(2, 5, 7))
    with pytest.raises(convkit.Error, match=r"Conv2d: w: expected dims \{3, 3, 3, 8\}"):
        convkit.Conv2d(w, x_shape=(2, 5, 7, 3))
    with pytest.raises(convkit.Error, match=r"Conv2dBackward: wanted: expected at least one"):
        convkit.Conv2dBackward(w, x_shape=(2, 5, 7, 4), dx=False, dw=False, db=False)
    with pytest.raises(convkit.Error, match=r"Pool2d: mode: expected 'max' or 'average'"):
        convkit.Pool2d(2, x_shape=(1, 4, 4, 1), mode="min")
    with pytest.raises(TypeError):
        convkit.Conv2d(w, (2, 5, 7, 4))  # x_shape is keyword-only


def test_properties_are_read_only():
    plan = convkit.Pool2d(2, x_shape=(1, 4, 4, 3))
    assert plan.x_shape == (1, 4, 4, 3) and plan.y_shape == (1, 2, 2, 3)
    with pytest.raises(AttributeError):
        plan.y_shape = (1, 1, 1, 1)


ACTIVATIONS = [None, "relu", "relu6", ("clip", -2.0, 3.0), ("leaky_relu", 0.25), "sigmoid",
               "tanh", "silu", "hardswish", ("hardsigmoid", 0.25, 0.5), "gelu"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("after", [False, True])
def test_conv2d_plan_activation_and_residual_equal_one_shot(backend, rng, activation, after):
    x_shape, w_shape, kwargs = CONV_CASES[0]
    x, w, b = integers(rng, x_shape), integers(rng, w_shape), integers(rng, w_shape[3])
    plan = convkit.Conv2d(w, b, x_shape=x_shape, activation=activation,
                          residual_after_activation=after, backend=backend, **kwargs)
    r = integers(rng, plan.y_shape)
    expected = convkit.conv2d(x, w, b, activation=activation, residual=r,
                              residual_after_activation=after, backend=backend, **kwargs)
    assert np.array_equal(plan.run(x, residual=r), expected)
    # In place: the residual is out itself.
    out = r.copy()
    assert plan.run(x, out=out, residual=out) is out
    assert np.array_equal(out, expected)
    assert np.array_equal(plan.run(x),
                          convkit.conv2d(x, w, b, activation=activation, backend=backend,
                                         **kwargs))


@pytest.mark.parametrize("w_shape, kwargs", [((1, 1, 12, 20), {}), ((1, 1, 6, 8), {"groups": 2}),
                                             ((3, 3, 12, 6), {"padding": 1})])
def test_conv2d_plan_x_scale_is_x_scaled_first(backend, rng, w_shape, kwargs):
    x_shape = (3, 5, 4, 12)
    x, w, b = integers(rng, x_shape), integers(rng, w_shape), integers(rng, w_shape[3])
    gate = integers(rng, (3, 1, 1, 12))
    plan = convkit.Conv2d(w, b, x_shape=x_shape, backend=backend, **kwargs)
    r = integers(rng, plan.y_shape)
    assert np.array_equal(plan.run(x, x_scale=gate), plan.run(x * gate))
    out = r.copy()
    assert plan.run(x, out=out, residual=out, x_scale=gate) is out
    assert np.array_equal(out, plan.run(x * gate, residual=r))
    assert plan.fuses_x_scale == (plan.impl.startswith("highway:igemm") and w_shape[0] == 1)
    with pytest.raises(convkit.Error, match=r"x_scale: expected shape \(3, 1, 1, 12\)"):
        plan.run(x, x_scale=gate[:1])


@pytest.mark.parametrize("w_shape, kwargs", [((1, 1, 20, 8), {}), ((1, 1, 10, 8), {"groups": 2}),
                                             ((3, 3, 20, 8), {"padding": 1})])
def test_conv2d_plan_runs_channel_pieces_as_their_concatenation(backend, rng, w_shape, kwargs):
    x_shape = (2, 5, 4, 20)
    x, w, b = integers(rng, x_shape), integers(rng, w_shape), integers(rng, w_shape[3])
    plan = convkit.Conv2d(w, b, x_shape=x_shape, backend=backend, **kwargs)
    wide = np.zeros((2, 5, 4, 26), np.float32)
    wide[..., 1:13] = x[..., :12]  # two channel slices of one wider array (a split's halves)
    pieces = [wide[..., 1:5], wide[..., 5:13], x[..., 12:].copy()]
    r = integers(rng, plan.y_shape)
    assert np.array_equal(plan.run(pieces), plan.run(x))
    assert np.array_equal(plan.run(tuple(pieces), residual=r), plan.run(x, residual=r))
    assert plan.fuses_concat == (plan.impl.startswith("highway:igemm") and w_shape[0] == 1
                                 and "groups" not in kwargs)
    with pytest.raises(convkit.Error, match="pieces: expected channels summing to x's C_in"):
        plan.run(pieces[:2])
    with pytest.raises(convkit.Error, match=r"x\[0\]: expected consecutive channels"):
        plan.run([x[..., ::2], x[..., 1::2]])


def test_residual_errors(rng):
    x = integers(rng, (1, 6, 5, 4))
    plan = convkit.Conv2d(integers(rng, (3, 3, 4, 4)), x_shape=x.shape, padding=1)
    with pytest.raises(convkit.Error, match=r"residual: expected shape \(1, 6, 5, 4\)"):
        plan.run(x, residual=x[:, :5])
    with pytest.raises(convkit.Error, match="residual: expected memory that does not overlap x"):
        plan.run(x, residual=x)
    out = np.zeros((2,) + x.shape[1:], np.float32)
    with pytest.raises(convkit.Error, match="out: expected memory that does not overlap residual"):
        plan.run(x, out=out[:1], residual=out.reshape(-1)[3:3 + x.size].reshape(x.shape))


@pytest.mark.parametrize("activation", [None, "relu", ("leaky_relu", 0.5)])
def test_conv2d_transpose_plan_equals_one_shot(backend, rng, activation):
    x_shape, w_shape = (2, 4, 5, 6), (3, 3, 8, 6)  # w: (KH, KW, C_out / groups, C_in)
    kwargs = dict(stride=2, padding=1, output_padding=1)
    x, w, b = integers(rng, x_shape), integers(rng, w_shape), integers(rng, 8)
    plan = convkit.Conv2dTranspose(w, b, x_shape=x_shape, activation=activation, backend=backend,
                                   **kwargs)
    expected = convkit.conv2d_transpose(x, w, b, activation=activation, backend=backend, **kwargs)
    assert plan.y_shape == expected.shape == (2, 8, 10, 8)
    assert plan.impl.startswith(backend + ":")
    assert np.array_equal(plan.run(x), expected)
    r = integers(rng, plan.y_shape)
    with_r = convkit.conv2d_transpose(x, w, b, activation=activation, residual=r, backend=backend,
                                      **kwargs)
    out = np.empty(plan.y_shape, np.float32)
    assert plan(x, out=out, residual=r) is out and np.array_equal(out, with_r)


def test_one_plan_from_several_threads(backend, rng):
    """run() is thread-safe and releases the GIL: threads sharing one plan get their own bits."""
    from concurrent.futures import ThreadPoolExecutor

    x_shape, w_shape, kwargs = CONV_CASES[3]
    plan = convkit.Conv2d(integers(rng, w_shape), x_shape=x_shape, backend=backend, **kwargs)
    back = convkit.Conv2dBackward(integers(rng, w_shape), x_shape=x_shape, backend=backend,
                                  **kwargs)
    xs = [integers(rng, x_shape) for _ in range(6)]
    dys = [integers(rng, back.y_shape) for _ in range(6)]
    expected = [(plan.run(x), back.run(x, dy)) for x, dy in zip(xs, dys)]

    def work(i):
        out = np.empty(plan.y_shape, np.float32)
        for _ in range(5):
            y = plan.run(xs[i], out=out)
            grads = back.run(xs[i], dys[i])
            if not (np.array_equal(y, expected[i][0])
                    and all(np.array_equal(g, e) for g, e in zip(grads, expected[i][1]))):
                return False
        return True

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert all(pool.map(work, range(6)))
