"""Layouts of the tensors inside a running model.

Every tensor has its logical (ONNX) shape and a physical layout:
- PLAIN: the numpy array is the logical tensor;
- NHWC: a 4-D logical tensor (N, C, H, W) stored as array.transpose(0, 2, 3, 1), convkit's layout.
Convolution and pooling outputs are NHWC; glue ops keep NHWC where their semantics allow (with
axes remapped) and ask for PLAIN where they do not (e.g. Reshape of a tensor with C > 1 and
H * W > 1, whose result depends on NCHW element order).
"""

import numpy as np

from .. import _convkit as ck

PLAIN = "plain"
NHWC = "nhwc"
ANY = "any"  # a kernel that works on either layout (elementwise); its output takes the input's

# Physical axis i of an NHWC array holds logical axis TO_NHWC[i]; logical axis a lives at
# physical axis FROM_NHWC[a].
TO_NHWC = (0, 2, 3, 1)
FROM_NHWC = (0, 3, 1, 2)


def physical_axis(axis, rank, layout):
    """The physical axis of logical `axis` (negative allowed) of a tensor of `rank`."""
    axis = axis + rank if axis < 0 else axis
    return FROM_NHWC[axis] if layout == NHWC else axis


def physical_shape(shape, layout):
    return tuple(shape[a] for a in TO_NHWC) if layout == NHWC else tuple(shape)


def expand_to_4d(array):
    """`array` with leading axes of 1 up to rank 4 (numpy broadcasting's alignment)."""
    if array.ndim > 4:
        raise ValueError(f"cannot lay out a rank-{array.ndim} tensor as NHWC")
    return array.reshape((1,) * (4 - array.ndim) + array.shape)


def aligned_empty(shape, dtype=np.float32, alignment=64):
    """np.empty(shape, dtype) starting on an `alignment`-byte boundary: numpy aligns to 16 bytes,
    and convkit's vector loads and stores of NHWC rows that straddle cache lines run up to 30 %
    slower (a 5x5 depthwise layer at 160x160x64: 218 -> 283 us)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(count * dtype.itemsize + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def _swap_last_two(array, out):
    """array (B, R, C) as a C-ordered (B, C, R) array, written into `out` when it is a C-ordered
    array of that shape and array's dtype (else a new one): convkit's tiled copy for dense
    float32 (numpy's is up to 4x slower on the shapes of a model's inputs and outputs), numpy's
    copy for other arrays."""
    shape = (array.shape[0], array.shape[2], array.shape[1])
    fits = (out is not None and out.shape == shape and out.dtype == array.dtype
            and out.flags.c_contiguous)
    if array.dtype == np.float32 and array.flags.c_contiguous:
        if not fits:
            out = aligned_empty(shape)
        ck._transpose_last_two(array, out)
        return out
    if fits:
        out[...] = array.transpose(0, 2, 1)
        return out
    return np.ascontiguousarray(array.transpose(0, 2, 1))


def to_nhwc(array, out=None):
    """The NHWC array of a logical tensor of rank <= 4 (lower ranks broadcast as numpy does),
    written into `out` (a C-ordered array of the result's shape) when it fits."""
    array = expand_to_4d(array)
    n, c, h, w = array.shape
    by_rows = array.transpose(0, 2, 1, 3)
    if not array.flags.c_contiguous and by_rows.flags.c_contiguous:
        # Stored (N, H, C, W), as a softmax over a transposed view leaves YOLOv8's box bins: a
        # transpose of C and W per row, not numpy's reordering copy and a transpose.
        out = None if out is None else out.reshape(n * h, w, c)
        return _swap_last_two(by_rows.reshape(n * h, c, w), out).reshape(n, h, w, c)
    out = None if out is None else out.reshape(n, h * w, c)
    return _swap_last_two(array.reshape(n, c, h * w), out).reshape(n, h, w, c)


def to_plain(array, out=None):
    """The logical (NCHW) tensor of an NHWC array, written into `out` when it fits."""
    n, h, w, c = array.shape
    out = None if out is None else out.reshape(n, c, h * w)
    return _swap_last_two(array.reshape(n, h * w, c), out).reshape(n, c, h, w)


def same_order(shape):
    """Whether a 4-D logical tensor has the same element order in NHWC as in NCHW (C == 1 or
    H * W == 1), so that reshaping its NHWC array gives the NCHW-order result."""
    return len(shape) == 4 and (shape[1] == 1 or shape[2] * shape[3] == 1)


def convert(array, have, want, out=None):
    """`array`, physically in layout `have`, in layout `want` (written into `out`, an array of
    the result's shape, when the copy can be)."""
    if have == want or want == ANY:
        return array
    if want == NHWC:
        return to_nhwc(array, out)
    return to_plain(array, out)


class Converter:
    """convert(·, have, want) as a model step; with `reuse`, every run writes the same array,
    `out` (no allocation, no page faults: a model's input image costs twice as much converted into
    fresh memory), which the runner may place in memory shared between steps."""

    def __init__(self, have, want, reuse):
        self.have, self.want, self.reuse = have, want, reuse
        self.out = None

    def __call__(self, x):
        y = convert(x, self.have, self.want, self.out)
        if self.reuse:
            self.out = y
        return y

