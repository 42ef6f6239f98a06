"""Graph rewrites at load, after `infer` (constants folded, shapes known).

- drop_identities: Identity (and Dropout, the identity at inference) nodes and x * 1, x / 1 go,
  their readers reading the input.
- fold_batch_norm: BatchNormalization after a Conv/ConvTranspose goes into its weights and bias;
  any other BatchNormalization becomes Mul + Add by per-channel constants.
- fold_affine: Mul/Div/Add/Sub by a per-channel constant after a conv goes into its weights/bias.
- fold_pad: a zero Pad of H and W before a Conv becomes the Conv's padding (TensorFlow exports).
- fold_affine_forward (after the fusions): Mul/Div/Add/Sub by a per-channel constant read only by
  Convs without padding goes into their weights and bias.
- merge_scale_shift (last): Mul by a constant then Add/Sub of one becomes one `_shift` Mul.
- fuse_activations: a conv followed by its activation (Relu, Clip, LeakyRelu, Sigmoid, Tanh,
  HardSigmoid, HardSwish, Gelu; Sigmoid*Mul = SiLU, x*HardSigmoid(x) and x*Clip(x+3,0,6)/6 =
  HardSwish, the erf form of GELU), a Mul and/or Add/Sub by scalar constants after the
  activation (convkit's post_scale and post_shift: PP-LCNetV3's learnable affine), and a residual
  Add (before or after the activation).
- fold_dense_bias (before the fusions): a MatMul by a constant followed by the Add of a bias
  along its last axis takes the bias (`_bias`, input 2); the fusions then treat MatMul and Gemm
  run as 1x1 convolutions (is_dense_layer) as convs.
- fuse_layer_norm (before the fusions): a layer norm over the last axis exported as nine ops
  becomes one LayerNormalization node.
- merge_self_gate (before the fusions): x + x * g, g broadcast over x (DBNet's RSE neck, x + x *
  SE(x)), becomes x * (1 + g): one pass over x instead of two, g's addition on the small tensor.
- fuse_input_scale (after the fusions): a squeeze-and-excitation block's Mul of x by a runtime
  per-image, per-channel gate (N, C, 1, 1), read only by a 1x1 stride-1 Conv, goes into that
  Conv (convkit's x_scale).
- fuse_concat_input (after the fusions): a Concat along C of runtime tensors read only by a 1x1
  stride-1 Conv without groups goes into that Conv (convkit's channel pieces: YOLO's C2f and
  SPPF, FPN necks).
A fused conv node carries `_activation` (convkit's spec), `_linear` ((scale, shift) after the
activation), `_residual` with the residual as input
3, `_x_scale` with the gate as input 4, and `_pieces` (a count) with the first piece as input 0
and the others from input 5 on (absent inputs before them are ""). Each rewrite edits the graph
in place and returns the number of rewrites made.
"""

import itertools

import numpy as np

from .graph import Node
from .ops import _normalize_axis, batch_norm_affine

CONVS = ("Conv", "ConvTranspose")
_names = itertools.count()


def _new_const(graph, stem, value):
    name = f"{stem}__convkit{next(_names)}"
    graph.consts[name] = value
    graph.shapes[name], graph.dtypes[name] = tuple(value.shape), value.dtype
    return name


