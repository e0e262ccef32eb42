# SPDX-License-Identifier: MIT
"""Errors (each reachable status, with the C message), handle lifetimes and leaks, threads."""
import gc
import os
import threading
import zlib

import numpy as np
import pytest

import siamese
from siamese import errors
from conftest import TINY, glyph, write_png


def _patch_checkpoint(data, old, new):
    """Replaces `old` in a safetensors header by `new` (same length) and fixes its crc32."""
    assert len(old) == len(new) and old in data
    data = data.replace(old, new, 1)
    key = b'"crc32":"'
    at = data.index(key) + len(key)
    data = data[:at] + b"0" * 8 + data[at + 8:]
    crc = b"%08x" % zlib.crc32(data)
    return data[:at] + crc + data[at + 8:]


def test_each_reachable_status(backend, dataset, tmp_path):
    cases = {}

    def expect(cls, fn, *args, **kw):
        with pytest.raises(cls) as info:
            fn(*args, **kw)
        e = info.value
        assert e.status == cls.status and e.status_name == siamese.status_name(cls.status)
        assert e.detail and e.detail in str(e) and e.function.startswith("sm_")
        cases[cls] = e

    expect(siamese.InvalidArgumentError, siamese.Arch, "1x16x16:conv4k3,bogus")
    assert "bogus" in cases[siamese.InvalidArgumentError].detail  # the library's own words
    expect(siamese.FileIOError, siamese.Dataset.open, tmp_path / "missing.zip")
    assert "missing.zip" in cases[siamese.FileIOError].detail
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json}      ")
    expect(siamese.FormatError, siamese.Model.load, backend, tmp_path / "junk.safetensors")
    m = siamese.Model.create(backend, TINY, seed=1)
    expect(siamese.ShapeError, siamese.Trainer, m, siamese.Dataset.synthetic(4, 2, 8, 8))
    m.save(tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "v.safetensors").write_bytes(
        _patch_checkpoint(data, b'"format_version":"1"', b'"format_version":"9"'))
    expect(siamese.VersionError, siamese.Model.load, backend, tmp_path / "v.safetensors")
    if not siamese.probe_backend("cuda")[0]:
        expect(siamese.BackendUnavailableError, siamese.Backend, "cuda")
    tr = siamese.Trainer(m, dataset)
    p = siamese.Sampler(dataset, 1).next(4)
    expect(siamese.NumericError, tr.step_batch, p.left + np.inf, p.right, p.labels)
    one = siamese.Dataset.create(16, 16)
    one.add_image("a/b", dataset[0])
    expect(siamese.DatasetError, siamese.Sampler, one)
    write_png(tmp_path / "big.png", glyph(40, 1, 0))
    old = siamese.get_limit("image_side")
    siamese.set_limit("image_side", 32)
    try:
        expect(siamese.LimitError, siamese.load_png, tmp_path / "big.png", 16, 16)
    finally:
        siamese.set_limit("image_side", old)
    expect(siamese.StateError, siamese.Trainer(m).step)
    a, _b = siamese.Comm.local(2)
    a.set_timeout(0.02)
    expect(siamese.CommError, a.barrier)
    expect(siamese.UnsupportedError, backend.set_option, "precision", "bf16")
    # not reachable from outside on a CPU: NOMEM, DEVICE, INTERNAL: the mapping still holds
    for status in (2, 8, 13):
        e = errors.error_for(status, "sm_x", "detail", siamese.status_name(status), "text")
        assert type(e) is errors.STATUS_CLASSES[status] and e.status == status
    assert isinstance(errors.error_for(999, "sm_x", "", "SM_ERR_UNKNOWN", "?"),
                      siamese.UnknownStatusError)
    assert len(errors.STATUS_CLASSES) == 15
    # the built-in bases
    assert issubclass(siamese.InvalidArgumentError, ValueError)
    assert issubclass(siamese.FileIOError, OSError)
    assert issubclass(siamese.OutOfMemoryError, MemoryError)
    assert issubclass(siamese.NumericError, ArithmeticError)
    assert all(issubclass(c, siamese.Error) for c in errors.STATUS_CLASSES.values())


def test_error_detail_is_per_thread(tmp_path):
    """Threads failing at once each get their own call's message."""
    bad = []

    def worker(i):
        for _ in range(200):
            name = tmp_path / f"missing-{i}.zip"
            try:
                siamese.Dataset.open(name)
            except siamese.FileIOError as e:
                if f"missing-{i}.zip" not in e.detail:
                    bad.append(e.detail)
            try:
                siamese.Arch(f"1x8x8:oops{i}")
            except siamese.InvalidArgumentError as e:
                if f"oops{i}" not in e.detail:
                    bad.append(e.detail)
    th = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert bad == []


def test_a_call_the_library_lacks_raises_unsupported():
    from siamese import _lib
    with pytest.raises(siamese.UnsupportedError, match="sm_from_the_future"):
        _lib._Missing("sm_from_the_future")(1, 2)


def _counts():
    gc.collect()
    return siamese.live_handles()


