# SPDX-License-Identifier: MIT
"""The trainer: steps, settings by name, exact resume, callbacks, communicators."""
import math
import re
import threading

import numpy as np
import pytest

import siamese
from siamese import settings
from conftest import TINY


def make(backend, dataset, **kw):
    m = siamese.Model.create(backend, TINY, seed=7)
    return m, siamese.Trainer(m, dataset, seed=9, **kw)


def test_step_and_settings(backend, dataset):
    m, tr = make(backend, dataset, adam_lr=1e-3, batch_size=8)
    assert tr.iteration == 0
    losses = [tr.step() for _ in range(3)]
    assert all(0 < v < 2 for v in losses) and tr.iteration == 3
    assert tr.adam.steps == 3
    assert tr.get("adam_lr") == 1e-3 and tr.adam_lr == 1e-3
    assert tr.batch_size == 8
    tr.batch_size = 12
    assert tr.get("batch_size") == 12
    tr.update(pk_classes=4, pk_images=3, pk_loss="softmax")  # K set before P
    assert (tr.pk_classes, tr.pk_images, tr.pk_loss) == (4, 3, "softmax")
    tr.step()
    tr.pk_classes = 0
    tr.augment = True
    assert tr.augment == 15
    tr.augment = ["rotate"]
    assert tr.augment == 1
    tr.rotated_classes = True
    assert tr.rotated_classes is True
    tr.neg_same_alphabet = 0.25
    assert tr.neg_same_alphabet == 0.25
    tr.adam_schedule = "cosine"
    tr.adam_schedule_steps = 10
    assert tr.adam_schedule == "cosine"
    assert tr.adam.lr_at(1) == pytest.approx(1e-3)
    assert tr.adam.lr_at(11) < 1e-3
    assert math.isfinite(tr.adam.current_lr)
    assert set(tr.settings) == set(settings.BY_NAME)
    with pytest.raises(siamese.InvalidArgumentError, match="batch size"):
        tr.batch_size = 0
    assert tr.batch_size == 12  # unchanged
    with pytest.raises(siamese.InvalidArgumentError, match="unknown setting"):
        tr.set("learning_rate", 1)
    with pytest.raises(siamese.InvalidArgumentError, match="unknown value"):
        tr.pk_loss = "hinge"
    with pytest.raises(siamese.InvalidArgumentError):
        tr.adam.set("batch_size", 3)
    with pytest.raises(siamese.InvalidArgumentError, match="wants a number"):
        tr.adam_lr = "fast"
    with pytest.raises(siamese.InvalidArgumentError, match="whole number"):
        tr.batch_size = 8.5
    tr.close()
    m.close()


def test_step_batch(backend, dataset):
    m, tr = make(backend, dataset)
    p = siamese.Sampler(dataset, 5).next(6)
    loss = tr.step_batch(p.left, p.right, p.labels)
    assert 0 < loss < 2 and tr.iteration == 1
    with pytest.raises(siamese.InvalidArgumentError):
        tr.step_batch(p.left, p.right, p.labels[:3])
    bad = p.left.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(siamese.NumericError, match="SM_ERR_NUMERIC"):
        tr.step_batch(bad, p.right, p.labels)
    assert tr.iteration == 1  # a failed step changes nothing


def test_exact_resume(backend, dataset, tmp_path):
    """Train 6 steps in one go, or 3, save, load into a fresh trainer, 3 more: the same bits."""
    m1, t1 = make(backend, dataset, adam_lr=1e-2, batch_size=8, augment=True)
    straight = [t1.step() for _ in range(6)]
    t1.save(tmp_path / "straight.safetensors")

    m2, t2 = make(backend, dataset, adam_lr=1e-2, batch_size=8, augment=True)
    first = [t2.step() for _ in range(3)]
    t2.save(tmp_path / "half.safetensors")
    t2.close()
    m2.close()

    m3, t3 = make(backend, dataset)  # defaults: the file brings the settings
    t3.load(tmp_path / "half.safetensors")
    assert t3.iteration == 3 and t3.adam_lr == 1e-2 and t3.augment == 15
    rest = [t3.step() for _ in range(3)]
    t3.save(tmp_path / "resumed.safetensors")
    assert first + rest == straight
    assert (tmp_path / "resumed.safetensors").read_bytes() == \
        (tmp_path / "straight.safetensors").read_bytes()


