"""I/O and data loading: file-system bandwidth, IOPS, metadata rates, checkpoint
save/load and data-loader throughput, grouped per path.
"""

from __future__ import annotations

from typing import Any, Sequence

from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.records import Record
from ai_ready.report import charts
from ai_ready.report.sections.common import (
    MISSING, Entry, ReportData, _as_dict, _ceiling, _cited, _coll_hosts, _cv, _finite, _int_param, _is_noisy,
    _other_row, _pct_of_ceiling, _text_param, format_bytes, format_number,
)


IO_BENCHMARK = "io"
IO_GBS, IO_MBS = "GB/s", "MB/s"
#: Said once under every table with a figure that has no ceiling: file systems have no catalog figure.
IO_NO_CEILING = ("no catalog ceiling for this file system; compare with the measured figures of your storage's "
                 "acceptance")
IO_NO_CACHE = "cache state not recorded"
#: Metadata operations in page order; checkpoint rows as API × operation, torch before DCP, save before load.
IO_METADATA_OPS = ("create", "stat", "unlink")
IO_CHECKPOINT_APIS = {"torch": "torch.save / torch.load", "dcp": "torch.distributed.checkpoint (DCP)"}
IO_CHECKPOINT_OPS = ("save", "load")
#: The metrics each table shows; an ok record of another metric is listed under "Other I/O records".
IO_METRICS = {"seq": ("bandwidth",), "rand": ("iops", "latency"), "metadata": ("ops",),
              "checkpoint": ("bandwidth", "time"), "dataloader": ("throughput", "bandwidth"),
              "aggregate": ("bandwidth", "iops", "ops", "throughput")}
#: The unit each figure is stored in; another unit is shown beside the figure.
IO_UNITS = {"bandwidth": IO_GBS, "iops": "IOPS", "latency": "us", "ops": "ops/s", "time": "s",
            "throughput": "samples/s"}
_SIZE_SUFFIXES = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def build_io(data: ReportData) -> dict[str, Any] | None:
    """Storage bandwidth, IOPS, metadata rates, checkpoints and data loading per file system path: every read
    beside its cache state, every figure beside its ceiling or the reason there is none, every rank listed."""
    entries = data.entries_for(IO_BENCHMARK)
    if not entries:
        return None
    by_document: dict[int, list[Entry]] = {}
    for entry in entries:
        by_document.setdefault(entry.document, []).append(entry)
    several_documents = len(by_document) > 1
    blocks, extras = [], []
    for document, members in sorted(by_document.items()):
        for path, block_entries in _io_paths(members).items():
            block = _io_block(path, block_entries, data.labels[document] if several_documents else "")
            extras += block.pop("extras")
            blocks.append(block)
    ceilings = [e.record.ceiling for e in entries]
    return {"blocks": blocks, "extras": [_other_row(e) for e in extras], "references": _cited(ceilings),
            "cv_threshold_pct": CV_WARN_THRESHOLD * 100, "no_ceiling": IO_NO_CEILING}


def _io_paths(entries: list[Entry]) -> dict[str, list[Entry]]:
    """Records by the path they measured; records naming none (metadata, checkpoints, data loading, most
    failures) join the document's only path, or a block of their own when it measured several."""
    paths = list(dict.fromkeys(p for p in (_text_param(_as_dict(e.record.params), "path") for e in entries) if p))
    default = paths[0] if len(paths) == 1 else ""
    grouped: dict[str, list[Entry]] = {p: [] for p in paths}
    for entry in entries:
        path = _text_param(_as_dict(entry.record.params), "path") or default
        grouped.setdefault(path, []).append(entry)
    return {p: members for p, members in grouped.items() if members}


def _io_kind(record: Record) -> str:
    """Which table a record belongs to, by its case; "extra" for a case or an ok metric no table shows."""
    case = str(record.case)
    params = _as_dict(record.params)
    if params.get("aggregate") is True or case.startswith("mpiio-") or case.endswith("-aggregate"):
        kind = "aggregate"
    elif case.startswith("seq-") or _text_param(params, "op") in ("seq_write", "seq_read"):
        kind = "seq"
    else:
        kind = next((k for k, prefix in (("rand", "rand-"), ("metadata", "metadata-"),
                                         ("checkpoint", "checkpoint-"), ("dataloader", "dataloader-"))
                     if case.startswith(prefix)), "extra")
    if kind != "extra" and record.status == "ok" and record.metric not in IO_METRICS[kind]:
        return "extra"
    return kind


