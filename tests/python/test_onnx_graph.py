"""convkit.onnx's rewrites (constant folding, BN folding, activation and residual fusion), its
NHWC axis remapping of glue ops, its layer attributes and its errors, on tiny graphs checked
against onnx.reference."""

import numpy as np
import pytest

from onnx_util import check, conv_weights, make_model, node_ops, onnx, relative_error
from onnx.reference import ReferenceEvaluator

import convkit
import convkit.onnx
from convkit.onnx import rewrite

helper = onnx.helper
N, C, H, W = 2, 5, 7, 6  # odd sizes so that a wrong axis cannot pass by symmetry


@pytest.fixture
def x(rng):
    return rng.standard_normal((N, C, H, W)).astype(np.float32)


def conv_then(rng, nodes, outputs, inits=None, c_out=C, opset=17, extra_inputs=None):
    """A model: 'x' -> Conv (3x3, pads 1, to 'c') -> nodes. 'c' is NHWC inside convkit, so the
    ops after it see NHWC data."""
    inits = dict(inits or {})
    inits.update(w=conv_weights(rng, c_out, C), b=rng.standard_normal(c_out).astype(np.float32))
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv")
    inputs = {"x": (N, C, H, W), **(extra_inputs or {})}
    return make_model([conv] + nodes, inputs, outputs, inits, opset=opset)


def bn_params(rng, c, prefix="bn"):
    return {f"{prefix}_s": rng.uniform(0.5, 1.5, c).astype(np.float32),
            f"{prefix}_b": rng.normal(0, 0.1, c).astype(np.float32),
            f"{prefix}_m": rng.normal(0, 0.1, c).astype(np.float32),
            f"{prefix}_v": rng.uniform(0.5, 1.5, c).astype(np.float32)}


def bn_node(x, y, prefix="bn"):
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in "sbmv"], [y],
                            epsilon=1e-3)


# ------------------------------------------------------------------------------------------------
# Rewrites.

def test_batch_norm_folds_into_conv(rng, x, backend):
    model = conv_then(rng, [bn_node("c", "y")], ["y"], bn_params(rng, C))
    loaded = check(model, {"x": x}, backend=backend)
    assert node_ops(loaded) == ["Conv"]


def test_standalone_batch_norm_is_a_per_channel_affine(rng, x):
    nodes = [helper.make_node("Relu", ["c"], ["r"]), bn_node("r", "y")]
    loaded = check(conv_then(rng, nodes, ["y"], bn_params(rng, C)), {"x": x})
    assert node_ops(loaded) == ["Conv", "Mul"]  # Mul + Add, one pass (merge_scale_shift)
    assert "_shift" in loaded.graph.nodes[1].attrs


@pytest.mark.parametrize("flatten", [False, True], ids=["nhwc", "plain"])
def test_scale_then_shift_is_one_step(rng, x, flatten):
    # Mul by a constant then Sub of one: one step, on NHWC data (per channel, scalar) and on a
    # flattened tensor (scalars: convkit's loop; per channel on a PLAIN 4-D tensor: numpy).
    node = helper.make_node
    inits = {"s": rng.uniform(0.5, 2, (C, 1, 1)).astype(np.float32), "t": np.float32([0.3]),
             "u": np.float32(1.5), "v": rng.standard_normal((1, C, 1, 1)).astype(np.float32),
             "k": np.float32([-0.7]), "shape": np.array([N, C, W, H], np.int64)}
    head = [node("Reshape", ["c", "shape"], ["c2"])] if flatten else [node("Relu", ["c"], ["c2"])]
    nodes = head + [node("Mul", ["c2", "s"], ["m"]), node("Sub", ["m", "t"], ["y"]),
                    node("Mul", ["u", "c2"], ["m2"]), node("Add", ["v", "m2"], ["z"]),
                    node("Mul", ["c2", "u"], ["m3"]), node("Add", ["m3", "k"], ["q"])]
    loaded = check(conv_then(rng, nodes, ["y", "z", "q"], inits), {"x": x})
    assert node_ops(loaded).count("Mul") == 3 and "Sub" not in node_ops(loaded)
    assert "Add" not in node_ops(loaded)


def test_per_channel_mul_and_add_fold_into_conv(rng, x):
    nodes = [helper.make_node("Mul", ["c", "s"], ["m"]), helper.make_node("Sub", ["m", "t"], ["y"])]
    inits = {"s": rng.uniform(0.5, 2, (C, 1, 1)).astype(np.float32),
             "t": rng.standard_normal((1, C, 1, 1)).astype(np.float32)}
    loaded = check(conv_then(rng, nodes, ["y"], inits), {"x": x})
    assert node_ops(loaded) == ["Conv"]


def test_affine_after_an_activation_folds_into_unpadded_readers(rng, x):
    # PP-LCNetV3's learnable affine block: Conv -> HardSwish -> Mul(scale) -> Add(bias), read by
    # 1x1 convolutions (dense, grouped) and a 2x2 one without padding: into their w and b. A
    # padded reader would see the padding's zeros as zeros of x * s + t: that chain stays.
    node = helper.make_node
    inits = {"s": np.array([1.7], np.float32), "t": rng.standard_normal((C, 1, 1)).astype(
        np.float32), "w1": conv_weights(rng, 4, C, 1), "w5": conv_weights(rng, 5, 1, 1),
        "w2": conv_weights(rng, 3, C, 2), "b2": rng.standard_normal(3).astype(np.float32)}
    nodes = [node("HardSwish", ["c"], ["h"]), node("Mul", ["s", "h"], ["m"]),
             node("Sub", ["m", "t"], ["a"]), node("Conv", ["a", "w1"], ["y1"]),
             node("Conv", ["a", "w5"], ["y2"], group=5),
             node("Conv", ["a", "w2", "b2"], ["y3"], strides=[2, 2])]
    loaded = check(conv_then(rng, nodes, ["y1", "y2", "y3"], inits), {"x": x})
    assert node_ops(loaded) == ["Conv"] * 4
    padded = nodes[:3] + [node("Conv", ["a", "w1"], ["y1"]),
                          node("Conv", ["a", "w2"], ["y2"], pads=[1, 0, 0, 0])]
    loaded = check(conv_then(rng, padded, ["y1", "y2"], inits), {"x": x})
    assert node_ops(loaded) == ["Conv", "Mul", "Conv", "Conv"]  # the Mul with the Sub merged


@pytest.mark.parametrize("steps", ["mul_add", "mul_sub", "mul", "add", "sub"])
def test_scalar_affine_after_an_activation_fuses_into_the_conv(rng, x, backend, steps):
    # PP-LCNetV3's learnable affine (scalar scale and bias after each activation) read by a padded
    # depthwise convolution: convkit's post_scale and post_shift on the producer, whatever reads
    # it; with a residual Add after it, the residual comes after the affine.
    node = helper.make_node
    inits = {"s": np.array([1.7], np.float32), "t": np.float32(-0.4),
             "wd": conv_weights(rng, C, 1, 3)}
    affine = {"mul_add": [node("Mul", ["s", "h"], ["m"]), node("Add", ["m", "t"], ["a"])],
              "mul_sub": [node("Mul", ["h", "s"], ["m"]), node("Sub", ["m", "t"], ["a"])],
              "mul": [node("Mul", ["h", "s"], ["a"])], "add": [node("Add", ["t", "h"], ["a"])],
              "sub": [node("Sub", ["h", "t"], ["a"])]}[steps]
    nodes = [node("HardSwish", ["c"], ["h"])] + affine + [
        node("Add", ["a", "x"], ["ar"]),
        node("Conv", ["ar", "wd"], ["y"], group=C, pads=[1, 1, 1, 1])]
    loaded = check(conv_then(rng, nodes, ["y"], inits), {"x": x}, backend=backend)
    assert node_ops(loaded) == ["Conv", "Conv"]
    fused = loaded.graph.nodes[0].attrs
    scale = 1.7 if steps.startswith("mul") else 1.0
    shift = {"mul_add": -0.4, "mul_sub": 0.4, "mul": 0.0, "add": -0.4, "sub": 0.4}[steps]
    assert fused["_activation"] == "hardswish" and fused["_residual"] == "after"
    assert fused["_linear"] == pytest.approx((scale, shift), rel=1e-6)


def test_scalar_affine_of_an_activation_read_twice_stays(rng, x):
    # The activation's output is also read elsewhere: no linear map; the affine's product read
    # twice: the scale alone fuses.
    node = helper.make_node
    inits = {"s": np.array([1.7], np.float32), "t": np.float32(-0.4)}
    nodes = [node("Relu", ["c"], ["h"]), node("Mul", ["h", "s"], ["m"]),
             node("Add", ["m", "t"], ["y"]), node("Sigmoid", ["h"], ["z"])]
    loaded = check(conv_then(rng, nodes, ["y", "z"], inits), {"x": x})
    assert "_linear" not in loaded.graph.nodes[0].attrs
    nodes[3] = node("Sigmoid", ["m"], ["z"])
    loaded = check(conv_then(rng, nodes, ["y", "z"], inits), {"x": x})
    assert loaded.graph.nodes[0].attrs["_linear"] == pytest.approx((1.7, 0.0), rel=1e-6)


def test_times_one_goes_and_no_longer_hides_swish(rng, x):
    # Paddle's swish: x * sigmoid(x * 1), after a Conv and after a MatMul with its bias.
    node = helper.make_node
    inits = {"one": np.float32([1.0]), "wm": rng.standard_normal((W, 4)).astype(np.float32),
             "bm": rng.standard_normal(4).astype(np.float32)}
    nodes = [node("Mul", ["one", "c"], ["c1"]), node("Sigmoid", ["c1"], ["s"]),
             node("Mul", ["c", "s"], ["y"]), node("MatMul", ["y", "wm"], ["m"]),
             node("Add", ["m", "bm"], ["mb"]), node("Div", ["mb", "one"], ["m1"]),
             node("Sigmoid", ["m1"], ["ms"]), node("Mul", ["ms", "mb"], ["z"])]
    loaded = check(conv_then(rng, nodes, ["z"], inits), {"x": x})
    assert node_ops(loaded) == ["Conv", "MatMul"]
    assert [n.attrs["_activation"] for n in loaded.graph.nodes] == ["silu", "silu"]


def test_one_over_x_and_times_two_stay(rng, x):
    node = helper.make_node
    nodes = [node("Sigmoid", ["c"], ["r"]), node("Div", ["one", "r"], ["y"]),
             node("Mul", ["r", "two"], ["z"])]
    inits = {"one": np.float32(1.0), "two": np.float32(2.0)}
    loaded = check(conv_then(rng, nodes, ["y", "z"], inits), {"x": x})
    assert node_ops(loaded) == ["Conv", "Div", "Mul"]


