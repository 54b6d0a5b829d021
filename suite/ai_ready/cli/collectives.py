"""`ai-ready bench collectives`: all-reduce and friends over NCCL, gloo or MPI, as nccl-tests reports them."""

from __future__ import annotations

import dataclasses
import socket
import sys
from pathlib import Path
from typing import Any

import click

from ai_ready.bench.collectives.backends import DTYPE_ALIASES, DTYPES, MPI_DTYPES, MPIBackend, TorchBackend, mpi_cuda_aware
from ai_ready.bench.collectives.ops import COLLECTIVES, OP_NAMES, PLACEMENTS, human_bytes, parse_size, size_sweep
from ai_ready.bench.collectives.run import BENCHMARK, Sweep, SweepConfig, summary_rows
from ai_ready.bench.runner import ResultSink, finishing
from ai_ready.cli.bench import bench, output_path
from ai_ready.cli.console import interactive, is_quiet, note, print_table
from ai_ready.cli.launch import mpi_comm, relaunch, setup_torch
from ai_ready.cli.progress import CaseProgress
from ai_ready.env.detect import detect
from ai_ready.errors import InputError
from ai_ready.measure.comm import Comm, launched_world_size
from ai_ready.measure.harness import Budget, budget_dict
from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.measure.timers import CudaEventTimer, HostTimer
from ai_ready.measure.watchdog import StepWatchdog
from ai_ready.records import Record, new_meta

EXIT_FAILED = 1
#: Per-point budget: collectives are many short steps (nccl-tests: 5 warm-up + 20 timed iterations
#: averaged into one figure). Blocks of at least 5 ms average microsecond calls the same way, so
#: scheduling jitter on shared nodes does not dominate each sample.
COLLECTIVES_BUDGET = Budget(warmup_s=0.05, min_time_s=0.25, min_samples=10, max_samples=100, min_block_s=5e-3)
QUICK_BUDGET = Budget(warmup_s=0.02, min_time_s=0.08, min_samples=5, max_samples=30, min_block_s=2e-3)
QUICK_MAX_BYTES = 16 << 20
QUICK_FACTOR = 4
#: Host memory a rank may use for its largest step: input + output + expected values + check copy.
HOST_BUFFERS_PER_BYTE = 6
MEMORY_FRACTION = 0.8


def parse_ops(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    if names == ("all",):
        return OP_NAMES
    unknown = [n for n in names if n not in COLLECTIVES]
    if unknown or not names:
        raise InputError(f"unknown operation '{','.join(unknown) or text}' in --ops; accepted: all or "
                         f"{', '.join(OP_NAMES)}")
    return names


def parse_bytes(option: str, text: str) -> int:
    try:
        value = parse_size(text)
    except ValueError:
        raise InputError(f"{option} {text}: accepted: a byte count such as 8, 64K, 256M or 1G") from None
    if value <= 0:
        raise InputError(f"{option} {text}: must be at least 1 byte")
    return value


def _placements(choice: str) -> tuple[str, ...]:
    return PLACEMENTS if choice == "both" else (choice,)


@bench.command("collectives")
@click.option("--ops", default="all", show_default=True, metavar="LIST",
              help=f"Comma-separated: all, {', '.join(OP_NAMES)}.")
@click.option("--backend", type=click.Choice(["auto", "nccl", "gloo", "mpi"]), default="auto", show_default=True,
              help="auto: nccl on GPUs, gloo on CPUs.")
@click.option("--min-bytes", default="8", show_default=True, metavar="SIZE", help="Smallest size S (nccl-tests -b).")
@click.option("--max-bytes", default=None, metavar="SIZE", help="Largest size S (nccl-tests -e) [default: 256M; 16M with --quick].")
@click.option("--factor", type=click.IntRange(min=2, max=1024), default=None, metavar="F",
              help="Size multiplication factor (nccl-tests -f) [default: 2; 4 with --quick].")
@click.option("--dtype", default="float32", show_default=True, metavar="TYPE", help=f"One of {', '.join(DTYPES)}.")
@click.option("--placement", type=click.Choice(["both", *PLACEMENTS]), default="both", show_default=True)
@click.option("--check/--no-check", default=True, show_default=True, help="Count wrong elements before timing.")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=86400), default=300.0, show_default=True,
              metavar="SECONDS", help="Per-step limit: a rank that hangs ends the run instead of hanging it.")
