"""What the step-time model needs to know about a machine, resolved once from the catalog.

A :class:`Hardware` is a flat set of rates (peak FLOP/s for the training precision, best GEMM
efficiency, a per-kernel fixed cost, HBM bandwidth, the scale-up and scale-out links) plus the
list of assumptions behind them. The step model reads only these numbers, so a search over
100,000-GPU layouts never touches the catalog again, and a measured calibration (GEMM fits,
collective fits) replaces catalog figures by building a different :class:`Hardware`.

Every default below is used only where the catalog (or a measurement) has nothing, and says so
in :attr:`Hardware.assumptions`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ai_ready.catalog.model import Figure, System
from ai_ready.errors import InputError
from ai_ready.model.comm import Link

#: Best GEMM efficiency where the catalog has no measured MAMF figure for the part.
DEFAULT_GEMM_EFFICIENCY = 0.80
GEMM_EFFICIENCY_ASSUMPTION = (
    "0.80 of the dense peak for large GEMMs: the H100's measured MAMF in the catalog (S1); used for parts "
    "without their own matmul_efficiency_bf16")

#: Fixed cost of one GEMM kernel (launch, prologue/epilogue, tail wave): t = F / (peak · e) + t0.
#: With t0 = 4 µs an A100 GEMM of 1 GFLOP reaches 47% of its best rate and one of 16 GFLOP 94%,
#: close to Calculon's A100 efficiency table (60% at 1 GFLOP, 90% at 16; calculon-ai/calculon
#: systems/a100_80g.json), read, not copied.
DEFAULT_KERNEL_OVERHEAD_S = 4e-6
KERNEL_OVERHEAD_ASSUMPTION = (
    "4 us fixed cost per GPU kernel (launch, prologue/epilogue, last wave), so small GEMMs and small "
    "element-wise kernels lose efficiency; consistent with Calculon's A100 GEMM efficiency table")

#: Each output tile of a GEMM pays a prologue/epilogue (loading the first operand tiles, writing the
#: result) worth about this many elements of the K loop: a GEMM of inner size K runs at K / (K + k0)
#: of the large-GEMM rate, so tensor-parallel slices with a thin K (h/t) are slower.
DEFAULT_GEMM_K_OVERHEAD = 128
GEMM_K_OVERHEAD_ASSUMPTION = (
    "every GEMM output tile pays a fixed prologue/epilogue worth 128 elements of its K loop, so GEMMs with a "
    "thin inner dimension (h/t under tensor parallelism) run at K/(K+128) of the large-GEMM rate")

#: Fraction of the HBM peak that streaming kernels (LayerNorm, GELU, softmax, Adam) reach.
DEFAULT_HBM_EFFICIENCY = 0.85
HBM_EFFICIENCY_ASSUMPTION = (
    "streaming kernels reach 0.85 of the HBM peak (STREAM-like triad on A100/H100 reaches 85-90%)")

#: Fused (flash) attention's achieved fraction of the dense peak, forward and backward, where the
#: catalog has no attention_efficiency_bf16 for the part.
DEFAULT_ATTENTION_EFFICIENCY = 0.45
ATTENTION_EFFICIENCY_ASSUMPTION = (
    "fused attention at 45% of the dense peak: between FlashAttention-2 on H100 (35%) and on A100 (50-73%), "
    "well below FlashAttention-3's 75% (catalog sources dao-flashattention-2, shah-flashattention-3)")

#: Compute that shares the GPU with a communication kernel (an overlapped gradient reduction, a
#: parameter prefetch, a hidden tensor-parallel transfer) runs this much slower: the collective's
#: thread blocks hold SMs and its copies take HBM bandwidth.
DEFAULT_OVERLAP_SLOWDOWN = 0.189
OVERLAP_SLOWDOWN_SOURCE = (
    "compute overlapped with communication runs 18.9% slower (average over GPT and LLaMA training on 4 "
    "A100, H100, MI250 and MI210; up to 40%), so hidden communication costs 0.189/1.189 of its time")

#: Bus bandwidth collectives reach on the scale-up links, as a fraction of the per-direction rate.
DEFAULT_SCALE_UP_EFFICIENCY = 0.78
SCALE_UP_EFFICIENCY_ASSUMPTION = (
    "all-reduce bus bandwidth on NVLink/xGMI reaches 0.78 of the per-direction link rate (nccl-tests on "
    "DGX A100: about 230-240 GB/s of 300 GB/s; DGX H100: about 350-370 of 450)")
DEFAULT_SCALE_UP_LATENCY_S = 1.0e-6
SCALE_UP_LATENCY_ASSUMPTION = "1 us per ring step inside the scale-up domain (NCCL small-message latency ~10-20 us for 8 ranks)"

#: Bus bandwidth collectives reach on the scale-out NICs.
DEFAULT_SCALE_OUT_EFFICIENCY = 0.90
SCALE_OUT_EFFICIENCY_ASSUMPTION = (
    "collectives reach 0.90 of the NIC line rate across nodes (nccl-tests on HDR/NDR rails: ~22-23 of 25 GB/s, "
    "~45-48 of 50 GB/s)")
DEFAULT_SCALE_OUT_LATENCY_S = 2.0e-6
SCALE_OUT_LATENCY_ASSUMPTION = "2 us per message across nodes where the catalog has no scale_out.latency_us"

#: Precisions whose GEMMs use a tensor-core peak other than the precision's own name.
_PEAK_KEY = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "fp32": "tf32"}

_GBPS_TO_BYTES = 1e9 / 8  # Gb/s -> bytes/s
_GB = 1e9


@dataclass(frozen=True)
class Hardware:
    """Rates of one GPU and its links, as the step model uses them.

    - ``peak_flops``: dense FLOP/s of the GEMM precision; ``gemm_efficiency``: fraction large GEMMs
      reach; ``kernel_overhead_s``: fixed cost per kernel (size dependence of efficiency).
    - ``attention_efficiency``: fused attention's rate as a fraction of ``peak_flops``.
    - ``hbm_Bps`` × ``hbm_efficiency``: what streaming kernels reach; ``hbm_bytes``: capacity.
    - ``scale_up``/``scale_up_size``: the NVLink domain (tensor parallelism belongs inside it);
      ``scale_out``: one GPU's share of the network between domains (rail-optimised NICs).
    - ``overlap_slowdown``: σ, how much slower compute runs while a collective overlaps it.
    - ``gpus_per_node``, ``total_gpus``: the system's shape; ``calibration``: measured step time over
      modelled on the node the job ran on (1.0 when none), applied to every prediction.
    - ``peak16_flops``: in fp8 training only the linear layers' GEMMs run in fp8; attention and the
      output layer stay in 16 bits (Transformer Engine and torchao Float8 convert ``Linear`` layers,
      torchtitan leaves the output layer out), so they run at the 16-bit peak.
    """

    name: str
    accelerator: str
    peak_flops: float
    gemm_efficiency: float
    kernel_overhead_s: float
    gemm_k_overhead: float
    attention_efficiency: float
    hbm_Bps: float
    hbm_efficiency: float
    hbm_bytes: float
    scale_up: Link
    scale_up_size: int
    scale_out: Link
    gpus_per_node: int
    total_gpus: int
    gpu_power_w: float | None = None
    calibration: float = 1.0
    overlap_slowdown: float = DEFAULT_OVERLAP_SLOWDOWN
    assumptions: tuple[str, ...] = ()
    #: 16-bit dense FLOP/s for what stays in 16 bits when the GEMMs run in fp8 (the output layer); 0 = ``peak_flops``.
    peak16_flops: float = 0.0

    @property
    def gemm_flops(self) -> float:
        """FLOP/s of a large GEMM."""
        return self.peak_flops * self.gemm_efficiency

    @property
    def gemm16_flops(self) -> float:
        """FLOP/s of a large 16-bit GEMM (the output layer of an fp8 run)."""
        return (self.peak16_flops or self.peak_flops) * self.gemm_efficiency

    @property
    def stream_Bps(self) -> float:
        """Bytes/s of a large streaming kernel."""
        return self.hbm_Bps * self.hbm_efficiency

    def with_(self, **changes: Any) -> "Hardware":
        """A copy with some rates replaced (calibration, measured links)."""
        return replace(self, **changes)


def _value(figure: Figure | None) -> float | None:
    return None if figure is None else float(figure.value)


def _say(what: str, figure: Figure) -> str:
    return f"{what} ({figure.provenance()})"


def hardware_for(system: System, precision: str = "bf16") -> Hardware:
    """The :class:`Hardware` of a catalog system for training in ``precision``.

    Raises :class:`InputError` when the catalog lacks a figure the model cannot do without (the
    precision's peak, HBM capacity or bandwidth).
    """
    acc = system.accelerator
    notes: list[str] = []
    key = _PEAK_KEY.get(precision)
    if key is None:
        raise InputError(f"training.precision: got {precision!r}; accepted: {', '.join(_PEAK_KEY)}")
    peak = acc.peak_tflops.get(key)
    if peak is None:
        raise InputError(f"accelerator '{acc.name}' has no {key} peak in the catalog; "
                         f"choose a precision it declares: {', '.join(acc.peak_tflops)}")
    notes.append(_say(f"peak: {float(peak.value):g} TFLOP/s {key} dense ({acc.name})", peak))
    capacity, bandwidth = acc.memory.get("capacity_gb"), acc.memory.get("bandwidth_tbs")
    if capacity is None or bandwidth is None:
        raise InputError(f"accelerator '{acc.name}' needs memory.capacity_gb and memory.bandwidth_tbs in the "
                         "catalog to be modelled")
    notes.append(_say(f"HBM: {float(capacity.value):g} GB at {float(bandwidth.value):g} TB/s", capacity))

    mamf = acc.figures.get("matmul_efficiency_bf16")
    if mamf is not None:
        gemm_eff = float(mamf.value) / 100.0
        notes.append(_say(f"large-GEMM efficiency {gemm_eff:.2f} (catalog matmul_efficiency_bf16)", mamf))
    else:
        gemm_eff = DEFAULT_GEMM_EFFICIENCY
        notes.append(f"large-GEMM efficiency {gemm_eff:.2f} (assumption: {GEMM_EFFICIENCY_ASSUMPTION})")
    flash = acc.figures.get("attention_efficiency_bf16")
    if flash is not None:
        attention = float(flash.value) / 100.0
        notes.append(_say(f"fused attention at {attention:.2f} of peak (catalog attention_efficiency_bf16)", flash))
    else:
        attention = DEFAULT_ATTENTION_EFFICIENCY
        notes.append(f"fused attention at {attention:.2f} of peak (assumption: {ATTENTION_EFFICIENCY_ASSUMPTION})")
    peak16 = 0.0
    if precision == "fp8":
        sixteen = acc.peak_tflops.get("bf16")
        if sixteen is None:
            raise InputError(f"accelerator '{acc.name}' has no bf16 peak in the catalog: fp8 training keeps attention "
                             "and the output layer in bf16")
        peak16 = float(sixteen.value) * 1e12
        attention *= peak16 / (float(peak.value) * 1e12)
        notes.append(_say(f"fp8: only the linear layers' GEMMs at the fp8 peak; attention and the output layer in "
                          f"bf16 at {float(sixteen.value):g} TFLOP/s (Transformer Engine, torchao Float8)", sixteen))
    notes += [f"kernel overhead {DEFAULT_KERNEL_OVERHEAD_S * 1e6:g} us (assumption: {KERNEL_OVERHEAD_ASSUMPTION})",
              f"GEMM K overhead {DEFAULT_GEMM_K_OVERHEAD} (assumption: {GEMM_K_OVERHEAD_ASSUMPTION})",
              f"HBM efficiency {DEFAULT_HBM_EFFICIENCY:g} (assumption: {HBM_EFFICIENCY_ASSUMPTION})",
              f"overlap slowdown {DEFAULT_OVERLAP_SLOWDOWN:g} (source lee-overlap-2025: {OVERLAP_SLOWDOWN_SOURCE})"]

    per_node = int(system.accelerators_per_node.value)
    link = acc.scale_up.get("link_gbs_per_direction")
    domain = acc.scale_up.get("domain_size")
    up_size = int(domain.value) if domain is not None else per_node
    if link is not None:
        scale_up = Link(DEFAULT_SCALE_UP_LATENCY_S, float(link.value) * _GB, DEFAULT_SCALE_UP_EFFICIENCY)
        notes.append(_say(f"scale-up: {float(link.value):g} GB/s per direction × {DEFAULT_SCALE_UP_EFFICIENCY:g} "
                          f"(assumption: {SCALE_UP_EFFICIENCY_ASSUMPTION}); {SCALE_UP_LATENCY_ASSUMPTION}", link))
    else:
        up_size = 1
        scale_up = Link(DEFAULT_SCALE_UP_LATENCY_S, 1.0, 1.0)
        notes.append(f"no scale-up link in the catalog for {acc.name}: tensor parallelism is not modelled")
    if domain is not None:
        notes.append(_say(f"scale-up domain: {up_size} GPUs", domain))

    nic = system.scale_out.get("nic_gbps_per_accelerator")
    latency = system.scale_out.get("latency_us")
    alpha = float(latency.value) * 1e-6 if latency is not None else DEFAULT_SCALE_OUT_LATENCY_S
    if nic is not None:
        scale_out = Link(alpha, float(nic.value) * _GBPS_TO_BYTES, DEFAULT_SCALE_OUT_EFFICIENCY)
        notes.append(_say(f"scale-out: {float(nic.value):g} Gb/s per GPU × {DEFAULT_SCALE_OUT_EFFICIENCY:g} "
                          f"(assumption: {SCALE_OUT_EFFICIENCY_ASSUMPTION})", nic))
    else:
        scale_out = Link(alpha, 25e9, DEFAULT_SCALE_OUT_EFFICIENCY)
        notes.append("scale-out: 200 Gb/s per GPU (assumption: no nic_gbps_per_accelerator in the catalog)")
    notes.append(_say(f"scale-out latency {alpha * 1e6:g} us", latency) if latency is not None
                 else f"scale-out latency: {SCALE_OUT_LATENCY_ASSUMPTION}")
    power = acc.power_w
    return Hardware(
        name=system.name, accelerator=acc.name, peak_flops=float(peak.value) * 1e12, gemm_efficiency=gemm_eff,
        kernel_overhead_s=DEFAULT_KERNEL_OVERHEAD_S, gemm_k_overhead=DEFAULT_GEMM_K_OVERHEAD, attention_efficiency=attention,
        hbm_Bps=float(bandwidth.value) * 1e12, hbm_efficiency=DEFAULT_HBM_EFFICIENCY,
        hbm_bytes=float(capacity.value) * _GB, scale_up=scale_up, scale_up_size=max(1, min(up_size, 10**9)),
        scale_out=scale_out, gpus_per_node=per_node, total_gpus=system.total_accelerators,
        gpu_power_w=_value(power), assumptions=tuple(notes), peak16_flops=peak16)
