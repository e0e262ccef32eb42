# SPDX-License-Identifier: MIT
"""Galleries (siamese/gallery.h): enrolled examples of a model, identification (top k),
verification, gallery files.

A new C gallery call is a row in _lib.GALLERY and a method here: each method borrows the
gallery (and the model where the call takes it) with ``self._use(...)``, converts arrays with
_arrays and checks the status with ``check(status, "sm_gallery_...")``.
"""
from __future__ import annotations

from ctypes import byref, c_double, c_int, c_size_t, c_void_p
from typing import Any, List, NamedTuple, Optional, Tuple

from . import _arrays
from ._handles import Handle, check
from ._lib import F, GalleryMatchC, c_path, c_text, text
from .data import SIZE_MAX, PathLike
from .model import Model


class Match(NamedTuple):
    """One label of an identification's top k (sm_gallery_match)."""
    label: str
    index: int  # label index (Gallery.labels)
    score: float  # the mean of its examples' scores
    rank: int  # 1 + labels with a strictly higher score: tied labels share it
    tied: int  # labels of the gallery with exactly this score (1: no tie)


class Gallery(Handle):
    """Enrolled examples of one model (borrowed: it lives while the gallery does, and must not
    train meanwhile). ``Gallery(model)`` or ``Gallery.load(model, path)``.

    Threads: identify, verify, save and the counts only read it: any number of threads at once
    (the GIL is released during each call). enrol* and remove modify it: no other thread may
    use it meanwhile.
    """

    def __init__(self, model: Model) -> None:
        out = c_void_p()
        with model._use() as (s, h):
            check(F.sm_gallery_create(s, h, byref(out)), "sm_gallery_create")
        self._setup(model, out.value)

    def _setup(self, model: Model, ptr: int) -> None:
        self.model = model
        self._own(self._resource("Gallery", ptr, F.sm_gallery_destroy, [model]))

    @classmethod
    def load(cls, model: Model, path: PathLike) -> "Gallery":
        """A gallery file enrolled with exactly this model (sm_gallery_load)."""
        out = c_void_p()
        with model._use() as (s, h):
            check(F.sm_gallery_load(s, h, c_path(path), byref(out)), "sm_gallery_load")
        g = cls.__new__(cls)
        g._setup(model, out.value)
        return g

    def save(self, path: PathLike) -> None:
        """Atomically (sm_gallery_save)."""
        with self._use() as (g,):
            check(F.sm_gallery_save(g, c_path(path)), "sm_gallery_save")

    # ---- enrolment -----------------------------------------------------------------------------

    def enrol(self, label: str, images: Any) -> None:
        """Enrols a batch of images, (N, H, W) or (N, C, H, W), under `label`
        (sm_gallery_enrol); one image (H, W) works too."""
        shape = self.model.input_shape
        a = _arrays.floats(images, "sm_gallery_enrol")
        if a.shape in ((shape[1], shape[2]), shape):
            a = a.reshape((1,) + shape)
        a, n = _arrays.batch(a, shape, "sm_gallery_enrol")
        with self._use() as (g,):
            check(F.sm_gallery_enrol(g, c_text(label), n, a.ctypes.data), "sm_gallery_enrol")

    def enrol_embeddings(self, label: str, features: Any) -> None:
        """Enrols feature vectors computed by Model.embed (sm_gallery_enrol_embeddings)."""
        a, n = _arrays.vectors(features, self.model.feature_dim, "sm_gallery_enrol_embeddings")
        with self._use() as (g,):
            check(F.sm_gallery_enrol_embeddings(g, c_text(label), n, a.ctypes.data),
                  "sm_gallery_enrol_embeddings")

    def enrol_path(self, path: PathLike) -> int:
        """Enrols every PNG below a folder or in a .zip, labelled by folder
        (sm_gallery_enrol_path): returns the number of images."""
        n = c_size_t()
        with self._use() as (g,):
            check(F.sm_gallery_enrol_path(g, c_path(path), byref(n)), "sm_gallery_enrol_path")
        return int(n.value)

    def remove(self, label: str) -> int:
        """Removes a label and its examples (sm_gallery_remove): how many went (0: unknown)."""
        n = c_size_t()
        with self._use() as (g,):
            check(F.sm_gallery_remove(g, c_text(label), byref(n)), "sm_gallery_remove")
        return int(n.value)

    # ---- contents ------------------------------------------------------------------------------

    @property
    def num_examples(self) -> int:
        return int(F.sm_gallery_num_examples(self._ptr()))

    def __len__(self) -> int:
        """Distinct labels."""
        return int(F.sm_gallery_num_labels(self._ptr()))

    @property
    def labels(self) -> List[str]:
        """Labels in order of first enrolment (their indices)."""
        p = self._ptr()
        return [text(F.sm_gallery_label_name(p, i)) for i in range(len(self))]

    def label_examples(self, index: int) -> int:
        return int(F.sm_gallery_label_examples(self._ptr(), index))

    def find_label(self, label: str) -> Optional[int]:
        """The index of `label`, or None."""
        i = int(F.sm_gallery_find_label(self._ptr(), c_text(label)))
        return None if i == SIZE_MAX else i

    def __contains__(self, label: str) -> bool:
        return self.find_label(label) is not None

    @property
    def bytes_per_example(self) -> float:
        return float(F.sm_gallery_bytes_per_example(self._ptr()))

    # ---- search --------------------------------------------------------------------------------

    def identify(self, queries: Any, k: int = 5) -> List[List[Match]]:
        """The k best labels of each query image, best first (sm_gallery_identify): a list per
        query. queries: (N, H, W) or (N, C, H, W); one image (H, W) gives a one-item list."""
        shape = self.model.input_shape
        a = _arrays.floats(queries, "sm_gallery_identify")
        if a.shape in ((shape[1], shape[2]), shape):
            a = a.reshape((1,) + shape)
        a, n = _arrays.batch(a, shape, "sm_gallery_identify")
        return self._search("sm_gallery_identify", a, n, k)

    def identify_embeddings(self, features: Any, k: int = 5) -> List[List[Match]]:
        """identify() from feature vectors (sm_gallery_identify_embeddings)."""
        a, n = _arrays.vectors(features, self.model.feature_dim, "sm_gallery_identify_embeddings")
        return self._search("sm_gallery_identify_embeddings", a, n, k)

    def _search(self, fn: str, a: Any, n: int, k: int) -> List[List[Match]]:
        matches = (GalleryMatchC * (max(n, 1) * max(k, 1)))()
        found = c_size_t()
        with self._use() as (g,):
            check(getattr(F, fn)(g, n, a.ctypes.data, k, matches, byref(found)), fn)
            names = [text(F.sm_gallery_label_name(g, i)) for i in range(len(self))]
        per = int(found.value)
        return [[Match(names[m.label], int(m.label), float(m.score), int(m.rank), int(m.tied))
                 for m in matches[q * k:q * k + per]] for q in range(n)]

    def verify(self, label: str, image: Any, threshold: float = 0.5) -> Tuple[float, bool]:
        """(score, accepted) of one image claimed to be `label` (sm_gallery_verify)."""
        a = _arrays.image(image, self.model.input_shape, "sm_gallery_verify")
        score, accept = c_double(), c_int()
        with self._use() as (g,):
            check(F.sm_gallery_verify(g, c_text(label), a.ctypes.data, threshold, byref(score),
                                      byref(accept)), "sm_gallery_verify")
        return float(score.value), bool(accept.value)

    def __repr__(self) -> str:
        if self.closed:
            return "<siamese.Gallery closed>"
        return f"<siamese.Gallery {len(self)} labels, {self.num_examples} examples>"
