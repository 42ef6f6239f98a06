#!/usr/bin/env python3
"""Regenerates tests/fixtures/*.txt, the golden inputs of tests/golden_test.cpp.

Usage: python3 tools/make_golden_fixtures.py   (numpy required; idempotent, byte-reproducible)

Each case replays the seed assignment ("Convolutional Neural Networks: Step by Step",
shared/seeds/003_*.txt) exactly: np.random.seed(1), then np.random.randn in the seed's order and
shapes. The inputs are rounded to float32 (what convkit computes on) and written with %.9g, which
round-trips a float32 exactly.

Expected outputs the seed prints are hard-coded in golden_test.cpp: they are the golden. Everything
else the test checks comes from the float64 oracle below (a port of the seed's loops, made
stride-aware where the circulating pool_backward is not), evaluated on the float32-rounded inputs,
and is written into the fixtures as tensors whose names start with "expected_". Before writing,
this script checks the oracle against every value the seed prints and stops if one disagrees.

Fixture format (parsed by LoadFixture in golden_test.cpp):
  # comment lines
  tensor <name> <d0> <d1> <d2> <d3>
  <d0*d1*d2*d3 values, row-major, whitespace-separated>
Every tensor is written with four extents (NHWC or HWIO); the seed's own shape is in a comment.
"""

import os
import sys

import numpy as np

FIXTURE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


# ---- The float64 oracle: the seed's functions, step by step. ----


def zero_pad(x, pad):
    return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="constant", constant_values=0)


def conv_single_step(a_slice_prev, w, b):
    # Correlation: the seed's "convolution" does not flip the kernel.
    return np.sum(a_slice_prev * w) + float(np.asarray(b).reshape(-1)[0])


def conv_forward(a_prev, w, b, stride, pad):
    m, n_h_prev, n_w_prev, _ = a_prev.shape
    f, _, _, n_c = w.shape
    n_h = (n_h_prev - f + 2 * pad) // stride + 1
    n_w = (n_w_prev - f + 2 * pad) // stride + 1
    z = np.zeros((m, n_h, n_w, n_c))
    a_prev_pad = zero_pad(a_prev, pad)
    for i in range(m):
        for h in range(n_h):
            vs = h * stride
            for ww in range(n_w):
                hs = ww * stride
                for c in range(n_c):
                    z[i, h, ww, c] = conv_single_step(
                        a_prev_pad[i, vs:vs + f, hs:hs + f, :], w[..., c], b[..., c])
    return z


def conv_backward(dz, a_prev, w, stride, pad):
    m, n_h_prev, n_w_prev, _ = a_prev.shape
    f, _, _, n_c = w.shape
    _, n_h, n_w, _ = dz.shape
    dw = np.zeros(w.shape)
    db = np.zeros((1, 1, 1, n_c))
    a_prev_pad = zero_pad(a_prev, pad)
    da_prev_pad = np.zeros(a_prev_pad.shape)
    for i in range(m):
        for h in range(n_h):
            vs = h * stride
            for ww in range(n_w):
                hs = ww * stride
                for c in range(n_c):
                    a_slice = a_prev_pad[i, vs:vs + f, hs:hs + f, :]
                    da_prev_pad[i, vs:vs + f, hs:hs + f, :] += w[:, :, :, c] * dz[i, h, ww, c]
                    dw[:, :, :, c] += a_slice * dz[i, h, ww, c]
                    db[:, :, :, c] += dz[i, h, ww, c]
    # Slicing with explicit ends: the seed's [pad:-pad] is empty when pad == 0.
    da_prev = da_prev_pad[:, pad:pad + n_h_prev, pad:pad + n_w_prev, :]
    return da_prev, dw, db


def pool_forward(a_prev, f, stride, mode):
    m, n_h_prev, n_w_prev, n_c = a_prev.shape
    n_h = (n_h_prev - f) // stride + 1
    n_w = (n_w_prev - f) // stride + 1
    a = np.zeros((m, n_h, n_w, n_c))
    for i in range(m):
        for h in range(n_h):
            vs = h * stride
            for ww in range(n_w):
                hs = ww * stride
                for c in range(n_c):
                    s = a_prev[i, vs:vs + f, hs:hs + f, c]
                    a[i, h, ww, c] = np.max(s) if mode == "max" else np.mean(s)
    return a


def create_mask_from_window(x):
    return x == np.max(x)


def distribute_value(dz, shape):
    n_h, n_w = shape
    return np.ones(shape) * dz / (n_h * n_w)


