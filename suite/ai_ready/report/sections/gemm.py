"""GEMM throughput: per dtype and shape, each figure beside its ceiling and source."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.records import Record
from ai_ready.report import charts
from ai_ready.report.sections.common import (
    MISSING, Entry, ReportData, _as_dict, _ceiling, _check, _cv, _int_param, _is_noisy, _pct_of_ceiling, _references,
)


#: Order in which dtypes are listed: widest first, as the usual precision ladder.
DTYPE_ORDER = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8")


GEMM_BENCHMARK = "gemm"
GEMM_UNIT = "TFLOP/s"


@dataclass(frozen=True)
class GemmRow:
    """One GEMM record as the table shows it; a failed or skipped row carries its reason and no figure."""

    case: str
    shape: str
    dtype: str
    mnk: str
    dims: tuple[int, int, int]
    status: str
    reason: str
    value: float | None
    unit_note: str
    p10: float | None
    p90: float | None
    cv_pct: float | None
    noisy: bool
    n: Any
    ceiling: dict[str, Any] | None
    no_ceiling_why: str
    pct: float | None
    check: dict[str, Any] | None
    where: str
    rank: int
    host: str
    source: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def build_gemm(data: ReportData) -> dict[str, Any] | None:
    """Tables per dtype and shape with every figure beside its ceiling and source, plus a chart."""
    entries = data.entries_for(GEMM_BENCHMARK)
    if not entries:
        return None
    rows = sorted((_gemm_row(e) for e in entries), key=_gemm_sort_key)
    return {
        "groups": _gemm_groups(rows),
        "headline": _gemm_headline(rows),
        "show_where": _several_places(rows),
        "chart": _gemm_chart(rows),
        "cv_threshold_pct": CV_WARN_THRESHOLD * 100,
        "references": _references(e.record for e in entries),
    }


def _gemm_row(entry: Entry) -> GemmRow:
    r = entry.record
    params = _as_dict(r.params)
    stats = _as_dict(r.stats) if r.status == "ok" else {}
    m, n, k = (_int_param(params, x) for x in "mnk")
    dtype = str(params.get("dtype") or "unknown")
    ok = r.status == "ok"
    cv = _cv(r) if ok else None
    return GemmRow(
        case=str(r.case), shape=str(params.get("shape") or "unknown"), dtype=dtype,
        mnk="×".join(str(x) if x is not None else "?" for x in (m, n, k)),
        dims=(m or 0, n or 0, k or 0), status=r.status, reason=r.reason or "",
        value=r.value if ok else None, unit_note="" if r.unit == GEMM_UNIT else r.unit,
        p10=stats.get("p10"), p90=stats.get("p90"),
        cv_pct=cv * 100 if cv is not None else None, noisy=_is_noisy(r), n=stats.get("n", MISSING if ok else None),
        ceiling=_ceiling(r) if ok else None, no_ceiling_why=_no_ceiling_why(r, dtype) if ok else "",
        pct=_pct_of_ceiling(r) if ok else None, check=_check(r.check) if ok else None,
        where=entry.where, rank=r.rank, host=r.host, source=entry.source,
    )


def _several_places(rows: list[GemmRow]) -> bool:
    """Rank and host matter only when more than one ran; failed rows often lack a host, so ignore blanks."""
    return len({r.rank for r in rows}) > 1 or len({r.host for r in rows if r.host}) > 1


def _no_ceiling_why(record: Record, dtype: str) -> str:
    """Why there is no ceiling: the benchmark's own warning when it gave one, else what was looked for."""
    if _ceiling(record) is not None:
        return ""
    for warning in map(str, record.warnings or []):
        if "ceiling" in warning.lower() or "peak" in warning.lower():
            return warning
    device = record.device or "this device"
    return f"no catalog entry or declared peak for {device} at {dtype}"


def _dtype_rank(dtype: str) -> tuple[int, str]:
    return (DTYPE_ORDER.index(dtype), dtype) if dtype in DTYPE_ORDER else (len(DTYPE_ORDER), dtype)


def _gemm_sort_key(row: GemmRow) -> tuple[Any, ...]:
    return (_dtype_rank(row.dtype), row.shape, row.dims, row.case, row.where)


def _gemm_groups(rows: list[GemmRow]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[GemmRow]] = {}
    for row in rows:
        groups.setdefault((row.dtype, row.shape), []).append(row)
    return [{"dtype": dtype, "shape": shape, "rows": members} for (dtype, shape), members in groups.items()]


def _gemm_headline(rows: list[GemmRow]) -> list[dict[str, Any]]:
    """Best case per dtype: the one line a reader wants before the tables."""
    best: dict[str, GemmRow] = {}
    for row in rows:
        if row.ok and (row.dtype not in best or row.value > best[row.dtype].value):
            best[row.dtype] = row
    return [{"dtype": d, "row": r} for d, r in sorted(best.items(), key=lambda item: _dtype_rank(item[0]))]


def _gemm_chart(rows: list[GemmRow]) -> charts.Chart | None:
    """Median per case in one panel per dtype; several ranks collapse to their median with a min–max whisker."""
    panels: dict[str, dict[str, list[GemmRow]]] = {}
    for row in rows:
        if row.ok:
            label = f"{row.shape} {row.mnk}" if all(row.dims) else row.case
            panels.setdefault(row.dtype, {}).setdefault(label, []).append(row)
    if not panels:
        return None
    groups = []
    for dtype, cases in panels.items():
        ceilings = _chart_ceilings(cases.values())
        groups.append(charts.BarGroup(name=dtype if ceilings else f"{dtype} (no ceiling known)",
                                      bars=[_chart_bar(label, members) for label, members in cases.items()],
                                      ceilings=ceilings))
    alt = (f"Bar chart of median GEMM throughput in {GEMM_UNIT} per case, one panel per dtype "
           f"({', '.join(panels)}); dashed lines mark each dtype's ceiling; whiskers show p10–p90, "
           "or the range across ranks when several ranks ran a case. The tables below hold the same figures.")
    return charts.bar_chart(groups, title=f"GEMM throughput ({GEMM_UNIT})", xlabel=f"achieved {GEMM_UNIT}",
                            alt=alt)


def _chart_bar(label: str, members: list[GemmRow]) -> charts.Bar:
    values = [m.value for m in members]
    if len(members) == 1:
        low, high = members[0].p10, members[0].p90
    else:
        low, high = min(values), max(values)
    pcts = [m.pct for m in members if m.pct is not None]
    note = f"{statistics.median(pcts):.0f}%" if pcts else ""
    return charts.Bar(label=label, value=statistics.median(values), low=low, high=high, note=note)


def _chart_ceilings(cases: Iterable[list[GemmRow]]) -> list[tuple[float, str]]:
    seen: dict[float, str] = {}
    for members in cases:
        for m in members:
            if m.ceiling:
                seen.setdefault(float(m.ceiling["value"]), m.ceiling["label"] or m.ceiling["kind"])
    return sorted(seen.items())
