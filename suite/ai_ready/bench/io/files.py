"""Sequential and random file I/O and metadata operations, from the job's point of view.

* Writes are durable: ``fsync`` is inside the timed region.
* Reads say their cache state: ``O_DIRECT`` where the file system takes it
  (page-aligned buffers), else the file's pages are dropped first with
  ``posix_fadvise(DONTNEED)`` (clean after the fsync, so they really go).
* Every repeat starts with a barrier on every rank and is timed on each; rank 0
  gets every rank's seconds, so several ranks give an aggregate bandwidth
  (all bytes / the slowest rank's time) as well as per-rank figures.
* Data is random (``os.urandom``), never zeros, and what is read back is
  checked against what was written (byte count, and sampled blocks) after timing.
"""

from __future__ import annotations

import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ai_ready.bench.context import BenchContext
from ai_ready.bench.io.scratch import Scratch
from ai_ready.records import Record

BENCHMARK = "io"
O_DIRECT = getattr(os, "O_DIRECT", 0)
CACHE_DIRECT = "O_DIRECT (page cache bypassed)"
CACHE_DROPPED = "page cache dropped (posix_fadvise DONTNEED)"
CACHE_WARM = "warm: the page cache could not be bypassed or dropped"
CACHE_WRITE = "written with fsync inside the timed region"
#: Blocks compared with what was written after a timed read (first, middle, last).
VERIFY_BLOCKS = 3
RANDOM_RECORD = 4096
PAGE = mmap.PAGESIZE


@dataclass
class Timed:
    """One phase's seconds on every rank (rank 0 only), and this rank's."""

    local_s: float
    all_s: list[float] | None


def timed(ctx: BenchContext, fn: Callable[[], Any]) -> Timed:
    """Barrier, run `fn` on every rank at once, gather each rank's seconds to rank 0."""
    ctx.comm.barrier()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return Timed(elapsed, ctx.comm.gather(elapsed))


def fs_type(path: Path) -> str:
    """The file system type of `path` from /proc/mounts (longest mount point that contains it)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def _write_file(path: Path, fd: int, block: bytes, file_bytes: int) -> None:
    view = memoryview(block)
    written = 0
    try:
        while written < file_bytes:
            n = os.write(fd, view[: min(len(block), file_bytes - written)])
            written += n
        os.fsync(fd)
    finally:
        os.close(fd)


def _aligned_buffer(size: int) -> mmap.mmap:
    return mmap.mmap(-1, max(size, PAGE))  # anonymous maps are page aligned, as O_DIRECT needs


def open_for_read(path: Path) -> tuple[int, str]:
    """O_DIRECT when the file system supports it, else drop the file's cached pages; say which."""
    if O_DIRECT:
        try:
            fd = os.open(path, os.O_RDONLY | O_DIRECT)
            probe = _aligned_buffer(PAGE)
            os.preadv(fd, [probe], 0)
            return fd, CACHE_DIRECT
        except OSError:
            pass
    fd = os.open(path, os.O_RDONLY)
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return fd, CACHE_DROPPED
    return fd, CACHE_WARM


def _read_file(path: Path, block_bytes: int, file_bytes: int) -> tuple[int, str]:
    fd, cache = open_for_read(path)
    buffer = _aligned_buffer(block_bytes)
    view = memoryview(buffer)[:block_bytes]
    total = 0
    try:
        while total < file_bytes:
            n = os.preadv(fd, [view], total)
            if n <= 0:
                break
            total += n
    finally:
        os.close(fd)
        view.release()
        buffer.close()
    return total, cache


