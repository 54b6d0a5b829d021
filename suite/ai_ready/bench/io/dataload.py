"""Data loading: how many training samples per second a DataLoader reads from this file system.

The data set is many small files, one sample each (raw float32), the layout
that stresses metadata and small reads the way image or token shards do. One
epoch is timed per repeat, with a shuffled order and the files' page cache
dropped first, so every read goes to storage; worker start-up is part of the
epoch, as it is in training without persistent workers. Before any figure is
reported the epoch must have delivered every sample exactly once, with every
byte, and the first batch must hold the values that were written.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ai_ready.bench.context import BenchContext
from ai_ready.bench.io.checkpoint import CACHE_DROPPED, CACHE_WARM, drop_cache
from ai_ready.bench.io.scratch import Scratch
from ai_ready.records import Record
from ai_ready.stop import reraise_if_stopping

BENCHMARK = "io"
#: Injectable host clock (tests may replace it).
CLOCK: Callable[[], float] = time.perf_counter
MB = 1e6
SUBDIR = "samples"
BATCH_SIZE = 8
SAMPLE_DTYPE = np.float32


def sample_values(seed: int, index: int, sample_bytes: int) -> np.ndarray:
    """The content of sample `index`: derived from (seed, index) alone, so the check can rebuild
    it without reading the file it is checking."""
    count = sample_bytes // np.dtype(SAMPLE_DTYPE).itemsize
    return np.random.default_rng([seed, index]).standard_normal(count, dtype=SAMPLE_DTYPE)


def write_samples(scratch: Scratch, count: int, sample_bytes: int, seed: int, subdir: str = SUBDIR) -> list[Path]:
    """`count` sample files of `sample_bytes` raw float32 each, durable (fsynced) before any read."""
    if sample_bytes <= 0 or sample_bytes % np.dtype(SAMPLE_DTYPE).itemsize:
        raise ValueError(f"sample_bytes must be a positive multiple of {np.dtype(SAMPLE_DTYPE).itemsize}, "
                         f"got {sample_bytes}")
    paths = []
    for index in range(count):
        name = f"sample-{index:07d}.bin"
        with os.fdopen(scratch.create(name, subdir), "wb") as f:
            f.write(sample_values(seed, index, sample_bytes).tobytes())
            f.flush()
            os.fsync(f.fileno())
        paths.append(scratch.file(name, subdir))
    return paths


class FileSamples(Dataset):
    """One file per item, read whole; the item carries its index so the epoch can be checked."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [str(p) for p in paths]  # plain strings: cheap to pickle into workers

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        with open(self.paths[index], "rb") as f:
            data = f.read()
        return index, torch.from_numpy(np.frombuffer(data, dtype=SAMPLE_DTYPE).copy())


@dataclass
class Epoch:
    """What one epoch delivered, for the check that precedes any figure."""

    seconds: float
    indices: list[int] = field(default_factory=list)
    bytes_read: int = 0
    first_indices: list[int] = field(default_factory=list)
    first_batch: torch.Tensor | None = None


def run_epoch(dataset: FileSamples, workers: int, seed: int) -> Epoch:
    """Time one shuffled pass over the data set, keeping only counters and the first batch."""
    generator = torch.Generator().manual_seed(seed)
    indices: list[int] = []
    bytes_read = 0
    first: tuple[list[int], torch.Tensor] | None = None
    start = CLOCK()
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, num_workers=workers, shuffle=True, generator=generator)
    for batch_indices, batch in loader:
        indices.extend(batch_indices.tolist())
        bytes_read += batch.numel() * batch.element_size()
        if first is None:
            first = (batch_indices.tolist(), batch)
    seconds = CLOCK() - start
    epoch = Epoch(seconds=seconds, indices=indices, bytes_read=bytes_read)
    if first is not None:
        epoch.first_indices, epoch.first_batch = first
    return epoch


