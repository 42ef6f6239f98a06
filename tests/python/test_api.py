"""The Python surface: argument forms, array conversion, outputs, backends, threads and the GIL."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import convkit
import seed_oracle as oracle


def test_exports():
    for name in convkit.__all__:
        assert name == "__version__" or callable(getattr(convkit, name)), name
    assert convkit.__version__.count(".") == 2
    assert issubclass(convkit.Error, ValueError)
    assert convkit.Error.__module__ == "convkit"


def test_backends():
    names = convkit.backends()
    assert isinstance(names, list) and "reference" in names
    assert len(set(names)) == len(names) and "auto" not in names


def test_auto_and_none_run(rng):
    x = rng.standard_normal((1, 5, 5, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
    expected = oracle.conv2d(x, w)
    for backend in (None, "auto"):
        np.testing.assert_allclose(convkit.conv2d(x, w, backend=backend), expected, rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("padding,sides", [
    (2, (2, 2, 2, 2)),
    ((1, 3), (1, 1, 3, 3)),
    ([0, 1, 2, 3], (0, 1, 2, 3)),
    (np.int64(1), (1, 1, 1, 1)),
    (np.array([2, 0]), (2, 2, 0, 0)),
])
def test_padding_forms(backend, rng, padding, sides):
    x = rng.standard_normal((1, 4, 5, 2)).astype(np.float32)
    w = rng.standard_normal((2, 2, 2, 3)).astype(np.float32)
    y = convkit.conv2d(x, w, padding=padding, backend=backend)
    np.testing.assert_allclose(y, oracle.conv2d(x, w, padding=sides), rtol=1e-5, atol=1e-5)
    top, bottom, left, right = sides
    padded = convkit.zero_pad(x, padding)
    assert padded.shape == (1, 4 + top + bottom, 5 + left + right, 2)
    assert np.array_equal(padded[:, top:top + 4, left:left + 5], x)


def test_pair_forms(backend, rng):
    x = rng.standard_normal((1, 9, 9, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 2)).astype(np.float32)
    a = convkit.conv2d(x, w, stride=2, dilation=2, backend=backend)
    b = convkit.conv2d(x, w, stride=(2, 2), dilation=[2, 2], backend=backend)
    assert np.array_equal(a, b)
    assert convkit.pool2d(x, (3, 2), backend=backend).shape == (1, 3, 4, 2)  # stride = window
    assert convkit.pool2d(x, 3, stride=1, backend=backend).shape == (1, 7, 7, 2)


def test_bias_shapes(backend, rng):
    x = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y = convkit.conv2d(x, w, b, backend=backend)
    assert np.array_equal(convkit.conv2d(x, w, b.reshape(1, 1, 1, 5), backend=backend), y)
    assert np.array_equal(convkit.conv2d(x, w, b.astype(np.float64), backend=backend), y)


def test_relu(backend, rng):
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y = convkit.conv2d(x, w, b, padding=1, backend=backend)
    y_relu = convkit.conv2d(x, w, b, padding=1, activation="relu", backend=backend)
    assert (y < 0).any()
    assert np.array_equal(y_relu, np.maximum(y, 0))


def test_fpmath_bf16(backend, rng):
    # Small integers are bf16 values with exact products: bf16 changes no bit of the result.
    x = rng.integers(-256, 257, (2, 6, 5, 17)).astype(np.float32)
    w = rng.integers(-16, 17, (3, 3, 17, 19)).astype(np.float32)
    strict = convkit.conv2d(x, w, padding=1, backend=backend)
    assert np.array_equal(convkit.conv2d(x, w, padding=1, backend=backend, fpmath="bf16"), strict)
    # On normals, within 2^-7 sum |x||w| (plus the fp32 term) of fp32.
    x = rng.standard_normal((1, 6, 5, 17)).astype(np.float32)
    w = rng.standard_normal((3, 3, 17, 19)).astype(np.float32)
    bound = convkit.conv2d(np.abs(x), np.abs(w), padding=1, backend="reference")
    y = convkit.conv2d(x, w, padding=1, backend=backend, fpmath="bf16")
    assert (np.abs(y - convkit.conv2d(x, w, padding=1, backend=backend)) <= bound / 64).all()
    with pytest.raises(convkit.Error, match="fpmath"):
        convkit.conv2d(x, w, fpmath="fp16", backend=backend)


def round_to_bf16(a):
    """a rounded to bf16 (nearest even), as fpmath='bf16' defines it (finite values)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def test_fpmath_bf16_on_plans_and_transposed(backend, rng):
    # Integers are bf16 values with exact products: every path gives the strict bits.
    x = rng.integers(-256, 257, (2, 6, 5, 17)).astype(np.float32)
    w = rng.integers(-16, 17, (3, 3, 17, 19)).astype(np.float32)
    strict = convkit.conv2d(x, w, padding=1, backend=backend)
    plan = convkit.Conv2d(w, x_shape=x.shape, padding=1, backend=backend, fpmath="bf16")
    assert np.array_equal(plan.run(x), strict)
    wt = rng.integers(-16, 17, (3, 3, 7, 17)).astype(np.float32)
    strict_t = convkit.conv2d_transpose(x, wt, stride=2, padding=1, backend=backend)
    assert np.array_equal(convkit.conv2d_transpose(x, wt, stride=2, padding=1, backend=backend,
                                                   fpmath="bf16"), strict_t)
    plan_t = convkit.Conv2dTranspose(wt, x_shape=x.shape, stride=2, padding=1, backend=backend,
                                     fpmath="bf16")
    assert np.array_equal(plan_t.run(x), strict_t)
    for make in (lambda: convkit.Conv2d(w, x_shape=x.shape, fpmath="fp16", backend=backend),
                 lambda: convkit.Conv2dTranspose(wt, x_shape=x.shape, fpmath="fp16",
                                                 backend=backend),
                 lambda: convkit.conv2d_transpose(x, wt, fpmath="fp16", backend=backend)):
        with pytest.raises(convkit.Error, match="fpmath"):
            make()


