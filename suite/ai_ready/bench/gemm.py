"""GEMM: dense matrix-multiply throughput per dtype, against the device's peak.

Cases are square sizes and LLM-shaped products (tokens × hidden × 4·hidden
style). Each case is checked before it is timed: the output is poisoned with
NaN, the product is computed once, every element must be written, and a
random block of rows × columns must match a float64 reference computed from
the same (already rounded) operands within the dtype's tolerance. A case that
fails the check is a failed record, never a fast one.

FLOPs per product: 2·m·n·k (one multiply and one add per term).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from ai_ready.bench.ceiling import apply_ceiling
from ai_ready.bench.context import BenchContext
from ai_ready.bench.runner import failed_record
from ai_ready.errors import InputError
from ai_ready.measure.comm import agree
from ai_ready.measure.harness import measure
from ai_ready.records import Record
from ai_ready.stop import reraise_if_stopping

BENCHMARK = "gemm"
METRIC = "throughput"
UNIT = "TFLOP/s"

#: dtypes this benchmark knows, in display order.
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8")
CPU_DTYPES = ("fp32", "bf16")
#: Minimum CUDA compute capability per dtype (tf32/bf16 need Ampere, fp8 Ada/Hopper).
MIN_CAPABILITY = {"fp32": (0, 0), "tf32": (8, 0), "bf16": (8, 0), "fp16": (0, 0), "fp8": (8, 9)}

#: Relative Frobenius error bounds vs a float64 reference of the same rounded operands.
#: fp32 accumulates in fp32 (error ~ eps·sqrt(k) ≪ 1e-4); tf32 rounds inputs to 10 mantissa
#: bits inside the kernel (~3e-4); bf16/fp16/fp8 round the output to 8/11/8 bits.
TOLERANCE = {"fp32": 1e-4, "tf32": 2e-3, "bf16": 1e-2, "fp16": 5e-3, "fp8": 2e-2}
#: Rows and columns of the output block compared with the float64 reference.
CHECK_BLOCK = 128
#: torch._scaled_mm needs every dimension to be a multiple of this.
FP8_DIM_MULTIPLE = 16
#: Share of free memory a case may use for its operands.
MEMORY_FRACTION = 0.8

#: LLM-shaped products for T tokens and hidden size H: (name, m, n, k) as functions of (T, H).
LLM_SHAPES: tuple[tuple[str, Callable[[int, int], tuple[int, int, int]]], ...] = (
    ("llm-qkv", lambda t, h: (t, 3 * h, h)),
    ("llm-attn-out", lambda t, h: (t, h, h)),
    ("llm-mlp-up", lambda t, h: (t, 4 * h, h)),
    ("llm-mlp-down", lambda t, h: (t, h, 4 * h)),
)

#: Default sizes: (square sizes, (tokens, hidden) pairs) per device kind and mode.
DEFAULT_SIZES = {
    ("cpu", True): ((512, 1024, 2048), ((1024, 1024),)),
    ("cpu", False): ((256, 512, 1024, 2048, 4096), ((2048, 1024), (2048, 2048))),
    ("cuda", True): ((1024, 4096, 8192), ((8192, 4096),)),
    ("cuda", False): ((1024, 2048, 4096, 8192, 16384), ((8192, 4096), (8192, 8192), (16384, 12288))),
}
#: In quick mode only the MLP up-projection of each LLM shape runs.
QUICK_LLM_SHAPES = ("llm-mlp-up",)


@dataclass(frozen=True)
class GemmCase:
    shape: str
    m: int
    n: int
    k: int
    dtype: str

    @property
    def name(self) -> str:
        if self.shape == "square":
            return f"square-{self.m}-{self.dtype}"
        if self.shape == "custom":
            return f"gemm-{self.m}x{self.n}x{self.k}-{self.dtype}"
        return f"{self.shape}-{self.m}x{self.n}x{self.k}-{self.dtype}"

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k

    def params(self) -> dict[str, Any]:
        return {"shape": self.shape, "m": self.m, "n": self.n, "k": self.k, "dtype": self.dtype}

    def operand_bytes(self) -> int:
        size = 1 if self.dtype == "fp8" else (2 if self.dtype in ("bf16", "fp16") else 4)
        out = 2 if self.dtype == "fp8" else size
        return (self.m * self.k + self.k * self.n) * size + self.m * self.n * out


def describe(case: GemmCase) -> tuple[str, dict[str, Any], str, str]:
    return case.name, case.params(), METRIC, UNIT


def parse_dtypes(text: str | None, device_kind: str) -> tuple[str, ...]:
    """`--dtype fp32,bf16` (or None for the device's defaults); unknown names are InputError."""
    if not text:
        return CPU_DTYPES if device_kind == "cpu" else DTYPES
    names = tuple(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    unknown = [n for n in names if n not in DTYPES]
    if unknown or not names:
        raise InputError(f"unknown dtype '{','.join(unknown) or text}'; accepted: {', '.join(DTYPES)}")
    return names


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """`--sizes 1024,4096x1024x8192`: N is square N×N×N, MxNxK is an explicit product."""
    out = []
    for item in (t.strip().lower() for t in text.split(",")):
        parts = item.split("x")
        if not item or len(parts) not in (1, 3) or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise InputError(f"invalid size '{item}' in --sizes; accepted: positive integers N (square) "
                             "or MxNxK, comma-separated, e.g. 1024,4096x1024x8192")
        dims = [int(p) for p in parts]
        out.append((dims[0], dims[0], dims[0]) if len(dims) == 1 else (dims[0], dims[1], dims[2]))
    return out


def parse_llm(text: str) -> list[tuple[int, int]]:
    """`--llm 8192x4096` (tokens x hidden) pairs, or `none`."""
    if text.strip().lower() == "none":
        return []
    out = []
    for item in (t.strip().lower() for t in text.split(",")):
        parts = item.split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise InputError(f"invalid LLM shape '{item}' in --llm; accepted: TOKENSxHIDDEN pairs "
                             "such as 8192x4096, comma-separated, or 'none'")
        out.append((int(parts[0]), int(parts[1])))
    return out


def build_cases(
    device_kind: str,
    quick: bool,
    dtypes: Sequence[str],
    sizes: Sequence[tuple[int, int, int]] | None = None,
    llm: Sequence[tuple[int, int]] | None = None,
) -> list[GemmCase]:
    """Cases for the requested dtypes: user sizes, or the defaults for this device and mode."""
    default_square, default_llm = DEFAULT_SIZES[(device_kind, quick)]
    products: list[tuple[str, int, int, int]] = []
    if sizes is None:
        products += [("square", s, s, s) for s in default_square]
    else:
        products += [("square" if m == n == k else "custom", m, n, k) for m, n, k in sizes]
    pairs = default_llm if llm is None and sizes is None else (llm or [])
    for tokens, hidden in pairs:
        for shape, dims in LLM_SHAPES:
            if quick and shape not in QUICK_LLM_SHAPES:
                continue
            products.append((shape, *dims(tokens, hidden)))
    return [GemmCase(shape, m, n, k, dtype) for dtype in dtypes for shape, m, n, k in products]


def unsupported_reason(dtype: str, ctx: BenchContext, dims: tuple[int, int, int] = (0, 0, 0)) -> str | None:
    """Why `dtype` (at m, n, k = `dims`) cannot run on this device, or None."""
    if dtype == "fp8" and any(d % FP8_DIM_MULTIPLE for d in dims):
        return f"fp8 GEMM (torch._scaled_mm) needs m, n and k that are multiples of {FP8_DIM_MULTIPLE}"
    if not ctx.is_cuda:
        if dtype not in CPU_DTYPES:
            return f"{dtype} GEMM needs a CUDA device; on CPU ai-ready measures {', '.join(CPU_DTYPES)}"
        return None
    capability = torch.cuda.get_device_capability(torch.device(ctx.device))
    needed = MIN_CAPABILITY[dtype]
    if capability < needed:
        return f"{dtype} needs compute capability {needed[0]}.{needed[1]}+, device has {capability[0]}.{capability[1]}"
    if dtype == "fp8" and not (hasattr(torch, "_scaled_mm") and hasattr(torch, "float8_e4m3fn")):
        return "fp8 needs torch._scaled_mm and torch.float8_e4m3fn (PyTorch 2.1+)"
    return None


def free_memory_bytes(ctx: BenchContext) -> int:
    if ctx.is_cuda:
        free, _total = torch.cuda.mem_get_info(torch.device(ctx.device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


@contextlib.contextmanager
def fp32_mode(dtype: str, is_cuda: bool) -> Iterator[None]:
    """Pin fp32 matmuls to IEEE (fp32) or TF32 for the duration of a case, then restore."""
    if not is_cuda or dtype not in ("fp32", "tf32"):
        yield
        return
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        previous = matmul.fp32_precision
        matmul.fp32_precision = "tf32" if dtype == "tf32" else "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision = previous
    else:  # PyTorch < 2.9
        previous_flag = matmul.allow_tf32
        matmul.allow_tf32 = dtype == "tf32"
        try:
            yield
        finally:
            matmul.allow_tf32 = previous_flag


@dataclass
class Operands:
    """The inputs of one case and the timed call (A is m×k, B is k×n, both as stored for the kernel)."""

    call: Callable[[], torch.Tensor]
    out: torch.Tensor | None
    a: torch.Tensor
    b: torch.Tensor


def _select64(t: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """Rows or columns of `t` as float64; float8 is indexed as bytes (no index kernels for it)."""
    if t.element_size() == 1 and t.is_floating_point():
        return t.view(torch.uint8).index_select(dim, index).view(t.dtype).to(torch.float64)
    return t.index_select(dim, index).to(torch.float64)


def make_operands(case: GemmCase, device: str, generator: torch.Generator) -> Operands:
    """Random normal operands (never zeros), drawn on the device and stored in the case's dtype."""
    dev = torch.device(device)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    device_gen = torch.Generator(device=dev).manual_seed(seed)

    def randn(rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.randn(rows, cols, generator=device_gen, device=dev, dtype=torch.float32).to(dtype)

    if case.dtype == "fp8":
        a = randn(case.m, case.k, torch.float8_e4m3fn)
        b = randn(case.n, case.k, torch.float8_e4m3fn).t()  # column-major, as _scaled_mm requires
        one = torch.ones((), device=dev, dtype=torch.float32)
        return Operands(call=lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16),
                        out=None, a=a, b=b)
    storage = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[case.dtype]
    a = randn(case.m, case.k, storage)
    b = randn(case.k, case.n, storage)
    out = torch.empty(case.m, case.n, device=dev, dtype=storage)
    return Operands(call=lambda: torch.matmul(a, b, out=out), out=out, a=a, b=b)


def check(case: GemmCase, ops: Operands, generator: torch.Generator) -> dict[str, Any]:
    """Poison, compute once, and compare a random output block with float64 of the same rounded operands."""
    if ops.out is not None:
        ops.out.fill_(math.nan)
    result = ops.call()
    written = bool(torch.isfinite(result).all().item())
    rows = torch.randperm(case.m, generator=generator)[:CHECK_BLOCK].to(result.device)
    cols = torch.randperm(case.n, generator=generator)[:CHECK_BLOCK].to(result.device)
    ref = _select64(ops.a, 0, rows) @ _select64(ops.b, 1, cols)
    got = result.index_select(0, rows).index_select(1, cols).to(torch.float64)
    error = float(torch.linalg.norm(got - ref) / torch.linalg.norm(ref))
    tolerance = TOLERANCE[case.dtype]
    passed = written and math.isfinite(error) and error <= tolerance
    return {"passed": passed, "metric": "rel_fro_error", "value": error if math.isfinite(error) else None,
            "tolerance": tolerance, "reference": "float64", "all_written": written,
            "block": [min(CHECK_BLOCK, case.m), min(CHECK_BLOCK, case.n)]}


def check_failure_reason(result: dict[str, Any]) -> str:
    if not result["all_written"]:
        return "output not fully written (NaN poison survived) or non-finite values"
    return (f"wrong result: relative error {result['value']:.3g} exceeds {result['tolerance']:.1g} "
            "against the float64 reference")


def run_case(case: GemmCase, ctx: BenchContext, ceiling: dict[str, Any] | None) -> list[Record]:
    """Check, agree across ranks, then time one case."""
    name, params, _metric, _unit = describe(case)
    reason = unsupported_reason(case.dtype, ctx, (case.m, case.n, case.k))
    if reason is None and case.operand_bytes() > MEMORY_FRACTION * free_memory_bytes(ctx):
        reason = (f"needs {case.operand_bytes() / 1e9:.1f} GB for operands, more than "
                  f"{MEMORY_FRACTION:.0%} of the {free_memory_bytes(ctx) / 1e9:.1f} GB free")
    status, result, ops = "skipped", None, None
    if reason is None:
        try:
            generator = torch.Generator().manual_seed(ctx.seed + ctx.rank)
            with fp32_mode(case.dtype, ctx.is_cuda):
                ops = make_operands(case, ctx.device, generator)
                result = check(case, ops, generator)
            status = "ok" if result["passed"] else "failed"
            reason = None if result["passed"] else check_failure_reason(result)
        except Exception as exc:  # out of memory, unsupported kernel: a failed case, not a crash
            reraise_if_stopping(exc)  # a signal is never a failed case
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
    all_ok, bad_ranks = agree(ctx.comm, status == "ok")
    if not all_ok:
        if status == "ok":
            status, reason = "skipped", f"not timed: the case failed on rank(s) {bad_ranks}"
        record = failed_record(BENCHMARK, name, params, METRIC, UNIT, reason or "failed", ctx, status=status)
        record.check = result
        return [record]
    assert ops is not None
    with fp32_mode(case.dtype, ctx.is_cuda):
        m = measure(ops.call, ctx.budget, ctx.timer, ctx.comm, label=name)
    samples = [case.flops / s / 1e12 for s in m.samples_s]
    record = Record.from_samples(samples, benchmark=BENCHMARK, case=name, params=params, metric=METRIC,
                                 unit=UNIT, check=result, timing=m.timing_dict(), **ctx.record_fields())
    record.params["flops"] = case.flops
    return [apply_ceiling(record, ceiling)]
