#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the Debian symbols file of libsiamese.so from its version script.

lib/libsiamese.map is the one list of exported names: one node per release (LIBSIAMESE_0.x),
names never moved or removed (tests/test_abi.sh keeps it so). The symbols file says, for each
name, the package version a program using it needs; a name of node LIBSIAMESE_0.x first shipped
in 0.x, so that is its version. debian/rules runs this before dh_makeshlibs, whose
dpkg-gensymbols -c4 then fails the build on any difference between this file and the built
library's exports: the file cannot drift from the map, nor the map from the library.

A node newer than include/siamese/version.h's version (the map gained LIBSIAMESE_0.3 and 0.4
while the version stayed 0.2.0) gets the package's own version instead, with a warning: a
version above the package's would make every program built against it depend on a
libsiamese0 that does not exist. Raising the minimum later, when version.h catches up, is
harmless (the older package had the names too).

The package's name carries the soname's number (Debian policy 8.1): this checks that
debian/control's library package is libsiamese<SM_ABI_MAJOR>, the soname meson builds.

Usage: scripts/gen-symbols.py [--output FILE] [--check-control]
  --output FILE     where to write (default: stdout)
  --check-control   only check debian/control's package name against SM_ABI_MAJOR
"""
import argparse
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def version_h():
    text = read("include/siamese/version.h")
    get = lambda k: int(re.search(r"#define SM_%s (\d+)" % k, text).group(1))
    return (get("VERSION_MAJOR"), get("VERSION_MINOR"), get("VERSION_PATCH")), get("ABI_MAJOR")


def map_nodes():
    """[(node name, (major, minor), [names])] in file order."""
    text = re.sub(r"/\*.*?\*/", "", read("lib/libsiamese.map"), flags=re.S)
    nodes = []
    for m in re.finditer(r"(LIBSIAMESE_(\d+)\.(\d+))\s*\{(.*?)\}", text, flags=re.S):
        body = m.group(4)
        glob = re.search(r"global:(.*?)(local:|$)", body, flags=re.S)
        names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*;", glob.group(1) if glob else "")
        nodes.append((m.group(1), (int(m.group(2)), int(m.group(3))), names))
    if not nodes:
        sys.exit("gen-symbols: no LIBSIAMESE_x.y node in lib/libsiamese.map")
    return nodes


def check_control(abi):
    want = "libsiamese%d" % abi
    pkgs = re.findall(r"^Package:\s*(\S+)", read("debian/control"), flags=re.M)
    libs = [p for p in pkgs if re.fullmatch(r"libsiamese\d+", p)]
    if libs != [want]:
        sys.exit("gen-symbols: debian/control's library package is %s, but the soname is "
                 "libsiamese.so.%d (SM_ABI_MAJOR): rename it to %s (and its debian/%s.* files)"
                 % (libs or "missing", abi, want, want))
    return want


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output")
    ap.add_argument("--check-control", action="store_true")
    args = ap.parse_args()

    version, abi = version_h()
    package = check_control(abi)
    if args.check_control:
        print("debian/control: %s matches libsiamese.so.%d" % (package, abi))
        return
    pkg_version = "%d.%d.%d" % version
    lines = ["libsiamese.so.%d %s #MINVER#" % (abi, package),
             "* Build-Depends-Package: libsiamese-dev"]
    seen = set()
    for node, (major, minor), names in map_nodes():
        if (major, minor) <= version[:2]:
            since = "%d.%d" % (major, minor)
        else:
            since = pkg_version
            print("gen-symbols: warning: %s is newer than version.h's %s; its names get %s"
                  % (node, pkg_version, pkg_version), file=sys.stderr)
        # the node's own name is a symbol too (the version definition dpkg-gensymbols lists)
        for name in [node] + names:
            if name in seen:
                sys.exit("gen-symbols: %s is listed twice in lib/libsiamese.map" % name)
            seen.add(name)
            lines.append(" %s@%s %s" % (name, node, since))
    text = "\n".join(lines) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
