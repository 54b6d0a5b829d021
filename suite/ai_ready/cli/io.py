"""`ai-ready bench io`: what the file system under --path gives a training job, measured safely."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

import click

from ai_ready.bench.context import BenchContext
from ai_ready.bench.io import files as iofiles
from ai_ready.bench.io.scratch import JoinedScratch, Scratch, announce_stale, check_path, check_space
from ai_ready.bench.runner import ResultSink, finishing
from ai_ready.cli.bench import bench, output_path
from ai_ready.cli.console import is_quiet, note, print_table
from ai_ready.env.detect import detect
from ai_ready.errors import InputError
from ai_ready.measure.comm import Comm, MPIComm, world_comm
from ai_ready.measure.harness import QUICK
from ai_ready.records import Record, new_meta

DEFAULTS = {  # option: (default, --quick)
    "size": ("1G", "64M"), "block_sizes": ("4K,64K,1M,16M", "4K,1M,16M"), "files": (5000, 300),
    "reads": (20000, 2000), "checkpoint_gb": (1.0, 0.05), "samples": (2048, 128), "sample_kb": (256, 256),
    "workers": ("0,2,4", "0,2"), "repeats": (5, 3),
}
#: Block sizes must be whole sectors for O_DIRECT.
SECTOR = 512
EXIT_FAILED = 1


def _sizes(option: str, text: str) -> list[int]:
    from ai_ready.bench.collectives.ops import parse_size

    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        try:
            value = parse_size(item)
        except ValueError:
            value = 0
        if value <= 0 or value % SECTOR:
            raise InputError(f"{option} {item}: accepted: sizes such as 4K, 1M, 16M (multiples of {SECTOR} bytes)")
        out.append(value)
    if not out:
        raise InputError(f"{option}: give at least one size")
    return out


def _ints(option: str, text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise InputError(f"{option} {text}: accepted: non-negative integers, comma-separated, e.g. 0,2,4")
    return values


def _scratch_for(comm: Comm, path: Path) -> tuple[Scratch, bool]:
    """Rank 0 makes the folder; ranks that can see it join it (shared file system), others make their own."""
    own: Scratch | None = Scratch(path) if comm.rank == 0 else None
    if own is not None:
        own.__enter__()
    shared_path = comm.broadcast(str(own.path) if own is not None else None)
    if comm.rank != 0:
        candidate = Path(shared_path)
        own = JoinedScratch(candidate) if candidate.is_dir() else Scratch(path, tag=f"rank{comm.rank}-")
        own.__enter__()
    visible = comm.gather(isinstance(own, JoinedScratch) or comm.rank == 0)
    shared = comm.broadcast(all(visible) if visible is not None else None)
    return own, bool(shared)


def _phase(ctx: BenchContext, sink: ResultSink | None, name: str, run: Callable[[], list[Record]]) -> None:
    """Run one phase on every rank; rank 0 keeps every rank's records."""
    if ctx.rank == 0 and not is_quiet():
        note(f"io: {name} ...")
    records = run()
    gathered = ctx.comm.gather(records)
    if sink is not None and gathered is not None:
        sink.add([r for rank_records in gathered for r in rank_records])


def _skipped(ctx: BenchContext, case: str, reason: str, base: dict[str, Any]) -> list[Record]:
    return [Record(benchmark="io", case=case, params=dict(base, op=case), metric="bandwidth", unit="GB/s",
                   status="skipped", reason=reason, **ctx.record_fields())]


@bench.command("io")
@click.option("--path", "path", required=True, type=click.Path(path_type=Path),
              help="Folder on the file system to measure; ai-ready writes only inside a new scratch folder there.")
@click.option("--size", help="Bytes of each sequential file per rank [default: 1G; --quick 64M].")
@click.option("--block-sizes", help="Sequential block sizes [default: 4K,64K,1M,16M; --quick 4K,1M,16M].")
@click.option("--files", type=click.IntRange(min=1, max=10_000_000), help="Files for the metadata test.")
@click.option("--reads", type=click.IntRange(min=1, max=100_000_000), help="Random 4K reads per repeat.")
@click.option("--checkpoint-gb", type=click.FloatRange(min=0, max=10_000), help="Checkpoint size per rank (0: skip).")
@click.option("--samples", type=click.IntRange(min=0, max=10_000_000), help="Sample files for the DataLoader test (0: skip).")
@click.option("--workers", help="DataLoader worker counts [default: 0,2,4; --quick 0,2].")
@click.option("--repeats", type=click.IntRange(min=1, max=1000), help="Repeats of each test [default: 5; --quick 3].")
@click.option("--quick", is_flag=True, help="Small sizes: a check that runs in about a minute.")
@click.option("--clean-stale", is_flag=True, help="First remove the scratch folders under --path that killed runs "
              "on this host left behind (they are listed on every run either way).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Result file [default: reports/io-<time>.json].")
