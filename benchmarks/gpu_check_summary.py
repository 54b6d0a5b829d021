#!/usr/bin/env python3
"""The last table of benchmarks/gpu_check.sh: per step its exit, the figure that matters with its ceiling and
% of ceiling, and pass/fail against issue 19's bounds. Reads only the folder the script wrote.

    python benchmarks/gpu_check_summary.py gpu-check-20261204T120000Z

Bounds: every step exits 0 (a one-rank collectives run included); the GEMM fidelity pair ≥ 0.97 (the script's
own exit); gpt 1b peak memory ≤ 72 GB (90% of the 80 GB H100 it is sized for); every training loss falls; fused
bias+GELU ≥ 85% of the measured copy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MEMORY_BOUND_GB = 72.0
BIAS_GELU_BOUND_PCT = 85.0


def _records(path: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("records", []))
    except (OSError, ValueError):
        return []


def _find(records: list[dict[str, Any]], **want: Any) -> dict[str, Any] | None:
    for r in records:
        if r.get("status") == "ok" and all(r.get(k) == v for k, v in want.items()):
            return r
    return None


def rows(folder: Path) -> list[tuple[str, str, str, str, str, str]]:
    out = []
    steps = {}
    status = folder / "steps.tsv"
    if status.exists():
        for line in status.read_text(encoding="utf-8").splitlines():
            name, state, detail = (line.split("\t") + ["", ""])[:3]
            steps[name] = (state, detail)
    for name, (state, detail) in steps.items():
        figure = ceiling = pct = ""
        verdict = "pass" if state == "exit 0" else ("skipped" if state == "skipped" else "FAIL")
        if name == "gemm":
            r = _find(_records(folder / "gemm.json"), case="square-8192-bf16", metric="throughput")
            if r:
                figure, ceiling = f"{r['value']:.0f} TFLOP/s bf16 8192³", f"{(r.get('ceiling') or {}).get('value', '')}"
                pct = f"{r.get('pct_of_ceiling') or 0:.1f}%"
        elif name.startswith("train-"):
            records = _records(folder / f"{name}.json")
            loss, memory = _find(records, metric="loss"), _find(records, metric="peak_memory")
            if loss:
                first, last = loss["params"].get("first_loss"), loss["params"].get("last_loss")
                figure = f"loss {first:.3g} -> {last:.3g}"
                if not last < first:
                    verdict = "FAIL (loss did not fall)"
            if memory and name == "train-gpt-1b":
                figure += f", peak {memory['value']:.1f} GB"
                ceiling, pct = f"{MEMORY_BOUND_GB:g} GB", f"{100 * memory['value'] / MEMORY_BOUND_GB:.0f}%"
                if memory["value"] > MEMORY_BOUND_GB:
                    verdict = "FAIL (does not fit 80 GB)"
        elif name == "kernels":
            r = _find(_records(folder / "kernels.json"), case="bias-gelu", metric="bandwidth")
            if r:
                figure, ceiling = f"bias+GELU {r['value']:.0f} GB/s", "measured copy"
                pct = f"{r.get('pct_of_ceiling') or 0:.1f}%"
                if (r.get("pct_of_ceiling") or 0) < BIAS_GELU_BOUND_PCT:
                    verdict = f"FAIL (below {BIAS_GELU_BOUND_PCT:g}% of the copy)"
        elif name == "memory":
            r = _find(_records(folder / "memory.json"), case="d2d-copy", metric="bandwidth")
            if r:
                figure, pct = f"d2d copy {r['value']:.0f} GB/s", ""
        out.append((name, state, figure, ceiling, pct, verdict if state != "skipped" else f"skipped: {detail}"))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: gpu_check_summary.py FOLDER (the folder gpu_check.sh wrote)", file=sys.stderr)
        return 2
    table = rows(Path(argv[0]))
    print(f"{'step':<18} {'exit':<8} {'figure':<40} {'ceiling':<14} {'%':>7}  verdict")
    for name, state, figure, ceiling, pct, verdict in table:
        print(f"{name:<18} {state:<8} {figure:<40} {ceiling:<14} {pct:>7}  {verdict}")
    return 1 if any(v.startswith("FAIL") for *_, v in table) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
