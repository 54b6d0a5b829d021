"""The ceiling a figure is shown against: the catalog peak of the detected device.

GPUs get the catalog's dense peak for the dtype, with its source. The CPU
gets a declared peak derived from cores × clock × ISA width, which the
catalog marks as an assumption; the record says which kind it is.
"""

from __future__ import annotations

from typing import Any

from ai_ready.catalog import Catalog, System

#: GEMM dtype -> catalog dtype key of the matching dense peak.
GEMM_PEAK_KEY = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8"}
#: Accelerator names the catalog builds from detection rather than ships.
DECLARED_ACCELERATORS = ("local-cpu",)


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
    }
