# SPDX-License-Identifier: MIT
"""The Siamese network (siamese/network.h): the twin subnetwork, the head, embeddings, scores,
calibration, model files."""
from __future__ import annotations

from ctypes import byref, c_double, c_float, c_int, c_size_t, c_void_p
from typing import Any, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import _arrays
from ._handles import Handle, check
from ._lib import F, c_path
from .arch import Arch, as_arch
from .backend import Backend
from .data import PathLike, load_pngs
from .errors import InvalidArgumentError

INITS = {"reference": 0, "he": 1}


class Subnet(Handle):
    """The twin subnetwork on a backend (which it borrows: the backend lives while it does).

    Threads: embedding and predicting (const calls) from any number of threads at once; init()
    and training modify it: nothing else may use it meanwhile.
    """

    def __init__(self, backend: Backend, arch: Union[Arch, str], seed: int = 1) -> None:
        arch = as_arch(arch)
        out = c_void_p()
        with backend._use(arch) as (b, a):
            check(F.sm_subnet_create(b, a, seed, byref(out)), "sm_subnet_create")
        self._setup(backend, out.value)

    @classmethod
    def _wrap(cls, backend: Backend, ptr: int) -> "Subnet":
        s = cls.__new__(cls)
        s._setup(backend, ptr)
        return s

    def _setup(self, backend: Backend, ptr: int) -> None:
        self.backend = backend
        self._own(self._resource("Subnet", ptr, F.sm_subnet_destroy, [backend]))
        self.input_shape: Tuple[int, int, int] = self.arch.input_shape

    def init(self, kind: str = "he", seed: int = 1) -> None:
        """Draws every parameter again (sm_subnet_init): "reference" (N(0, 0.01^2)) or "he"."""
        if kind not in INITS:
            raise InvalidArgumentError(f"unknown init '{kind}' (reference, he)", function="init")
        with self._use() as (p,):
            check(F.sm_subnet_init(p, INITS[kind], seed), "sm_subnet_init")

    @property
    def arch(self) -> Arch:
        """A copy of the architecture (sm_subnet_get_arch)."""
        out = c_void_p()
        check(F.sm_subnet_get_arch(self._ptr(), byref(out)), "sm_subnet_get_arch")
        return Arch._wrap(out.value)

    @property
    def num_params(self) -> int:
        return int(F.sm_subnet_num_params(self._ptr()))

    @property
    def feature_dim(self) -> int:
        return int(F.sm_subnet_feature_dim(self._ptr()))


class Calibration(NamedTuple):
    calibrated: bool
    scale: float
    shift: float
    n_pairs: int


class Head(Handle):
    """The head: score = sigmoid(w . |F1 - F2| + b), on a backend (borrowed).

    Threads: as Subnet; calibrate() modifies it.
    """

    def __init__(self, backend: Backend, feature_dim: int, seed: int = 2) -> None:
        out = c_void_p()
        with backend._use() as (b,):
            check(F.sm_head_create(b, feature_dim, seed, byref(out)), "sm_head_create")
        self._setup(backend, out.value)

    @classmethod
    def _wrap(cls, backend: Backend, ptr: int) -> "Head":
        h = cls.__new__(cls)
        h._setup(backend, ptr)
        return h

    def _setup(self, backend: Backend, ptr: int) -> None:
        self.backend = backend
        self._own(self._resource("Head", ptr, F.sm_head_destroy, [backend]))

    @property
    def feature_dim(self) -> int:
        return int(F.sm_head_feature_dim(self._ptr()))

    def calibrate(self, scale: float, shift: float, n_pairs: int = 0) -> None:
        """Folds Platt scaling into the head (sm_head_calibrate): score = sigmoid(scale z +
        shift). Take scale and shift from siamese.calibrate_fit."""
        with self._use() as (p,):
            check(F.sm_head_calibrate(p, scale, shift, n_pairs), "sm_head_calibrate")

    @property
    def calibration(self) -> Calibration:
        """Whether the head holds a calibration and which (sm_head_calibration)."""
        cal, scale, shift, n = c_int(), c_double(), c_double(), c_size_t()
        check(F.sm_head_calibration(self._ptr(), byref(cal), byref(scale), byref(shift),
                                    byref(n)), "sm_head_calibration")
        return Calibration(bool(cal.value), scale.value, shift.value, int(n.value))