def _io_block(path: str, entries: list[Entry], source: str) -> dict[str, Any]:
    records = [e.record for e in entries]
    several = len({e.record.rank for e in entries if _io_kind(e.record) != "aggregate"}) > 1
    params = [_as_dict(r.params) for r in records]
    fs_types = ", ".join(dict.fromkeys(_text_param(p, "fs_type") for p in params if _text_param(p, "fs_type")))
    direct = list(dict.fromkeys(p["direct"] for p in params if isinstance(p.get("direct"), bool)))
    kinds: dict[str, list[Entry]] = {}
    for entry in entries:
        kinds.setdefault(_io_kind(entry.record), []).append(entry)
    seq = _io_seq_table(kinds.get("seq", []), several)
    block = {
        "path": path or "path not recorded", "fs_type": fs_types, "source": source, "hosts": _coll_hosts(records),
        "direct": ("O_DIRECT" if direct == [True] else "buffered I/O" if direct == [False]
                   else "O_DIRECT and buffered I/O" if direct else ""),
        "ranks": len({r.rank for r in records}), "several_ranks": several,
        "seq": seq, "chart": _io_chart(seq, path),
        "rand": _io_rand_table(kinds.get("rand", []), several),
        "metadata": _io_metadata_table(kinds.get("metadata", []), several),
        "checkpoint": _io_checkpoint_table(kinds.get("checkpoint", []), several),
        "dataloader": _io_dataloader_table(kinds.get("dataloader", []), several),
        "aggregates": _io_aggregate_tables(kinds.get("aggregate", [])),
        "extras": kinds.get("extra", []),
    }
    return block


def _by_case_metric(entries: list[Entry]) -> dict[str, dict[str, list[Entry]]]:
    """Entries by case, then metric; a failed or skipped record stands for every metric of its case."""
    cases: dict[str, dict[str, list[Entry]]] = {}
    for entry in entries:
        metric = entry.record.metric if entry.record.status == "ok" else "*"
        cases.setdefault(str(entry.record.case), {}).setdefault(metric, []).append(entry)
    return cases


def _io_pick(metrics: dict[str, list[Entry]], metric: str) -> list[Entry]:
    """The records of one figure: that metric's, with the case's failures and skips for the ranks lacking it."""
    found = list(metrics.get(metric, []))
    ranks = {e.record.rank for e in found}
    return found + [e for e in metrics.get("*", []) if e.record.rank not in ranks]


def _io_fig(entries: list[Entry], metric: str, several: bool) -> dict[str, Any] | None:
    """One figure: rank 0's (the lowest rank's) record with its spread, ceiling and cache state, plus every
    rank's figure when several ranks ran; a failed or skipped record gives its reason and no number."""
    if not entries:
        return None
    ordered = sorted(entries, key=lambda e: e.record.rank)
    r = ordered[0].record
    ok = r.status == "ok"
    stats = _as_dict(r.stats) if ok else {}
    cv = _cv(r) if ok else None
    cache = _as_dict(r.timing).get("cache")
    expected = IO_UNITS.get(metric, "")
    return {
        "ok": ok, "status": r.status, "reason": str(r.reason or ""), "value": r.value if ok else None,
        "unit": str(r.unit), "unit_note": "" if not ok or r.unit == expected else str(r.unit),
        "p10": stats.get("p10"), "p90": stats.get("p90"), "cv_pct": cv * 100 if cv is not None else None,
        "noisy": _is_noisy(r), "n": stats.get("n", MISSING) if ok else None,
        "cache": str(cache) if cache not in (None, "") else "",
        "ceiling": _ceiling(r) if ok else None, "pct": _pct_of_ceiling(r) if ok else None,
        "ranks": [_io_rank_text(e) for e in ordered] if several and len(ordered) > 1 else [],
        "only": f"rank {r.rank} only" if several and len(ordered) == 1 else "",
        "rank": r.rank, "host": r.host,
    }


