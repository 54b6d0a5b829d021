"""The ceiling a figure is shown against: the catalog peak of the detected device.

GPUs get the catalog's dense peak for the dtype, with its source. The CPU
gets a declared peak derived from cores × clock × ISA width, which the
catalog marks as an assumption; the record says which kind it is.
"""

from __future__ import annotations

from typing import Any

from ai_ready.catalog import Catalog, System
from ai_ready.records import Record

#: GEMM dtype -> catalog dtype key of the matching dense peak.
GEMM_PEAK_KEY = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8"}
#: Accelerator names the catalog builds from detection rather than ships.
DECLARED_ACCELERATORS = ("local-cpu",)
#: A figure above this percentage of its ceiling is flagged: the ceiling cannot be right.
FULL_CEILING_PCT = 100.0
#: What a figure above its ceiling means, by the ceiling's kind.
ABOVE_CEILING_HINTS = {
    "declared": "the CPU ran above the nominal clock the declared peak assumes (turbo), so that peak is a lower bound",
    "catalog": "check that the catalog entry matches this device's model and clocks",
    "measured": "the measured ceiling is not the fastest path this memory allows, or the machine's load changed "
                "between the two measurements",
}


def peak_ceiling(catalog: Catalog, system: System, dtype: str) -> dict[str, Any] | None:
    """{value, unit, kind, label, source} for `dtype` on the system's accelerator, or None."""
    acc = system.accelerator
    figure = acc.peak(GEMM_PEAK_KEY[dtype])
    if figure is None or not isinstance(figure.value, (int, float)):
        return None
    kind = "declared" if acc.name in DECLARED_ACCELERATORS else "catalog"
    return {
        "value": float(figure.value),
        "unit": "TFLOP/s",
        "kind": kind,
        "label": f"{acc.name} {dtype} dense peak",
        "source": catalog.cite(figure),
        "references": source_references(catalog, figure.source),
    }


def source_references(catalog: Catalog, ids: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """Titles and locations of cited sources, stored with the record so reports need no catalog."""
    refs = []
    for sid in ids:
        entry = catalog.sources.get(sid, {})
        refs.append({"id": sid, "title": str(entry.get("title", "")),
                     "where": str(entry.get("url") or entry.get("reference") or "")})
    return refs


def mfu_ceiling(peak: dict[str, Any]) -> dict[str, Any]:
    """The ceiling of an MFU record (in %): the dense peak itself, named with its rate. MFU is a share of that peak,
    so its ceiling is 100%; the label names the peak ("h200-sxm bf16 dense peak, 989 TFLOP/s"), never "100% of"
    (tables print "45% of <label>")."""
    return dict(peak, value=100.0, unit="%", label=f"{peak['label']}, {peak['value']:.4g} TFLOP/s")


def mfu_peak_label(ceiling: dict[str, Any] | None) -> str:
    """What an MFU figure is a share of, for a table: "of h200-sxm bf16 dense peak, 989 TFLOP/s" (files written
    before the label changed said "100% of ...")."""
    if not ceiling:
        return ""
    label = str(ceiling.get("label", "")).removeprefix("100% of ")
    return f"of the {label}"


def apply_ceiling(record: Record, ceiling: dict[str, Any] | None) -> Record:
    """Attach `ceiling` and the percentage; a figure above its ceiling gets a warning.

    Above 100% means the ceiling or the measurement is wrong (a CPU clocked
    above its nominal frequency, a catalog entry for another SKU): the
    report shows it rather than hiding it.
    """
    if ceiling is None or record.value is None:
        return record
    record.ceiling = ceiling
    record.pct_of_ceiling = 100.0 * record.value / ceiling["value"]
    if record.pct_of_ceiling > FULL_CEILING_PCT:
        hint = ABOVE_CEILING_HINTS.get(str(ceiling.get("kind")), ABOVE_CEILING_HINTS["catalog"])
        record.warnings.append(f"{record.case}: {record.pct_of_ceiling:.0f}% of its ceiling "
                               f"({ceiling['value']:.4g} {ceiling['unit']}, {ceiling['kind']}): {hint}")
    return record


#: Gb/s (network, bits) -> GB/s (bytes).
GBITS_PER_GBYTE = 8.0


def busbw_ceiling(catalog: Catalog, system: System, multi_node: bool) -> dict[str, Any] | None:
    """The bus bandwidth a collective on this system's GPUs can reach: the scale-up link within one node
    (NVLink/xGMI, per direction), the per-accelerator NIC across nodes; None when the catalog has neither."""
    if multi_node:
        figure = system.scale_out.get("nic_gbps_per_accelerator")
        label = f"{system.name} scale-out NIC per accelerator"
        scale = 1.0 / GBITS_PER_GBYTE
    else:
        figure = system.accelerator.scale_up.get("link_gbs_per_direction")
        label = f"{system.accelerator.name} scale-up link per direction"
        scale = 1.0
    if figure is None or not isinstance(figure.value, (int, float)):
        return None
    return {"value": float(figure.value) * scale, "unit": "GB/s", "kind": "catalog", "label": label,
            "source": catalog.cite(figure), "references": source_references(catalog, figure.source)}


#: TB/s (catalog) -> GB/s (records).
GB_PER_TB = 1000.0


def hbm_ceiling(catalog: Catalog, system: System) -> dict[str, Any] | None:
    """The catalog's memory bandwidth of the system's accelerator, in GB/s, with its source."""
    acc = system.accelerator
    figure = acc.memory.get("bandwidth_tbs")
    if figure is None or not isinstance(figure.value, (int, float)) or acc.name in DECLARED_ACCELERATORS:
        return None
    return {"value": float(figure.value) * GB_PER_TB, "unit": "GB/s", "kind": "catalog",
            "label": f"{acc.name} HBM bandwidth", "source": catalog.cite(figure),
            "references": source_references(catalog, figure.source)}