@pytest.mark.parametrize("case", ["bias", "bias_relu", "bias_residual", "gemm_relu",
                                  "no_bias_gelu"])
def test_matmul_and_gemm_take_their_bias_activation_and_residual(rng, backend, case):
    # A transformer-style Linear (MatMul by a constant + Add of its bias) on (N, T, K) data, then
    # its activation or a residual Add; a Gemm with its Relu: one convkit layer each.
    node = helper.make_node
    t, k, m = 7, 12, 12
    inits = {"w": rng.standard_normal((k, m)).astype(np.float32),
             "b": rng.standard_normal((1, 1, m)).astype(np.float32),
             "w2": rng.standard_normal((k, m)).astype(np.float32),
             "b2": rng.standard_normal(m).astype(np.float32)}
    if case == "gemm_relu":
        nodes = [node("Gemm", ["a2", "w2", "b2"], ["g"]), node("Relu", ["g"], ["y"])]
        inputs = {"a2": (t, k)}
    else:
        nodes = [node("MatMul", ["a", "w"], ["m"])]
        if case == "no_bias_gelu":
            nodes.append(node("Gelu", ["m"], ["y"]))
        else:
            nodes.append(node("Add", ["m", "b"], ["mb" if case != "bias" else "y"]))
        if case == "bias_relu":
            nodes.append(node("Relu", ["mb"], ["y"]))
        if case == "bias_residual":
            nodes.append(node("Add", ["a", "mb"], ["y"]))
        inputs = {"a": (2, t, k)}
    model = make_model(nodes, inputs, ["y"], inits, opset=20)
    feeds = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in inputs.items()}
    loaded = check(model, feeds, backend=backend)
    assert len(loaded.graph.nodes) == 1
    fused = loaded.graph.nodes[0].attrs
    assert fused.get("_bias", False) == case.startswith("bias")
    assert fused.get("_activation") == {"bias_relu": "relu", "gemm_relu": "relu",
                                        "no_bias_gelu": "gelu"}.get(case)
    assert fused.get("_residual") == ("before" if case == "bias_residual" else None)


def _decomposed_layer_norm(rng, opset, beta=True, axis=-1):
    """A layer norm over (2, 7, 12)'s `axis` as exported before opset 17: nine ops."""
    node = helper.make_node
    axes = {"axes": [axis]} if opset < 18 else {}
    axes_input = ["axes"] if opset >= 18 else []
    inits = {"two": np.float32(2.0), "eps": np.float32(1e-5),
             "gamma": rng.uniform(0.5, 1.5, 12).astype(np.float32),
             "beta": rng.standard_normal(12).astype(np.float32), "axes": np.array([axis])}
    nodes = [node("ReduceMean", ["a"] + axes_input, ["mean"], **axes),
             node("Sub", ["a", "mean"], ["d"]), node("Pow", ["d", "two"], ["d2"]),
             node("ReduceMean", ["d2"] + axes_input, ["var"], **axes),
             node("Add", ["var", "eps"], ["ve"]), node("Sqrt", ["ve"], ["std"]),
             node("Div", ["d", "std"], ["n"]), node("Mul", ["n", "gamma"], ["g" if beta else "y"])]
    if beta:
        nodes.append(node("Add", ["g", "beta"], ["y"]))
    if opset < 18:
        del inits["axes"]
    return make_model(nodes, {"a": (2, 7, 12)}, ["y"], inits, opset=opset)


@pytest.mark.parametrize("opset,beta", [(13, True), (18, True), (13, False)])
def test_decomposed_layer_norm_is_one_step(rng, opset, beta):
    model = _decomposed_layer_norm(rng, opset, beta)
    loaded = check(model, {"a": rng.standard_normal((2, 7, 12)).astype(np.float32)})
    assert node_ops(loaded) == ["LayerNormalization"]
    norm = loaded.graph.nodes[0]
    assert norm.attrs["epsilon"] == pytest.approx(1e-5) and len(norm.inputs) == (3 if beta else 2)


def test_a_norm_over_another_axis_stays_decomposed(rng):
    model = _decomposed_layer_norm(rng, 13, axis=1)
    model.graph.initializer[2].CopyFrom(onnx.numpy_helper.from_array(
        rng.uniform(0.5, 1.5, (7, 1)).astype(np.float32), "gamma"))
    model.graph.initializer[3].CopyFrom(onnx.numpy_helper.from_array(
        rng.standard_normal((7, 1)).astype(np.float32), "beta"))
    loaded = check(model, {"a": rng.standard_normal((2, 7, 12)).astype(np.float32)})
    assert "LayerNormalization" not in node_ops(loaded)


def test_matmul_bias_along_another_axis_stays_an_add(rng):
    node = helper.make_node
    inits = {"w": rng.standard_normal((6, 5)).astype(np.float32),
             "b": rng.standard_normal((1, 4, 1)).astype(np.float32)}
    model = make_model([node("MatMul", ["a", "w"], ["m"]), node("Add", ["m", "b"], ["y"])],
                       {"a": (2, 4, 6)}, ["y"], inits)
    loaded = check(model, {"a": rng.standard_normal((2, 4, 6)).astype(np.float32)})
    assert node_ops(loaded) == ["MatMul", "Add"]


def test_identities_go_and_no_longer_hide_an_activation(rng, x):
    # Paddle's exports: Conv -> Identity -> Identity -> GELU (erf form), a Dropout with its ratio;
    # an Identity that is a graph output stays.
    node = helper.make_node
    inits = {"sqrt2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5),
             "ratio": np.float32(0.1)}
    nodes = [node("Identity", ["c"], ["i1"]), node("Identity", ["i1"], ["i2"]),
             node("Div", ["i2", "sqrt2"], ["d"]), node("Erf", ["d"], ["e"]),
             node("Add", ["e", "one"], ["a"]), node("Mul", ["i2", "a"], ["m"]),
             node("Mul", ["m", "half"], ["g"]), node("Dropout", ["g", "ratio"], ["dd"]),
             node("Identity", ["dd"], ["y"])]
    loaded = check(conv_then(rng, nodes, ["y"], inits), {"x": x})
    assert node_ops(loaded) == ["Conv", "Identity"]
    assert loaded.graph.nodes[0].attrs["_activation"] == "gelu"


def test_shape_subgraph_folds(rng, x):
    nodes = [
        helper.make_node("Shape", ["c"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["c", "target"], ["y"]),
        helper.make_node("ConstantOfShape", ["target_len"], ["ones"],
                         value=helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [2.0])),
        helper.make_node("Constant", [], ["k"], value_float=0.5),
        helper.make_node("Mul", ["ones", "k"], ["z"]),
    ]
    inits = {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
             "minus_one": np.array([-1], np.int64), "target_len": np.array([3], np.int64)}
    loaded = check(conv_then(rng, nodes, ["y", "z"], inits), {"x": x})
    assert node_ops(loaded) == ["Conv", "Reshape"]
    assert loaded.graph.consts[loaded.graph.nodes[1].inputs[1]].tolist() == [N, -1]


def _activation_cases():
    """(name, nodes from 'c' to 'y', initializers, expected convkit spec, opset)."""
    scalar = lambda v: np.array(v, np.float32)  # noqa: E731
    node = helper.make_node
    return [
        ("relu", [node("Relu", ["c"], ["y"])], {}, "relu", 17),
        ("relu6", [node("Clip", ["c", "lo", "hi"], ["y"])], {"lo": scalar(0), "hi": scalar(6)},
         "relu6", 17),
        ("clip", [node("Clip", ["c", "lo", "hi"], ["y"])], {"lo": scalar(-0.5), "hi": scalar(1)},
         ("clip", -0.5, 1.0), 17),
        ("leaky", [node("LeakyRelu", ["c"], ["y"], alpha=0.1)], {}, ("leaky_relu", 0.1), 17),
        ("sigmoid", [node("Sigmoid", ["c"], ["y"])], {}, "sigmoid", 17),
        ("tanh", [node("Tanh", ["c"], ["y"])], {}, "tanh", 17),
        ("hardsigmoid", [node("HardSigmoid", ["c"], ["y"], alpha=0.25, beta=0.4)], {},
         ("hardsigmoid", 0.25, 0.4), 17),
        ("hardswish_op", [node("HardSwish", ["c"], ["y"])], {}, "hardswish", 17),
        ("silu", [node("Sigmoid", ["c"], ["s"]), node("Mul", ["c", "s"], ["y"])], {}, "silu", 17),
        ("hardswish_gate", [node("HardSigmoid", ["c"], ["s"], alpha=1 / 6, beta=0.5),
                            node("Mul", ["s", "c"], ["y"])], {}, "hardswish", 17),
        ("hardswish_clip", [node("Add", ["c", "three"], ["a"]),
                            node("Clip", ["a", "lo", "hi"], ["r6"]),
                            node("Mul", ["c", "r6"], ["m"]), node("Div", ["m", "six"], ["y"])],
         {"three": scalar(3), "lo": scalar(0), "hi": scalar(6), "six": scalar(6)},
         "hardswish", 17),
        ("gelu_op", [node("Gelu", ["c"], ["y"])], {}, "gelu", 20),
        ("swish_op", [node("Swish", ["c"], ["y"])], {}, "silu", 24),
        ("gelu_erf_a", [node("Div", ["c", "sqrt2"], ["d"]), node("Erf", ["d"], ["e"]),
                        node("Add", ["e", "one"], ["a"]), node("Mul", ["c", "a"], ["m"]),
                        node("Mul", ["m", "half"], ["y"])],
         {"sqrt2": scalar(np.sqrt(2)), "one": scalar(1), "half": scalar(0.5)}, "gelu", 17),
        ("gelu_erf_b", [node("Mul", ["c", "half"], ["h"]), node("Div", ["c", "sqrt2"], ["d"]),
                        node("Erf", ["d"], ["e"]), node("Add", ["one", "e"], ["a"]),
                        node("Mul", ["h", "a"], ["y"])],
         {"sqrt2": scalar(np.sqrt(2)), "one": scalar(1), "half": scalar(0.5)}, "gelu", 17),
    ]


@pytest.mark.parametrize("case", _activation_cases(), ids=lambda case: case[0])
def test_activation_fuses_into_conv(rng, x, case):
    _, nodes, inits, spec, opset = case
    loaded = check(conv_then(rng, nodes, ["y"], inits, opset=opset), {"x": x})
    assert node_ops(loaded) == ["Conv"]
    fused = loaded.graph.nodes[0].attrs["_activation"]
    if isinstance(spec, tuple):  # float32 attributes: compare the numbers approximately
        assert fused[0] == spec[0] and fused[1:] == pytest.approx(spec[1:], rel=1e-6)
    else:
        assert fused == spec


