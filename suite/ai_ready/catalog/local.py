"""The ``local`` system: this machine, described from runtime detection.

On a GPU node the accelerator comes from the catalog (matched by device name)
so its peaks keep their published sources. On a CPU-only machine there is no
published peak, so we *declare* one from cores × clock × FLOPs per cycle and
mark it as an assumption that spells out the arithmetic; a roofline against a
declared peak is still useful as long as the report says it was declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ai_ready.catalog.model import LOCAL_SYSTEM, Accelerator, Catalog, Figure, System

DETECTED = "detected"
DEFINITION = "definition"
LOCAL_CPU = "local-cpu"
UNKNOWN_GPU = "unknown-gpu"

#: cores × MHz × FLOP/cycle → TFLOP/s: MHz is 1e6 cycles/s, TFLOP/s is 1e12 FLOP/s.
TFLOPS_PER_MHZ_FLOP = 1e-6
#: fp64 vector lanes are half as many as fp32 lanes on every x86 ISA below.
FP64_PER_FP32 = 0.5
#: Decimal places kept in declared peaks (well below any meaningful precision).
PEAK_DIGITS = 6

USER_CATALOG_HINT = (
    "declare this accelerator in a YAML file under a folder listed in AI_READY_CATALOG_PATH "
    "(see docs/catalog.md) to get peaks and rooflines"
)


@dataclass(frozen=True)
class IsaRate:
    """FLOPs per cycle per core that a CPU reaches when it has all of `flags`."""

    flags: tuple[str, ...]
    flops_per_cycle: int
    explanation: str


#: fp32 rules, best first; the first whose flags are all present applies.
FP32_RATES = (
    IsaRate(("avx512f",), 64, "AVX-512: 2 FMA units × 16 fp32 lanes × 2 FLOP per FMA; 2 FMA units assumed"),
    IsaRate(("avx2", "fma"), 32, "AVX2+FMA: 2 FMA units × 8 fp32 lanes × 2 FLOP per FMA; 2 FMA units assumed"),
    IsaRate(("sse",), 8, "SSE: 4 fp32 lanes × (1 add + 1 multiply) per cycle"),
)
#: bf16 rules, best first; without any of them bf16 runs on the fp32 units.
BF16_RATES = (
    IsaRate(("amx_bf16",), 1024, "AMX-BF16 tile unit: 1024 bf16 FLOP per cycle per core, assumed"),
    IsaRate(("avx512_bf16",), 128, "AVX512-BF16: 2 units × 16 fp32 lanes × 2 bf16 pairs × 2 FLOP, assumed"),
)


def build_local(detected: dict[str, Any] | None, catalog: Catalog) -> System:
    """``local`` from `detected` hardware, or from this machine's when None (detection may load torch)."""
    if detected is None:
        from ai_ready.env.detect import detect_hardware

        detected = detect_hardware()
    return local_system(detected, catalog)


def local_system(detected: dict[str, Any], catalog: Catalog) -> System:
    """Describe this machine as a System, from the dict that ``ai_ready.env.detect.detect()`` returns."""
    device = detected.get("device") or {}
    host = detected.get("host") or "this host"
    if device.get("kind") == "cuda":
        accelerator = _gpu_accelerator(device, catalog)
        per_node = _detected(int(device.get("count") or 1), note="GPUs visible on this node")
        what = f"{per_node.value} × {device.get('name') or 'GPU'}"
    else:
        accelerator = cpu_accelerator(detected.get("cpu") or {})
        per_node = Figure(value=1, source=(DEFINITION,), note="the CPU of the node stands in for one accelerator")
        what = f"CPU {accelerator.model}"
    return System(
        name=LOCAL_SYSTEM,
        accelerator=accelerator,
        nodes=_nodes(detected.get("launcher") or {}),
        accelerators_per_node=per_node,
        description=f"Built from detection on {host}: {what} (accelerator '{accelerator.name}').",
    )


def _detected(value: int | float, unit: str | None = None, note: str | None = None) -> Figure:
    return Figure(value=value, unit=unit, source=(DETECTED,), note=note)


def _nodes(launcher: dict[str, Any]) -> Figure:
    nodes = launcher.get("nodes")
    if isinstance(nodes, int) and nodes > 0:
        return _detected(nodes, note=f"from launcher '{launcher.get('name', 'unknown')}'")
    return _detected(1, note="the launcher reports no node count; this node only")


