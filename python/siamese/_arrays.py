# SPDX-License-Identifier: MIT
"""NumPy arrays to the float buffers the C calls take, without a copy where the layout allows.

Images at the C API are float32, C x H x W per image, N images contiguous, values in [0, 1].
Here a batch may be (N, H, W) for one-channel models or (N, C, H, W); one image (H, W) or
(C, H, W). A C-contiguous float32 array is passed by pointer as it is; uint8 is scaled by
1/255 in float32 (as the library turns its 8-bit pixels into floats: v / 255.0f); any other
dtype or layout is converted once (one copy).
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from .errors import InvalidArgumentError, ShapeError

Shape = Tuple[int, int, int]  # (C, H, W)


def floats(x: Any, name: str) -> np.ndarray:
    """x as a C-contiguous float32 array: no copy when it is one (uint8 scaled by 1/255)."""
    a = np.asarray(x)
    if a.dtype == np.uint8:
        return np.divide(a, np.float32(255.0), dtype=np.float32)
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        if a.dtype.kind not in "fiub":
            raise InvalidArgumentError(f"{name}: expected numbers, got an array of {a.dtype}",
                                       function=name)
        a = np.ascontiguousarray(a, dtype=np.float32)
    return a


def batch(x: Any, shape: Shape, name: str) -> Tuple[np.ndarray, int]:
    """A batch of images of `shape` (N, C, H, W) or, for C = 1, (N, H, W): (floats, N)."""
    a = floats(x, name)
    c, h, w = shape
    if a.ndim == 4 and a.shape[1:] == (c, h, w):
        return a, a.shape[0]
    if c == 1 and a.ndim == 3 and a.shape[1:] == (h, w):
        return a, a.shape[0]
    want = f"(N, {h}, {w}) or (N, 1, {h}, {w})" if c == 1 else f"(N, {c}, {h}, {w})"
    raise ShapeError(f"{name}: images of shape {a.shape}, the model takes {want}",
                     function=name)


def image(x: Any, shape: Shape, name: str) -> np.ndarray:
    """One image of `shape`: (C, H, W), or (H, W) for C = 1."""
    a = floats(x, name)
    c, h, w = shape
    if a.shape == (c, h, w) or (c == 1 and a.shape == (h, w)):
        return a
    want = f"({h}, {w})" if c == 1 else f"({c}, {h}, {w})"
    raise ShapeError(f"{name}: an image of shape {a.shape}, the model takes {want}",
                     function=name)


def vectors(x: Any, dim: int, name: str) -> Tuple[np.ndarray, int]:
    """(N, dim) float32 rows (feature vectors), or one vector (dim,)."""
    a = floats(x, name)
    if a.ndim == 1 and a.shape[0] == dim:
        return a, 1
    if a.ndim == 2 and a.shape[1] == dim:
        return a, a.shape[0]
    raise ShapeError(f"{name}: vectors of shape {a.shape}, expected (N, {dim})", function=name)


def ptr(a: np.ndarray) -> int:
    """The data pointer of an array to pass to C."""
    return a.ctypes.data


def out(shape: Any, given: Any, name: str) -> np.ndarray:
    """An output array: `given` when it is a C-contiguous float32 array of `shape`, else new."""
    if given is None:
        return np.empty(shape, dtype=np.float32)
    if (not isinstance(given, np.ndarray) or given.dtype != np.float32 or
            not given.flags.c_contiguous or not given.flags.writeable or
            given.shape != tuple(np.atleast_1d(shape))):
        raise InvalidArgumentError(f"{name}: out= must be a writeable C-contiguous float32 "
                                   f"array of shape {tuple(np.atleast_1d(shape))}",
                                   function=name)
    return given
