"""Layouts of the tensors inside a running model.

Every tensor has its logical (ONNX) shape and a physical layout:
- PLAIN: the numpy array is the logical tensor;
- NHWC: a 4-D logical tensor (N, C, H, W) stored as array.transpose(0, 2, 3, 1), convkit's layout.
Convolution and pooling outputs are NHWC; glue ops keep NHWC where their semantics allow (with
axes remapped) and ask for PLAIN where they do not (e.g. Reshape of a tensor with C > 1 and
H * W > 1, whose result depends on NCHW element order).
"""

import numpy as np

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


def to_nhwc(array):
    """The NHWC array of a logical tensor of rank <= 4 (lower ranks broadcast as numpy does)."""
    return np.ascontiguousarray(expand_to_4d(array).transpose(TO_NHWC))


def to_plain(array):
    """The logical (NCHW) tensor of an NHWC array."""
    return np.ascontiguousarray(array.transpose(FROM_NHWC))


def same_order(shape):
    """Whether a 4-D logical tensor has the same element order in NHWC as in NCHW (C == 1 or
    H * W == 1), so that reshaping its NHWC array gives the NCHW-order result."""
    return len(shape) == 4 and (shape[1] == 1 or shape[2] * shape[3] == 1)


def convert(array, have, want):
    """`array`, physically in layout `have`, in layout `want`."""
    if have == want or want == ANY:
        return array
    if want == NHWC:
        return to_nhwc(array)
    return to_plain(array)