def test_activation_not_fused_when_conv_output_is_also_used(rng, x):
    nodes = [helper.make_node("Relu", ["c"], ["y"]), helper.make_node("Add", ["c", "y"], ["z"])]
    loaded = check(conv_then(rng, nodes, ["y", "z"]), {"x": x})
    assert node_ops(loaded) == ["Conv", "Relu", "Add"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_residual_add_fuses_into_conv(rng, x, backend, where):
    node = helper.make_node
    if where == "before":  # ResNet: relu(conv(x) + x)
        nodes = [node("Add", ["x", "c"], ["a"]), node("Relu", ["a"], ["y"])]
    else:  # YOLO's bottleneck: x + silu(conv(x))
        nodes = [node("Sigmoid", ["c"], ["s"]), node("Mul", ["c", "s"], ["m"]),
                 node("Add", ["m", "x"], ["y"])]
    loaded = check(conv_then(rng, nodes, ["y"]), {"x": x}, backend=backend)
    assert node_ops(loaded) == ["Conv"]
    fused = loaded.graph.nodes[0]
    assert fused.attrs["_residual"] == where and fused.inputs[3] == "x"
    assert fused.attrs["_activation"] == ("relu" if where == "before" else "silu")


def _squeeze_excitation(rng, also_read=False):
    """conv -> squeeze-and-excitation gate (GlobalAveragePool, 1x1 + Relu, 1x1 + Sigmoid) ->
    Mul -> a 1x1 projection; with also_read the Mul's product is a graph output too."""
    node = helper.make_node
    inits = {"w1": conv_weights(rng, 3, C, 1), "b1": rng.standard_normal(3).astype(np.float32),
             "w2": conv_weights(rng, C, 3, 1), "b2": rng.standard_normal(C).astype(np.float32),
             "wp": conv_weights(rng, 4, C, 1)}
    nodes = [node("GlobalAveragePool", ["c"], ["g"]), node("Conv", ["g", "w1", "b1"], ["s1"]),
             node("Relu", ["s1"], ["s2"]), node("Conv", ["s2", "w2", "b2"], ["s3"]),
             node("Sigmoid", ["s3"], ["gate"]), node("Mul", ["c", "gate"], ["m"]),
             node("Conv", ["m", "wp"], ["y"])]
    return conv_then(rng, nodes, ["y", "m"] if also_read else ["y"], inits)


def test_squeeze_excitation_gate_fuses_into_the_projection(rng, x, backend):
    loaded = check(_squeeze_excitation(rng), {"x": x}, backend=backend)
    assert "Mul" not in node_ops(loaded)
    projection = loaded.graph.nodes[-1]
    assert projection.attrs["_x_scale"] and projection.inputs[4] == "gate"
    assert projection.inputs[3] == "" and projection.inputs[2] == ""  # no residual, no bias
    if backend == "highway":
        assert loaded.steps[-2].layer.plan.fuses_x_scale  # the last step is the output's transpose


def test_squeeze_excitation_gate_read_elsewhere_stays(rng, x):
    loaded = check(_squeeze_excitation(rng, also_read=True), {"x": x})
    assert "Mul" in node_ops(loaded)
    assert "_x_scale" not in loaded.graph.nodes[-1].attrs


def _residual_gate(rng, gate_read=False, order=("c", "m")):
    """DBNet's RSE block: c + c * HardSigmoid(1x1 conv(GlobalAveragePool(c))), the Add's inputs in
    `order`; with gate_read the product c * gate is a graph output too."""
    node = helper.make_node
    inits = {"w1": conv_weights(rng, C, C, 1), "b1": rng.standard_normal(C).astype(np.float32)}
    nodes = [node("GlobalAveragePool", ["c"], ["g"]), node("Conv", ["g", "w1", "b1"], ["s"]),
             node("HardSigmoid", ["s"], ["gate"]), node("Mul", ["gate", "c"], ["m"]),
             node("Add", list(order), ["y"])]
    return conv_then(rng, nodes, ["y", "m"] if gate_read else ["y"], inits)


@pytest.mark.parametrize("order", [("c", "m"), ("m", "c")])
def test_residual_gate_is_one_multiply_by_one_plus_the_gate(rng, x, backend, order):
    loaded = check(_residual_gate(rng, order=order), {"x": x}, backend=backend)
    ops = node_ops(loaded)
    # The Add of the gate and 1 goes into the gate's convolution (its shift after the activation).
    assert ops.count("Mul") == 1 and ops.count("Add") == 0
    gate_conv = next(n for n in loaded.graph.nodes if n.op == "Conv" and "_linear" in n.attrs)
    mul = next(n for n in loaded.graph.nodes if n.op == "Mul")
    assert gate_conv.attrs["_activation"][0] == "hardsigmoid"
    assert gate_conv.attrs["_linear"] == (1.0, 1.0)
    assert mul.inputs == ["c", gate_conv.outputs[0]]
    assert loaded.graph.shapes[gate_conv.outputs[0]] == (N, C, 1, 1)


def test_residual_gate_read_elsewhere_stays_two_passes(rng, x):
    loaded = check(_residual_gate(rng, gate_read=True), {"x": x})
    assert node_ops(loaded).count("Add") == 1
    assert next(n for n in loaded.graph.nodes if n.op == "Add").inputs == ["c", "m"]


def test_residual_gate_of_the_full_shape_stays_two_passes(rng, x):
    # c + c * d with d of c's shape: 1 + d would cost the pass it saves.
    node = helper.make_node
    model = conv_then(rng, [node("Sigmoid", ["c"], ["d"]), node("Mul", ["c", "d"], ["m"]),
                            node("Add", ["c", "m"], ["y"])], ["y"])
    loaded = check(model, {"x": x})
    assert next(n for n in loaded.graph.nodes if n.op == "Add").inputs[0] == "c"


def _c2f(rng, consumer_k=1):
    """YOLO's C2f: conv 'c' split in halves, a 3x3 conv of the second half, the three
    concatenated along C and read by a (consumer_k x consumer_k) projection."""
    node = helper.make_node
    inits = {"split": np.array([2, 3], np.int64), "wm": conv_weights(rng, 3, 3),
             "wp": conv_weights(rng, 4, 8, consumer_k)}
    pad = [consumer_k // 2] * 4
    nodes = [node("Split", ["c", "split"], ["c0", "c1"], axis=1),
             node("Conv", ["c1", "wm"], ["m"], pads=[1, 1, 1, 1]),
             node("Concat", ["c0", "c1", "m"], ["cat"], axis=1),
             node("Conv", ["cat", "wp"], ["y"], pads=pad)]
    return conv_then(rng, nodes, ["y"], inits)


def test_channel_concat_fuses_into_the_1x1_conv_after_it(rng, x, backend):
    loaded = check(_c2f(rng), {"x": x}, backend=backend)
    assert "Concat" not in node_ops(loaded)
    projection = loaded.graph.nodes[-1]
    assert projection.attrs["_pieces"] == 3
    assert projection.inputs[0] == "c0" and projection.inputs[5:] == ["c1", "m"]
    if backend == "highway":
        assert loaded.steps[-2].layer.plan.fuses_concat  # the last step is the output's transpose


@pytest.mark.parametrize("gate", [False, True])
def test_affine_before_a_fused_input_stays_out_of_the_weights(rng, x, gate):
    # An affine map (Mul, Add by per-channel constants) of one Concat piece, or of x before a
    # gate (computed from another tensor, so that the conv alone reads the map): folded into the
    # 1x1 conv's weights it would scale every piece, or its shift would miss the gate.
    node = helper.make_node
    inits = {"s": rng.uniform(0.5, 2, (1, C, 1, 1)).astype(np.float32),
             "t": rng.normal(0, 1, (1, C, 1, 1)).astype(np.float32),
             "wp": conv_weights(rng, 4, C if gate else 2 * C, 1),
             "w1": conv_weights(rng, C, C, 1)}
    nodes = [node("Relu", ["c"], ["r"]), node("Mul", ["r", "s"], ["m"]),
             node("Add", ["m", "t"], ["a"])]
    if gate:
        nodes += [node("GlobalAveragePool", ["c"], ["g"]), node("Conv", ["g", "w1"], ["g1"]),
                  node("Sigmoid", ["g1"], ["gate"]), node("Mul", ["a", "gate"], ["in"])]
    else:
        nodes += [node("Concat", ["a", "c"], ["in"], axis=1)]
    nodes += [node("Conv", ["in", "wp"], ["y"])]
    loaded = check(conv_then(rng, nodes, ["y"], inits), {"x": x})
    assert loaded.graph.nodes[-1].attrs.get("_x_scale" if gate else "_pieces")


def test_channel_concat_before_a_3x3_conv_stays(rng, x):
    loaded = check(_c2f(rng, consumer_k=3), {"x": x})
    assert "Concat" in node_ops(loaded)


@pytest.mark.parametrize("make", [_squeeze_excitation, _c2f])
def test_input_fusions_with_bf16(rng, x, make):
    model = make(rng)
    bf16 = convkit.onnx.load(model, fpmath="bf16")
    assert "Mul" not in node_ops(bf16) and "Concat" not in node_ops(bf16)
    strict = convkit.onnx.load(model)(x)
    assert relative_error(bf16(x), strict) < 3e-2


def test_broadcast_add_is_not_a_residual(rng, x):
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]),
             helper.make_node("Add", ["c", "g"], ["y"])]
    loaded = check(conv_then(rng, nodes, ["y"]), {"x": x})
    assert "_residual" not in loaded.graph.nodes[0].attrs