class _Index:
    """Producers and consumers of the graph's tensors (rebuilt after each edit)."""

    def __init__(self, graph):
        self.graph = graph
        self.producers = graph.producers()
        self.consumers = graph.consumers()
        self.outputs = set(graph.outputs)

    def sole_user(self, name, ops=None):
        """The one node reading `name`, if exactly one does, it is of an op in `ops` and `name`
        is not a graph output."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.outputs:
            return None
        return users[0] if ops is None or users[0].op in ops else None

    def users(self, name):
        return [] if name in self.outputs else self.consumers.get(name, [])

    def scalar(self, name):
        value = self.graph.consts.get(name)
        return None if value is None or value.size != 1 else float(value.reshape(-1)[0])


def _conv_channel_scale(graph, conv, scale, shift):
    """Makes conv compute conv(x) * scale + shift (per output channel), with new constants."""
    w = graph.consts[conv.inputs[1]].astype(np.float64)
    c_out = scale.size
    if conv.op == "Conv":
        w = w * scale.reshape(-1, 1, 1, 1)
    else:  # IOHW with groups: input rows of group g feed output channels g*C_out/g ...
        groups = conv.attrs.get("group", 1)
        c_in = w.shape[0]
        w = (w.reshape(groups, c_in // groups, c_out // groups, *w.shape[2:])
             * scale.reshape(groups, 1, c_out // groups, 1, 1)).reshape(w.shape)
    b = graph.consts.get(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] else None
    b = np.zeros(c_out) if b is None else b.astype(np.float64)
    b = b * scale + shift
    conv.inputs = [conv.inputs[0], _new_const(graph, conv.name + "_w", w.astype(np.float32)),
                   _new_const(graph, conv.name + "_b", b.astype(np.float32))] + conv.inputs[3:]


def _is_foldable_conv(graph, node):
    return (node is not None and node.op in CONVS and node.inputs[1] in graph.consts
            and (len(node.inputs) < 3 or not node.inputs[2] or node.inputs[2] in graph.consts)
            and "_activation" not in node.attrs and "_residual" not in node.attrs)


def _times_one(graph, node):
    """x of node when it is x * 1 or x / 1 (a float32 scalar constant 1, x a runtime float32
    tensor of the output's shape): the identity for every x, NaN and -0 included; else None.
    Paddle exports swish as x * sigmoid(x * 1)."""
    if node.op not in ("Mul", "Div") or len(node.inputs) != 2:
        return None
    orders = [node.inputs] + ([node.inputs[::-1]] if node.op == "Mul" else [])
    shape = graph.shapes.get(node.outputs[0])
    for x, one in orders:
        value = graph.consts.get(one)
        if (value is not None and value.dtype == np.float32 and value.size == 1
                and float(value.reshape(-1)[0]) == 1.0 and x not in graph.consts
                and graph.dtypes.get(x) == np.float32 and shape is not None
                and graph.shapes.get(x) == shape):
            return x
    return None


def drop_identities(graph):
    """Identity nodes, Dropout without its mask (the identity at inference) and x * 1 or x / 1
    (_times_one), whose output is not a graph output: their readers read the input instead.
    Paddle's exports put Identity between a convolution and its activation (PP-OCRv6: 147) and
    write swish as x * sigmoid(x * 1), where they hid the activation from fusion."""
    count = 0
    for node in list(graph.nodes):
        identity = node.op == "Identity" or (
            node.op == "Dropout" and len(node.inputs) <= 2 and not any(node.outputs[1:]))
        source = node.inputs[0] if identity else _times_one(graph, node)
        if source is None or node.outputs[0] in graph.outputs:
            continue
        target = node.outputs[0]
        for other in graph.nodes:
            other.inputs = [source if name == target else name for name in other.inputs]
        graph.nodes.remove(node)
        count += 1
    return count


def fold_batch_norm(graph):
    count = 0
    index = _Index(graph)
    for node in list(graph.nodes):
        if node.op != "BatchNormalization" or node.attrs.get("training_mode", 0):
            continue
        if len(node.outputs) > 1 and any(node.outputs[1:]):
            continue
        params = node.inputs[1:5]
        if not all(p in graph.consts for p in params):
            continue
        scale, shift = batch_norm_affine(*(graph.consts[p] for p in params),
                                         node.attrs.get("epsilon", 1e-5))
        producer = index.producers.get(node.inputs[0])
        if _is_foldable_conv(graph, producer) and index.sole_user(node.inputs[0]) is node:
            _conv_channel_scale(graph, producer, scale.astype(np.float64),
                                shift.astype(np.float64))
            producer.outputs[0] = node.outputs[0]
            graph.nodes.remove(node)
        else:
            rank = len(graph.shapes[node.inputs[0]])
            shape = (-1,) + (1,) * (rank - 2)
            mid = node.outputs[0] + "__scaled"
            graph.shapes[mid], graph.dtypes[mid] = graph.shapes[node.outputs[0]], np.float32
            mul = type(node)("Mul", node.name + "_scale",
                             [node.inputs[0], _new_const(graph, node.name + "_s",
                                                         scale.reshape(shape))], [mid])
            add = type(node)("Add", node.name + "_shift",
                             [mid, _new_const(graph, node.name + "_t", shift.reshape(shape))],
                             [node.outputs[0]])
            position = graph.nodes.index(node)
            graph.nodes[position:position + 1] = [mul, add]
        index = _Index(graph)
        count += 1
    return count


def _per_channel(value, channels):
    """`value` as a (channels,) float64 vector if it broadcasts against (N, C, H, W) as a
    per-channel constant without growing the output, else None."""
    if value is None or value.ndim > 4 or not np.issubdtype(value.dtype, np.floating):
        return None
    padded = value.reshape((1,) * (4 - value.ndim) + value.shape)
    if padded.shape[0] != 1 or padded.shape[2] != 1 or padded.shape[3] != 1:
        return None
    if padded.shape[1] not in (1, channels):
        return None
    return np.broadcast_to(padded[0, :, 0, 0].astype(np.float64), (channels,))


def _fold_affines(graph, fold):
    """Runs fold(index, node, t, scale, shift) on each Mul/Div/Add/Sub of a 4-D runtime tensor t
    by a per-channel constant (t * scale + shift, as float64 (C,) vectors), in graph order,
    until no call folds (returns True when it removed `node`); the number folded."""
    count = 0
    changed = True
    while changed:
        changed = False
        index = _Index(graph)
        for node in graph.nodes:
            if node.op not in ("Mul", "Div", "Add", "Sub") or len(node.inputs) != 2:
                continue
            for position in (0, 1):
                if node.op in ("Div", "Sub") and position == 1:
                    break
                t, other = node.inputs[position], node.inputs[1 - position]
                shape = graph.shapes.get(t)
                if t in graph.consts or shape is None or len(shape) != 4:
                    continue
                vector = _per_channel(graph.consts.get(other), shape[1])
                if vector is None:
                    continue
                ones, zeros = np.ones_like(vector), np.zeros_like(vector)
                if node.op in ("Mul", "Div"):
                    if node.op == "Div" and not vector.all():
                        continue  # x / 0 is inf or NaN, which a scale cannot give
                    scale, shift = (vector if node.op == "Mul" else 1 / vector), zeros
                else:
                    scale, shift = ones, (vector if node.op == "Add" else -vector)
                if fold(index, node, t, scale, shift):
                    changed = True
                    count += 1
                    break
            if changed:
                break
    return count


def fold_affine(graph):
    def into_producer(index, node, t, scale, shift):
        conv = index.producers.get(t)
        if not _is_foldable_conv(graph, conv) or index.sole_user(t) is not node:
            return False
        _conv_channel_scale(graph, conv, scale, shift)
        conv.outputs[0] = node.outputs[0]
        graph.nodes.remove(node)
        return True

    return _fold_affines(graph, into_producer)


def _reads_unpadded(graph, conv, name):
    """Whether `conv` is a Conv reading `name` as its x only, with constant weights and bias and
    no padding: every tap of it reads x itself, so an affine map of x goes into w and b."""
    if conv.op != "Conv" or conv.inputs[0] != name or name in conv.inputs[1:]:
        return False
    if "_pieces" in conv.attrs or "_x_scale" in conv.attrs:
        return False  # x is one piece of the input, or multiplied by a gate that a shift meets
    bias = conv.inputs[2] if len(conv.inputs) > 2 else ""
    if conv.inputs[1] not in graph.consts or (bias and bias not in graph.consts):
        return False
    if conv.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return False
    return not any(conv.attrs.get("pads", [0] * 4))


def _conv_input_scale(graph, conv, scale, shift):
    """Makes conv compute conv(x * scale + shift) (per input channel) from x, with new
    constants: w times scale along its input channels, and the bias plus conv(shift)."""
    w = graph.consts[conv.inputs[1]].astype(np.float64)  # OIHW, I = C_in / groups
    c_out, c_in_g = w.shape[0], w.shape[1]
    group = np.arange(c_out) // (c_out // conv.attrs.get("group", 1))
    channel = group[:, None] * c_in_g + np.arange(c_in_g)[None, :]  # (C_out, C_in / groups)
    b = graph.consts.get(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] else None
    b = np.zeros(c_out) if b is None else b.astype(np.float64)
    b = b + np.einsum("oikl,oi->o", w, shift[channel])
    w = w * scale[channel][:, :, None, None]
    conv.inputs = [conv.inputs[0], _new_const(graph, conv.name + "_w", w.astype(np.float32)),
                   _new_const(graph, conv.name + "_b", b.astype(np.float32))] + conv.inputs[3:]


def fold_affine_forward(graph):
    """Mul/Div/Add/Sub of a tensor by a per-channel constant whose only readers are Convs
    without padding (_reads_unpadded) goes into their weights and bias: the learnable affine
    blocks of PP-LCNetV3 (a scale and a bias after the activation) before its 1x1 convolutions,
    each two passes over a large tensor in numpy otherwise."""
    def into_readers(index, node, t, scale, shift):
        users = index.users(node.outputs[0])
        if graph.shapes[node.outputs[0]] != graph.shapes[t] or not users or \
                not all(_reads_unpadded(graph, u, node.outputs[0]) for u in users):
            return False
        for conv in users:
            _conv_input_scale(graph, conv, scale, shift)
            conv.inputs[0] = t
        graph.nodes.remove(node)
        return True

    return _fold_affines(graph, into_readers)


def _shift_of(graph, node, t):
    """The constant a node adds to t (Add) or subtracts from it (Sub: negated), or None."""
    if node is None or node.op not in ("Add", "Sub") or len(node.inputs) != 2:
        return None
    other = _other(node, t)
    if other is None or other not in graph.consts or (node.op == "Sub" and node.inputs[0] != t):
        return None
    value = graph.consts[other]
    return -value if node.op == "Sub" else value


def merge_scale_shift(graph):
    """Mul of a runtime tensor by a constant, then Add or Sub of a constant, both per-channel or
    scalar and the product read only by that Add: one Mul node with the shift as input 2 and
    `_shift` set, run in one pass (what fold_affine_forward leaves of PP-LCNetV3's affine blocks:
    those read by padded convolutions)."""
    count = 0
    index = _Index(graph)
    for mul in [n for n in graph.nodes if n.op == "Mul" and len(n.inputs) == 2]:
        t = next((i for i in mul.inputs if i not in graph.consts), None)
        scale = _other(mul, t) if t is not None else None
        if scale is None or scale not in graph.consts or "_shift" in mul.attrs:
            continue
        shape = graph.shapes.get(t)
        add = index.sole_user(mul.outputs[0])
        shift = _shift_of(graph, add, mul.outputs[0])
        if shape is None or shift is None or graph.shapes[add.outputs[0]] != shape:
            continue
        consts = (graph.consts[scale], shift)
        channels = shape[1] if len(shape) == 4 else 1
        if any(c.dtype != np.float32 or (c.size != 1 and (
                len(shape) != 4 or _per_channel(c, channels) is None)) for c in consts):
            continue
        mul.inputs = [t, scale, _new_const(graph, add.name + "_shift", shift)]
        mul.attrs["_shift"] = True
        mul.outputs = list(add.outputs)
        graph.nodes.remove(add)
        index = _Index(graph)
        count += 1
    return count


def _spatial_zero_pads(graph, pad):
    """(top, left, bottom, right) of a constant-zero Pad of a 4-D tensor's H and W only, or
    None."""
    if pad.attrs.get("mode", "constant") != "constant":
        return None
    if graph.opset < 11:
        pads, value = pad.attrs.get("pads"), pad.attrs.get("value", 0.0)
    else:
        inputs = pad.inputs + [""] * (4 - len(pad.inputs))
        if any(name and name not in graph.consts for name in inputs[1:]) or inputs[3]:
            return None
        pads = graph.consts[inputs[1]]
        value = graph.consts[inputs[2]].item() if inputs[2] else 0.0
    if value != 0 or len(pads) != 8 or len(graph.shapes[pad.inputs[0]]) != 4:
        return None
    pads = [int(p) for p in pads]
    if pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
        return None
    return pads[2], pads[3], pads[6], pads[7]


def fold_pad(graph):
    count = 0
    index = _Index(graph)
    for pad in [n for n in graph.nodes if n.op == "Pad"]:
        conv = index.sole_user(pad.outputs[0], ("Conv",))
        extra = _spatial_zero_pads(graph, pad)
        if conv is None or extra is None or conv.inputs[0] != pad.outputs[0]:
            continue
        auto_pad = conv.attrs.get("auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", "VALID"):
            continue
        own = [0, 0, 0, 0] if auto_pad == "VALID" else list(conv.attrs.get("pads", [0] * 4))
        conv.attrs["pads"] = [a + b for a, b in zip(own, extra)]
        conv.attrs["auto_pad"] = "NOTSET"
        conv.inputs[0] = pad.inputs[0]
        graph.nodes.remove(pad)
        index = _Index(graph)
        count += 1
    return count


def _close(value, target, tolerance=1e-4):
    return value is not None and abs(value - target) <= tolerance * max(abs(target), 1.0)


def _other(node, name):
    """The input of a binary node that is not `name` (None if both are)."""
    a, b = node.inputs
    return b if a == name else a if b == name else None


def _clip_spec(index, node):
    graph = index.graph
    if graph.opset < 11:
        lo, hi = node.attrs.get("min", -np.inf), node.attrs.get("max", np.inf)
    else:
        bounds = []
        for i in (1, 2):
            if i < len(node.inputs) and node.inputs[i]:
                if node.inputs[i] not in graph.consts:
                    return None
                bounds.append(index.scalar(node.inputs[i]))
            else:
                bounds.append(None)
        lo = -np.inf if bounds[0] is None else bounds[0]
        hi = np.inf if bounds[1] is None else bounds[1]
    if lo == 0 and hi == 6:
        return "relu6"
    if lo == 0 and hi == np.inf:
        return "relu"
    if lo == -np.inf or hi == np.inf:
        return None
    return ("clip", float(lo), float(hi))


def _single_activation(index, t, user):
    """The spec of `user`, a one-input activation of t, or None."""
    if user.inputs[0] != t:
        return None
    attrs = user.attrs
    if user.op == "Relu":
        return "relu"
    if user.op == "Clip":
        return _clip_spec(index, user)
    if user.op == "LeakyRelu":
        return ("leaky_relu", float(attrs.get("alpha", 0.01)))
    if user.op == "Sigmoid":
        return "sigmoid"
    if user.op == "Tanh":
        return "tanh"
    if user.op == "HardSigmoid":
        return ("hardsigmoid", float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5)))
    if user.op == "HardSwish":
        return "hardswish"
    if user.op == "Gelu" and attrs.get("approximate", "none") == "none":
        return "gelu"
    if user.op == "Swish" and float(attrs.get("alpha", 1.0)) == 1.0:  # x sigmoid(x)
        return "silu"
    return None


def _gated(index, t, users):
    """x * f(x) patterns: SiLU (Sigmoid) and HardSwish (HardSigmoid(1/6, 1/2), or Clip(x + 3,
    0, 6) then / 6). Returns (spec, nodes, output) or None."""
    for gate in users:
        mul = next((u for u in users if u is not gate and u.op == "Mul"), None)
        if mul is None:
            continue
        if gate.op == "Sigmoid" and gate.inputs[0] == t:
            if index.sole_user(gate.outputs[0]) is mul and _other(mul, t) == gate.outputs[0]:
                return "silu", [gate, mul], mul.outputs[0]
        if gate.op == "HardSigmoid" and gate.inputs[0] == t:
            if (_close(gate.attrs.get("alpha", 0.2), 1 / 6) and
                    _close(gate.attrs.get("beta", 0.5), 0.5) and
                    index.sole_user(gate.outputs[0]) is mul and
                    _other(mul, t) == gate.outputs[0]):
                return "hardswish", [gate, mul], mul.outputs[0]
        if gate.op == "Add" and _close(index.scalar(_other(gate, t) or ""), 3.0):
            clip = index.sole_user(gate.outputs[0], ("Clip",))
            if clip is None or _clip_spec(index, clip) != "relu6":
                continue
            if index.sole_user(clip.outputs[0]) is not mul or _other(mul, t) != clip.outputs[0]:
                continue
            scale = index.sole_user(mul.outputs[0], ("Div", "Mul"))
            if scale is None or scale.inputs[0] != mul.outputs[0]:
                continue
            factor = index.scalar(scale.inputs[1])
            if _close(factor, 6.0 if scale.op == "Div" else 1 / 6):
                return "hardswish", [gate, clip, mul, scale], scale.outputs[0]
    return None


def _gelu(index, t, users):
    """x * 0.5 * (1 + erf(x / sqrt(2))) in its two exported orders, or None."""
    scaled = next((u for u in users if (u.op == "Div" and _close(index.scalar(u.inputs[1]),
                                                                 np.sqrt(2))) or
                   (u.op == "Mul" and _close(index.scalar(_other(u, t) or ""),
                                             1 / np.sqrt(2)))), None)
    if scaled is None or len(users) != 2:
        return None
    erf = index.sole_user(scaled.outputs[0], ("Erf",))
    add = erf and index.sole_user(erf.outputs[0], ("Add",))
    if not add or not _close(index.scalar(_other(add, erf.outputs[0]) or ""), 1.0):
        return None
    mul = next(u for u in users if u is not scaled)
    if mul.op != "Mul":
        return None
    if _other(mul, t) == add.outputs[0]:  # (x * (1 + erf)) * 0.5
        half = index.sole_user(mul.outputs[0], ("Mul",))
        if half and _close(index.scalar(_other(half, mul.outputs[0]) or ""), 0.5) \
                and index.sole_user(add.outputs[0]) is mul:
            return "gelu", [scaled, erf, add, mul, half], half.outputs[0]
    elif _close(index.scalar(_other(mul, t) or ""), 0.5):  # (x * 0.5) * (1 + erf)
        final = index.sole_user(mul.outputs[0], ("Mul",))
        if final and _other(final, mul.outputs[0]) == add.outputs[0] \
                and index.sole_user(add.outputs[0]) is final:
            return "gelu", [scaled, erf, add, mul, final], final.outputs[0]
    return None


def match_activation(index, t):
    """(spec, nodes, output tensor) of the activation applied to t, or None."""
    users = index.users(t)
    if len(users) == 1:
        spec = _single_activation(index, t, users[0])
        if spec is not None:
            return spec, users, users[0].outputs[0]
    if len(users) == 2:
        return _gated(index, t, users) or _gelu(index, t, users)
    return None


def _match_residual(index, t):
    """The Add adding a runtime tensor of t's shape to t, and that tensor, or (None, None)."""
    add = index.sole_user(t, ("Add",))
    if add is None or len(add.inputs) != 2:
        return None, None
    r = _other(add, t)
    graph = index.graph
    if r is None or r in graph.consts or graph.shapes.get(r) != graph.shapes[t]:
        return None, None
    if graph.dtypes.get(r) != np.float32 or graph.shapes[add.outputs[0]] != graph.shapes[t]:
        return None, None
    return add, r


def _apply(graph, conv, nodes, output):
    for node in nodes:
        graph.nodes.remove(node)
    conv.outputs[0] = output


def _scalar_operand(index, node, t):
    """The float32 scalar constant `node` (binary, reading t) combines with t, or None."""
    other = _other(node, t) if len(node.inputs) == 2 else None
    value = index.graph.consts.get(other) if other is not None else None
    if value is None or value.dtype != np.float32 or value.size != 1:
        return None
    if index.graph.shapes.get(node.outputs[0]) != index.graph.shapes.get(t):
        return None
    return float(value.reshape(-1)[0])


def _match_linear(index, t):
    """t * s + c, t * s, t + c or t - c by float32 scalar constants on an activation's output t
    (PP-LCNetV3's learnable affine after each activation), each step t's sole reader: (scale,
    shift, nodes, output) or None."""
    first = index.sole_user(t, ("Mul", "Add", "Sub"))
    value = None if first is None else _scalar_operand(index, first, t)
    if value is None or (first.op == "Sub" and first.inputs[0] != t):
        return None
    if first.op != "Mul":
        return 1.0, value if first.op == "Add" else -value, [first], first.outputs[0]
    shift_node = index.sole_user(first.outputs[0], ("Add", "Sub"))
    if shift_node is not None and _other(shift_node, first.outputs[0]) in index.graph.consts:
        shift = _scalar_operand(index, shift_node, first.outputs[0])
        if shift is None or (shift_node.op == "Sub" and shift_node.inputs[0] != first.outputs[0]):
            return None  # a per-channel shift: the pair stays one step (merge_scale_shift)
    else:
        return value, 0.0, [first], first.outputs[0]
    shift = shift if shift_node.op == "Add" else -shift
    return value, shift, [first, shift_node], shift_node.outputs[0]


def _fuse_activation(graph, conv, match):
    """Fuses a matched activation into conv, and the scalar linear map after it when there is one
    (`_linear`: (scale, shift)); the number of nodes removed."""
    spec, nodes, output = match
    conv.attrs["_activation"] = spec
    _apply(graph, conv, nodes, output)
    linear = _match_linear(_Index(graph), output)
    if linear is None:
        return len(nodes)
    scale, shift, linear_nodes, output = linear
    conv.attrs["_linear"] = (scale, shift)
    _apply(graph, conv, linear_nodes, output)
    return len(nodes) + len(linear_nodes)


def is_dense_layer(graph, node):
    """Whether `node` is a MatMul or Gemm that runs as a convkit 1x1 convolution (layers.py's
    build_matmul and build_gemm): a runtime A of 2 dims or more times a constant 2-D B, Gemm without
    transA and with a bias of 1 or N elements."""
    if node.op not in ("MatMul", "Gemm") or len(node.inputs) < 2:
        return False
    a, b = node.inputs[0], node.inputs[1]
    w = graph.consts.get(b)
    a_shape = graph.shapes.get(a)
    if w is None or w.ndim != 2 or a in graph.consts or a_shape is None or len(a_shape) < 2:
        return False
    if node.op == "MatMul":  # input 2: the bias of fold_dense_bias, or "" before a residual
        return len(node.inputs) == 2 or node.inputs[2] == "" or "_bias" in node.attrs
    c = node.inputs[2] if len(node.inputs) > 2 else ""
    n = w.shape[0 if node.attr("transB", 0) else 1]
    return not node.attr("transA", 0) and (not c or (c in graph.consts and
                                                     graph.consts[c].size in (1, n)))


def _along_last(value, width, rank):
    """`value` as a float32 (width,) vector if it is a float32 constant that broadcasts along the
    last axis only of a rank-`rank` tensor whose last axis has `width` elements ((width,), (1, ...,
    width) or one element), else None."""
    if value is None or value.dtype != np.float32 or value.ndim > rank or \
            value.size not in (1, width) or any(d != 1 for d in value.shape[:-1]):
        return None
    return np.broadcast_to(value.reshape(-1), (width,)).astype(np.float32)


def fold_dense_bias(graph):
    """MatMul by a constant (is_dense_layer) followed by an Add of a constant broadcast along the
    last axis only (a Linear layer's bias: (N,) or (1, ..., N)) becomes that MatMul with the bias
    as input 2 (`_bias`), run as the 1x1 convolution's bias."""
    count = 0
    index = _Index(graph)
    for node in [n for n in graph.nodes if n.op == "MatMul" and is_dense_layer(graph, n)]:
        if "_bias" in node.attrs:
            continue
        add = index.sole_user(node.outputs[0], ("Add",))
        c = None if add is None or len(add.inputs) != 2 else _other(add, node.outputs[0])
        out_shape = graph.shapes[node.outputs[0]]
        bias = None if c is None else _along_last(graph.consts.get(c), out_shape[-1],
                                                   len(out_shape))
        if bias is None or graph.shapes[add.outputs[0]] != out_shape:
            continue
        node.inputs = node.inputs[:2] + [_new_const(graph, node.name + "_bias", bias)]
        node.attrs["_bias"] = True
        node.outputs[0] = add.outputs[0]
        graph.nodes.remove(add)
        index = _Index(graph)
        count += 1
    return count


def fuse_activations(graph, residual=True):
    """Fuses the activation and residual Add of each conv and of each MatMul or Gemm run as one
    (is_dense_layer); returns the number of nodes removed."""
    removed = 0
    for conv in [n for n in graph.nodes if n.op in CONVS or is_dense_layer(graph, n)]:
        index = _Index(graph)
        t = conv.outputs[0]
        match = match_activation(index, t)
        if match is not None:
            removed += _fuse_activation(graph, conv, match)
            if residual:
                index = _Index(graph)
                add, r = _match_residual(index, conv.outputs[0])
                if add is not None:
                    _attach_residual(graph, conv, add, r, "after")
                    removed += 1
            continue
        if not residual:
            continue
        add, r = _match_residual(index, t)
        if add is None:
            continue
        _attach_residual(graph, conv, add, r, "before")
        removed += 1
        index = _Index(graph)
        match = match_activation(index, conv.outputs[0])
        if match is not None:
            removed += _fuse_activation(graph, conv, match)
    graph.toposort()
    return removed


def _attach_residual(graph, conv, add, r, where):
    inputs = conv.inputs + [""] * (3 - len(conv.inputs))
    conv.inputs = inputs[:3] + [r]
    conv.attrs["_residual"] = where
    _apply(graph, conv, [add], add.outputs[0])


def _is_pointwise(graph, conv):
    w = graph.consts.get(conv.inputs[1]) if len(conv.inputs) > 1 else None
    attrs = conv.attrs
    return (w is not None and w.ndim == 4 and w.shape[2:] == (1, 1)
            and list(attrs.get("strides", [1, 1])) == [1, 1]
            and list(attrs.get("dilations", [1, 1])) == [1, 1]
            and not any(attrs.get("pads", [0, 0, 0, 0]))
            and attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID"))


def _gate_operands(graph, mul):
    """(x, gate) of a Mul of a runtime float32 x (N, C, H, W) by a runtime gate (N, C, 1, 1),
    or None."""
    for x, gate in (mul.inputs, mul.inputs[::-1]):
        x_shape, gate_shape = graph.shapes.get(x), graph.shapes.get(gate)
        if x in graph.consts or gate in graph.consts or x_shape is None or gate_shape is None:
            continue
        if len(x_shape) != 4 or x_shape[2] * x_shape[3] <= 1:
            continue
        if (tuple(gate_shape) == (x_shape[0], x_shape[1], 1, 1)
                and graph.dtypes.get(x) == np.float32 and graph.dtypes.get(gate) == np.float32):
            return x, gate
    return None


def _self_gate(graph, index, add):
    """(x, g, mul) where add is x + mul and mul = x * g, read only by add, g a float32 tensor of
    fewer elements than x that broadcasts over it; or None."""
    if len(add.inputs) != 2:
        return None
    for x, m in (add.inputs, add.inputs[::-1]):
        mul = index.producers.get(m)
        if mul is None or mul.op != "Mul" or len(mul.inputs) != 2 or mul.attrs:
            continue
        g = _other(mul, x)
        shape = graph.shapes.get(x)
        if (g is None or g == x or index.sole_user(m) is not add or shape is None
                or graph.shapes.get(g) is None
                or graph.shapes.get(add.outputs[0]) != shape or graph.shapes.get(m) != shape):
            continue
        if (graph.dtypes.get(x) == np.float32 and graph.dtypes.get(g) == np.float32
                and int(np.prod(graph.shapes[g], dtype=np.int64)) < int(np.prod(shape))):
            return x, g, mul
    return None


def merge_self_gate(graph):
    """x + x * g as x * (1 + g) (DBNet's residual squeeze-and-excitation): the Mul then reads
    1 + g, computed on g's few elements, and writes the Add's output."""
    count = 0
    index = _Index(graph)
    for add in [n for n in graph.nodes if n.op == "Add"]:
        match = _self_gate(graph, index, add)
        if match is None:
            continue
        x, g, mul = match
        if g in graph.consts:
            g1 = _new_const(graph, add.name + "_gate", (graph.consts[g] + 1).astype(np.float32))
        else:
            one = _new_const(graph, add.name + "_one", np.ones((), np.float32))
            g1 = f"{add.name}_gate__convkit{next(_names)}"
            graph.shapes[g1], graph.dtypes[g1] = graph.shapes[g], np.float32
            graph.nodes.insert(graph.nodes.index(mul),
                               Node("Add", add.name + "_gate", [g, one], [g1]))
        mul.inputs = [x, g1]
        mul.outputs = list(add.outputs)
        graph.nodes.remove(add)
        index = _Index(graph)
        count += 1
    return count


def fuse_input_scale(graph):
    """Moves each squeeze-and-excitation Mul into the 1x1 Conv that alone reads it."""
    count = 0
    index = _Index(graph)
    for mul in [n for n in graph.nodes if n.op == "Mul" and len(n.inputs) == 2]:
        operands = _gate_operands(graph, mul)
        conv = index.sole_user(mul.outputs[0], ("Conv",))
        if (operands is None or conv is None or conv.inputs[0] != mul.outputs[0]
                or "_x_scale" in conv.attrs or not _is_pointwise(graph, conv)):
            continue
        inputs = conv.inputs + [""] * (4 - len(conv.inputs))
        conv.inputs = [operands[0]] + inputs[1:4] + [operands[1]]
        conv.attrs["_x_scale"] = True
        graph.nodes.remove(mul)
        index = _Index(graph)
        count += 1
    return count


def _channel_concat_inputs(graph, concat):
    """The inputs of a Concat along C of two or more runtime float32 4-D tensors, or None."""
    shape = graph.shapes.get(concat.outputs[0])
    if shape is None or len(shape) != 4 or len(concat.inputs) < 2:
        return None
    if _normalize_axis(concat.attrs.get("axis", 1), 4) != 1:
        return None
    for name in concat.inputs:
        if (not name or name in graph.consts or graph.dtypes.get(name) != np.float32
                or len(graph.shapes.get(name, ())) != 4):
            return None
    return list(concat.inputs)


def fuse_concat_input(graph):
    """Moves each channel Concat into the 1x1 Conv (one group) that alone reads it."""
    count = 0
    index = _Index(graph)
    for concat in [n for n in graph.nodes if n.op == "Concat"]:
        pieces = _channel_concat_inputs(graph, concat)
        conv = index.sole_user(concat.outputs[0], ("Conv",))
        if (pieces is None or conv is None or conv.inputs[0] != concat.outputs[0]
                or conv.attrs.get("group", 1) != 1 or "_x_scale" in conv.attrs
                or not _is_pointwise(graph, conv)):
            continue
        inputs = conv.inputs + [""] * (5 - len(conv.inputs))
        conv.inputs = [pieces[0]] + inputs[1:5] + pieces[1:]
        conv.attrs["_pieces"] = len(pieces)
        graph.nodes.remove(concat)
        index = _Index(graph)
        count += 1
    return count


def _last_axis_mean(graph, node):
    """Whether node is a ReduceMean over the last axis only, keeping dims (axes as the
    attribute, or as input 1 from opset 18)."""
    if node is None or node.op != "ReduceMean" or not node.attrs.get("keepdims", 1):
        return False
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] in graph.consts:
        axes = graph.consts[node.inputs[1]].reshape(-1).tolist()
    rank = len(graph.shapes.get(node.inputs[0]) or ())
    return rank > 0 and axes is not None and [int(a) % rank for a in axes] == [rank - 1]


def _layer_norm_of(index, mean):
    """The nodes of the LayerNormalization that `mean` (ReduceMean of x) starts, as exported
    before opset 17: d = x - mean; y = d / sqrt(mean(d^2) + eps) * gamma [+ beta], gamma and beta
    float32 constants along the last axis. (nodes, x, eps, gamma, beta or None, output) or None."""
    graph = index.graph
    x = mean.inputs[0]
    sub = index.sole_user(mean.outputs[0], ("Sub",))
    if sub is None or sub.inputs != [x, mean.outputs[0]]:
        return None
    d = sub.outputs[0]
    users = index.users(d)
    pow_ = next((u for u in users if u.op == "Pow" and u.inputs[0] == d), None)
    div = next((u for u in users if u.op == "Div" and u.inputs[0] == d), None)
    if len(users) != 2 or pow_ is None or div is None or index.scalar(pow_.inputs[1]) != 2.0:
        return None
    var = index.sole_user(pow_.outputs[0], ("ReduceMean",))
    add = var and index.sole_user(var.outputs[0], ("Add",))
    eps = add and index.scalar(_other(add, var.outputs[0]) or "")
    sqrt = add and index.sole_user(add.outputs[0], ("Sqrt",))
    if not _last_axis_mean(graph, var) or eps is None or sqrt is None or \
            div.inputs[1] != sqrt.outputs[0] or index.sole_user(sqrt.outputs[0]) is not div:
        return None
    shape = graph.shapes[x]

    def along_last(node, t):
        return _along_last(graph.consts.get(_other(node, t) or ""), shape[-1], len(shape))

    mul = index.sole_user(div.outputs[0], ("Mul",))
    gamma = mul and along_last(mul, div.outputs[0])
    if gamma is None:
        return None
    nodes = [mean, sub, pow_, var, add, sqrt, div, mul]
    bias = index.sole_user(mul.outputs[0], ("Add",))
    beta = bias and along_last(bias, mul.outputs[0])
    if beta is not None:
        nodes.append(bias)
    return nodes, x, eps, gamma, beta, nodes[-1].outputs[0]


def fuse_layer_norm(graph):
    """Layer norms over the last axis exported as nine ops (ReduceMean, Sub, Pow, ReduceMean,
    Add, Sqrt, Div, Mul, Add: PyTorch's and Paddle's exports before opset 17, the SVTR neck of
    PaddleOCR's recognisers) become one LayerNormalization node: one step instead of nine."""
    count = 0
    index = _Index(graph)
    for mean in [n for n in graph.nodes if _last_axis_mean(graph, n)]:
        if mean not in graph.nodes:
            continue
        found = _layer_norm_of(index, mean)
        if found is None:
            continue
        nodes, x, eps, gamma, beta, output = found
        inputs = [x, _new_const(graph, mean.name + "_gamma", gamma)]
        if beta is not None:
            inputs.append(_new_const(graph, mean.name + "_beta", beta))
        position = graph.nodes.index(nodes[-1])
        norm = Node(op="LayerNormalization", name=mean.name + "_layer_norm", inputs=inputs,
                    outputs=[output], attrs={"axis": -1, "epsilon": eps})
        graph.nodes.insert(position, norm)
        for node in nodes:
            graph.nodes.remove(node)
        index = _Index(graph)
        count += 1
    return count


def prepare(graph, fuse=True):
    """All rewrites in order; returns {rewrite name: count}."""
    counts = {"drop_identities": drop_identities(graph), "fold_pad": fold_pad(graph),
              "fold_batch_norm": fold_batch_norm(graph),
              "fold_affine": fold_affine(graph)}
    if fuse:
        counts["fold_dense_bias"] = fold_dense_bias(graph)
        counts["fuse_layer_norm"] = fuse_layer_norm(graph)
        counts["merge_self_gate"] = merge_self_gate(graph)
        counts["fuse_activations"] = fuse_activations(graph)
        counts["fuse_input_scale"] = fuse_input_scale(graph)
        counts["fuse_concat_input"] = fuse_concat_input(graph)
    counts["fold_affine_forward"] = fold_affine_forward(graph)
    counts["merge_scale_shift"] = merge_scale_shift(graph)
    return counts