@click.option("--ranks", type=click.IntRange(min=1, max=1024), metavar="N",
              help="Start N local ranks through mpiexec (one node, convenience).")
@click.option("--quick", is_flag=True, help="Sizes up to 16M, factor 4, short time budget.")
@click.option("--warmup", type=click.FloatRange(min=0, max=3600), metavar="SECONDS", help="Warm-up per step.")
@click.option("--min-time", type=click.FloatRange(min=0, max=3600), metavar="SECONDS", help="Measured time per step.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Result file [default: reports/collectives-<time>.json].")
@click.pass_context
def bench_collectives(ctx: click.Context, ops: str, backend: str, min_bytes: str, max_bytes: str | None,
                      factor: int | None, dtype: str, placement: str, check: bool, timeout: float,
                      ranks: int | None, quick: bool, warmup: float | None, min_time: float | None,
                      output: Path | None) -> None:
    """Collective bandwidth (algbw, busbw) and latency per size, checked, with alpha-beta fits."""
    op_names = parse_ops(ops)
    dtype_name = DTYPE_ALIASES.get(dtype.lower())
    if dtype_name is None:
        raise InputError(f"unknown --dtype {dtype}; accepted: {', '.join(DTYPES)}")
    lo = parse_bytes("--min-bytes", min_bytes)
    hi = parse_bytes("--max-bytes", max_bytes or ("16M" if quick else "256M"))
    if lo > hi:
        raise InputError(f"--min-bytes {min_bytes} is larger than --max-bytes {max_bytes}")
    out = output_path(output, BENCHMARK)
    if ranks is not None:
        relaunch(ctx, ranks, out)
        return
    sizes = tuple(size_sweep(lo, hi, factor or (QUICK_FACTOR if quick else 2)))
    base = QUICK_BUDGET if quick else COLLECTIVES_BUDGET
    budget = Budget(warmup_s=base.warmup_s if warmup is None else warmup,
                    min_time_s=base.min_time_s if min_time is None else min_time,
                    min_samples=base.min_samples, max_samples=base.max_samples, min_block_s=base.min_block_s)
    cfg = SweepConfig(ops=op_names, sizes=sizes, placements=_placements(placement), check=check, timeout_s=timeout)
    _run(backend, dtype_name, cfg, budget, out, max_given=max_bytes is not None)


def _backends(name: str, dtype: str, cfg: SweepConfig, cuda: bool, device: str) -> tuple[Comm, list[Any], list[Record]]:
    """The coordinating communicator, the (backend, timer) pairs to sweep, and records of what cannot run."""
    engine, announced = launched_world_size()
    if name != "mpi":
        comm = setup_torch(name, cfg.timeout_s)
        timer = CudaEventTimer() if name == "nccl" else HostTimer()
        return comm, [(TorchBackend(name, dtype, device if name == "nccl" else "cpu"), timer)], []
    if dtype not in MPI_DTYPES:
        raise InputError(f"--dtype {dtype} has no standard MPI datatype; accepted with --backend mpi: "
                         f"{', '.join(MPI_DTYPES)}")
    comm = mpi_comm()
    if engine == "torch" and comm.size != announced:
        raise InputError(f"--backend mpi needs ranks started by mpiexec or srun: torchrun started {announced} "
                         f"ranks but MPI sees {comm.size}")
    sweeps = [(MPIBackend(comm.raw, dtype, "host"), HostTimer())]
    aware, why = mpi_cuda_aware() if cuda else (False, "no CUDA device here: MPI on device buffers not measured")
    if aware:
        return comm, sweeps + [(MPIBackend(comm.raw, dtype, "device"), HostTimer())], []
    skipped = [Record(benchmark=BENCHMARK, case=f"{op}-device-buffers", metric="time", unit="us",
                      params={"op": op, "backend": "mpi", "buffers": "device", "dtype": dtype},
                      status="skipped", reason=why) for op in cfg.ops]
    return comm, sweeps, skipped


