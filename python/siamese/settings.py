# SPDX-License-Identifier: MIT
"""The trainer's and Adam's settings, by name: the library's settings table
(lib/train/settings.c) as Python sees it.

Names are the table's checkpoint keys (docs/checkpoint-format.md): stable, and the same words
a checkpoint's metadata uses. Each row says which public call reaches the value
(sm_adam_set / sm_trainer_set_param / sm_trainer_set_real), its key and how a Python value
maps to it. Ranges are the library's to check: a value out of range raises
InvalidArgumentError with the library's message, and the setting keeps its value.

python/tests/test_settings_table.py reads lib/train/settings.c and fails when a row is missing
here, so a new C setting is one line below.
"""
from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional

from .data import distort_mask
from .errors import InvalidArgumentError

ADAM, PARAM, REAL = "adam", "param", "real"

SCHEDULES = {"constant": 0, "cosine": 1, "step": 2}
PK_LOSSES = {"bce": 0, "bce-unweighted": 1, "softmax": 2}  # siamese-train --pk-loss's names


class Setting(NamedTuple):
    name: str  # the checkpoint key
    api: str  # ADAM, PARAM or REAL
    key: int  # sm_adam_param, sm_trainer_param or sm_trainer_real
    kind: str  # "float", "int", "bool", "enum", "distort"
    names: Optional[Dict[str, int]] = None  # an enum's values by name
    doc: str = ""


TABLE = (
    Setting("adam_lr", ADAM, 1, "float", doc="learning rate, (0, 1], default 6e-5"),
    Setting("adam_beta1", ADAM, 2, "float", doc="[0, 1), default 0.9"),
    Setting("adam_beta2", ADAM, 3, "float", doc="[0, 1), default 0.99"),
    Setting("adam_eps", ADAM, 4, "float", doc="(0, 1], default 1e-8"),
    Setting("adam_warmup_steps", ADAM, 5, "int", doc="linear warm-up steps, default 0"),
    Setting("adam_schedule", ADAM, 6, "enum", SCHEDULES, "constant, cosine or step"),
    Setting("adam_schedule_steps", ADAM, 7, "int", doc="cosine's length or step's period"),
    Setting("adam_min_lr_factor", ADAM, 8, "float", doc="cosine's floor, [0, 1]"),
    Setting("adam_step_gamma", ADAM, 9, "float", doc="step decay's factor, (0, 1]"),
    Setting("adam_weight_decay_conv", ADAM, 10, "float", doc="L2 decay of conv weights"),
    Setting("adam_weight_decay_fc", ADAM, 11, "float", doc="L2 decay of fc weights"),
    Setting("adam_weight_decay_head", ADAM, 12, "float", doc="L2 decay of the head's weights"),
    Setting("batch_size", PARAM, 1, "int", doc="pairs per step, default 180"),
    Setting("micro_batch", PARAM, 2, "int", doc="pairs per forward/backward chunk"),
    Setting("augment", PARAM, 3, "distort", doc="distortions: False/True, 'all', parts"),
    Setting("alphabet_balanced", PARAM, 20, "bool", doc="draw an alphabet first"),
    Setting("neg_same_alphabet", REAL, 1, "float", doc="within-alphabet negatives, [0, 1]"),
    Setting("pk_classes", PARAM, 21, "int", doc="P of P x K batches, 0 = off"),
    Setting("pk_images", PARAM, 22, "int", doc="K of P x K batches, default 4"),
    Setting("pk_loss", PARAM, 23, "enum", PK_LOSSES, "bce, bce-unweighted or softmax"),
    Setting("grad_shards", PARAM, 30, "int", doc="gradient shards, default 1"),
    Setting("rotated_classes", PARAM, 24, "bool", doc="rotations as classes of their own"),
    Setting("exchange_bucket_bytes", PARAM, 31, "int",
            doc="bytes per bucket of the gradient exchange, 0 = one bucket, default 4 MiB"),
    Setting("exchange_overlap", PARAM, 32, "bool",
            doc="overlap the gradient exchange with backward (default True)"),
)

BY_NAME: Dict[str, Setting] = {s.name: s for s in TABLE}

# Applied in this order by Trainer.update(): K before P (P x K is checked against the other)
ORDER = sorted(BY_NAME, key=lambda n: (n == "pk_classes",))


def find(name: str) -> Setting:
    try:
        return BY_NAME[name]
    except KeyError:
        raise InvalidArgumentError(f"unknown setting '{name}' (known: {', '.join(BY_NAME)})",
                                   function="set") from None


def to_c(s: Setting, value: Any) -> float:
    """A Python value as the number the C call takes."""
    if s.kind == "enum" and isinstance(value, str):
        assert s.names is not None
        if value not in s.names:
            raise InvalidArgumentError(f"{s.name}: unknown value '{value}' "
                                       f"({', '.join(s.names)})", function="set")
        return float(s.names[value])
    if s.kind == "distort":
        return float(distort_mask(value))
    if s.kind == "bool":
        return float(bool(value))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{s.name}: wants a number, got {value!r}",
                                   function="set") from None


def from_c(s: Setting, value: float) -> Any:
    """The C value as Python reads it: names for enums, bool, int or float."""
    if s.kind == "enum":
        assert s.names is not None
        for n, v in s.names.items():
            if v == value:
                return n
        return int(value)
    if s.kind == "bool":
        return bool(value)
    if s.kind in ("int", "distort"):
        return int(value)
    return float(value)
