"""Indexing ops in numpy (glue ops), on NCHW data: gathers and scatters, TopK, Hardmax, CumSum,
OneHot, Trilu, Einsum."""

import numpy as np

from . import layout as L
from .kernel import Kernel
from .ops import _normalize_axis, op


def _scatter(ctx):
    """f(data, where, updates): a copy of data with data[where] replaced by updates, or reduced
    with them (ScatterND's and ScatterElements' `reduction`: add, mul, max, min)."""
    reduction = ctx.attr("reduction", "none")
    ufunc = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}.get(reduction)
    if reduction != "none" and ufunc is None:
        raise ctx.fail(f"reduction '{reduction}' (supported: none, add, mul, max, min)")

    def scatter(data, where, updates):
        y = data.copy()
        if ufunc is None:
            y[where] = updates
        else:
            ufunc.at(y, where, updates)  # unbuffered: repeated indices all apply
        return y

    return scatter


@op("ScatterND")
def build_scatter_nd(ctx):
    """data with the slices that indices name replaced (or reduced: add, mul, max, min) by
    updates — YOLOv5's exported Detect layer writes its box coordinates this way."""
    scatter = _scatter(ctx)

    def run(data, indices, updates):
        k = indices.shape[-1]
        where = tuple(indices.reshape(-1, k).T.astype(np.intp))
        return scatter(data, where, updates.reshape((where[0].size if k else 1,) + data.shape[k:]))

    return Kernel(run, [L.PLAIN] * 3, [L.PLAIN])


@op("Hardmax")
def build_hardmax(ctx):
    """1 at the first largest element along `axis` (opset 13; before, of the 2-D coercion)."""
    rank = len(ctx.in_shape(0))
    axis = _normalize_axis(ctx.attr("axis", -1 if ctx.opset >= 13 else 1), rank)

    def run(x):
        shape = x.shape
        z = x if ctx.opset >= 13 else x.reshape(int(np.prod(shape[:axis], dtype=np.int64)), -1)
        along = axis if ctx.opset >= 13 else 1
        y = np.zeros_like(z)
        np.put_along_axis(y, np.expand_dims(np.argmax(z, axis=along), along), 1, axis=along)
        return y.reshape(shape)

    return Kernel(run, [L.PLAIN], [L.PLAIN])


@op("CumSum")
def build_cumsum(ctx):
    axis = int(np.asarray(ctx.require_const(1, "CumSum's axis")).reshape(-1)[0])
    exclusive, reverse = ctx.attr("exclusive", 0), ctx.attr("reverse", 0)

    def run(x, _):
        z = np.flip(x, axis) if reverse else x
        y = np.cumsum(z, axis=axis, dtype=x.dtype)
        if exclusive:
            y = np.concatenate([np.zeros_like(np.take(y, [0], axis=axis)),
                                np.delete(y, -1, axis=axis)], axis=axis)
        return np.flip(y, axis) if reverse else y

    return Kernel(run, [L.PLAIN, L.ANY], [L.PLAIN])


@op("GatherElements")
def build_gather_elements(ctx):
    axis = ctx.attr("axis", 0)

    def run(x, indices):
        indices = np.where(indices < 0, indices + x.shape[axis], indices)
        return np.take_along_axis(x, indices.astype(np.intp), axis=axis)

    return Kernel(run, [L.PLAIN, L.PLAIN], [L.PLAIN])


@op("TopK")
def build_topk(ctx):
    """The k largest (or smallest) along `axis` and their indices, ties to the lower index; k
    a constant (it sets the output shape)."""
    k = ctx.require_const(1, "TopK's k") if ctx.opset >= 10 else np.array(ctx.attr("k"))
    k = int(np.asarray(k).reshape(-1)[0])
    axis, largest = ctx.attr("axis", -1), ctx.attr("largest", 1)
    if not ctx.attr("sorted", 1):
        raise ctx.fail("sorted=0 (supported: 1)")

    def run(x, *_):
        if largest:  # descending, ties to the lower index: ascending over x reversed, reversed
            n = x.shape[axis]
            order = n - 1 - np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
        else:
            order = np.argsort(x, axis=axis, kind="stable")
        indices = np.take(order, np.arange(k), axis=axis)
        return np.take_along_axis(x, indices, axis=axis), indices.astype(np.int64)

    return Kernel(run, [L.PLAIN] * len(ctx.node.inputs), [L.PLAIN, L.PLAIN])


@op("Einsum")
def build_einsum(ctx):
    equation = ctx.attr("equation")
    equation = equation.decode() if isinstance(equation, bytes) else equation
    equation = equation.replace(" ", "")

    def run(*xs):
        dtype = xs[0].dtype
        if dtype.kind == "V":  # bfloat16 and the 8-bit floats: numpy's einsum has no loop
            return np.einsum(equation, *(x.astype(np.float32) for x in xs)).astype(dtype)
        return np.einsum(equation, *xs)

    return Kernel(run, [L.PLAIN] * len(ctx.node.inputs), [L.PLAIN])


@op("Trilu")
def build_trilu(ctx):
    upper = ctx.attr("upper", 1)
    k = int(np.asarray(ctx.require_const(1, "Trilu's k")).reshape(-1)[0]) if ctx.has_input(1) \
        else 0
    return Kernel(lambda x, *_: np.triu(x, k) if upper else np.tril(x, k),
                  [L.PLAIN] * len(ctx.node.inputs), [L.PLAIN])


@op("OneHot")
def build_one_hot(ctx):
    depth = int(np.asarray(ctx.require_const(1, "OneHot's depth")).reshape(-1)[0])
    axis = ctx.attr("axis", -1)

    def run(indices, _, values):
        rank = indices.ndim + 1
        where = _normalize_axis(axis, rank)
        indices = np.where(indices < 0, indices + depth, indices).astype(np.int64)
        hot = np.expand_dims(indices, where) == np.arange(depth).reshape(
            [depth if i == where else 1 for i in range(rank)])
        return np.where(hot, values[1], values[0]).astype(values.dtype)

    return Kernel(run, [L.PLAIN] * 3, [L.PLAIN])


@op("GatherND")
def build_gather_nd(ctx):
    batch_dims = ctx.attr("batch_dims", 0)

    def run(data, indices):
        indices = indices.astype(np.intp)
        batch = data.shape[:batch_dims]
        k = indices.shape[-1]
        flat_data = data.reshape((-1,) + data.shape[batch_dims:])
        flat_indices = indices.reshape((int(np.prod(batch, dtype=np.int64)), -1, k))
        out = [d[tuple(i.T)] for d, i in zip(flat_data, flat_indices)]
        return np.stack(out).reshape(indices.shape[:-1] + data.shape[batch_dims + k:])

    return Kernel(run, [L.PLAIN] * 2, [L.PLAIN])


@op("ScatterElements", "Scatter")
def build_scatter_elements(ctx):
    axis = ctx.attr("axis", 0)
    scatter = _scatter(ctx)

    def run(data, indices, updates):
        where = _normalize_axis(axis, data.ndim)
        indices = np.where(indices < 0, indices + data.shape[where], indices).astype(np.intp)
        grid = list(np.indices(indices.shape, sparse=True))
        grid[where] = indices
        return scatter(data, tuple(grid), updates)

    return Kernel(run, [L.PLAIN] * 3, [L.PLAIN])