#: A one-rank sweep stops here unless --max-bytes is given: nothing moves between ranks, so only latency means
#: something (on one H200 the NCCL sweep to 1 GiB took 95 s for bandwidths that are all 0).
ONE_RANK_MAX_BYTES = 64 * 1024


def _run(backend_choice: str, dtype: str, cfg: SweepConfig, budget: Budget, out: Path, max_given: bool = False) -> None:
    import torch

    environment = detect()
    cuda = torch.cuda.is_available()
    name = ("nccl" if cuda else "gloo") if backend_choice == "auto" else backend_choice
    if name == "nccl" and not cuda:
        raise InputError("--backend nccl needs CUDA GPUs, and none is visible here; accepted on this machine: gloo, mpi")
    device = "cpu"
    if cuda:
        device = f"cuda:{int(environment['launcher']['local_rank']) % torch.cuda.device_count()}"
        torch.cuda.set_device(torch.device(device))
    comm, sweeps, skipped = _backends(name, dtype, cfg, cuda, device)
    _, announced = launched_world_size()
    if announced > 1 and comm.size != announced:
        raise InputError(f"the launcher announced {announced} ranks but the {comm.name} world has {comm.size}; "
                         "check that mpi4py uses the same MPI as the launcher")
    if comm.size == 1:
        if not max_given and max(cfg.sizes) > ONE_RANK_MAX_BYTES:
            cfg = dataclasses.replace(cfg, sizes=tuple(x for x in cfg.sizes if x <= ONE_RANK_MAX_BYTES) or cfg.sizes[:1])
    hosts = comm.broadcast(comm.gather(socket.gethostname()))
    _check_memory(cfg, sweeps[0][0], hosts)
    if comm.size == 1:
        note(f"one rank: collectives move nothing between ranks, so bus bandwidth is 0 by definition and only the "
             f"latency means something; sizes up to {human_bytes(max(cfg.sizes))}"
             + ("" if max_given else " (--max-bytes to go further)") + "; run on 2 or more GPUs or nodes for bandwidth")

    meta = new_meta(["ai-ready", *sys.argv[1:]], environment)
    meta.update(budget=budget_dict(budget), world_size=comm.size, hosts=hosts)
    sink = ResultSink(out, meta) if comm.rank == 0 else None
    if sink is not None and skipped:
        sink.add(skipped)
    failed = 0
    with finishing(sink):
        for backend, timer in sweeps:
            failed += _sweep(backend, timer, cfg, budget, comm, sink, hosts, _ceiling(backend, hosts, environment))
    if sink is not None:
        _summarise(sink.document.records, cfg, out, failed)
    if name != "mpi":
        import torch.distributed as dist

        dist.destroy_process_group()
    if failed:
        raise SystemExit(EXIT_FAILED)


def _ceiling(backend: Any, hosts: list[str], environment: dict[str, Any]) -> dict[str, Any] | None:
    """Catalog busbw ceiling for GPU buffers; host buffers have none (the report says why)."""
    if backend.buffers != "device":
        return None
    from ai_ready.bench.ceiling import busbw_ceiling
    from ai_ready.catalog import load_catalog

    catalog = load_catalog()
    return busbw_ceiling(catalog, catalog.system("local", environment), multi_node=len(set(hosts)) > 1)


