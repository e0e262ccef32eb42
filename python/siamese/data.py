# SPDX-License-Identifier: MIT
"""Datasets, pair sampling, PNG reading and resizing, distortions (siamese/data.h)."""
from __future__ import annotations

import ctypes
import os
from ctypes import byref, c_char_p, c_int, c_void_p
from typing import Any, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _arrays
from ._handles import Handle, check
from ._lib import F, DatasetOptionsC, c_path, c_text, text
from .errors import InvalidArgumentError

PathLike = Union[str, bytes, "os.PathLike[str]"]

SIZE_MAX = ctypes.c_size_t(-1).value
DISTORT_PARTS = {"rotate": 1, "shear": 2, "scale": 4, "shift": 8, "all": 15}


def distort_mask(parts: Union[int, bool, str, Iterable[str]]) -> int:
    """An OR of sm_distort_part from True/False, 15, "all", "rotate" or ["shear", "shift"]."""
    if isinstance(parts, bool):
        return 15 if parts else 0
    if isinstance(parts, (int, np.integer)):
        return int(parts)
    if isinstance(parts, str):
        parts = [parts]
    mask = 0
    for p in parts:
        if p not in DISTORT_PARTS:
            raise InvalidArgumentError(f"unknown distortion '{p}' ({', '.join(DISTORT_PARTS)})",
                                       function="distort")
        mask |= DISTORT_PARTS[p]
    return mask


def _names(names: Optional[Sequence[str]]) -> Tuple[Any, int]:
    if not names:
        return None, 0
    if isinstance(names, str):
        names = [names]
    arr = (c_char_p * len(names))(*[c_text(n) for n in names])
    return arr, len(names)


def _options(resize: bool, exclude: Optional[Sequence[str]]) -> Tuple[DatasetOptionsC, Any]:
    opts = DatasetOptionsC()
    opts.struct_size = ctypes.sizeof(DatasetOptionsC)
    opts.resize = int(bool(resize))
    arr, n = _names(exclude)
    if n:
        opts.exclude = arr
    opts.n_exclude = n
    return opts, arr  # arr: kept alive by the caller for the call


