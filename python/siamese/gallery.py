# SPDX-License-Identifier: MIT
"""Galleries (siamese/gallery.h): enrolled examples of a model, identification (top k),
verification, gallery files.

A new C gallery call is a row in _lib.GALLERY and a method here: each method borrows the
gallery (and the model where the call takes it) with ``self._use(...)``, converts arrays with
_arrays and checks the status with ``check(status, "sm_gallery_...")``.
"""
from __future__ import annotations

from ctypes import byref, c_double, c_int, c_size_t, c_void_p, sizeof
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from . import _arrays
from ._handles import Handle, check
from ._lib import (F, GalleryIndexOptionsC, GalleryIndexStatsC, GalleryLoadOptionsC,
                   GalleryMatchC, GalleryOptionsC, c_path, c_text, text)
from .data import SIZE_MAX, PathLike
from .model import Model


class Match(NamedTuple):
    """One label of an identification's top k (sm_gallery_match)."""
    label: str
    index: int  # label index (Gallery.labels)
    score: float  # the mean of its examples' scores
    rank: int  # 1 + labels with a strictly higher score: tied labels share it
    tied: int  # labels of the gallery with exactly this score (1: no tie)


# sm_storage_type: how enrolled feature vectors are stored (siamese/gallery.h)
STORAGE = {"f32": 0, "bf16": 1, "f16": 2, "u8": 3}
_STORAGE_NAMES = {v: k for k, v in STORAGE.items()}


class Gallery(Handle):
    """Enrolled examples of one model (borrowed: it lives while the gallery does, and must not
    train meanwhile). ``Gallery(model)``, ``Gallery(model, storage="bf16")`` or
    ``Gallery.load(model, path)``.

    Threads: identify, verify, save and the counts only read it: any number of threads at once
    (the GIL is released during each call). enrol* and remove modify it: no other thread may
    use it meanwhile.
    """

    def __init__(self, model: Model, storage: str = "f32") -> None:
        """``storage``: "f32" (exact, the default), "bf16", "f16" or "u8" (reduced: smaller and
        faster to search, scores within the type's rounding; sm_gallery_create_with)."""
        if storage not in STORAGE:
            from .errors import InvalidArgumentError
            raise InvalidArgumentError(f"Gallery: storage {storage!r} is not one of "
                                       f"{', '.join(STORAGE)}", function="sm_gallery_create_with")
        opts = GalleryOptionsC(sizeof(GalleryOptionsC), STORAGE[storage])
        out = c_void_p()
        with model._use() as (s, h):
            check(F.sm_gallery_create_with(s, h, byref(opts), byref(out)),
                  "sm_gallery_create_with")
        self._setup(model, out.value)

    def _setup(self, model: Model, ptr: int) -> None:
        self.model = model
        self._own(self._resource("Gallery", ptr, F.sm_gallery_destroy, [model]))

    @classmethod
    def load(cls, model: Model, path: PathLike, *, no_map: bool = False,
             skip_row_check: bool = False) -> "Gallery":
        """A gallery file enrolled with exactly this model. On a CPU backend the file's rows are
        mapped and searched in place unless ``no_map``; ``skip_row_check`` does not read the rows
        at load (sm_gallery_load, or sm_gallery_load_with when an option is set)."""
        out = c_void_p()
        with model._use() as (s, h):
            if no_map or skip_row_check:
                opts = GalleryLoadOptionsC(sizeof(GalleryLoadOptionsC), int(no_map),
                                           int(skip_row_check))
                check(F.sm_gallery_load_with(s, h, c_path(path), byref(opts), byref(out)),
                      "sm_gallery_load_with")
            else:
                check(F.sm_gallery_load(s, h, c_path(path), byref(out)), "sm_gallery_load")
        g = cls.__new__(cls)
        g._setup(model, out.value)
        return g

    @property
    def storage(self) -> str:
        """How enrolled features are stored: "f32", "bf16", "f16" or "u8" (sm_gallery_storage)."""
        with self._use() as (g,):
            return _STORAGE_NAMES.get(F.sm_gallery_storage(g), "f32")

    @property
    def is_mapped(self) -> bool:
        """Whether the rows are a mapped file's (sm_gallery_is_mapped)."""
        with self._use() as (g,):
            return F.sm_gallery_is_mapped(g) == 1

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


# sm_gallery_index_kind
INDEX_KINDS = {"hnsw": 1, "ivf": 2}