def _io_rank_text(entry: Entry) -> str:
    r = entry.record
    who = f"rank {r.rank}" + (f" {r.host}" if r.host else "")
    if r.status != "ok":
        return f"{who}: {r.status} ({r.reason})"
    return f"{who}: {format_number(r.value)}" + ("" if r.unit in (*IO_UNITS.values(), IO_MBS) else f" {r.unit}")


def _io_table(rows: list[dict[str, Any]], figure_keys: Sequence[str], several: bool) -> dict[str, Any] | None:
    """A table's rows plus whether to say, once, that some figure has no ceiling."""
    if not rows:
        return None
    figs = [row[k] for row in rows for k in figure_keys if row.get(k)]
    return {"rows": rows, "several_ranks": several,
            "no_ceiling": any(f["ok"] and f["ceiling"] is None for f in figs)}


def _size_bytes(text: str) -> int | None:
    """"4K", "64K", "1M", "16M" → bytes (binary multiples, as block sizes are chosen)."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B") if text else ""
    number, suffix = text[:-1] if text[-1:].isalpha() else text, text[-1:] if text[-1:].isalpha() else ""
    try:
        return int(float(number) * _SIZE_SUFFIXES[suffix])
    except (ValueError, KeyError):
        return None


def _io_seq_key(record: Record) -> tuple[str, int | None, str]:
    """(direction, block bytes, block label) of a sequential record, from its params or else its case."""
    params = _as_dict(record.params)
    case = str(record.case)
    op = _text_param(params, "op") or case
    direction = "write" if "write" in op else "read" if "read" in op else ""
    suffix = case.split("-", 2)[2] if case.count("-") >= 2 else ""
    block = _int_param(params, "block_bytes")
    if block is None and suffix:
        block = _size_bytes(suffix)
    label = format_bytes(block) if block is not None else (suffix or "all sizes")
    return direction, block, label


def _io_seq_table(entries: list[Entry], several: bool) -> dict[str, Any] | None:
    rows: dict[tuple[int, int, str], dict[str, Any]] = {}
    for case, metrics in _by_case_metric(entries).items():
        first = next(iter(metrics.values()))[0].record
        direction, block, label = _io_seq_key(first)
        key = (0 if block is not None else 1, block or 0, label)
        row = rows.setdefault(key, {"block": label, "block_bytes": block, "write": None, "read": None,
                                    "cases": [], "file": MISSING, "repeats": MISSING})
        row["cases"].append(case)
        p = _as_dict(first.params)
        if _int_param(p, "file_bytes") is not None:
            row["file"] = format_bytes(p["file_bytes"])
        if _int_param(p, "repeats") is not None:
            row["repeats"] = p["repeats"]
        fig = _io_fig(_io_pick(metrics, "bandwidth"), "bandwidth", several)
        if direction in ("write", "read") and row[direction] is None:
            row[direction] = fig
        else:  # a sequential case that names neither direction stands for both
            row["write"] = row["write"] or fig
            row["read"] = row["read"] or fig
    return _io_table([rows[k] for k in sorted(rows)], ("write", "read"), several)


def _io_rand_table(entries: list[Entry], several: bool) -> dict[str, Any] | None:
    rows = []
    for case, metrics in _by_case_metric(entries).items():
        iops = _io_fig(_io_pick(metrics, "iops"), "iops", several)
        latency = _io_fig(_io_pick(metrics, "latency"), "latency", several)
        lat_record = next((e.record for e in sorted(metrics.get("latency", []), key=lambda e: e.record.rank)), None)
        params = {**_as_dict(next(iter(metrics.values()))[0].record.params),
                  **(_as_dict(lat_record.params) if lat_record else {})}
        p50, p99 = params.get("p50_us"), params.get("p99_us")
        record_bytes = _int_param(params, "record_bytes")
        rows.append({"case": case, "iops": iops, "latency": latency,
                     "p50": p50 if _finite(p50) else (latency["value"] if latency and latency["ok"] else None),
                     "p99": p99 if _finite(p99) else None,
                     "record": format_bytes(record_bytes) if record_bytes is not None else MISSING,
                     "reads": params.get("reads") if _finite(params.get("reads")) else None,
                     "file": format_bytes(params.get("file_bytes")),
                     "cache": (iops or {}).get("cache") or (latency or {}).get("cache") or ""})
    rows.sort(key=lambda r: r["case"])
    return _io_table(rows, ("iops",), several)


def _io_metadata_table(entries: list[Entry], several: bool) -> dict[str, Any] | None:
    rows = []
    for case, metrics in _by_case_metric(entries).items():
        op = case.removeprefix("metadata-")
        files = _int_param(_as_dict(next(iter(metrics.values()))[0].record.params), "files")
        rows.append({"case": case, "op": op, "ops": _io_fig(_io_pick(metrics, "ops"), "ops", several),
                     "files": files if files is not None else MISSING})
    order = list(IO_METADATA_OPS)
    rows.sort(key=lambda r: (order.index(r["op"]) if r["op"] in order else len(order), r["op"]))
    return _io_table(rows, ("ops",), several)


def _io_checkpoint_table(entries: list[Entry], several: bool) -> dict[str, Any] | None:
    rows = []
    for case, metrics in _by_case_metric(entries).items():
        p = _as_dict(next(iter(metrics.values()))[0].record.params)
        parts = case.removeprefix("checkpoint-").split("-", 1)
        op = _text_param(p, "op") or parts[0]
        api = parts[1] if len(parts) > 1 else _text_param(p, "api")  # the case's short name orders the rows
        api_name = _text_param(p, "api") or IO_CHECKPOINT_APIS.get(api, api or MISSING)
        bandwidth = _io_fig(_io_pick(metrics, "bandwidth"), "bandwidth", several)
        time = _io_fig(_io_pick(metrics, "time"), "time", several)
        rows.append({"case": case, "op": op, "api": api, "api_name": api_name,
                     "bandwidth": bandwidth, "time": time,
                     "bytes": format_bytes(p.get("bytes")), "file": format_bytes(p.get("file_bytes")),
                     "tensors": p.get("tensors") if _finite(p.get("tensors")) else MISSING,
                     "repeats": p.get("repeats") if _finite(p.get("repeats")) else MISSING,
                     "cache": (bandwidth or {}).get("cache") or (time or {}).get("cache") or ""})
    apis, ops = list(IO_CHECKPOINT_APIS), list(IO_CHECKPOINT_OPS)
    rows.sort(key=lambda r: (apis.index(r["api"]) if r["api"] in apis else len(apis), r["api"],
                             ops.index(r["op"]) if r["op"] in ops else len(ops), r["op"]))
    return _io_table(rows, ("bandwidth",), several)


def _io_dataloader_table(entries: list[Entry], several: bool) -> dict[str, Any] | None:
    rows = []
    for case, metrics in _by_case_metric(entries).items():
        p = _as_dict(next(iter(metrics.values()))[0].record.params)
        workers = _int_param(p, "workers")
        suffix = case.removeprefix("dataloader-w")
        if workers is None and suffix.isdigit():
            workers = int(suffix)
        throughput = _io_fig(_io_pick(metrics, "throughput"), "throughput", several)
        bandwidth = _io_fig(_io_pick(metrics, "bandwidth"), "bandwidth", several)
        if bandwidth:
            bandwidth["unit_note"] = "" if not bandwidth["ok"] or bandwidth["unit"] == IO_MBS else bandwidth["unit"]
        rows.append({"case": case, "workers": workers if workers is not None else MISSING,
                     "sort": workers if workers is not None else 1 << 30,
                     "throughput": throughput, "bandwidth": bandwidth,
                     "samples": p.get("samples") if _finite(p.get("samples")) else MISSING,
                     "sample_bytes": format_bytes(p.get("sample_bytes")),
                     "batch": p.get("batch_size") if _finite(p.get("batch_size")) else MISSING,
                     "cache": (throughput or {}).get("cache") or (bandwidth or {}).get("cache") or ""})
    rows.sort(key=lambda r: (r["sort"], r["case"]))
    return _io_table(rows, ("throughput", "bandwidth"), several)


def _io_aggregate_tables(entries: list[Entry]) -> list[dict[str, Any]]:
    """One table per number of ranks: the total (GB/s, IOPS or ops/s: all ranks' work over the slowest rank's
    time) beside its ceiling, the slowest rank, the per-rank spread and every rank's figure."""
    rows = []
    for entry in sorted(entries, key=lambda e: (str(e.record.case), e.record.rank)):
        r = entry.record
        p = _as_dict(r.params)
        # per_rank_gbs (GB/s figures) or per_rank (any unit; a checkpoint's per_rank is a flag, not a list)
        per_rank = next((v for v in (p.get("per_rank_gbs"), p.get("per_rank")) if isinstance(v, list)), [])
        per_rank = [v for v in per_rank if _finite(v)]
        ranks = _int_param(p, "ranks")
        if ranks is None and per_rank:
            ranks = len(per_rank)
        world = _int_param(p, "world_size")
        if ranks is None and world is not None and world > 1:
            ranks = world
        ok = r.status == "ok"
        slowest = _int_param(p, "slowest_rank")
        if slowest is None or not 0 <= slowest < len(per_rank):
            slowest = min(range(len(per_rank)), key=per_rank.__getitem__) if per_rank else None
        slowest = slowest if ok else None
        fig = _io_fig([entry], r.metric, False)
        fig["unit_note"] = str(r.unit) if ok else ""  # totals of several metrics share the table: name each unit
        op = _text_param(p, "op")
        rows.append({"case": str(r.case), "op": "" if op.replace("_", "-") == r.case else op, "ranks": ranks,
                     "fig": fig,
                     "slowest_rank": slowest, "slowest": per_rank[slowest] if slowest is not None else None,
                     "min": min(per_rank) if per_rank and ok else None,
                     "max": max(per_rank) if per_rank and ok else None,
                     "spread_pct": (100.0 * (max(per_rank) - min(per_rank)) / max(per_rank)
                                    if per_rank and ok and max(per_rank) > 0 else None),
                     "per_rank": ", ".join(format_number(v) for v in per_rank) if ok else "",
                     "where": entry.where})
    known = {row["ranks"] for row in rows if row["ranks"] is not None}
    for row in rows:  # a failure that names no rank count belongs with the only count there is
        if row["ranks"] is None and len(known) == 1:
            row["ranks"] = next(iter(known))
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["ranks"] if row["ranks"] is not None else -1, []).append(row)
    return [{"ranks": n if n >= 0 else None, **_io_table(members, ("fig",), False)}
            for n, members in sorted(groups.items())]


