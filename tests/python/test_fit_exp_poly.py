"""tools/fit_exp_poly.py: the coefficients in ExpMinus1Degree6 are the ones its fit gives."""

import importlib.util
import os
import re

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
TOOL = os.path.join(ROOT, "tools", "fit_exp_poly.py")
HEADER = os.path.join(ROOT, "backends", "highway", "common", "post_ops-inl.h")


def header_coefficients():
    """c0 ... c4 of ExpMinus1Degree6, from its hn::Set calls in the order of their powers."""
    text = open(HEADER).read()
    body = text[text.index("HWY_INLINE V ExpMinus1Degree6"):]
    body = body[:body.index("\n}\n")]
    values = [float(v) for v in re.findall(r"hn::Set\(d, ([0-9.e+-]+)f\)", body)]
    lo1, lo0, hi3, hi2, c4 = values  # as written: lo = c1 r + c0, hi = c3 r + c2, then c4
    return np.array([lo0, lo1, hi2, hi3, c4])


def test_header_holds_the_fitted_coefficients():
    spec = importlib.util.spec_from_file_location("fit_exp_poly", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    coef, error = module.fit()
    assert error < 4e-9  # 0.06 ulp of a float: the bound the header states
    # Another LAPACK may round a coefficient to the neighbouring float.
    np.testing.assert_allclose(header_coefficients(), coef.astype(np.float64), rtol=1e-6)
