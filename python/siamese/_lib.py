# SPDX-License-Identifier: MIT
"""The C ABI as ctypes sees it: the library, its structs and every function's prototype.

One table per public header. A new C call is one row here and a method where it belongs.
Functions the loaded library does not export (an older libsiamese) are bound to a stub that
raises siamese.UnsupportedError naming the call, so the package still imports.

ctypes.CDLL releases the GIL for the duration of every foreign call: long calls (a training
step, a prediction, an evaluation) let other Python threads run, and several threads may run
library calls at once where the C thread rules allow it.
"""
from __future__ import annotations

import types
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int,
                    c_int32, c_int64, c_size_t, c_uint, c_uint32, c_uint64, c_void_p)
from typing import Any, Callable, Dict, List, Tuple

from . import _loader

lib, path = _loader.load()

c_status = c_int
c_handle = c_void_p
c_fptr = c_void_p  # float arrays: numpy's data pointer passed as an int
c_sizep = POINTER(c_size_t)


# ---- structs (layouts as in the headers; only ever appended there) ----------------------------

class EvalResultC(Structure):
    """sm_eval_result (siamese/evaluation.h)."""
    _fields_ = [("struct_size", c_size_t), ("kind", c_int), ("n_way", c_int),
                ("k_shot", c_int), ("trials", c_uint64), ("episodes", c_uint64),
                ("correct", c_double), ("accuracy", c_double), ("chance", c_double),
                ("tied", c_uint64), ("score_mean", c_double), ("score_std", c_double)]


class DatasetOptionsC(Structure):
    """sm_dataset_options (siamese/data.h)."""
    _fields_ = [("struct_size", c_size_t), ("resize", c_int),
                ("exclude", POINTER(c_char_p)), ("n_exclude", c_size_t)]


class HealthC(Structure):
    """sm_health (siamese/train.h): valid only during the callback."""
    _fields_ = [("struct_size", c_size_t), ("iteration", c_int64), ("loss", c_float),
                ("smoothed_loss", c_float), ("val_accuracy", c_double),
                ("val_score_mean", c_double), ("val_score_std", c_double),
                ("val_pairs", c_uint64), ("flags", c_uint), ("val_status", c_int),
                ("message", c_char_p)]


class GalleryOptionsC(Structure):
    _fields_ = [("struct_size", c_size_t), ("storage", c_int)]


class GalleryLoadOptionsC(Structure):
    _fields_ = [("struct_size", c_size_t), ("no_map", c_int), ("skip_row_check", c_int)]


class GalleryIndexOptionsC(Structure):
    _fields_ = [("struct_size", c_size_t), ("kind", c_int32), ("candidates", c_uint32),
                ("effort", c_uint32), ("hnsw_m", c_uint32), ("hnsw_ef_construction", c_uint32),
                ("ivf_lists", c_uint32), ("build_threads", c_uint32), ("reserved0", c_uint32),
                ("seed", c_uint64)]


class GalleryIndexStatsC(Structure):
    _fields_ = [("struct_size", c_size_t), ("kind", c_int32), ("candidates", c_uint32),
                ("effort", c_uint32), ("ivf_lists", c_uint32), ("examples", c_size_t),
                ("dims_indexed", c_size_t), ("dims_positive", c_size_t),
                ("positive_weight", c_double), ("bytes", c_size_t)]


class GalleryMatchC(Structure):
    """sm_gallery_match (siamese/gallery.h): a fixed POD."""
    _fields_ = [("label", c_size_t), ("score", c_double), ("rank", c_size_t),
                ("tied", c_size_t), ("reserved", c_uint64 * 4)]


LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
PROGRESS_FN = CFUNCTYPE(None, c_void_p, c_int64, c_float)
HEALTH_FN = CFUNCTYPE(None, c_void_p, POINTER(HealthC))

# ---- prototypes: name -> (restype, argtypes), one table per header ----------------------------

Proto = Tuple[Any, List[Any]]

COMMON: Dict[str, Proto] = {
    "sm_version_number": (c_int, []),
    "sm_version_string": (c_char_p, []),
    "sm_abi_version": (c_int, []),
    "sm_status_name": (c_char_p, [c_int]),
    "sm_status_str": (c_char_p, [c_int]),
    "sm_last_error": (c_char_p, []),
    "sm_set_log_callback": (None, [LOG_FN, c_void_p, c_int]),
    "sm_set_limit": (c_status, [c_int, c_uint64]),
    "sm_get_limit": (c_uint64, [c_int]),
}