def pool_backward(da, a_prev, f, stride, mode, honour_stride=True):
    """The seed's pool_backward. honour_stride=False reproduces the circulating solution
    (seeds/001: vert_start = h), which is right for stride 1 only."""
    m, n_h, n_w, n_c = da.shape
    da_prev = np.zeros(a_prev.shape)
    step = stride if honour_stride else 1
    for i in range(m):
        for h in range(n_h):
            vs = h * step
            for ww in range(n_w):
                hs = ww * step
                for c in range(n_c):
                    if mode == "max":
                        s = a_prev[i, vs:vs + f, hs:hs + f, c]
                        share = create_mask_from_window(s) * da[i, h, ww, c]
                    else:
                        share = distribute_value(da[i, h, ww, c], (f, f))
                    da_prev[i, vs:vs + f, hs:hs + f, c] += share
    return da_prev


# ---- Checks against what the seed prints. ----


def check(what, actual, printed, atol):
    actual = np.asarray(actual, dtype=np.float64)
    printed = np.asarray(printed, dtype=np.float64)
    if actual.shape != printed.shape or not np.allclose(actual, printed, rtol=0, atol=atol):
        sys.exit(f"make_golden_fixtures: oracle disagrees with the seed on {what}:\n"
                 f"  oracle {actual}\n  seed   {printed}")


def f32(a):
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def assert_no_ties(a_prev, f, stride):
    """The seed's mask marks every tied maximum, convkit only the first: golden data needs none."""
    m, n_h_prev, n_w_prev, n_c = a_prev.shape
    for i in range(m):
        for h in range(0, n_h_prev - f + 1, stride):
            for w in range(0, n_w_prev - f + 1, stride):
                for c in range(n_c):
                    s = a_prev[i, h:h + f, w:w + f, c]
                    if np.count_nonzero(s == np.max(s)) != 1:
                        sys.exit("make_golden_fixtures: a max-pool window has tied maxima")


# ---- Writing. ----


def as4d(a):
    a = np.asarray(a)
    while a.ndim < 4:
        a = a.reshape((1,) + a.shape)
    return a


def format_tensor(name, a, seed_shape=None):
    a = as4d(a)
    lines = []
    if seed_shape is not None and tuple(seed_shape) != a.shape:
        lines.append(f"# {name}: the seed's shape {tuple(seed_shape)}")
    lines.append("tensor %s %d %d %d %d" % ((name,) + a.shape))
    flat = a.reshape(-1)
    for k in range(0, flat.size, 8):
        lines.append(" ".join("%.9g" % v for v in flat[k:k + 8]))
    return "\n".join(lines)


def write_fixture(name, comment_lines, tensors):
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    parts = [f"# convkit golden fixture '{name}', written by tools/make_golden_fixtures.py:"
             " do not edit."]
    parts += [f"# {line}" for line in comment_lines]
    for t in tensors:
        parts.append(format_tensor(*t))
    with open(os.path.join(FIXTURE_DIR, name + ".txt"), "w", encoding="ascii") as out:
        out.write("\n".join(parts) + "\n")