def index_available() -> bool:
    """Whether the index module (index-faiss) can be loaded here (sm_gallery_index_available)."""
    return F.sm_gallery_index_available() == 0


class GalleryIndex(Handle):
    """An approximate candidate index over a gallery (siamese/gallery_index.h, since 0.5): the
    index proposes examples, and the labels they name are scored exactly (the same scores as
    Gallery.identify). ``GalleryIndex(gallery, kind="hnsw", candidates=0, ...)``: 0 means the
    option's default. The gallery is borrowed and must not change while the index is used (a
    query on a changed gallery raises StateError: build the index again).

    Threads: identify* only read it (any number of threads at once); set_search modifies it.
    """

    def __init__(self, gallery: Gallery, kind: str = "hnsw", *, candidates: int = 0,
                 effort: int = 0, hnsw_m: int = 0, hnsw_ef_construction: int = 0,
                 ivf_lists: int = 0, build_threads: int = 0, seed: int = 0) -> None:
        if kind not in INDEX_KINDS:
            from .errors import InvalidArgumentError
            raise InvalidArgumentError(f"GalleryIndex: kind {kind!r} is not one of "
                                       f"{', '.join(INDEX_KINDS)}",
                                       function="sm_gallery_index_build")
        o = GalleryIndexOptionsC(sizeof(GalleryIndexOptionsC), INDEX_KINDS[kind], candidates,
                                 effort, hnsw_m, hnsw_ef_construction, ivf_lists, build_threads,
                                 0, seed)
        out = c_void_p()
        with gallery._use() as (g,):
            check(F.sm_gallery_index_build(g, byref(o), byref(out)), "sm_gallery_index_build")
        self.gallery = gallery
        self._own(self._resource("GalleryIndex", out.value, F.sm_gallery_index_destroy,
                                 [gallery]))

    def set_search(self, candidates: int = 0, effort: int = 0) -> None:
        """Candidates and effort of queries from now on (sm_gallery_index_set_search)."""
        with self._use() as (ix,):
            check(F.sm_gallery_index_set_search(ix, candidates, effort),
                  "sm_gallery_index_set_search")

    @property
    def info(self) -> Dict[str, Any]:
        """What was built (sm_gallery_index_info): kind, candidates, effort, ivf_lists,
        examples, dims_indexed, dims_positive, positive_weight, bytes."""
        st = GalleryIndexStatsC()
        st.struct_size = sizeof(GalleryIndexStatsC)
        with self._use() as (ix,):
            check(F.sm_gallery_index_info(ix, byref(st)), "sm_gallery_index_info")
        d = {name: getattr(st, name) for name, _ in GalleryIndexStatsC._fields_[1:]}
        d["kind"] = {v: k for k, v in INDEX_KINDS.items()}.get(st.kind, st.kind)
        return d

    def identify(self, queries: Any, k: int = 5) -> List[List[Match]]:
        """Gallery.identify through the index (sm_gallery_index_identify)."""
        shape = self.gallery.model.input_shape
        a = _arrays.floats(queries, "sm_gallery_index_identify")
        if a.shape in ((shape[1], shape[2]), shape):
            a = a.reshape((1,) + shape)
        a, n = _arrays.batch(a, shape, "sm_gallery_index_identify")
        return self._search("sm_gallery_index_identify", a, n, k)

    def identify_embeddings(self, features: Any, k: int = 5) -> List[List[Match]]:
        """identify() from feature vectors (sm_gallery_index_identify_embeddings)."""
        a, n = _arrays.vectors(features, self.gallery.model.feature_dim,
                               "sm_gallery_index_identify_embeddings")
        return self._search("sm_gallery_index_identify_embeddings", a, n, k)

    def _search(self, fn: str, a: Any, n: int, k: int) -> List[List[Match]]:
        matches = (GalleryMatchC * (max(n, 1) * max(k, 1)))()
        found = c_size_t()
        with self._use(self.gallery) as (ix, g):
            check(getattr(F, fn)(ix, n, a.ctypes.data, k, matches, byref(found)), fn)
            names = [text(F.sm_gallery_label_name(g, i)) for i in range(len(self.gallery))]
        per = int(found.value)
        return [[Match(names[m.label], int(m.label), float(m.score), int(m.rank), int(m.tied))
                 for m in matches[q * k:q * k + per]] for q in range(n)]
