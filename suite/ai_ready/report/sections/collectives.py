"""Collective communication: nccl-tests style tables of time and bus bandwidth per
message size, the alpha-beta fits, and a chart per backend, buffer and dtype.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.records import Record
from ai_ready.report import charts
from ai_ready.report.sections.common import (
    MISSING, Entry, ReportData, _as_dict, _ceiling, _coll_hosts, _cv, _finite, _int_param, _is_noisy, _other_row,
    _pct_of_ceiling, _references, _text_param, format_bytes,
)


COLLECTIVES_BENCHMARK = "collectives"
#: Page order of the operations (nccl-tests' order); operations not listed follow alphabetically.
COLLECTIVE_OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "sendrecv")
COLLECTIVE_PLACEMENTS = ("out-of-place", "in-place")
#: busbw = algbw × factor (nccl-tests doc/PERFORMANCE.md; docs/collectives.md), shown beside each table.
BUSBW_FACTORS = {"all_reduce": "2(n−1)/n", "all_gather": "(n−1)/n", "reduce_scatter": "(n−1)/n",
                 "all_to_all": "(n−1)/n", "broadcast": "1", "sendrecv": "1"}
#: The metric of each column of a size row, with the unit the benchmark stores it in.
POINT_UNITS = {"time": "us", "algbw": "GB/s", "busbw": "GB/s", "wrong": "elements"}
#: The two records of an alpha-beta fit, t(S) = α + S/β.
FIT_UNITS = {"alpha": "us", "beta": "GB/s"}
BUSBW_UNIT = "GB/s"
#: Why host-buffer runs have no ceiling, when the benchmark did not say.
HOST_BUFFERS_NO_CEILING = "host buffers: no catalog ceiling for CPU memory-to-memory transfers"


@dataclass
class CollCell:
    """One placement of one size: the four figures, or the status and reasons of records that did not succeed."""

    status: str = "missing"
    reasons: list[str] = field(default_factory=list)
    time: float | None = None
    algbw: float | None = None
    busbw: float | None = None
    wrong: float | None = None
    pct: float | None = None
    straggler: str = ""
    cv_pct: float | None = None
    noisy: bool = False
    notes: list[str] = field(default_factory=list)
    records: dict[str, Record] = field(default_factory=dict)
    problems: list[Record] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@dataclass
class CollRow:
    """One message size of one operation (or "all sizes" for a record that names none)."""

    size: str
    bytes: int | None
    count: Any
    dtype: str
    where: str
    cells: dict[str, CollCell] = field(default_factory=lambda: {p: CollCell() for p in COLLECTIVE_PLACEMENTS})

    @property
    def spanning(self) -> CollCell | None:
        """The one cell to span the row when every placement failed or was skipped for the same reason."""
        first, *rest = self.cells.values()
        same = all(c.status == first.status and c.reasons == first.reasons for c in rest)
        return first if first.status in ("failed", "skipped") and same else None


def build_collectives(data: ReportData) -> dict[str, Any] | None:
    """nccl-tests' tables per backend, buffers, world size and dtype: busbw chart with its ceiling, a
    table per operation with both placements, the average bus bandwidth, and the alpha-beta fits."""
    entries = data.entries_for(COLLECTIVES_BENCHMARK)
    if not entries:
        return None
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    extras: list[Entry] = []
    for entry in entries:
        group = groups.setdefault(_coll_group_key(entry), {"points": [], "fits": []})
        kind = _coll_kind(entry.record)
        if kind == "fit":
            group["fits"].append(entry)
        elif kind == "point":
            group["points"].append(entry)
        else:
            extras.append(entry)
    several_documents = len({key[0] for key in groups}) > 1
    blocks = [_coll_block(key, g["points"], g["fits"], data.labels[key[0]] if several_documents else "")
              for key, g in sorted(groups.items(), key=lambda item: _coll_group_sort(item[0]))
              if g["points"] or g["fits"]]
    return {"groups": blocks, "extras": [_other_row(e) for e in extras],
            "references": _references(e.record for e in entries), "cv_threshold_pct": CV_WARN_THRESHOLD * 100}


def _coll_group_key(entry: Entry) -> tuple[Any, ...]:
    p = _as_dict(entry.record.params)
    return (entry.document, _text_param(p, "backend"), _text_param(p, "buffers"), _int_param(p, "world_size"),
            _text_param(p, "dtype"))


def _coll_group_sort(key: tuple[Any, ...]) -> tuple[Any, ...]:
    document, backend, buffers, world, dtype = key
    return (document, backend, buffers, world if world is not None else -1, dtype)


def _coll_kind(record: Record) -> str:
    """"fit", "point", or "extra" for an ok record this section cannot place (shown in its own small table).

    A failed or skipped record is always placed: its reason covers what it names, all sizes or both placements
    when it names none."""
    params = _as_dict(record.params)
    if record.metric in FIT_UNITS:
        return "fit"
    if record.status != "ok":
        return "point"
    known = record.metric in POINT_UNITS and params.get("placement") in COLLECTIVE_PLACEMENTS
    return "point" if known and _int_param(params, "bytes") is not None else "extra"


def _op_sort(op: str) -> tuple[int, str]:
    return (COLLECTIVE_OPS.index(op), op) if op in COLLECTIVE_OPS else (len(COLLECTIVE_OPS), op)


def _coll_block(key: tuple[Any, ...], points: list[Entry], fits: list[Entry], source: str) -> dict[str, Any]:
    """One backend × buffers × world size × dtype: ceiling, chart, a table per operation, the fits."""
    _, backend, buffers, world, dtype = key
    tables, duplicates = _coll_tables(points, dtype)
    busbw_records = [c.records["busbw"] for t in tables for r in t["rows"] for c in r.cells.values()
                     if c.ok and "busbw" in c.records]
    ceilings = _coll_ceilings(busbw_records)
    missing_ceiling = any(_ceiling(r) is None for r in busbw_records)
    parts = _coll_title_parts(backend, buffers, world, dtype)
    return {
        "not_measured": _coll_not_measured(points, fits),
        "title": " · ".join(parts), "source": source, "world": world,
        "hosts": _coll_hosts([e.record for e in points]),
        "ceilings": ceilings,
        "no_ceiling_why": _coll_no_ceiling_why(busbw_records, buffers, backend) if missing_ceiling else "",
        "chart": _coll_chart(tables, parts, ceilings),
        "tables": tables,
        "fits": _coll_fits(fits),
        "duplicates": duplicates,
    }


def _coll_not_measured(points: list[Entry], fits: list[Entry]) -> list[dict[str, str]]:
    """When nothing in a group ran (every record skipped), one line per reason instead of empty tables."""
    if fits or not points or any(e.record.status != "skipped" for e in points):
        return []
    by_reason: dict[str, list[str]] = {}
    for entry in points:
        op = _text_param(_as_dict(entry.record.params), "op") or "unknown op"
        ops = by_reason.setdefault(entry.record.reason or "no reason recorded", [])
        if op not in ops:
            ops.append(op)
    return [{"reason": reason, "ops": ", ".join(ops)} for reason, ops in by_reason.items()]


def _coll_tables(points: list[Entry], dtype: str) -> tuple[list[dict[str, Any]], int]:
    """A table per operation, a row per size (and rank, when several stored records), a cell per placement;
    with the count of ok records that repeated a cell's metric."""
    ops: dict[str, dict[tuple[Any, ...], CollRow]] = {}
    settings: dict[str, list[dict[str, Any]]] = {}
    duplicates = 0
    for entry in points:
        params = _as_dict(entry.record.params)
        op = _text_param(params, "op") or "unknown op"
        settings.setdefault(op, []).append(params)
        size = _int_param(params, "bytes")
        row_key = (0 if size is not None else 1, size or 0, entry.record.rank)
        rows = ops.setdefault(op, {})
        if row_key not in rows:
            rows[row_key] = _coll_row(entry, size, dtype)
        row = rows[row_key]
        placement = params.get("placement")
        for p in [placement] if placement in COLLECTIVE_PLACEMENTS else COLLECTIVE_PLACEMENTS:
            duplicates += _add_to_cell(row.cells[p], entry.record)
    several_ranks = len({k[2] for rows in ops.values() for k in rows}) > 1
    tables = []
    for op in sorted(ops, key=_op_sort):
        rows = [ops[op][k] for k in sorted(ops[op])]
        for row in rows:
            for cell in row.cells.values():
                _finish_cell(cell)
            row.where = row.where if several_ranks else ""
        tables.append({"op": op, "settings": _op_settings(settings[op]), "factor": BUSBW_FACTORS.get(op, ""),
                       "rows": rows, **_avg_busbw(rows)})
    return tables, duplicates


