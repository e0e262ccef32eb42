# SPDX-License-Identifier: MIT
"""Architectures (siamese/arch.h): the twin as a list of layers, its text form, the presets."""
from __future__ import annotations

import ctypes
from ctypes import byref, c_int, c_size_t, c_void_p
from typing import List, Tuple, Union

from ._handles import Handle, check
from ._lib import F, c_text

LAYER_KINDS = {1: "conv", 2: "relu", 3: "maxpool", 4: "flatten", 5: "fc", 6: "groupnorm"}


class Arch(Handle):
    """An architecture. ``Arch("koch")``, ``Arch("laptop")``, ``Arch("1x28x28:conv8k3,relu,
    flatten,fc16")`` (sm_arch_from_string), or ``Arch.empty(c, h, w)`` then the add_* calls.

    Threads: reading (str(), layers, shapes) from any number of threads; the add_* calls modify
    it. Models copy their architecture: an Arch may be closed once models are made from it.
    """

    def __init__(self, text: str = "koch") -> None:
        out = c_void_p()
        check(F.sm_arch_from_string(c_text(text), byref(out)), "sm_arch_from_string")
        self._own(self._resource("Arch", out.value, F.sm_arch_destroy))

    @classmethod
    def _wrap(cls, ptr: int) -> "Arch":
        a = cls.__new__(cls)
        a._own(a._resource("Arch", ptr, F.sm_arch_destroy))
        return a

    @classmethod
    def empty(cls, channels: int, height: int, width: int) -> "Arch":
        """An empty architecture for channels x height x width inputs (sm_arch_create)."""
        out = c_void_p()
        check(F.sm_arch_create(channels, height, width, byref(out)), "sm_arch_create")
        return cls._wrap(out.value)

    @classmethod
    def koch(cls) -> "Arch":
        """The reference (sm_arch_create_koch): 1x105x105, 27.7 M parameters."""
        out = c_void_p()
        check(F.sm_arch_create_koch(byref(out)), "sm_arch_create_koch")
        return cls._wrap(out.value)

    @classmethod
    def laptop(cls) -> "Arch":
        """The CPU-friendly preset (sm_arch_create_laptop): 0.87 M parameters."""
        out = c_void_p()
        check(F.sm_arch_create_laptop(byref(out)), "sm_arch_create_laptop")
        return cls._wrap(out.value)

    def _add(self, fn: str, *args: int) -> "Arch":
        with self._use() as (p,):
            check(getattr(F, fn)(p, *args), fn)
        return self

    def add_conv(self, out_channels: int, kernel_size: int) -> "Arch":
        return self._add("sm_arch_add_conv", out_channels, kernel_size)

    def add_relu(self) -> "Arch":
        return self._add("sm_arch_add_relu")

    def add_maxpool(self, size: int) -> "Arch":
        return self._add("sm_arch_add_maxpool", size)

    def add_flatten(self) -> "Arch":
        return self._add("sm_arch_add_flatten")

    def add_fc(self, out_features: int) -> "Arch":
        return self._add("sm_arch_add_fc", out_features)

    def add_groupnorm(self, groups: int) -> "Arch":
        return self._add("sm_arch_add_groupnorm", groups)

    def __str__(self) -> str:
        """The text form (sm_arch_to_string)."""
        with self._use() as (p,):
            needed = c_size_t()
            buf = ctypes.create_string_buffer(256)
            st = F.sm_arch_to_string(p, buf, len(buf), byref(needed))
            if st == 11:  # SM_ERR_LIMIT: too small, needed says how much
                buf = ctypes.create_string_buffer(needed.value + 1)
                st = F.sm_arch_to_string(p, buf, len(buf), byref(needed))
            check(st, "sm_arch_to_string")
            return buf.value.decode()

    def __repr__(self) -> str:
        return "<siamese.Arch closed>" if self.closed else f"<siamese.Arch {self}>"

    def __len__(self) -> int:
        return int(F.sm_arch_num_layers(self._ptr()))

    @property
    def layers(self) -> List[Tuple[str, int, int]]:
        """(kind, a, b) per layer: conv (out channels, kernel), maxpool (size, 0), fc
        (features, 0), groupnorm (groups, 0), relu and flatten (0, 0)."""
        out = []
        p = self._ptr()
        for i in range(len(self)):
            kind, a, b = c_int(), c_int(), c_int()
            check(F.sm_arch_get_layer(p, i, byref(kind), byref(a), byref(b)),
                  "sm_arch_get_layer")
            out.append((LAYER_KINDS.get(kind.value, str(kind.value)), a.value, b.value))
        return out

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """(channels, height, width)."""
        c, h, w = c_int(), c_int(), c_int()
        check(F.sm_arch_input_shape(self._ptr(), byref(c), byref(h), byref(w)),
              "sm_arch_input_shape")
        return c.value, h.value, w.value

    @property
    def output_size(self) -> int:
        return int(F.sm_arch_output_size(self._ptr()))

    @property
    def num_params(self) -> int:
        return int(F.sm_arch_num_params(self._ptr()))


def as_arch(a: Union[Arch, str]) -> Arch:
    return a if isinstance(a, Arch) else Arch(a)
