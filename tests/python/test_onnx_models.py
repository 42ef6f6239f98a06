"""convkit.onnx on the model set (small versions) against onnx.reference, on every backend."""

import re

import numpy as np
import pytest

from onnx_util import check, onnx  # noqa: F401  (skips the module without onnx)

import convkit.onnx
from convkit.onnx import models

# The reference backend is plain loops: only the tiniest models run on it.
REFERENCE_MODELS = ("unet", "mobilenetv2")


@pytest.fixture(scope="module")
def built():
    return {name: models.build(name, small=True) for name in models.MODELS}


@pytest.mark.parametrize("name", list(models.MODELS))
def test_model_matches_reference(built, name, backend):
    if backend == "reference" and name not in REFERENCE_MODELS:
        pytest.skip("the reference backend runs the tiniest models only (slow)")
    model = built[name]
    input_name, shape = models.input_shape(model)
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    loaded = check(model, {input_name: x}, backend=backend)
    ops = [node.op for node in loaded.graph.nodes]
    # Every BatchNormalization went into a convolution, every activation after a conv was fused.
    assert not {"BatchNormalization", "Relu", "Clip"} & set(ops)
    if name != "yolov8n":  # whose only Sigmoid is on the class scores, after Reshape/Concat
        assert "Sigmoid" not in ops


def test_model_set_is_well_formed(built):
    for name, model in built.items():
        onnx.checker.check_model(model)
        ops = {node.op_type for node in model.graph.node}
        assert {"Conv", "BatchNormalization"} <= ops, name
    assert {"Split", "Concat", "Resize", "MaxPool", "Softmax", "Sigmoid"} <= {
        n.op_type for n in built["yolov8n"].graph.node}
    assert "ConvTranspose" in {n.op_type for n in built["unet"].graph.node}
    depthwise = [n for n in built["efficientnet_b0"].graph.node if n.op_type == "Conv"
                 and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    assert {tuple(a.ints) for n in depthwise for a in n.attribute if a.name == "kernel_shape"} \
        == {(3, 3), (5, 5)}



def test_fpmath_bf16_stays_near_fp32(built):
    # bf16 rounds every convolution's x and w (2^-8 relative each): the outputs of a whole model
    # move by a few parts in a thousand, not more. On integers nothing would move; normals do.
    model = built["yolov8n"]
    input_name, shape = models.input_shape(model)
    x = np.random.default_rng(11).standard_normal(shape).astype(np.float32)
    strict = convkit.onnx.load(model).run({input_name: x})
    bf16 = convkit.onnx.load(model, fpmath="bf16").run({input_name: x})
    for a, b in zip(strict, bf16):
        scale = np.linalg.norm(a) + 1e-30
        assert np.linalg.norm(a - b) / scale < 3e-2
    with pytest.raises(ValueError, match="fpmath"):
        convkit.onnx.load(model, fpmath="fp16")


def test_cli_times_and_profiles(built, tmp_path, capsys):
    from convkit.onnx import cli

    path = tmp_path / "yolo.onnx"
    onnx.save(built["yolov8n"], path)
    assert cli.main([str(path), "--shape", "1,3,64,64", "--threads", "1", "--repeats", "1",
                     "--profile"]) == 0
    out = capsys.readouterr().out
    assert "inputs {'images': (1, 3, 64, 64)}" in out and "convkit " in out
    assert "glue (non-convkit) share" in out
    # Ten slowest steps, each with an implementation name (backend:variant:isa or numpy).
    rows = out.split("ten slowest steps")[1].strip().splitlines()[2:]
    assert len(rows) == 10 and all(len(row.split()) == 4 for row in rows)


def test_cli_profiles_steps_alone(built, tmp_path, capsys):
    from convkit.onnx import cli

    path = tmp_path / "yolo.onnx"
    onnx.save(built["yolov8n"], path)
    assert cli.main([str(path), "--shape", "1,3,64,64", "--threads", "1", "--repeats", "1",
                     "--profile", "--alone"]) == 0
    out = capsys.readouterr().out
    for title in ("convkit steps", "glue steps"):
        in_model, alone = (float(v) for v in re.search(
            title + r": ([0-9.]+) ms in the model, ([0-9.]+) ms alone", out).groups())
        assert in_model > 0 and alone > 0
    rows = out.split("ten slowest steps")[1].strip().splitlines()[4:]
    assert len(rows) == 10 and all(len(row.split()) == 5 for row in rows)  # both times, each


def test_profile_alone_times_every_step_and_keeps_results(built):
    model = built["yolov8n"]
    input_name, shape = models.input_shape(model)
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    loaded = convkit.onnx.load(model)
    before = [y.copy() for y in loaded.run({input_name: x})]
    profile = loaded.profile({input_name: x}, repeats=2, alone=True)
    assert all(step["alone_ms"] > 0 for step in profile)
    assert any(not step["convkit"] for step in profile)  # glue steps timed too
    for y, expected in zip(loaded.run({input_name: x}), before):
        np.testing.assert_array_equal(y, expected)


def test_runs_are_repeatable_and_outputs_are_not_overwritten(built):
    model = built["yolov8n"]
    input_name, shape = models.input_shape(model)
    rng = np.random.default_rng(3)
    x1, x2 = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    reused = convkit.onnx.load(model)
    fresh = convkit.onnx.load(model, reuse_buffers=False)
    y1 = reused(x1)
    y1_copy = y1.copy()
    y2 = reused(x2)
    np.testing.assert_array_equal(y1, y1_copy)  # the second run did not write into the first's
    np.testing.assert_array_equal(y2, fresh(x2))
    np.testing.assert_array_equal(reused(x1), y1)