def test_callbacks(backend, dataset):
    m, tr = make(backend, dataset, batch_size=8)
    seen = []
    tr.set_progress(lambda it, loss: seen.append((it, loss)))
    loss = tr.step()
    assert seen == [(1, loss)]
    reports = []
    val = siamese.Dataset.synthetic(10, 3, 16, 16, seed=11)
    tr.set_validation(val, 20, seed=2)
    tr.set_health(2, reports.append)
    tr.step()
    tr.step()
    assert len(reports) == 1
    h = reports[0]
    assert h.iteration == 2 and "has_validation" in h.flags and h.val_pairs == 20
    assert 0 <= h.val_accuracy <= 1 and h.val_status == "SM_OK"
    # the validation set is borrowed: it lives while the trainer does
    del val
    tr.step()
    tr.step()
    assert len(reports) == 2

    def boom(it, loss):
        raise KeyError("from the callback")
    tr.set_progress(boom)
    with pytest.raises(KeyError, match="from the callback"):
        tr.step()
    assert tr.iteration == 6  # the step stayed applied
    tr.set_progress(None)
    tr.set_health(1, None)
    tr.set_validation(None)
    tr.step()


def test_no_dataset_and_state_errors(backend, dataset):
    m = siamese.Model.create(backend, TINY, seed=7)
    tr = siamese.Trainer(m)
    with pytest.raises(siamese.StateError, match="SM_ERR_STATE"):
        tr.step()
    tr2 = siamese.Trainer(m, dataset)
    tr2.adam_schedule = "cosine"  # without adam_schedule_steps
    with pytest.raises(siamese.StateError):
        tr2.step()
    with pytest.raises(siamese.ShapeError):
        siamese.Trainer(m, siamese.Dataset.synthetic(4, 2, 8, 8))


def test_data_parallel_on_threads(backend, dataset):
    """Two in-process ranks with 2 gradient shards give the bits of one trainer with 2."""
    m0, t0 = make(backend, dataset, batch_size=8, grad_shards=2)
    alone = [t0.step() for _ in range(2)]

    comms = siamese.Comm.local(2)
    assert [c.rank for c in comms] == [0, 1] and comms[0].size == 2
    ranks = [make(backend, dataset, batch_size=8, grad_shards=2) for _ in comms]
    out = [None, None]
    errs = []

    def rank(i):
        try:
            _, tr = ranks[i]
            comms[i].set_timeout(60)
            assert comms[i].serialized  # local ranks allow the exchange thread
            comms[i].serialized = False
            assert not comms[i].serialized
            comms[i].serialized = True
            tr.attach_comm(comms[i])
            out[i] = [tr.step() for _ in range(2)]
            got = comms[i].allgather(bytes([i]) * 3)
            assert got == [b"\0\0\0", b"\1\1\1"]
            buf = bytearray(b"root" if i == 0 else b"....")
            comms[i].broadcast(buf, 0)
            assert buf == bytearray(b"root")
            comms[i].barrier()
            tr.attach_comm(None)
        except BaseException as e:  # pragma: no cover - reported below
            errs.append(e)
    th = [threading.Thread(target=rank, args=(i,)) for i in range(2)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert not errs, errs
    assert out[0] == alone and out[1] == alone
    sent, ns = comms[0].stats()
    assert sent > 0 and ns >= 0 and not comms[0].failed
    assert siamese.comm.clock_ns() > 0
    siamese.comm.backoff(0)


def test_comm_timeout_is_comm_error():
    a, b = siamese.Comm.local(2)
    a.set_timeout(0.05)
    with pytest.raises(siamese.CommError, match="SM_ERR_COMM"):
        a.barrier()  # rank 1 never comes
    assert a.failed
    with pytest.raises(siamese.InvalidArgumentError, match="no-such-transport"):
        siamese.Comm.open("no-such-transport")


def test_settings_table_matches_the_library(dataset):
    """Each row of lib/train/settings.c is in settings.TABLE with the same call and key."""
    import os
    from conftest import SOURCE
    src = open(os.path.join(SOURCE, "lib", "train", "settings.c")).read()
    headers = "".join(open(os.path.join(SOURCE, "include", "siamese", h)).read()
                      for h in ("train.h", "data.h"))
    enum = {k: int(v) for k, v in re.findall(r"\b(SM_[A-Z0-9_]+) = (\d+)", headers)}
    rows = re.findall(r'ADAM\("(\w+)",[^,]+,\s*(SM_\w+)', src)
    rows += [(k, key) for k, api, key in
             re.findall(r'TRAINER(?:_LOCAL)?\("(\w+)",\s*"[^"]*",\s*(SM__API_\w+),\s*(SM_\w+)', src)]
    assert len(rows) >= 22
    c_names = set()
    for name, key in rows:
        row = settings.BY_NAME.get(name)
        assert row is not None, f"setting '{name}' of settings.c is not in settings.TABLE"
        assert row.key == enum[key], name
        c_names.add(name)
    for name, api, _key in re.findall(r'TRAINER(?:_LOCAL)?\("(\w+)",\s*"[^"]*",\s*(SM__API_\w+),\s*(SM_\w+)',
                                      src):
        want = {"SM__API_PARAM": settings.PARAM, "SM__API_REAL": settings.REAL}[api]
        assert settings.BY_NAME[name].api == want, name
    assert c_names == set(settings.BY_NAME)