BACKENDS: Dict[str, Proto] = {
    "sm_backend_kind_name": (c_char_p, [c_int]),
    "sm_backend_probe": (c_status, [c_int]),
    "sm_backend_create": (c_status, [c_int, POINTER(c_handle)]),
    "sm_backend_destroy": (None, [c_handle]),
    "sm_backend_name": (c_char_p, [c_handle]),
    "sm_backend_get_kind": (c_int, [c_handle]),
    "sm_backend_set_threads": (c_status, [c_handle, c_int]),
    "sm_backend_get_threads": (c_int, [c_handle]),
    "sm_backend_fallback_reason": (c_char_p, [c_handle]),
    "sm_backend_set_option": (c_status, [c_handle, c_int, c_int64]),
    "sm_backend_get_option": (c_status, [c_handle, c_int, POINTER(c_int64)]),
}

ARCH: Dict[str, Proto] = {
    "sm_arch_create": (c_status, [c_int, c_int, c_int, POINTER(c_handle)]),
    "sm_arch_create_koch": (c_status, [POINTER(c_handle)]),
    "sm_arch_create_laptop": (c_status, [POINTER(c_handle)]),
    "sm_arch_from_string": (c_status, [c_char_p, POINTER(c_handle)]),
    "sm_arch_to_string": (c_status, [c_handle, c_void_p, c_size_t, c_sizep]),
    "sm_arch_add_conv": (c_status, [c_handle, c_int, c_int]),
    "sm_arch_add_relu": (c_status, [c_handle]),
    "sm_arch_add_maxpool": (c_status, [c_handle, c_int]),
    "sm_arch_add_flatten": (c_status, [c_handle]),
    "sm_arch_add_fc": (c_status, [c_handle, c_int]),
    "sm_arch_add_groupnorm": (c_status, [c_handle, c_int]),
    "sm_arch_num_layers": (c_size_t, [c_handle]),
    "sm_arch_get_layer": (c_status, [c_handle, c_size_t, POINTER(c_int), POINTER(c_int),
                                     POINTER(c_int)]),
    "sm_arch_input_shape": (c_status, [c_handle, POINTER(c_int), POINTER(c_int),
                                       POINTER(c_int)]),
    "sm_arch_output_size": (c_size_t, [c_handle]),
    "sm_arch_num_params": (c_size_t, [c_handle]),
    "sm_arch_destroy": (None, [c_handle]),
}

DATA: Dict[str, Proto] = {
    "sm_dataset_open": (c_status, [c_char_p, c_int, c_int, POINTER(c_char_p), c_size_t,
                                   POINTER(c_handle)]),
    "sm_dataset_open_with": (c_status, [c_char_p, c_int, c_int, POINTER(c_char_p), c_size_t,
                                        POINTER(DatasetOptionsC), POINTER(c_handle)]),
    "sm_dataset_split_alphabets": (c_status, [c_handle, c_size_t, c_uint64, POINTER(c_handle),
                                              POINTER(c_handle)]),
    "sm_dataset_create": (c_status, [c_int, c_int, POINTER(c_handle)]),
    "sm_dataset_add_image": (c_status, [c_handle, c_char_p, c_fptr]),
    "sm_dataset_create_synthetic": (c_status, [c_int, c_int, c_int, c_int, c_uint64,
                                               POINTER(c_handle)]),
    "sm_dataset_destroy": (None, [c_handle]),
    "sm_dataset_num_images": (c_size_t, [c_handle]),
    "sm_dataset_num_classes": (c_size_t, [c_handle]),
    "sm_dataset_num_alphabets": (c_size_t, [c_handle]),
    "sm_dataset_image_size": (c_status, [c_handle, POINTER(c_int), POINTER(c_int)]),
    "sm_dataset_get_image": (c_status, [c_handle, c_size_t, c_fptr]),
    "sm_dataset_image_class": (c_size_t, [c_handle, c_size_t]),
    "sm_dataset_class_name": (c_char_p, [c_handle, c_size_t]),
    "sm_dataset_alphabet_name": (c_char_p, [c_handle, c_size_t]),
    "sm_dataset_image_source": (c_char_p, [c_handle, c_size_t]),
    "sm_sampler_create": (c_status, [c_handle, c_uint64, POINTER(c_handle)]),
    "sm_sampler_next": (c_status, [c_handle, c_size_t, c_fptr, c_fptr, c_fptr, c_void_p,
                                   c_void_p]),
    "sm_sampler_destroy": (None, [c_handle]),
    "sm_image_read_png": (c_status, [c_char_p, c_int, c_int, c_fptr]),
    "sm_image_load_png": (c_status, [c_char_p, c_int, c_int, c_fptr]),
    "sm_image_resize": (c_status, [c_fptr, c_int, c_int, c_fptr, c_int, c_int]),
    "sm_image_distort": (c_status, [c_fptr, c_int, c_int, c_uint, c_uint64, c_fptr]),
}