def _sweep(backend: Any, timer: Any, cfg: SweepConfig, budget: Budget, comm: Comm, sink: ResultSink | None,
           hosts: list[str], ceiling: dict[str, Any] | None = None) -> int:
    def on_timeout(message: str, missing: list[int]) -> None:
        if sink is None:
            return
        sink.document.records.append(Record(benchmark=BENCHMARK, case="timeout", metric="time", unit="us",
                                            params={"backend": backend.name, "missing_ranks": missing},
                                            status="failed", reason=message))
        sink.finish("timeout")

    watchdog = StepWatchdog(comm, cfg.timeout_s, hosts=hosts, on_timeout=on_timeout)
    sweep = Sweep(backend, cfg, comm, budget, timer, sink, ceiling=ceiling, watchdog=watchdog)
    total = sweep.total_steps()
    progress = CaseProgress(total, live=interactive() and comm.rank == 0, log_lines=False)
    sweep.progress = progress
    with progress:
        sweep.run()
    return comm.broadcast(sweep.failed if comm.rank == 0 else None)


def _check_memory(cfg: SweepConfig, backend: Any, hosts: list[str]) -> None:
    """Refuse sizes that cannot fit before any rank allocates (exit 2), not after an out-of-memory crash."""
    import psutil

    largest = max(cfg.sizes)
    if backend.buffers == "device":
        import torch

        free = torch.cuda.mem_get_info()[0]
        need = 3 * largest
    else:
        ranks_here = max(1, hosts.count(socket.gethostname()))
        free = psutil.virtual_memory().available // ranks_here
        need = HOST_BUFFERS_PER_BYTE * largest
    if need > MEMORY_FRACTION * free:
        raise InputError(f"--max-bytes {human_bytes(largest)} needs about {need / 1e9:.2f} GB per rank; "
                         f"{free / 1e9:.2f} GB is free per rank here; accepted: a smaller --max-bytes")


def _summarise(records: list[Record], cfg: SweepConfig, out: Path, failed: int) -> None:
    for op in cfg.ops:
        rows, avg = summary_rows(records, op)
        if not rows:
            continue
        print_table(f"{op} (times in µs, bandwidths in GB/s)",
                    ["size", "count", "type", "redop", "root", "oop time", "oop algbw", "oop busbw", "oop #wrong",
                     "ip time", "ip algbw", "ip busbw", "ip #wrong"], rows)
        if not is_quiet():
            click.echo(f"# {op}: Avg bus bandwidth : {avg:.4g} GB/s" if avg is not None else
                       f"# {op}: no successful sizes")
    fits = [r for r in records if r.benchmark == BENCHMARK and r.metric in ("alpha", "beta")]
    fit_rows = {}
    for r in fits:
        key = (r.params.get("op"), r.params.get("placement"))
        row = fit_rows.setdefault(key, {"alpha": "", "beta": "", "r2": r.params.get("r2"), "range": ""})
        row[r.metric] = f"{r.value:.4g}" if r.status == "ok" else r.reason
        if r.status == "ok":
            row["range"] = f"{human_bytes(r.params['min_bytes'])}..{human_bytes(r.params['max_bytes'])}"
    print_table("alpha-beta fits: t(S) = alpha + S/beta",
                ["op", "placement", "alpha (µs)", "beta (GB/s)", "R²", "sizes"],
                [(k[0], k[1], v["alpha"], v["beta"], f"{v['r2']:.4f}" if isinstance(v["r2"], float) else "",
                  v["range"]) for k, v in fit_rows.items()])
    noisy = [r.case for r in records if r.metric == "time" and r.stats and r.stats["cv"] > CV_WARN_THRESHOLD]
    if noisy:
        note(f"note: {len(noisy)} of the timed steps vary by more than {CV_WARN_THRESHOLD:.0%} between samples "
             f"(first: {', '.join(noisy[:3])}); the report lists them")
    for r in records:
        straggler = (r.timing or {}).get("straggler") if r.metric == "time" else None
        if straggler:
            note(f"straggler: {r.case}: rank {straggler['rank']} on {straggler['host']} is "
                 f"{straggler['ratio'] - 1:.0%} slower than the fastest rank")
    note(f"results: {out}")
    if failed:
        note(f"ai-ready: {failed} step(s) failed (wrong results or errors); see {out}")