def check_epoch(epoch: Epoch, count: int, sample_bytes: int, seed: int) -> str | None:
    """Why the epoch cannot be trusted (first problem), or None when it read everything correctly."""
    if sorted(epoch.indices) != list(range(count)):
        return f"the epoch delivered {len(epoch.indices)} samples, not each of the {count} written exactly once"
    if epoch.bytes_read != count * sample_bytes:
        return f"the epoch read {epoch.bytes_read} bytes, not the {count * sample_bytes} written"
    if count and epoch.first_batch is not None:
        expected = np.stack([sample_values(seed, i, sample_bytes) for i in epoch.first_indices])
        if not np.array_equal(epoch.first_batch.numpy(), expected):
            return "the first batch does not hold the values written to its files"
    return None


def drop_all(paths: list[Path]) -> str:
    """Drop every sample file's page cache; the statement says whether that worked for all."""
    return CACHE_DROPPED if all([drop_cache(p) for p in paths]) else CACHE_WARM


def run_dataloader(ctx: BenchContext, scratch: Scratch, count: int, sample_bytes: int,
                   workers: list[int], repeats: int) -> list[Record]:
    """Throughput of a file-per-sample DataLoader at each worker count: samples/s and MB/s per epoch."""
    if repeats < 1 or count < 1:
        raise ValueError(f"the data-loader benchmark needs at least one sample and one repeat, "
                         f"got count={count}, repeats={repeats}")
    # ranks may share rank 0's scratch folder: each keeps its samples in its own subfolder
    paths = write_samples(scratch, count, sample_bytes, ctx.seed, subdir=f"{SUBDIR}-r{ctx.rank}")
    dataset = FileSamples(paths)
    records: list[Record] = []
    for w in workers:
        records += _worker_records(ctx, dataset, paths, count, sample_bytes, w, repeats)
    return records


def _worker_records(ctx: BenchContext, dataset: FileSamples, paths: list[Path], count: int,
                    sample_bytes: int, workers: int, repeats: int) -> list[Record]:
    """Repeat epochs at one worker count; a failed check fails both figures."""
    seconds: list[float] = []
    caches: set[str] = set()
    problem: str | None = None
    for repeat in range(repeats):
        caches.add(drop_all(paths))
        ctx.comm.barrier()  # ranks read together, as a data-parallel job does
        if problem is not None:
            continue  # keep meeting the barriers so no rank waits forever
        try:
            epoch = run_epoch(dataset, workers, ctx.seed + repeat)
            seconds.append(epoch.seconds)
            wrong = check_epoch(epoch, count, sample_bytes, ctx.seed)
            problem = f"wrong result: {wrong}" if wrong else None
        except Exception as exc:  # noqa: BLE001 - a failing loader is this case's result, with its reason
            reraise_if_stopping(exc)  # a signal surfacing inside the library is not this case's failure
            problem = f"the DataLoader failed: {type(exc).__name__}: {exc}"
    cache = CACHE_WARM if CACHE_WARM in caches else CACHE_DROPPED
    params = {"op": "dataloader", "workers": workers, "samples": count, "sample_bytes": sample_bytes,
              "batch_size": BATCH_SIZE, "repeats": repeats}
    timing = {"clock": "host", "cache": f"read: {cache}, before each epoch", "samples_s": seconds}
    common = dict(benchmark=BENCHMARK, case=f"dataloader-w{workers}", params=params, timing=timing,
                  **ctx.record_fields())
    if problem is not None:
        return [Record(metric="throughput", unit="samples/s", status="failed", reason=problem, **common),
                Record(metric="bandwidth", unit="MB/s", status="failed", reason=problem, **common)]
    return [Record.from_samples([count / s for s in seconds], metric="throughput", unit="samples/s", **common),
            Record.from_samples([count * sample_bytes / s / MB for s in seconds], warn_noise=False,
                                metric="bandwidth", unit="MB/s", **common)]