def _coll_row(entry: Entry, size: int | None, dtype: str) -> CollRow:
    params = _as_dict(entry.record.params)
    count = _int_param(params, "count")
    return CollRow(size=format_bytes(size) if size is not None else "all sizes", bytes=size,
                   count=count if count is not None else MISSING, dtype=dtype or MISSING, where=entry.where)


def _op_settings(params: list[dict[str, Any]]) -> str:
    """The reduction and root an operation ran with (nccl-tests' redop and root columns), stated once."""
    redops = dict.fromkeys(_text_param(p, "redop") for p in params if _text_param(p, "redop") not in ("", "none"))
    roots = dict.fromkeys(str(p["root"]) for p in params if p.get("root") is not None)
    parts = [f"redop {', '.join(redops)}" if redops else "", f"root {', '.join(roots)}" if roots else ""]
    return " · ".join(p for p in parts if p)


def _add_to_cell(cell: CollCell, record: Record) -> int:
    """Place a record in its cell; returns 1 when an ok record repeats a metric already there (the first is kept)."""
    if record.status != "ok":
        cell.problems.append(record)
        return 0
    if record.metric in cell.records:
        return 1
    cell.records[record.metric] = record
    return 0


def _finish_cell(cell: CollCell) -> None:
    """Figures only when every record of the cell succeeded: a wrong result's bandwidth means nothing."""
    if cell.problems:
        cell.status = "failed" if any(r.status == "failed" for r in cell.problems) else "skipped"
        cell.reasons = list(dict.fromkeys(str(r.reason) for r in cell.problems))
        return
    if not cell.records:
        return
    cell.status = "ok"
    for metric, unit in POINT_UNITS.items():
        record = cell.records.get(metric)
        if record is None:
            continue
        setattr(cell, metric, record.value)
        if record.unit != unit:
            cell.notes.append(f"{metric} in {record.unit}")
    if "busbw" in cell.records:
        cell.pct = _pct_of_ceiling(cell.records["busbw"])
    timed = cell.records.get("time") or next(iter(cell.records.values()))
    cell.straggler = _straggler(timed)
    cv = _cv(timed)
    cell.cv_pct = cv * 100 if cv is not None else None
    cell.noisy = _is_noisy(timed)


