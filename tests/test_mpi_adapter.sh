#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The header-only MPI adapter <siamese/comm_mpi.h> compiles against MPICH's mpi.h (MPI_Comm an
# int there, a pointer in Open MPI's), in C11 and C++, with warnings as errors.
# Usage: test_mpi_adapter.sh CC INCLUDE_DIR MPICH_INCLUDE_DIR
set -euo pipefail
cc=$1 inc=$2 mpich=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/host.c" <<'SRC'
#include <siamese/comm_mpi.h>
int host_attach(sm_trainer *t, sm_comm **c);
int host_attach(sm_trainer *t, sm_comm **c)
{
    if (sm_comm_from_mpi(MPI_COMM_WORLD, c) != SM_OK) return 1;
    return sm_trainer_attach_comm(t, *c) == SM_OK ? 0 : 1;
}
SRC
"$cc" -std=c11 -Wall -Wextra -Werror -pedantic -I"$inc" -I"$mpich" -c "$tmp/host.c" -o "$tmp/host.o"
echo "ok: C11 against $mpich/mpi.h"
if command -v g++ >/dev/null 2>&1; then
    cp "$tmp/host.c" "$tmp/host.cc"
    g++ -std=c++11 -Wall -Wextra -Werror -DMPICH_SKIP_MPICXX -I"$inc" -I"$mpich" -c "$tmp/host.cc" -o "$tmp/host2.o"
    echo "ok: C++11 against $mpich/mpi.h"
fi
grep -q "MPICH_VERSION" "$mpich/mpi.h" && echo "(MPICH $(grep -m1 '#define MPICH_VERSION ' "$mpich/mpi.h" | awk '{print $3}'))"
