"""convkit.onnx: run ONNX CNN graphs with every Conv, ConvTranspose and pooling node on convkit.

    model = convkit.onnx.load("model.onnx", input_shapes={"images": (1, 3, 320, 320)})
    y, = model.run({"images": x_nchw})     # the graph outputs, in graph order, ONNX layout
    y = model(x_nchw)                        # the same for a one-input, one-output graph

At load, for the fixed input shapes: constant and shape subgraphs are folded; BatchNormalization
is folded into the preceding convolution; each convolution is fused with its activation and a
following residual Add; one convkit layer is created per Conv / ConvTranspose / MaxPool /
AveragePool / GlobalAveragePool / GlobalMaxPool node. Activations stay NHWC inside (one transpose
per graph input and output); the other ops run in numpy with their axes remapped. An op or
attribute outside the supported set raises UnsupportedError (a convkit.Error) naming the node,
never a wrong answer. Needs the `onnx` package (pip install convkit[onnx]).
"""

import os

from . import indexing as _indexing  # noqa: F401  (registers gathers, scatters, TopK, ...)
from . import layers as _layers  # noqa: F401  (registers the convkit ops)
from . import norms as _norms  # noqa: F401  (registers the normalisations)
from . import resize as _resize  # noqa: F401  (registers Resize, Upsample and GridSample)
from .errors import UnsupportedError
from .graph import from_onnx
from .infer import infer
from .ops import BUILDERS
from .rewrite import prepare
from .runner import Model

__all__ = ["Model", "UnsupportedError", "load", "supported_ops"]


def supported_ops():
    """The ONNX op types convkit.onnx runs (default domain)."""
    return sorted(BUILDERS)


def load(model, input_shapes=None, backend=None, threads=None, fuse=True, reuse_buffers=True,
         fpmath="strict", flush_denormals=True):
    """A Model ready to run.

    model: a path to an .onnx file or an onnx.ModelProto. input_shapes: {input name: shape}, the
    shapes every run will use (needed for inputs with dynamic dims). backend: None
    ($CONVKIT_BACKEND or "auto"), "auto" or one of convkit.backends(), for every layer.
    threads: convkit's thread count (convkit.set_num_threads) for the runs, None to leave it.
    fuse: False keeps activations and residual adds as separate numpy steps (for checking).
    reuse_buffers: each layer writes the same array every run (no allocation, no page faults);
    the outputs returned are copies. A Model's run() is then not reentrant: use one Model per
    thread (False: fresh arrays every run, concurrent runs allowed).
    fpmath: "strict" (fp32) or "bf16": every convolution (and Gemm/MatMul run as one) may round
    its x and w to bf16 and multiply with fp32 accumulation (convkit.conv2d's fpmath).
    flush_denormals: True (the default) runs the layers and the C++ glue with denormals flushed to
    zero (convkit.set_flush_denormals, set for each run and restored after it), as TensorFlow does
    on CPUs and OpenVINO's denormals optimisation: activations such as silu and softmax give a
    few denormals per layer, and on CPUs that take a microcode assist per denormal operand
    (Intel's) each of the next layer's multiply-adds that reads one costs ~100 cycles (a
    YOLOv8n-style net ran 1.3x slower end to end). The outputs move by less than 1e-37. False
    keeps IEEE results throughout.
    """
    import onnx

    if fpmath not in ("strict", "bf16"):
        raise ValueError(f"fpmath: expected 'strict' or 'bf16', given {fpmath!r}")
    if isinstance(model, (str, os.PathLike)):
        model = onnx.load(os.fspath(model))
    elif isinstance(model, bytes):
        model = onnx.load_from_string(model)
    elif not isinstance(model, onnx.ModelProto):
        raise TypeError(f"model: expected a path or an onnx.ModelProto, given {type(model)}")
    graph = from_onnx(model, input_shapes)
    infer(graph)
    prepare(graph, fuse=fuse)
    return Model(graph, backend=backend, threads=threads, reuse_buffers=reuse_buffers,
                 fpmath=fpmath, flush_denormals=flush_denormals)
