"""What an op builder sees (Context) and what it returns (Kernel)."""

import dataclasses

from . import layout as L
from .errors import unsupported


@dataclasses.dataclass
class Kernel:
    """One step of a model: fn(*inputs) -> output array or tuple of arrays.

    in_layouts[i] is the layout fn wants input i in (layout.ANY: as it is); the runner converts
    (constants once at build, runtime tensors by a transpose step). out_layouts[j] is output j's
    layout (ANY: that of the first runtime input). Absent optional inputs arrive as None.
    `layer` is the convkit layer adapter the step runs, if any (for profiles). `output`: an
    object whose `out` attribute is the array fn writes its output into when that array has the
    output's shape (ops._Output, layout.Converter), so that the runner may place it in memory
    shared with other steps. `fresh`: fn never returns a view of an input (numpy's arithmetic,
    convkit's loops), so the runner may reuse its inputs' memory once they are read.
    """

    fn: object
    in_layouts: list
    out_layouts: list
    layer: object = None
    output: object = None
    fresh: bool = False  # fn returns output's array or a new one, never a view of an input


class Context:
    """A node with what is known about its inputs and outputs when its kernel is built."""

    def __init__(self, node, graph, in_layouts, backend=None, reuse_buffers=False,
                 fpmath="strict"):
        self.node = node
        self.graph = graph
        self.in_layouts = in_layouts
        self.backend = backend
        self.fpmath = fpmath  # the convolutions' (convkit.conv2d's fpmath)
        self.reuse_buffers = reuse_buffers  # layers may write one array per run (runner.Model)

    @property
    def opset(self):
        return self.graph.opset

    def attr(self, key, default=None):
        return self.node.attrs.get(key, default)

    def has_input(self, i):
        return i < len(self.node.inputs) and self.node.inputs[i] != ""

    def const(self, i):
        """Input i's value if it is a constant, else None (also None when absent)."""
        return self.graph.consts.get(self.node.inputs[i]) if self.has_input(i) else None

    def require_const(self, i, what):
        if not self.has_input(i):
            return None
        value = self.const(i)
        if value is None:
            raise unsupported(self.node, f"{what} (input {i}, '{self.node.inputs[i]}') must be a "
                              "constant once input shapes are fixed; it is computed at run time")
        return value

    def in_shape(self, i):
        return self.graph.shapes[self.node.inputs[i]]

    def is_runtime(self, i):
        return self.has_input(i) and self.node.inputs[i] not in self.graph.consts

    @property
    def runtime_nhwc(self):
        """Whether some runtime input is NHWC (so a layout-following op may stay NHWC)."""
        return any(self.is_runtime(i) and self.in_layouts[i] == L.NHWC
                   for i in range(len(self.node.inputs)))

    def fail(self, what):
        return unsupported(self.node, what)