def test_reference_bf16_rounds_x_and_w_first(rng):
    x = rng.standard_normal((1, 5, 4, 6)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 6)).astype(np.float32)
    y = convkit.conv2d_transpose(x, w, stride=2, backend="reference", fpmath="bf16")
    expected = convkit.conv2d_transpose(round_to_bf16(x), round_to_bf16(w), stride=2,
                                        backend="reference")
    assert np.array_equal(y, expected)
    assert not np.array_equal(y, convkit.conv2d_transpose(x, w, stride=2, backend="reference"))
    plan = convkit.Conv2d(w.transpose(0, 1, 3, 2).copy(), x_shape=x.shape, padding=1,
                          backend="reference", fpmath="bf16")
    assert plan.impl == "reference:direct_bf16:scalar"


def numpy_variants(x):
    """x as float64, as a transposed view, with negative and step strides, and Fortran-ordered:
    each holding the same values as x."""
    doubled = np.empty(x.shape[:-1] + (2 * x.shape[-1],), np.float32)
    doubled[..., ::2] = x
    return {
        "float64": x.astype(np.float64),
        "fortran": np.asfortranarray(x),
        "strided": doubled[..., ::2],
        "negative strides": x[:, ::-1, ::-1].copy()[:, ::-1, ::-1],
        "transposed view": np.ascontiguousarray(x.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3),
        "read-only": np.frombuffer(x.tobytes(), np.float32).reshape(x.shape),
    }


def test_inputs_any_dtype_and_strides(backend, rng):
    x = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    y = convkit.conv2d(x, w, backend=backend)
    grads = convkit.conv2d_backward(dy, x, w, backend=backend)
    pooled = convkit.pool2d(x, 2, stride=1, backend=backend)
    for name, variant in numpy_variants(x).items():
        assert np.array_equal(variant, x), name
        assert np.array_equal(convkit.conv2d(variant, w, backend=backend), y), name
        for got, want in zip(convkit.conv2d_backward(dy, variant, w, backend=backend), grads):
            assert np.array_equal(got, want), name
        assert np.array_equal(convkit.pool2d(variant, 2, stride=1, backend=backend), pooled), name
    for name, variant in numpy_variants(w).items():
        assert np.array_equal(convkit.conv2d(x, variant, backend=backend), y), name


