"""Memory bandwidth and kernels: STREAM-style and host-link bandwidth beside their
ceilings, plus kernel launch latency, grouped per device.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.records import Record
from ai_ready.report import charts
from ai_ready.report.sections.common import (
    MISSING, Entry, ReportData, _as_dict, _binary, _ceiling, _check, _cited, _coll_hosts, _cv, _finite, _int_param,
    _is_noisy, _other_row, _pct_of_ceiling, _plain, _text_param, format_bytes,
)


MEMORY_BENCHMARK = "memory"
KERNELS_BENCHMARK = "kernels"
MEMORY_BENCHMARKS = (MEMORY_BENCHMARK, KERNELS_BENCHMARK)
BANDWIDTH_METRIC, BANDWIDTH_UNIT = "bandwidth", "GB/s"
LATENCY_METRIC, LATENCY_UNIT = "latency", "us"
#: Page order of the operations: the measured ceiling, STREAM's four, host transfers, then the kernels.
MEMORY_OPS = ("d2d-copy", "copy", "scale", "add", "triad", "h2d", "d2h", "reduce-sum", "bias-gelu")
#: Host↔device transfers: they cross the host link, which has no catalog ceiling.
TRANSFER_OPS = ("h2d", "d2h")
HOST_LINK_NO_CEILING = "no catalog ceiling for the host link"
NO_MEASURED_CEILING = "no measured copy ceiling in this run"
#: params["role"] of the record whose figure is the measured ceiling of its device (copy on CPU, d2d-copy on GPU).
CEILING_ROLE = "ceiling"
#: The launch-latency cases, in page order, with what one figure of each means.
LAUNCH_CASES = {"launch-empty": ("plain launch", "per launch"),
                "launch-empty-graph": ("CUDA-graph replay", "per kernel in a graph replay")}
#: Element counts in binary multiples, as array sizes are chosen (64M = 64 × 2^20).
COUNT_UNITS = ("", "K", "M", "G", "T")
#: params left out of a launch row's settings: they name what ran rather than how (op, impl, device, role).
LAUNCH_HIDDEN_PARAMS = ("op", "impl", "device", "role")


def format_count(value: Any) -> str:
    """Element counts in binary multiples: 64M is 64 × 2^20 elements."""
    return _binary(value, COUNT_UNITS)


@dataclass(frozen=True)
class MemRow:
    """One bandwidth record as its table shows it; a failed row carries its reason (maybe a compiler's
    several lines) and no figure."""

    case: str
    op: str
    op_note: str
    impl: str
    impl_note: str
    elements: str
    elements_exact: int | None
    dtype: str
    bytes: str
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
    is_ceiling: bool
    no_ceiling_why: str
    pct: float | None
    others: list[dict[str, Any]]
    check: dict[str, Any] | None
    threads: int | None
    where: str
    rank: int
    host: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def build_memory(data: ReportData) -> dict[str, Any] | None:
    """STREAM-class bandwidth, host transfers and memory-bound kernels per device, each figure beside the
    measured copy ceiling and the catalog peak; launch latency plain and in a graph; one chart."""
    entries = [e for e in data.entries if e.record.benchmark in MEMORY_BENCHMARKS]
    if not entries:
        return None
    by_block: dict[tuple[int, str], list[Entry]] = {}
    extras: list[Entry] = []
    for entry in entries:
        if _mem_kind(entry.record) == "extra":
            extras.append(entry)
        else:
            by_block.setdefault((entry.document, _mem_device(entry.record)), []).append(entry)
    show_where = _several_ranks([e.record for e in entries])
    several_documents = len({document for document, _ in by_block}) > 1
    blocks = [_mem_block(device, members, data.labels[document] if several_documents else "", show_where)
              for (document, device), members in sorted(by_block.items())]
    ceilings = [c for e in entries for c in [e.record.ceiling, *_raw_other_ceilings(e.record)]]
    return {"blocks": blocks, "chart": _mem_chart(blocks), "show_where": show_where,
            "extras": [_other_row(e) for e in extras], "references": _cited(ceilings),
            "cv_threshold_pct": CV_WARN_THRESHOLD * 100}


def _mem_kind(record: Record) -> str:
    """"launch", "transfer", "bandwidth", or "extra" for an ok record of a metric no table shows.
    A failed or skipped record is always placed, so its reason stands where its figure would."""
    params = _as_dict(record.params)
    if record.metric == LATENCY_METRIC or record.case in LAUNCH_CASES:
        return "launch"
    if _text_param(params, "op") in TRANSFER_OPS or str(record.case).split("-")[0] in TRANSFER_OPS:
        return "transfer"
    if record.metric == BANDWIDTH_METRIC or record.status != "ok":
        return "bandwidth"
    return "extra"


def _mem_device(record: Record) -> str:
    """The kind of device the figure is about (params.device: cpu or cuda), else the record's device name."""
    return _text_param(_as_dict(record.params), "device") or record.device or "unknown device"