class Model(Handle):
    """A subnet and a head: what predicts, embeds, saves and trains.

    ``Model.create(backend, "laptop", seed=1)`` (subnet seeded by `seed`, head by seed + 1, as
    siamese-train does), ``Model.load(backend, "model.safetensors")``, or
    ``Model(subnet, head)``. close() closes both.

    Threads (siamese/siamese.h): predict_pair(s), logits, embed and save only read the model,
    each call with its own scratch memory: any number of threads may run them at once (the
    GIL is released during each call, so they do run in parallel). Training (a Trainer over
    this model), loading into it, init() and calibrate() modify it: no other thread may use
    the model meanwhile.
    """

    def __init__(self, subnet: Subnet, head: Head) -> None:
        self.subnet = subnet
        self.head = head
        self.backend = subnet.backend
        self.input_shape: Tuple[int, int, int] = subnet.input_shape
        self._resources = subnet._resources + head._resources

    @classmethod
    def create(cls, backend: Backend, arch: Union[Arch, str] = "koch", seed: int = 1, *,
               head_seed: Optional[int] = None, init: str = "reference") -> "Model":
        """A new model: the subnet's weights from `seed` (then redrawn by sm_subnet_init when
        init="he"), the head's from head_seed (default seed + 1)."""
        subnet = Subnet(backend, arch, seed)
        if init != "reference":
            subnet.init(init, seed)
        head = Head(backend, subnet.feature_dim, seed + 1 if head_seed is None else head_seed)
        return cls(subnet, head)

    @classmethod
    def load(cls, backend: Backend, path: PathLike) -> "Model":
        """A model file written by save(), Trainer.save() or the C programs (sm_model_load)."""
        s, h = c_void_p(), c_void_p()
        with backend._use() as (b,):
            check(F.sm_model_load(b, c_path(path), byref(s), byref(h)), "sm_model_load")
        return cls(Subnet._wrap(backend, s.value), Head._wrap(backend, h.value))

    def close(self) -> None:
        self.subnet.close()
        self.head.close()

    @property
    def closed(self) -> bool:
        return self.subnet.closed or self.head.closed

    def save(self, path: PathLike) -> None:
        """Saves subnet + head (architecture and calibration included), atomically
        (sm_model_save)."""
        with self._use() as (s, h):
            check(F.sm_model_save(s, h, c_path(path)), "sm_model_save")

    # ---- inference -----------------------------------------------------------------------------

    def predict_pairs(self, a: Any, b: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Scores in [0, 1] of the pairs (a[i], b[i]) (sm_predict_pairs): (N,) float32.
        a and b: (N, H, W) or (N, C, H, W), float32 (passed without a copy when
        C-contiguous) or uint8 (scaled by 1/255)."""
        return self._pairs(a, b, out, "sm_predict_pairs")

    def logits(self, a: Any, b: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The head's logits of the pairs, before the sigmoid (sm_predict_pairs_logits)."""
        return self._pairs(a, b, out, "sm_predict_pairs_logits")

    def _pairs(self, a: Any, b: Any, out: Optional[np.ndarray], fn: str) -> np.ndarray:
        shape = self.input_shape
        fa, n = _arrays.batch(a, shape, fn)
        fb, nb = _arrays.batch(b, shape, fn)
        if n != nb:
            raise InvalidArgumentError(f"{fn}: {n} left images but {nb} right ones", function=fn)
        res = _arrays.out(n, out, fn)
        if n == 0:
            return res
        with self._use() as (s, h):
            check(getattr(F, fn)(s, h, n, fa.ctypes.data, fb.ctypes.data, res.ctypes.data), fn)
        return res

    def predict_pair(self, a: Any, b: Any) -> float:
        """The score of one pair of images, (H, W) or (C, H, W) (sm_predict_pair)."""
        shape = self.input_shape
        fa = _arrays.image(a, shape, "sm_predict_pair")
        fb = _arrays.image(b, shape, "sm_predict_pair")
        score = c_float()
        with self._use() as (s, h):
            check(F.sm_predict_pair(s, h, fa.ctypes.data, fb.ctypes.data, byref(score)),
                  "sm_predict_pair")
        return float(score.value)

    def embed(self, images: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Feature vectors sigmoid(subnet(x)) of a batch (sm_embed): (N, feature_dim)."""
        fa, n = _arrays.batch(images, self.input_shape, "sm_embed")
        res = _arrays.out((n, self.feature_dim), out, "sm_embed")
        if n == 0:
            return res
        with self._use() as (s, _h):
            check(F.sm_embed(s, n, fa.ctypes.data, res.ctypes.data), "sm_embed")
        return res

    def load_images(self, paths: Any) -> np.ndarray:
        """PNG files fitted to the model's input (sm_image_load_png each): (N, H, W)."""
        c, h, w = self.input_shape
        if c != 1:
            raise InvalidArgumentError(f"the model takes {c}-channel images; PNGs load as grey",
                                       function="load_images")
        if isinstance(paths, (str, bytes)):
            paths = [paths]
        return load_pngs(paths, h, w)

    # ---- properties and calibration ------------------------------------------------------------

    @property
    def arch(self) -> Arch:
        return self.subnet.arch

    @property
    def num_params(self) -> int:
        """The subnet's parameters (the head adds feature_dim + 1)."""
        return self.subnet.num_params

    @property
    def feature_dim(self) -> int:
        return self.subnet.feature_dim

    def calibrate(self, scale: float, shift: float, n_pairs: int = 0) -> None:
        """Head.calibrate."""
        self.head.calibrate(scale, shift, n_pairs)

    @property
    def calibration(self) -> Calibration:
        return self.head.calibration

    def __repr__(self) -> str:
        if self.closed:
            return "<siamese.Model closed>"
        return (f"<siamese.Model {self.arch}, {self.num_params} parameters, "
                f"on {self.backend.name}>")
