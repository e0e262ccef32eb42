# SPDX-License-Identifier: MIT
"""Communicators for data-parallel training (siamese/comm.h): run-time modules ("mpi", "nccl")
and in-process ranks on threads. sm_comm_create (host callbacks that move bytes) is not bound:
a Python transport would run inside every collective, holding the GIL.

Threads: a communicator is used by one thread at a time (the one stepping its trainer); rank,
size and failed from any thread. Each rank of Comm.local() is used by its own thread.
"""
from __future__ import annotations

from ctypes import byref, c_uint64, c_void_p
from typing import Any, List, Optional, Tuple

import numpy as np

from ._handles import Handle, check
from ._lib import F, c_text


class Comm(Handle):
    """One rank's communicator. Comm.open("mpi") or Comm.local(size)."""

    def __init__(self) -> None:
        raise TypeError("use Comm.open or Comm.local")

    @classmethod
    def _wrap(cls, ptr: int) -> "Comm":
        c = cls.__new__(cls)
        c._own(c._resource("Comm", ptr, F.sm_comm_destroy))
        return c

    @classmethod
    def open(cls, name: str, bootstrap: Optional["Comm"] = None, device: int = -1) -> "Comm":
        """A module's communicator (sm_comm_open): "mpi", or "nccl" with a bootstrap."""
        out = c_void_p()
        if bootstrap is None:
            check(F.sm_comm_open(c_text(name), None, device, byref(out)), "sm_comm_open")
        else:
            with bootstrap._use() as (b,):
                check(F.sm_comm_open(c_text(name), b, device, byref(out)), "sm_comm_open")
        return cls._wrap(out.value)

    @classmethod
    def local(cls, size: int) -> List["Comm"]:
        """`size` ranks joined in this process (sm_comm_local_create): rank i on thread i."""
        arr = (c_void_p * max(size, 1))()
        check(F.sm_comm_local_create(size, arr), "sm_comm_local_create")
        return [cls._wrap(arr[i]) for i in range(size)]

    @property
    def rank(self) -> int:
        return int(F.sm_comm_rank(self._ptr()))

    @property
    def size(self) -> int:
        return int(F.sm_comm_size(self._ptr()))

    @property
    def failed(self) -> bool:
        return F.sm_comm_failed(self._ptr()) == 1

    def set_timeout(self, seconds: float) -> None:
        with self._use() as (p,):
            check(F.sm_comm_set_timeout(p, seconds), "sm_comm_set_timeout")

    @property
    def serialized(self) -> bool:
        """Whether a trainer's exchange thread may use this communicator during a step
        (sm_comm_serialized): then the gradient exchange overlaps the backward pass."""
        with self._use() as (p,):
            return F.sm_comm_serialized(p) == 1

    @serialized.setter
    def serialized(self, yes: bool) -> None:
        """Allows (True) or forbids the exchange thread (sm_comm_set_serialized): allow it only
        when the transport may be called from another thread, one call at a time, and the host
        makes no call on it while a step runs."""
        with self._use() as (p,):
            check(F.sm_comm_set_serialized(p, 1 if yes else 0), "sm_comm_set_serialized")

    def barrier(self) -> None:
        with self._use() as (p,):
            check(F.sm_comm_barrier(p), "sm_comm_barrier")

    def broadcast(self, buf: Any, root: int = 0) -> None:
        """Root's bytes of `buf` (a writeable contiguous numpy array or bytearray) into `buf`
        on every rank."""
        a = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
        with self._use() as (p,):
            check(F.sm_comm_broadcast(p, a.ctypes.data, a.nbytes, root), "sm_comm_broadcast")

    def allgather(self, data: bytes) -> List[bytes]:
        """Every rank's `data` (the same length on every rank), in rank order."""
        send = np.frombuffer(bytes(data), dtype=np.uint8)
        recv = np.empty(len(data) * self.size, dtype=np.uint8)
        with self._use() as (p,):
            check(F.sm_comm_allgather(p, send.ctypes.data, recv.ctypes.data, len(data)),
                  "sm_comm_allgather")
        n = len(data)
        return [recv[i * n:(i + 1) * n].tobytes() for i in range(self.size)]

    def stats(self) -> Tuple[int, int]:
        """(bytes sent, nanoseconds in collectives) (sm_comm_stats)."""
        b, ns = c_uint64(), c_uint64()
        F.sm_comm_stats(self._ptr(), byref(b), byref(ns))
        return int(b.value), int(ns.value)


def clock_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds (sm_comm_clock_ns)."""
    return int(F.sm_comm_clock_ns())


def backoff(attempt: int) -> None:
    """Sleeps a little between two polls of a transport (sm_comm_backoff)."""
    F.sm_comm_backoff(attempt)
