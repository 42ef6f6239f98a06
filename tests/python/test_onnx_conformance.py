"""ONNX's own backend conformance cases (onnx.backend.test.case.node) through convkit.onnx.

Every case whose op types convkit.onnx lists as supported runs with its expected outputs: each
must give them or raise UnsupportedError naming the node (a contract of DESIGN: never a wrong
answer, never another exception). Each case runs three ways: the second and later inputs as
constants (how weights, pads and axes arrive in real models), every input at run time, and, for
4-D float inputs, behind a MaxPool 1x1 (an exact identity that convkit runs) so the op sees NHWC
data and must remap its axes.
"""

import numpy as np
import pytest

from onnx_util import onnx

import convkit.onnx
from convkit.onnx import UnsupportedError

from onnx import helper, numpy_helper  # noqa: E402
from onnx.backend.test.case.node import collect_testcases  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
# Half-precision cases (expected values computed in that precision): tolerances of its epsilon.
HALF_TOLERANCE = {"float16": (2e-3, 1e-3), "bfloat16": (2e-2, 1e-2)}

# Cases whose expected values convkit deliberately does not reproduce, with what it gives instead.
# Resize with scales and align_corners: onnx.reference divides by the real-valued resized length
# (input length x scale = 2.4); ONNX Runtime divides by the integer output length (2), as convkit.
# Its output for 1x1x2x4 [[1 2 3 4], [5 6 7 8]] at scales 0.6: one row from x_original 0, columns
# from 0 and 1 x (4 - 1) / (2 - 1) = 3.
INSTEAD = {"test_resize_downsample_scales_linear_align_corners": np.array([[[[1.0, 4.0]]]]),
           # The same for cubic (4x4 [[1 .. 4] .. [13 .. 16]] at 0.8: 3x3 from 0, 1.5, 3).
           "test_resize_downsample_scales_cubic_align_corners": np.array(
               [[[[1.0, 2.5, 4.0], [7.0, 8.5, 10.0], [13.0, 14.5, 16.0]]]]),
           # MaxUnpool with output_shape 5x5: indices 5, 7, 13, 15 into the 5x5 output, as ONNX
           # Runtime and PyTorch (onnx.reference puts them into the inferred 4x4, then pads).
           "test_maxunpool_export_with_output_shape": np.bincount(
               [5, 7, 13, 15], weights=[5.0, 6.0, 7.0, 8.0], minlength=25).reshape(1, 1, 5, 5)}
# Expected values that onnx stores rounded to 4 decimals.
LOOSE = {"test_averagepool_2d_ceil_last_window_starts_on_pad": 1e-4}


def _as_array(value):
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value


def _cases():
    supported = set(convkit.onnx.supported_ops())
    for case in collect_testcases():
        if {node.op_type for node in case.model.graph.node} <= supported:
            yield case


CASES = sorted(_cases(), key=lambda case: case.name)
CONVKIT_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
               "GlobalMaxPool"}


def _variant(case, inputs, runtime, behind_maxpool):
    """(model, feeds): inputs past the first `runtime` become initializers; behind_maxpool puts
    each 4-D float32 runtime input through MaxPool 1x1."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    feeds = {}
    for k, (value, x) in enumerate(zip(list(graph.input), inputs)):
        if k < runtime:
            feeds[value.name] = x
        elif x is not None:
            graph.initializer.append(numpy_helper.from_array(np.asarray(x), value.name))
    del graph.input[runtime:]
    if behind_maxpool:
        nhwc = [name for name, x in feeds.items()
                if np.asarray(x).ndim == 4 and np.asarray(x).dtype == np.float32]
        if not nhwc or any(out.name in nhwc for out in graph.output):
            return None, None
        for node in graph.node:
            node.input[:] = [f"{n}_nhwc" if n in nhwc else n for n in node.input]
        pools = [helper.make_node("MaxPool", [n], [f"{n}_nhwc"], kernel_shape=[1, 1])
                 for n in nhwc]
        nodes = pools + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
    return model, feeds


def _check_case(case, backend, ways):
    """Runs every data set of `case` each of `ways`; returns how many ran (were not refused)."""
    ran = 0
    for inputs, expected in case.data_sets:
        inputs = [_as_array(x) for x in inputs]
        expected = [np.asarray(_as_array(y)) for y in expected]
        if case.name in INSTEAD:
            expected = [INSTEAD[case.name]]
        for runtime, behind_maxpool in ways(len(inputs)):
            model, feeds = _variant(case, inputs, runtime, behind_maxpool)
            if model is None:
                continue
            try:
                loaded = convkit.onnx.load(
                    model, input_shapes={k: np.asarray(x).shape for k, x in feeds.items()},
                    backend=backend)
                actual = loaded.run(feeds)
            except UnsupportedError:
                continue
            where = f"{case.name} ({runtime} runtime inputs, behind MaxPool: {behind_maxpool})"
            assert len(actual) == len(expected), where
            for a, e in zip(actual, expected):
                assert a.shape == e.shape, f"{where}: shape {a.shape}, expected {e.shape}"
                if e.dtype.kind in "biu":
                    np.testing.assert_array_equal(a, e, err_msg=where)
                else:
                    rtol, atol = HALF_TOLERANCE.get(e.dtype.name, (RTOL, ATOL))
                    np.testing.assert_allclose(
                        a.astype(np.float64), e.astype(np.float64), rtol=rtol,
                        atol=LOOSE.get(case.name, atol), equal_nan=True, err_msg=where)
            ran += 1
    return ran


def _all_ways(n_inputs):
    ways = [(1, False), (1, True)]
    return ways + ([(n_inputs, False)] if n_inputs > 1 else [])


def test_supported_cases_match_or_refuse():
    ran = [case for case in CASES if _check_case(case, "highway", _all_ways)]
    # Not vacuous: most cases of the supported ops run, among them those of the CNN ops.
    assert len(ran) >= 0.6 * len(CASES), (len(ran), len(CASES))
    ran_ops = {node.op_type for case in ran for node in case.model.graph.node}
    assert CONVKIT_OPS | {"Resize", "Pad", "Slice", "Softmax", "Concat", "Reshape"} <= ran_ops


@pytest.mark.parametrize("backend", [b for b in convkit.backends() if b != "highway"] + ["auto"])
def test_layer_cases_on_every_backend(backend):
    cases = [case for case in CASES
             if {node.op_type for node in case.model.graph.node} & CONVKIT_OPS]
    ran = sum(_check_case(case, backend, lambda n: [(1, False)]) for case in cases)
    assert ran >= 30, ran