NETWORK: Dict[str, Proto] = {
    "sm_subnet_create": (c_status, [c_handle, c_handle, c_uint64, POINTER(c_handle)]),
    "sm_subnet_init": (c_status, [c_handle, c_int, c_uint64]),
    "sm_subnet_destroy": (None, [c_handle]),
    "sm_subnet_get_arch": (c_status, [c_handle, POINTER(c_handle)]),
    "sm_subnet_num_params": (c_size_t, [c_handle]),
    "sm_subnet_feature_dim": (c_size_t, [c_handle]),
    "sm_head_create": (c_status, [c_handle, c_size_t, c_uint64, POINTER(c_handle)]),
    "sm_head_destroy": (None, [c_handle]),
    "sm_head_feature_dim": (c_size_t, [c_handle]),
    "sm_embed": (c_status, [c_handle, c_size_t, c_fptr, c_fptr]),
    "sm_predict_pair": (c_status, [c_handle, c_handle, c_fptr, c_fptr, POINTER(c_float)]),
    "sm_predict_pairs": (c_status, [c_handle, c_handle, c_size_t, c_fptr, c_fptr, c_fptr]),
    "sm_predict_pairs_logits": (c_status, [c_handle, c_handle, c_size_t, c_fptr, c_fptr,
                                           c_fptr]),
    "sm_head_calibrate": (c_status, [c_handle, c_double, c_double, c_size_t]),
    "sm_head_calibration": (c_status, [c_handle, POINTER(c_int), POINTER(c_double),
                                       POINTER(c_double), c_sizep]),
    "sm_model_save": (c_status, [c_handle, c_handle, c_char_p]),
    "sm_model_load": (c_status, [c_handle, c_char_p, POINTER(c_handle), POINTER(c_handle)]),
}

TRAIN: Dict[str, Proto] = {
    "sm_adam_create": (c_status, [c_handle, c_handle, POINTER(c_handle)]),
    "sm_adam_destroy": (None, [c_handle]),
    "sm_adam_set": (c_status, [c_handle, c_int, c_double]),
    "sm_adam_get": (c_status, [c_handle, c_int, POINTER(c_double)]),
    "sm_adam_steps": (c_int64, [c_handle]),
    "sm_adam_lr_at": (c_status, [c_handle, c_int64, POINTER(c_double)]),
    "sm_adam_current_lr": (c_status, [c_handle, POINTER(c_double)]),
    "sm_trainer_create": (c_status, [c_handle, c_handle, c_handle, c_handle, c_uint64,
                                     POINTER(c_handle)]),
    "sm_trainer_destroy": (None, [c_handle]),
    "sm_trainer_set_param": (c_status, [c_handle, c_int, c_int64]),
    "sm_trainer_get_param": (c_status, [c_handle, c_int, POINTER(c_int64)]),
    "sm_trainer_set_real": (c_status, [c_handle, c_int, c_double]),
    "sm_trainer_get_real": (c_status, [c_handle, c_int, POINTER(c_double)]),
    "sm_trainer_set_progress": (c_status, [c_handle, PROGRESS_FN, c_void_p]),
    "sm_trainer_iteration": (c_int64, [c_handle]),
    "sm_train_step": (c_status, [c_handle, POINTER(c_float)]),
    "sm_train_step_batch": (c_status, [c_handle, c_size_t, c_fptr, c_fptr, c_fptr,
                                       POINTER(c_float)]),
    "sm_trainer_save": (c_status, [c_handle, c_char_p]),
    "sm_trainer_load": (c_status, [c_handle, c_char_p]),
    "sm_trainer_set_health": (c_status, [c_handle, c_int64, HEALTH_FN, c_void_p]),
    "sm_trainer_set_validation": (c_status, [c_handle, c_handle, c_size_t, c_uint64]),
}

