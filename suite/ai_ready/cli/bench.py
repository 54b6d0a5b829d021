"""`ai-ready bench ...`: micro-benchmarks of this node."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from ai_ready.bench import gemm
from ai_ready.bench.ceiling import peak_ceiling
from ai_ready.bench.context import BenchContext
from ai_ready.bench.runner import run_cases
from ai_ready.catalog import load_catalog
from ai_ready.cli.console import interactive, is_debug, is_quiet, note, print_table
from ai_ready.cli.progress import CaseProgress
from ai_ready.env.detect import detect
from ai_ready.errors import InputError
from ai_ready.fileio import check_writable_file
from ai_ready.measure.comm import world_comm
from ai_ready.measure.harness import DEFAULT, QUICK, Budget
from ai_ready.records import ResultDocument

#: Exit code when a case failed its correctness check or crashed.
EXIT_FAILED_CASES = 1
DEFAULT_OUTPUT_DIR = Path("reports")


@click.group(no_args_is_help=True)
def bench() -> None:
    """Micro-benchmarks: each writes a versioned JSON result file."""


def resolve_device(choice: str, local_rank: int) -> str:
    """auto -> the local rank's GPU if CUDA works, else the CPU; validate explicit choices."""
    import torch

    if choice == "auto":
        return f"cuda:{local_rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise InputError(f"--device {choice}: no CUDA device is available here; accepted: auto, cpu")
    index = choice.partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise InputError(f"--device {choice}: accepted: cuda or cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return choice if index else f"cuda:{local_rank % torch.cuda.device_count()}"


def output_path(output: Path | None, benchmark: str) -> Path:
    """The result file: `-o` as given, else reports/<benchmark>-<time>.json; reject unusable paths."""
    if output is None:
        output = DEFAULT_OUTPUT_DIR / f"{benchmark}-{datetime.now():%Y%m%d-%H%M%S}.json"
    if output.is_dir():
        raise InputError(f"-o {output} is a folder; give a file name such as {output / (benchmark + '.json')}")
    parent = output.parent if str(output.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InputError(f"-o {output}: '{parent}' is not a folder")
    check_writable_file(output, "-o")  # found now, not after the measurements
    return output


def make_budget(quick: bool, warmup: float | None, min_time: float | None) -> Budget:
    base = QUICK if quick else DEFAULT
    return Budget(
        warmup_s=base.warmup_s if warmup is None else warmup,
        min_time_s=base.min_time_s if min_time is None else min_time,
        min_samples=base.min_samples,
        max_samples=base.max_samples,
    )


def _device_name(device: str, environment: dict) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return environment.get("cpu", {}).get("model", "cpu")


@bench.command("gemm")
@click.option("--quick", is_flag=True, help="Few sizes and a short time budget (a smoke test, ~20 s on a CPU).")
@click.option("--dtype", "dtypes", metavar="LIST",
              help=f"Comma-separated dtypes from {', '.join(gemm.DTYPES)} "
                   f"[default: all the device supports; CPU: {', '.join(gemm.CPU_DTYPES)}].")
@click.option("--sizes", metavar="LIST", help="Products to time: N (square) or MxNxK, comma-separated.")
@click.option("--llm", metavar="LIST",
              help="LLM-shaped products as TOKENSxHIDDEN pairs (qkv, attention-out, MLP up/down), or 'none'.")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
              help="Where to run; auto picks this rank's GPU if there is one.")
@click.option("--warmup", type=click.FloatRange(min=0, max=3600), metavar="SECONDS",
              help="Warm-up time budget per case.")
@click.option("--min-time", type=click.FloatRange(min=0, max=3600), metavar="SECONDS",
              help="Measured time budget per case.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed of the operands.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Result file [default: reports/gemm-<time>.json].")
def bench_gemm(quick: bool, dtypes: str | None, sizes: str | None, llm: str | None, device: str,
               warmup: float | None, min_time: float | None, seed: int, output: Path | None) -> None:
    """Dense matrix-multiply TFLOP/s per dtype, checked against float64, vs the device peak."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"--device {device}: accepted: auto, cpu, cuda, cuda:N")
    parsed_sizes = gemm.parse_sizes(sizes) if sizes else None
    parsed_llm = gemm.parse_llm(llm) if llm else None
    out = output_path(output, "gemm")
    environment = detect()
    torch_device = resolve_device(device, int(environment["launcher"]["local_rank"]))
    if torch_device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(torch_device))
    device_kind = "cuda" if torch_device.startswith("cuda") else "cpu"
    dtype_list = gemm.parse_dtypes(dtypes, device_kind)
    cases = gemm.build_cases(device_kind, quick, dtype_list, parsed_sizes, parsed_llm)
    _reject_oversized(cases, parsed_sizes, torch_device)

    catalog = load_catalog()
    system = catalog.system("local", environment)
    ceilings = {d: peak_ceiling(catalog, system, d) for d in dtype_list}
    comm = world_comm(torch_device)
    ctx = BenchContext(device=torch_device, device_name=_device_name(torch_device, environment), comm=comm,
                       budget=make_budget(quick, warmup, min_time), environment=environment, seed=seed)
    progress = CaseProgress(len(cases), live=interactive() and comm.rank == 0,
                            log_lines=not is_quiet() and comm.rank == 0)
    document = run_cases(gemm.BENCHMARK, cases, lambda c, x: gemm.run_case(c, x, ceilings[c.dtype]), gemm.describe,
                         ctx, out if comm.rank == 0 else None, command=["ai-ready", *sys.argv[1:]],
                         progress=progress, debug=is_debug())
    if document is not None:
        _summarise(document, out)


def _reject_oversized(cases: list[gemm.GemmCase], user_sizes: object, device: str) -> None:
    """A user-given size that cannot fit in memory is bad input, not a failed measurement."""
    if user_sizes is None:
        return
    ctx = BenchContext(device=device)
    free = gemm.free_memory_bytes(ctx)
    for case in cases:
        if case.operand_bytes() > gemm.MEMORY_FRACTION * free:
            raise InputError(f"--sizes {case.m}x{case.n}x{case.k} ({case.dtype}) needs "
                             f"{case.operand_bytes() / 1e9:.3g} GB for its operands; this device has "
                             f"{free / 1e9:.1f} GB free; accepted: sizes whose operands fit")


def _summarise(document: ResultDocument, out: Path) -> None:
    rows = []
    for r in document.records:
        p = r.params
        shape = f"{p.get('m')}×{p.get('n')}×{p.get('k')}"
        if r.status != "ok":
            rows.append((p.get("shape"), shape, p.get("dtype"), r.status, "", "", r.reason))
            continue
        ceiling = r.ceiling or {}
        peak = f"{ceiling['value']:.4g} ({ceiling['kind']})" if ceiling else "unknown"
        pct = f"{r.pct_of_ceiling:.1f}%" if r.pct_of_ceiling is not None else ""
        cv = r.stats["cv"] if r.stats else 0.0
        rows.append((p.get("shape"), shape, p.get("dtype"), f"{r.value:.4g}", peak, pct,
                     f"CV {cv:.1%}" + (" NOISY" if cv > 0.10 else "")))
    print_table(f"GEMM on {document.records[0].device if document.records else '?'} (TFLOP/s, median)",
                ["shape", "m×n×k", "dtype", "TFLOP/s", "peak", "% of peak", "notes"], rows)
    note(f"results: {out}")
    failed = [r for r in document.records if r.status == "failed"]
    if failed:
        note(f"ai-ready: {len(failed)} case(s) failed; see the reasons above and in {out}")
        raise SystemExit(EXIT_FAILED_CASES)
