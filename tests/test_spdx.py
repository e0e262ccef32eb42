#!/usr/bin/env python3
"""Every source file of the project names its licence (suite "licence").

Each C, CUDA, header, Python, shell, meson and linker-script file under the source root must
carry an `SPDX-License-Identifier: MIT` line within its first five lines, matching LICENSE and
meson.build's `license`. Build folders, .git and generated or binary data are not looked at.

Usage (tests/meson.build): test_spdx.py SOURCE_ROOT
"""
import os
import sys

root = sys.argv[1]
SOURCE_SUFFIXES = (".c", ".h", ".cu", ".py", ".sh", ".map", ".in")
SOURCE_NAMES = ("meson.build", "meson_options.txt", "run")
SKIP_DIRS = {".git", "data", "corpus", "regressions"}
tag = "SPDX-License-Identifier: MIT"

checked, missing = 0, []
for dirpath, dirnames, filenames in os.walk(root):
    rel = os.path.relpath(dirpath, root)
    # Build trees (build/, build-*/, any folder holding meson-private) are outputs, not sources.
    dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build")
                   and not os.path.isdir(os.path.join(dirpath, d, "meson-private"))]
    for name in filenames:
        if not (name.endswith(SOURCE_SUFFIXES) or name in SOURCE_NAMES):
            continue
        path = os.path.join(dirpath, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            head = [f.readline() for _ in range(5)]
        checked += 1
        if not any(tag in line for line in head):
            missing.append(os.path.normpath(os.path.join(rel, name)))

with open(os.path.join(root, "LICENSE"), encoding="utf-8") as f:
    licence_ok = f.readline().strip() == "MIT License"
print(f"{checked} source files looked at")
for m in sorted(missing):
    print(f"FAIL no '{tag}' in the first lines of {m}")
if not licence_ok:
    print("FAIL LICENSE does not start with 'MIT License'")
passed = checked - len(missing)
print(f"{passed} passed, {len(missing) + (not licence_ok)} failed")
sys.exit(1 if missing or not licence_ok else 0)