def _io_chart(seq: dict[str, Any] | None, path: str) -> charts.Chart | None:
    """Write and read GB/s per block size (rank 0's figures), one panel each, ceilings as dashed lines."""
    if not seq:
        return None
    groups = []
    for direction in ("write", "read"):
        figs = [(row["block"], row[direction]) for row in seq["rows"]
                if row[direction] and row[direction]["ok"] and not row[direction]["unit_note"]]
        if not figs:
            continue
        caches = list(dict.fromkeys(f["cache"] or IO_NO_CACHE for _, f in figs))
        if direction == "write" and all("fsync" in c for c in caches):
            name = "write, durable (fsync timed)"
        else:
            name = f"{direction}, {caches[0]}" if len(caches) == 1 else f"{direction}, cache state varies"
        ceilings = sorted({float(f["ceiling"]["value"]): f["ceiling"]["label"] or f["ceiling"]["kind"]
                           for _, f in figs if f["ceiling"]}.items())
        bars = [charts.Bar(label=label, value=f["value"], low=f["p10"], high=f["p90"],
                           note=f"{f['pct']:.0f}%" if f["pct"] is not None else "") for label, f in figs]
        groups.append(charts.BarGroup(name=name, bars=bars, ceilings=ceilings))
    if not groups:
        return None
    alt = (f"Bar chart of median sequential {IO_GBS} per block size on {path or 'the measured path'}, one panel "
           f"each for {' and '.join(g.name for g in groups)}; whiskers show p10–p90 over repeats"
           + ("; dashed lines mark the ceiling" if any(g.ceilings for g in groups) else "; no ceiling known")
           + ". The table below holds the same figures.")
    return charts.bar_chart(groups, title=f"Sequential I/O ({IO_GBS})", xlabel=f"achieved {IO_GBS}", alt=alt)
