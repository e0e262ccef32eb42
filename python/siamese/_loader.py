# SPDX-License-Identifier: MIT
"""Finds and loads libsiamese.so.N.

In this order:

1. ``SIAMESE_LIBRARY``: a path to the library (a build tree's ``build/lib/libsiamese.so.0``).
   Made absolute before loading, because the library finds its run-time backend modules
   (cpu-dnnl, cuda) in ``libsiamese/`` beside the file it was loaded from (dladdr,
   lib/common/module_path.c): a relative name would break once the working folder changes.
2. An installed package: ``_build_config.py``, written by meson at configure time, names the
   soname and the install libdir; ``LIBDIR/SONAME`` first, then the soname through the normal
   loader (``LD_LIBRARY_PATH``, ld.so.cache).
3. A source checkout (``PYTHONPATH=python``) without either: ``build/lib/libsiamese.so.*``
   beside the package's ``python/`` folder, then ``ctypes.util.find_library("siamese")``.

Nothing here imports numpy: ``import siamese`` fails only for a missing library, with every
place it looked in the message.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from typing import List, Optional, Tuple

try:  # written by meson (python/meson.build); absent in a source checkout
    from . import _build_config  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on how the package is run
    _build_config = None  # type: ignore[assignment]

ENV_VAR = "SIAMESE_LIBRARY"


def _candidates() -> List[Tuple[str, str]]:
    """(path or soname, where it came from), in the order they are tried."""
    out: List[Tuple[str, str]] = []
    env = os.environ.get(ENV_VAR)
    if env:
        return [(os.path.abspath(env), "$" + ENV_VAR)]
    if _build_config is not None:
        libdir = getattr(_build_config, "LIBDIR", "")
        soname = getattr(_build_config, "SONAME", "")
        if libdir and soname:
            out.append((os.path.join(libdir, soname), "the install libdir (_build_config.py)"))
        if soname:
            out.append((soname, "the soname through the loader (_build_config.py)"))
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.dirname(os.path.dirname(here))  # python/siamese -> the checkout
    for path in sorted(glob.glob(os.path.join(tree, "build", "lib", "libsiamese.so.[0-9]*")),
                       key=len):
        out.append((path, "the source checkout's build/ folder"))
        break  # the shortest name is libsiamese.so.N, the soname
    found = ctypes.util.find_library("siamese")
    if found:
        out.append((found, "ctypes.util.find_library"))
    return out


def load() -> Tuple[ctypes.CDLL, str]:
    """The loaded library (a CDLL: every call releases the GIL) and the path or name it came
    from. Raises OSError naming every place tried."""
    tried: List[str] = []
    for name, origin in _candidates():
        if os.sep in name and not os.path.exists(name):
            tried.append(f"{name} ({origin}): no such file")
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            tried.append(f"{name} ({origin}): {e}")
    hint = ("set SIAMESE_LIBRARY to the library's path (a build tree: "
            "SIAMESE_LIBRARY=build/lib/libsiamese.so.0), or install it (meson install)")
    raise OSError("libsiamese not found: " + ("; ".join(tried) if tried else "nowhere to look") +
                  "; " + hint)


def expected_abi() -> Optional[int]:
    """SM_ABI_MAJOR of the build this package was installed with, None in a checkout."""
    if _build_config is None:
        return None
    return getattr(_build_config, "ABI_MAJOR", None)
