#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compiles every C sample of the documentation (suite "docs").

Every ```c block of README.md and docs/*.md is compiled against the built library with
-std=c11 -Wall -Wextra -Werror -pedantic. The block's first line says how
(docs/getting-started.md, "Code samples in these docs"):

  /* complete program ... */   compiled, linked against libsiamese and run: it must exit 0;
  /* fragment ... */           preprocessor lines stay at file scope, the rest becomes the body
                               of a function, so statements that need context still compile;
  /* not compiled: reason */   skipped (the reason is printed);
  anything else                compiled as a translation unit of its own (-c).

Usage (tests/meson.build): test_doc_samples.py SOURCE_ROOT LIBDIR CC
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

src, libdir, cc = sys.argv[1], sys.argv[2], sys.argv[3:]
flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
         "-I" + os.path.join(src, "include")]
docs = [os.path.join(src, "README.md")] + sorted(glob.glob(os.path.join(src, "docs", "*.md")))
block = re.compile(r"^```c[ \t]*\n(.*?)^```", re.M | re.S)
failures, counts = [], {"program": 0, "fragment": 0, "unit": 0, "skipped": 0}

with tempfile.TemporaryDirectory(prefix="siamese-doc-samples.") as tmp:
    for doc in docs:
        with open(doc, encoding="utf-8") as f:
            text = f.read()
        for m in block.finditer(text):
            code = m.group(1)
            line = text.count("\n", 0, m.start()) + 2
            where = f"{os.path.relpath(doc, src)}:{line}"
            first = code.lstrip().split("\n", 1)[0]
            c_file = os.path.join(tmp, f"sample{sum(counts.values())}.c")
            if first.startswith("/* not compiled"):
                counts["skipped"] += 1
                print(f"skip {where}: {first}")
                continue
            if first.startswith("/* fragment"):
                kind = "fragment"
                lines = code.split("\n")
                top = [l for l in lines if l.startswith("#")]
                body = [l if not l.startswith("#") else "" for l in lines]
                code = ("\n".join(top) + "\nvoid doc_sample(void);\nvoid doc_sample(void)\n{\n" +
                        "\n".join(body) + "\n}\n")
            elif first.startswith("/* complete program"):
                kind = "program"
            else:
                kind = "unit"
            counts[kind] += 1
            with open(c_file, "w") as f:
                f.write(code)
            exe = c_file[:-2]
            cmd = cc + flags + ([c_file, "-o", exe, "-L" + libdir, "-lsiamese",
                                 "-Wl,-rpath," + libdir]
                                if kind == "program" else ["-c", c_file, "-o", exe + ".o"])
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
            if p.returncode != 0:
                failures.append(where)
                print(f"FAIL {where} ({kind}) does not compile:\n{p.stderr}")
                continue
            if kind == "program":
                p = subprocess.run([exe], capture_output=True, text=True, cwd=tmp, timeout=120)
                if p.returncode != 0:
                    failures.append(where)
                    print(f"FAIL {where}: the program exits {p.returncode}:\n{p.stdout}{p.stderr}")
                    continue
                print(f"ok   {where} (complete program; it printed: {p.stdout.strip()[:200]})")
            else:
                print(f"ok   {where} ({kind})")

print(", ".join(f"{v} {k}" for k, v in counts.items()))
if counts["program"] == 0:
    failures.append("no complete program found (docs/getting-started.md has one)")
    print("FAIL no complete program in the docs")
sys.exit(1 if failures else 0)
