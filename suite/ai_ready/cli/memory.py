"""`ai-ready bench memory` and `ai-ready bench kernels`: memory bandwidth and ai-ready's own CUDA kernels."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click

from ai_ready.bench.context import BenchContext
from ai_ready.bench.runner import run_cases
from ai_ready.cli.bench import bench, make_budget, output_path, resolve_device
from ai_ready.cli.console import interactive, is_debug, is_quiet, note, print_table
from ai_ready.cli.progress import CaseProgress
from ai_ready.env.detect import detect
from ai_ready.errors import InputError
from ai_ready.measure.comm import world_comm
from ai_ready.records import Record, ResultDocument
from ai_ready.stop import reraise_if_stopping

UNIT = "GB/s"
#: Bytes per array when --size is not given (raised to the last-level cache size where that is larger).
DEFAULT_BYTES = {("cpu", False): 256 << 20, ("cpu", True): 64 << 20,
                 ("cuda", False): 1 << 30, ("cuda", True): 256 << 20}
#: Arrays alive at once (triad: two inputs and an output; transfers: a host and a device copy).
ARRAYS = 3
MEMORY_FRACTION = 0.8
ITEM = 4
GPU_MEMORY_CASES = ("d2d-copy", "h2d-pinned", "h2d-pageable", "d2h-pinned", "d2h-pageable")
KERNEL_CASES = ("reduce-sum", "bias-gelu", "launch-empty", "launch-empty-graph")
EXIT_FAILED = 1


@dataclass
class Case:
    """One measurement: its identity and the function that returns its record."""

    name: str
    params: dict[str, Any]
    run: Callable[[BenchContext], Record]
    metric: str = "bandwidth"
    unit: str = UNIT
    state: dict[str, Any] = field(default_factory=dict)


def _describe(case: Case) -> tuple[str, dict[str, Any], str, str]:
    return case.name, case.params, case.metric, case.unit


def _skipped(benchmark: str, name: str, reason: str, metric: str = "bandwidth", unit: str = UNIT) -> Case:
    def run(ctx: BenchContext) -> Record:
        return Record(benchmark=benchmark, case=name, params={"op": name, "device": "cuda"}, metric=metric,
                      unit=unit, status="skipped", reason=reason, **ctx.record_fields())

    return Case(name, {"op": name}, run, metric, unit)


def last_level_cache_bytes(device: str) -> int | None:
    """L2 of the GPU, or the largest CPU cache sysfs reports (a VM may see its whole host socket's L3)."""
    if device.startswith("cuda"):
        import torch

        return int(getattr(torch.cuda.get_device_properties(torch.device(device)), "L2_cache_size", 0)) or None
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


def _parse_size(text: str | None, device_kind: str, quick: bool, llc: int | None) -> int:
    """Bytes per array: as given, else the default but never less than the last-level cache, so even a
    two-array copy moves at least twice the cache and the figure is memory, not cache, bandwidth."""
    from ai_ready.bench.collectives.ops import parse_size

    if text is None:
        return max(DEFAULT_BYTES[(device_kind, quick)], _round_up_mib(llc or 0))
    try:
        size = parse_size(text)
    except ValueError:
        raise InputError(f"--size {text}: accepted: bytes per array such as 64M, 1G or 268435456") from None
    if size < ITEM * 4:
        raise InputError(f"--size {text}: at least 16 bytes (four float32 elements) per array")
    return size


def _round_up_mib(n: int) -> int:
    return -(-n // (1 << 20)) * (1 << 20)


def annotate_cache(record: Record, array_bytes: int, llc: int | None) -> Record:
    """Say whether the arrays exceed the last-level cache; warn when a figure is really cache bandwidth."""
    if record.status != "ok" or record.metric != "bandwidth" or record.timing is None:
        return record
    if llc is None:
        record.timing["cache"] = f"arrays of {array_bytes >> 20} MiB; last-level cache size unknown"
        return record
    record.timing["cache"] = (f"arrays of {array_bytes >> 20} MiB vs a {llc >> 20} MiB last-level cache: "
                              + ("each array exceeds it (memory bandwidth)" if array_bytes >= llc else "they fit"))
    if array_bytes < llc:
        record.warnings.append(f"{record.case}: arrays of {array_bytes >> 20} MiB fit in the {llc >> 20} MiB "
                               "last-level cache: this is cache bandwidth, not memory bandwidth; use a larger --size")
    return record


def _check_fits(size: int, device: str) -> None:
    """Refuse arrays that cannot fit before allocating anything (exit 2)."""
    if device.startswith("cuda"):
        import torch

        free = torch.cuda.mem_get_info(torch.device(device))[0]
        where = "device"
    else:
        import psutil

        free = psutil.virtual_memory().available
        where = "host"
    if ARRAYS * size > MEMORY_FRACTION * free:
        raise InputError(f"--size {size / 2**20:.0f} MiB needs {ARRAYS} arrays = {ARRAYS * size / 1e9:.2f} GB of "
                         f"{where} memory; {free / 1e9:.2f} GB is free; accepted: a smaller --size")


def _cupy_or_reason() -> tuple[Any, str | None]:
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy, None
    except ImportError:
        return None, "CuPy is not installed: pip install 'ai-ready[cuda12]' (or [cuda13]) to run ai-ready's kernels"
    except Exception as exc:  # CuPy present but no usable device or driver
        reraise_if_stopping(exc)
        return None, f"CuPy cannot use the GPU: {exc}"


def _setup(quick: bool, size: str | None, device: str, warmup: float | None, min_time: float | None,
           seed: int) -> tuple[BenchContext, int]:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"--device {device}: accepted: auto, cpu, cuda, cuda:N")
    environment = detect()
    torch_device = resolve_device(device, int(environment["launcher"]["local_rank"]))
    kind = "cuda" if torch_device.startswith("cuda") else "cpu"
    llc = last_level_cache_bytes(torch_device)
    nbytes = _parse_size(size, kind, quick, llc)
    _check_fits(nbytes, torch_device)
    if kind == "cuda":
        import torch

        torch.cuda.set_device(torch.device(torch_device))
    from ai_ready.cli.bench import _device_name

    environment["last_level_cache_bytes"] = llc
    ctx = BenchContext(device=torch_device, device_name=_device_name(torch_device, environment),
                       comm=world_comm(torch_device), budget=make_budget(quick, warmup, min_time),
                       environment=environment, seed=seed)
    elements = nbytes // ITEM
    return ctx, elements - elements % 4


def _gpu_context(ctx: BenchContext) -> tuple[Any, Any, dict[str, Any] | None, str | None]:
    """CuPy, the compiled kernels (or the build error), the catalog HBM ceiling, and why CuPy is unusable."""
    cp, why = _cupy_or_reason()
    if cp is None:
        return None, None, None, why
    cp.cuda.Device(int(ctx.device.partition(":")[2] or 0)).use()
    from ai_ready.bench.ceiling import hbm_ceiling
    from ai_ready.bench.memory.kernels import KernelBuildError, Kernels
    from ai_ready.catalog import load_catalog

    catalog = load_catalog()
    hbm = hbm_ceiling(catalog, catalog.system("local", ctx.environment))
    try:
        kernels: Any = Kernels(cp)
    except KernelBuildError as exc:
        kernels = exc
    return cp, kernels, hbm, None


def _kernel_case(benchmark: str, name: str, kernels: Any, body: Callable[[Any], Record],
                 metric: str = "bandwidth", unit: str = UNIT) -> Case:
    """A case that needs the compiled kernels; a build failure is a failed record with the compiler's log."""
    def run(ctx: BenchContext) -> Record:
        if isinstance(kernels, Exception):
            return Record(benchmark=benchmark, case=name, params={"op": name, "device": "cuda"}, metric=metric,
                          unit=unit, status="failed", reason=str(kernels), **ctx.record_fields())
        return body(kernels)

    return Case(name, {"op": name}, run, metric, unit)


def memory_cases(ctx: BenchContext, elements: int) -> list[Case]:
    from ai_ready.bench.memory import cpu, gpu
    from ai_ready.bench.memory.stream import STREAM_NAMES

    state: dict[str, Any] = {}
    if not ctx.is_cuda:
        def host(name: str) -> Case:
            def run(c: BenchContext) -> Record:
                record = cpu.run_stream(name, elements, c, state.get("ceiling"))
                if name == "copy":
                    state["ceiling"] = cpu.copy_ceiling(record)
                return record
            return Case(name, {"op": name, "elements": elements}, run)

        reason = "no CUDA device: device copies and host-device transfers need a GPU"
        return [host(n) for n in STREAM_NAMES] + [_skipped("memory", n, reason) for n in GPU_MEMORY_CASES]

    cp, kernels, hbm, why = _gpu_context(ctx)
    if cp is None:
        return [_skipped("memory", n, why or "CuPy unavailable") for n in (*GPU_MEMORY_CASES, *STREAM_NAMES)]

    def d2d(c: BenchContext) -> Record:
        record = gpu.d2d_copy(cp, elements, c, hbm)
        state["ceiling"] = gpu.measured_copy_ceiling(record)
        return record

    cases = [Case("d2d-copy", {"op": "d2d-copy"}, d2d)]
    for direction in ("h2d", "d2h"):
        for memory in ("pinned", "pageable"):
            cases.append(Case(f"{direction}-{memory}", {"op": direction, "memory": memory},
                              lambda c, d=direction, m=memory: gpu.transfer(cp, d, m, elements, c)))
    for name in STREAM_NAMES:
        cases.append(_kernel_case("memory", name, kernels, lambda k, n=name: gpu.with_ceilings(
            gpu.stream_kernel(cp, k, n, elements, ctx), state.get("ceiling"), hbm)))
    return cases


def kernel_cases(ctx: BenchContext, elements: int) -> list[Case]:
    from ai_ready.bench.memory import gpu

    if not ctx.is_cuda:
        reason = "no CUDA device: CuPy kernels need a GPU"
        return [_skipped("kernels", n, reason, *(("latency", "us") if n.startswith("launch") else ()))
                for n in KERNEL_CASES]
    cp, kernels, hbm, why = _gpu_context(ctx)
    if cp is None:
        return [_skipped("kernels", n, why or "CuPy unavailable") for n in KERNEL_CASES]
    state: dict[str, Any] = {}

    def d2d(c: BenchContext) -> Record:
        record = gpu.d2d_copy(cp, elements, c, hbm)
        state["ceiling"] = gpu.measured_copy_ceiling(record)
        return record

    return [
        Case("d2d-copy", {"op": "d2d-copy"}, d2d),
        _kernel_case("kernels", "reduce-sum", kernels, lambda k: gpu.with_ceilings(
            gpu.reduce_sum(cp, k, elements, ctx), state.get("ceiling"), hbm)),
        _kernel_case("kernels", "bias-gelu", kernels, lambda k: gpu.with_ceilings(
            gpu.bias_gelu(cp, k, elements, ctx), state.get("ceiling"), hbm)),
        _kernel_case("kernels", "launch-empty", kernels, lambda k: gpu.launch_latency(cp, k, ctx, graph=False),
                     "latency", "us"),
        _kernel_case("kernels", "launch-empty-graph", kernels, lambda k: gpu.launch_latency(cp, k, ctx, graph=True),
                     "latency", "us"),
    ]


def _run(benchmark: str, cases: list[Case], ctx: BenchContext, out: Path, elements: int) -> None:
    progress = CaseProgress(len(cases), live=interactive() and ctx.rank == 0,
                            log_lines=not is_quiet() and ctx.rank == 0)
    llc = ctx.environment.get("last_level_cache_bytes")
    array_bytes = elements * ITEM
    document = run_cases(benchmark, cases, lambda c, x: [annotate_cache(c.run(x), array_bytes, llc)], _describe, ctx,
                         out if ctx.rank == 0 else None, command=["ai-ready", *sys.argv[1:]], progress=progress,
                         debug=is_debug())
    if document is not None:
        _summarise(document, out, ctx)


def _summarise(document: ResultDocument, out: Path, ctx: BenchContext) -> None:
    rows = []
    for r in document.records:
        if r.status != "ok":
            rows.append((r.case, r.status, "", "", r.reason))
            continue
        ceiling = r.ceiling or {}
        pct = f"{r.pct_of_ceiling:.1f}% of {ceiling.get('label', '')}" if r.pct_of_ceiling is not None else \
            ("the measured ceiling" if r.params.get("role") == "ceiling" else "")
        others = "; ".join(f"{c['pct']:.1f}% of {c['label']}" for c in r.other_ceilings)
        rows.append((r.case, f"{r.value:.4g}", r.unit, f"CV {r.stats['cv']:.1%}" if r.stats else "",
                     "; ".join(x for x in (pct, others) if x)))
    threads = next((r.params.get("threads") for r in document.records if r.params.get("threads")), None)
    where = f"{ctx.device_name}" + (f", {threads} threads" if threads else "")
    print_table(f"{document.records[0].benchmark if document.records else 'memory'} on {where} (median)",
                ["case", "value", "unit", "spread", "against"], rows)
    note(f"results: {out}")
    if any(r.status == "failed" for r in document.records):
        note(f"ai-ready: some cases failed; see the reasons above and in {out}")
        raise SystemExit(EXIT_FAILED)


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--quick", is_flag=True, help="Smaller arrays and a short time budget."),
        click.option("--size", metavar="BYTES", help="Bytes per array, e.g. 256M [default: 256M CPU, 1G GPU; "
                                                     "quick: 64M CPU, 256M GPU]."),
        click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]"),
        click.option("--warmup", type=click.FloatRange(min=0, max=3600), metavar="SECONDS"),
        click.option("--min-time", type=click.FloatRange(min=0, max=3600), metavar="SECONDS"),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
        click.option("-o", "--output", type=click.Path(path_type=Path)),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@bench.command("memory")
@_common
def bench_memory(quick: bool, size: str | None, device: str, warmup: float | None, min_time: float | None,
                 seed: int, output: Path | None) -> None:
    """Memory bandwidth: STREAM copy/scale/add/triad (GPU: ai-ready's CUDA kernels and the
    device-to-device copy ceiling, host-device transfers; CPU: torch on all cores)."""
    out = output_path(output, "memory")
    ctx, elements = _setup(quick, size, device, warmup, min_time, seed)
    _run("memory", memory_cases(ctx, elements), ctx, out, elements)


@bench.command("kernels")
@_common
def bench_kernels(quick: bool, size: str | None, device: str, warmup: float | None, min_time: float | None,
                  seed: int, output: Path | None) -> None:
    """ai-ready's CUDA kernels through CuPy: block reduction, fused bias+GELU, launch latency
    (plain and CUDA-graph replay), against the measured device-to-device copy."""
    out = output_path(output, "kernels")
    ctx, elements = _setup(quick, size, device, warmup, min_time, seed)
    _run("kernels", kernel_cases(ctx, elements), ctx, out, elements)