def _verify(path: Path, block: bytes, file_bytes: int) -> str | None:
    """None when the file holds `block` repeated, checked on the first, middle and last blocks."""
    if path.stat().st_size != file_bytes:
        return f"file holds {path.stat().st_size} bytes, {file_bytes} were written"
    blocks = file_bytes // len(block)
    with open(path, "rb") as handle:
        for index in sorted({0, blocks // 2, blocks - 1})[:VERIFY_BLOCKS]:
            handle.seek(index * len(block))
            if handle.read(len(block)) != block:
                return f"block {index} differs from what was written"
    return None


def human_block(size: int) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size % scale == 0 and size >= scale:
            return f"{size // scale}{unit}"
    return f"{size}B"


def _records(ctx: BenchContext, case: str, params: dict[str, Any], metric: str, unit: str, work: float,
             per_repeat: list[Timed], cache: str) -> list[Record]:
    """This rank's record, and on rank 0 with several ranks an aggregate record (all work / slowest rank)."""
    local = [work / t.local_s for t in per_repeat]
    timing = {"clock": "host", "cache": cache, "samples_s": [t.local_s for t in per_repeat]}
    records = [Record.from_samples(local, benchmark=BENCHMARK, case=case, params=dict(params), metric=metric,
                                   unit=unit, timing=dict(timing), **ctx.record_fields())]
    size = ctx.comm.size
    if size > 1 and ctx.rank == 0:
        aggregate = [size * work / max(t.all_s or [t.local_s]) for t in per_repeat]
        per_rank = [statistics_median([work / t.all_s[r] for t in per_repeat if t.all_s]) for r in range(size)]
        records.append(Record.from_samples(
            aggregate, benchmark=BENCHMARK, case=f"{case}-aggregate", metric=metric, unit=unit, timing=dict(timing),
            params=dict(params, aggregate=True, ranks=size, per_rank=per_rank,
                        **({"per_rank_gbs": per_rank} if unit == "GB/s" else {}),
                        slowest_rank=int(np.argmin(per_rank))), **ctx.record_fields()))
    return records


def statistics_median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def sequential(ctx: BenchContext, scratch: Scratch, block_bytes: int, file_bytes: int, repeats: int,
               base: dict[str, Any], keep: bool = False) -> tuple[list[Record], Path | None]:
    """Write a new file `repeats` times (durable), then read the last one `repeats` times."""
    block = os.urandom(block_bytes)
    tag = human_block(block_bytes)
    params = dict(base, block_bytes=block_bytes, file_bytes=file_bytes, repeats=repeats)
    writes, path = [], None
    for i in range(repeats):
        if path is not None:
            path.unlink()
        name = f"seq-{tag}-r{ctx.rank}-{i}.dat"
        path = scratch.file(name)
        fd = scratch.create(name)
        writes.append(timed(ctx, lambda p=path, f=fd: _write_file(p, f, block, file_bytes)))
    assert path is not None
    problem = _verify(path, block, file_bytes)
    write_params = dict(params, op="seq_write", fsync=True)
    if problem:
        return [Record(benchmark=BENCHMARK, case=f"seq-write-{tag}", params=write_params, metric="bandwidth",
                       unit="GB/s", status="failed", reason=problem, **ctx.record_fields())], path
    records = _records(ctx, f"seq-write-{tag}", write_params, "bandwidth", "GB/s", file_bytes / 1e9, writes,
                       CACHE_WRITE)
    reads, got, cache = [], {}, CACHE_WARM

    def read() -> None:
        got["bytes"], got["cache"] = _read_file(path, block_bytes, file_bytes)

    for _ in range(repeats):
        reads.append(timed(ctx, read))
        cache = got["cache"]
    read_params = dict(params, op="seq_read", direct=cache == CACHE_DIRECT)
    if got.get("bytes") != file_bytes:
        records.append(Record(benchmark=BENCHMARK, case=f"seq-read-{tag}", params=read_params, metric="bandwidth",
                              unit="GB/s", status="failed", reason=f"read {got.get('bytes')} of {file_bytes} bytes",
                              **ctx.record_fields()))
    else:
        records += _records(ctx, f"seq-read-{tag}", read_params, "bandwidth", "GB/s", file_bytes / 1e9, reads, cache)
    if not keep:
        path.unlink()
        path = None
    return records, path


def random_reads(ctx: BenchContext, path: Path, reads: int, repeats: int, base: dict[str, Any]) -> list[Record]:
    """4 KiB records at random aligned offsets of a large file: IOPS and per-read latency."""
    file_bytes = path.stat().st_size
    slots = file_bytes // RANDOM_RECORD
    rng = np.random.default_rng(ctx.seed + ctx.rank)
    latencies_us: list[float] = []
    rounds, cache = [], CACHE_WARM
    for _ in range(repeats):
        offsets = (rng.integers(0, slots, size=reads) * RANDOM_RECORD).tolist()
        fd, cache = open_for_read(path)
        buffer = _aligned_buffer(RANDOM_RECORD)
        view = memoryview(buffer)[:RANDOM_RECORD]
        this_round: list[float] = []

        def run() -> None:
            clock = time.perf_counter_ns
            for offset in offsets:
                t0 = clock()
                if os.preadv(fd, [view], offset) != RANDOM_RECORD:
                    raise OSError(f"short read at offset {offset}")
                this_round.append((clock() - t0) / 1e3)

        try:
            rounds.append(timed(ctx, run))
        finally:
            os.close(fd)
            view.release()
            buffer.close()
        latencies_us += this_round
    params = dict(base, op="rand_read", record_bytes=RANDOM_RECORD, reads=reads, file_bytes=file_bytes,
                  repeats=repeats, direct=cache == CACHE_DIRECT, p50_us=float(np.percentile(latencies_us, 50)),
                  p99_us=float(np.percentile(latencies_us, 99)))
    records = _records(ctx, "rand-read-4K", params, "iops", "IOPS", float(reads), rounds, cache)
    records.append(Record.from_samples(latencies_us, warn_noise=False, benchmark=BENCHMARK, case="rand-read-4K",
                                       params=dict(params), metric="latency", unit="us",
                                       timing={"clock": "host", "cache": cache}, **ctx.record_fields()))
    return records


def metadata(ctx: BenchContext, scratch: Scratch, files: int, repeats: int, base: dict[str, Any]) -> list[Record]:
    """Create, stat and unlink many small files: the operations per second a file system's metadata gives."""
    phases: dict[str, list[Timed]] = {"create": [], "stat": [], "unlink": []}
    for i in range(repeats):
        folder = scratch.subdir(f"meta-r{ctx.rank}-{i}")
        paths = [folder / f"f{n}" for n in range(files)]

        def create() -> None:
            for n in range(files):
                os.close(scratch.create(f"f{n}", subdir=folder.name))

        phases["create"].append(timed(ctx, create))
        phases["stat"].append(timed(ctx, lambda: [os.stat(p) for p in paths]))
        phases["unlink"].append(timed(ctx, lambda: [os.unlink(p) for p in paths]))
        os.rmdir(folder)
    records = []
    for op, rounds in phases.items():
        params = dict(base, op=f"metadata_{op}", files=files, repeats=repeats)
        records += _records(ctx, f"metadata-{op}", params, "ops", "ops/s", float(files), rounds,
                            "metadata operations (file data not involved)")
    return records
