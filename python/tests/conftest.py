# SPDX-License-Identifier: MIT
"""Shared fixtures: tiny shapes, so that the whole run stays well under a minute on two loaded
cores. Run through meson (`meson test -C build python`) or by hand:
PYTHONPATH=python SIAMESE_LIBRARY=build/lib/libsiamese.so.0 python3 -m pytest python/tests"""
import os
import struct
import zlib

import numpy as np
import pytest

import siamese

TINY = "1x16x16:conv4k3,relu,pool2,flatten,fc8"
SOURCE = os.environ.get("SIAMESE_TEST_SOURCE",
                        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
                            __file__)))))
BUILD = os.path.abspath(os.environ.get("SIAMESE_TEST_BUILD", os.path.join(SOURCE, "build")))


@pytest.fixture(scope="session")
def backend():
    with siamese.Backend("cpu", threads=1) as be:
        yield be


@pytest.fixture(scope="session")
def dataset():
    with siamese.Dataset.synthetic(20, 4, 16, 16, seed=7) as ds:
        yield ds


@pytest.fixture
def model(backend):
    with siamese.Model.create(backend, TINY, seed=7) as m:
        yield m


@pytest.fixture(scope="session")
def trained(backend, dataset, tmp_path_factory):
    """A model trained for 30 steps, its file path."""
    m = siamese.Model.create(backend, TINY, seed=7)
    with siamese.Trainer(m, dataset, seed=9, adam_lr=1e-2, batch_size=16) as tr:
        for _ in range(30):
            tr.step()
    path = str(tmp_path_factory.mktemp("trained") / "model.safetensors")
    m.save(path)
    yield m, path
    m.close()


def write_png(path, pixels):
    """An 8-bit PNG of a uint8 array: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
    a = np.asarray(pixels, dtype=np.uint8)
    h, w = a.shape[:2]
    channels = 1 if a.ndim == 2 else a.shape[2]
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\0" + a[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" +
                chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def glyph(size, k, jitter):
    """A grey glyph of class k (uint8, ink 0 on white 255), shifted by `jitter`."""
    y, x = np.mgrid[0:size, 0:size]
    xs = x - jitter
    ink = ((np.abs(xs - (k * 7) % size) < 2) | (np.abs(y - (k * 11) % size) < 2) |
           (np.abs(xs - y - (k * 5) % size + size // 2) < 2))
    return np.where(ink, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def png_tree(tmp_path_factory):
    """Alpha<a>/character<c>/<i>.png, 16x16: 2 alphabets x 6 characters x 3 images."""
    root = tmp_path_factory.mktemp("pngs")
    for a in range(2):
        for c in range(6):
            d = root / f"Alpha{a}" / f"character{c + 1:02d}"
            d.mkdir(parents=True)
            for i in range(3):
                write_png(d / f"{i}.png", glyph(16, a * 6 + c, i))
    return root


@pytest.fixture(scope="session")
def runs_tree(tmp_path_factory):
    """Two official-style runs of 5 candidates and 5 queries, 16x16."""
    root = tmp_path_factory.mktemp("runs") / "all_runs"
    for r in (1, 2):
        run = root / f"run{r:02d}"
        (run / "training").mkdir(parents=True)
        (run / "test").mkdir()
        lines = []
        for k in range(5):
            write_png(run / "training" / f"class{k + 1:02d}.png", glyph(16, k + r, 0))
            q = (k + 2) % 5
            write_png(run / "test" / f"item{k + 1:02d}.png", glyph(16, q + r, 1))
            lines.append(f"run{r:02d}/test/item{k + 1:02d}.png "
                         f"run{r:02d}/training/class{q + 1:02d}.png")
        (run / "class_labels.txt").write_text("\n".join(lines) + "\n")
    return root
