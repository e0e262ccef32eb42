#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The include rules of lib/README.md, checked over the sources (test 'layers').

  check_layers.py SOURCE_ROOT              checks the tree; exit 1 listing every bad include
  check_layers.py --self-test SOURCE_ROOT  also plants wrong-way includes in a copy and checks
                                           that each is caught

Rules: a file in lib/<layer>/ includes headers of its own layer, of the layers the table in
lib/README.md allows it, and public ones (siamese/...), always written from lib/ ("io/png.h");
the rules themselves must have no cycle; no header includes itself through others; backend and
communicator and index modules include only their plug-in header, public headers and their own (cpu-dnnl
also backends/cpu-blas's two shared headers); cpu-blas, linked into the core, also
common/alloc.h, common/error.h and backend/backend.h; examples only public headers and their own.
"""
import os
import re
import shutil
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def read_rules(root):
    text = open(os.path.join(root, "lib", "README.md"), encoding="utf-8").read()
    rules = {}
    table = text.split("<!-- layers: the script parses this table -->", 1)[1]
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            if rules and not line.strip().startswith("|"):
                break
            continue
        layer = cells[0].strip("`")
        rules[layer] = {c.strip().strip("`") for c in cells[2].split(",") if c.strip()}
    return rules


def cycle_in(graph):
    """A cycle of the graph {node: set(nodes)} as a list, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def sources(root, top):
    for d, _, files in os.walk(os.path.join(root, top)):
        for f in sorted(files):
            if f.endswith((".c", ".h", ".cu", ".cpp")):
                yield os.path.relpath(os.path.join(d, f), root)


def check(root):
    errors = []
    rules = read_rules(root)
    for layer, allowed in rules.items():
        for a in allowed - set(rules):
            errors.append(f"lib/README.md: layer '{layer}' may include '{a}', which is no layer")
    loop = cycle_in(rules)
    if loop:
        errors.append("lib/README.md: the rules have a cycle: " + " -> ".join(loop))
    headers = {}  # lib header -> its lib includes, for the cycle check
    for path in sources(root, "lib"):
        parts = path.split(os.sep)
        if len(parts) != 3:
            errors.append(f"{path}: a file of lib/ belongs in a layer's folder")
            continue
        layer = parts[1]
        if layer not in rules:
            errors.append(f"{path}: folder '{layer}' is not in lib/README.md's table")
            continue
        text = open(os.path.join(root, path), encoding="utf-8").read()
        incs = INCLUDE.findall(text)
        for inc in incs:
            target = inc.split("/")[0]
            if target == "siamese":
                continue
            if "/" not in inc:
                errors.append(f"{path}: #include \"{inc}\" is not written from lib/")
            elif target != layer and target not in rules[layer]:
                errors.append(f"{path}: #include \"{inc}\": layer '{layer}' may not include "
                              f"'{target}' (lib/README.md)")
        if path.endswith(".h"):
            headers["/".join(parts[1:])] = {i for i in incs if i.split("/")[0] in rules}
    loop = cycle_in(headers)
    if loop:
        errors.append("lib/: headers include each other in a circle: " + " -> ".join(loop))

    def only(top, allowed, local_ok=True):
        for path in sources(root, top):
            here = os.path.dirname(path)
            for inc in INCLUDE.findall(open(os.path.join(root, path), encoding="utf-8").read()):
                if inc.startswith("siamese/") or inc in allowed:
                    continue
                if local_ok and "/" not in inc and os.path.exists(os.path.join(root, here, inc)):
                    continue
                errors.append(f"{path}: #include \"{inc}\": not allowed here (lib/README.md, "
                              "'Outside lib/')")

    shared = {"../cpu-blas/cpu_internal.h", "../cpu-blas/parallel.h"}
    only("backends/cpu-dnnl", {"backend_plugin.h"} | shared)
    only("backends/cuda", {"backend_plugin.h"})
    only("backends/cpu-blas", {"backend_plugin.h", "common/alloc.h", "common/error.h",
                               "backend/backend.h"})
    only(os.path.join("comm", "mpi"), {"comm_plugin.h"})
    only(os.path.join("comm", "nccl"), {"comm_plugin.h"})
    only(os.path.join("index", "faiss"), {"index_plugin.h"})
    only("examples", set())
    return errors


def self_test(root):
    """Each planted include must be reported, and the clean copy must pass."""
    plants = [
        ("lib/common/alloc.c", '#include "train/training.h"', "may not include 'train'"),
        ("lib/io/png_read.c", '#include "data/dataset.h"', "may not include 'data'"),
        ("lib/network/arch.c", '#include "dataset.h"', "not written from lib/"),
        ("backends/cpu-dnnl/conv_fft.c", '#include "network/network.h"', "not allowed here"),
        ("comm/mpi/comm_mpi_module.c", '#include "comm/comm_impl.h"', "not allowed here"),
        ("index/faiss/index_faiss.cpp", '#include "gallery/gallery.h"', "not allowed here"),
    ]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for top in ("lib", "backends", "comm", "index", "examples"):
            shutil.copytree(os.path.join(root, top), os.path.join(tmp, top))
        errors = check(tmp)
        print(("ok  " if not errors else "FAIL") + " the copy passes before planting")
        failures += bool(errors)
        for path, line, want in plants:
            p = os.path.join(tmp, path)
            original = open(p, encoding="utf-8").read()
            with open(p, "w", encoding="utf-8") as f:
                f.write(line + "\n" + original)
            errors = check(tmp)
            caught = any(path in e and want in e for e in errors)
            print(("ok  " if caught else "FAIL") + f" planted {line} in {path}: "
                  + (next(e for e in errors if path in e) if caught else "not reported"))
            failures += not caught
            with open(p, "w", encoding="utf-8") as f:
                f.write(original)
        # a rule that makes a cycle
        readme = os.path.join(tmp, "lib", "README.md")
        text = open(readme, encoding="utf-8").read()
        with open(readme, "w", encoding="utf-8") as f:
            f.write(text.replace("| `common` | errors, allocation, limits, RNG, version, where "
                                 "run-time modules are | |",
                                 "| `common` | errors, allocation, limits, RNG, version, where "
                                 "run-time modules are | `train` |"))
        caught = any("cycle" in e for e in check(tmp))
        print(("ok  " if caught else "FAIL") + " a rule that closes a cycle is reported")
        failures += not caught
    return failures


def main():
    args = sys.argv[1:]
    test = args[:1] == ["--self-test"]
    root = args[-1] if args else "."
    errors = check(root)
    for e in errors:
        print("FAIL " + e)
    print(f"layers: {len(errors)} bad include(s) in {root}")
    failures = len(errors) + (self_test(root) if test else 0)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