def test_float64_is_rounded_to_float32(backend, rng):
    x = rng.standard_normal((1, 4, 4, 2))
    w = rng.standard_normal((2, 2, 2, 3))
    y = convkit.conv2d(x, w, backend=backend)
    assert np.array_equal(y, convkit.conv2d(x.astype(np.float32), w.astype(np.float32),
                                            backend=backend))


def test_integer_inputs(backend):
    x = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3) % 5 - 2
    w = np.ones((2, 2, 3, 1), dtype=np.int32)
    y = convkit.conv2d(x, w, backend=backend)
    assert y.dtype == np.float32
    assert np.array_equal(y, oracle.conv2d(x, w).astype(np.float32))


def test_outputs_are_new_float32_arrays(backend, rng):
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    x_before = x.copy()
    y = convkit.conv2d(x, w, backend=backend)
    dx, dw, db = convkit.conv2d_backward(y, x, w, backend=backend)
    pooled = convkit.pool2d(x, 2, backend=backend)
    for out in (y, dx, dw, db, pooled, convkit.zero_pad(x, 1)):
        assert type(out) is np.ndarray and out.dtype == np.float32
        assert out.flags.c_contiguous and out.flags.writeable
        assert not np.shares_memory(out, x)
    assert np.array_equal(x, x_before)
    y[...] = 0  # writable, and outliving the call
    assert np.count_nonzero(dx) > 0


def test_empty_batch(backend):
    x = np.zeros((0, 5, 5, 3), np.float32)
    w = np.ones((3, 3, 3, 2), np.float32)
    y = convkit.conv2d(x, w, backend=backend)
    assert y.shape == (0, 3, 3, 2)
    dx, dw, db = convkit.conv2d_backward(y, x, w, backend=backend)
    assert dx.shape == (0, 5, 5, 3)
    assert np.array_equal(dw, np.zeros_like(w)) and np.array_equal(db, np.zeros(2))
    assert convkit.pool2d(x, 2, backend=backend).shape == (0, 2, 2, 3)


def test_backend_from_environment(monkeypatch, rng):
    x = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
    w = rng.standard_normal((2, 2, 2, 1)).astype(np.float32)
    monkeypatch.setenv("CONVKIT_BACKEND", "reference")
    np.testing.assert_allclose(convkit.conv2d(x, w), oracle.conv2d(x, w), rtol=1e-5, atol=1e-5)
    monkeypatch.setenv("CONVKIT_BACKEND", "no-such-backend")
    with pytest.raises(convkit.Error, match=r"backend \(from CONVKIT_BACKEND\)"):
        convkit.conv2d(x, w)
    convkit.conv2d(x, w, backend="reference")  # the argument wins over the variable


def test_threads_setting():
    before = convkit.num_threads()
    try:
        convkit.set_num_threads(1)
        assert convkit.num_threads() == 1
    finally:
        convkit.set_num_threads(0)
    assert convkit.num_threads() == before


@pytest.mark.skipif("highway" not in convkit.backends(), reason="highway not built")
def test_flush_denormals_setting():
    """highway reads the smallest denormal as zero once flushing is on (the reference keeps it),
    and keeps it again once it is off."""
    x = np.full((1, 4, 4, 16), 2.0 ** -149, np.float32)
    w = np.zeros((1, 1, 16, 16), np.float32)
    w[0, 0, 0, :] = 1
    assert not convkit.flush_denormals()
    assert np.all(convkit.conv2d(x, w, backend="highway") == np.float32(2.0 ** -149))
    try:
        convkit.set_flush_denormals(True)
        assert convkit.flush_denormals()
        assert np.all(convkit.conv2d(x, w, backend="highway") == 0)
        assert np.all(convkit.conv2d(x, w, backend="reference") == np.float32(2.0 ** -149))
    finally:
        convkit.set_flush_denormals(False)
    assert np.all(convkit.conv2d(x, w, backend="highway") == np.float32(2.0 ** -149))