def test_close_and_closed_errors(backend):
    base = _counts()
    with siamese.Arch(TINY) as a:
        assert not a.closed
    assert a.closed
    a.close()  # idempotent
    with pytest.raises(siamese.ClosedError):
        str(a)
    with pytest.raises(siamese.ClosedError):
        a.add_relu()
    assert isinstance(siamese.ClosedError("x"), ValueError)
    assert _counts() == base


def test_borrowed_objects_outlive_their_users(dataset):
    base = _counts()
    be = siamese.Backend("cpu", threads=1)
    m = siamese.Model.create(be, TINY, seed=1)
    g = siamese.Gallery(m)
    g.enrol("a", dataset.images([0, 1]))
    tr = siamese.Trainer(m, dataset)
    be.close()  # the model still uses it: it stays (closed for Python use)
    assert siamese.live_handles()["Backend"] == base.get("Backend", 0) + 1
    x = dataset.images(range(4))
    before = m.predict_pairs(x, x)
    m.close()  # the gallery and trainer still borrow the subnet and head
    with pytest.raises(siamese.ClosedError):
        m.predict_pairs(x, x)
    assert g.identify(x[:1], 1)[0][0].label == "a"  # works: the C model lives
    assert siamese.live_handles()["Subnet"] == base.get("Subnet", 0) + 1
    tr.step()
    tr.close()  # closes its own Adam too
    assert siamese.live_handles().get("Adam", 0) == base.get("Adam", 0)
    assert siamese.live_handles()["Subnet"] == base.get("Subnet", 0) + 1  # the gallery's
    g.close()  # the last user: subnet, head, backend go now
    assert _counts() == base
    del before


def test_garbage_collector_frees_in_any_order(dataset):
    base = _counts()

    def build():
        be = siamese.Backend("cpu", threads=1)
        m = siamese.Model.create(be, TINY, seed=1)
        tr = siamese.Trainer(m, dataset, adam=siamese.Adam(m))
        tr.step()
        return siamese.Gallery(m)  # everything else is dropped here
    g = build()
    assert siamese.live_handles().get("Trainer", 0) == base.get("Trainer", 0)
    del g
    assert _counts() == base
    # a cycle through a Python callback: the collector still frees it
    be = siamese.Backend("cpu", threads=1)
    m = siamese.Model.create(be, TINY, seed=1)

    def make_cycle():
        holder = [siamese.Trainer(m, dataset)]
        holder[0].set_progress(lambda it, loss: holder)  # trainer -> callback -> trainer
        holder[0].step()
    make_cycle()
    be = m = None  # noqa: F841 - the last references
    assert _counts() == base


def _rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_no_leak_in_create_destroy_loops(dataset):
    base = _counts()
    x = dataset.images(range(4))

    def cycle():
        with siamese.Backend("cpu", threads=1) as be:
            m = siamese.Model.create(be, TINY, seed=1)
            with siamese.Trainer(m, dataset, batch_size=4) as tr:
                tr.step()
            with siamese.Gallery(m) as g:
                g.enrol("a", x)
            m.predict_pairs(x, x)
            with siamese.Roc(np.array([0.1, 0.9], np.float32), np.array([0, 1], np.float32)):
                pass
            m.close()
    for _ in range(30):  # warm-up: allocator pools, numpy caches
        cycle()
    rss = _rss_kib()
    for _ in range(200):
        cycle()
    grown = _rss_kib() - rss
    assert _counts() == base
    assert grown < 4096, f"RSS grew by {grown} KiB over 200 create/destroy cycles"


def test_threads_predict_like_serial(trained, dataset):
    """Several Python threads predicting with one model at once (the GIL released in each
    call) give exactly the serial results."""
    m, _ = trained
    pairs = [siamese.Sampler(dataset, s).next(32) for s in range(6)]
    serial = [m.predict_pairs(p.left, p.right) for p in pairs]
    emb = [m.embed(p.left) for p in pairs]
    got = [None] * len(pairs)
    got_emb = [None] * len(pairs)
    start = threading.Barrier(len(pairs))

    def worker(i):
        start.wait()
        for _ in range(5):
            got[i] = m.predict_pairs(pairs[i].left, pairs[i].right)
            got_emb[i] = m.embed(pairs[i].left)
    th = [threading.Thread(target=worker, args=(i,)) for i in range(len(pairs))]
    for t in th:
        t.start()
    for t in th:
        t.join()
    for i in range(len(pairs)):
        assert np.array_equal(got[i], serial[i]) and np.array_equal(got_emb[i], emb[i])


def test_gil_is_released_during_calls(backend):
    """While one thread is inside a long library call, Python code keeps running in another:
    with the GIL held for the call, the counter could not move until it returned."""
    big = siamese.Model.create(backend, "1x64x64:conv16k5,relu,pool2,conv16k5,relu,flatten,fc64")
    x = np.random.default_rng(0).random((64, 64, 64), dtype=np.float32)
    big.predict_pairs(x[:2], x[:2])  # workspaces
    inside = threading.Event()
    done = threading.Event()

    def worker():
        inside.set()
        for _ in range(3):
            big.predict_pairs(x, x)
        done.set()
    t = threading.Thread(target=worker)
    count = 0
    t.start()
    inside.wait()
    while not done.is_set():
        count += 1
    t.join()
    assert count > 1000, f"only {count} iterations of the main thread during the calls"