def _gpu_accelerator(device: dict[str, Any], catalog: Catalog) -> Accelerator:
    """The catalog entry for this GPU, or an explicit 'unknown-gpu' entry without peaks."""
    name = str(device.get("name") or "")
    matched = catalog.match_accelerator(name) if name else None
    if matched is not None:
        return matched
    memory = device.get("memory_gb")
    return Accelerator(
        name=UNKNOWN_GPU,
        vendor=_vendor(name),
        model=name or "unnamed GPU",
        memory={"capacity_gb": _detected(memory, "GB")} if _positive(memory) else {},
        description=f"'{name}' is not in the catalog, so no peaks are known; {USER_CATALOG_HINT}.",
    )


def _vendor(device_name: str) -> str:
    lowered = device_name.lower()
    for vendor in ("NVIDIA", "AMD", "Intel"):
        if vendor.lower() in lowered:
            return vendor
    return "unknown"


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


# ---------------------------------------------------------------- CPU


def cpu_accelerator(cpu: dict[str, Any]) -> Accelerator:
    """The local CPU as an accelerator with declared (assumed) peaks."""
    model = str(cpu.get("model") or "unknown CPU")
    peaks, why_none = declared_peaks(cpu)
    memory = cpu.get("memory_gb")
    description = "Peaks are declared from cores × clock × FLOPs/cycle, not published figures."
    if why_none:
        description = f"No declared peak: {why_none}."
    return Accelerator(
        name=LOCAL_CPU,
        vendor=_vendor(model),
        model=model,
        peak_tflops=peaks,
        memory={"capacity_gb": _detected(memory, "GB", note="host memory")} if _positive(memory) else {},
        description=description,
    )


def declared_peaks(cpu: dict[str, Any]) -> tuple[dict[str, Figure], str | None]:
    """Declared fp64/fp32/bf16 peaks, or none and the reason (we never guess a clock)."""
    cores, core_kind = _cores(cpu)
    mhz = cpu.get("freq_mhz")
    rates = isa_rates({str(flag).lower() for flag in cpu.get("flags") or ()})
    if not cores:
        return {}, "the core count is unknown"
    if not _positive(mhz):
        return {}, "the clock frequency is unknown (freq_mhz is missing)"
    if not rates:
        return {}, "no recognised vector ISA flags (avx512f, avx2+fma, sse)"
    return {dtype: _declared(cores, core_kind, float(mhz), rate) for dtype, rate in rates.items()}, None


def isa_rates(flags: set[str]) -> dict[str, IsaRate]:
    """FLOPs per cycle per core by dtype for these CPU flags; empty without a known vector ISA."""
    fp32 = _first_rate(FP32_RATES, flags)
    if fp32 is None:
        return {}
    fp64_flops = int(fp32.flops_per_cycle * FP64_PER_FP32)
    fp64 = IsaRate(fp32.flags, fp64_flops, f"fp64 has half the lanes of {fp32.explanation}")
    on_fp32 = f"no bf16 ISA, bf16 runs on the fp32 units; {fp32.explanation}"
    bf16_on_fp32 = IsaRate(fp32.flags, fp32.flops_per_cycle, on_fp32)
    return {"fp64": fp64, "fp32": fp32, "bf16": _first_rate(BF16_RATES, flags) or bf16_on_fp32}


def _cores(cpu: dict[str, Any]) -> tuple[int | None, str]:
    """Physical cores when known: SMT siblings share the vector units."""
    physical = cpu.get("cores_physical")
    if isinstance(physical, int) and physical > 0:
        return physical, "cores"
    logical = cpu.get("cores_logical")
    if isinstance(logical, int) and logical > 0:
        return logical, "logical cores (physical count unknown)"
    return None, ""


def _first_rate(rates: tuple[IsaRate, ...], flags: set[str]) -> IsaRate | None:
    return next((rate for rate in rates if all(flag in flags for flag in rate.flags)), None)


def _declared(cores: int, core_kind: str, mhz: float, rate: IsaRate) -> Figure:
    value = round(cores * mhz * rate.flops_per_cycle * TFLOPS_PER_MHZ_FLOP, PEAK_DIGITS)
    text = f"declared: {cores} {core_kind} × {mhz:g} MHz × {rate.flops_per_cycle} FLOP/cycle ({rate.explanation})"
    return Figure(value=value, unit="TFLOP/s", assumption=text, note="clock and core count detected")
