# SPDX-License-Identifier: MIT
"""Training (siamese/train.h): Adam, the trainer and its step, settings by name, checkpoints
that resume exactly, progress and health callbacks."""
from __future__ import annotations

from ctypes import byref, c_double, c_float, c_int64, c_void_p
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional

from . import _arrays, settings
from ._handles import Handle, check
from ._lib import F, HEALTH_FN, PROGRESS_FN, HealthC, c_path, text
from .data import Dataset, PathLike
from .errors import InvalidArgumentError
from .model import Model


class Adam(Handle):
    """Adam state for a model's parameters (sm_adam_create; borrows the subnet and head).

    set/get take the settings table's adam_* names ("adam_lr", "adam_schedule", ...).
    Threads: its owner trainer's rules (one thread at a time while training).
    """

    def __init__(self, model: Model) -> None:
        out = c_void_p()
        with model._use() as (s, h):
            check(F.sm_adam_create(s, h, byref(out)), "sm_adam_create")
        self._own(self._resource("Adam", out.value, F.sm_adam_destroy, [model]))

    def set(self, name: str, value: Any) -> None:
        row = settings.find(name)
        if row.api != settings.ADAM:
            raise InvalidArgumentError(f"'{name}' is a trainer setting, not Adam's",
                                       function="Adam.set")
        with self._use() as (p,):
            check(F.sm_adam_set(p, row.key, settings.to_c(row, value)), "sm_adam_set")

    def get(self, name: str) -> Any:
        row = settings.find(name)
        if row.api != settings.ADAM:
            raise InvalidArgumentError(f"'{name}' is a trainer setting, not Adam's",
                                       function="Adam.get")
        v = c_double()
        check(F.sm_adam_get(self._ptr(), row.key, byref(v)), "sm_adam_get")
        return settings.from_c(row, v.value)

    @property
    def steps(self) -> int:
        """Updates applied (sm_adam_steps)."""
        return int(F.sm_adam_steps(self._ptr()))

    def lr_at(self, step: int) -> float:
        """The learning rate of the update with 1-based number `step` (sm_adam_lr_at)."""
        v = c_double()
        check(F.sm_adam_lr_at(self._ptr(), step, byref(v)), "sm_adam_lr_at")
        return v.value

    @property
    def current_lr(self) -> float:
        """The learning rate of the last update applied, or of the first (sm_adam_current_lr)."""
        v = c_double()
        check(F.sm_adam_current_lr(self._ptr(), byref(v)), "sm_adam_current_lr")
        return v.value


HEALTH_FLAGS = {1: "has_validation", 2: "stuck", 4: "collapsed", 8: "validation_failed"}


class Health(NamedTuple):
    """One health report (sm_health)."""
    iteration: int
    loss: float
    smoothed_loss: float
    val_accuracy: float
    val_score_mean: float
    val_score_std: float
    val_pairs: int
    flags: frozenset  # names of HEALTH_FLAGS
    val_status: str  # "SM_OK" or why validation failed
    message: str  # plain-words warnings, "" when all is well


def _health(h: HealthC) -> Health:
    flags = frozenset(n for bit, n in HEALTH_FLAGS.items() if h.flags & bit)
    return Health(int(h.iteration), float(h.loss), float(h.smoothed_loss),
                  float(h.val_accuracy), float(h.val_score_mean), float(h.val_score_std),
                  int(h.val_pairs), flags, text(F.sm_status_name(h.val_status)),
                  text(h.message))


