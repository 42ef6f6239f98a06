"""convkit: 2-D convolution and pooling layers (NHWC, float32) on a choice of C++ backends.

Three ways in, all computing in C++ with the GIL released:

- plans, the fast path for a layer used more than once: Conv2d, Conv2dTranspose, Pool2d,
  Conv2dBackward, Pool2dBackward. Created once for an input shape (x_shape=) with the one-shot functions' keyword
  arguments, they validate, choose the implementation and pack the weights once; run(x, out=None)
  (also plan(x)) reads numpy arrays and any DLPack producer (torch CPU tensors, JAX arrays) in
  place when they are float32 C-ordered, and writes into `out` when given. Properties: impl
  ("backend:variant:isa"), x_shape, y_shape;
- the one-shot functions, convenient and slower (each call validates, chooses, packs the weights
  and allocates its outputs): conv2d, conv2d_backward, conv2d_transpose, pool2d, pool2d_backward,
  zero_pad, and backends(), set_num_threads, num_threads, set_flush_denormals, flush_denormals;
- the functions of the numpy assignment "Convolutional Neural Networks: Step by Step", with the
  same names, arguments and results: zero_pad, conv_single_step, conv_forward, conv_backward,
  pool_forward, pool_backward, create_mask_from_window, distribute_value.

Arrays in may be float32 or float64 (or any real dtype), of any strides; they are converted to
dense float32 (one copy per call) when they are not already. Arrays out are float32 numpy arrays,
which torch.from_dlpack and numpy.from_dlpack take without a copy. Every function
takes `backend=None`: None uses $CONVKIT_BACKEND, or "auto" when it is unset; "auto" picks the
fastest backend built in; otherwise a name from backends(). Bad input raises convkit.Error (a
ValueError) with the C++ library's message and a `code`.

Unlike the assignment's create_mask_from_window, max pooling's backward gives the whole gradient to
the first maximal element of a window (row-major), as PyTorch and oneDNN do, not to every tied one.
"""

from ._convkit import (
    Conv2d,
    Conv2dBackward,
    Conv2dTranspose,
    Error,
    Pool2d,
    Pool2dBackward,
    __version__,
    backends,
    conv2d,
    conv2d_backward,
    conv2d_transpose,
    flush_denormals,
    num_threads,
    pool2d,
    pool2d_backward,
    set_flush_denormals,
    set_num_threads,
)
from ._seed import (
    conv_backward,
    conv_forward,
    conv_single_step,
    create_mask_from_window,
    distribute_value,
    pool_backward,
    pool_forward,
    zero_pad,
)

__all__ = [
    "__version__",
    "Conv2d",
    "Conv2dBackward",
    "Conv2dTranspose",
    "Error",
    "Pool2d",
    "Pool2dBackward",
    "backends",
    "conv2d",
    "conv2d_backward",
    "conv2d_transpose",
    "conv_backward",
    "conv_forward",
    "conv_single_step",
    "create_mask_from_window",
    "distribute_value",
    "flush_denormals",
    "num_threads",
    "pool2d",
    "pool2d_backward",
    "pool_backward",
    "pool_forward",
    "set_flush_denormals",
    "set_num_threads",
    "zero_pad",
]
