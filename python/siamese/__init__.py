# SPDX-License-Identifier: MIT
"""libsiamese from Python: train and run Siamese CNNs on NumPy arrays.

A thin layer over the library's C ABI through ctypes (no compiled extension: one install
serves every Python 3)::

    import siamese
    be = siamese.Backend("auto")
    model = siamese.Model.create(be, "laptop", seed=1)
    trainer = siamese.Trainer(model, siamese.Dataset.synthetic(50, 10), seed=3,
                              adam_lr=1e-3, batch_size=32)
    for _ in range(100):
        loss = trainer.step()
    scores = model.predict_pairs(left, right)   # (N, 105, 105) float32 or uint8 arrays

- Errors: every sm_status is an exception class under siamese.Error (siamese.errors), with
  sm_last_error()'s text.
- Handles free deterministically (close(), ``with``) or when collected; a handle lives as long
  as anything that borrows it (a model outlives its trainers and galleries).
- The GIL is released during every library call: threads predicting with one model run in
  parallel. Each class's docstring gives the C library's thread rules for it.

docs/python.md maps every call to its C function.
"""
from __future__ import annotations

from . import errors, settings
from ._handles import live_handles
from .arch import Arch
from .backend import Backend, probe as probe_backend
from .comm import Comm
from .data import (Dataset, Pairs, Sampler, distort, load_png, load_pngs, read_png,
                   resize)
from .errors import (BackendUnavailableError, ClosedError, CommError, DatasetError,
                     DeviceError, Error, FileIOError, FormatError, InternalError,
                     InvalidArgumentError, LimitError, NumericError, OutOfMemoryError,
                     ShapeError, StateError, UnknownStatusError, UnsupportedError,
                     VersionError)
from .evaluation import (EvalResult, OneshotRuns, Roc, calibrate_fit, oneshot_episodes,
                         verification_accuracy, verification_logits, verification_scores)
from .gallery import Gallery, GalleryIndex, Match, index_available
from .library import (abi_version, get_limit, library_path, log_to_logging,
                      set_limit, set_log_callback, status_name, status_str, version,
                      version_number)
from .model import Calibration, Head, Model, Subnet
from .train import Adam, Health, Trainer
from . import _loader as _loader

_abi = _loader.expected_abi()
if _abi is not None and _abi != abi_version():
    raise ImportError(f"siamese: this package was built for libsiamese ABI {_abi}, but "
                      f"{library_path()} is ABI {abi_version()}")

__version__ = version()

# The library never prints: its warnings (a save whose folder could not be synced) go to the
# "siamese" logger, as the C example programs show them on stderr.
log_to_logging("warn")

__all__ = [
    "Adam", "Arch", "Backend", "BackendUnavailableError", "Calibration", "ClosedError", "Comm",
    "CommError", "Dataset", "DatasetError", "DeviceError", "Error", "EvalResult",
    "FileIOError", "FormatError", "Gallery", "GalleryIndex", "index_available", "Head",
    "Health", "InternalError",
    "InvalidArgumentError", "LimitError", "Match", "Model", "NumericError", "OneshotRuns",
    "OutOfMemoryError", "Pairs", "Roc", "Sampler", "ShapeError", "StateError", "Subnet",
    "Trainer", "UnknownStatusError", "UnsupportedError", "VersionError", "abi_version",
    "calibrate_fit", "distort", "errors", "get_limit", "library_path", "live_handles",
    "load_png", "load_pngs", "log_to_logging", "oneshot_episodes", "probe_backend",
    "read_png", "resize", "set_limit", "set_log_callback", "settings", "status_name",
    "status_str", "verification_accuracy", "verification_logits", "verification_scores",
    "version", "version_number",
]
