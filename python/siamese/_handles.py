# SPDX-License-Identifier: MIT
"""Handles: when the C objects are destroyed, and the status check every call goes through.

The C rule (siamese/siamese.h) is "destroy a handle before anything it borrows". Here every C
object is a _Resource that counts its users: the handles that borrow it (a trainer borrows
the subnet, head, Adam state and dataset; a gallery the subnet and head) and the calls running
on it right now. Its owner's close() (or the garbage collector, through weakref.finalize)
releases it, and it is destroyed the moment it is released and unused. So:

- ``close()`` and ``with`` free deterministically; the collector frees what was not closed;
- a borrowed object outlives whatever borrows it, whatever order things are closed or
  collected in (closing a backend while a model on it lives only marks it closed: the C
  backend goes when the model goes);
- a handle closed by one thread while another thread's call runs on it is destroyed when that
  call returns, never under it;
- at interpreter exit, weakref.finalize runs the finalizers left in reverse order of creation:
  dependants (always created later) first.

live_handles() counts the C objects alive, by class: the tests' leak check.
"""
from __future__ import annotations

import threading
import weakref
from collections import Counter
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

from ._lib import F, last_error, text
from .errors import ClosedError, error_for

# Guards every count. Re-entrant: a finalizer may run (the collector) while this thread holds it.
_lock = threading.RLock()
_live: Counter = Counter()


def check(status: int, function: str) -> None:
    """Raises the status's exception, with sm_last_error() of this thread, unless SM_OK."""
    if status:
        raise error_for(status, function, last_error(), text(F.sm_status_name(status)),
                        text(F.sm_status_str(status)))


def live_handles() -> Dict[str, int]:
    """C objects alive now, by kind ("Backend": 1, "Subnet": 2, ...); kinds at 0 left out."""
    with _lock:
        return {k: v for k, v in _live.items() if v}


class _Resource:
    """One C object: its pointer, its destroy function, who uses it."""

    __slots__ = ("ptr", "kind", "_destroy", "_users", "released", "_deps", "__weakref__")

    def __init__(self, kind: str, ptr: int, destroy: Callable[[int], None],
                 deps: Sequence["_Resource"] = ()) -> None:
        self.ptr: Optional[int] = ptr
        self.kind = kind
        self._destroy = destroy
        self._users = 0
        self.released = False
        with _lock:
            for d in deps:
                d._users += 1
            self._deps: Tuple[_Resource, ...] = tuple(deps)
            _live[kind] += 1

    def release(self) -> None:
        """The owner is done with it (close() or the collector)."""
        with _lock:
            self.released = True
            self._free_if_unused()

    def add_dep(self, dep: "_Resource") -> None:
        """Borrows one more object for the rest of this one's life (a validation set)."""
        with _lock:
            dep._users += 1
            self._deps = self._deps + (dep,)

    def drop_dep(self, dep: "_Resource") -> None:
        with _lock:
            deps = list(self._deps)
            deps.remove(dep)
            self._deps = tuple(deps)
            dep._users -= 1
            dep._free_if_unused()

    def _free_if_unused(self) -> None:  # with _lock held
        if self.released and self._users == 0 and self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            self._destroy(ptr)
            _live[self.kind] -= 1
            deps, self._deps = self._deps, ()
            for d in deps:
                d._users -= 1
                d._free_if_unused()


class _InUse:
    """``with _InUse(a, b) as (pa, pb):`` the pointers, kept alive for the call."""

    __slots__ = ("_res",)

    def __init__(self, resources: Iterable[_Resource]) -> None:
        self._res = tuple(resources)

    def __enter__(self) -> Tuple[int, ...]:
        with _lock:
            for r in self._res:
                if r.released or r.ptr is None:
                    raise ClosedError(f"this {r.kind} was closed", function=r.kind)
            for r in self._res:
                r._users += 1
            return tuple(r.ptr for r in self._res)  # type: ignore[misc]

    def __exit__(self, *exc: Any) -> None:
        with _lock:
            for r in self._res:
                r._users -= 1
                r._free_if_unused()


class Handle:
    """Base of the classes that own C objects: close(), ``with``, collection."""

    _resources: Tuple[_Resource, ...] = ()
    _finalizer: Optional[weakref.finalize] = None

    def _own(self, *resources: _Resource) -> None:
        """Takes ownership; released together by close() or the collector."""
        self._resources = resources
        self._finalizer = weakref.finalize(self, _release_all, resources)

    @staticmethod
    def _resource(kind: str, ptr: int, destroy: Callable[[int], None],
                  deps: Sequence["Handle"] = ()) -> _Resource:
        return _Resource(kind, ptr, destroy, [r for h in deps for r in h._resources])

    def close(self) -> None:
        """Releases the C object(s) now (or, if something still borrows them, as soon as it
        is gone). Idempotent. The handle cannot be used afterwards (ClosedError)."""
        if self._finalizer is not None:
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._finalizer is None or not self._finalizer.alive

    def _use(self, *others: "Handle") -> _InUse:
        return _InUse(self._resources + tuple(r for h in others for r in h._resources))

    def _ptr(self, i: int = 0) -> int:
        """The pointer of a quick call (no in-flight guard: a count, a name)."""
        r = self._resources[i]
        if r.released or r.ptr is None:
            raise ClosedError(f"this {type(self).__name__} was closed",
                              function=type(self).__name__)
        return r.ptr

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _release_all(resources: Tuple[_Resource, ...]) -> None:
    for r in resources:
        r.release()
