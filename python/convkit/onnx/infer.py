"""Shape inference and constant folding at load, for fixed input shapes.

Walks the graph once in topological order. A node whose inputs are all constants (and Shape/Size,
whose output depends only on shapes) is evaluated now with its own kernel and removed; its outputs
become constants, so shape subgraphs (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) vanish.
Every other node gets its output shapes: by formula for the convkit layers, by running its numpy
kernel on zero-stride zeros otherwise.
"""

import numpy as np

from . import layout as L
from .._convkit import Error
from .errors import UnsupportedError, node_error, unsupported
from .kernel import Context
from .layers import SHAPES
from .ops import BUILDERS

ALWAYS_FOLDED = ("Shape", "Size")


def builder_for(node):
    if node.domain not in ("", "ai.onnx"):
        raise unsupported(node, f"domain '{node.domain}' (supported: the default ONNX domain)")
    builder = BUILDERS.get(node.op)
    if builder is None:
        raise unsupported(node, "op type not supported; convkit.onnx runs: "
                          + ", ".join(sorted(BUILDERS)))
    return builder


def run_plain(kernel, args):
    """The kernel's outputs, as PLAIN arrays, from PLAIN args (None for absent inputs)."""
    converted = [None if a is None else L.convert(a, L.PLAIN, want)
                 for a, want in zip(args, kernel.in_layouts)]
    outputs = kernel.fn(*converted)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return [np.asarray(L.convert(y, L.PLAIN if have == L.ANY else have, L.PLAIN))
            for y, have in zip(outputs, kernel.out_layouts)]


def _placeholder(graph, name):
    if not name:
        return None
    if name in graph.consts:
        return graph.consts[name]
    return np.broadcast_to(np.zeros((), graph.dtypes[name]), graph.shapes[name])


def infer(graph):
    """Folds constants and fills graph.shapes and graph.dtypes for every tensor; in place."""
    for name, value in graph.consts.items():
        graph.shapes[name], graph.dtypes[name] = tuple(value.shape), value.dtype
    kept = []
    for node in graph.nodes:
        builder = builder_for(node)
        ctx = Context(node, graph, [L.PLAIN] * len(node.inputs))
        foldable = node.op in ALWAYS_FOLDED or all(
            not name or name in graph.consts for name in node.inputs)
        if node.op in SHAPES and not foldable and not any(node.outputs[1:]):
            graph.shapes[node.outputs[0]] = tuple(int(d) for d in SHAPES[node.op](ctx))
            graph.dtypes[node.outputs[0]] = np.dtype(np.float32)
            kept.append(node)
            continue
        args = [None if node.op in ALWAYS_FOLDED else _placeholder(graph, name)
                for name in node.inputs]
        try:
            with np.errstate(all="ignore"):
                outputs = run_plain(builder(ctx), args)
        except UnsupportedError:
            raise
        except (Error, ValueError, IndexError, TypeError) as error:
            shapes = [graph.shapes.get(name) for name in node.inputs if name]
            raise node_error(f"{node.describe()} with input shapes {shapes}", error) from error
        for name, value in zip(node.outputs, outputs):
            if not name:
                continue
            graph.shapes[name], graph.dtypes[name] = tuple(value.shape), value.dtype
            if foldable:
                graph.consts[name] = np.asarray(value, order="C")  # keeps 0-d 0-d
        if not foldable:
            kept.append(node)
    graph.nodes = kept
    for name in graph.outputs:
        if name not in graph.shapes:
            raise UnsupportedError(f"graph output '{name}' is produced by no node")
    return graph
