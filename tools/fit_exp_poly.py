"""fit_exp_poly: prints the coefficients of highway's ExpMinus1Degree6
(backends/highway/common/post_ops-inl.h).

e^r - 1 on |r| <= ln 2 / 2 (the float exponential's reduced range) as r + r^2 (c0 + c1 r + c2 r^2
+ c3 r^3 + c4 r^4): least squares on 8001 Chebyshev points, reweighted (Lawson's iteration) until
the relative error of e^r is close to equioscillating, then rounded to float. Prints the float
coefficients and the relative error they leave (3.8e-9).

    python3 tools/fit_exp_poly.py
"""

import numpy as np

HALF_LN2 = np.log(2) / 2
DEGREE = 4  # of the factor of r^2
ITERATIONS = 300


def fit():
    """The float32 coefficients c0 ... c4 and the max relative error of e^r they give."""
    r = np.cos(np.linspace(0, np.pi, 8001)) * HALF_LN2
    r = r[np.abs(r) > 1e-6]
    basis = np.vstack([r ** (k + 2) for k in range(DEGREE + 1)]).T
    target = np.expm1(r) - r
    weights = np.ones_like(r)
    for _ in range(ITERATIONS):
        scale = np.sqrt(weights) / np.exp(r)
        coef, *_ = np.linalg.lstsq(basis * scale[:, None], target * scale, rcond=None)
        error = (basis @ coef - target) / np.exp(r)
        weights = weights * np.abs(error) + 1e-30
        weights /= weights.sum()
    coef32 = coef.astype(np.float32)
    error = (basis @ coef32.astype(np.float64) - target) / np.exp(r)
    return coef32, float(np.max(np.abs(error)))


def main():
    coef, error = fit()
    for k, c in enumerate(coef):
        print(f"c{k} = {float(c)!r}f")
    print(f"max relative error of e^r: {error:.2e}")


if __name__ == "__main__":
    main()
