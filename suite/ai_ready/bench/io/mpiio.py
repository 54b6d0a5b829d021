"""One shared file written and read by every rank through MPI-IO (mpi4py ``MPI.File``), collectively.

Each rank owns a contiguous slice (rank × bytes per rank) and moves it in
blocks with ``Write_at_all`` / ``Read_at_all``; the write ends with
``File.Sync`` inside the timed region. Before reading, each rank drops the
file's cached pages (posix_fadvise). The aggregate figure is all bytes over the
slowest rank's time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ai_ready.bench.context import BenchContext
from ai_ready.bench.io.files import BENCHMARK, CACHE_DROPPED, CACHE_WRITE, timed
from ai_ready.records import Record


def _slices(bytes_per_rank: int, block_bytes: int) -> int:
    return max(1, bytes_per_rank // block_bytes)


def shared_file(ctx: BenchContext, raw_comm: Any, folder: Path, block_bytes: int, bytes_per_rank: int,
                repeats: int, base: dict[str, Any]) -> list[Record]:
    from mpi4py import MPI

    rank, size = raw_comm.Get_rank(), raw_comm.Get_size()
    blocks = _slices(bytes_per_rank, block_bytes)
    block = np.frombuffer(os.urandom(block_bytes), dtype=np.uint8)
    inbox = np.empty(block_bytes, dtype=np.uint8)
    start = rank * blocks * block_bytes
    writes, reads = [], []
    wrong = 0
    for i in range(repeats):
        path = str(folder / f"shared-mpiio-{i}.dat")
        handle = MPI.File.Open(raw_comm, path, MPI.MODE_CREATE | MPI.MODE_EXCL | MPI.MODE_WRONLY)

        def write() -> None:
            for b in range(blocks):
                handle.Write_at_all(start + b * block_bytes, block)
            handle.Sync()

        try:
            writes.append(timed(ctx, write))
        finally:
            handle.Close()
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        handle = MPI.File.Open(raw_comm, path, MPI.MODE_RDONLY)

        def read() -> None:
            nonlocal wrong
            for b in range(blocks):
                handle.Read_at_all(start + b * block_bytes, inbox)
            wrong += int(not np.array_equal(inbox, block))  # the last block of this rank's slice

        try:
            reads.append(timed(ctx, read))
        finally:
            handle.Close()
        raw_comm.Barrier()
        if rank == 0:
            os.unlink(path)
    wrong = raw_comm.allreduce(wrong)
    if rank != 0:
        return []
    moved = size * blocks * block_bytes
    params = dict(base, api="MPI-IO", aggregate=True, ranks=size, block_bytes=block_bytes,
                  bytes_per_rank=blocks * block_bytes, file_bytes=moved, repeats=repeats)
    out = []
    for case, rounds, cache in (("mpiio-write-shared", writes, CACHE_WRITE), ("mpiio-read-shared", reads, CACHE_DROPPED)):
        per_rank = [float(np.median([blocks * block_bytes / 1e9 / t.all_s[r] for t in rounds])) for r in range(size)]
        fields = dict(benchmark=BENCHMARK, case=case, metric="bandwidth", unit="GB/s", **ctx.record_fields())
        op_params = dict(params, op=case.replace("-", "_"), per_rank_gbs=per_rank, per_rank=per_rank,
                         slowest_rank=int(np.argmin(per_rank)))
        if case == "mpiio-read-shared" and wrong:
            out.append(Record(status="failed", reason=f"{wrong} read-back block(s) differ from what was written",
                              params=op_params, **fields))
            continue
        samples = [moved / 1e9 / max(t.all_s) for t in rounds]
        out.append(Record.from_samples(samples, params=op_params,
                                       timing={"clock": "host", "cache": cache,
                                               "samples_s": [max(t.all_s) for t in rounds]}, **fields))
    return out
