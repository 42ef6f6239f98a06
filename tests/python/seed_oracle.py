"""The oracle: the seed assignment's functions in float64 numpy, made stride-aware, plus a
vectorized reference for what the full API adds (asymmetric padding, dilation, groups, ReLU,
padded / ceil-mode pooling, count_include_pad).

Where the seed is known to be wrong or ambiguous, the oracle follows convkit's contract
(DESIGN §4): pool_backward honours the stride; unpadding uses explicit ends (the seed's
[pad:-pad] is empty when pad is 0); the max mask marks only the first maximal element of a window
(row-major, the first NaN if any), where the seed's (x == max(x)) marks every tied element.
"""

import numpy as np

# ---- The seed's functions, loop for loop. ----


def zero_pad(X, pad):
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="constant", constant_values=0)


def conv_single_step(a_slice_prev, W, b):
    return np.sum(a_slice_prev * W) + float(np.asarray(b).reshape(-1)[0])


def conv_forward(A_prev, W, b, hparameters):
    m, n_H_prev, n_W_prev, _ = A_prev.shape
    f, _, _, n_C = W.shape
    stride, pad = hparameters["stride"], hparameters["pad"]
    n_H = (n_H_prev - f + 2 * pad) // stride + 1
    n_W = (n_W_prev - f + 2 * pad) // stride + 1
    Z = np.zeros((m, n_H, n_W, n_C))
    A_prev_pad = zero_pad(A_prev, pad)
    for i in range(m):
        for h in range(n_H):
            vert_start = h * stride
            for w in range(n_W):
                horiz_start = w * stride
                a_slice_prev = A_prev_pad[
                    i, vert_start : vert_start + f, horiz_start : horiz_start + f, :
                ]
                for c in range(n_C):
                    Z[i, h, w, c] = conv_single_step(a_slice_prev, W[..., c], b[..., c])
    return Z


def conv_backward(dZ, A_prev, W, hparameters):
    m, n_H_prev, n_W_prev, _ = A_prev.shape
    f, _, _, n_C = W.shape
    stride, pad = hparameters["stride"], hparameters["pad"]
    _, n_H, n_W, _ = dZ.shape
    dW = np.zeros(W.shape)
    db = np.zeros((1, 1, 1, n_C))
    A_prev_pad = zero_pad(A_prev, pad)
    dA_prev_pad = np.zeros(A_prev_pad.shape)
    for i in range(m):
        for h in range(n_H):
            vert_start = h * stride
            for w in range(n_W):
                horiz_start = w * stride
                window = (i, slice(vert_start, vert_start + f), slice(horiz_start, horiz_start + f))
                a_slice = A_prev_pad[window]
                for c in range(n_C):
                    dA_prev_pad[window] += W[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += a_slice * dZ[i, h, w, c]
                    db[:, :, :, c] += dZ[i, h, w, c]
    dA_prev = dA_prev_pad[:, pad : pad + n_H_prev, pad : pad + n_W_prev, :]
    return dA_prev, dW, db


def create_mask_from_window(x):
    """True at the first maximal element in row-major order (np.argmax; the first NaN if any)."""
    mask = np.zeros(x.shape, dtype=bool)
    mask.flat[np.argmax(x)] = True
    return mask


def distribute_value(dz, shape):
    n_H, n_W = shape
    return np.full(shape, dz / (n_H * n_W))


def pool_forward(A_prev, hparameters, mode="max"):
    m, n_H_prev, n_W_prev, n_C = A_prev.shape
    f, stride = hparameters["f"], hparameters["stride"]
    n_H = (n_H_prev - f) // stride + 1
    n_W = (n_W_prev - f) // stride + 1
    A = np.zeros((m, n_H, n_W, n_C))
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    a_prev_slice = A_prev[i, vs : vs + f, hs : hs + f, c]
                    A[i, h, w, c] = np.max(a_prev_slice) if mode == "max" else np.mean(a_prev_slice)
    return A


def pool_backward(dA, A_prev, hparameters, mode="max"):
    f, stride = hparameters["f"], hparameters["stride"]
    m, n_H, n_W, n_C = dA.shape
    dA_prev = np.zeros(A_prev.shape)
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    window = (i, slice(vs, vs + f), slice(hs, hs + f), c)
                    if mode == "max":
                        mask = create_mask_from_window(A_prev[window])
                        dA_prev[window] += mask * dA[i, h, w, c]
                    else:
                        dA_prev[window] += distribute_value(dA[i, h, w, c], (f, f))
    return dA_prev


# ---- The full API's parameters, vectorized over the batch and channels. ----


def pads4(padding):
    if np.ndim(padding) == 0:
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def pair(value):
    return (value, value) if np.ndim(value) == 0 else tuple(value)


def _taps(extent_out, stride, tap, dilation):
    """The input rows (of the padded input) tap `tap` reads for every output row."""
    start = tap * dilation
    return slice(start, start + (extent_out - 1) * stride + 1, stride)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, activation=None):
    n, ih, iw, ic = x.shape
    kh, kw, icg, oc = w.shape
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    top, bottom, left, right = pads4(padding)
    oh = (ih + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (iw + left + right - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    y = np.zeros((n, oh, ow, oc))
    ocg = oc // groups
    for g in range(groups):
        xi, yo = slice(g * icg, (g + 1) * icg), slice(g * ocg, (g + 1) * ocg)
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, _taps(oh, sh, i, dh), _taps(ow, sw, j, dw), xi]
                y[..., yo] += patch @ w[i, j, :, yo].astype(np.float64)
    if b is not None:
        y += np.asarray(b, np.float64).reshape(-1)
    if activation == "relu":
        y = np.maximum(y, 0)
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1):
    n, ih, iw, ic = x.shape
    kh, kw, icg, oc = w.shape
    _, oh, ow, _ = dy.shape
    (sh, sw), (dh, dw_) = pair(stride), pair(dilation)
    top, bottom, left, right = pads4(padding)
    xp = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    dxp = np.zeros(xp.shape)
    dw = np.zeros(w.shape)
    dy = dy.astype(np.float64)
    ocg = oc // groups
    for g in range(groups):
        xi, yo = slice(g * icg, (g + 1) * icg), slice(g * ocg, (g + 1) * ocg)
        for i in range(kh):
            for j in range(kw):
                rows, cols = _taps(oh, sh, i, dh), _taps(ow, sw, j, dw_)
                dxp[:, rows, cols, xi] += dy[..., yo] @ w[i, j, :, yo].astype(np.float64).T
                dw[i, j, :, yo] = np.tensordot(xp[:, rows, cols, xi], dy[..., yo],
                                               ([0, 1, 2], [0, 1, 2]))
    dx = dxp[:, top : top + ih, left : left + iw, :]
    return dx, dw, dy.sum(axis=(0, 1, 2))


