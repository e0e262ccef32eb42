# SPDX-License-Identifier: MIT
"""Evaluation (siamese/evaluation.h): verification, N-way k-shot episodes, the official
one-shot runs, ROC curves, equal error rate, Platt calibration.

Every evaluation only reads the model and data: any number of threads may evaluate at once
(the GIL is released during each call), as long as nothing trains the model meanwhile.
"""
from __future__ import annotations

import ctypes
from ctypes import byref, c_char_p, c_double, c_size_t, c_void_p
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from . import _arrays
from ._handles import Handle, check
from ._lib import F, DatasetOptionsC, EvalResultC, c_path, text
from .data import SIZE_MAX, Dataset, PathLike
from .errors import InvalidArgumentError
from .model import Model

EVAL_KINDS = {1: "verification", 2: "oneshot_runs", 3: "episodes_within",
              4: "episodes_between"}


class EvalResult(NamedTuple):
    """An sm_eval_result: which kind of number, and the number."""
    kind: str  # "verification", "oneshot_runs", "episodes_within", "episodes_between"
    description: str  # sm_eval_kind_name: "random-pair verification", ...
    n_way: int
    k_shot: int
    trials: int
    episodes: int
    correct: float
    accuracy: float
    chance: float
    tied: int
    score_mean: float
    score_std: float


def _new_result() -> EvalResultC:
    r = EvalResultC()
    r.struct_size = ctypes.sizeof(EvalResultC)
    return r


def _result(r: EvalResultC) -> EvalResult:
    return EvalResult(EVAL_KINDS.get(r.kind, str(r.kind)), text(F.sm_eval_kind_name(r.kind)),
                      r.n_way, r.k_shot, int(r.trials), int(r.episodes), r.correct, r.accuracy,
                      r.chance, int(r.tied), r.score_mean, r.score_std)


def verification_accuracy(model: Model, dataset: Dataset, n_pairs: int = 750, seed: int = 1,
                          threshold: Optional[float] = None) -> EvalResult:
    """Random-pair verification (sm_verification_accuracy): the pairs of
    Sampler(dataset, seed), a pair right when its score rounds to its label, or, with a
    threshold, when score >= threshold reads "same" (sm_verification_accuracy_at)."""
    r = _new_result()
    with model._use(dataset) as (s, h, d):
        if threshold is None:
            st = F.sm_verification_accuracy(s, h, d, n_pairs, seed, byref(r))
            check(st, "sm_verification_accuracy")
        else:
            st = F.sm_verification_accuracy_at(s, h, d, n_pairs, seed, threshold, byref(r))
            check(st, "sm_verification_accuracy_at")
    return _result(r)


