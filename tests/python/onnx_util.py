"""Helpers of the convkit.onnx tests: tiny graphs built with onnx.helper, checked against
onnx.reference.ReferenceEvaluator (no peer runtime needed)."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import convkit.onnx  # noqa: E402

TOLERANCE = 1e-4  # max |convkit - reference| / max |reference|, per output


def make_model(nodes, inputs, outputs, initializers=None, opset=17):
    """A ModelProto of `nodes` (onnx NodeProtos); inputs {name: shape} (float32), outputs names,
    initializers {name: array}."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def conv_weights(rng, c_out, c_in, k=3):
    return (rng.standard_normal((c_out, c_in, k, k)) * np.sqrt(2 / (c_in * k * k))).astype(
        np.float32)


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.max(np.abs(expected)) if expected.size else 0
    assert scale > 0, "a mostly-zero result proves nothing"
    return np.max(np.abs(actual - expected)) / scale


def check(model, feeds, backend=None, tolerance=TOLERANCE, **load_kwargs):
    """Loads `model` with convkit.onnx, runs it on `feeds` and asserts every output is within
    `tolerance` of onnx.reference; returns the loaded convkit model."""
    shapes = {name: x.shape for name, x in feeds.items()}
    loaded = convkit.onnx.load(model, input_shapes=shapes, backend=backend, **load_kwargs)
    actual = loaded.run(feeds)
    with np.errstate(all="ignore"):
        expected = ReferenceEvaluator(model).run(None, feeds)
    assert len(actual) == len(expected)
    for name, a, e in zip(loaded.output_names, actual, expected):
        error = relative_error(a, e)
        assert error <= tolerance, f"output {name}: relative error {error:.3g}"
    return loaded


def node_ops(loaded):
    """The op types of a loaded model's graph after preparation."""
    return [node.op for node in loaded.graph.nodes]
