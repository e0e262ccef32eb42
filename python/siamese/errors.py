# SPDX-License-Identifier: MIT
"""Exceptions: one class per sm_status, all under siamese.Error.

A failing call raises the class of its status, with the library's own detail: sm_last_error(),
read on the same thread right after the call (the detail is per thread in C, and ctypes runs
each call on the calling Python thread, so threads never see each other's messages)::

    try:
        siamese.Model.load(backend, "missing.safetensors")
    except siamese.FileIOError as e:
        print(e.status_name, e.detail)   # SM_ERR_IO, "cannot open 'missing.safetensors': ..."

Where a status has an obvious built-in counterpart the class derives from it too
(InvalidArgumentError is a ValueError, OutOfMemoryError a MemoryError, FileIOError an OSError,
NumericError an ArithmeticError), so generic handlers keep working.
"""
from __future__ import annotations

from typing import Dict, Optional, Type


class Error(Exception):
    """Base of every libsiamese error.

    Attributes: ``status`` (the sm_status value, or None for checks made in Python),
    ``status_name`` ("SM_ERR_IO"), ``detail`` (sm_last_error()'s text, or the Python-side
    message), ``function`` (the C call that failed, or the Python method).
    """

    status: Optional[int] = None
    status_name: str = ""

    def __init__(self, message: str, *, detail: str = "", function: str = "") -> None:
        super().__init__(message)
        self.detail = detail or message
        self.function = function

    def __str__(self) -> str:  # OSError's own __str__ would print "[Errno None] ..."
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(Error, ValueError):
    """SM_ERR_INVALID_ARG: a NULL handle, an out-of-range option, a wrong size argument."""
    status = 1


class OutOfMemoryError(Error, MemoryError):
    """SM_ERR_NOMEM: an allocation failed; handles are left usable."""
    status = 2


class FileIOError(Error, OSError):
    """SM_ERR_IO: a file or folder could not be opened, read or written."""
    status = 3


class FormatError(Error, ValueError):
    """SM_ERR_FORMAT: a file is damaged or not what it claims (PNG, zip, checkpoint)."""
    status = 4


class ShapeError(Error, ValueError):
    """SM_ERR_SHAPE: sizes do not match (image size, checkpoint against model)."""
    status = 5


class VersionError(Error):
    """SM_ERR_VERSION: a file or module from an incompatible version."""
    status = 6


class BackendUnavailableError(Error):
    """SM_ERR_BACKEND_UNAVAILABLE: the backend is not built or not usable here."""
    status = 7


class DeviceError(Error):
    """SM_ERR_DEVICE: the backend's device or vendor library failed."""
    status = 8


class NumericError(Error, ArithmeticError):
    """SM_ERR_NUMERIC: a non-finite loss or gradient (the step was not applied), or a model's
    non-finite output."""
    status = 9


class DatasetError(Error):
    """SM_ERR_DATASET: a dataset cannot serve the request (too few classes or images)."""
    status = 10


class LimitError(Error):
    """SM_ERR_LIMIT: a size exceeds a documented resource limit (siamese.set_limit)."""
    status = 11


class StateError(Error):
    """SM_ERR_STATE: a call in the wrong order (for example a step without data)."""
    status = 12


class InternalError(Error):
    """SM_ERR_INTERNAL: a bug in libsiamese: please report it."""
    status = 13


class CommError(Error):
    """SM_ERR_COMM: a collective between training ranks failed or timed out."""
    status = 14


class UnsupportedError(Error):
    """SM_ERR_UNSUPPORTED: this backend or machine cannot do what was asked (bf16 without bf16
    instructions); also raised for a call the loaded library does not export."""
    status = 15


class UnknownStatusError(Error):
    """A status this package does not know (a newer library's)."""


class ClosedError(Error, ValueError):
    """A handle used after close() (a Python-side check; no C status)."""


STATUS_CLASSES: Dict[int, Type[Error]] = {
    cls.status: cls for cls in (
        InvalidArgumentError, OutOfMemoryError, FileIOError, FormatError, ShapeError,
        VersionError, BackendUnavailableError, DeviceError, NumericError, DatasetError,
        LimitError, StateError, InternalError, CommError, UnsupportedError)
    if cls.status is not None
}


def error_for(status: int, function: str, detail: str, name: str, text: str) -> Error:
    """The exception for a failed call: "function: SM_ERR_X (text): detail"."""
    cls = STATUS_CLASSES.get(status, UnknownStatusError)
    message = f"{function}: {name} ({text})" + (f": {detail}" if detail else "")
    err = cls(message, detail=detail, function=function)
    err.status = status
    err.status_name = name
    return err