class Trainer(Handle):
    """Ties a model, an Adam state and a dataset (all borrowed: they live while it does) with
    a seeded pair sampler (sm_trainer_create)::

        tr = siamese.Trainer(model, dataset, seed=3, adam_lr=1e-3, batch_size=32)
        for _ in range(100):
            loss = tr.step()
        tr.save("model.safetensors")           # resumes exactly: tr.load(...)

    Settings by name: tr.set("pk_classes", 16), tr.get("adam_lr"), tr.update(...), or the
    same names as properties (tr.batch_size = 32). settings.TABLE lists them.

    Threads: step(), step_batch(), load() and set() modify the trainer, its model and Adam
    state: one thread at a time, and nothing may predict with the model meanwhile (the C
    rule). The GIL is released during a step; progress and health callbacks run on the
    stepping thread and must not call back into the trainer.
    """

    def __init__(self, model: Model, dataset: Optional[Dataset] = None, seed: int = 1, *,
                 adam: Optional[Adam] = None, **values: Any) -> None:
        self.model = model
        self.dataset = dataset
        self._owns_adam = adam is None
        self.adam = Adam(model) if adam is None else adam
        self.validation: Optional[Dataset] = None
        self._callbacks: Dict[str, Any] = {}
        self._cb_errors: List[BaseException] = []
        out = c_void_p()
        deps: List[Handle] = [model, self.adam] + ([dataset] if dataset is not None else [])
        with model._use(self.adam, *([dataset] if dataset is not None else [])) as ptrs:
            s, h, a = ptrs[:3]
            d = ptrs[3] if dataset is not None else None
            check(F.sm_trainer_create(s, h, a, d, seed, byref(out)), "sm_trainer_create")
        self._own(self._resource("Trainer", out.value, F.sm_trainer_destroy, deps))
        if values:
            self.update(values)

    def close(self) -> None:
        """Closes the trainer, and the Adam state it made (not one it was given)."""
        super().close()
        if self._owns_adam:
            self.adam.close()

    # ---- settings ------------------------------------------------------------------------------

    def set(self, name: str, value: Any) -> None:
        """Sets one setting of the table (Adam's or the trainer's) by its name."""
        row = settings.find(name)
        v = settings.to_c(row, value)
        if row.api == settings.ADAM:
            self.adam.set(name, value)
            return
        with self._use() as (p,):
            if row.api == settings.PARAM:
                if v != int(v):
                    raise InvalidArgumentError(f"{name}: wants a whole number, got {value!r}",
                                               function="set")
                check(F.sm_trainer_set_param(p, row.key, int(v)), "sm_trainer_set_param")
            else:
                check(F.sm_trainer_set_real(p, row.key, v), "sm_trainer_set_real")

    def get(self, name: str) -> Any:
        row = settings.find(name)
        if row.api == settings.ADAM:
            return self.adam.get(name)
        p = self._ptr()
        if row.api == settings.PARAM:
            i = c_int64()
            check(F.sm_trainer_get_param(p, row.key, byref(i)), "sm_trainer_get_param")
            return settings.from_c(row, float(i.value))
        d = c_double()
        check(F.sm_trainer_get_real(p, row.key, byref(d)), "sm_trainer_get_real")
        return settings.from_c(row, d.value)

    def update(self, values: Optional[Mapping[str, Any]] = None, **kw: Any) -> None:
        """Sets several settings, in an order that works (P x K's K before P)."""
        merged = dict(values or {}, **kw)
        for name in merged:
            settings.find(name)
        for name in settings.ORDER:
            if name in merged:
                self.set(name, merged[name])

    @property
    def settings(self) -> Dict[str, Any]:
        """Every setting's current value, by name."""
        return {row.name: self.get(row.name) for row in settings.TABLE}

    # ---- training ------------------------------------------------------------------------------

    def step(self) -> float:
        """One iteration (sm_train_step): returns the batch loss."""
        loss = c_float()
        with self._use() as ptrs:
            st = F.sm_train_step(ptrs[0], byref(loss))
        check(st, "sm_train_step")
        self._reraise()
        return float(loss.value)

    def step_batch(self, left: Any, right: Any, labels: Any) -> float:
        """One iteration on the caller's pairs (sm_train_step_batch); labels 1 = similar."""
        shape = self.model.input_shape
        fl, n = _arrays.batch(left, shape, "sm_train_step_batch")
        fr, nr = _arrays.batch(right, shape, "sm_train_step_batch")
        lab = _arrays.floats(labels, "sm_train_step_batch").reshape(-1)
        if nr != n or lab.shape[0] != n:
            raise InvalidArgumentError(f"sm_train_step_batch: {n} left, {nr} right images and "
                                       f"{lab.shape[0]} labels", function="sm_train_step_batch")
        loss = c_float()
        with self._use() as ptrs:
            st = F.sm_train_step_batch(ptrs[0], n, fl.ctypes.data, fr.ctypes.data,
                                       lab.ctypes.data, byref(loss))
        check(st, "sm_train_step_batch")
        self._reraise()
        return float(loss.value)

    @property
    def iteration(self) -> int:
        """Completed iterations (sm_trainer_iteration)."""
        return int(F.sm_trainer_iteration(self._ptr()))

    def save(self, path: PathLike) -> None:
        """Everything needed to resume exactly, atomically (sm_trainer_save)."""
        with self._use() as (p,):
            check(F.sm_trainer_save(p, c_path(path)), "sm_trainer_save")

    def load(self, path: PathLike) -> None:
        """Restores a file written by save() into this trainer (sm_trainer_load)."""
        with self._use() as ptrs:
            check(F.sm_trainer_load(ptrs[0], c_path(path)), "sm_trainer_load")

    # ---- callbacks, validation, communicators ----------------------------------------------------

    def _reraise(self) -> None:
        if self._cb_errors:
            e = self._cb_errors[0]
            self._cb_errors.clear()
            raise e

    def set_progress(self, fn: Optional[Callable[[int, float], None]]) -> None:
        """fn(iteration, loss) after every successful step, on the stepping thread
        (sm_trainer_set_progress); None removes it. An exception it raises is raised from
        step() after the step (which stays applied)."""
        errors = self._cb_errors

        def call(_user: Any, iteration: int, loss: float) -> None:
            try:
                fn(int(iteration), float(loss))  # type: ignore[misc]
            except BaseException as e:  # raised again by step()
                errors.append(e)

        cb = PROGRESS_FN(call) if fn is not None else PROGRESS_FN()
        with self._use() as (p,):
            check(F.sm_trainer_set_progress(p, cb, None), "sm_trainer_set_progress")
        self._callbacks["progress"] = cb  # kept alive while C holds it

    def set_health(self, every: int, fn: Optional[Callable[[Health], None]]) -> None:
        """fn(Health) after every `every` successful steps (sm_trainer_set_health); None: no
        reports. Exceptions as set_progress."""
        errors = self._cb_errors

        def call(_user: Any, h: Any) -> None:
            try:
                fn(_health(h.contents))  # type: ignore[misc]
            except BaseException as e:
                errors.append(e)

        cb = HEALTH_FN(call) if fn is not None else HEALTH_FN()
        with self._use() as (p,):
            check(F.sm_trainer_set_health(p, every, cb, None), "sm_trainer_set_health")
        self._callbacks["health"] = cb

    def set_validation(self, dataset: Optional[Dataset], n_pairs: int = 300,
                       seed: int = 1) -> None:
        """Health reports measure verification accuracy on `n_pairs` pairs of `dataset`
        (sm_trainer_set_validation; None: none). The dataset is borrowed until replaced."""
        res = self._resources[0]
        if dataset is None:
            with self._use() as (p,):
                check(F.sm_trainer_set_validation(p, None, n_pairs, seed),
                      "sm_trainer_set_validation")
        else:
            with self._use() as (p,), dataset._use() as (d,):
                check(F.sm_trainer_set_validation(p, d, n_pairs, seed),
                      "sm_trainer_set_validation")
            res.add_dep(dataset._resources[0])
        if self.validation is not None:
            res.drop_dep(self.validation._resources[0])
        self.validation = dataset

    def attach_comm(self, comm: Any) -> None:
        """Data-parallel training (sm_trainer_attach_comm; siamese.Comm); None detaches.
        Collective: every rank calls it."""
        res = self._resources[0]
        if comm is None:
            with self._use() as (p,):
                check(F.sm_trainer_attach_comm(p, None), "sm_trainer_attach_comm")
        else:
            with self._use() as (p,), comm._use() as (c,):
                check(F.sm_trainer_attach_comm(p, c), "sm_trainer_attach_comm")
            res.add_dep(comm._resources[0])
        old = getattr(self, "_comm", None)
        if old is not None:
            res.drop_dep(old._resources[0])
        self._comm = comm

    def __repr__(self) -> str:
        if self.closed:
            return "<siamese.Trainer closed>"
        return f"<siamese.Trainer at iteration {self.iteration}>"


def _setting_property(row: settings.Setting) -> property:
    def fget(self: Trainer) -> Any:
        return self.get(row.name)

    def fset(self: Trainer, value: Any) -> None:
        self.set(row.name, value)

    return property(fget, fset, doc=row.doc)


for _row in settings.TABLE:
    setattr(Trainer, _row.name, _setting_property(_row))
del _row
