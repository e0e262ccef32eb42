#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs inside the fresh chroot scripts/build-debs.sh makes: installs the packages with apt-get
# (their dependencies from the Debian mirror), then runs the autopkgtests of debian/tests/ (the
# MPI one where libsiamese-comm-mpi was built) and, where python3-siamese was built,
# `import siamese`.
# Usage: debs-chroot-tests.sh DIR   (DIR holds the .deb files, tests/ = debian/tests, consumer.c)
set -e
in=$1
cd /tmp
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$in"/*.deb
dpkg-query -W '*siamese*'
echo "== pkgconfig-consumer"
"$in/tests/pkgconfig-consumer" "$in/consumer.c"
echo "== tools"
"$in/tests/tools"
if dpkg-query -W -f='${Status}' libsiamese-comm-mpi 2>/dev/null | grep -q 'ok installed'; then
    echo "== mpi"
    "$in/tests/mpi"
fi
if dpkg-query -W -f='${Status}' python3-siamese 2>/dev/null | grep -q 'ok installed'; then
    echo "== python3-siamese"
    python3 -c 'import siamese; print("import siamese:", siamese.__file__)
print("siamese.version():", siamese.version())'
    if dpkg-query -W -f='${Status}' libsiamese-index-faiss 2>/dev/null | grep -q 'ok installed'; then
        # the core finds the index module in the packaged layout (<libdir>/libsiamese/)
        python3 -c 'import siamese; assert siamese.index_available(), "index-faiss not found"
print("siamese.index_available(): True")'
    fi
fi
echo "== all passed"
