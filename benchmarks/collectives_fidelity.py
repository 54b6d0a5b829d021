#!/usr/bin/env python3
"""Harness fidelity for collectives: ai-ready's figures against a bare loop of the same call.

On 2 local ranks (started through mpiexec if not already under a launcher), for
all_reduce with gloo and with MPI, rounds alternate between:

* a bare loop: barrier, then N back-to-back calls between two perf_counter
  reads on each rank; the time per call is the slowest rank's (as nccl-tests -a 3);
* ai-ready's measurement of the same call, buffers and size (Sweep.measure_point).

Both are timed with the host clock around blocking calls, in the same
processes, alternating. Targets (issue 3), comparing medians over rounds: at
16 MiB and 64 MiB, ai-ready busbw >= 0.95 × the bare loop's; at 8 bytes,
ai-ready latency <= 1.10 × the bare loop's. Best-of-rounds ratios are printed
beside them.
Prints one row per backend and size; exits 1 when a target is missed.

    python benchmarks/collectives_fidelity.py [--rounds 3] [--ranks 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = (8, 16 << 20, 64 << 20)
LATENCY_SIZE = 8
BW_TARGET, LATENCY_TARGET = 0.95, 1.10
#: Bare-loop calls per round: enough for ~0.3 s at each size on a 2-core machine.
BARE_SECONDS = 0.3


def launched() -> bool:
    return any(os.environ.get(v) for v in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"))


def relaunch(ranks: int) -> int:
    local = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(local) if local.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        print("needs mpiexec (pip install 'ai-ready[local]')", file=sys.stderr)
        return 2
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, *sys.argv[1:]], env=env).returncode


#: Calls timed to estimate how many fit in BARE_SECONDS.
ESTIMATE_CALLS = 5


def bare_loop_s(run, comm, seconds: float) -> float:
    """Slowest rank's seconds per call over a loop that lasts about `seconds`.

    Collectives need the same number of calls on every rank, so rank 0 sizes
    the loop from a short estimate and broadcasts the count (like the harness).
    """
    run()
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(ESTIMATE_CALLS):
        run()
    estimate = (time.perf_counter() - t0) / ESTIMATE_CALLS
    calls = comm.broadcast(max(3, int(seconds / max(estimate, 1e-9))) if comm.rank == 0 else None)
    for _ in range(max(1, calls // 3)):  # warm-up, same count everywhere
        run()
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(calls):
        run()
    per_call = (time.perf_counter() - t0) / calls
    gathered = comm.gather(per_call)  # every rank takes part; rank 0 gets the list
    return max(gathered) if gathered else per_call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    if not launched():
        return relaunch(args.ranks)

    from ai_ready.bench.collectives.backends import MPIBackend, TorchBackend
    from ai_ready.bench.collectives.run import Sweep, SweepConfig
    from ai_ready.cli.collectives import COLLECTIVES_BUDGET
    from ai_ready.cli.launch import setup_torch
    from ai_ready.measure.timers import HostTimer

    comm = setup_torch("gloo", 300.0)  # MPI coordinates and agrees the gloo rendezvous
    backends = {"gloo": TorchBackend("gloo", "float32", "cpu"), "mpi": MPIBackend(comm.raw, "float32")}
    placement = {"gloo": "in-place", "mpi": "out-of-place"}  # torch's all_reduce exists in place only
    cfg = SweepConfig(ops=("all_reduce",), sizes=SIZES, check=True)
    rows, ok = [], True
    for name, backend in backends.items():
        sweep = Sweep(backend, cfg, comm, COLLECTIVES_BUDGET, HostTimer(), sink=None)
        for size in SIZES:
            point = sweep.point("all_reduce", placement[name], size)
            prepared = backend.prepare(point.op, point.placement, point.count)
            bare, ours = [], []
            for _ in range(args.rounds):
                bare.append(bare_loop_s(prepared.run, comm, BARE_SECONDS))
                records = sweep.measure_point(point)
                if comm.rank == 0:
                    [t] = [r for r in records if r.metric == "time"]
                    if t.status != "ok":
                        print(f"{name} {size}: {t.status}: {t.reason}")
                        return 1
                    ours.append(t.value / 1e6)
            if comm.rank != 0:
                continue
            t_bare, t_ours = statistics.median(bare), statistics.median(ours)
            best = min(ours) / min(bare)
            if size == LATENCY_SIZE:
                ratio = t_ours / t_bare
                ok &= ratio <= LATENCY_TARGET
                rows.append(f"{name:5s} {size:>10d} latency  bare {t_bare * 1e6:9.2f} us   ai-ready "
                            f"{t_ours * 1e6:9.2f} us   ratio {ratio:.3f} (best/best {best:.3f}; "
                            f"target <= {LATENCY_TARGET})")
            else:
                factor = point.op.bus_factor(comm.size)
                bus_bare = point.size_bytes / t_bare / 1e9 * factor
                bus_ours = point.size_bytes / t_ours / 1e9 * factor
                ratio = bus_ours / bus_bare
                ok &= ratio >= BW_TARGET
                rows.append(f"{name:5s} {size:>10d} busbw    bare {bus_bare:9.3f} GB/s ai-ready {bus_ours:9.3f} GB/s "
                            f"ratio {ratio:.3f} (best/best {1 / best:.3f}; target >= {BW_TARGET})")
    if comm.rank == 0:
        print(f"all_reduce, {comm.size} ranks, {args.rounds} interleaved rounds; each figure is the median over "
              "rounds (bare: slowest rank's mean per call; ai-ready: its reported median); ratios ai-ready/bare")
        print("\n".join(rows))
        print("all targets met" if ok else "TARGET MISSED")
    import torch.distributed as dist

    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
