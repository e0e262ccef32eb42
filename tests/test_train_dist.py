#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""siamese-train under mpirun -np 2 (suite 'dist'): launched by mpirun it trains data-parallel
by itself; with the same --grad-shards it writes the same model.safetensors, byte for byte, and
the same losses in loss.csv as one process; one set of figures, one progress line per step and
one evaluation, from rank 0; a 2-rank run resumed by one process continues exactly;
--val-alphabets is refused under --distributed.
Usage: test_train_dist.py SIAMESE_TRAIN MPIRUN"""
import os
import subprocess
import sys
import tempfile

train, mpirun = sys.argv[1], sys.argv[2]
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_pml="ob1", OMPI_MCA_btl="self,vader",
           OMPI_MCA_btl_vader_single_copy_mechanism="none", OPENBLAS_NUM_THREADS="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
failures = 0


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what)
    failures += 0 if cond else 1


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


with tempfile.TemporaryDirectory(prefix="siamese-dist.") as tmp:
    args = ["--arch", "1x32x32:conv4k5,relu,pool2,conv8k3,relu,pool2,flatten,fc16",
            "--lr", "1e-3", "--batch", "8", "--iterations", "12", "--synthetic-classes", "30",
            "--synthetic-images", "4", "--threads", "1", "--figure-every", "5",
            "--validate-every", "5", "--validation-pairs", "20", "--eval-batches", "2",
            "--eval-pairs", "20", "--episodes", "3", "--way", "5", "--grad-shards", "2",
            "--augment"]
    o1, o2 = os.path.join(tmp, "one"), os.path.join(tmp, "two")
    rc1, so1, se1 = run([train, *args, "--out", o1])
    check(rc1 == 0, f"one process, --grad-shards 2 (rc {rc1}) {se1[-300:]}")
    rc2, so2, se2 = run([mpirun, "--oversubscribe", "-np", "2", train, *args, "--out", o2])
    check(rc2 == 0, f"mpirun -np 2 (rc {rc2}) {se2[-500:]}")
    check("distributed: 2 ranks over MPI" in so2, "says it trains on 2 ranks")
    with open(os.path.join(o1, "model.safetensors"), "rb") as a, \
            open(os.path.join(o2, "model.safetensors"), "rb") as b:
        check(a.read() == b.read(), "model.safetensors byte-identical to one process's")

    def losses(d):
        with open(os.path.join(d, "loss.csv")) as f:
            return [(r.split(",")[0], r.split(",")[1], r.split(",")[3])
                    for r in f.read().splitlines()]
    check(losses(o1) == losses(o2), "loss.csv: the same iterations, losses and validations")
    check(sorted(os.listdir(o1)) == sorted(os.listdir(o2)), f"the same files: {os.listdir(o2)}")
    if os.path.isdir(os.path.join(o1, "figures")):
        check(sorted(os.listdir(os.path.join(o1, "figures"))) ==
              sorted(os.listdir(os.path.join(o2, "figures"))), "the same figures")
    check(so2.count("libsiamese ") == 1 and so2.count("random-pair verification") == 1,
          "one banner and one evaluation (rank 0)")
    check(se2.count("12/12  loss") == 1, "one progress line per step (rank 0)")
    # --resume of the 2-rank run by one process keeps its K = 2 and continues exactly
    import shutil
    o3, o4 = os.path.join(tmp, "resumed"), os.path.join(tmp, "straight")
    shutil.copytree(o2, o3)
    more = [a if a != "12" else "16" for a in args]
    no_k = more[:more.index("--grad-shards")] + more[more.index("--grad-shards") + 2:]
    rc3, _, se3 = run([train, *no_k, "--resume", "--out", o3])
    rc4, _, se4 = run([train, *more, "--out", o4])
    with open(os.path.join(o3, "model.safetensors"), "rb") as a, \
            open(os.path.join(o4, "model.safetensors"), "rb") as b:
        check(rc3 == 0 and rc4 == 0 and a.read() == b.read(),
              f"saved at 2 ranks after 12 steps, resumed by one process to 16: equal to 16 "
              f"straight steps (rc {rc3}, {rc4}) {se3[-200:]}")
    rc, so, se = run([train, *args, "--distributed", "--val-alphabets", "2", "--out",
                      os.path.join(tmp, "bad")])
    check(rc == 2 and "not supported with --distributed" in se,
          f"--val-alphabets refused with --distributed (rc {rc})")

print(f"{failures} failure(s)")
sys.exit(1 if failures else 0)