def _straggler(record: Record) -> str:
    s = _as_dict(_as_dict(record.timing).get("straggler"))
    if not s:
        return ""
    who = f"rank {s['rank']}" if s.get("rank") is not None else "a rank"
    if s.get("host"):
        who += f" on {s['host']}"
    ratio = s.get("ratio")
    return f"{who}, {(ratio - 1) * 100:.0f}% slower than the fastest" if _finite(ratio) else who


def _avg_busbw(rows: list[CollRow]) -> dict[str, Any]:
    """nccl-tests' "Avg bus bandwidth": the mean busbw over every timed point, out-of-place and in-place
    (its BenchTime adds each placement's busbw to one sum), here over the ok ones."""
    sized = [r.cells[p] for r in rows if r.bytes is not None for p in COLLECTIVE_PLACEMENTS
             if r.cells[p].status != "missing"]  # a placement the library does not offer is no point
    values = [c.busbw for c in sized if c.ok and _finite(c.busbw)]
    return {"avg_busbw": statistics.fmean(values) if values else None, "avg_points": len(values),
            "avg_sizes": len(sized)}


def _coll_ceilings(records: list[Record]) -> list[dict[str, Any]]:
    seen: dict[float, dict[str, Any]] = {}
    for record in records:
        c = _ceiling(record)
        if c is not None:
            seen.setdefault(float(c["value"]), c)
    return [seen[v] for v in sorted(seen)]