def main():
    # zero_pad (seed 003: pad 3; seed 002 prints x[1,1] of the same draw).
    np.random.seed(1)
    x = np.random.randn(4, 3, 3, 2)
    check("zero_pad x[1,1]", x[1, 1], [[0.90085595, -0.68372786], [-0.12289023, -0.93576943],
                                        [-0.26788808, 0.53035547]], 5e-9)
    write_fixture("zero_pad", ["np.random.seed(1); x = randn(4, 3, 3, 2); x_pad = zero_pad(x, 3)"],
                  [("x", f32(x))])

    # conv_single_step.
    np.random.seed(1)
    a_slice_prev = np.random.randn(4, 4, 3)
    w = np.random.randn(4, 4, 3)
    b = np.random.randn(1, 1, 1)
    check("conv_single_step", conv_single_step(a_slice_prev, w, b), -6.999089450680221, 1e-12)
    write_fixture("conv_single_step", [
        "np.random.seed(1); a_slice_prev = randn(4, 4, 3); W = randn(4, 4, 3); b = randn(1, 1, 1)",
        "as a convolution: x {1, 4, 4, 3}, w {4, 4, 3, 1}, b {1}, stride 1, pad 0",
    ], [("x", f32(a_slice_prev), a_slice_prev.shape), ("w", f32(w).reshape(4, 4, 3, 1), w.shape),
        ("b", f32(b), b.shape)])

    # conv_forward, seed 003: A_prev 2x5x7x4, W 3x3x4x8, pad 1, stride 2.
    np.random.seed(1)
    a_prev = np.random.randn(2, 5, 7, 4)
    w = np.random.randn(3, 3, 4, 8)
    b = np.random.randn(1, 1, 1, 8)
    z = conv_forward(a_prev, w, b, stride=2, pad=1)
    check("conv_forward (2x5x7x4) mean", np.mean(z), 0.5511276474566768, 1e-12)
    z32 = conv_forward(f32(a_prev), f32(w), f32(b), stride=2, pad=1)
    write_fixture("conv_forward_2x5x7x4", [
        "np.random.seed(1); A_prev = randn(2, 5, 7, 4); W = randn(3, 3, 4, 8);"
        " b = randn(1, 1, 1, 8)",
        "conv_forward with pad 1, stride 2; expected_y: the float64 oracle on these float32 inputs",
        "Z[0,2,1] (oracle, seed's float64 inputs) = " + " ".join("%.9g" % v for v in z[0, 2, 1]),
    ], [("x", f32(a_prev)), ("w", f32(w)), ("b", f32(b)), ("expected_y", z32)])

    # conv_forward and conv_backward, seed 003 section 5.1 / seed 002: A_prev 10x4x4x3, W 2x2x3x8,
    # pad 2, stride 2; conv_backward(Z, cache), i.e. dy = Z.
    np.random.seed(1)
    a_prev = np.random.randn(10, 4, 4, 3)
    w = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    z = conv_forward(a_prev, w, b, stride=2, pad=2)
    check("conv_forward (10x4x4x3) mean", np.mean(z), 0.048995203528855794, 1e-12)
    check("conv_forward Z[3,2,1]", z[3, 2, 1],
          [-0.61490741, -6.7439236, -2.55153897, 1.75698377, 3.56208902, 0.53036437, 5.18531798,
           8.75898442], 5e-8)
    check("cache_conv[0][1][2][3]", a_prev[1, 2, 3], [-0.20075807, 0.18656139, 0.41005165], 5e-9)
    da, dw, db = conv_backward(z, a_prev, w, stride=2, pad=2)
    check("conv_backward dA mean", np.mean(da), 1.45243777754, 5e-12)
    check("conv_backward dW mean", np.mean(dw), 1.72699145831, 5e-12)
    check("conv_backward db mean", np.mean(db), 7.83923256462, 5e-11)
    z32 = conv_forward(f32(a_prev), f32(w), f32(b), stride=2, pad=2)
    dy = f32(z32)  # what the test feeds conv2d_backward: the expected Z, rounded to float32
    da32, dw32, db32 = conv_backward(dy, f32(a_prev), f32(w), stride=2, pad=2)
    write_fixture("conv_10x4x4x3", [
        "np.random.seed(1); A_prev = randn(10, 4, 4, 3); W = randn(2, 2, 3, 8);"
        " b = randn(1, 1, 1, 8)",
        "conv_forward with pad 2, stride 2, then conv_backward(Z, cache): dy = expected_y",
        "expected_*: the float64 oracle on these float32 inputs (and dy = float32(expected_y))",
    ], [("x", f32(a_prev)), ("w", f32(w)), ("b", f32(b)), ("expected_y", z32),
        ("expected_dx", da32), ("expected_dw", dw32), ("expected_db", db32)])

    # pool_forward, seed 003 cases 1 and 2: A_prev 2x5x5x3, f 3, stride 1 and 2.
    np.random.seed(1)
    a_prev = np.random.randn(2, 5, 5, 3)
    assert_no_ties(a_prev, 3, 1)
    check("pool_forward stride 2 max A[0]", pool_forward(a_prev, 3, 2, "max")[0],
          [[[1.74481176, 0.90159072, 1.65980218], [1.74481176, 1.6924546, 1.65980218]],
           [[1.13162939, 1.51981682, 2.18557541], [1.13162939, 1.6924546, 2.18557541]]], 5e-9)
    check("pool_forward stride 2 average A[1]", pool_forward(a_prev, 3, 2, "average")[1],
          [[[-0.17313416, 0.32377198, -0.34317572], [0.02030094, 0.14141479, -0.01231585]],
           [[0.42944926, 0.08446996, -0.27290905], [0.15077452, 0.28911175, 0.00123239]]], 5e-9)
    x32 = f32(a_prev)
    write_fixture("pool_forward_2x5x5x3", [
        "np.random.seed(1); A_prev = randn(2, 5, 5, 3); pool_forward with f 3, stride 1 and 2",
        "expected_* are the float64 oracle on these float32 inputs",
    ], [("x", x32), ("expected_max_s1", pool_forward(x32, 3, 1, "max")),
        ("expected_avg_s1", pool_forward(x32, 3, 1, "average")),
        ("expected_max_s2", pool_forward(x32, 3, 2, "max")),
        ("expected_avg_s2", pool_forward(x32, 3, 2, "average"))])

    # pool_forward, seed 002: A_prev 2x4x4x3, f 3, stride 2.
    np.random.seed(1)
    a_prev = np.random.randn(2, 4, 4, 3)
    check("pool_forward 2x4x4x3 max", pool_forward(a_prev, 3, 2, "max").reshape(2, 3),
          [[1.74481176, 0.86540763, 1.13376944], [1.13162939, 1.51981682, 2.18557541]], 5e-9)
    check("pool_forward 2x4x4x3 average", pool_forward(a_prev, 3, 2, "average").reshape(2, 3),
          [[0.02105773, -0.20328806, -0.40389855], [-0.22154621, 0.51716526, 0.48155844]], 5e-9)
    write_fixture("pool_forward_2x4x4x3", [
        "np.random.seed(1); A_prev = randn(2, 4, 4, 3); pool_forward with f 3, stride 2 (seed 002)",
    ], [("x", f32(a_prev))])

    # create_mask_from_window, seed 003: x = randn(2, 3), as max pooling's backward over one window.
    np.random.seed(1)
    x = np.random.randn(2, 3)
    check("create_mask_from_window x", x, [[1.62434536, -0.61175641, -0.52817175],
                                           [-1.07296862, 0.86540763, -2.3015387]], 5e-9)
    write_fixture("create_mask", [
        "np.random.seed(1); x = randn(2, 3); mask = create_mask_from_window(x)",
        "as max pooling: x {1, 2, 3, 1}, window 2x3 -> y {1, 1, 1, 1}",
    ], [("x", f32(x).reshape(1, 2, 3, 1), x.shape),
        ("expected_mask", create_mask_from_window(x).astype(np.float64).reshape(1, 2, 3, 1),
         x.shape)])

    # pool_backward, seed 003: A_prev 5x5x3x2, f 2, stride 1; dA = randn(5, 4, 2, 2).
    np.random.seed(1)
    a_prev = np.random.randn(5, 5, 3, 2)
    assert_no_ties(a_prev, 2, 1)
    da = np.random.randn(5, 4, 2, 2)
    check("pool_backward mean of dA", np.mean(da), 0.145713902729, 5e-13)
    check("pool_backward max dA_prev1[1,1]", pool_backward(da, a_prev, 2, 1, "max")[1, 1],
          [[0, 0], [5.05844394, -1.68282702], [0, 0]], 5e-9)
    check("pool_backward average dA_prev2[1,1]", pool_backward(da, a_prev, 2, 1, "average")[1, 1],
          [[0.08485462, 0.2787552], [1.26461098, -0.25749373], [1.17975636, -0.53624893]], 5e-9)
    x32, dy32 = f32(a_prev), f32(da)
    write_fixture("pool_backward_s1", [
        "np.random.seed(1); A_prev = randn(5, 5, 3, 2); dA = randn(5, 4, 2, 2); f 2, stride 1",
        "expected_* are the float64 oracle on these float32 inputs",
    ], [("x", x32), ("dy", dy32), ("expected_dx_max", pool_backward(dy32, x32, 2, 1, "max")),
        ("expected_dx_avg", pool_backward(dy32, x32, 2, 1, "average"))])

    # pool_backward with stride 2: the same draw order, dA = randn(5, 2, 1, 2). The seed prints
    # nothing here, and the circulating solution (vert_start = h) ignores the stride: the oracle
    # honours it, and this checks that the two really differ, so the case catches that bug.
    np.random.seed(1)
    a_prev = np.random.randn(5, 5, 3, 2)
    assert_no_ties(a_prev, 2, 2)
    da = np.random.randn(5, 2, 1, 2)
    x32, dy32 = f32(a_prev), f32(da)
    dx_max = pool_backward(dy32, x32, 2, 2, "max")
    dx_avg = pool_backward(dy32, x32, 2, 2, "average")
    for mode, good in (("max", dx_max), ("average", dx_avg)):
        wrong = pool_backward(dy32, x32, 2, 2, mode, honour_stride=False)
        if np.allclose(wrong, good):
            sys.exit(f"make_golden_fixtures: stride-2 {mode} case does not expose the stride bug")
    write_fixture("pool_backward_s2", [
        "np.random.seed(1); A_prev = randn(5, 5, 3, 2); dA = randn(5, 2, 1, 2); f 2, stride 2",
        "expected_*: a stride-aware float64 oracle (the circulating solution has vert_start = h)",
    ], [("x", x32), ("dy", dy32), ("expected_dx_max", dx_max), ("expected_dx_avg", dx_avg)])

    print(f"make_golden_fixtures: wrote {os.path.normpath(FIXTURE_DIR)}")


if __name__ == "__main__":
    main()