def _several_ranks(records: list[Record]) -> bool:
    return len({r.rank for r in records}) > 1 or len({r.host for r in records if r.host}) > 1


def _raw_other_ceilings(record: Record) -> list[Any]:
    """The optional further ceilings, read defensively: older records (and older Record classes) lack them."""
    others = getattr(record, "other_ceilings", None) or []
    return others if isinstance(others, list) else []


def _mem_block(device: str, entries: list[Entry], source: str, show_where: bool) -> dict[str, Any]:
    """One device of one document: its ceilings, a table per benchmark (and transfers), launch latency;
    when nothing ran there, one line per benchmark and reason instead."""
    records = [e.record for e in entries]
    # Only records that ran name the device: a skipped one carries whatever device this host had.
    names = ", ".join(dict.fromkeys(r.device for r in records if r.device and r.status != "skipped"))
    block = {"device": device, "source": source, "devices": names, "hosts": _coll_hosts(records),
             "not_measured": [], "tables": [], "launch": None, "ceilings": []}
    if all(r.status == "skipped" for r in records):
        block["not_measured"] = [{"benchmark": b, "reason": reason, "cases": cases}
                                 for b in MEMORY_BENCHMARKS
                                 for reason, cases in _skipped_groups([r for r in records if r.benchmark == b])]
        return block
    tables: dict[tuple[int, int], list[Entry]] = {}
    launches: list[Entry] = []
    for entry in entries:
        kind = _mem_kind(entry.record)
        if kind == "launch":
            launches.append(entry)
        else:
            key = (MEMORY_BENCHMARKS.index(entry.record.benchmark), kind == "transfer")
            tables.setdefault(key, []).append(entry)
    block["tables"] = [_mem_table(MEMORY_BENCHMARKS[b], transfer, device, members, show_where)
                       for (b, transfer), members in sorted(tables.items())]
    block["launch"] = _launch_table(launches, show_where) if launches else None
    block["ceilings"] = _mem_ceilings([row for t in block["tables"] for row in t["rows"]])
    return block


def _skipped_groups(records: list[Record]) -> list[tuple[str, str]]:
    """Skipped records sharing a reason, as (reason, the cases it covers)."""
    groups: dict[str, list[str]] = {}
    for record in records:
        if record.status == "skipped":
            cases = groups.setdefault(str(record.reason or "no reason recorded"), [])
            if record.case not in cases:
                cases.append(record.case)
    return [(reason, ", ".join(cases)) for reason, cases in groups.items()]


def _mem_table(benchmark: str, transfer: bool, device: str, entries: list[Entry], show_where: bool) -> dict[str, Any]:
    rows = sorted((_mem_row(e, transfer, show_where) for e in entries if e.record.status != "skipped"),
                  key=_mem_sort_key)
    caption = f"{benchmark} · {device}" + (" · host↔device transfers" if transfer else "")
    return {"caption": caption, "benchmark": benchmark, "device": device, "transfer": transfer, "rows": rows,
            "skipped": [{"reason": reason, "cases": cases}
                        for reason, cases in _skipped_groups([e.record for e in entries])],
            "threads": any(r.threads is not None for r in rows), "others": any(r.others for r in rows)}


def _mem_sort_key(row: MemRow) -> tuple[Any, ...]:
    op = (MEMORY_OPS.index(row.op), row.op) if row.op in MEMORY_OPS else (len(MEMORY_OPS), row.op)
    return (op, row.op_note, row.impl, row.elements_exact or 0, row.rank, row.case)


