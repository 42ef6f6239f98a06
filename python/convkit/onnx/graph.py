"""The graph convkit.onnx works on: ONNX nodes with decoded attributes, constants as numpy arrays.

A small mutable mirror of an ONNX graph, so that folding and fusion are plain Python edits:
`Graph.nodes` is in topological order, `Graph.consts` holds every constant tensor (initializers and
folded values), `Graph.shapes` the logical (ONNX) shape of every tensor once `infer` has run.
Tensor names are ONNX's; an absent optional input is "".
"""

import dataclasses

import numpy as np

from .errors import UnsupportedError


@dataclasses.dataclass
class Node:
    op: str
    name: str
    inputs: list
    outputs: list
    attrs: dict = dataclasses.field(default_factory=dict)
    domain: str = ""

    def attr(self, key, default=None):
        return self.attrs.get(key, default)

    def describe(self):
        return f"node '{self.name}' ({self.op})"


@dataclasses.dataclass
class Graph:
    nodes: list
    consts: dict  # name -> np.ndarray
    inputs: list  # runtime input names, in ONNX order
    input_shapes: dict  # name -> tuple (N, C, H, W ...)
    input_dtypes: dict  # name -> np.dtype
    outputs: list  # output names, in ONNX order
    opset: int = 13
    shapes: dict = dataclasses.field(default_factory=dict)  # name -> tuple
    dtypes: dict = dataclasses.field(default_factory=dict)  # name -> np.dtype

    def producers(self):
        """{tensor name: the node producing it}."""
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self):
        """{tensor name: [nodes reading it]} (a node reading a tensor twice appears once)."""
        users = {}
        for node in self.nodes:
            for name in dict.fromkeys(node.inputs):
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def is_const(self, name):
        return name in self.consts

    def const(self, name):
        return self.consts.get(name)

    def toposort(self):
        """Reorders `nodes` so every node follows the producers of its inputs (stable)."""
        ready = set(self.consts) | set(self.inputs) | {""}
        pending = list(self.nodes)
        ordered = []
        while pending:
            progress = []
            rest = []
            for node in pending:
                if all(name in ready for name in node.inputs):
                    progress.append(node)
                    ready.update(node.outputs)
                else:
                    rest.append(node)
            if not progress:
                missing = sorted({n for node in rest for n in node.inputs if n not in ready})
                raise UnsupportedError(
                    f"{rest[0].describe()}: inputs never produced in the graph: {missing[:5]}")
            ordered.extend(progress)
            pending = rest
        self.nodes = ordered


def _attribute_value(attribute):
    import onnx
    from onnx import numpy_helper

    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    if isinstance(value, list):
        return list(value)
    return value


def _input_dtype(value):
    """A graph input's numpy dtype; a clear error for sequences, optionals, maps and element
    types numpy has no dtype for."""
    import onnx

    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise UnsupportedError(f"graph input '{value.name}' is of type {kind} (supported: "
                               "tensors)")
    elem_type = value.type.tensor_type.elem_type
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        raise UnsupportedError(f"graph input '{value.name}' has element type {elem_type} "
                               "(supported: the numpy types: float, int, bool)") from None


def from_onnx(model, input_shapes):
    """The Graph of an onnx.ModelProto with the runtime inputs fixed to `input_shapes`.

    input_shapes: {name: shape}; a graph input missing from it must have a fully static shape in
    the model. Initializers that are also listed as graph inputs count as constants.
    """
    from onnx import numpy_helper

    graph = model.graph
    opset = 1
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            opset = entry.version
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    inputs, shapes, dtypes = [], {}, {}
    input_shapes = dict(input_shapes or {})
    for value in graph.input:
        if value.name in consts:
            continue
        inputs.append(value.name)
        dtypes[value.name] = _input_dtype(value)
        tensor_type = value.type.tensor_type
        if value.name in input_shapes:
            shapes[value.name] = tuple(int(d) for d in input_shapes.pop(value.name))
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if not tensor_type.HasField("shape") or None in dims or 0 in dims:
            raise UnsupportedError(
                f"graph input '{value.name}' has a dynamic shape "
                f"{[d if d is not None else '?' for d in dims]}: give it in input_shapes")
        shapes[value.name] = tuple(dims)
    if input_shapes:
        raise UnsupportedError(
            f"input_shapes names {sorted(input_shapes)}, which are not graph inputs; the graph "
            f"inputs are {inputs}")
    nodes = []
    for index, proto in enumerate(graph.node):
        attrs = {a.name: _attribute_value(a) for a in proto.attribute}
        nodes.append(Node(op=proto.op_type, name=proto.name or f"{proto.op_type}_{index}",
                          inputs=list(proto.input), outputs=list(proto.output), attrs=attrs,
                          domain=proto.domain))
    result = Graph(nodes=nodes, consts=consts, inputs=inputs, input_shapes=dict(shapes),
                   input_dtypes=dict(dtypes), outputs=[v.name for v in graph.output], opset=opset,
                   shapes=dict(shapes), dtypes=dict(dtypes))
    result.toposort()
    return result