def _coll_no_ceiling_why(records: list[Record], buffers: str, backend: str) -> str:
    """The benchmark's own word when it gave one, else why none was looked for or found."""
    for record in records:
        for warning in map(str, record.warnings or []):
            if "ceiling" in warning.lower():
                return warning
    if buffers == "host":
        return HOST_BUFFERS_NO_CEILING
    return f"no catalog ceiling for {backend or 'this backend'} with {buffers or 'these'} buffers on these devices"


def _coll_title_parts(backend: str, buffers: str, world: int | None, dtype: str) -> list[str]:
    parts = [backend or "unknown backend", f"{buffers} buffers" if buffers else "",
             f"{world} ranks" if world is not None else "", dtype]
    return [p for p in parts if p]


def _coll_chart(tables: list[dict[str, Any]], parts: list[str],
                ceilings: list[dict[str, Any]]) -> charts.Chart | None:
    """busbw against size, one colour per operation, solid out-of-place and dashed in-place."""
    lines = []
    for table in tables:
        for placement in COLLECTIVE_PLACEMENTS:
            points = [(float(r.bytes), float(r.cells[placement].busbw)) for r in table["rows"]
                      if r.bytes and r.cells[placement].ok and _finite(r.cells[placement].busbw)]
            if points:
                lines.append(charts.Line(label=f"{table['op']} {placement}", points=points, color_key=table["op"],
                                         dashed=placement == COLLECTIVE_PLACEMENTS[1]))
    if not lines:
        return None
    marks = [(float(c["value"]), c["label"] or c["kind"]) for c in ceilings]
    alt = (f"Line chart of bus bandwidth in {BUSBW_UNIT} against message size for {', '.join(parts)}: "
           f"one line per operation ({', '.join(t['op'] for t in tables)}), solid out-of-place, dashed in-place"
           + ("; long red dashes mark the ceiling" if marks else "; no ceiling known")
           + ". The tables below hold the same figures.")
    return charts.line_chart(lines, title=f"busbw, {', '.join(parts)}", xlabel="message size S",
                             ylabel=f"busbw ({BUSBW_UNIT})", alt=alt, ceilings=marks, x_log2=True,
                             x_tick_format=format_bytes, style_labels=COLLECTIVE_PLACEMENTS)


def _coll_fits(entries: list[Entry]) -> list[dict[str, Any]]:
    """One row per fit from its alpha and beta records; a fit that failed shows its reason and no figure."""
    fits: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        r = entry.record
        params = _as_dict(r.params)
        op, placement = _text_param(params, "op") or "unknown op", _text_param(params, "placement") or MISSING
        fit = fits.setdefault((_op_sort(op), _placement_sort(placement), r.case, r.rank),
                              _fit_row(op, placement, params))
        if r.status != "ok":
            fit["problems"].append(r)
        else:
            fit[r.metric] = r.value
            if r.unit != FIT_UNITS[r.metric]:
                fit["notes"].append(f"{'α' if r.metric == 'alpha' else 'β'} in {r.unit}")
    rows = [fits[k] for k in sorted(fits)]
    for fit in rows:
        problems = fit.pop("problems")
        if problems:
            fit["status"] = "failed" if any(p.status == "failed" for p in problems) else "skipped"
            fit["reason"] = "; ".join(dict.fromkeys(str(p.reason) for p in problems))
            fit["alpha"] = fit["beta"] = None
    return rows


def _placement_sort(placement: str) -> tuple[int, str]:
    order = COLLECTIVE_PLACEMENTS
    return (order.index(placement), placement) if placement in order else (len(order), placement)


def _fit_row(op: str, placement: str, params: dict[str, Any]) -> dict[str, Any]:
    low, high, points, r2 = (params.get(k) for k in ("min_bytes", "max_bytes", "points", "r2"))
    size_range = f"{format_bytes(low)} – {format_bytes(high)}" if _finite(low) and _finite(high) else MISSING
    return {"op": op, "placement": placement, "status": "ok", "reason": "", "alpha": None, "beta": None,
            "r2": r2 if _finite(r2) else None, "range": size_range,
            "points": points if _finite(points) else MISSING, "model": _text_param(params, "model"),
            "notes": [], "problems": []}