class Dataset(Handle):
    """Labelled greyscale images, decoded once, stored 8-bit.

    ``Dataset.open("images_background.zip")`` (a folder or zip laid out as Omniglot's),
    ``Dataset.synthetic(n_classes, per_class, h, w, seed)``, ``Dataset.create(h, w)`` then
    add_image. ``len(ds)`` images; ``ds[i]`` an image as an (H, W) float32 array.

    Threads: reading (images, counts, names, sampling from it, training and evaluating on it)
    from any number of threads; add_image modifies it: nothing may read it meanwhile.
    """

    def __init__(self) -> None:  # use the class methods
        raise TypeError("use Dataset.open, Dataset.synthetic or Dataset.create")

    @classmethod
    def _wrap(cls, ptr: int) -> "Dataset":
        d = cls.__new__(cls)
        d._own(d._resource("Dataset", ptr, F.sm_dataset_destroy))
        return d

    @classmethod
    def open(cls, path: PathLike, height: int = 105, width: int = 105, *,
             alphabets: Optional[Sequence[str]] = None, exclude: Optional[Sequence[str]] = None,
             resize: bool = False) -> "Dataset":
        """Opens ROOT/<Alphabet>/<character>/<image>.png from a folder or a .zip
        (sm_dataset_open_with). ``resize``: images of other sizes are resized once, at open;
        ``alphabets`` keeps only those, ``exclude`` leaves those out."""
        out = c_void_p()
        names, n = _names(alphabets)
        if resize or exclude:
            opts, keep = _options(resize, exclude)
            check(F.sm_dataset_open_with(c_path(path), height, width, names, n, byref(opts),
                                         byref(out)), "sm_dataset_open_with")
            del keep
        else:
            check(F.sm_dataset_open(c_path(path), height, width, names, n, byref(out)),
                  "sm_dataset_open")
        return cls._wrap(out.value)

    @classmethod
    def synthetic(cls, n_classes: int, per_class: int, height: int = 105, width: int = 105,
                  seed: int = 1) -> "Dataset":
        """Generated handwriting-like glyphs (sm_dataset_create_synthetic): image i is of class
        i // per_class; alphabets of 10 classes."""
        out = c_void_p()
        check(F.sm_dataset_create_synthetic(n_classes, per_class, height, width, seed,
                                            byref(out)), "sm_dataset_create_synthetic")
        return cls._wrap(out.value)

    @classmethod
    def create(cls, height: int, width: int) -> "Dataset":
        """An empty in-memory dataset (sm_dataset_create): add images with add_image."""
        out = c_void_p()
        check(F.sm_dataset_create(height, width, byref(out)), "sm_dataset_create")
        return cls._wrap(out.value)

    def add_image(self, label: str, pixels: Any) -> None:
        """Adds one (H, W) image (float in [0, 1] or uint8) under `label` ("Alphabet/char")."""
        h, w = self.image_size
        a = _arrays.image(pixels, (1, h, w), "add_image")
        with self._use() as (p,):
            check(F.sm_dataset_add_image(p, c_text(label), _arrays.ptr(a)),
                  "sm_dataset_add_image")

    def split_alphabets(self, n_val: int, seed: int = 1) -> Tuple["Dataset", "Dataset"]:
        """(train, val): `n_val` alphabets chosen by `seed` go to val
        (sm_dataset_split_alphabets). This dataset is only read."""
        tr, va = c_void_p(), c_void_p()
        with self._use() as (p,):
            check(F.sm_dataset_split_alphabets(p, n_val, seed, byref(tr), byref(va)),
                  "sm_dataset_split_alphabets")
        return Dataset._wrap(tr.value), Dataset._wrap(va.value)

    def __len__(self) -> int:
        return int(F.sm_dataset_num_images(self._ptr()))

    @property
    def num_images(self) -> int:
        return len(self)

    @property
    def num_classes(self) -> int:
        return int(F.sm_dataset_num_classes(self._ptr()))

    @property
    def num_alphabets(self) -> int:
        return int(F.sm_dataset_num_alphabets(self._ptr()))

    @property
    def image_size(self) -> Tuple[int, int]:
        """(height, width)."""
        h, w = c_int(), c_int()
        check(F.sm_dataset_image_size(self._ptr(), byref(h), byref(w)), "sm_dataset_image_size")
        return h.value, w.value

    def image(self, index: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Image `index` as (H, W) float32 in [0, 1] (sm_dataset_get_image)."""
        res = _arrays.out(self.image_size, out, "image")
        with self._use() as (p,):
            check(F.sm_dataset_get_image(p, int(index), _arrays.ptr(res)), "sm_dataset_get_image")
        return res

    def __getitem__(self, index: int) -> np.ndarray:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"image {index} of a dataset of {n}")
        return self.image(index)

    def images(self, indices: Optional[Iterable[int]] = None) -> np.ndarray:
        """Several images as (N, H, W) float32 (all by default)."""
        idx = list(range(len(self))) if indices is None else [int(i) for i in indices]
        h, w = self.image_size
        res = np.empty((len(idx), h, w), dtype=np.float32)
        with self._use() as (p,):
            for k, i in enumerate(idx):
                check(F.sm_dataset_get_image(p, i, _arrays.ptr(res[k])), "sm_dataset_get_image")
        return res

    def image_class(self, index: int) -> int:
        """Class index of image `index` (IndexError out of range)."""
        c = int(F.sm_dataset_image_class(self._ptr(), int(index)))
        if c == SIZE_MAX:
            raise IndexError(f"image {index} of a dataset of {len(self)}")
        return c

    @property
    def labels(self) -> np.ndarray:
        """The class index of every image, as an int64 array."""
        p = self._ptr()
        return np.array([F.sm_dataset_image_class(p, i) for i in range(len(self))],
                        dtype=np.int64)

    def class_name(self, index: int) -> str:
        raw = F.sm_dataset_class_name(self._ptr(), int(index))
        if raw is None:
            raise IndexError(f"class {index} of {self.num_classes}")
        return text(raw)

    def alphabet_name(self, index: int) -> str:
        raw = F.sm_dataset_alphabet_name(self._ptr(), int(index))
        if raw is None:
            raise IndexError(f"alphabet {index} of {self.num_alphabets}")
        return text(raw)

    @property
    def class_names(self) -> List[str]:
        return [self.class_name(i) for i in range(self.num_classes)]

    @property
    def alphabet_names(self) -> List[str]:
        return [self.alphabet_name(i) for i in range(self.num_alphabets)]

    def image_source(self, index: int) -> str:
        """Where image `index` came from ("file.zip:inner/path.png", a path, "" in memory)."""
        raw = F.sm_dataset_image_source(self._ptr(), int(index))
        if raw is None:
            raise IndexError(f"image {index} of a dataset of {len(self)}")
        return text(raw)

    def __repr__(self) -> str:
        if self.closed:
            return "<siamese.Dataset closed>"
        h, w = self.image_size
        return (f"<siamese.Dataset {len(self)} images {h}x{w}, {self.num_classes} classes, "
                f"{self.num_alphabets} alphabets>")


class Pairs(NamedTuple):
    left: np.ndarray         # (N, H, W) float32
    right: np.ndarray        # (N, H, W) float32
    labels: np.ndarray       # (N,) float32, 1 = same class
    left_index: np.ndarray   # (N,) dataset indices
    right_index: np.ndarray


class Sampler(Handle):
    """The reference's pair sampler over a dataset (sm_sampler_create), seeded.

    Threads: one thread at a time per sampler (next() advances it); it only reads the dataset.
    """

    def __init__(self, dataset: Dataset, seed: int = 1) -> None:
        out = c_void_p()
        with dataset._use() as (d,):
            check(F.sm_sampler_create(d, seed, byref(out)), "sm_sampler_create")
        self.dataset = dataset
        self._own(self._resource("Sampler", out.value, F.sm_sampler_destroy, [dataset]))

    def next(self, n: int) -> Pairs:
        """Draws `n` pairs (sm_sampler_next)."""
        h, w = self.dataset.image_size
        left = np.empty((n, h, w), np.float32)
        right = np.empty((n, h, w), np.float32)
        labels = np.empty(n, np.float32)
        li = np.empty(n, np.uintp)
        ri = np.empty(n, np.uintp)
        with self._use() as (p,):
            check(F.sm_sampler_next(p, n, _arrays.ptr(left), _arrays.ptr(right),
                                    _arrays.ptr(labels), li.ctypes.data, ri.ctypes.data),
                  "sm_sampler_next")
        return Pairs(left, right, labels, li.astype(np.int64), ri.astype(np.int64))


# ---- images ----------------------------------------------------------------------------------

def load_png(path: PathLike, height: int, width: int) -> np.ndarray:
    """Any PNG (any size, colour, alpha), made grey by the library's grey rule and resized to
    height x width (sm_image_load_png): an (H, W) float32 array in [0, 1]."""
    out = np.empty((height, width), np.float32)
    check(F.sm_image_load_png(c_path(path), height, width, _arrays.ptr(out)), "sm_image_load_png")
    return out


def load_pngs(paths: Iterable[PathLike], height: int, width: int) -> np.ndarray:
    """Several PNGs as (N, H, W) float32 (load_png each)."""
    paths = list(paths)
    out = np.empty((len(paths), height, width), np.float32)
    for i, p in enumerate(paths):
        check(F.sm_image_load_png(c_path(p), height, width, _arrays.ptr(out[i])),
              "sm_image_load_png")
    return out


def read_png(path: PathLike, height: int, width: int) -> np.ndarray:
    """A PNG of exactly height x width (sm_image_read_png; ShapeError for another size)."""
    out = np.empty((height, width), np.float32)
    check(F.sm_image_read_png(c_path(path), height, width, _arrays.ptr(out)), "sm_image_read_png")
    return out


def resize(image: Any, height: int, width: int) -> np.ndarray:
    """One (H, W) grey image resized to height x width (sm_image_resize: area-averaged where
    an axis shrinks, linear where it grows, an exact copy at the same size)."""
    src = _arrays.floats(image, "resize")
    if src.ndim != 2:
        raise InvalidArgumentError(f"resize: one (H, W) image, got shape {src.shape}",
                                   function="resize")
    out = np.empty((height, width), np.float32)
    check(F.sm_image_resize(_arrays.ptr(src), src.shape[0], src.shape[1], _arrays.ptr(out),
                            height, width), "sm_image_resize")
    return out


def distort(image: Any, seed: int, parts: Union[int, str, Iterable[str]] = "all") -> np.ndarray:
    """One random affine distortion of an (H, W) image (sm_image_distort), Koch et al.'s parts
    ("rotate", "shear", "scale", "shift" or "all"), drawn from `seed`."""
    src = _arrays.floats(image, "distort")
    if src.ndim != 2:
        raise InvalidArgumentError(f"distort: one (H, W) image, got shape {src.shape}",
                                   function="distort")
    out = np.empty_like(src)
    check(F.sm_image_distort(_arrays.ptr(src), src.shape[0], src.shape[1], distort_mask(parts),
                             seed, _arrays.ptr(out)), "sm_image_distort")
    return out


__all__ = ["Dataset", "Sampler", "Pairs", "load_png", "load_pngs", "read_png", "resize",
           "distort", "distort_mask"]