def _mem_row(entry: Entry, transfer: bool, show_where: bool) -> MemRow:
    r = entry.record
    p = _as_dict(r.params)
    ok = r.status == "ok"
    stats = _as_dict(r.stats) if ok else {}
    cv = _cv(r) if ok else None
    elements, width = _int_param(p, "elements"), _int_param(p, "vector_width")
    memory = _text_param(p, "memory")
    is_ceiling = p.get("role") == CEILING_ROLE
    return MemRow(
        case=str(r.case), op=_text_param(p, "op") or str(r.case),
        op_note=f"{memory} host memory" if memory else "", impl=_text_param(p, "impl") or MISSING,
        impl_note=f"vector width {width}" if width is not None else "",
        elements=format_count(elements), elements_exact=elements, dtype=_text_param(p, "dtype"),
        bytes=format_bytes(_int_param(p, "bytes_moved")), status=r.status, reason=str(r.reason or ""),
        value=r.value if ok else None, unit_note="" if r.unit == BANDWIDTH_UNIT else str(r.unit),
        p10=stats.get("p10"), p90=stats.get("p90"), cv_pct=cv * 100 if cv is not None else None,
        noisy=_is_noisy(r), n=stats.get("n", MISSING) if ok else None,
        ceiling=_ceiling(r) if ok else None, is_ceiling=is_ceiling,
        no_ceiling_why=_mem_no_ceiling_why(r, transfer) if ok and not is_ceiling else "",
        pct=_pct_of_ceiling(r) if ok else None, others=_other_ceilings(r) if ok else [],
        check=_check(r.check) if ok else None, threads=_int_param(p, "threads"),
        where=entry.where if show_where else "", rank=r.rank, host=r.host,
    )


def _mem_no_ceiling_why(record: Record, transfer: bool) -> str:
    """The benchmark's own word when it gave one, else why none applies."""
    if _ceiling(record) is not None:
        return ""
    for warning in map(str, record.warnings or []):
        if "ceiling" in warning.lower():
            return warning
    return HOST_LINK_NO_CEILING if transfer else NO_MEASURED_CEILING


def _other_ceilings(record: Record) -> list[dict[str, Any]]:
    """Each further ceiling with its percentage: the record's own, else computed from the two figures."""
    shown = []
    for raw in map(_as_dict, _raw_other_ceilings(record)):
        value = raw.get("value")
        if not _finite(value):
            continue
        pct = raw.get("pct")
        if not _finite(pct):
            pct = 100.0 * record.value / value if value > 0 and _finite(record.value) else None
        shown.append({"value": value, "unit": str(raw.get("unit") or record.unit),
                      "kind": str(raw.get("kind") or MISSING), "label": str(raw.get("label") or ""),
                      "source": str(raw.get("source") or "source not recorded"), "pct": pct})
    return shown


def _mem_ceilings(rows: list[MemRow]) -> list[dict[str, Any]]:
    """The distinct ceilings a device's figures are shown against, measured first, for the line above its tables."""
    seen: dict[tuple[str, float], dict[str, Any]] = {}
    for row in rows:
        for c in ([row.ceiling] if row.ceiling else []) + row.others:
            seen.setdefault((c["kind"] != "measured", float(c["value"])), c)
    return [seen[k] for k in sorted(seen)]


def _launch_table(entries: list[Entry], show_where: bool) -> dict[str, Any]:
    """Plain launches beside graph replay, µs per kernel; with how much a graph saves when both ran."""
    order = list(LAUNCH_CASES)
    rows = [_launch_row(e, show_where) for e in sorted(
        entries, key=lambda e: (order.index(e.record.case) if e.record.case in order else len(order),
                                e.record.case, e.record.rank))]
    plain = next((r for r in rows if r["case"] == order[0] and r["ok"]), None)
    graph = next((r for r in rows if r["case"] == order[1] and r["ok"]), None)
    saving = plain["value"] / graph["value"] if plain and graph and graph["value"] > 0 else None
    return {"rows": rows, "plain": plain, "graph": graph, "saving": saving}