def bench_io(path: Path, size: str | None, block_sizes: str | None, files: int | None, reads: int | None,
              checkpoint_gb: float | None, samples: int | None, workers: str | None, repeats: int | None,
              quick: bool, clean_stale: bool, output: Path | None) -> None:
    """Sequential and random reads and writes, metadata, checkpoints and data loading, safely."""
    pick = lambda key, given: given if given is not None else DEFAULTS[key][1 if quick else 0]  # noqa: E731
    root = check_path(path)
    out = output_path(output, "io")
    blocks = _sizes("--block-sizes", pick("block_sizes", block_sizes))
    file_bytes = _sizes("--size", pick("size", size))[0]
    largest = max(blocks)
    if file_bytes < largest:
        raise InputError(f"--size {file_bytes} is smaller than the largest block size {largest}")
    file_bytes -= file_bytes % largest
    n_files, n_reads = pick("files", files), pick("reads", reads)
    ckpt_bytes = int(pick("checkpoint_gb", checkpoint_gb) * 1e9)
    n_samples, sample_bytes = pick("samples", samples), DEFAULTS["sample_kb"][0] * 1024
    worker_list = _ints("--workers", pick("workers", workers))
    n_repeats = pick("repeats", repeats)

    environment = detect()
    comm = world_comm("cpu")
    if comm.rank == 0:
        announce_stale(root, clean_stale, note)
    comm.barrier()
    ranks_here = 1 + sum(1 for h in (comm.gather(environment["host"]) or [])[1:] if h == environment["host"])
    ranks_here = comm.broadcast(ranks_here if comm.rank == 0 else None)
    # one sequential file, one checkpoint (torch or DCP), the samples, and a share of the MPI-IO file per rank
    planned = ranks_here * (2 * file_bytes + 2 * ckpt_bytes + n_samples * sample_bytes)
    check_space(root, planned)
    ctx = BenchContext(device="cpu", device_name=f"{iofiles.fs_type(root)} at {root}", comm=comm, budget=QUICK,
                       environment=environment)
    base = {"path": str(root), "fs_type": iofiles.fs_type(root), "world_size": comm.size}
    meta = new_meta(["ai-ready", *sys.argv[1:]], environment)
    meta.update(world_size=comm.size, path=str(root), planned_bytes=planned)
    sink = ResultSink(out, meta) if comm.rank == 0 else None
    with ExitStack() as stack:
        scratch, shared = _scratch_for(comm, root)
        stack.push(scratch.__exit__)
        with finishing(sink):
            _run_phases(ctx, sink, scratch, shared, base, blocks, file_bytes, n_files, n_reads, ckpt_bytes,
                        n_samples, sample_bytes, worker_list, n_repeats)
        comm.barrier()  # every rank done before rank 0 removes the shared folder
    if sink is not None:
        _summarise(sink.document.records, out)


def _run_phases(ctx: BenchContext, sink: ResultSink | None, scratch: Scratch, shared: bool, base: dict[str, Any],
                blocks: list[int], file_bytes: int, n_files: int, n_reads: int, ckpt_bytes: int, n_samples: int,
                sample_bytes: int, workers: list[int], repeats: int) -> None:
    kept: dict[str, Path | None] = {"path": None}
    for i, block in enumerate(blocks):
        def seq(b: int = block, last: bool = i == len(blocks) - 1) -> list[Record]:
            records, kept["path"] = iofiles.sequential(ctx, scratch, b, file_bytes, repeats, base, keep=last)
            return records
        _phase(ctx, sink, f"sequential {iofiles.human_block(block)} blocks", seq)

    def rand() -> list[Record]:
        path = kept["path"]
        try:
            return iofiles.random_reads(ctx, path, n_reads, repeats, base) if path else []
        finally:
            if path is not None:
                path.unlink()
    _phase(ctx, sink, "random 4K reads", rand)
    _phase(ctx, sink, "metadata", lambda: iofiles.metadata(ctx, scratch, n_files, repeats, base))
    if ckpt_bytes > 0:
        from ai_ready.bench.io import checkpoint

        _phase(ctx, sink, "checkpoint save/load",
               lambda: checkpoint.run_checkpoint(ctx, scratch, ckpt_bytes, repeats))
    if n_samples > 0:
        from ai_ready.bench.io import dataload

        _phase(ctx, sink, "data loading", lambda: dataload.run_dataloader(ctx, scratch, n_samples, sample_bytes,
                                                                          workers, repeats))
    if isinstance(ctx.comm, MPIComm) and shared:
        from ai_ready.bench.io import mpiio

        _phase(ctx, sink, "MPI-IO shared file", lambda: mpiio.shared_file(
            ctx, ctx.comm.raw, scratch.path, max(blocks), file_bytes, repeats, base))
    elif ctx.rank == 0:
        reason = ("MPI-IO needs ranks started by mpiexec or srun with mpi4py" if not isinstance(ctx.comm, MPIComm)
                  else "--path is not one shared folder for all ranks (node-local storage): no shared file")
        if sink is not None:
            sink.add(_skipped(ctx, "mpiio-write-shared", reason, base))


def _summarise(records: list[Record], out: Path) -> None:
    rows = []
    for r in records:
        if r.metric in ("time", "latency") and r.status == "ok":
            continue
        cache = (r.timing or {}).get("cache", "") if r.status == "ok" else r.reason
        value = f"{r.value:.4g}" if r.status == "ok" else r.status
        where = "aggregate" if r.params.get("aggregate") else f"rank {r.rank}"
        extra = f"p50 {r.params['p50_us']:.0f} µs, p99 {r.params['p99_us']:.0f} µs" if "p99_us" in r.params else ""
        rows.append((r.case, where, value, r.unit if r.status == "ok" else "", "; ".join(x for x in (extra, cache) if x)))
    print_table("I/O (medians over repeats)", ["case", "rank", "value", "unit", "notes"], rows)
    note(f"results: {out}")
    if any(r.status == "failed" for r in records):
        note(f"ai-ready: some I/O tests failed; see {out}")
        raise SystemExit(EXIT_FAILED)