EVALUATION: Dict[str, Proto] = {
    "sm_eval_kind_name": (c_char_p, [c_int]),
    "sm_verification_accuracy": (c_status, [c_handle, c_handle, c_handle, c_size_t, c_uint64,
                                            POINTER(EvalResultC)]),
    "sm_verification_accuracy_at": (c_status, [c_handle, c_handle, c_handle, c_size_t,
                                               c_uint64, c_double, POINTER(EvalResultC)]),
    "sm_verification_scores": (c_status, [c_handle, c_handle, c_handle, c_size_t, c_uint64,
                                          c_fptr, c_fptr]),
    "sm_verification_logits": (c_status, [c_handle, c_handle, c_handle, c_size_t, c_uint64,
                                          c_fptr, c_fptr]),
    "sm_calibrate_fit": (c_status, [c_size_t, c_fptr, c_fptr, POINTER(c_double),
                                    POINTER(c_double)]),
    "sm_roc_create": (c_status, [c_size_t, c_fptr, c_fptr, POINTER(c_handle)]),
    "sm_roc_destroy": (None, [c_handle]),
    "sm_roc_num_points": (c_size_t, [c_handle]),
    "sm_roc_point": (c_status, [c_handle, c_size_t, POINTER(c_double), POINTER(c_double),
                                POINTER(c_double)]),
    "sm_roc_eer": (c_status, [c_handle, POINTER(c_double), POINTER(c_double)]),
    "sm_roc_threshold_at_far": (c_status, [c_handle, c_double, POINTER(c_double),
                                           POINTER(c_double), POINTER(c_double)]),
    "sm_oneshot_episodes": (c_status, [c_handle, c_handle, c_handle, c_int, c_int, c_size_t,
                                       c_int, c_uint64, POINTER(EvalResultC)]),
    "sm_oneshot_runs_open": (c_status, [c_char_p, c_int, c_int, POINTER(c_handle)]),
    "sm_oneshot_runs_open_with": (c_status, [c_char_p, c_int, c_int,
                                             POINTER(DatasetOptionsC), POINTER(c_handle)]),
    "sm_oneshot_runs_destroy": (None, [c_handle]),
    "sm_oneshot_runs_count": (c_size_t, [c_handle]),
    "sm_oneshot_runs_num_trials": (c_size_t, [c_handle]),
    "sm_oneshot_run_info": (c_status, [c_handle, c_size_t, POINTER(c_char_p), c_sizep,
                                       c_sizep]),
    "sm_oneshot_run_image": (c_status, [c_handle, c_size_t, c_int, c_size_t, c_fptr,
                                        c_sizep]),
    "sm_oneshot_evaluate_runs": (c_status, [c_handle, c_handle, c_handle,
                                            POINTER(EvalResultC)]),
}

GALLERY: Dict[str, Proto] = {
    "sm_gallery_create": (c_status, [c_handle, c_handle, POINTER(c_handle)]),
    "sm_gallery_create_with": (c_status, [c_handle, c_handle, POINTER(GalleryOptionsC),
                                          POINTER(c_handle)]),
    "sm_gallery_storage": (c_int, [c_handle]),
    "sm_gallery_load_with": (c_status, [c_handle, c_handle, c_char_p,
                                        POINTER(GalleryLoadOptionsC), POINTER(c_handle)]),
    "sm_gallery_is_mapped": (c_int, [c_handle]),
    "sm_gallery_destroy": (None, [c_handle]),
    "sm_gallery_enrol": (c_status, [c_handle, c_char_p, c_size_t, c_fptr]),
    "sm_gallery_enrol_embeddings": (c_status, [c_handle, c_char_p, c_size_t, c_fptr]),
    "sm_gallery_enrol_path": (c_status, [c_handle, c_char_p, c_sizep]),
    "sm_gallery_remove": (c_status, [c_handle, c_char_p, c_sizep]),
    "sm_gallery_num_examples": (c_size_t, [c_handle]),
    "sm_gallery_num_labels": (c_size_t, [c_handle]),
    "sm_gallery_label_name": (c_char_p, [c_handle, c_size_t]),
    "sm_gallery_label_examples": (c_size_t, [c_handle, c_size_t]),
    "sm_gallery_find_label": (c_size_t, [c_handle, c_char_p]),
    "sm_gallery_bytes_per_example": (c_double, [c_handle]),
    "sm_gallery_identify": (c_status, [c_handle, c_size_t, c_fptr, c_size_t, c_void_p,
                                       c_sizep]),
    "sm_gallery_identify_embeddings": (c_status, [c_handle, c_size_t, c_fptr, c_size_t,
                                                  c_void_p, c_sizep]),
    "sm_gallery_verify": (c_status, [c_handle, c_char_p, c_fptr, c_double, POINTER(c_double),
                                     POINTER(c_int)]),
    "sm_gallery_save": (c_status, [c_handle, c_char_p]),
    "sm_gallery_index_available": (c_status, []),
    "sm_gallery_index_build": (c_status, [c_handle, POINTER(GalleryIndexOptionsC),
                                          POINTER(c_handle)]),
    "sm_gallery_index_destroy": (None, [c_handle]),
    "sm_gallery_index_set_search": (c_status, [c_handle, c_uint32, c_uint32]),
    "sm_gallery_index_info": (c_status, [c_handle, POINTER(GalleryIndexStatsC)]),
    "sm_gallery_index_identify": (c_status, [c_handle, c_size_t, c_fptr, c_size_t, c_void_p,
                                             c_sizep]),
    "sm_gallery_index_identify_embeddings": (c_status, [c_handle, c_size_t, c_fptr, c_size_t,
                                                        c_void_p, c_sizep]),
    "sm_gallery_load": (c_status, [c_handle, c_handle, c_char_p, POINTER(c_handle)]),
}

