#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the build into a temporary DESTDIR, then checks what a user gets from it:
#  - every header of include/siamese/ is installed and compiles alone from the installed copy;
#  - tests/pkgconfig/consumer.c compiles with -Werror against the installed headers and links
#    through `pkg-config --cflags --libs siamese`, and runs against the installed library;
#  - libsiamese.so exports exactly the sm_* names of lib/libsiamese.map, nothing else;
#  - its soname is libsiamese.so.<SM_ABI_MAJOR>;
#  - the installed example programs start;
#  - the Python package is in PYDIR/siamese with _build_config.py naming the soname, and
#    imports against the installed library (when PYTHON has numpy).
# Usage (from tests/meson.build): test_install.sh MESON BUILD_ROOT SOURCE_ROOT PREFIX LIBDIR
#                                 [PYTHON PYDIR]
set -eu

meson_cmd=$1 build_root=$2 source_root=$3 prefix=$4 libdir=$5 python=${6:-} pydir=${7:-}
pydir=${pydir%/}
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/siamese-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
fail() { echo "FAIL: $*" >&2; exit 1; }

"$meson_cmd" install -C "$build_root" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "meson install --destdir failed"; }

ilib=$dest$libdir
iprefix=$dest$prefix
[ -f "$ilib/pkgconfig/siamese.pc" ] || fail "no siamese.pc in $ilib/pkgconfig"
# Every public header is installed (include/meson.build lists them by name), and each compiles
# alone from the installed copy: siamese.h includes the topic headers, so one left out of the
# install breaks every user.
for h in "$source_root"/include/siamese/*.h; do
    name=siamese/$(basename "$h")
    [ -f "$iprefix/include/$name" ] || fail "$name is not installed (include/meson.build)"
    printf '#include <%s>\nint sm_install_header_test;\n' "$name" >"$tmp/header.c"
    extra=
    if [ "$name" = siamese/comm_mpi.h ]; then # the MPI adapter needs the host's mpi.h
        extra=$(pkg-config --cflags ompi-c 2>/dev/null || pkg-config --cflags mpich 2>/dev/null) ||
            { echo "note: $name not compiled: no MPI found by pkg-config"; continue; }
    fi
    # shellcheck disable=SC2086 # $extra: several flags
    ${CC:-cc} -std=c11 -Wall -Wextra -Werror -pedantic -I"$iprefix/include" $extra \
        -fsyntax-only "$tmp/header.c" || fail "the installed $name does not compile alone"
done
echo "headers: $(ls "$iprefix"/include/siamese/*.h | wc -l) installed, each compiles alone"

# pkg-config, pointed at the installed copy (prefix redefined: the .pc derives every path from it).
export PKG_CONFIG_PATH="$ilib/pkgconfig"
pc() { pkg-config --define-variable=prefix="$iprefix" "$@" siamese; }
cflags=$(pc --cflags) || fail "pkg-config --cflags siamese"
libs=$(pc --libs) || fail "pkg-config --libs siamese"
hdr_version=$(sed -n 's/^#define SM_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
    "$iprefix/include/siamese/version.h" | paste -sd. -)
abi=$(sed -n 's/^#define SM_ABI_MAJOR \([0-9]*\).*/\1/p' "$iprefix/include/siamese/version.h")
[ "$(pc --modversion)" = "$hdr_version" ] ||
    fail "siamese.pc says version $(pc --modversion), the header $hdr_version"
echo "pkg-config: siamese $hdr_version: $cflags $libs"

# A consumer built as a user would, against the installed files only.
${CC:-cc} -std=c11 -Wall -Wextra -Werror -pedantic -o "$tmp/consumer" \
    "$source_root/tests/pkgconfig/consumer.c" $cflags $libs || fail "the consumer does not build"
LD_LIBRARY_PATH=$ilib "$tmp/consumer" || fail "the consumer failed"
LD_LIBRARY_PATH=$ilib ldd "$tmp/consumer" | grep -q "libsiamese.so.$abi => $ilib/" ||
    fail "the consumer did not load the installed libsiamese.so.$abi"

# Exports: exactly the names in the version script, all sm_*.
so=$ilib/libsiamese.so.$abi
[ -e "$so" ] || fail "no $so"
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ "$soname" = "libsiamese.so.$abi" ] || fail "soname is '$soname', expected libsiamese.so.$abi"
nm -D --defined-only "$so" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort >"$tmp/exported"
bad=$(grep -v '^sm_' "$tmp/exported" || true)
[ -z "$bad" ] || fail "libsiamese.so exports names outside sm_*: $(echo $bad)"
sed -n 's/^[[:space:]]*\(sm_[A-Za-z0-9_]*\);.*/\1/p' "$source_root/lib/libsiamese.map" | sort >"$tmp/mapped"
diff -u "$tmp/mapped" "$tmp/exported" >"$tmp/diff" ||
    { cat "$tmp/diff" >&2; fail "exported symbols differ from lib/libsiamese.map (- map, + exported)"; }
