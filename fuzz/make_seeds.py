#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the fuzz targets' seed corpora (a few small valid inputs per target) into
fuzz/corpus/<target>/, and hostile inputs that claim huge sizes (the resource limits' cases)
into fuzz/regressions/<target>/, beside the inputs fuzzers once crashed on.

    python3 fuzz/make_seeds.py [fuzz]

Standard library only. Every file is deterministic, so rerunning it changes nothing; the
regression test (tests/test_fuzz_regressions.c) replays them all in the normal build."""
import io
import json
import os
import struct
import sys
import zipfile
import zlib


def png(w, h, depth=8, color=0, interlace=0, text=None):
    """A PNG of w x h; greyscale (color 0) of the given depth, a diagonal gradient."""
    channels = {0: 1, 2: 3, 4: 2}[color]
    rows = []
    for y in range(h):
        vals = [((x + y) * 255 // max(1, w + h - 2)) for x in range(w)]
        if depth == 16:
            row = b"".join(struct.pack(">H", v * 257) * channels for v in vals)
        elif depth == 8:
            row = bytes(v for v in vals for _ in range(channels))
        else:  # 1, 2, 4 bits, greyscale only
            bits = "".join(format(v >> (8 - depth), "0%db" % depth) for v in vals)
            bits += "0" * (-len(bits) % 8)
            row = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
        rows.append(row)
    if interlace:  # Adam7: sub-images in pass order (8-bit greyscale only)
        raw = b""
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                  (1, 0, 2, 2), (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            for y in range(y0, h, dy):
                sub = bytes(rows[y][x] for x in range(x0, w, dx))
                if sub:
                    raw += b"\0" + sub
    else:
        raw = b"".join(b"\0" + r for r in rows)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    if text:
        out += chunk(b"tEXt", text)
    out += chunk(b"IDAT", zlib.compress(raw, 9))
    out += chunk(b"IEND", b"")
    return out


def dataset_zip(files, store=False, dirs=False):
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if store else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as z:
        done = set()
        for name, data in files:
            if dirs:
                parts = name.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    d = "/".join(parts[:i]) + "/"
                    if d not in done:
                        done.add(d)
                        z.writestr(zipfile.ZipInfo(d, (1980, 1, 1, 0, 0, 0)), b"")
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, method)
    return buf.getvalue()


def arch_tensors(arch):
    """(name, shape) of each parameter of an arch text, as the library lists them."""
    shape_part, layers = arch.split(":")
    c, h, w = (int(v) for v in shape_part.split("x"))
    out, flat = [], None
    for i, layer in enumerate(layers.split(",")):
        if layer.startswith("conv"):
            k_out, k = (int(v) for v in layer[4:].split("k"))
            out += [("subnet.%d.weight" % i, [k_out, c, k, k]), ("subnet.%d.bias" % i, [k_out])]
            c, h, w = k_out, h - k + 1, w - k + 1
        elif layer.startswith("pool"):
            p = int(layer[4:])
            h, w = h // p, w // p
        elif layer.startswith("gn"):
            out += [("subnet.%d.weight" % i, [c]), ("subnet.%d.bias" % i, [c])]
        elif layer == "flatten":
            flat = c * h * w
        elif layer.startswith("fc"):
            n = int(layer[2:])
            out += [("subnet.%d.weight" % i, [n, flat]), ("subnet.%d.bias" % i, [n])]
            flat = n
    out += [("head.weight", [1, flat]), ("head.bias", [1])]
    return out


def checkpoint(arch, trainer=False):
    params = arch_tensors(arch)
    tensors = list(params)
    if trainer:
        tensors += [("adam.m." + n, s) for n, s in params] + [("adam.v." + n, s) for n, s in params]
    header, data, off = {}, b"", 0
    for k, (name, shape) in enumerate(tensors):
        count = 1
        for d in shape:
            count *= d
        values = [((k * 7 + i * 3) % 11 - 5) * 0.01 for i in range(count)]
        if name.startswith("adam.v."):
            values = [abs(v) for v in values]
        data += struct.pack("<%df" % count, *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + 4 * count]}
        off += 4 * count
    meta = {"format": "libsiamese-checkpoint", "format_version": "1",
            "kind": "trainer" if trainer else "model", "arch": arch}
    if trainer:
        meta.update({"iteration": "3", "adam_t": "3", "adam_lr": "6.0000000000000002e-05",
                     "adam_beta1": "0.90000000000000002", "adam_beta2": "0.98999999999999999",
                     "adam_eps": "1e-08", "batch_size": "4", "micro_batch": "2", "seed": "7",
                     "sampler_state": ":".join(["%016x" % (0x1234 + i) for i in range(4)]),
                     "has_sampler": "1"})
    meta["crc32"] = "00000000"
    header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    blob = bytearray(struct.pack("<Q", len(text)) + text + data)
    pos = blob.index(b'"crc32":"00000000"') + len(b'"crc32":"')
    blob[pos:pos + 8] = b"%08x" % (zlib.crc32(bytes(blob)) & 0xFFFFFFFF)
    return bytes(blob)


def gallery(example_labels, names, dim=3, arch="1x4x4:flatten,fc3", version="1", storage=None):
    """A gallery file (lib/gallery/gallery_file.c) for `arch`, its rows stored as `storage`
    (None: a file of 0.4, float32 without the storage and rows_crc32 metadata); model_id is a
    placeholder the fuzz entry patches to its model's fingerprint, then the checksums."""
    n = len(example_labels)
    vals = [((i * 5) % 9) / 8.0 for i in range(n * dim)]
    scales = b""
    if storage in (None, "f32"):
        dtype, emb = "F32", struct.pack("<%df" % (n * dim), *vals)
    elif storage == "bf16":
        dtype = "BF16"
        emb = struct.pack("<%dH" % (n * dim),
                          *[struct.unpack("<I", struct.pack("<f", v))[0] >> 16 for v in vals])
    elif storage == "f16":
        dtype, emb = "F16", struct.pack("<%de" % (n * dim), *vals)
    else:  # u8: per row, its minimum and (max - min) / 255
        dtype, emb = "U8", b""
        for r in range(n):
            row = vals[r * dim:(r + 1) * dim]
            lo, hi = min(row), max(row)
            scale = struct.unpack("<f", struct.pack("<f", (hi - lo) / 255.0))[0]
            emb += bytes(round((v - lo) / scale) if scale else 0 for v in row)
            scales += struct.pack("<2f", lo, scale)
    lab = struct.pack("<%dI" % n, *example_labels)
    txt = b"".join(name.encode() + b"\0" for name in names)
    tensors, off = {}, 0
    for name, tdtype, shape, blob in (("embeddings", dtype, [n, dim], emb),
                                      ("embedding_scales", "F32", [n, 2], scales),
                                      ("example_label", "U32", [n], lab),
                                      ("label_names", "U8", [len(txt)], txt)):
        if name == "embedding_scales" and storage != "u8":
            continue
        tensors[name] = {"dtype": tdtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        off += len(blob)
    meta = {"format": "libsiamese-gallery", "format_version": version, "arch": arch,
            "feature_dim": str(dim), "model_id": "0" * 16}
    if storage is not None:
        meta["storage"] = storage
        meta["rows_crc32"] = "%08x" % (zlib.crc32(emb) & 0xFFFFFFFF)
    meta["crc32"] = "00000000"
    header = dict(tensors, __metadata__=meta)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(len(text) + 8) % 64 if storage is not None else -len(text) % 8)
    blob = bytearray(struct.pack("<Q", len(text)) + text + emb + scales + lab + txt)
    pos = blob.index(b'"crc32":"00000000"') + len(b'"crc32":"')
    blob[pos:pos + 8] = b"%08x" % (zlib.crc32(bytes(blob)) & 0xFFFFFFFF)
    return bytes(blob)


def patch_sizes(zip_bytes, size):
    """Sets every entry's uncompressed size, in local and central headers, to `size`."""
    b = bytearray(zip_bytes)
    for sig, off in ((b"PK\3\4", 22), (b"PK\1\2", 24)):
        i = b.find(sig)
        while i >= 0:
            b[i + off:i + off + 4] = struct.pack("<I", size)
            i = b.find(sig, i + 4)
    return bytes(b)


def png_chunks(data):
    """The chunks of a PNG as [kind, payload] pairs (signature dropped)."""
    out, i = [], 8
    while i + 12 <= len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        out.append([data[i + 4:i + 8], data[i + 8:i + 8 + n]])
        i += 12 + n
    return out


def png_join(chunks, bad_crc=None):
    """A PNG from [kind, payload] pairs; the CRC of the chunk at index bad_crc is wrong."""
    out = b"\x89PNG\r\n\x1a\n"
    for k, (kind, data) in enumerate(chunks):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        out += struct.pack(">I", len(data)) + kind + data
        out += struct.pack(">I", crc ^ 0x5A5A5A5A if k == bad_crc else crc)
    return out


def damaged_pngs():
    """Files whose pixels decode but which are damaged: each must be refused."""
    c = png_chunks(png(8, 8))  # IHDR, IDAT, IEND
    text_after = c[:2] + [[b"tEXt", b"Comment\0after the pixels"]] + c[2:]
    return {
        "damaged-idat-crc.png": png_join(c, bad_crc=1),
        "damaged-text-after-idat-crc.png": png_join(text_after, bad_crc=2),
        "damaged-truncated-before-iend.png": png_join(c)[:-12],
    }


def hostile():
    """Inputs that claim more than the limits allow: each must be refused, not allocated."""
    ok = png(8, 8)
    bomb = dataset_zip([("A/c1/bomb.png", b"\0" * (2 << 20)), ("A/c2/ok.png", ok)])
    huge_header = struct.pack("<Q", 4 << 40) + b"{}      "
    huge_shape = b'{"t":{"dtype":"F32","shape":[1048576,1048576,1048576],"data_offsets":[0,4]}}'
    huge_shape += b" " * (-len(huge_shape) % 8)
    return {
        "png": {
            "ihdr-claims-100000x100000.png": png(1, 1)[:16] + struct.pack(">II", 100000, 100000)
            + png(1, 1)[24:],
            **damaged_pngs(),
        },
        "zip_dataset": {
            "bomb-2MiB-of-zeros.zip": bomb,
            "sizes-claim-4GiB.zip": patch_sizes(dataset_zip([("A/c1/a.png", ok),
                                                             ("A/c2/b.png", ok)]), 0xFFFFFFFF),
            "sizes-lie-small.zip": patch_sizes(bomb, 100),
            "damaged-idat-crc-entry.zip": dataset_zip(
                [("A/c1/a.png", ok), ("A/c2/b.png", damaged_pngs()["damaged-idat-crc.png"])]),
        },
        "checkpoint": {
            "header-claims-4TiB.safetensors": huge_header,
            "shape-claims-4EiB.safetensors": struct.pack("<Q", len(huge_shape)) + huge_shape
            + b"\0" * 4,
        },
        "arch_text": {
            "fc-claims-2pow48-weights.txt": b"1x4096x4096:flatten,fc16777216",
        },
        "gallery": {
            "header-claims-4TiB.gallery": huge_header,
            "labels-not-in-first-use-order.gallery": gallery([1, 0], ["a", "b"]),
            "label-not-utf8.gallery": gallery([0], ["ok"]).replace(b"ok\0", b"o\xff\0"),
            "newer-version.gallery": gallery([0], ["a"], version="3", storage="f32"),
            "v1-claims-bf16.gallery": gallery([0], ["a"], version="1", storage="bf16"),
        },
        "oneshot_runs": {
            "labels-2MiB-one-line.zip": runs_zip(1, labels=b"a" * (2 << 20)),
            "sizes-claim-4GiB.zip": patch_sizes(runs_zip(1), 0xFFFFFFFF),
        },
    }


def runs_zip(runs, prefix="", n=3, labels=None):
    """One-shot runs: <prefix>runNN/training/classKK.png, test/itemKK.png, class_labels.txt."""
    files = []
    for r in range(1, runs + 1):
        name = "run%02d" % r
        lines = []
        for k in range(1, n + 1):
            files.append(("%s%s/training/class%02d.png" % (prefix, name, k), png(8, 8, depth=8)))
            files.append(("%s%s/test/item%02d.png" % (prefix, name, k), png(8, 8, depth=4)))
            lines.append("%s/test/item%02d.png %s/training/class%02d.png" % (name, k, name,
                                                                            n + 1 - k))
        text = labels if labels is not None else ("\n".join(lines) + "\n").encode()
        files.append(("%s%s/class_labels.txt" % (prefix, name), text))
    return dataset_zip(files)


def fix_ihdr_crc(data):
    """The IHDR's CRC recomputed (after its fields were changed)."""
    crc = struct.pack(">I", zlib.crc32(data[12:29]) & 0xFFFFFFFF)
    return data[:29] + crc + data[33:]


def write_all(root, sets):
    for target, files in sets.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            if name.endswith(".png"):
                data = fix_ihdr_crc(data)
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


def main(root):
    img = lambda seed: png(8, 8) if seed == 0 else png(8, 8, depth=[8, 4, 16, 1][seed % 4])
    seeds = {
        "png": {
            "grey8-8x8.png": png(8, 8),
            "grey16-4x4.png": png(4, 4, depth=16),
            "grey1-16x16.png": png(16, 16, depth=1),
            "grey2-9x7.png": png(9, 7, depth=2),
            "grey4-28x28.png": png(28, 28, depth=4),
            "grey8-interlaced-8x8.png": png(8, 8, interlace=1),
            "grey8-text-8x8.png": png(8, 8, text=b"Comment\0fuzz seed"),
            "rgb-8x8.png": png(8, 8, color=2),
        },
        "zip_dataset": {
            "two-classes.zip": dataset_zip([("A/c1/1.png", img(0)), ("A/c2/1.png", img(1))]),
            "rooted-dirs.zip": dataset_zip(
                [("root/A/c1/1.png", img(0)), ("root/A/c1/2.png", img(2)),
                 ("root/B/c1/1.png", img(3)), ("root/__MACOSX/x.png", b"junk")], dirs=True),
            "stored.zip": dataset_zip([("A/x/a.png", img(1)), ("B/y/b.png", img(2)),
                                       ("B/y/readme.txt", b"not an image")], store=True),
        },
        "checkpoint": {
            "model-conv-fc.safetensors": checkpoint("1x6x6:conv2k3,relu,pool2,flatten,fc3"),
            "trainer-fc.safetensors": checkpoint("1x2x2:flatten,fc2", trainer=True),
            "model-two-conv.safetensors": checkpoint("2x5x5:conv2k2,relu,conv1k2,flatten,fc2"),
            "model-groupnorm.safetensors": checkpoint("1x6x6:conv4k3,gn2,relu,pool2,flatten,fc3"),
        },
        "oneshot_runs": {
            "two-runs.zip": runs_zip(2),
            "nested-all-runs.zip": runs_zip(1, prefix="all_runs/", n=4),
            "crlf.zip": runs_zip(1, n=2, labels=b"run01/test/item01.png run01/training/class02.png"
                                 b"\r\nrun01/test/item02.png run01/training/class01.png"),
            "labels-3.txt": b"Lrun01/test/item01.png run01/training/class03.png\n"
                            b"run01/test/item02.png run01/training/class01.png\r\n"
                            b"run01/test/item03.png run01/training/class02.png",
            "labels-empty-line.txt": b"Lrun01/test/item01.png run01/training/class03.png\n\n",
        },
        "gallery": {
            "three-labels.gallery": gallery([0, 0, 1, 2, 1], ["Latin/a", "Latin/b", "caf\u00e9"]),
            "one-example.gallery": gallery([0], ["x"]),
            "empty.gallery": gallery([], []),
            "f32-aligned.gallery": gallery([0, 1, 1], ["a", "b"], storage="f32"),
            "bf16.gallery": gallery([0, 1, 1], ["a", "b"], version="2", storage="bf16"),
            "f16.gallery": gallery([0, 0, 1], ["a", "b"], version="2", storage="f16"),
            "u8.gallery": gallery([0, 1, 2, 1], ["a", "b", "c"], version="2", storage="u8"),
        },
        "arch_text": {
            "koch.txt": b"koch",
            "koch-full.txt": b"1x105x105:conv64k10,relu,pool2,conv128k7,relu,pool2,"
                             b"conv128k4,relu,pool2,conv256k5,relu,flatten,fc4096",
            "small.txt": b"1x28x28:conv8k3,relu,pool2,flatten,fc16",
            "colour.txt": b"3x32x32:conv4k5,relu,pool2,conv8k3,relu,flatten,fc10",
            "fc-only.txt": b"1x4x4:flatten,fc1",
            "groupnorm.txt": b"1x12x12:conv8k3,gn4,relu,pool2,conv8k3,gn2,relu,flatten,fc16",
        },
    }
    write_all(os.path.join(root, "corpus"), seeds)
    write_all(os.path.join(root, "regressions"), hostile())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