COMM: Dict[str, Proto] = {
    "sm_comm_open": (c_status, [c_char_p, c_handle, c_int, POINTER(c_handle)]),
    "sm_comm_local_create": (c_status, [c_int, POINTER(c_handle)]),
    "sm_comm_destroy": (None, [c_handle]),
    "sm_comm_rank": (c_int, [c_handle]),
    "sm_comm_size": (c_int, [c_handle]),
    "sm_comm_failed": (c_int, [c_handle]),
    "sm_comm_set_timeout": (c_status, [c_handle, c_double]),
    "sm_comm_set_serialized": (c_status, [c_handle, c_int]),
    "sm_comm_serialized": (c_int, [c_handle]),
    "sm_comm_broadcast": (c_status, [c_handle, c_void_p, c_size_t, c_int]),
    "sm_comm_allgather": (c_status, [c_handle, c_void_p, c_void_p, c_size_t]),
    "sm_comm_barrier": (c_status, [c_handle]),
    "sm_trainer_attach_comm": (c_status, [c_handle, c_handle]),
    "sm_comm_clock_ns": (c_int64, []),
    "sm_comm_backoff": (None, [c_uint]),
    "sm_comm_stats": (None, [c_handle, POINTER(c_uint64), POINTER(c_uint64)]),
}

TABLES = {"common.h": COMMON, "backends.h": BACKENDS, "arch.h": ARCH, "data.h": DATA,
          "network.h": NETWORK, "train.h": TRAIN, "evaluation.h": EVALUATION,
          "gallery.h": GALLERY, "comm.h": COMM}

# Exported by the library and deliberately not bound (docs/python.md says why): host
# callbacks that move bytes (a Python transport would hold the GIL inside every collective).
NOT_BOUND = frozenset({"sm_comm_create"})


class _Missing:
    """Stands for a call the loaded library lacks."""

    def __init__(self, name: str) -> None:
        self.__name__ = name

    def __call__(self, *args: Any) -> Any:
        from .errors import UnsupportedError
        raise UnsupportedError(f"{self.__name__}: the loaded libsiamese ({path}) does not "
                               "export it (an older version)", function=self.__name__)


def _bind() -> Dict[str, Callable[..., Any]]:
    out: Dict[str, Callable[..., Any]] = {}
    for table in TABLES.values():
        for name, (restype, argtypes) in table.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                out[name] = _Missing(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            out[name] = fn
    return out


fns = _bind()
# The calls as attributes: `from ._lib import F`, then F.sm_train_step(...)
F = types.SimpleNamespace(**fns)


def text(raw: bytes | None) -> str:
    """A C string from the library (UTF-8, possibly a user's label or path)."""
    return "" if raw is None else raw.decode("utf-8", errors="replace")


def last_error() -> str:
    """sm_last_error() of the calling thread."""
    return text(fns["sm_last_error"]())


def c_path(p: Any) -> bytes:
    """A path (str, bytes or os.PathLike) as the C side takes it."""
    import os
    return os.fsencode(p)


def c_text(s: str) -> bytes:
    return s.encode("utf-8")


__all__ = ["lib", "path", "F", "fns", "text", "last_error", "c_path", "c_text", "c_status",
           "EvalResultC", "DatasetOptionsC", "HealthC", "GalleryMatchC", "GalleryOptionsC",
           "GalleryLoadOptionsC", "GalleryIndexOptionsC", "GalleryIndexStatsC", "LOG_FN",
           "PROGRESS_FN", "HEALTH_FN", "c_uint32", "TABLES", "NOT_BOUND"]