def test_unfused_model_matches_fused(rng, x):
    nodes = [helper.make_node("Add", ["x", "c"], ["a"]), helper.make_node("Relu", ["a"], ["y"])]
    model = conv_then(rng, nodes, ["y"])
    fused = convkit.onnx.load(model)(x)
    plain = convkit.onnx.load(model, fuse=False)
    assert node_ops(plain) == ["Conv", "Add", "Relu"]
    np.testing.assert_allclose(plain(x), fused, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax"])
@pytest.mark.parametrize("opset, keepdims", [(13, 1), (13, 0), (18, 1), (18, 0)])
def test_spatial_reductions_of_nhwc_data_run_as_global_pools(rng, x, op, opset, keepdims):
    # Over H and W (as -2, 3 too) of a conv's NHWC output: a convkit pool; over C, numpy's
    # reduction. NaN propagates as in numpy.
    node = helper.make_node
    inits, attrs = {}, {"keepdims": keepdims}
    if opset >= 18:
        inits.update(hw=np.array([-2, 3], np.int64), ch=np.array([1], np.int64))
        nodes = [node(op, ["c", "hw"], ["y"], **attrs), node(op, ["c", "ch"], ["z"], **attrs)]
    else:
        nodes = [node(op, ["c"], ["y"], axes=[-2, 3], **attrs),
                 node(op, ["c"], ["z"], axes=[1], **attrs)]
    loaded = check(conv_then(rng, nodes, ["y", "z"], inits, opset=opset), {"x": x})
    reductions = [s for s in loaded.steps if s.op == op]
    assert [s.is_convkit for s in reductions] == [True, False]
    assert reductions[0].layer.kwargs["mode"] == ("average" if op == "ReduceMean" else "max")
    x_nan = x.copy()
    x_nan[0, :, 2, 3] = np.nan
    y = loaded.run({"x": x_nan})[0]
    assert np.isnan(y[0]).all() and not np.isnan(y[1]).any()


def test_rewrite_counts(rng):
    model = conv_then(rng, [bn_node("c", "b1"), helper.make_node("Relu", ["b1"], ["y"])], ["y"],
                      bn_params(rng, C))
    from convkit.onnx.graph import from_onnx
    from convkit.onnx.infer import infer

    graph = infer(from_onnx(model, None))
    assert rewrite.prepare(graph) == {"drop_identities": 0, "fold_pad": 0, "fold_batch_norm": 1,
                                      "fold_affine": 0, "fold_dense_bias": 0,
                                      "fuse_layer_norm": 0,
                                      "merge_self_gate": 0,
                                      "fuse_activations": 1, "fuse_input_scale": 0,
                                      "fuse_concat_input": 0,
                                      "fold_affine_forward": 0,
                                      "merge_scale_shift": 0}


def test_zero_pad_folds_into_conv(rng, x):
    node = helper.make_node
    nodes = [node("Pad", ["x", "pads"], ["p"]),
             node("Conv", ["p", "w2"], ["y"], pads=[1, 0, 0, 1], strides=[2, 2])]
    inits = {"pads": np.array([0, 0, 2, 1, 0, 0, 0, 3], np.int64), "w2": conv_weights(rng, 3, C)}
    loaded = check(make_model(nodes, {"x": x.shape}, ["y"], inits), {"x": x})
    assert node_ops(loaded) == ["Conv"] and loaded.graph.nodes[0].attrs["pads"] == [3, 1, 0, 4]
    # A non-zero or channel pad stays a Pad.
    inits["pads"] = np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int64)
    inits["w2"] = conv_weights(rng, 3, C + 1)
    loaded = check(make_model(nodes, {"x": x.shape}, ["y"], inits), {"x": x})
    assert node_ops(loaded) == ["Pad", "Conv"]


# ------------------------------------------------------------------------------------------------
# Glue ops on NHWC data: axes remapped, results in ONNX's NCHW order.

def _glue_cases():
    node = helper.make_node
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    f32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
    rng = np.random.default_rng(3)
    return [
        ("concat_c", [node("Concat", ["c", "c2"], ["y"], axis=1)], {}),
        ("concat_h", [node("Concat", ["c", "c2"], ["y"], axis=2)], {}),
        ("concat_w_neg", [node("Concat", ["c", "c2"], ["y"], axis=-1)], {}),
        # Channel slices of an NHWC tensor (strided views) and a whole tensor, side by side.
        ("concat_c_split_views", [node("Split", ["c", "sizes"], ["s0", "s1"], axis=1),
                                  node("Concat", ["s1", "c2", "s0"], ["y"], axis=1)],
         {"sizes": i64(2, 3)}),
        ("split_c", [node("Split", ["c", "sizes"], ["y", "z"], axis=1)], {"sizes": i64(2, 3)}),
        ("split_h", [node("Split", ["c", "sizes"], ["y", "z"], axis=2)], {"sizes": i64(3, 4)}),
        ("split_w", [node("Split", ["c"], ["y", "z"], axis=3, num_outputs=2)], {}),
        ("split_one", [node("Split", ["c"], ["y"], axis=1, num_outputs=1)], {}),
        ("slice", [node("Slice", ["c", "st", "en", "ax", "sp"], ["y"])],
         {"st": i64(1, -1, 0), "en": i64(4, -100, 5), "ax": i64(1, 2, 3), "sp": i64(2, -2, 1)}),
        ("reshape", [node("Reshape", ["c", "s"], ["y"])], {"s": i64(N, -1, W)}),
        ("reshape_zero", [node("Reshape", ["c", "s"], ["y"])], {"s": i64(0, 0, -1)}),
        ("flatten", [node("Flatten", ["c"], ["y"], axis=1)], {}),
        ("flatten_2", [node("Flatten", ["c"], ["y"], axis=2)], {}),
        ("gap_flatten_gemm", [node("GlobalAveragePool", ["c"], ["g"]),
                              node("Flatten", ["g"], ["f"]),
                              node("Gemm", ["f", "fc", "fb"], ["y"], transB=1, alpha=0.5)],
         {"fc": f32(rng.standard_normal((3, C))), "fb": f32(rng.standard_normal(3))}),
        ("squeeze_unsqueeze", [node("ReduceMean", ["c", "ax"], ["r"], keepdims=1),
                               node("Squeeze", ["r", "ax"], ["s"]),
                               node("Unsqueeze", ["s", "ax0"], ["y"])],
         {"ax": i64(2, 3), "ax0": i64(0)}),
        ("transpose", [node("Transpose", ["c"], ["y"], perm=[0, 2, 3, 1])], {}),
        ("transpose_back", [node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
                            node("Relu", ["t"], ["y"])], {}),
        ("transpose_odd", [node("Transpose", ["c"], ["y"], perm=[3, 1, 0, 2])], {}),
        ("softmax_c", [node("Softmax", ["c"], ["y"], axis=1)], {}),
        ("softmax_last", [node("Softmax", ["c"], ["y"], axis=-1)], {}),
        ("log_softmax_h", [node("LogSoftmax", ["c"], ["y"], axis=2)], {}),
        ("reduce_mean_hw", [node("ReduceMean", ["c", "ax"], ["y"], keepdims=0)], {"ax": i64(2, 3)}),
        ("reduce_mean_c", [node("ReduceMean", ["c", "ax"], ["y"], keepdims=1)], {"ax": i64(1)}),
        ("reduce_max_cw", [node("ReduceMax", ["c", "ax"], ["y"], keepdims=0)], {"ax": i64(1, 3)}),
        ("reduce_sum_h", [node("ReduceSum", ["c", "ax"], ["y"], keepdims=0)], {"ax": i64(-2)}),
        ("broadcast_chw", [node("Mul", ["c", "k"], ["m"]), node("Add", ["m", "v"], ["y"])],
         {"k": f32(rng.standard_normal((C, 1, 1))), "v": f32(rng.standard_normal(W))}),
        ("broadcast_full", [node("Sub", ["k", "c"], ["y"])],
         {"k": f32(rng.standard_normal((1, C, H, W)))}),
        ("broadcast_runtime_nc11", [node("GlobalMaxPool", ["c"], ["g"]),
                                    node("Div", ["c", "g"], ["y"])], {}),
        # Squeeze-and-excitation's scale, the factor second and first (convkit's channel scale).
        ("channel_scale", [node("GlobalAveragePool", ["c"], ["g"]),
                           node("Sigmoid", ["g"], ["s"]), node("Mul", ["c", "s"], ["y"])], {}),
        ("channel_scale_first", [node("GlobalMaxPool", ["c2"], ["g"]),
                                 node("Mul", ["g", "c"], ["y"])], {}),
        ("pow_sqrt", [node("Abs", ["c"], ["a"]), node("Pow", ["a", "p"], ["q"]),
                      node("Sqrt", ["q"], ["y"])], {"p": f32(3.0)}),
        ("pad_constant", [node("Pad", ["c", "pads", "v"], ["y"])],
         {"pads": i64(0, 1, 2, 0, 0, 0, 1, 3), "v": f32(0.5)}),
        ("pad_reflect", [node("Pad", ["c", "pads"], ["y"], mode="reflect")],
         {"pads": i64(0, 0, 1, 2, 0, 0, 2, 1)}),
        ("matmul", [node("MatMul", ["c", "m"], ["y"])], {"m": f32(rng.standard_normal((W, 4)))}),
        ("unary_chain", [node("Tanh", ["c"], ["t"]), node("Exp", ["t"], ["e"]),
                         node("Log", ["e"], ["l"]), node("Erf", ["l"], ["f"]),
                         node("HardSwish", ["f"], ["h"]), node("LeakyRelu", ["h"], ["y"])], {}),
        ("instance_norm", [node("InstanceNormalization", ["c", "g", "bt"], ["y"])],
         {"g": f32(rng.uniform(0.5, 1.5, C)), "bt": f32(rng.standard_normal(C))}),
        ("prelu", [node("PRelu", ["c", "slope"], ["y"])],
         {"slope": f32(rng.uniform(0, 0.5, (C, 1, 1)))}),
        ("prelu_nc11", [node("PRelu", ["c", "slope"], ["y"])],
         {"slope": f32(rng.uniform(-1, 1, (1, C, 1, 1)))}),
        ("prelu_one", [node("PRelu", ["c", "slope"], ["y"])], {"slope": f32([0.25])}),
        ("prelu_w", [node("PRelu", ["c", "slope"], ["y"])],
         {"slope": f32(rng.uniform(0, 0.5, W))}),  # per column: numpy's broadcast
        ("cast_identity", [node("Cast", ["c"], ["d"], to=onnx.TensorProto.DOUBLE),
                           node("Cast", ["d"], ["i"], to=onnx.TensorProto.FLOAT),
                           node("Identity", ["i"], ["y"])], {}),
    ]


@pytest.mark.parametrize("case", _glue_cases(), ids=lambda case: case[0])
def test_glue_op_on_nhwc_data(rng, x, case):
    _, nodes, inits = case
    node = helper.make_node
    # A second conv output 'c2' for the two-input ops.
    conv2 = node("Conv", ["x", "w2"], ["c2"], pads=[1, 1, 1, 1])
    inits = {**inits, "w2": conv_weights(rng, C, C)}
    outputs = [o for n in nodes for o in n.output if o in ("y", "z")]
    check(conv_then(rng, [conv2] + nodes, outputs, inits, opset=18), {"x": x})


