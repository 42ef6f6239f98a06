"""The runnable model: a list of steps over slots, built once at load.

Each graph node becomes one step (its kernel); a tensor needed in another layout than it was
produced in gets one transpose step, shared by all its readers; constants are converted once, at
build. Slots are released after their last reader, so memory follows the live tensors.
"""

import contextlib
import dataclasses
import statistics
import time

import numpy as np

from .. import _convkit as ck
from . import layout as L
from .errors import UnsupportedError, node_error
from .infer import builder_for
from .kernel import Context


@dataclasses.dataclass
class Step:
    name: str
    op: str
    fn: object
    in_slots: list
    out_slots: list
    layer: object = None
    release: tuple = ()
    output: object = None  # Kernel.output: a glue step's own output array, as `out`
    fresh: bool = False  # Kernel.fresh: the step's output never views its inputs

    @property
    def is_convkit(self):
        return self.layer is not None and self.layer.uses_convkit


class Model:
    """An ONNX graph prepared for convkit (see convkit.onnx.load)."""

    def __init__(self, graph, backend=None, threads=None, reuse_buffers=True, fpmath="strict",
                 flush_denormals=True):
        self.graph = graph
        self.backend = backend
        self.fpmath = fpmath
        self.flush_denormals = flush_denormals
        self.threads = threads
        self.reuse_buffers = reuse_buffers
        if threads:
            ck.set_num_threads(threads)
        self._slots = {}  # (tensor name, layout) -> slot
        self._layouts = {}  # runtime tensor name -> the layout it is produced in
        self._base = []  # the slots' values before a run: constants set, the rest None
        self.steps = []
        self._input_slots = [self._new_slot((name, L.PLAIN)) for name in graph.inputs]
        for name in graph.inputs:
            self._layouts[name] = L.PLAIN
        for node in graph.nodes:
            self._add_node(node)
        self._output_slots = [self._slot(name, L.PLAIN) for name in graph.outputs]
        self._plan_release()
        if reuse_buffers:
            self._share_layer_buffers()

    # -- building ---------------------------------------------------------------------------------

    def _new_slot(self, key, value=None):
        self._slots[key] = len(self._base)
        self._base.append(value)
        return self._slots[key]

    def _slot(self, name, want):
        """The slot holding tensor `name` in layout `want`, adding a conversion if needed."""
        if name in self.graph.consts:
            want = L.PLAIN if want == L.ANY else want
            key = (name, want)
            if key not in self._slots:
                self._new_slot(key, L.convert(self.graph.consts[name], L.PLAIN, want))
            return self._slots[key]
        have = self._layouts[name]
        want = have if want == L.ANY else want
        key = (name, want)
        if key not in self._slots:
            source = self._slots[(name, have)]
            target = self._new_slot(key)
            convert = L.Converter(have, want, self.reuse_buffers)
            self.steps.append(Step(f"{name}->{want}", "LayoutTranspose", convert, [source],
                                   [target], output=self._own_output(convert, name, want)))
        return self._slots[key]

    def _add_node(self, node):
        layouts = [self._layouts.get(name, L.PLAIN) if name else L.PLAIN for name in node.inputs]
        ctx = Context(node, self.graph, layouts, self.backend, self.reuse_buffers, self.fpmath)
        try:
            kernel = builder_for(node)(ctx)
        except ck.Error as error:
            if isinstance(error, UnsupportedError):
                raise
            raise node_error(node.describe(), error) from error
        in_slots = [self._slot(name, want) if name else None
                    for name, want in zip(node.inputs, kernel.in_layouts)]
        runtime = [self._layouts[name] for name in node.inputs
                   if name and name not in self.graph.consts]
        first = runtime[0] if runtime else L.PLAIN
        out_slots = []
        for name, have in zip(node.outputs, kernel.out_layouts):
            have = first if have == L.ANY else have
            if name:
                self._layouts[name] = have
                out_slots.append(self._new_slot((name, have)))
            else:
                out_slots.append(None)
        output = None
        if kernel.output is not None and node.outputs and node.outputs[0]:
            output = self._own_output(kernel.output, node.outputs[0],
                                      self._layouts[node.outputs[0]])
        self.steps.append(Step(node.name, node.op, kernel.fn, in_slots, out_slots, kernel.layer,
                               output=output, fresh=kernel.fresh))

    def _own_output(self, holder, name, layout):
        """holder (Kernel.output) with its array made now, for _share_layer_buffers, when the
        step writes float32 tensor `name` in `layout` into it every run; else None."""
        if not self.reuse_buffers or self.graph.dtypes.get(name) != np.float32:
            return None
        shape = self.graph.shapes.get(name)
        if shape is None or (layout == L.NHWC and len(shape) != 4):
            return None
        holder.out = L.aligned_empty(L.physical_shape(shape, layout))
        return holder

    def _plan_release(self):
        last = {}
        for i, step in enumerate(self.steps):
            for slot in step.in_slots:
                if slot is not None:
                    last[slot] = i
        keep = set(self._output_slots) | {s for s, v in enumerate(self._base) if v is not None}
        release = {}
        for slot, i in last.items():
            if slot not in keep:
                release.setdefault(i, []).append(slot)
        for i, step in enumerate(self.steps):
            step.release = tuple(release.get(i, ()))

    def _share_layer_buffers(self):
        """Lets layers (and the glue steps that write arrays of their own: Concat, the layout
        transposes, the threaded elementwise ops, Resize ...) whose outputs are never alive at
        the same time write the same memory, as
        ONNX Runtime's and TFLite's arenas do: with one buffer per layer a network's outputs
        (tens of MB) leave the caches, and each layer's first writes miss; a buffer freed by the
        step before is usually still in L2. The most recently freed block is taken, whatever its
        size, and each block is then made as large as the largest output it holds: as few blocks
        as outputs are ever alive at once (MobileNetV2: 6 blocks, 11.7 MiB, when a block was
        taken only by outputs that fit it; 3, 8.0 MiB).

        A buffer stays busy until the last reader of every tensor that may view it: glue steps
        may return views of their inputs (Reshape, Split, Slice ...), so their outputs count as
        views of every buffer their inputs may view; graph outputs keep theirs for good."""
        last_use = {}
        for i, step in enumerate(self.steps):
            for slot in step.in_slots:
                if slot is not None:
                    last_use[slot] = i
        forever = len(self.steps)
        for slot in self._output_slots:
            last_use[slot] = forever
        views = {}  # slot -> the layer-buffer ids it may view
        owners = []  # buffer id -> (producing step index, layer or glue output holder)
        for i, step in enumerate(self.steps):
            viewed = set().union(*(views.get(s, set()) for s in step.in_slots if s is not None))
            if step.layer is not None and getattr(step.layer, "out", None) is not None:
                owners.append((i, step.layer))
                viewed = {len(owners) - 1}
            elif step.output is not None:
                # A glue step's own array; unless the step is `fresh` it may also return a view
                # of an input (a layout transpose of a tensor whose two layouts agree), so its
                # output counts as viewing those too (PP-OCRv6 tiny det's FPN, Resize -> Add
                # chains, kept 28 blocks busy that way: 84 MiB).
                owners.append((i, step.output))
                viewed = {len(owners) - 1} if step.fresh else viewed | {len(owners) - 1}
            for slot in step.out_slots:
                if slot is not None:
                    views[slot] = viewed
        busy_until = [i for i, _ in owners]
        for slot, ids in views.items():
            for b in ids:
                busy_until[b] = max(busy_until[b], last_use.get(slot, 0))
        blocks = []  # [size in floats, busy until step], sized once all are assigned
        assigned = []
        for b, (i, layer) in enumerate(owners):
            free = [blk for blk in blocks if blk[1] < i]
            if free:
                block = max(free, key=lambda blk: blk[1])  # the most recently freed
            else:
                block = [0, 0]
                blocks.append(block)
            block[0] = max(block[0], layer.out.size)
            block[1] = busy_until[b]
            assigned.append(block)
        memory = {id(block): L.aligned_empty(block[0]) for block in blocks}
        for (_, layer), block in zip(owners, assigned):
            layer.out = memory[id(block)][:layer.out.size].reshape(layer.out.shape)

    # -- running ----------------------------------------------------------------------------------

    def _feed(self, inputs):
        env = list(self._base)
        if not isinstance(inputs, dict):
            raise TypeError("inputs must be a dict {input name: array}")
        missing = [n for n in self.graph.inputs if n not in inputs]
        unknown = [n for n in inputs if n not in self.graph.inputs]
        if missing or unknown:
            raise ck.Error(f"inputs: expected {self.graph.inputs}, missing {missing}, unknown "
                           f"{unknown}")
        for name, slot in zip(self.graph.inputs, self._input_slots):
            x = np.asarray(inputs[name])
            want = self.graph.input_shapes[name]
            if tuple(x.shape) != tuple(want):
                raise ck.Error(f"input '{name}': expected shape {tuple(want)} (fixed at load), "
                               f"given {tuple(x.shape)}")
            env[slot] = x.astype(self.graph.input_dtypes[name], copy=False)
        return env

    def _step(self, step, env):
        args = [None if s is None else env[s] for s in step.in_slots]
        try:
            outputs = step.fn(*args)
        except ck.Error as error:
            raise node_error(f"node '{step.name}' ({step.op})", error) from error
        if not isinstance(outputs, tuple):
            env[step.out_slots[0]] = outputs
        else:
            for slot, y in zip(step.out_slots, outputs):
                if slot is not None:
                    env[slot] = y
        for slot in step.release:
            env[slot] = None

    @contextlib.contextmanager
    def _denormals(self):
        """convkit.set_flush_denormals(self.flush_denormals) for the block, then as before."""
        before = ck.flush_denormals()
        ck.set_flush_denormals(self.flush_denormals)
        try:
            yield
        finally:
            ck.set_flush_denormals(before)

    def run(self, inputs):
        """The graph outputs (a list in graph order, numpy arrays in ONNX layout) for
        inputs {name: array of the shape fixed at load}."""
        if self.threads:
            ck.set_num_threads(self.threads)
        env = self._feed(inputs)
        with self._denormals():
            for step in self.steps:
                self._step(step, env)
        # Copies: an output may be (a view of) a layer's reused array.
        return [np.array(env[s]) for s in self._output_slots]

    def __call__(self, x):
        """run() for a one-input graph: the output array, or the list of outputs if several."""
        if len(self.graph.inputs) != 1:
            raise ck.Error(f"model(x) needs a one-input graph; this one has inputs "
                           f"{self.graph.inputs}: use run()")
        outputs = self.run({self.graph.inputs[0]: x})
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def input_names(self):
        return list(self.graph.inputs)

    @property
    def output_names(self):
        return list(self.graph.outputs)

    def profile(self, inputs, repeats=10, alone=False):
        """Per-step median times over `repeats` runs: a list of dicts {name, op, ms, convkit,
        impl} in step order. With `alone`, each step also gets `alone_ms`: its median over
        `repeats` calls in a row on copies of its inputs, which then stay in cache with its
        weights (and, for numpy's glue, with the interpreter's and numpy's own state), as in a
        single-layer benchmark; inside the network they come from memory."""
        if self.threads:
            ck.set_num_threads(self.threads)
        times = [[] for _ in self.steps]
        with self._denormals():
            for _ in range(repeats):
                env = self._feed(inputs)
                for i, step in enumerate(self.steps):
                    start = time.perf_counter()
                    self._step(step, env)
                    times[i].append(time.perf_counter() - start)
        impls = implementation_names(self, inputs)
        profile = [dict(name=s.name, op=s.op, ms=1e3 * statistics.median(t), convkit=s.is_convkit,
                        impl=impls.get(i, "convkit" if s.is_convkit else "numpy"))
                   for i, (s, t) in enumerate(zip(self.steps, times))]
        if alone:
            for i, ms in self._alone_times(inputs, repeats).items():
                profile[i]["alone_ms"] = ms
        return profile

    def _alone_times(self, inputs, repeats):
        """{step index: median ms} of each step called `repeats` times in a row (after one
        call) on copies of the inputs it had in a run: the layers' arrays are shared between
        steps, so a later step may overwrite them."""
        args = {}
        medians = {}
        with self._denormals():
            env = self._feed(inputs)
            for i, step in enumerate(self.steps):
                args[i] = [None if s is None else np.array(env[s], copy=True)
                           if isinstance(env[s], np.ndarray) else env[s] for s in step.in_slots]
                self._step(step, env)
            for i, step_args in args.items():
                fn = self.steps[i].fn
                fn(*step_args)
                samples = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    fn(*step_args)
                    samples.append(time.perf_counter() - start)
                medians[i] = 1e3 * statistics.median(samples)
        return medians


def implementation_names(model, inputs):
    """{step index: "backend:variant:isa"} of the convkit steps, from plans when they say, else
    from one run under CONVKIT_VERBOSE=1 (one line per convkit call, in call order)."""
    names = {}
    pending = []
    for i, step in enumerate(model.steps):
        if not step.is_convkit:
            continue
        name = getattr(step.layer, "impl_name", None)
        if name:
            names[i] = name
        else:
            pending.append(i)
    if pending:
        from .verbose import capture_verbose

        lines = capture_verbose(lambda: model.run(inputs))
        calls = [line.split(",")[2] for line in lines if line.startswith("convkit_verbose,")]
        ordered = [i for i, s in enumerate(model.steps) if s.is_convkit]
        if len(calls) == len(ordered):
            names.update({i: calls[k] for k, i in enumerate(ordered) if i in pending})
    return names
