"""The model set: CNNs built with onnx.helper, random weights at realistic scales.

Five graphs shaped like their namesakes as PyTorch exports them (Conv + BatchNormalization +
activation, SiLU as Sigmoid * Mul, ReLU6 as Clip): ResNet-50, MobileNetV2, a YOLOv8n-style
detector (C2f blocks, SPPF, nearest upsampling, Concat/Split, the DFL box decode), an
EfficientNet-B0-style net (depthwise 3x3/5x5, squeeze-excitation, swish) and a UNet-style net
(ConvTranspose + Concat skips). Weights are He-initialised; BatchNormalization has non-trivial
statistics. `build(name, small=True)` gives a version small enough for onnx.reference in tests.

    python3 -m convkit.onnx.models OUT_DIR     # writes OUT_DIR/<name>.onnx for the whole set
"""

import math
import os
import sys

import numpy as np


class GraphBuilder:
    """Appends nodes and initializers; every method returns the name of its output tensor."""

    def __init__(self, seed=0, opset=17):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.rng = np.random.default_rng(seed)
        self.opset = opset
        self.nodes, self.initializers = [], []
        self.count = 0

    def _name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, value, stem="c"):
        name = self._name(stem)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op, inputs, outputs=1, **attrs):
        names = [self._name(op.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, list(inputs), names,
                                                name=self._name(op), **attrs))
        return names[0] if outputs == 1 else names

    def batch_norm(self, x, c, gamma=(0.5, 1.5)):
        rng = self.rng
        params = [rng.uniform(*gamma, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                  rng.uniform(0.5, 1.5, c)]
        names = [self.const(p.astype(np.float32), "bn") for p in params]
        return self.node("BatchNormalization", [x] + names, epsilon=1e-5)

    def activation(self, x, act):
        if act is None:
            return x
        if act == "relu":
            return self.node("Relu", [x])
        if act == "relu6":
            return self.node("Clip", [x, self.const(np.float32(0)), self.const(np.float32(6))])
        if act == "silu":
            return self.node("Mul", [x, self.node("Sigmoid", [x])])
        if act == "sigmoid":
            return self.node("Sigmoid", [x])
        raise ValueError(act)

    def conv(self, x, c_in, c_out, k, stride=1, groups=1, act="relu", bn=True, bias=False,
             gamma=(0.5, 1.5)):
        """Conv (He init) [+ BatchNormalization] [+ activation], 'same' padding k // 2."""
        fan_in = c_in // groups * k * k
        w = self.rng.normal(0, math.sqrt(2 / fan_in), (c_out, c_in // groups, k, k))
        inputs = [x, self.const(w.astype(np.float32), "w")]
        if bias or not bn:
            inputs.append(self.const(self.rng.normal(0, 0.1, c_out).astype(np.float32), "b"))
        y = self.node("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
                      pads=[k // 2] * 4, group=groups, dilations=[1, 1])
        if bn:
            y = self.batch_norm(y, c_out, gamma)
        return self.activation(y, act)

    def classifier(self, x, c, classes):
        y = self.node("Flatten", [self.node("GlobalAveragePool", [x])], axis=1)
        w = self.rng.normal(0, math.sqrt(1 / c), (classes, c)).astype(np.float32)
        return self.node("Gemm", [y, self.const(w, "fc"), self.const(
            np.zeros(classes, np.float32), "fc_b")], transB=1)

    def model(self, inputs, outputs, name):
        from onnx import TensorProto

        helper = self.helper
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="convkit.onnx.models")
        model.ir_version = 8
        # The outputs' shapes, which the checker wants, from ONNX's own shape inference.
        from onnx import shape_inference

        return shape_inference.infer_shapes(model, strict_mode=True)


def _divisible(v, divisor=8):
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


# ------------------------------------------------------------------------------------------------

def resnet50(size=224, width=1.0, layers=(3, 4, 6, 3), classes=1000, seed=1):
    g = GraphBuilder(seed)
    c = _divisible(64 * width)
    y = g.conv("input", 3, c, 7, stride=2)
    y = g.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = c
    for stage, blocks in enumerate(layers):
        planes = _divisible(64 * 2 ** stage * width)
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            z = g.conv(y, c_in, planes, 1)
            z = g.conv(z, planes, planes, 3, stride=stride)
            # The last BN of a residual branch is small, as trained ResNets' are, so the sum
            # grows slowly with depth.
            z = g.conv(z, planes, planes * 4, 1, act=None, gamma=(0.1, 0.4))
            shortcut = y
            if stride != 1 or c_in != planes * 4:
                shortcut = g.conv(y, c_in, planes * 4, 1, stride=stride, act=None)
            y = g.node("Relu", [g.node("Add", [z, shortcut])])
            c_in = planes * 4
    return g.model([("input", (1, 3, size, size))], [g.classifier(y, c_in, classes)],
                   "resnet50")


def mobilenetv2(size=224, width=1.0, classes=1000, seed=2):
    g = GraphBuilder(seed)
    c_in = _divisible(32 * width)
    y = g.conv("input", 3, c_in, 3, stride=2, act="relu6")
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        c_out = _divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c_in * t
            z = y if t == 1 else g.conv(y, c_in, hidden, 1, act="relu6")
            z = g.conv(z, hidden, hidden, 3, stride=stride, groups=hidden, act="relu6")
            z = g.conv(z, hidden, c_out, 1, act=None, gamma=(0.2, 0.6))
            y = g.node("Add", [y, z]) if stride == 1 and c_in == c_out else z
            c_in = c_out
    c_last = _divisible(1280 * max(1.0, width))
    y = g.conv(y, c_in, c_last, 1, act="relu6")
    return g.model([("input", (1, 3, size, size))], [g.classifier(y, c_last, classes)],
                   "mobilenetv2")


def efficientnet_b0(size=224, width=1.0, depth=1.0, classes=1000, seed=3):
    g = GraphBuilder(seed)
    c_in = _divisible(32 * width)
    y = g.conv("input", 3, c_in, 3, stride=2, act="silu")
    for t, k, s, c, n in [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]:
        c_out = _divisible(c * width)
        for i in range(max(1, math.ceil(n * depth))):
            stride = s if i == 0 else 1
            hidden = c_in * t
            z = y if t == 1 else g.conv(y, c_in, hidden, 1, act="silu")
            z = g.conv(z, hidden, hidden, k, stride=stride, groups=hidden, act="silu")
            # Squeeze-excitation: GAP -> 1x1 reduce (swish) -> 1x1 expand (sigmoid) -> scale.
            squeezed = max(1, c_in // 4)
            se = g.node("GlobalAveragePool", [z])
            se = g.conv(se, hidden, squeezed, 1, act="silu", bn=False)
            se = g.conv(se, squeezed, hidden, 1, act="sigmoid", bn=False)
            z = g.node("Mul", [z, se])
            z = g.conv(z, hidden, c_out, 1, act=None, gamma=(0.2, 0.6))
            y = g.node("Add", [y, z]) if stride == 1 and c_in == c_out else z
            c_in = c_out
    c_last = _divisible(1280 * max(1.0, width))
    y = g.conv(y, c_in, c_last, 1, act="silu")
    return g.model([("input", (1, 3, size, size))], [g.classifier(y, c_last, classes)],
                   "efficientnet_b0")


# ------------------------------------------------------------------------------------------------
# YOLOv8n-style detector (ultralytics' layer list, widths 0.25, depths 0.33).

def _c2f(g, x, c1, c2, n, shortcut):
    c = c2 // 2
    y = g.conv(x, c1, 2 * c, 1, act="silu")
    chunks = list(g.node("Split", [y, g.const(np.array([c, c], np.int64))], outputs=2, axis=1))
    for _ in range(n):
        z = g.conv(chunks[-1], c, c, 3, act="silu")
        z = g.conv(z, c, c, 3, act="silu")
        chunks.append(g.node("Add", [chunks[-1], z]) if shortcut else z)
    return g.conv(g.node("Concat", chunks, axis=1), (2 + n) * c, c2, 1, act="silu")


def _sppf(g, x, c1, c2):
    c = c1 // 2
    y = [g.conv(x, c1, c, 1, act="silu")]
    for _ in range(3):
        y.append(g.node("MaxPool", [y[-1]], kernel_shape=[5, 5], strides=[1, 1],
                        pads=[2, 2, 2, 2]))
    return g.conv(g.node("Concat", y, axis=1), 4 * c, c2, 1, act="silu")


def _upsample(g, x):
    return g.node("Resize", [x, "", g.const(np.array([1, 1, 2, 2], np.float32))],
                  mode="nearest", coordinate_transformation_mode="asymmetric",
                  nearest_mode="floor")


def _detect(g, features, channels, strides, size, classes):
    """Per level box (64 = 4 x 16 DFL bins) and class branches, then the decoded (N, 4 + nc, A)
    predictions: DFL softmax-expectation, anchors +- distances, centre/size x stride."""
    reg = 16
    c2, c3 = max(16, channels[0] // 4, 4 * reg), max(channels[0], min(classes, 100))
    levels = []
    anchors, stride_row = [], []
    for x, c, s in zip(features, channels, strides):
        box = g.conv(g.conv(x, c, c2, 3, act="silu"), c2, c2, 3, act="silu")
        box = g.conv(box, c2, 4 * reg, 1, act=None, bn=False)
        cls = g.conv(g.conv(x, c, c3, 3, act="silu"), c3, c3, 3, act="silu")
        cls = g.conv(cls, c3, classes, 1, act=None, bn=False)
        y = g.node("Concat", [box, cls], axis=1)
        levels.append(g.node("Reshape", [y, g.const(np.array([1, 4 * reg + classes, -1],
                                                              np.int64))]))
        h = w = size // s
        sy, sx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
        anchors.append(np.stack([sx.reshape(-1), sy.reshape(-1)]))
        stride_row.append(np.full(h * w, s))
    count = sum(a.shape[1] for a in anchors)
    y = g.node("Concat", levels, axis=2)
    box, cls = g.node("Split", [y, g.const(np.array([4 * reg, classes], np.int64))], outputs=2,
                      axis=1)
    box = g.node("Reshape", [box, g.const(np.array([1, 4, reg, count], np.int64))])
    box = g.node("Softmax", [g.node("Transpose", [box], perm=[0, 2, 1, 3])], axis=1)
    dfl = g.const(np.arange(reg, dtype=np.float32).reshape(1, reg, 1, 1), "dfl")
    box = g.node("Reshape", [g.node("Conv", [box, dfl]),
                             g.const(np.array([1, 4, count], np.int64))])
    lt, rb = g.node("Split", [box, g.const(np.array([2, 2], np.int64))], outputs=2, axis=1)
    anchor = g.const(np.concatenate(anchors, 1)[None].astype(np.float32), "anchors")
    x1y1 = g.node("Sub", [anchor, lt])
    x2y2 = g.node("Add", [anchor, rb])
    centre = g.node("Div", [g.node("Add", [x1y1, x2y2]), g.const(np.float32(2))])
    wh = g.node("Sub", [x2y2, x1y1])
    scale = g.const(np.concatenate(stride_row)[None].astype(np.float32), "strides")
    dbox = g.node("Mul", [g.node("Concat", [centre, wh], axis=1), scale])
    return g.node("Concat", [dbox, g.node("Sigmoid", [cls])], axis=1)


def yolov8n(size=320, width=0.25, depth=0.33, classes=80, seed=4):
    g = GraphBuilder(seed)
    ch = [min(_divisible(c * width), 1024) for c in (64, 128, 256, 512, 1024)]
    n = [max(round(d * depth), 1) for d in (3, 6, 6, 3)]
    y = g.conv("images", 3, ch[0], 3, stride=2, act="silu")
    y = g.conv(y, ch[0], ch[1], 3, stride=2, act="silu")
    y = _c2f(g, y, ch[1], ch[1], n[0], True)
    y = g.conv(y, ch[1], ch[2], 3, stride=2, act="silu")
    p3 = _c2f(g, y, ch[2], ch[2], n[1], True)
    y = g.conv(p3, ch[2], ch[3], 3, stride=2, act="silu")
    p4 = _c2f(g, y, ch[3], ch[3], n[2], True)
    y = g.conv(p4, ch[3], ch[4], 3, stride=2, act="silu")
    y = _c2f(g, y, ch[4], ch[4], n[3], True)
    p5 = _sppf(g, y, ch[4], ch[4])
    h4 = _c2f(g, g.node("Concat", [_upsample(g, p5), p4], axis=1), ch[4] + ch[3], ch[3], n[0],
              False)
    out3 = _c2f(g, g.node("Concat", [_upsample(g, h4), p3], axis=1), ch[3] + ch[2], ch[2],
                n[0], False)
    y = g.conv(out3, ch[2], ch[2], 3, stride=2, act="silu")
    out4 = _c2f(g, g.node("Concat", [y, h4], axis=1), ch[2] + ch[3], ch[3], n[0], False)
    y = g.conv(out4, ch[3], ch[3], 3, stride=2, act="silu")
    out5 = _c2f(g, g.node("Concat", [y, p5], axis=1), ch[3] + ch[4], ch[4], n[0], False)
    y = _detect(g, [out3, out4, out5], [ch[2], ch[3], ch[4]], [8, 16, 32], size, classes)
    return g.model([("images", (1, 3, size, size))], [y], "yolov8n")


def unet(size=256, base=32, levels=4, in_channels=3, classes=2, seed=5):
    g = GraphBuilder(seed)

    def double_conv(x, c_in, c_out):
        return g.conv(g.conv(x, c_in, c_out, 3), c_out, c_out, 3)

    skips = []
    y, c = "input", in_channels
    for level in range(levels):
        y = double_conv(y, c, base * 2 ** level)
        c = base * 2 ** level
        skips.append((y, c))
        y = g.node("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = double_conv(y, c, 2 * c)
    c = 2 * c
    for skip, c_skip in reversed(skips):
        w = g.rng.normal(0, math.sqrt(2 / (c * 4)), (c, c // 2, 2, 2)).astype(np.float32)
        b = g.rng.normal(0, 0.1, c // 2).astype(np.float32)
        up = g.node("ConvTranspose", [y, g.const(w, "wt"), g.const(b, "bt")],
                    kernel_shape=[2, 2], strides=[2, 2])
        y = double_conv(g.node("Concat", [skip, up], axis=1), c_skip + c // 2, c_skip)
        c = c_skip
    y = g.conv(y, c, classes, 1, act=None, bn=False)
    return g.model([("input", (1, in_channels, size, size))], [y], "unet")


# name -> (builder, full-size kwargs, small kwargs for tests)
MODELS = {
    "resnet50": (resnet50, {}, dict(size=32, width=0.125, layers=(1, 2, 1, 1), classes=10)),
    "mobilenetv2": (mobilenetv2, {}, dict(size=32, width=0.25, classes=10)),
    "yolov8n": (yolov8n, {}, dict(size=64, width=0.125, classes=8)),
    "efficientnet_b0": (efficientnet_b0, {}, dict(size=32, width=0.25, depth=0.34,
                                                  classes=10)),
    "unet": (unet, {}, dict(size=32, base=8, levels=3)),
}


def build(name, small=False, **kwargs):
    """The onnx.ModelProto of model `name` (see MODELS); small: the test-size version."""
    builder, full, little = MODELS[name]
    return builder(**{**(little if small else full), **kwargs})


def input_shape(model):
    """(name, shape) of a built model's one input."""
    value = model.graph.input[0]
    return value.name, tuple(d.dim_value for d in value.type.tensor_type.shape.dim)


def main(argv):
    import onnx

    if len(argv) != 1:
        sys.exit("usage: python3 -m convkit.onnx.models OUT_DIR")
    os.makedirs(argv[0], exist_ok=True)
    for name in MODELS:
        path = os.path.join(argv[0], f"{name}.onnx")
        onnx.save(build(name), path)
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