RESIZE_CASES = [
    (mode, coordinate, nearest, scales)
    for mode, coordinate, nearest in [
        ("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
        ("nearest", "align_corners", "round_prefer_ceil"), ("nearest", "asymmetric", "ceil"),
        ("linear", "half_pixel", None), ("linear", "asymmetric", None),
        ("linear", "align_corners", None), ("linear", "pytorch_half_pixel", None),
        ("cubic", "half_pixel", None), ("cubic", "asymmetric", None)]
    # onnx.reference's align_corners divides by the unrounded length (7 * 1.5 = 10.5), ONNX
    # Runtime and convkit by the output length (10): only whole lengths are compared there.
    for scales in ([(1, 1, 2, 2), (1, 1, 3, 0.5)] if coordinate == "align_corners"
                   else [(1, 1, 2, 2), (1, 1, 1.5, 0.5)])
]


@pytest.mark.parametrize("case", RESIZE_CASES, ids=str)
def test_resize_on_nhwc_data(rng, x, case):
    mode, coordinate, nearest, scales = case
    attrs = dict(mode=mode, coordinate_transformation_mode=coordinate)
    if nearest:
        attrs["nearest_mode"] = nearest
    nodes = [helper.make_node("Resize", ["c", "", "scales"], ["y"], **attrs)]
    check(conv_then(rng, nodes, ["y"], {"scales": np.array(scales, np.float32)}), {"x": x})


def test_resize_by_sizes(rng, x):
    nodes = [helper.make_node("Resize", ["c", "", "", "sizes"], ["y"], mode="linear")]
    check(conv_then(rng, nodes, ["y"], {"sizes": np.array([N, C, 11, 3], np.int64)}), {"x": x})


def test_runtime_tensor_moves_to_nhwc_once(rng, x):
    # A 4-D tensor made by Reshape (PLAIN) feeding two convs is transposed to NHWC once.
    node = helper.make_node
    nodes = [node("Reshape", ["c", "s"], ["r"]), node("Conv", ["r", "w3"], ["y"]),
             node("Conv", ["r", "w3"], ["z"], strides=[2, 2])]
    inits = {"s": np.array([N, C, W, H], np.int64), "w3": conv_weights(rng, 3, C, 1)}
    loaded = check(conv_then(rng, nodes, ["y", "z"], inits), {"x": x})
    assert sum(step.op == "LayoutTranspose" for step in loaded.steps) == 5  # in, r, c->plain, 2 out


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "HardSwish"])
def test_large_standalone_activation_runs_through_convkit(rng, backend, op):
    # A detector's class map: Conv, Reshape to (N, C, H*W) (PLAIN), the activation on 20 Ki
    # elements (a 1x1 depthwise plan with unit weights; numpy's where the backend refuses it).
    node = helper.make_node
    nodes = [node("Reshape", ["c", "shape"], ["r"]), node(op, ["r"], ["y"])]
    model = make_model([node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])] + nodes,
                       {"x": (2, 3, 40, 64)}, ["y"],
                       {"w": conv_weights(rng, 4, 3) * 20, "shape": np.array([2, 4, -1], np.int64)})
    x = rng.standard_normal((2, 3, 40, 64)).astype(np.float32)
    x[1, 2, 5, 7] = np.nan
    loaded = convkit.onnx.load(model, input_shapes={"x": x.shape}, backend=backend)
    y, = loaded.run({"x": x})
    expected, = ReferenceEvaluator(model).run(None, {"x": x})
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=5e-5)  # the conv's sums differ a little
    assert np.array_equal(np.isnan(y), np.isnan(expected)) and np.isnan(y).any()


@pytest.mark.parametrize("op, attrs", [("DepthToSpace", {"mode": "DCR"}),
                                       ("DepthToSpace", {"mode": "CRD"}),
                                       ("SpaceToDepth", {}), ("SpaceToDepth", {"mode": "CRD"})])
def test_depth_and_space_on_nhwc_data(rng, op, attrs):
    # After a convolution (NHWC data) and after a Reshape (NCHW data), blocksize 2.
    node = helper.make_node
    nodes = [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             node(op, ["c"], ["y"], blocksize=2, **attrs),
             node("Reshape", ["c", "shape"], ["r"]), node(op, ["r"], ["z"], blocksize=2, **attrs)]
    model = make_model(nodes, {"x": (2, 5, 8, 6)}, ["y", "z"],
                       {"w": conv_weights(rng, 8, 5), "shape": np.array([2, 8, 6, 8], np.int64)},
                       opset=22)
    check(model, {"x": rng.standard_normal((2, 5, 8, 6)).astype(np.float32)})


@pytest.mark.parametrize("op, axis", [("Softmax", -1), ("LogSoftmax", 1), ("Softmax", 0)])
def test_large_softmax_split_over_threads(rng, op, axis):
    # 2 x 40 x 4000 floats: split by rows over the threads (axis 0 alone: by the next axis).
    model = make_model([helper.make_node(op, ["x"], ["y"], axis=axis)], {"x": (2, 40, 4000)},
                       ["y"])
    x = (rng.standard_normal((2, 40, 4000)) * 5).astype(np.float32)
    before = convkit.num_threads()
    try:
        y = check(model, {"x": x}, threads=2).run({"x": x})[0]
        one = convkit.onnx.load(model, input_shapes={"x": x.shape}, threads=1).run({"x": x})[0]
    finally:
        convkit.set_num_threads(before)
    assert np.array_equal(y, one)  # the same bits as on one thread


