"""Shared fixtures: every test taking `backend` runs once per backend built into this copy.

A backend that refuses an operation (convkit.Error with code 'unsupported', e.g. one whose pool2d
is not written yet) makes the test skip with the library's reason, never pass silently.
"""

import numpy as np
import pytest

import convkit


def pytest_report_header(config):
    return f"convkit {convkit.__file__}; backends built in: {', '.join(convkit.backends())}"


@pytest.fixture(params=convkit.backends())
def backend(request):
    return request.param


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    try:
        return (yield)
    except convkit.Error as error:
        if error.code == "unsupported":
            pytest.skip(f"backend refuses the operation: {error}")
        raise


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)
