"""fit_gelu_table: prints highway's kGeluTable (backends/highway/common/post_ops-inl.h).

S(a) = Phi(-a) e^(a^2 / 2) = erfc(a / sqrt(2)) e^(a^2 / 2) / 2 on each unit interval [k, k + 1),
k = 0 ... 15, as a degree-7 polynomial in u = a - k - 1/2: a least-squares fit of the relative
error on 48 Chebyshev nodes, in 40-digit arithmetic, with the constant term fixed first (kept as a
float pair) and the linear term next (rounded to float), the rest refitted and rounded. Prints
the worst relative error over 401 points per interval, then the table's rows.

    python3 -m pip install mpmath && python3 tools/fit_gelu_table.py
"""

import mpmath as mp
import numpy as np

mp.mp.dps = 40
DEGREE, NODES = 7, 48


def s_exact(a):
    a = mp.mpf(a)
    return mp.erfc(a / mp.sqrt(2)) * mp.exp(a * a / 2) / 2


def solve(us, ys, fixed):
    """The least-squares coefficients after the `fixed` ones, relative to ys."""
    free = DEGREE + 1 - len(fixed)
    a, b = mp.matrix(len(us), free), mp.matrix(len(us), 1)
    for i, (u, y) in enumerate(zip(us, ys)):
        rest = y - sum(c * u ** d for d, c in enumerate(fixed))
        for d in range(free):
            a[i, d] = u ** (d + len(fixed)) / y
        b[i] = rest / y
    c = mp.lu_solve(a.T * a, a.T * b)
    return [c[d] for d in range(free)]


def f32(x):
    return float(np.float32(float(x)))


def fit(k):
    us = [mp.cos(mp.pi * (j + mp.mpf(1) / 2) / NODES) / 2 for j in range(NODES)]
    ys = [s_exact(k + mp.mpf(1) / 2 + u) for u in us]
    c0 = solve(us, ys, [])[0]
    c0_hi = f32(c0)
    c0_lo = f32(c0 - c0_hi)
    fixed = [mp.mpf(c0_hi) + mp.mpf(c0_lo)]
    fixed.append(mp.mpf(f32(solve(us, ys, fixed)[0])))
    rest = [f32(c) for c in solve(us, ys, fixed)]
    return [c0_hi, c0_lo, float(fixed[1])] + rest


def main():
    rows = [[] for _ in range(DEGREE + 2)]
    worst = 0
    for k in range(16):
        coefficients = fit(k)
        for row, c in zip(rows, coefficients):
            row.append(c)
        poly = [mp.mpf(coefficients[0]) + mp.mpf(coefficients[1])] + [
            mp.mpf(c) for c in coefficients[2:]]
        for u in np.linspace(-0.5, 0.5, 401):
            y = s_exact(k + 0.5 + u)
            p = sum(c * mp.mpf(float(u)) ** d for d, c in enumerate(poly))
            worst = max(worst, abs(p / y - 1))
    print(f"// worst relative error {float(worst):.3g}")
    print("alignas(64) static constexpr float kGeluTable[9][16] = {")
    for row in rows:
        print("    {" + ", ".join(repr(np.float32(c).item()) + "f" for c in row) + "},")
    print("};")


if __name__ == "__main__":
    main()