def verification_scores(model: Model, dataset: Dataset, n_pairs: int,
                        seed: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of the pairs verification_accuracy judges (sm_verification_scores)."""
    return _labelled(model, dataset, n_pairs, seed, "sm_verification_scores")


def verification_logits(model: Model, dataset: Dataset, n_pairs: int,
                        seed: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """(logits, labels) of the same pairs (sm_verification_logits): what calibrate_fit takes."""
    return _labelled(model, dataset, n_pairs, seed, "sm_verification_logits")


def _labelled(model: Model, dataset: Dataset, n: int, seed: int,
              fn: str) -> Tuple[np.ndarray, np.ndarray]:
    values = np.empty(n, np.float32)
    labels = np.empty(n, np.float32)
    with model._use(dataset) as (s, h, d):
        check(getattr(F, fn)(s, h, d, n, seed, values.ctypes.data, labels.ctypes.data), fn)
    return values, labels


def oneshot_episodes(model: Model, dataset: Dataset, n_way: int = 20, k_shot: int = 1,
                     n_episodes: int = 400, within_alphabet: bool = True,
                     seed: int = 1) -> EvalResult:
    """N-way k-shot episodes drawn from `dataset` (sm_oneshot_episodes)."""
    r = _new_result()
    with model._use(dataset) as (s, h, d):
        check(F.sm_oneshot_episodes(s, h, d, n_way, k_shot, n_episodes, int(within_alphabet),
                                    seed, byref(r)), "sm_oneshot_episodes")
    return _result(r)


def calibrate_fit(logits: Any, labels: Any) -> Tuple[float, float]:
    """Platt scaling fitted to labelled logits (sm_calibrate_fit): (scale, shift) for
    Model.calibrate."""
    z = _arrays.floats(logits, "sm_calibrate_fit").reshape(-1)
    y = _arrays.floats(labels, "sm_calibrate_fit").reshape(-1)
    if z.shape != y.shape:
        raise InvalidArgumentError(f"sm_calibrate_fit: {z.shape[0]} logits, {y.shape[0]} labels",
                                   function="sm_calibrate_fit")
    scale, shift = c_double(), c_double()
    check(F.sm_calibrate_fit(z.shape[0], z.ctypes.data, y.ctypes.data, byref(scale),
                             byref(shift)), "sm_calibrate_fit")
    return scale.value, shift.value


class Roc(Handle):
    """The ROC curve of labelled pairs (sm_roc_create): scores in [0, 1], labels 1 / 0.

    Threads: read-only after creation: any number of threads.
    """

    def __init__(self, scores: Any, labels: Any) -> None:
        s = _arrays.floats(scores, "sm_roc_create").reshape(-1)
        y = _arrays.floats(labels, "sm_roc_create").reshape(-1)
        if s.shape != y.shape:
            raise InvalidArgumentError(f"sm_roc_create: {s.shape[0]} scores, {y.shape[0]} labels",
                                       function="sm_roc_create")
        out = c_void_p()
        check(F.sm_roc_create(s.shape[0], s.ctypes.data, y.ctypes.data, byref(out)),
              "sm_roc_create")
        self._own(self._resource("Roc", out.value, F.sm_roc_destroy))

    def __len__(self) -> int:
        return int(F.sm_roc_num_points(self._ptr()))

    def point(self, index: int) -> Tuple[float, float, float]:
        """(threshold, far, frr) of point `index` (the last threshold is +inf)."""
        t, far, frr = c_double(), c_double(), c_double()
        check(F.sm_roc_point(self._ptr(), index, byref(t), byref(far), byref(frr)),
              "sm_roc_point")
        return t.value, far.value, frr.value

    def points(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, far, frr) arrays over the whole curve."""
        pts = np.array([self.point(i) for i in range(len(self))], dtype=np.float64)
        pts = pts.reshape(-1, 3)
        return pts[:, 0], pts[:, 1], pts[:, 2]

    def eer(self) -> Tuple[float, float]:
        """(equal error rate, its threshold) (sm_roc_eer)."""
        e, t = c_double(), c_double()
        check(F.sm_roc_eer(self._ptr(), byref(e), byref(t)), "sm_roc_eer")
        return e.value, t.value

    def threshold_at_far(self, target_far: float) -> Tuple[float, float, float]:
        """(threshold, far, frr): the lowest threshold whose FAR <= target_far
        (sm_roc_threshold_at_far)."""
        t, far, frr = c_double(), c_double(), c_double()
        check(F.sm_roc_threshold_at_far(self._ptr(), target_far, byref(t), byref(far),
                                        byref(frr)), "sm_roc_threshold_at_far")
        return t.value, far.value, frr.value


class RunInfo(NamedTuple):
    name: str
    n_candidates: int
    n_queries: int


class OneshotRuns(Handle):
    """The official one-shot runs (Lake et al.), decoded once (sm_oneshot_runs_open_with):
    a folder or .zip of runNN/ folders. Read-only after opening: any number of threads."""

    def __init__(self, path: PathLike, height: int = 105, width: int = 105, *,
                 resize: bool = False) -> None:
        out = c_void_p()
        if resize:
            opts = DatasetOptionsC()
            opts.struct_size = ctypes.sizeof(DatasetOptionsC)
            opts.resize = 1
            check(F.sm_oneshot_runs_open_with(c_path(path), height, width, byref(opts),
                                              byref(out)), "sm_oneshot_runs_open_with")
        else:
            check(F.sm_oneshot_runs_open(c_path(path), height, width, byref(out)),
                  "sm_oneshot_runs_open")
        self.image_size = (height or 105, width or 105)
        self._own(self._resource("OneshotRuns", out.value, F.sm_oneshot_runs_destroy))

    def __len__(self) -> int:
        return int(F.sm_oneshot_runs_count(self._ptr()))

    @property
    def num_trials(self) -> int:
        return int(F.sm_oneshot_runs_num_trials(self._ptr()))

    def info(self, run: int) -> RunInfo:
        name, nc, nq = c_char_p(), c_size_t(), c_size_t()
        check(F.sm_oneshot_run_info(self._ptr(), run, byref(name), byref(nc), byref(nq)),
              "sm_oneshot_run_info")
        return RunInfo(text(name.value), int(nc.value), int(nq.value))

    def image(self, run: int, index: int, query: bool = False) -> Tuple[np.ndarray,
                                                                         Optional[int]]:
        """(pixels (H, W), the query's correct candidate or None) (sm_oneshot_run_image)."""
        out = np.empty(self.image_size, np.float32)
        answer = c_size_t()
        check(F.sm_oneshot_run_image(self._ptr(), run, int(query), index, out.ctypes.data,
                                     byref(answer)), "sm_oneshot_run_image")
        return out, (None if answer.value == SIZE_MAX else int(answer.value))

    def evaluate(self, model: Model) -> EvalResult:
        """Every query against its run's candidates (sm_oneshot_evaluate_runs)."""
        r = _new_result()
        with model._use(self) as (s, h, runs):
            check(F.sm_oneshot_evaluate_runs(s, h, runs, byref(r)), "sm_oneshot_evaluate_runs")
        return _result(r)