echo "exports: $(wc -l <"$tmp/exported") sm_* symbols, soname $soname"

# No link-time CUDA in the core (the cuda backend is a module it dlopens, docs/cuda.md); the
# module, when this build has it, sits in <libdir>/libsiamese/ and exports only its entry point.
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p')
cuda_needed=$(echo "$needed" | grep -Ei 'cuda|cudnn|cublas|nvidia' || true)
[ -z "$cuda_needed" ] || fail "libsiamese.so needs CUDA libraries at link time: $(echo $cuda_needed)"
mod=$ilib/libsiamese/libsiamese-cuda.so
if [ -e "$mod" ]; then
    mod_exports=$(nm -D --defined-only "$mod" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }')
    [ "$mod_exports" = sm_backend_module_entry ] ||
        fail "libsiamese-cuda.so exports more than sm_backend_module_entry: $(echo $mod_exports)"
    echo "cuda module: $mod (exports sm_backend_module_entry only)"
fi

dnnl_needed=$(echo "$needed" | grep -Ei 'dnnl|gomp' || true)
[ -z "$dnnl_needed" ] || fail "libsiamese.so needs oneDNN at link time: $(echo $dnnl_needed)"
mod=$ilib/libsiamese/libsiamese-dnnl.so
if [ -e "$mod" ]; then
    mod_exports=$(nm -D --defined-only "$mod" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }')
    [ "$mod_exports" = sm_backend_module_entry ] ||
        fail "libsiamese-dnnl.so exports more than sm_backend_module_entry: $(echo $mod_exports)"
    echo "cpu-dnnl module: $mod (exports sm_backend_module_entry only)"
fi

# The communicator modules (comm-mpi, comm-nccl), when built, sit there too and export only
# their entry point; libsiamese.so needs neither MPI nor NCCL.
comm_needed=$(echo "$needed" | grep -Ei 'mpi|nccl|open-rte|open-pal' || true)
[ -z "$comm_needed" ] || fail "libsiamese.so needs MPI or NCCL at link time: $(echo $comm_needed)"
for mod in "$ilib"/libsiamese/libsiamese-comm-*.so; do
    [ -e "$mod" ] || continue
    mod_exports=$(nm -D --defined-only "$mod" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }')
    [ "$mod_exports" = sm_comm_module_entry ] ||
        fail "$(basename "$mod") exports more than sm_comm_module_entry: $(echo $mod_exports)"
    echo "communicator module: $mod (exports sm_comm_module_entry only)"
done

# The installed example programs run against the installed library.
for prog in siamese-train siamese-compare siamese-eval siamese-gallery; do
    if [ -x "$iprefix/bin/$prog" ]; then
        LD_LIBRARY_PATH=$ilib "$iprefix/bin/$prog" --help >/dev/null || fail "$prog --help"
    fi
done
# The Python package (python/meson.build): every module of python/siamese/ installed, the
# generated _build_config.py beside them, and `import siamese` against the installed library
# (found by its soname through the loader: LIBDIR/SONAME is not there under DESTDIR).
if [ -n "$pydir" ]; then
    ipy=$dest$pydir/siamese
    for f in "$source_root"/python/siamese/*.py; do
        [ -f "$ipy/$(basename "$f")" ] || fail "python/siamese/$(basename "$f") is not installed in $pydir/siamese (python/meson.build)"
    done
    grep -q "^SONAME = \"libsiamese.so.$abi\"" "$ipy/_build_config.py" ||
        fail "$pydir/siamese/_build_config.py does not name libsiamese.so.$abi"
    if "$python" -c 'import numpy' 2>/dev/null; then
        out=$(cd "$tmp" && env -u SIAMESE_LIBRARY PYTHONPATH="$dest$pydir" LD_LIBRARY_PATH="$ilib" \
            "$python" -c 'import siamese; print(siamese.__file__); print(siamese.version()); print(siamese.Backend("cpu").name)') ||
            fail "the installed Python package does not import"
        echo "$out" | head -1 | grep -q "^$ipy/__init__.py" ||
            fail "imported $(echo "$out" | head -1), not the installed package"
        [ "$(echo "$out" | sed -n 2p)" = "$hdr_version" ] ||
            fail "the installed package loaded libsiamese $(echo "$out" | sed -n 2p), expected $hdr_version"
        echo "python: $pydir/siamese imports (libsiamese $hdr_version)"
    else
        echo "note: $python has no numpy: the installed Python package was not imported"
    fi
fi
echo "install: OK"