def test_max_pool_indices_feed_max_unpool(rng):
    # SegNet's pair: MaxPool's Indices (both storage orders; ceil mode and padding) into
    # MaxUnpool, the pooled values still convkit's; an index outside the unpooled shape (7 rows
    # pooled, 6 unpooled: output_shape was needed) is a clear error.
    node = helper.make_node
    pool = [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            node("MaxPool", ["c"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
            node("MaxUnpool", ["p", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
            node("MaxPool", ["c"], ["q", "j"], kernel_shape=[3, 3], strides=[2, 2],
                 pads=[1, 1, 1, 1], ceil_mode=1, storage_order=1)]
    for rows in (8, 7):
        model = make_model(pool, {"x": (2, 5, rows, 6)}, ["p", "i", "y", "q", "j"],
                           {"w": conv_weights(rng, 5, 5)}, opset=12)
        x = rng.standard_normal((2, 5, rows, 6)).astype(np.float32)
        if rows == 8:
            check(model, {"x": x})
            continue
        loaded = convkit.onnx.load(model, input_shapes={"x": x.shape})
        with pytest.raises(convkit.Error, match=r"indices: expected values in \[0, 360\)"):
            loaded.run({"x": x})


def test_large_elementwise_ops_take_the_threaded_loop(rng):
    # 2 x 8 x 64 x 72 = 73,728 elements (the threaded loop from 64 Ki): same-shape, scalar and
    # per-channel operands, on either side (Sub and Div swapped), on NHWC and NCHW data; a
    # broadcast it does not take (along W) goes to numpy. The same bits as numpy either way.
    node = helper.make_node
    f32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
    inits = {"w": conv_weights(rng, 8, 3), "w2": conv_weights(rng, 8, 3),
             "s": f32(50.0), "k": f32(rng.uniform(0.5, 2, (8, 1, 1))),
             "r": f32(rng.standard_normal(72)), "shape": np.array([2, 8, 72, 64], np.int64)}
    nodes = [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             node("Conv", ["x", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             node("Add", ["c", "c2"], ["a"]), node("Sub", ["s", "a"], ["b"]),
             node("Div", ["k", "b"], ["d"]), node("Mul", ["d", "k"], ["m"]),
             node("Sub", ["m", "r"], ["y"]),
             node("Reshape", ["c", "shape"], ["p"]), node("Div", ["p", "s"], ["z"])]
    model = make_model(nodes, {"x": (2, 3, 64, 72)}, ["y", "z"], inits)
    x = rng.standard_normal((2, 3, 64, 72)).astype(np.float32)
    y, z = check(model, {"x": x}).run({"x": x})
    # Bits: the convolutions' outputs as convkit gives them, then the ops in numpy.
    c, c2 = convkit.onnx.load(make_model(nodes[:2], {"x": x.shape}, ["c", "c2"], inits),
                              input_shapes={"x": x.shape}).run({"x": x})
    k, s = inits["k"], inits["s"]
    np.testing.assert_array_equal(y, (k / (s - (c + c2))) * k - inits["r"])
    np.testing.assert_array_equal(z, c.reshape(2, 8, 72, 64) / s)


def test_nhwc_model_transposes_cost_nothing(rng):
    # A model exported from an NHWC framework: Transpose to NCHW, Conv, Transpose back, Softmax
    # over the (short, last) class axis, as MTCNN's. convkit runs it without one layout copy
    # besides the output's.
    node = helper.make_node
    nodes = [node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             node("Conv", ["t", "w"], ["c"], pads=[1, 1, 1, 1]),
             node("Transpose", ["c"], ["u"], perm=[0, 2, 3, 1]),
             node("Softmax", ["u"], ["y"], axis=-1), node("LogSoftmax", ["u"], ["z"], axis=3)]
    model = make_model(nodes, {"x": (2, 40, 50, 3)}, ["y", "z"], {"w": conv_weights(rng, 2, 3)})
    x = rng.standard_normal((2, 40, 50, 3)).astype(np.float32)
    loaded = check(model, {"x": x})
    assert [step.op for step in loaded.steps] == ["Transpose", "Conv", "Transpose", "Softmax",
                                                  "LogSoftmax"]


def test_reused_buffers_hold_each_runs_values(rng, x):
    # The input transpose, the channel concat and the layers write one array per run: a second
    # run with other inputs must give its own values, and the first run's outputs must stay.
    node = helper.make_node
    nodes = [node("Conv", ["x", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             node("Concat", ["c", "c2"], ["y"], axis=1)]
    model = conv_then(rng, nodes, ["y"], {"w2": conv_weights(rng, C, C)})
    loaded = check(model, {"x": x})
    first = loaded.run({"x": x})[0]
    x2 = rng.standard_normal(x.shape).astype(np.float32)
    second = loaded.run({"x": x2})[0]
    assert np.array_equal(loaded.run({"x": x})[0], first)
    unreused = convkit.onnx.load(model, input_shapes={"x": x.shape}, reuse_buffers=False)
    assert np.array_equal(second, unreused.run({"x": x2})[0])
    assert not np.array_equal(first, second)


def test_layers_share_buffers_only_when_no_view_is_alive(rng, x):
    # c is split into views read by two later convs: c's buffer must outlive both, although its
    # own slot dies at the Split; a, b1 and the convs after them may reuse memory.
    node = helper.make_node
    nodes = [node("Split", ["c", "sizes"], ["s0", "s1"], axis=1),
             node("Conv", ["s0", "wa"], ["a"], pads=[1, 1, 1, 1]),
             node("Conv", ["a", "wa2"], ["a2"], pads=[1, 1, 1, 1]),
             node("Conv", ["s1", "wb"], ["b1"], pads=[1, 1, 1, 1]),
             node("Add", ["a2", "b1"], ["t"]), node("Conv", ["t", "wt"], ["u"]),
             node("Conv", ["u", "wt"], ["y"])]
    inits = {"sizes": np.array([2, 3], np.int64), "wa": conv_weights(rng, 4, 2),
             "wa2": conv_weights(rng, 4, 4), "wb": conv_weights(rng, 4, 3),
             "wt": conv_weights(rng, 4, 4, 1)}
    loaded = check(conv_then(rng, nodes, ["y"], inits), {"x": x})  # a reuse too early fails here
    layers = [(i, s.layer.out) for i, s in enumerate(loaded.steps) if s.layer is not None]
    assert len({id(out.base) for _, out in layers}) < len(layers)  # some memory is shared
    split = next(s for s in loaded.steps if s.op == "Split")
    last_view_read = max(i for i, s in enumerate(loaded.steps)
                         if set(s.in_slots) & set(split.out_slots))
    c = layers[0][1]
    assert not any(np.shares_memory(c, out) for i, out in layers[1:] if i <= last_view_read)


def _blocks(loaded):
    arrays = [s.layer.out if s.layer is not None and s.layer.out is not None else s.output.out
              for s in loaded.steps if (s.layer is not None and s.layer.out is not None) or
              s.output is not None]
    bases = set()
    for a in arrays:
        while a.base is not None:
            a = a.base
        bases.add(id(a))
    return len(bases)


def test_fresh_glue_outputs_free_their_inputs_buffers(rng, x):
    # An FPN-like chain of elementwise glue (their outputs are never views of their inputs): each
    # input's buffer is free once read, not only when the chain's last reader is done.
    node = helper.make_node
    nodes = [node("Conv", ["c", "w"], ["a"], pads=[1, 1, 1, 1]), node("Add", ["a", "c"], ["t1"]),
             node("Conv", ["t1", "w"], ["e"], pads=[1, 1, 1, 1]), node("Mul", ["e", "t1"], ["t2"]),
             node("Conv", ["t2", "w"], ["d"], pads=[1, 1, 1, 1]), node("Sub", ["d", "t2"], ["t3"]),
             node("Conv", ["t3", "w"], ["y"], pads=[1, 1, 1, 1])]
    model = conv_then(rng, nodes, ["y"], {"w": conv_weights(rng, C, C)})
    loaded = check(model, {"x": x})  # a reuse too early fails here
    assert all(s.fresh for s in loaded.steps if s.op in ("Add", "Mul", "Sub"))
    fresh_blocks = _blocks(loaded)
    for step in loaded.steps:
        step.fresh = False
    loaded._share_layer_buffers()
    assert fresh_blocks < _blocks(loaded)


def test_channel_slices_read_by_a_conv_are_copied_into_the_layers_arrays(rng, x):
    # A Split's parts are views along C: the bottleneck conv reading one as x and as its fused
    # residual copies each into an array it keeps, the same one every run.
    node = helper.make_node
    nodes = [node("Split", ["c", "sizes"], ["c0", "c1"], axis=1),
             node("Conv", ["c1", "wm"], ["m"], pads=[1, 1, 1, 1]),
             node("Add", ["m", "c1"], ["t"]), node("Concat", ["c0", "t"], ["y"], axis=1)]
    inits = {"sizes": np.array([2, 3], np.int64), "wm": conv_weights(rng, 3, 3)}
    model = conv_then(rng, nodes, ["y"], inits)
    loaded = check(model, {"x": x})
    layer = next(s.layer for s in loaded.steps if s.layer is not None and s.layer.residual)
    assert layer.fuse_residual and sorted(layer._copies) == ["r", "x"]
    kept = {key: output.out for key, output in layer._copies.items()}
    assert all(array.shape == (N, H, W, 3) for array in kept.values())
    x2 = rng.standard_normal(x.shape).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x2})[0]
    assert relative_error(loaded.run({"x": x2})[0], expected) <= 1e-5
    assert all(layer._copies[key].out is array for key, array in kept.items())


@pytest.mark.parametrize("axis", [1, -3])
def test_concat_read_only_by_reshapes_is_written_in_plain_layout(rng, x, axis):
    # A detector head: Concat of NHWC maps along the channels, then Reshape to (N, C, H * W): the
    # Concat writes NCHW itself (no layout transpose of its result), from whole conv outputs and
    # from Split's channel slices (views: not contiguous), for each image of the batch.
    node = helper.make_node
    nodes = [node("Conv", ["c", "w1"], ["a"], pads=[1, 1, 1, 1]),
             node("Split", ["c", "halves"], ["s0", "s1"], axis=1),
             node("Concat", ["a", "s1", "c", "s0"], ["cat"], axis=axis),
             node("Reshape", ["cat", "flat"], ["y"]),
             node("Flatten", ["cat"], ["z"], axis=2)]
    inits = {"w1": conv_weights(rng, 3, C), "halves": np.array([2, C - 2], np.int64),
             "flat": np.array([N, 3 + 2 * C, -1], np.int64)}
    loaded = check(conv_then(rng, nodes, ["y", "z"], inits), {"x": x})
    assert [s.name for s in loaded.steps if s.op == "LayoutTranspose"] == ["x->nhwc"]


def test_concat_with_an_nhwc_reader_stays_nhwc(rng, x):
    # One reader besides the Reshape takes NHWC (a Conv): the Concat stays NHWC, and only the
    # Reshape's input is transposed.
    node = helper.make_node
    nodes = [node("Conv", ["c", "w1"], ["a"], pads=[1, 1, 1, 1]),
             node("Concat", ["a", "c"], ["cat"], axis=1),
             node("Reshape", ["cat", "flat"], ["y"]),
             node("Conv", ["cat", "w2"], ["z"])]
    inits = {"w1": conv_weights(rng, 3, C), "w2": conv_weights(rng, 2, 3 + C, 1),
             "flat": np.array([N, 3 + C, -1], np.int64)}
    loaded = check(conv_then(rng, nodes, ["y", "z"], inits), {"x": x})
    assert [s.name for s in loaded.steps if s.op == "LayoutTranspose"] == [
        "x->nhwc", "cat->plain", "z->plain"]


def test_runner_arrays_start_on_64_byte_boundaries(rng, x):
    # The layers' and the glue steps' arrays: convkit's vector rows never straddle cache lines
    # (numpy's large arrays start 16 bytes past a page)
    node = helper.make_node
    nodes = [node("Conv", ["c", "w1"], ["a"], pads=[1, 1, 1, 1]),
             node("Concat", ["c", "a"], ["y"], axis=1)]
    loaded = check(conv_then(rng, nodes, ["y"], {"w1": conv_weights(rng, C, C)}), {"x": x})
    arrays = [s.layer.out for s in loaded.steps if s.layer is not None] + \
             [s.output.out for s in loaded.steps if s.output is not None]
    assert len(arrays) == 5  # two convs, the input and output transposes, the concat
    assert all(a.ctypes.data % 64 == 0 for a in arrays)


def test_glue_outputs_share_buffers_with_layers(rng, x):
    # A Concat's and a layout transpose's arrays come from the layers' pool once their inputs'
    # buffers are free, never while a tensor they read (or a view of it) is alive.
    node = helper.make_node
    nodes = [node("Conv", ["c", "w1"], ["a"], pads=[1, 1, 1, 1]),
             node("Conv", ["a", "w1"], ["a2"], pads=[1, 1, 1, 1]),
             node("Concat", ["a", "a2"], ["cat"], axis=1),
             node("Conv", ["cat", "w2"], ["d"], pads=[1, 1, 1, 1]),
             node("Conv", ["d", "w3"], ["e"], pads=[1, 1, 1, 1]),
             node("Concat", ["d", "e"], ["cat2"], axis=1),
             node("Reshape", ["cat2", "flat"], ["y"])]
    inits = {"w1": conv_weights(rng, C, C), "w2": conv_weights(rng, C, 2 * C),
             "w3": conv_weights(rng, C, C), "flat": np.array([x.shape[0], -1], np.int64)}
    loaded = check(conv_then(rng, nodes, ["y"], inits), {"x": x})  # a reuse too early fails here
    owned = [(i, s.output.out) for i, s in enumerate(loaded.steps) if s.output is not None]
    # cat2 is read by the Reshape only, so its Concat writes NCHW (no transpose after it).
    assert [loaded.steps[i].op for i, _ in owned] == ["LayoutTranspose", "Concat", "Concat"]
    layers = [(i, s.layer.out) for i, s in enumerate(loaded.steps) if s.layer is not None]
    pooled = [out for _, out in layers] + [out for _, out in owned]
    assert any(np.shares_memory(out, other) for _, out in owned for other in pooled
               if other is not out)
    for i, out in owned:  # never the memory of a tensor the step reads
        for j, other in layers:
            if set(loaded.steps[i].in_slots) & set(loaded.steps[j].out_slots):
                assert not np.shares_memory(out, other)


# ------------------------------------------------------------------------------------------------
# The glue copies in C++ (convkit._convkit): against numpy, and their refusals.

# Every path of the blocks: 8 x 8 vector blocks with scalar edges, 2-4 planes interleaved and
# gathered (vector per 16 elements, scalar tail), 1 and 5 rows scalar; batches and the threaded
# size (over 256 KiB).
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 33), (1, 70, 31), (3, 32, 64),
                                   (1, 6400, 48), (2, 2, 37), (1, 3, 102400), (2, 4, 50),
                                   (2, 37, 2), (1, 102400, 3), (2, 50, 4), (1, 5, 77),
                                   (1, 77, 5), (2, 8, 8), (1, 1, 100), (1, 1603, 147)], ids=str)
def test_transpose_last_two_matches_numpy(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    y = np.full((shape[0], shape[2], shape[1]), np.nan, np.float32)
    convkit._convkit._transpose_last_two(x, y)
    assert np.array_equal(y, x.transpose(0, 2, 1))


def _numpy_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


# The fused loop behind Softmax on float32 tensors whose axis is the last or has 16 or more
# floats inside it: a dense tensor, a detector's transposed view of box bins (its result the same
# view), inner extents and rows with a tail, short rows; NaN and infinities as numpy gives them.
@pytest.mark.parametrize("shape, perm, axis", [
    ((4, 16, 2100), None, 1), ((1, 4, 16, 2100), (0, 2, 1, 3), 1), ((3, 7, 1000), None, 1),
    ((2, 40, 77), None, 0), ((64, 100), None, 0), ((1, 8, 1000), None, 2), ((64, 77), None, 1),
    ((70, 5, 64), None, 2), ((1000, 2), None, 1), ((8, 40, 40), None, 2)], ids=str)
def test_softmax_fused_loop_matches_numpy(rng, shape, perm, axis):
    from convkit.onnx import ops

    x = (rng.standard_normal(shape) * 30).astype(np.float32)
    flat = x.reshape(-1)
    flat[5], flat[-3], flat[777] = np.nan, np.inf, -np.inf
    x = x if perm is None else x.transpose(perm)
    y = ops._softmax_convkit(x, axis)
    assert y is not None and y.shape == x.shape and y.strides == np.empty_like(x).strides
    want = _numpy_softmax(x, axis)
    assert np.array_equal(np.isnan(y), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(y[ok], want[ok], rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("function, y_shape, message", [
    ("_softmax_middle", (2, 4, 3), r"y must have x's shape \(2, 3, 4\), given \(2, 4, 3\)"),
    ("_transpose_last_two", (2, 3, 4), r"y must have shape \(2, 4, 3\).*given \(2, 3, 4\)"),
])
def test_glue_loops_refuse_bad_y(rng, function, y_shape, message):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    y = np.zeros(y_shape, np.float32)
    with pytest.raises(convkit.Error, match=message):
        getattr(convkit._convkit, function)(x, y)
    assert not y.any()  # nothing written on error


def test_softmax_fused_loop_leaves_short_inner_axes_to_numpy(rng):
    from convkit.onnx import ops

    x = rng.standard_normal((256, 40)).astype(np.float32)
    assert ops._softmax_convkit(x.reshape(256, 5, 8), 1) is None  # 8 floats inside the axis
    assert ops._softmax_convkit(x[:, ::2], 0) is None  # not one dense block


@pytest.mark.parametrize("reuse", [False, True])
def test_to_nhwc_of_a_view_stored_by_rows(rng, reuse):
    # (N, C, H, W) stored as (N, H, C, W): the softmax of a transposed view (YOLOv8's box bins)
    from convkit.onnx import layout

    x = rng.standard_normal((2, 4, 16, 37)).astype(np.float32).transpose(0, 2, 1, 3)
    out = np.full((2, 4, 37, 16), np.nan, np.float32) if reuse else None
    y = layout.to_nhwc(x, out)
    assert np.array_equal(y, x.transpose(0, 2, 3, 1))
    assert not reuse or np.shares_memory(y, out)


@pytest.mark.parametrize("pixels", [1, 17, 9000])  # 9000 x 50 floats: the threaded path
def test_concat_channels_matches_numpy(rng, pixels):
    base = rng.standard_normal((pixels, 20)).astype(np.float32)
    xs = [base[:, 3:10], rng.standard_normal((pixels, 1)).astype(np.float32), base[:, :3],
          rng.standard_normal((pixels, 29)).astype(np.float32), base[:, 10:10]]
    y = np.empty((pixels, 40), np.float32)
    convkit._convkit._concat_channels(xs, y)
    assert np.array_equal(y, np.concatenate(xs, axis=1))


def test_concat_channels_splits_few_long_rows_into_pieces(rng):
    # Fewer than 64 rows: each row's runs in pieces of 16 Ki floats (40,000: three, the last
    # partial), one x a strided view; the threaded path (over 256 KiB)
    base = rng.standard_normal((3, 50000)).astype(np.float32)
    xs = [base[:, :8400], rng.standard_normal((3, 40000)).astype(np.float32), base[:, 8400:8400]]
    y = np.empty((3, 48400), np.float32)
    convkit._convkit._concat_channels(xs, y)
    assert np.array_equal(y, np.concatenate(xs, axis=1))


def test_scale_channels_matches_numpy_also_in_place(rng):
    x = rng.standard_normal((2, 9000, 7)).astype(np.float32)  # 2 x 9000 x 7: the threaded path
    s = rng.standard_normal((2, 7)).astype(np.float32)
    y = np.empty_like(x)
    convkit._convkit._scale_channels(x, s, y)
    assert np.array_equal(y, x * s[:, None, :])
    convkit._convkit._scale_channels(x, s, x)
    assert np.array_equal(x, y)


def test_prelu_channels_matches_numpy_also_in_place(rng):
    x = rng.standard_normal((2, 9000, 7)).astype(np.float32)
    x[0, 0, :3] = [np.nan, -np.inf, np.inf]
    s = rng.standard_normal((2, 7)).astype(np.float32)
    y = np.empty_like(x)
    convkit._convkit._prelu_channels(x, s, y)
    expected = np.where(x < 0, x * s[:, None, :], x)
    np.testing.assert_array_equal(y, expected)  # NaN stays NaN
    convkit._convkit._prelu_channels(x, s, x)
    np.testing.assert_array_equal(x, expected)


def test_gather_pixels_matches_numpy_and_refuses_bad_indices(rng):
    x = rng.standard_normal((2, 30, 40, 24)).astype(np.float32)
    rows = np.array([0, 0, 29, 5, 5, 7], np.int64)
    cols = np.repeat(np.arange(40, dtype=np.int64), 3)[::-1].copy()
    y = np.empty((2, 6, 120, 24), np.float32)
    convkit._convkit._gather_pixels(x, rows, cols, y)
    assert np.array_equal(y, x[:, rows][:, :, cols])
    with pytest.raises(convkit.Error, match=r"cols\[1\] must be in \[0, 40\), given 40"):
        convkit._convkit._gather_pixels(x, rows, np.array([0, 40], np.int64),
                                        np.empty((2, 6, 2, 24), np.float32))
    with pytest.raises(convkit.Error, match=r"y must have shape \(2, 6, 120, 24\)"):
        convkit._convkit._gather_pixels(x, rows, cols, np.empty((2, 6, 120, 23), np.float32))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_matches_numpy_bit_for_bit(rng, op):
    a = rng.standard_normal((300, 64)).astype(np.float32)
    a[0, :4] = [np.nan, np.inf, -np.inf, 0.0]
    f = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op]
    with np.errstate(all="ignore"):
        for b in (rng.standard_normal((300, 64)), rng.standard_normal((1, 64)),
                  rng.standard_normal((300, 1)), np.array([[0.37]])):
            b = b.astype(np.float32)
            y = np.empty_like(a)
            convkit._convkit._binary(op, a, b, y)
            np.testing.assert_array_equal(y, f(a, b))
            convkit._convkit._binary(op, a, b, y, swapped=True)
            np.testing.assert_array_equal(y, f(b, a))
        y = a.copy()  # in place
        convkit._convkit._binary(op, y, np.array([[2.0]], np.float32), y)
        np.testing.assert_array_equal(y, f(a, np.float32(2.0)))
    with pytest.raises(convkit.Error, match=r"b must have shape \(300 or 1, 64 or 1\).*\(2, 64\)"):
        convkit._convkit._binary(op, a, np.ones((2, 64), np.float32), np.empty_like(a))
    with pytest.raises(convkit.Error, match=r"op must be add, sub, mul or div, given 'pow'"):
        convkit._convkit._binary("pow", a, a, np.empty_like(a))


def test_scale_channels_refusals(rng):
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    y = np.zeros_like(x)
    scale = convkit._convkit._scale_channels
    with pytest.raises(convkit.Error, match=r"s must have shape \(2, 3\).*given \(1, 3\)"):
        scale(x, np.ones((1, 3), np.float32), y)
    with pytest.raises(convkit.Error, match=r"y must have x's shape \(2, 5, 3\), given \(2, 3, 5\)"):
        scale(x, np.ones((2, 3), np.float32), np.zeros((2, 3, 5), np.float32))
    assert not y.any()


def test_concat_channels_refusals(rng):
    a = rng.standard_normal((5, 4)).astype(np.float32)
    y = np.zeros((5, 8), np.float32)
    concat = convkit._convkit._concat_channels
    with pytest.raises(convkit.Error, match=r"y must have 7 channels.*given shape \(5, 6\)"):
        concat([a, a[:, :3]], np.zeros((5, 6), np.float32))
    with pytest.raises(convkit.Error, match=r"xs\[1\] must have 5 rows"):
        concat([a, a[:4]], y)
    with pytest.raises(convkit.Error, match=r"xs\[0\] .*unit channel stride.*strides \(4, 2\)"):
        concat([a[:, ::2], a[:, :2], a], y)
    with pytest.raises(convkit.Error, match=r"y must not overlap xs\[1\]"):
        concat([a, y[:, :4]], y)
    assert not y.any()


# ------------------------------------------------------------------------------------------------
# Layers: attributes of Conv, ConvTranspose and pooling.

CONV_CASES = [
    dict(pads=[0, 1, 2, 1], strides=[2, 1]),
    dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(auto_pad="SAME_LOWER", strides=[2, 3]),
    dict(auto_pad="VALID", dilations=[2, 1]),
    dict(pads=[1, 1, 1, 1], group=C),
]


@pytest.mark.parametrize("attrs", CONV_CASES, ids=str)
def test_conv_attributes(rng, x, backend, attrs):
    groups = attrs.get("group", 1)
    w = conv_weights(rng, 2 * C if groups > 1 else 4, C // groups)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], **attrs)],
                       {"x": x.shape}, ["y"], {"w": w})
    check(model, {"x": x}, backend=backend)


TRANSPOSE_CASES = [
    dict(strides=[2, 2]),
    dict(strides=[2, 3], pads=[1, 0, 0, 1], output_padding=[1, 0]),
    dict(strides=[1, 2], dilations=[2, 1], group=1),
    dict(strides=[2, 2], auto_pad="SAME_UPPER"),
]


def _conv_transpose(rng, attrs, c_out=6):
    w = rng.standard_normal((C, c_out, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["t"], **attrs),
             helper.make_node("Relu", ["t"], ["y"])]
    return make_model(nodes, {"x": (N, C, H, W)}, ["y"], {"w": w, "b": b})


@pytest.mark.parametrize("attrs", TRANSPOSE_CASES, ids=str)
def test_conv_transpose_attributes(rng, x, backend, attrs):
    check(_conv_transpose(rng, attrs), {"x": x}, backend=backend)


def test_conv_transpose_output_shape(x):
    # output_shape (20, 11) of a full (21, 13) output crops 1 row at the top and 1 column on
    # each side; onnx.reference fails on output_shape, so the oracle is the op with those pads.
    with_shape = _conv_transpose(np.random.default_rng(1), dict(strides=[3, 2],
                                                                output_shape=[20, 11]))
    with_pads = _conv_transpose(np.random.default_rng(1), dict(strides=[3, 2],
                                                               pads=[1, 1, 0, 1]))
    expected = check(with_pads, {"x": x})(x)
    assert expected.shape == (N, 6, 20, 11)
    np.testing.assert_array_equal(convkit.onnx.load(with_shape)(x), expected)


def test_grouped_conv_transpose(rng, x, backend):
    # onnx.reference cannot run grouped ConvTranspose: the oracle is one op per group + Concat.
    groups, c_out_g = C, 2
    w = rng.standard_normal((C, c_out_g, 3, 3)).astype(np.float32)
    b = rng.standard_normal(C * c_out_g).astype(np.float32)
    grouped = make_model([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=groups,
                                           strides=[2, 2])], {"x": x.shape}, ["y"],
                         {"w": w, "b": b})
    node = helper.make_node
    parts = [f"x{g}" for g in range(groups)]
    nodes = [node("Split", ["x"], parts, axis=1, num_outputs=groups)]
    inits = {}
    for g in range(groups):
        inits[f"w{g}"] = w[g:g + 1]
        inits[f"b{g}"] = b[g * c_out_g:(g + 1) * c_out_g]
        nodes.append(node("ConvTranspose", [f"x{g}", f"w{g}", f"b{g}"], [f"y{g}"],
                          strides=[2, 2]))
    nodes.append(node("Concat", [f"y{g}" for g in range(groups)], ["y"], axis=1))
    split = make_model(nodes, {"x": x.shape}, ["y"], inits, opset=18)
    check(split, {"x": x}, backend=backend)
    actual = convkit.onnx.load(grouped, backend=backend)(x)
    expected = convkit.onnx.load(split, backend=backend)(x)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


POOL_CASES = [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("MaxPool", dict(kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1)),
    ("GlobalAveragePool", {}),
    ("GlobalMaxPool", {}),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pool_attributes(x, backend, case):
    op, attrs = case
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": x.shape}, ["y"])
    check(model, {"x": x}, backend=backend)


# ------------------------------------------------------------------------------------------------
# Errors: what is not supported is said, naming the node.

def _unsupported_cases():
    node = helper.make_node
    return [
        (node("RoiAlign", ["x", "x", "x"], ["y"], name="roi"), "roi", "RoiAlign"),
        (node("Softmax", ["x"], ["y"], axis=1, name="s", domain="com.microsoft"), "s", "domain"),
        (node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], name="p"), "p", "LpPool"),
        (node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], name="d"), "d",
         "dilations"),
        (node("Resize", ["x", "", "sc"], ["y"], mode="cubic", antialias=1, name="r"), "r",
         "antialias"),
        (node("Conv", ["x", "w1d"], ["y"], name="c1"), "c1", "rank"),
    ]


@pytest.mark.parametrize("case", _unsupported_cases(), ids=lambda case: case[1])
def test_unsupported_is_a_clear_error(x, case):
    proto, name, what = case
    inits = {"sc": np.array([1, 1, 2, 2], np.float32),
             "w1d": np.ones((2, C, 3), np.float32)}
    inputs = {"x": x.shape}
    used = {k: v for k, v in inits.items() if k in proto.input}
    model = make_model([proto], inputs, ["y"], used)
    with pytest.raises(convkit.onnx.UnsupportedError) as info:
        convkit.onnx.load(model)
    message = str(info.value)
    assert f"'{name}'" in message and proto.op_type in message and what in message
    assert isinstance(info.value, convkit.Error) and info.value.code == "unsupported"


def test_unknown_op_lists_what_is_supported(x):
    model = make_model([helper.make_node("NonMaxSuppression", ["x"], ["y"], name="nms")],
                       {"x": x.shape}, ["y"])
    with pytest.raises(convkit.onnx.UnsupportedError, match="nms.*NonMaxSuppression.*Conv"):
        convkit.onnx.load(model)


def test_dynamic_input_needs_a_shape(rng):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "dyn",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3, 4, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(convkit.onnx.UnsupportedError, match="input_shapes"):
        convkit.onnx.load(model)
    loaded = convkit.onnx.load(model, input_shapes={"x": (2, 3, 4, 4)})
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), np.maximum(x, 0))
    with pytest.raises(convkit.Error, match="expected shape"):
        loaded(x[:1])