def _launch_row(entry: Entry, show_where: bool) -> dict[str, Any]:
    r = entry.record
    ok = r.status == "ok"
    stats = _as_dict(r.stats) if ok else {}
    cv = _cv(r) if ok else None
    name, per = LAUNCH_CASES.get(r.case, (str(r.case), ""))
    settings = {k: v for k, v in _as_dict(r.params).items() if k not in LAUNCH_HIDDEN_PARAMS}
    return {"case": str(r.case), "name": name, "per": per, "ok": ok, "status": r.status,
            "reason": str(r.reason or ""), "value": r.value if ok else None,
            "unit_note": "" if r.unit == LATENCY_UNIT else str(r.unit), "p10": stats.get("p10"),
            "p90": stats.get("p90"), "cv_pct": cv * 100 if cv is not None else None, "noisy": _is_noisy(r),
            "n": stats.get("n", MISSING) if ok else None, "settings": _plain(settings),
            "check": _check(r.check) if ok else None,
            "where": entry.where if show_where else ""}


def _mem_chart(blocks: list[dict[str, Any]]) -> charts.Chart | None:
    """GB/s per operation, one panel per table, the measured copy ceiling and the catalog peak as dashed lines."""
    groups = []
    for block in blocks:
        for table in block["tables"]:
            cases: dict[str, list[MemRow]] = {}
            for row in table["rows"]:
                if row.ok and not row.unit_note:
                    cases.setdefault(_mem_bar_label(row), []).append(row)
            if cases:
                groups.append(charts.BarGroup(name=_mem_panel_name(table, block), ceilings=_mem_chart_ceilings(cases),
                                              bars=[_mem_bar(label, rows) for label, rows in cases.items()]))
    if not groups:
        return None
    alt = (f"Bar chart of median memory bandwidth in {BANDWIDTH_UNIT} per operation, one panel per device and "
           f"benchmark ({'; '.join(g.name for g in groups)}); dashed lines mark the measured copy ceiling and, "
           "where known, the catalog memory bandwidth; whiskers show p10–p90, or the range across ranks. "
           "The tables below hold the same figures.")
    return charts.bar_chart(groups, title=f"Memory bandwidth ({BANDWIDTH_UNIT})",
                            xlabel=f"achieved {BANDWIDTH_UNIT}", alt=alt)


def _mem_bar_label(row: MemRow) -> str:
    detail = ", ".join(p for p in (row.op_note.replace(" host memory", ""), row.impl) if p and p != MISSING)
    return f"{row.op} ({detail})" if detail else row.op


def _mem_panel_name(table: dict[str, Any], block: dict[str, Any]) -> str:
    """Benchmark and device first: a long file name is what the chart's label limit cuts."""
    name = f"{table['benchmark']}, {table['device']}" + (", host transfers (no ceiling)" if table["transfer"] else "")
    return f"{name}, {block['source']}" if block["source"] else name


def _mem_bar(label: str, rows: list[MemRow]) -> charts.Bar:
    """Median of the ranks that ran the case (whisker: their range), else the case's p10–p90."""
    values = [r.value for r in rows]
    low, high = (rows[0].p10, rows[0].p90) if len(rows) == 1 else (min(values), max(values))
    first = rows[0]
    if first.is_ceiling:
        note = "measured ceiling"
    else:
        parts = [f"{first.pct:.0f}%"] if first.pct is not None else []
        parts += [f"{o['pct']:.0f}% of {o['kind']}" for o in first.others if o["pct"] is not None]
        note = ", ".join(parts)
    return charts.Bar(label=label, value=statistics.median(values), low=low, high=high, note=note)


def _mem_chart_ceilings(cases: dict[str, list[MemRow]]) -> list[tuple[float, str]]:
    """The measured ceilings the rows cite (or the ceiling row itself when no row cites one), then the catalog."""
    rows = [r for members in cases.values() for r in members]
    measured = {float(r.ceiling["value"]): r.ceiling["label"] or r.ceiling["kind"] for r in rows if r.ceiling}
    if not measured:
        measured = {float(r.value): f"measured ceiling, {r.op}" for r in rows if r.is_ceiling}
    others = {float(o["value"]): o["label"] or o["kind"] for r in rows for o in r.others}
    return sorted(measured.items()) + sorted((v, label) for v, label in others.items() if v not in measured)
