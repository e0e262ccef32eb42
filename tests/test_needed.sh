#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# libsiamese.so links neither MPI nor NCCL (nor CUDA): its NEEDED entries name none of them;
# data-parallel training reaches them only through the run-time modules (comm/meson.build).
set -euo pipefail
lib=$1
needed=$(readelf -d "$lib" | awk '/NEEDED/ { print $5 }' | tr -d '[]')
echo "$lib needs: $(echo $needed)"
bad=$(echo "$needed" | grep -E 'mpi|nccl|cuda|cudart|open-rte|open-pal|mpich|pmix' || true)
if [ -n "$bad" ]; then
    echo "FAIL: libsiamese.so must not need: $bad"
    exit 1
fi
echo "ok: no MPI, NCCL or CUDA library among them"