def _old_opset_cases():
    node = helper.make_node
    return [
        ("upsample_9", 9, [node("Upsample", ["c", "sc"], ["y"], mode="nearest")],
         {"sc": np.array([1, 1, 2, 3], np.float32)}),
        ("slice_9", 9, [node("Slice", ["c"], ["y"], starts=[1, 0], ends=[4, -1], axes=[1, 3])],
         {}),
        ("split_squeeze_11", 11, [node("Split", ["c"], ["s0", "s1"], axis=1, split=[1, 4]),
                                  node("Squeeze", ["s0"], ["q"], axes=[1]),
                                  node("Unsqueeze", ["q"], ["y"], axes=[3]),
                                  node("ReduceMean", ["s1"], ["z"], axes=[1, 3], keepdims=0)],
         {}),
        ("clip_softmax_11", 11, [node("Clip", ["c", "lo", "hi"], ["k"]),
                                 node("Softmax", ["k"], ["y"], axis=3)],
         {"lo": np.array(-1, np.float32), "hi": np.array(1.5, np.float32)}),
        ("pad_10", 10, [node("Pad", ["c"], ["y"], pads=[0, 0, 1, 2, 0, 0, 2, 1], value=1.5)], {}),
    ]


@pytest.mark.parametrize("case", _old_opset_cases(), ids=lambda case: case[0])
def test_older_opsets(rng, x, case):
    _, opset, nodes, inits = case
    outputs = [o for n in nodes for o in n.output if o in ("y", "z")]
    check(conv_then(rng, nodes, outputs, inits, opset=opset), {"x": x})


