# SPDX-License-Identifier: MIT
"""What the whole library shares (siamese/common.h): versions, statuses, the log callback,
resource limits."""
from __future__ import annotations

import logging
import threading
from typing import Callable, Dict, Optional, Union

from ._handles import check
from ._lib import F, LOG_FN, path, text
from .errors import InvalidArgumentError

LOG_LEVELS: Dict[str, int] = {"debug": 0, "info": 1, "warn": 2, "error": 3}
LIMITS: Dict[str, int] = {"file_bytes": 1, "entry_bytes": 2, "dataset_bytes": 3,
                          "image_side": 4}


def version() -> str:
    """"MAJOR.MINOR.PATCH" of the loaded library (sm_version_string)."""
    return text(F.sm_version_string())


def version_number() -> int:
    return int(F.sm_version_number())


def abi_version() -> int:
    return int(F.sm_abi_version())


def library_path() -> str:
    """The file (or soname) the library was loaded from."""
    return path


def status_name(status: int) -> str:
    """"SM_ERR_IO" (sm_status_name)."""
    return text(F.sm_status_name(status))


def status_str(status: int) -> str:
    """"input/output error" (sm_status_str)."""
    return text(F.sm_status_str(status))


def set_limit(name: str, value: int) -> None:
    """A process-wide resource limit (sm_set_limit): "file_bytes", "entry_bytes",
    "dataset_bytes", "image_side". Atomic: any thread, any time."""
    if name not in LIMITS:
        raise InvalidArgumentError(f"unknown limit '{name}' ({', '.join(LIMITS)})",
                                   function="set_limit")
    check(F.sm_set_limit(LIMITS[name], value), "sm_set_limit")


def get_limit(name: str) -> int:
    if name not in LIMITS:
        raise InvalidArgumentError(f"unknown limit '{name}' ({', '.join(LIMITS)})",
                                   function="get_limit")
    return int(F.sm_get_limit(LIMITS[name]))


LogFn = Callable[[str, str], None]
_log_lock = threading.Lock()
_log_keep: Optional[object] = None  # the ctypes callback C holds: alive while installed
_logger = logging.getLogger("siamese")
_PY_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}
_NAMES = {v: k for k, v in LOG_LEVELS.items()}


def set_log_callback(fn: Optional[LogFn], level: Union[str, int] = "warn") -> None:
    """Installs fn(level_name, message) for the library's log messages at `level` and above
    (sm_set_log_callback); None discards them. The callback may be called from any thread
    that calls into the library (with the GIL held); an exception it raises is dropped.

    Not synchronised with other library calls in C: call it while no other thread uses the
    library. ``import siamese`` installs log_to_logging("warn"): warnings go to the
    "siamese" logger (Python prints warnings to stderr when logging is not configured)."""
    global _log_keep
    lvl = LOG_LEVELS[level] if isinstance(level, str) else int(level)
    if fn is None:
        cb = LOG_FN()
    else:
        def call(_user: object, level_: int, message: bytes) -> None:
            try:
                fn(_NAMES.get(level_, str(level_)), text(message))  # type: ignore[misc]
            except BaseException:  # noqa: BLE001 - nothing to raise it to
                pass
        cb = LOG_FN(call)
    with _log_lock:
        F.sm_set_log_callback(cb, None, lvl)
        _log_keep = cb


def _to_logging(level: str, message: str) -> None:
    _logger.log(_PY_LEVELS.get(LOG_LEVELS.get(level, 2), logging.WARNING), "%s", message)


def log_to_logging(level: Union[str, int] = "warn") -> None:
    """Routes the library's messages to logging.getLogger("siamese")."""
    set_log_callback(_to_logging, level)
