# SPDX-License-Identifier: MIT
"""Compute backends (siamese/backends.h): cpu-blas, cpu-dnnl, cuda."""
from __future__ import annotations

from ctypes import byref, c_int64, c_void_p
from typing import Dict, Optional, Tuple, Union

from ._handles import Handle, check
from ._lib import F, text
from .errors import InvalidArgumentError

KINDS: Dict[str, int] = {"auto": 0, "cpu": 1, "cuda": 2, "cpu-dnnl": 3}
# The names sm_backend_name gives the concrete backends, accepted too
KINDS.update({"cpu-blas": 1})

OPTIONS: Dict[str, int] = {"tf32": 1, "conv_algo": 2, "precision": 3}
CONV_ALGOS: Dict[str, int] = {"auto": 0, "direct": 1, "fft": 2, "measured": 3}
PRECISIONS: Dict[str, int] = {"fp32": 0, "bf16": 1}
_VALUE_NAMES = {"conv_algo": CONV_ALGOS, "precision": PRECISIONS}


def _kind(kind: Union[str, int]) -> int:
    if isinstance(kind, str):
        try:
            return KINDS[kind]
        except KeyError:
            raise InvalidArgumentError(f"unknown backend '{kind}' (auto, cpu, cpu-dnnl, cuda)",
                                       function="Backend") from None
    return int(kind)


def probe(kind: Union[str, int]) -> Tuple[bool, str]:
    """Whether a backend can be used here, and why not (sm_backend_probe): (True, "") or
    (False, the library's reason)."""
    from ._lib import last_error
    st = F.sm_backend_probe(_kind(kind))
    if st == 0:
        return True, ""
    if st == 1:  # SM_ERR_INVALID_ARG: not a kind at all
        check(st, "sm_backend_probe")
    return False, last_error()


def kind_name(kind: int) -> str:
    """sm_backend_kind_name: "auto", "cpu", "cuda", "cpu-dnnl"."""
    return text(F.sm_backend_kind_name(int(kind)))


class Backend(Handle):
    """A compute backend: ``Backend("auto")`` picks CUDA when usable, else cpu-dnnl when its
    module loads, else cpu-blas.

    Threads: create and close from any thread. ``threads = n`` (sm_backend_set_threads) and
    set_option change a process-wide setting: do it while no other thread computes on it.
    Models on one backend may be used from several threads as their own rules say.
    """

    def __init__(self, kind: Union[str, int] = "auto", *, threads: Optional[int] = None,
                 conv_algo: Optional[str] = None, precision: Optional[str] = None,
                 tf32: Optional[bool] = None) -> None:
        out = c_void_p()
        check(F.sm_backend_create(_kind(kind), byref(out)), "sm_backend_create")
        self._own(self._resource("Backend", out.value, F.sm_backend_destroy))
        if threads is not None:
            self.threads = threads
        if conv_algo is not None:
            self.set_option("conv_algo", conv_algo)
        if precision is not None:
            self.set_option("precision", precision)
        if tf32 is not None:
            self.set_option("tf32", int(bool(tf32)))

    @property
    def name(self) -> str:
        """"cpu-blas", "cpu-dnnl" or "cuda"."""
        return text(F.sm_backend_name(self._ptr()))

    @property
    def kind(self) -> str:
        """The concrete kind's name: "cpu", "cpu-dnnl", "cuda" (never "auto")."""
        return kind_name(F.sm_backend_get_kind(self._ptr()))

    @property
    def threads(self) -> int:
        """Worker threads in effect (sm_backend_get_threads)."""
        return int(F.sm_backend_get_threads(self._ptr()))

    @threads.setter
    def threads(self, n: int) -> None:
        """0 = all cores. Process-wide for the CPU backends: set it while nothing computes."""
        with self._use() as (p,):
            check(F.sm_backend_set_threads(p, int(n)), "sm_backend_set_threads")

    @property
    def fallback_reason(self) -> str:
        """Why an "auto" backend is not cuda (and not cpu-dnnl, when it is cpu-blas); ""."""
        return text(F.sm_backend_fallback_reason(self._ptr()))

    def set_option(self, key: str, value: Union[int, str]) -> None:
        """sm_backend_set_option: "tf32" (0/1), "conv_algo" ("auto", "direct", "fft",
        "measured") or "precision" ("fp32", "bf16"; bf16 raises UnsupportedError where the
        backend or CPU cannot run it)."""
        if key not in OPTIONS:
            raise InvalidArgumentError(f"unknown backend option '{key}' ({', '.join(OPTIONS)})",
                                       function="set_option")
        if isinstance(value, str):
            names = _VALUE_NAMES.get(key, {})
            if value not in names:
                raise InvalidArgumentError(f"{key}: unknown value '{value}' "
                                           f"({', '.join(names) or 'a number'})",
                                           function="set_option")
            value = names[value]
        with self._use() as (p,):
            check(F.sm_backend_set_option(p, OPTIONS[key], int(value)), "sm_backend_set_option")

    def get_option(self, key: str) -> Union[int, str]:
        """The option as the backend reads it back (names for conv_algo and precision)."""
        if key not in OPTIONS:
            raise InvalidArgumentError(f"unknown backend option '{key}'", function="get_option")
        v = c_int64()
        check(F.sm_backend_get_option(self._ptr(), OPTIONS[key], byref(v)),
              "sm_backend_get_option")
        for name, value in _VALUE_NAMES.get(key, {}).items():
            if value == v.value:
                return name
        return int(v.value)

    def __repr__(self) -> str:
        if self.closed:
            return "<siamese.Backend closed>"
        return f"<siamese.Backend {self.name}, {self.threads} threads>"