def test_softmax_before_opset_13_normalises_the_flattened_tail(rng, x):
    # Softmax-11 at axis 2 normalises over H * W together (onnx.reference applies opset 13's
    # one-axis rule here, ONNX Runtime does not): the oracle is numpy.
    model = conv_then(rng, [helper.make_node("Softmax", ["c"], ["y"], axis=2)], ["c", "y"],
                      opset=11)
    c, y = convkit.onnx.load(model)(x)
    np.testing.assert_allclose(y.sum(axis=(2, 3)), 1, rtol=1e-5)
    flat = np.exp(c.reshape(N, C, -1) - c.reshape(N, C, -1).max(axis=2, keepdims=True))
    np.testing.assert_allclose(y, (flat / flat.sum(axis=2, keepdims=True)).reshape(c.shape),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("groups", [1, C])
def test_batch_norm_folds_into_conv_transpose(rng, x, groups):
    c_out = 2 * groups
    w = rng.standard_normal((C, c_out // groups, 3, 3)).astype(np.float32)
    params = bn_params(rng, c_out)
    node = helper.make_node
    plain = make_model([node("ConvTranspose", ["x", "w"], ["t"], strides=[2, 2], group=groups)],
                       {"x": x.shape}, ["t"], {"w": w})
    model = make_model([node("ConvTranspose", ["x", "w"], ["t"], strides=[2, 2], group=groups),
                        bn_node("t", "y")], {"x": x.shape}, ["y"], {"w": w, **params})
    loaded = convkit.onnx.load(model)
    assert node_ops(loaded) == ["ConvTranspose"]
    # The oracle: the unfolded transposed convolution, then BN in float64 (onnx.reference cannot
    # run grouped ConvTranspose).
    t = convkit.onnx.load(plain)(x).astype(np.float64)
    scale = params["bn_s"] / np.sqrt(params["bn_v"].astype(np.float64) + 1e-3)
    expected = (t - params["bn_m"][:, None, None]) * scale[:, None, None] \
        + params["bn_b"][:, None, None]
    np.testing.assert_allclose(loaded(x), expected, rtol=1e-5, atol=1e-5)


def test_numpy_transposed_convolution_matches_convkit(rng, backend):
    # The adapter's numpy fallback (for a convkit without conv2d_transpose) against convkit's.
    from convkit.onnx.adapter import ConvLayer

    if not hasattr(convkit, "conv2d_transpose"):
        pytest.skip("this convkit has no conv2d_transpose")
    x = rng.standard_normal((2, 5, 4, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 2, 6)).astype(np.float32)  # {KH, KW, C_out/g, C_in}, g = 3
    b = rng.standard_normal(6).astype(np.float32)
    layer = ConvLayer(w, b, x_shape=x.shape, stride=(2, 3), pads=(1, 0, 0, 2), dilation=(1, 2),
                      groups=3, transpose=True, output_padding=(1, 0), backend=backend)
    expected = layer.run(x)
    np.testing.assert_allclose(layer._transpose_numpy(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [3, 4])
def test_lrn_on_nhwc_data(rng, x, size):
    # onnx.reference's LRN loops over N where it means C: the oracle is ONNX's formula here.
    alpha, beta, bias = 0.5, 0.75, 2.0
    node = helper.make_node("LRN", ["c"], ["y"], size=size, alpha=alpha, beta=beta, bias=bias)
    c, y = convkit.onnx.load(conv_then(rng, [node], ["c", "y"]))(x)
    c64 = c.astype(np.float64)
    expected = np.empty_like(c64)
    for channel in range(C):
        window = c64[:, max(0, channel - (size - 1) // 2):channel + size // 2 + 1]
        scale = (bias + alpha / size * np.sum(window ** 2, axis=1)) ** beta
        expected[:, channel] = c64[:, channel] / scale
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_shapes_the_graph_cannot_take_are_an_error_naming_the_node(rng):
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="fixed")]
    model = make_model(nodes, {"x": (1, 3, 4, 4)}, ["y"], {"s": np.array([1, 48], np.int64)})
    convkit.onnx.load(model)
    with pytest.raises(convkit.Error, match="'fixed'.*input shapes") as info:
        convkit.onnx.load(model, input_shapes={"x": (1, 3, 8, 8)})
    assert info.value.code == "invalid argument"


def test_residual_fuses_into_conv_transpose(rng, backend):
    # UNet/FPN decoders: relu(conv_transpose(x) + skip).
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    skip = rng.standard_normal((N, 4, 2 * H, 2 * W)).astype(np.float32)
    w = rng.standard_normal((C, 4, 2, 2)).astype(np.float32)
    node = helper.make_node
    nodes = [node("ConvTranspose", ["x", "w"], ["t"], strides=[2, 2]),
             node("Add", ["t", "skip"], ["a"]), node("Relu", ["a"], ["y"])]
    model = make_model(nodes, {"x": x.shape, "skip": skip.shape}, ["y"], {"w": w})
    loaded = check(model, {"x": x, "skip": skip}, backend=backend)
    assert node_ops(loaded) == ["ConvTranspose"]
    fused = loaded.graph.nodes[0]
    assert fused.attrs["_residual"] == "before" and fused.attrs["_activation"] == "relu"


# ------------------------------------------------------------------------------------------------
# Denormals.


@pytest.mark.skipif("highway" not in convkit.backends(), reason="highway not built")
def test_runs_flush_denormals_unless_asked_not_to(x):
    """A 1x1 convolution that copies a denormal: flushed to zero by default, kept with
    flush_denormals=False; the process-wide setting is back as it was after each run."""
    w = np.eye(C, dtype=np.float32)[:, :, None, None]
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
                       {"x": (N, C, H, W)}, ["y"], {"w": w})
    tiny = np.float32(2.0 ** -149)
    feeds = {"x": np.where(x > 0, tiny, x).astype(np.float32)}
    denormal = feeds["x"] == tiny
    assert np.count_nonzero(denormal) > 10
    for flush in (True, False):
        loaded = convkit.onnx.load(model, input_shapes={"x": (N, C, H, W)}, backend="highway",
                                   flush_denormals=flush)
        (y,) = loaded.run(feeds)
        assert not convkit.flush_denormals()
        assert np.all(y[denormal] == (0 if flush else tiny))
        assert np.array_equal(y[~denormal], feeds["x"][~denormal])