def pool_extent(extent, window, stride, before, after, ceil_mode):
    """PyTorch's output size: with ceil_mode, a last window starting past the input and its
    leading pad is dropped."""
    span = extent + before + after - window
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= extent + before:
        out -= 1
    return out


def _pool_windows(x_shape, window, stride, padding, ceil_mode):
    """For every output (oh, ow): the input rows and columns its window covers, clipped to the
    input, and its size clipped to the padded input."""
    _, ih, iw, _ = x_shape
    (kh, kw), (sh, sw) = pair(window), pair(stride if stride is not None else window)
    top, bottom, left, right = pads4(padding)
    oh = pool_extent(ih, kh, sh, top, bottom, ceil_mode)
    ow = pool_extent(iw, kw, sw, left, right, ceil_mode)
    for r in range(oh):
        h0 = r * sh - top
        h_in = slice(max(h0, 0), min(h0 + kh, ih))
        h_padded = min(h0 + kh, ih + bottom) - h0
        for c in range(ow):
            w0 = c * sw - left
            w_in = slice(max(w0, 0), min(w0 + kw, iw))
            w_padded = min(w0 + kw, iw + right) - w0
            yield r, c, h_in, w_in, h_padded * w_padded


def pool2d(x, window, stride=None, padding=0, mode="max", ceil_mode=False, count_include_pad=False):
    x = x.astype(np.float64)
    windows = list(_pool_windows(x.shape, window, stride, padding, ceil_mode))
    oh, ow = windows[-1][0] + 1, windows[-1][1] + 1
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for r, c, rows, cols, padded_count in windows:
        block = x[:, rows, cols, :]
        if mode == "max":
            y[:, r, c, :] = block.max(axis=(1, 2))  # NaN propagates
        else:
            count = padded_count if count_include_pad else block.shape[1] * block.shape[2]
            y[:, r, c, :] = block.sum(axis=(1, 2)) / count
    return y


def pool2d_backward(dy, x, window, stride=None, padding=0, mode="max", ceil_mode=False,
                    count_include_pad=False):
    x = x.astype(np.float64)
    dy = dy.astype(np.float64)
    dx = np.zeros(x.shape)
    n, _, _, ch = x.shape
    windows = _pool_windows(x.shape, window, stride, padding, ceil_mode)
    for r, c, rows, cols, padded_count in windows:
        block = x[:, rows, cols, :]
        bh, bw = block.shape[1], block.shape[2]
        if mode == "max":
            first = np.argmax(block.reshape(n, bh * bw, ch), axis=1)  # first max, or first NaN
            for i in range(n):
                for k in range(ch):
                    dh, dw = divmod(first[i, k], bw)
                    dx[i, rows.start + dh, cols.start + dw, k] += dy[i, r, c, k]
        else:
            count = padded_count if count_include_pad else bh * bw
            dx[:, rows, cols, :] += (dy[:, r, c, :] / count)[:, None, None, :]
    return dx