def test_flush_denormals_in_the_glue_loops():
    """The ONNX glue's C++ loops (here the channel scale) honour the setting too."""
    from convkit import _convkit

    tiny = np.float32(2.0 ** -149)
    x = np.full((1, 64, 16), tiny, np.float32)
    s = np.ones((1, 16), np.float32)
    y = np.empty_like(x)
    _convkit._scale_channels(x, s, y)
    assert np.all(y == tiny)
    try:
        convkit.set_flush_denormals(True)
        _convkit._scale_channels(x, s, y)
        assert np.all(y == 0)
    finally:
        convkit.set_flush_denormals(False)
    _convkit._scale_channels(x, s, y)
    assert np.all(y == tiny)


def test_concurrent_calls(backend, rng):
    x = rng.standard_normal((4, 12, 12, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    expected = convkit.conv2d(x, w, padding=1, backend=backend)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: convkit.conv2d(x, w, padding=1, backend=backend),
                                range(16)))
    for y in results:
        assert np.array_equal(y, expected)


def test_gil_is_released_while_computing():
    """While a worker thread is inside a long convkit call, the main thread runs Python code.

    The worker notes the time t0 just before one long call and t1 just after; the main thread
    spins meanwhile, noting the time every 256 steps. With the GIL held through the call, the main
    thread could not run at all between t0 and the call's return (it may only run just after, in
    the thread switch before t1 is taken); released, it runs throughout. So the test asks for
    main-thread steps in the first half of [t0, t1]: an ordering of events, not a speed.
    """
    x = np.ones((4, 64, 64, 64), np.float32)  # 1.2 GFLOP: a few tenths of a second
    w = np.full((3, 3, 64, 64), 1e-3, np.float32)
    call = []
    started = threading.Event()

    def worker():
        started.wait()
        t0 = time.perf_counter()
        convkit.conv2d(x, w, padding=1, backend="reference")
        call.append((t0, time.perf_counter()))

    convkit.set_num_threads(1)  # leaves the second core to the main thread
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        started.set()
        stamps, spins = [], 0
        while thread.is_alive():
            spins += 1
            if spins % 256 == 0:
                stamps.append(time.perf_counter())
        thread.join()
    finally:
        convkit.set_num_threads(0)
    t0, t1 = call[0]
    stamps = np.array(stamps)
    first_half = np.count_nonzero((stamps > t0) & (stamps < (t0 + t1) / 2))
    assert first_half > 10, f"the main thread ran {first_half * 256} steps in the call's first half"


def test_seed_functions_take_array_likes(backend):
    a = [[[1.0, 2.0]], [[3.0, 4.0]]]  # (2, 1, 2)
    assert convkit.conv_single_step(a, a, 0.5, backend=backend) == np.float32(30.5)
    x = np.arange(16.0).reshape(1, 4, 4, 1).tolist()
    A, cache = convkit.pool_forward(x, {"f": 2, "stride": 2}, backend=backend)
    assert np.array_equal(A[0, :, :, 0], [[5, 7], [13, 15]])
    assert cache[0] is x


@pytest.mark.skipif("highway" not in convkit.backends(), reason="highway not built")
@pytest.mark.parametrize("shape", [(1, 160, 160, 32), (1, 56, 56, 1280), (2, 17, 400, 5)],
                         ids=str)
def test_large_average_windows_sum_in_groups(shape):
    # highway sums a window of more than 64 elements in groups of rows: a global pool of 160 x
    # 160 pixels within 1e-6 of the exact mean (one float sum over all: 3.5e-6 on this data)
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 3 + 0.1).astype(np.float32)
    y = convkit.pool2d(x, shape[1:3], mode="average", backend="highway")
    exact = x.astype(np.float64).mean(axis=(1, 2)).reshape(y.shape)
    assert np.abs(y - exact).max() <= 1e-6 * np.abs(exact).max()
