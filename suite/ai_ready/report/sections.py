"""The report's sections: one registry, one builder per section.

A section is a template, ``templates/sections/<key>.html.j2``, plus a builder
that turns the stored documents into that template's data, or returns None so
the section is left out. Adding a section means writing those two and
appending one :class:`Section` to :data:`SECTIONS`; records whose benchmark no
section claims are listed under "Other records", so nothing is dropped.

Builders hand templates plain values (strings, numbers, flags). Everything
that came from a document is user data and reaches the page only through
Jinja2's autoescaping; nothing here ever marks it safe.
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.records import Record, ResultDocument
from ai_ready.report import charts

#: Shown wherever a figure is missing or deliberately withheld.
MISSING = "—"

#: Document statuses meaning the figures cover only part of what was asked, with what to tell the reader.
#: "running" is what a document says when it was saved mid-run and the run never finished.
INCOMPLETE_STATUSES: dict[str, str] = {
    "partial": "some cases did not run; the figures below cover only the cases that finished",
    "interrupted": "the run was stopped before it finished; cases after the interruption are missing",
    "failed": "the run failed; any figures below are what was saved before the failure",
    "running": "the document was saved while the run was still going (the run was probably killed); "
               "treat it as incomplete",
}

#: Order in which dtypes are listed: widest first, as the usual precision ladder.
DTYPE_ORDER = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8")

#: CPU flags that matter for the CPU fallback paths; the full list is long and rarely useful in a report.
NOTABLE_CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                     "sve", "sve2", "asimd")

GEMM_BENCHMARK = "gemm"
GEMM_UNIT = "TFLOP/s"


# --------------------------------------------------------------------------- formatting (also template filters)

def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_number(value: Any, digits: int = 3) -> str:
    """`digits` significant figures with thousands separators; big numbers are never written as 1e+03."""
    if not _finite(value):
        return MISSING
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude < 1e-3:
        return f"{value:.{digits - 1}e}"
    decimals = max(digits - 1 - math.floor(math.log10(magnitude)), 0)
    return f"{value:,.{decimals}f}"


def format_percent(value: Any) -> str:
    """A value already in percent, one decimal."""
    return f"{value:.1f}%" if _finite(value) else MISSING


def format_sci(value: Any) -> str:
    """Scientific notation for errors and tolerances, whose magnitude is what matters."""
    return f"{value:.1e}" if _finite(value) else MISSING


def _plain(value: Any) -> str:
    """Any stored value as one line of text (lists joined, dicts as key=value)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class Entry:
    """A record with the document it came from, so every row can say where it was measured."""

    record: Record
    document: int
    source: str

    @property
    def where(self) -> str:
        parts = [f"rank {self.record.rank}"]
        parts += [p for p in (self.record.host, self.record.device) if p]
        return " · ".join(parts)


@dataclass
class ReportData:
    """Everything a builder may read: the documents, their labels and all their records."""

    documents: list[ResultDocument]
    labels: list[str]
    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def from_documents(cls, documents: Sequence[ResultDocument], sources: Sequence[str] | None = None) -> "ReportData":
        """Label each document by its file name when the caller gave one per document."""
        docs = list(documents)
        if sources is not None and len(sources) == len(docs):
            labels = [str(s) for s in sources]
        else:
            labels = [f"document {i + 1}" for i in range(len(docs))]
        entries = [Entry(r, i, labels[i]) for i, doc in enumerate(docs) for r in doc.records]
        return cls(documents=docs, labels=labels, entries=entries)

    def entries_for(self, benchmark: str) -> list[Entry]:
        return [e for e in self.entries if e.record.benchmark == benchmark]


Builder = Callable[[ReportData], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Section:
    """A registered section: where it renders, what builds its data, which benchmarks it presents."""

    key: str
    title: str
    build: Builder
    benchmarks: tuple[str, ...] = ()

    @property
    def template(self) -> str:
        return f"sections/{self.key}.html.j2"


@dataclass(frozen=True)
class BuiltSection:
    """A section with its data, ready for the page template."""

    key: str
    title: str
    template: str
    data: dict[str, Any]


def build_sections(data: ReportData, sections: Iterable[Section] | None = None) -> list[BuiltSection]:
    """Run every builder in registry order; a builder returning None leaves its section out."""
    built = []
    for section in SECTIONS if sections is None else sections:
        content = section.build(data)
        if content is not None:
            built.append(BuiltSection(section.key, section.title, section.template, content))
    return built


# --------------------------------------------------------------------------- run notes

def build_overview(data: ReportData) -> dict[str, Any]:
    """Always present: says what was read, whether it is complete, and what went wrong or is noisy."""
    return {
        "documents": [_document_summary(doc, label) for doc, label in zip(data.documents, data.labels)],
        "incomplete": [_incomplete_note(doc, label) for doc, label in zip(data.documents, data.labels)
                       if _status(doc) in INCOMPLETE_STATUSES],
        "problems": [_problem_row(e) for e in data.entries if e.record.status != "ok"],
        "warnings": [_warning_row(e, w) for e in data.entries for w in (e.record.warnings or [])],
        "noisy": [_noisy_row(e) for e in data.entries if _is_noisy(e.record)],
        "record_count": len(data.entries),
        "cv_threshold": CV_WARN_THRESHOLD,
    }


def _status(doc: ResultDocument) -> str:
    status = _as_dict(doc.meta).get("status")
    return str(status) if status else "unknown"


def _document_summary(doc: ResultDocument, label: str) -> dict[str, Any]:
    meta = _as_dict(doc.meta)
    command = meta.get("command")
    counts = {s: sum(1 for r in doc.records if r.status == s) for s in ("ok", "failed", "skipped")}
    return {
        "label": label,
        "status": _status(doc),
        "incomplete": _status(doc) in INCOMPLETE_STATUSES,
        "created": _plain(meta["created"]) if meta.get("created") else MISSING,
        "version": _plain(meta["ai_ready_version"]) if meta.get("ai_ready_version") else MISSING,
        "command": shlex.join(str(c) for c in command) if isinstance(command, list) else MISSING,
        "records": len(doc.records),
        "counts": counts,
    }


def _incomplete_note(doc: ResultDocument, label: str) -> dict[str, str]:
    status = _status(doc)
    return {"label": label, "status": status, "meaning": INCOMPLETE_STATUSES[status]}


def _problem_row(entry: Entry) -> dict[str, Any]:
    r = entry.record
    return {"benchmark": r.benchmark, "case": r.case, "status": r.status, "reason": r.reason or MISSING,
            "where": entry.where, "source": entry.source}


def _warning_row(entry: Entry, warning: str) -> dict[str, Any]:
    r = entry.record
    return {"benchmark": r.benchmark, "case": r.case, "warning": str(warning), "where": entry.where}


def _cv(record: Record) -> float | None:
    cv = _as_dict(record.stats).get("cv")
    return float(cv) if _finite(cv) or cv == math.inf else None


def _is_noisy(record: Record) -> bool:
    cv = _cv(record)
    return record.status == "ok" and cv is not None and cv > CV_WARN_THRESHOLD


def _noisy_row(entry: Entry) -> dict[str, Any]:
    r = entry.record
    n = _as_dict(r.stats).get("n")
    return {"benchmark": r.benchmark, "case": r.case, "metric": r.metric, "cv_pct": (_cv(r) or 0.0) * 100,
            "n": n if n is not None else MISSING, "where": entry.where}


# --------------------------------------------------------------------------- environment

def build_environment(data: ReportData) -> dict[str, Any] | None:
    """One block per distinct environment, naming the documents that share it; omitted when none is recorded."""
    blocks: dict[str, dict[str, Any]] = {}
    for doc, label in zip(data.documents, data.labels):
        env = _as_dict(_as_dict(doc.meta).get("environment"))
        if not env:
            continue
        key = json.dumps(env, sort_keys=True, default=str)
        if key not in blocks:
            blocks[key] = {"labels": [], "groups": _environment_groups(env)}
        blocks[key]["labels"].append(label)
    if not blocks:
        return None
    return {"blocks": list(blocks.values()), "distinct": len(blocks) > 1}


def _environment_groups(env: dict[str, Any]) -> list[dict[str, Any]]:
    groups = [
        ("Host and accelerators", [("Host", env.get("host"))] + _device_rows(_as_dict(env.get("device")))),
        ("CPU and memory", _cpu_rows(_as_dict(env.get("cpu")))),
        ("Launcher and ranks", _launcher_rows(_as_dict(env.get("launcher")))),
        ("Software", [(str(k), v) for k, v in _as_dict(env.get("versions")).items()]),
        ("Other", [(str(k), v) for k, v in env.items() if k not in _KNOWN_ENV_KEYS]),
    ]
    result = []
    for title, rows in groups:
        shown = [(label, _plain(value)) for label, value in rows if value not in (None, "", [], {})]
        if shown:
            result.append({"title": title, "rows": shown})
    return result


_KNOWN_ENV_KEYS = {"host", "device", "cpu", "launcher", "versions"}


def _extra(group: str, values: dict[str, Any], known: set[str]) -> list[tuple[str, Any]]:
    """Keys a newer detector added that this report does not know yet: shown, not dropped."""
    return [(f"{group}.{k}", v) for k, v in values.items() if k not in known]


def _device_rows(d: dict[str, Any]) -> list[tuple[str, Any]]:
    name, count, kind = d.get("name"), d.get("count"), d.get("kind")
    described = name or (str(kind).upper() if kind else None)
    if described and count:
        described = f"{count} × {described}"
    if described and kind and name:
        described = f"{described} ({kind})"
    memory = d.get("memory_gb")
    return [
        ("Accelerator", described),
        ("Accelerator memory", f"{format_number(memory)} GB each" if _finite(memory) else memory),
        ("Streaming multiprocessors", d.get("sm_count")),
        ("Compute capability", d.get("compute_capability")),
        ("Driver", d.get("driver")),
        ("CUDA", d.get("cuda")),
        ("NCCL", d.get("nccl")),
    ] + _extra("device", d, {"name", "count", "kind", "memory_gb", "sm_count", "compute_capability",
                            "driver", "cuda", "nccl"})


def _cpu_rows(c: dict[str, Any]) -> list[tuple[str, Any]]:
    physical, logical = c.get("cores_physical"), c.get("cores_logical")
    cores = ", ".join(f"{n} {kind}" for n, kind in ((physical, "physical"), (logical, "logical")) if n)
    freq, memory = c.get("freq_mhz"), c.get("memory_gb")
    return [
        ("CPU", c.get("model")),
        ("Cores", cores),
        ("Clock", f"{format_number(freq, 4)} MHz" if _finite(freq) else freq),
        ("Features", _cpu_features(c.get("flags"))),
        ("Host memory", f"{format_number(memory)} GB" if _finite(memory) else memory),
    ] + _extra("cpu", c, {"model", "cores_physical", "cores_logical", "freq_mhz", "flags", "memory_gb"})


def _cpu_features(flags: Any) -> str | None:
    if not isinstance(flags, list) or not flags:
        return None
    present = [f for f in NOTABLE_CPU_FLAGS if f in flags]
    return f"{', '.join(present) or 'none of the notable ones'} ({len(flags)} flags reported)"


def _launcher_rows(l: dict[str, Any]) -> list[tuple[str, Any]]:
    rank, world = l.get("rank"), l.get("world_size")
    ranks = f"rank {rank} of {world}" if rank is not None and world is not None else (
        f"{world} ranks" if world is not None else None)
    return [
        ("Launcher", l.get("name")),
        ("Ranks", ranks),
        ("Local rank", l.get("local_rank")),
        ("Nodes", l.get("nodes")),
        ("Job", l.get("job_id")),
    ] + _extra("launcher", l, {"name", "rank", "world_size", "local_rank", "nodes", "job_id"})


# --------------------------------------------------------------------------- GEMM

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


def _references(records: Iterable[Record]) -> list[dict[str, str]]:
    """The distinct sources the records' ceilings cite, as stored in the records (id, title, where)."""
    return _cited(record.ceiling for record in records)


def _cited(ceilings: Iterable[Any]) -> list[dict[str, str]]:
    """The distinct references (id, title, where) of ceiling dicts, in order of first citation."""
    seen: dict[str, dict[str, str]] = {}
    for ceiling in ceilings:
        references = _as_dict(ceiling).get("references")
        for ref in references if isinstance(references, list) else []:
            if isinstance(ref, dict) and ref.get("id") and str(ref["id"]) not in seen:
                seen[str(ref["id"])] = {k: str(ref.get(k) or "") for k in ("id", "title", "where")}
    return list(seen.values())


def _int_param(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


def _ceiling(record: Record) -> dict[str, Any] | None:
    c = _as_dict(record.ceiling)
    if not _finite(c.get("value")):
        return None
    return {"value": c["value"], "unit": str(c.get("unit") or record.unit), "kind": str(c.get("kind") or MISSING),
            "label": str(c.get("label") or ""), "source": str(c.get("source") or "source not recorded")}


def _no_ceiling_why(record: Record, dtype: str) -> str:
    """Why there is no ceiling: the benchmark's own warning when it gave one, else what was looked for."""
    if _ceiling(record) is not None:
        return ""
    for warning in map(str, record.warnings or []):
        if "ceiling" in warning.lower() or "peak" in warning.lower():
            return warning
    device = record.device or "this device"
    return f"no catalog entry or declared peak for {device} at {dtype}"


def _pct_of_ceiling(record: Record) -> float | None:
    """The record's own figure; computed only when an older record stored a ceiling but no percentage."""
    if _finite(record.pct_of_ceiling):
        return float(record.pct_of_ceiling)
    ceiling = _ceiling(record)
    if ceiling and ceiling["value"] > 0 and _finite(record.value):
        return 100.0 * record.value / ceiling["value"]
    return None


def _check(check: Any) -> dict[str, Any] | None:
    c = _as_dict(check)
    if not c:
        return None
    return {"passed": bool(c.get("passed")), "metric": str(c.get("metric") or "error"), "value": c.get("value"),
            "tolerance": c.get("tolerance"), "reference": str(c.get("reference") or "")}


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


# --------------------------------------------------------------------------- collective communication

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
#: Hosts named in a block's heading before the rest are counted.
MAX_HOSTS_LISTED = 8
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(value: Any) -> str:
    """Binary multiples as nccl-tests sizes are chosen: 8B, 1KiB, 1.5MiB."""
    return _binary(value, BYTE_UNITS)


def _binary(value: Any, units: Sequence[str]) -> str:
    """`value` in multiples of 1024 named by `units`: whole when exact or three digits and more, else 3 figures."""
    if not _finite(value) or value < 0:
        return MISSING
    size, unit = float(value), 0
    while size >= 1024 and unit < len(units) - 1:
        size, unit = size / 1024, unit + 1
    text = f"{size:.0f}" if size == int(size) or size >= 100 else f"{size:.3g}"
    return text + units[unit]


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


def _text_param(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    return "" if value is None or value == "" else str(value)


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


def _coll_hosts(records: list[Record]) -> str:
    hosts: dict[str, None] = {}
    for record in records:
        per_rank = _as_dict(record.timing).get("per_rank")
        named = [_as_dict(r).get("host") for r in per_rank] if isinstance(per_rank, list) else []
        hosts.update((str(h), None) for h in [record.host, *named] if h)
    shown = ", ".join(sorted(hosts)[:MAX_HOSTS_LISTED])
    more = len(hosts) - MAX_HOSTS_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


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


# --------------------------------------------------------------------------- memory bandwidth and kernels

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


# --------------------------------------------------------------------------- I/O and data loading

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


# --------------------------------------------------------------------------- training workloads

TRAIN_BENCHMARK = "train"
#: The four parts of a step, in the order they run, with the name the page gives each.
TRAIN_PHASES = {"data": "data wait", "forward": "forward (with the loss)", "backward": "backward",
                "optimizer": "optimizer step"}
#: The metrics a run's block shows; an ok record of another metric is listed under "Other training records".
TRAIN_METRICS = ("step_time", "throughput", "model_tflops", "mfu", "phase_time", "model_flops", "loss",
                 "peak_memory", "exposed_comm")
#: The phases' median shares need not add to exactly 100% (medians do not add); beyond this gap it is said.
TRAIN_SHARE_GAP_PCT = 5.0
#: params that describe the run or one record rather than the model, left out of the model line.
TRAIN_RUN_PARAMS = ("arch", "preset", "batch", "steps", "warmup_steps", "precision", "workers", "parallel",
                    "world_size", "parameters", "model_flops_per_step", "item", "phase", "share_of_step",
                    "flop_counter", "analytic", "first_loss", "last_loss", "aggregate", "ranks", "per_rank",
                    "slowest_rank", "recompute", "compile", "expert_parallel", "hardware_flops_per_step",
                    "backward_synced_s", "backward_local_s", "probe_steps")
MS_PER_S = 1000.0


def build_train(data: ReportData) -> dict[str, Any] | None:
    """One block per run (document × case): what the run was, its throughput per rank and in aggregate, step
    time with its spread, model TFLOP/s and MFU beside the peak and its source, the FLOPs check, the loss,
    peak memory, where the step's time goes, and every rank's figures when several ranks ran."""
    entries = data.entries_for(TRAIN_BENCHMARK)
    if not entries:
        return None
    scaling = [e for e in entries if _train_is_scaling(e.record)]
    runs = _train_runs([e for e in entries if not _train_is_scaling(e.record)])
    several_documents = len({e.document for e in entries}) > 1
    blocks, extras = [], []
    for (document, case, _), members in sorted(runs.items(), key=lambda item: _train_run_sort(item[0])):
        block = _train_block(case, members, data.labels[document] if several_documents else "")
        extras += block.pop("extras")
        blocks.append(block)
    return {"blocks": blocks, "extras": [_other_row(e) for e in extras],
            "scaling": _train_scaling_blocks(scaling, data.labels, several_documents),
            "scaling_flag_pct": TRAIN_SCALING_FLAG_PCT,
            "references": _references(e.record for e in entries), "phases": list(TRAIN_PHASES.values()),
            "cv_threshold_pct": CV_WARN_THRESHOLD * 100, "share_gap_pct": TRAIN_SHARE_GAP_PCT}


def _train_runs(entries: list[Entry]) -> dict[tuple[int, str, int | None], list[Entry]]:
    """Records by run: document × case × world size, since a scaling sweep writes the same case at every rank
    count. A record without a world size joins its case's run when the document holds only one."""
    sizes: dict[tuple[int, str], set[int]] = {}
    for entry in entries:
        world = _int_param(_as_dict(entry.record.params), "world_size")
        if world is not None:
            sizes.setdefault((entry.document, _train_run_case(entry.record)), set()).add(world)
    runs: dict[tuple[int, str, int | None], list[Entry]] = {}
    for entry in entries:
        case = _train_run_case(entry.record)
        world = _int_param(_as_dict(entry.record.params), "world_size")
        known = sizes.get((entry.document, case), set())
        if world is None or len(known) <= 1:
            world = min(known) if known else None
        runs.setdefault((entry.document, case, world), []).append(entry)
    return runs


def _train_run_sort(key: tuple[int, str, int | None]) -> tuple[Any, ...]:
    document, case, world = key
    return (document, case, world is not None, world or 0)


def _train_is_aggregate(record: Record) -> bool:
    return _as_dict(record.params).get("aggregate") is True or str(record.case).endswith("-aggregate")


def _train_run_case(record: Record) -> str:
    """The run a record belongs to: its case, without the aggregate record's "-aggregate"."""
    case = str(record.case)
    return case.removesuffix("-aggregate") if _train_is_aggregate(record) else case


def _train_block(case: str, entries: list[Entry], source: str) -> dict[str, Any]:
    ranked = [e for e in entries if not _train_is_aggregate(e.record)]
    aggregates = [e for e in entries if _train_is_aggregate(e.record)]
    by_rank, extras, problems = _split_by_rank(ranked, TRAIN_METRICS)
    problems += [e for e in aggregates if e.record.status != "ok"]
    ranks = sorted(by_rank)
    main = by_rank[ranks[0]] if ranks else {}
    params = _train_params(entries)
    world = _int_param(params, "world_size")
    several = len(ranks) > 1
    figures = _train_figures(main)
    phases = _train_phases(main.get("phase_time", []))
    return {
        "case": case, "source": source, "hosts": _coll_hosts([e.record for e in entries]),
        "devices": ", ".join(dict.fromkeys(e.record.device for e in entries if e.record.device)),
        "run": _train_run(params, ranks, world), "main_rank": ranks[0] if ranks and several else None,
        **figures,
        "aggregate": _train_aggregate(aggregates),
        "phases": phases, "share_sum": _share_sum(phases),
        "chart": _train_chart(case, phases, source, ranks[0] if ranks and several else None),
        "per_rank": _train_rank_rows(by_rank, aggregates) if several else [],
        "problems": [_train_problem(e, several) for e in problems],
        "extras": extras,
    }


def _split_by_rank(ranked: list[Entry], metrics: Sequence[str]
                   ) -> tuple[dict[int, dict[str, list[Entry]]], list[Entry], list[Entry]]:
    """Records by rank (lowest first) and metric; ok records of a metric not in `metrics` apart (extras), and
    every failed or skipped record also listed as a problem."""
    by_rank: dict[int, dict[str, list[Entry]]] = {}
    extras, problems = [], []
    for entry in sorted(ranked, key=lambda e: e.record.rank):
        r = entry.record
        if r.status != "ok":
            problems.append(entry)
        if r.status == "ok" and r.metric not in metrics:
            extras.append(entry)
            continue
        by_rank.setdefault(r.rank, {}).setdefault(str(r.metric), []).append(entry)
    return by_rank, extras, problems


def _train_params(entries: list[Entry]) -> dict[str, Any]:
    """The run's settings: every record repeats them; the first ok record's, else any record's."""
    ordered = sorted(entries, key=lambda e: (e.record.status != "ok", _train_is_aggregate(e.record), e.record.rank))
    return _as_dict(ordered[0].record.params) if ordered else {}


def _train_run(params: dict[str, Any], ranks: list[int], world: int | None) -> dict[str, Any]:
    model = {k: v for k, v in params.items()
             if k not in TRAIN_RUN_PARAMS and not (k in ("experts", "top_k") and v in (0, None))}
    parameters = _int_param(params, "parameters")
    parallel = _text_param(params, "parallel") or "none"
    n = world if world is not None else max(len(ranks), 1)
    ep = _int_param(params, "expert_parallel")
    options = [text for flag, text in (("recompute", "full activation recomputation"),
                                       ("compile", "torch.compile (first warm-up step compiles)"))
               if params.get(flag) is True]
    batch = _int_param(params, "batch")
    seq = _int_param(params, "seq_len")
    item = _text_param(params, "item")
    per_step = f"{format_number(batch * seq)} tokens per step per rank" if batch and seq else ""
    return {
        "arch": _text_param(params, "arch") or MISSING, "preset": _text_param(params, "preset") or MISSING,
        "model": _plain(model) or MISSING,
        "parameters": f"{parameters:,}" if parameters is not None else None,
        "parameters_short": _si_count(parameters),
        "precision": _text_param(params, "precision") or MISSING,
        "parallel": parallel, "ranks": n,
        "parallel_text": (f"{parallel} × {n} ranks" if n > 1 else
                          "single process" if parallel == "none" else f"{parallel} × 1 rank")
                         + (f", experts split over {ep} ranks (all-to-all)" if ep and ep > 1 else ""),
        "options": ", ".join(options) or "none",
        "batch": batch if batch is not None else MISSING, "per_step": per_step, "item": item,
        "steps": _int_param(params, "steps"), "warmup": _int_param(params, "warmup_steps"),
        "workers": _int_param(params, "workers"),
    }


def _si_count(value: Any) -> str:
    """136960 → "137 K", 986e6 → "986 M": parameter counts as people say them."""
    if not _finite(value):
        return MISSING
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{format_number(value / factor)} {suffix}"
    return format_number(value)


def _train_fig(entries: list[Entry], scale: float = 1.0) -> dict[str, Any] | None:
    """One figure of the main rank: median with spread, ceiling and check; a failure gives its reason."""
    if not entries:
        return None
    r = entries[0].record
    ok = r.status == "ok"
    stats = _as_dict(r.stats) if ok else {}
    cv = _cv(r) if ok else None

    def scaled(v: Any) -> float | None:
        return v * scale if _finite(v) else None

    return {"ok": ok, "status": r.status, "reason": str(r.reason or "no reason recorded"),
            "value": scaled(r.value) if ok else None, "unit": str(r.unit),
            "p10": scaled(stats.get("p10")), "p90": scaled(stats.get("p90")),
            "cv_pct": cv * 100 if cv is not None else None, "noisy": _is_noisy(r),
            "n": stats.get("n") if ok else None,
            "ceiling": _ceiling(r) if ok else None, "pct": _pct_of_ceiling(r) if ok else None,
            "check": _check(r.check), "params": _as_dict(r.params), "device": r.device or "",
            "clock": str(_as_dict(r.timing).get("clock") or ""),
            "warnings": [str(w) for w in r.warnings or []]}


def _train_figures(main: dict[str, list[Entry]]) -> dict[str, Any]:
    step = _train_fig(main.get("step_time", []), MS_PER_S)
    throughput = _train_fig(main.get("throughput", []))
    tflops = _train_fig(main.get("model_tflops", []))
    mfu = _train_fig(main.get("mfu", []))
    flops = _train_fig(main.get("model_flops", []))
    loss = _train_fig(main.get("loss", []))
    memory = _train_fig(main.get("peak_memory", []))
    exposed = _train_exposed(main.get("exposed_comm", []))
    precision = _text_param((tflops or flops or step or {}).get("params", {}), "precision") or "this precision"
    device = next((f["device"] for f in (tflops, step, throughput) if f and f["device"]), "") or "this device"
    no_peak = ""
    if tflops and tflops["ok"] and tflops["ceiling"] is None:
        no_peak = next((w for w in tflops["warnings"] if "peak" in w.lower() or "ceiling" in w.lower()),
                       f"no catalog entry or declared peak for {device} at {precision}")
    return {
        "step": step, "throughput": throughput, "tflops": tflops, "no_peak": no_peak,
        "mfu": mfu, "mfu_missing": "" if mfu else (no_peak or f"no dense peak known for {device} at {precision}"),
        "flops": _train_flops(flops), "loss": _train_loss(loss), "memory": memory, "exposed": exposed,
        "memory_kind": _memory_kind(step),
        "peak": _train_peak(tflops, mfu),
    }


def _train_peak(tflops: dict[str, Any] | None, mfu: dict[str, Any] | None) -> dict[str, Any] | None:
    """The dense peak MFU divides by: the model TFLOP/s record's ceiling (the MFU record's is 100%)."""
    if tflops and tflops["ceiling"]:
        return tflops["ceiling"]
    if mfu and mfu["ceiling"]:
        return dict(mfu["ceiling"], value=None)
    return None


def _memory_kind(step: dict[str, Any] | None) -> str:
    """What peak memory means on this device: CUDA's peak allocation, or the process's resident memory."""
    clock = step["clock"] if step else ""
    if "device" in clock:
        return "CUDA peak allocated"
    return "resident memory of the process" if clock == "host" else ""


def _train_flops(fig: dict[str, Any] | None) -> dict[str, Any] | None:
    """Model FLOPs per step with the analytic count checked against FlopCounterMode."""
    if fig is None:
        return None
    p = fig["params"]
    analytic, counted = p.get("analytic"), p.get("flop_counter")
    check = fig["check"]
    ratio = check["value"] if check and _finite(check["value"]) else (
        analytic / counted if _finite(analytic) and _finite(counted) and counted else None)
    tolerance = check["tolerance"] if check and _finite(check["tolerance"]) else None
    value = fig["value"] if fig["ok"] else (analytic if _finite(analytic) else None)
    hardware = p.get("hardware_flops_per_step")
    recompute = p.get("recompute") is True and _finite(hardware)
    return {**fig, "value": value, "analytic": analytic if _finite(analytic) else None,
            "hardware": hardware if recompute else None,
            "hardware_ratio": hardware / counted if recompute and _finite(counted) and counted else None,
            "counted": counted if _finite(counted) else None, "ratio": ratio,
            "tolerance_pct": tolerance * 100 if tolerance is not None else None,
            "passed": bool(check and check["passed"]) and fig["ok"],
            "reference": check["reference"] if check else ""}


def _train_exposed(entries: list[Entry]) -> dict[str, Any] | None:
    """Communication backward could not hide: backward with gradient sync minus without, in ms and as a share
    of the step; a negative difference is below the probe's noise and said so."""
    fig = _train_fig(entries, MS_PER_S)
    if fig is None:
        return None
    p = fig["params"]
    share, synced, local = p.get("share_of_step"), p.get("backward_synced_s"), p.get("backward_local_s")
    return {**fig, "share_pct": share * 100 if _finite(share) else None,
            "synced_ms": synced * MS_PER_S if _finite(synced) else None,
            "local_ms": local * MS_PER_S if _finite(local) else None,
            "probe_steps": _int_param(p, "probe_steps"),
            "below_noise": fig["ok"] and fig["value"] is not None and fig["value"] < 0}


def _train_loss(fig: dict[str, Any] | None) -> dict[str, Any] | None:
    """First (warm-up) and last loss, flagged when training did not bring it down."""
    if fig is None:
        return None
    first, last = fig["params"].get("first_loss"), fig["params"].get("last_loss")
    first = first if _finite(first) else None
    last = last if _finite(last) else None
    return {**fig, "first": first, "last": last,
            "decreased": None if first is None or last is None else last < first}


def _train_phases(entries: list[Entry], names: dict[str, str] = TRAIN_PHASES) -> list[dict[str, Any]]:
    """Each phase's median seconds and its share of the step (recorded from means, so the shares add up),
    in the order a step runs them (the order of `names`, which also gives each phase its name on the page)."""
    order = list(names)
    rows = []
    for entry in entries:
        r = entry.record
        p = _as_dict(r.params)
        phase = _text_param(p, "phase") or str(r.case)
        share = p.get("share_of_step")
        fig = _train_fig([entry], MS_PER_S)
        rows.append({"phase": phase, "name": names.get(phase, phase), "fig": fig,
                     "share_pct": share * 100 if _finite(share) and r.status == "ok" else None})
    rows.sort(key=lambda row: (order.index(row["phase"]) if row["phase"] in order else len(order), row["phase"]))
    for index, row in enumerate(rows):
        row["slot"] = index % len(names)  # the colour of its part of the stacked bar
    return rows


def _share_sum(phases: list[dict[str, Any]]) -> dict[str, Any] | None:
    shares = [row["share_pct"] for row in phases if row["share_pct"] is not None]
    if not shares:
        return None
    total = sum(shares)
    return {"pct": total, "gap": abs(total - 100.0) > TRAIN_SHARE_GAP_PCT,
            "rest_pct": max(100.0 - total, 0.0)}


def _train_chart(case: str, phases: list[dict[str, Any]], source: str, rank: int | None) -> charts.Chart | None:
    bars = [charts.Bar(label=row["name"], value=row["share_pct"],
                       note=f"{format_number(row['fig']['value'])} ms" if row["fig"]["ok"] else "")
            for row in phases if row["share_pct"] is not None]
    if not bars:
        return None
    name = f"{case}" + (f", rank {rank}" if rank is not None else "") + (f", {source}" if source else "")
    alt = (f"Bar chart of where a training step of {case} goes: each phase's share of the "
           f"step ({', '.join(f'{b.label} {b.value:.0f}%' for b in bars)}). The table beside it holds the "
           "same figures.")
    return charts.bar_chart([charts.BarGroup(name=name, bars=bars)], title="Step-time breakdown (% of the step)",
                            xlabel="% of the step time", alt=alt)


def _train_aggregate(entries: list[Entry]) -> dict[str, Any] | None:
    """All ranks' items per second over the slowest rank's step time, with every rank's own figure."""
    if not entries:
        return None
    entry = sorted(entries, key=lambda e: e.record.rank)[0]
    r = entry.record
    p = _as_dict(r.params)
    fig = _train_fig([entry])
    per_rank = [v for v in p.get("per_rank") or [] if _finite(v)] if isinstance(p.get("per_rank"), list) else []
    slowest = _int_param(p, "slowest_rank")
    if (slowest is None or not 0 <= slowest < len(per_rank)) and per_rank:
        slowest = min(range(len(per_rank)), key=per_rank.__getitem__)
    ranks = _int_param(p, "ranks") or (len(per_rank) or None)
    return {**fig, "ranks": ranks, "slowest_rank": slowest if fig["ok"] else None,
            "per_rank": ", ".join(f"rank {i}: {format_number(v)}" for i, v in enumerate(per_rank)) if fig["ok"] else "",
            "spread_pct": (100.0 * (max(per_rank) - min(per_rank)) / max(per_rank)
                           if per_rank and max(per_rank) > 0 else None),
            "scaling_pct": (100.0 * r.value / (ranks * statistics.median(per_rank))
                            if fig["ok"] and per_rank and ranks and _finite(r.value) and statistics.median(per_rank) > 0
                            else None)}


def _train_rank_rows(by_rank: dict[int, dict[str, list[Entry]]], aggregates: list[Entry]) -> list[dict[str, Any]]:
    """Every rank's step time, throughput, MFU, memory and last loss; the slowest rank named."""
    rows = []
    for rank, metrics in sorted(by_rank.items()):
        first = next(iter(metrics.values()))[0]
        loss = _train_loss(_train_fig(metrics.get("loss", [])))
        rows.append({"rank": rank, "host": first.record.host or "", "device": first.record.device or "",
                     "step": _train_fig(metrics.get("step_time", []), MS_PER_S),
                     "throughput": _train_fig(metrics.get("throughput", [])),
                     "mfu": _train_fig(metrics.get("mfu", [])),
                     "memory": _train_fig(metrics.get("peak_memory", [])),
                     "exposed": _train_exposed(metrics.get("exposed_comm", [])),
                     "loss": loss, "slowest": False, "behind_pct": None})
    slowest = None
    if aggregates:
        p = _as_dict(sorted(aggregates, key=lambda e: e.record.rank)[0].record.params)
        slowest = _int_param(p, "slowest_rank")
    timed = [row for row in rows if row["step"] and row["step"]["ok"]]
    if slowest is None and len(timed) > 1:
        slowest = max(timed, key=lambda row: row["step"]["value"])["rank"]
    for row in rows:
        row["slowest"] = row["rank"] == slowest and len(rows) > 1
    if timed:
        fastest = min(row["step"]["value"] for row in timed)
        for row in timed:
            row["behind_pct"] = 100.0 * (row["step"]["value"] - fastest) / fastest if fastest > 0 else None
    return rows


# Weak scaling: `ai-ready train --scaling 1,2,4` writes one "<arch>-<preset>-scaling" record per rank count.

TRAIN_SCALING_METRIC = "scaling_efficiency"
TRAIN_SCALING_SUFFIX = "-scaling"
#: Below this efficiency a rank count is flagged (as `ai-ready train --scaling` does).
TRAIN_SCALING_FLAG_PCT = 80.0


def _train_is_scaling(record: Record) -> bool:
    return record.metric == TRAIN_SCALING_METRIC or str(record.case).endswith(TRAIN_SCALING_SUFFIX)


def _train_scaling_blocks(entries: list[Entry], labels: list[str], several_documents: bool) -> list[dict[str, Any]]:
    """One block per document × model × parallelism: a row per rank count, the efficiency and the total
    throughput against the rank count."""
    groups: dict[tuple[int, str, str], list[Entry]] = {}
    for entry in entries:
        r = entry.record
        p = _as_dict(r.params)
        arch, preset = _text_param(p, "arch"), _text_param(p, "preset")
        model = f"{arch}-{preset}" if arch and preset else str(r.case).removesuffix(TRAIN_SCALING_SUFFIX)
        groups.setdefault((entry.document, model, _text_param(p, "parallel") or "none"), []).append(entry)
    blocks = []
    for (document, model, parallel), members in sorted(groups.items()):
        source = labels[document] if several_documents else ""
        rows = _train_scaling_rows(members)
        item = next((row["item"] for row in rows if row["item"]), "")
        unit = f"{item}/s" if item else "items/s"
        blocks.append({"model": model, "parallel": parallel, "source": source, "unit": unit, "rows": rows,
                       "cases": ", ".join(dict.fromkeys(str(e.record.case) for e in members)),
                       "low": [row["ranks"] for row in rows if row["low"]],
                       "charts": _train_scaling_charts(model, parallel, source, unit, rows)})
    return blocks


def _train_scaling_rows(entries: list[Entry]) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        r = entry.record
        p = _as_dict(r.params)
        ranks = _int_param(p, "ranks") or _int_param(p, "world_size")
        ok = r.status == "ok"
        total = p.get("throughput") if ok and _finite(p.get("throughput")) else None
        one = p.get("throughput_1") if _finite(p.get("throughput_1")) else None
        efficiency = r.value if ok and _finite(r.value) else None
        if ok and efficiency is None and total is not None and one and ranks:
            efficiency = 100.0 * total / (ranks * one)
        rows.append({"ranks": ranks, "ok": ok, "status": r.status,
                     "reason": str(r.reason or "no reason recorded") if not ok else "",
                     "total": total, "per_rank": total / ranks if total is not None and ranks else None,
                     "one": one, "efficiency": efficiency,
                     "low": efficiency is not None and efficiency < TRAIN_SCALING_FLAG_PCT,
                     "item": _text_param(p, "item"), "where": entry.where,
                     "warnings": [str(w) for w in r.warnings or []]})
    rows.sort(key=lambda row: (row["ranks"] is None, row["ranks"] or 0))
    return rows


def _train_scaling_charts(model: str, parallel: str, source: str, unit: str,
                          rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Efficiency (%) against ranks with the ideal 100% dashed, and total throughput against ranks beside the
    ideal (k × the 1-rank throughput); rank counts on a log2 axis when they are all powers of two."""
    ranked = [row for row in rows if row["ranks"]]
    eff = [(float(row["ranks"]), float(row["efficiency"])) for row in ranked if row["efficiency"] is not None]
    tput = [(float(row["ranks"]), float(row["total"])) for row in ranked if row["total"] is not None]
    if not eff and not tput:
        return []
    counts = sorted({row["ranks"] for row in ranked})
    log2 = len(counts) > 1 and all(k > 0 and k & (k - 1) == 0 for k in counts)
    name = f"{model}, {parallel}" + (f", {source}" if source else "")
    axis = dict(x_log2=log2, x_tick_format=(lambda v: f"{v:g}") if log2 else None, y_log=False)
    out = []
    if eff:
        alt = (f"Line chart of the weak-scaling efficiency of {name} against the number of ranks "
               f"({', '.join(f'{x:g} ranks {y:.0f}%' for x, y in eff)}); a dashed line marks the ideal 100%. "
               "The table beside it holds the same figures.")
        chart = charts.line_chart([charts.Line(label=name, points=eff, color_key=model)],
                                  title="Weak-scaling efficiency (%)", xlabel="ranks",
                                  ylabel="efficiency %", alt=alt, ceilings=[(100.0, "ideal")], **axis)
        out.append({"chart": chart, "caption": "Efficiency against the number of ranks; the dashed line is the "
                                               "ideal 100%."})
    if tput:
        lines = [charts.Line(label=f"measured, {name}", points=tput, color_key="measured")]
        one = next((row["one"] for row in ranked if row["one"]), None)
        if one:
            lines.append(charts.Line(label="ideal: ranks × 1-rank throughput",
                                     points=[(float(k), k * one) for k in counts], color_key="ideal", dashed=True))
        alt = (f"Line chart of the total throughput of {name} in {unit} against the number of ranks "
               f"({', '.join(f'{x:g} ranks {format_number(y)}' for x, y in tput)})"
               + ("; a dashed line shows ideal scaling" if one else "") + ". The table beside it holds the same figures.")
        chart = charts.line_chart(lines, title=f"Total throughput ({unit})", xlabel="ranks",
                                  ylabel=f"total {unit}", alt=alt, **axis)
        out.append({"chart": chart, "caption": "Total throughput against the number of ranks"
                                               + ("; dashed: ideal scaling (ranks × the 1-rank throughput)."
                                                  if one else ".")})
    return out


def _train_problem(entry: Entry, several: bool) -> dict[str, Any]:
    r = entry.record
    p = _as_dict(r.params)
    what = str(r.metric) + (f" ({p['phase']})" if p.get("phase") else "")
    return {"metric": what, "status": r.status, "reason": str(r.reason or "no reason recorded"),
            "where": entry.where if several else "", "case": str(r.case)}


# --------------------------------------------------------------------------- a user's job, profiled

PROFILE_BENCHMARK = "profile"
#: meta.kind of a document `ai-ready profile` wrote: such a document shows its job even when nothing was timed.
PROFILE_KIND = "profile"
#: The parts of a profiled step, in the order they run, with the name the page gives each.
PROFILE_PHASES = {"data": "data wait", "forward": "forward", "backward": "backward", "optimizer": "optimizer step",
                  "checkpoint": "checkpoint I/O", "comm": "communication (outside backward)",
                  "sync": "host–device sync", "other": "other (the rest of the step)"}
#: The metrics a job's block shows; an ok record of another metric is listed under "Other profile records".
PROFILE_METRICS = ("step_time", "phase_time", "throughput", "model_flops", "model_tflops", "mfu", "peak_memory",
                   "exposed_comm", "checkpoint_write")
#: Each status a profile may end with: how loudly it is flagged (ok, warn, bad) and what it means for the figures.
PROFILE_STATUSES: dict[str, tuple[str, str]] = {
    "complete": ("ok", "every rank measured the requested warm-up and timed steps"),
    "timeout": ("warn", "the job was stopped at the time limit; the figures cover only the steps measured before"),
    "incomplete": ("warn", "the job ended before every requested step was measured; the figures cover the steps "
                           "it took"),
    "no_steps": ("bad", "no training step was found, so nothing could be timed"),
    "failed": ("bad", "the job failed before its profile was complete; any figures are what was measured before "
                      "the failure"),
}
#: Who ended the job (meta.profile.stopped_by), in words; a job that ended by itself has none.
PROFILE_STOPPED_BY = {"profile complete": "ai-ready stopped it once the profile was complete",
                      "timeout": "ai-ready stopped it at the time limit (timeout_s)"}
#: How a rank may have found its steps (step_source); "cycle" is the fallback the page flags.
PROFILE_STEP_SOURCES = ("optimizer", "explicit", "cycle")
PROFILE_FALLBACK_SOURCE = "cycle"
#: At most this many ranks (the lowest) get a line in the step-time chart; the per-rank table lists them all.
PROFILE_CHART_MAX_RANKS = 8
#: At most this many of the job's marks are listed; the rest are counted.
PROFILE_MAX_MARKS = 50
#: The target model's sizes, in the order and with the names the page gives them.
TARGET_MODEL_SIZES = {"layers": "layers", "hidden": "hidden size", "heads": "attention heads",
                      "kv_heads": "key/value heads", "ffn_hidden": "feed-forward hidden size",
                      "seq_len": "sequence length", "vocab": "vocabulary", "experts": "experts",
                      "top_k": "experts per token (top-k)"}


def build_profile(data: ReportData) -> dict[str, Any] | None:
    """One block per profiled job (a document of `ai-ready profile`): whether the profile is complete and, if not,
    why (exit code, who stopped the job, its stderr tail); what ran; the lowest rank's step time, throughput, model
    FLOPs, TFLOP/s and MFU beside the peak and its source, memory, exposed communication and checkpoint writes;
    where a step's time goes; every timed step; every rank; what the job uses; and the target it is meant for.
    A failed profile without records still gets its block: the status is what the reader needs most."""
    entries = data.entries_for(PROFILE_BENCHMARK)
    documents = sorted({e.document for e in entries}
                       | {i for i, doc in enumerate(data.documents) if _is_profile_document(doc)})
    if not documents:
        return None
    several = len(documents) > 1
    blocks, extras = [], []
    for index in documents:
        block = _profile_block(data.documents[index], [e for e in entries if e.document == index],
                               data.labels[index] if several else "")
        extras += block.pop("extras")
        blocks.append(block)
    return {"blocks": blocks, "extras": [_other_row(e) for e in extras],
            "references": _references(e.record for e in entries),
            "cv_threshold_pct": CV_WARN_THRESHOLD * 100, "share_gap_pct": TRAIN_SHARE_GAP_PCT}


def _is_profile_document(doc: ResultDocument) -> bool:
    return _as_dict(doc.meta).get("kind") == PROFILE_KIND


def _profile_block(doc: ResultDocument, entries: list[Entry], source: str) -> dict[str, Any]:
    meta = _as_dict(_as_dict(doc.meta).get("profile"))
    job = _profile_job(meta)
    case, mine, extras = _profile_case(job["name"], entries)
    aggregates = [e for e in mine if _train_is_aggregate(e.record)]
    by_rank, others, problems = _split_by_rank([e for e in mine if not _train_is_aggregate(e.record)],
                                               PROFILE_METRICS)
    problems += [e for e in aggregates if e.record.status != "ok"]
    rank_meta = _profile_rank_meta(meta)
    ranks = sorted(by_rank)
    main = by_rank[ranks[0]] if ranks else {}
    main_meta = rank_meta.get(ranks[0]) if ranks and ranks[0] in rank_meta else next(iter(rank_meta.values()), {})
    several = len(set(ranks) | set(rank_meta)) > 1
    main_rank = ranks[0] if ranks and several else None
    figures = _profile_figures(main)
    phases = _train_phases(main.get("phase_time", []), PROFILE_PHASES)
    records = [e.record for e in mine]
    return {
        "case": case, "source": source, "status": _profile_status(meta), "job": job,
        "hosts": _coll_hosts(records) or ", ".join(dict.fromkeys(
            _text_param(r, "host") for r in rank_meta.values() if _text_param(r, "host"))),
        "devices": ", ".join(dict.fromkeys([r.device for r in records if r.device] + [
            _text_param(r, "device_name") for r in rank_meta.values() if _text_param(r, "device_name")])),
        "main_rank": main_rank, "timed": bool(main), **figures,
        "aggregate": _profile_aggregate(aggregates),
        "phases": phases, "share_sum": _share_sum(phases),
        "chart": _train_chart(case, phases, source, main_rank),
        "steps_chart": _profile_steps_chart(case, by_rank, source),
        "per_rank": _profile_rank_rows(by_rank, aggregates, rank_meta) if several else [],
        "uses": _profile_uses(main_meta, main, figures["precision"]),
        "target": _profile_target(meta.get("target")),
        "problems": [_train_problem(e, several) for e in problems],
        "extras": extras + others,
    }


def _profile_case(name: str, entries: list[Entry]) -> tuple[str, list[Entry], list[Entry]]:
    """The job's records (case = the job's name, its aggregate "<name>-aggregate") and any others in the document,
    which are listed rather than dropped. Without a recorded name, the first case is the job's."""
    cases = list(dict.fromkeys(_train_run_case(e.record) for e in entries))
    case = name if name in cases or not cases else cases[0]
    mine = [e for e in entries if _train_run_case(e.record) == case]
    return case or "unnamed job", mine, [e for e in entries if _train_run_case(e.record) != case]


def _profile_rank_meta(meta: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """What each rank told about itself (meta.profile.ranks), by rank, lowest first."""
    ranks = meta.get("ranks")
    out: dict[int, dict[str, Any]] = {}
    for index, rank in enumerate(ranks if isinstance(ranks, list) else []):
        if isinstance(rank, dict):
            number = _int_param(rank, "rank")
            out.setdefault(number if number is not None else index, rank)
    return dict(sorted(out.items()))


def _profile_status(meta: dict[str, Any]) -> dict[str, Any]:
    """The profile's verdict: a complete profile in one line, anything else flagged with why, the exit code,
    who stopped the job and the end of its stderr."""
    if not meta:
        return {"status": "not recorded", "level": "warn", "complete": False, "no_steps": False,
                "meaning": "the document holds profile records but no description of the job (meta.profile), so "
                           "whether the profile is complete is unknown",
                "reason": "", "exit_code": None, "stopped_by": "", "stderr_tail": ""}
    status = _text_param(meta, "status") or "not recorded"
    level, meaning = PROFILE_STATUSES.get(status, ("warn", "a status this report does not know; treat the figures "
                                                           "with care"))
    stopped = _text_param(meta, "stopped_by")
    return {"status": status, "level": level, "complete": status == "complete", "no_steps": status == "no_steps",
            "meaning": meaning, "reason": _text_param(meta, "reason"), "exit_code": _int_param(meta, "exit_code"),
            "stopped_by": PROFILE_STOPPED_BY.get(stopped, f"stopped by {stopped}") if stopped else
                          "the job ended by itself",
            "stderr_tail": str(meta.get("stderr_tail") or "")}


def _argv_text(argv: Any) -> str:
    if isinstance(argv, (list, tuple)):
        return shlex.join(str(a) for a in argv)
    return "" if argv is None else str(argv)


def _profile_job(meta: dict[str, Any]) -> dict[str, Any]:
    """What ran, how it was launched, the environment it was given and how much of it was measured."""
    job, settings = _as_dict(meta.get("job")), _as_dict(meta.get("settings"))
    launcher = _text_param(job, "launcher") or "none"
    nproc = _int_param(job, "nproc")
    command, argv = _argv_text(job.get("command")), _argv_text(job.get("argv"))
    launch = ("one process, no launcher" if launcher == "none" and (nproc or 1) == 1 else
              f"{launcher} × {nproc if nproc is not None else '?'} process{'es' if nproc != 1 else ''}")
    timeout, duration = settings.get("timeout_s"), meta.get("duration_s")
    return {"recorded": bool(job), "name": _text_param(job, "name"), "command": command,
            "argv": argv if argv != command else "", "directory": _text_param(job, "directory"),
            "spec": _text_param(job, "source"), "launch": launch,
            "env": [(str(k), _plain(v)) for k, v in _as_dict(job.get("env")).items()],
            "warmup": _int_param(settings, "warmup_steps"), "steps": _int_param(settings, "steps"),
            "timeout_s": timeout if _finite(timeout) else None, "trace": settings.get("trace") is True,
            "duration_s": duration if _finite(duration) else None}


def _profile_figures(main: dict[str, list[Entry]]) -> dict[str, Any]:
    """The training section's figures of the main rank, plus what a profile adds: where the FLOPs come from, what
    peak memory measures, how exposed communication is defined and the checkpoint writes."""
    figures = _train_figures(main)
    step, flops, memory = figures["step"], figures["flops"], figures["memory"]
    figures["precision"] = _text_param(step["params"], "precision") if step else ""
    no_flops = ""
    if flops is not None:
        flops["source"] = _text_param(flops["params"], "source")
        if not flops["ok"]:
            no_flops = "no model FLOPs per step (see above)"
    figures["tflops_missing"] = no_flops
    if no_flops and figures["mfu"] is None:
        figures["mfu_missing"] = no_flops
    figures["memory_kind"] = (_text_param(memory["params"], "kind") if memory else "") or figures["memory_kind"]
    if figures["throughput"]:
        p = figures["throughput"]["params"]
        per_step = p.get("per_step")
        figures["throughput"]["per_step"] = (f"{format_number(per_step)} {_text_param(p, 'item') or 'items'} per step"
                                             if _finite(per_step) else "")
    if figures["exposed"]:
        figures["exposed"]["definition"] = _text_param(figures["exposed"]["params"], "definition")
    figures["checkpoint"] = _profile_checkpoint(main.get("checkpoint_write", []))
    return figures


def _profile_checkpoint(entries: list[Entry]) -> dict[str, Any] | None:
    fig = _train_fig(entries)
    if fig is None:
        return None
    p = fig["params"]
    seconds = p.get("seconds")
    return {**fig, "saves": _int_param(p, "saves"), "bytes": format_bytes(p.get("bytes")),
            "ms": seconds * MS_PER_S if _finite(seconds) else None}


def _profile_aggregate(entries: list[Entry]) -> dict[str, Any] | None:
    """The training section's aggregate, with the spread and per-rank step times a profile stores instead of
    every rank's throughput."""
    aggregate = _train_aggregate(entries)
    if aggregate is None:
        return None
    p = aggregate["params"]
    if aggregate["spread_pct"] is None and _finite(p.get("rank_spread_pct")):
        aggregate["spread_pct"] = float(p["rank_spread_pct"])
    times = sorted(((str(rank), seconds) for rank, seconds in _as_dict(p.get("step_time_per_rank")).items()
                    if _finite(seconds)), key=lambda item: (not item[0].isdigit(), int(item[0]) if item[0].isdigit()
                                                            else 0, item[0]))
    aggregate["step_times"] = (", ".join(f"rank {rank}: {format_number(s * MS_PER_S)} ms" for rank, s in times)
                               if aggregate["ok"] else "")
    return aggregate


def _profile_rank_rows(by_rank: dict[int, dict[str, list[Entry]]], aggregates: list[Entry],
                       rank_meta: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The training section's per-rank rows, with each rank's own status; a rank that timed no step still has
    its row."""
    rows = _train_rank_rows(by_rank, aggregates)
    for rank in rank_meta.keys() - {row["rank"] for row in rows}:
        rows.append({"rank": rank, "host": "", "device": "", "step": None, "throughput": None, "mfu": None,
                     "memory": None, "exposed": None, "loss": None, "slowest": False, "behind_pct": None})
    for row in rows:
        meta = rank_meta.get(row["rank"], {})
        row["host"] = row["host"] or _text_param(meta, "host")
        row["device"] = row["device"] or _text_param(meta, "device_name")
        row["status"] = _text_param(meta, "status")
        row["timed_steps"] = _int_param(meta, "timed_steps")
    return sorted(rows, key=lambda row: row["rank"])


def _profile_steps_chart(case: str, by_rank: dict[int, dict[str, list[Entry]]], source: str) -> dict[str, Any] | None:
    """Every timed step's time (the step_time record's samples), one line per rank, the main rank's median
    dashed: whether the steps are steady, drift or spike."""
    series = []
    for rank, metrics in sorted(by_rank.items()):
        record = next((e.record for e in metrics.get("step_time", []) if e.record.status == "ok"), None)
        raw = record.samples if record is not None and isinstance(record.samples, list) else []
        samples = [float(s) * MS_PER_S for s in raw if _finite(s)]
        if samples:
            series.append((rank, samples))
    if not series:
        return None
    shown = series[:PROFILE_CHART_MAX_RANKS]
    several = len(series) > 1
    lines = [charts.Line(label=f"rank {rank}" if several else "each timed step",
                         points=[(float(i), s) for i, s in enumerate(samples, 1)], color_key=f"rank {rank}")
             for rank, samples in shown]
    rank, samples = series[0]
    median = statistics.median(samples)
    lines.append(charts.Line(label=f"median{f' of rank {rank}' if several else ''}: {format_number(median)} ms",
                             points=[(1.0, median), (float(len(samples)), median)], color_key="median", dashed=True))
    name = case + (f", {source}" if source else "")
    alt = (f"Line chart of the time of each timed step of {name} in milliseconds: {len(samples)} steps"
           + (f" of rank {rank}" if several else "")
           + f", median {format_number(median)} ms, from {format_number(min(samples))} to "
             f"{format_number(max(samples))} ms"
           + (f"; one line per rank for the lowest {len(shown)} of {len(series)} ranks" if several else "")
           + ". Warm-up steps are not shown; the summary table holds the same statistics.")
    chart = charts.line_chart(lines, title="Time of each timed step (ms)", xlabel="timed step",
                              ylabel="step time ms", alt=alt, y_log=False)
    return {"chart": chart, "steps": len(samples), "ranks": len(shown), "left_out": len(series) - len(shown)}


def _yes_no(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else "not recorded"


def _profile_uses(rank: dict[str, Any], main: dict[str, list[Entry]], precision: str) -> dict[str, Any]:
    """What the job is and does, as its main rank saw it: features, how steps were found, the model, the
    collectives it called, its checkpoint I/O, its marks and the trace file."""
    step = next((e.record for e in main.get("step_time", [])), None)
    source = _text_param(rank, "step_source") or (_text_param(_as_dict(step.params), "step_source") if step else "")
    io = _as_dict(rank.get("checkpoint_io"))
    return {
        "recorded": bool(rank), "rank": _int_param(rank, "rank"),
        "features": _profile_features(_as_dict(rank.get("features")), io, precision),
        "step_source": source, "fallback": source == PROFILE_FALLBACK_SOURCE,
        "known_source": source in PROFILE_STEP_SOURCES,
        "counts": [(label, _int_param(rank, key)) for key, label in (
            ("optimizer_steps", "optimizer steps"), ("forward_calls", "forward passes"),
            ("backward_calls", "backward passes"), ("steps_recorded", "steps recorded"),
            ("timed_steps", "timed steps")) if _int_param(rank, key) is not None],
        "model": _profile_model(_as_dict(rank.get("model"))),
        "transformer": _profile_transformer(_as_dict(rank.get("model")).get("transformer"), rank.get("seq_len")),
        "collectives": _profile_collectives(rank.get("collectives")),
        "checkpoint_io": _profile_checkpoint_io(io),
        **_profile_marks(rank.get("marks")),
        "trace_file": _text_param(rank, "trace_file"),
    }


def _profile_features(features: dict[str, Any], io: dict[str, Any], precision: str) -> list[dict[str, Any]]:
    """The training features the hooks saw, each as a line a reader can act on."""
    autocast = features.get("autocast")
    casts = []
    for entry in autocast if isinstance(autocast, list) else []:
        device, sep, dtype = str(entry).partition(":")
        casts.append(f"{dtype} on {device}" if sep else str(entry))
    mixed = f"autocast to {', '.join(casts)}" if casts else "no autocast"
    if precision:
        mixed += f"; MFU uses the {precision} peak"
    ddp, fsdp = features.get("ddp") is True, features.get("fsdp") is True
    parallel = " and ".join(name for name, used in (("DDP", ddp), ("FSDP", fsdp)) if used) or \
        "none seen (no DistributedDataParallel or FSDP wrapper)"
    accumulation = _int_param(features, "grad_accumulation")
    compiled = features.get("compile") is True
    saves = _as_dict(io.get("save"))
    checkpointing = _yes_no(features.get("checkpointing"))
    if features.get("checkpointing") is True and _int_param(saves, "count"):
        checkpointing += f": torch.save called {saves['count']} times, {format_bytes(saves.get('bytes'))} in all"
    return [
        {"name": "Mixed precision", "value": mixed},
        {"name": "Loss scaling (GradScaler)", "value": _yes_no(features.get("grad_scaler"))},
        {"name": "torch.compile", "value": _yes_no(features.get("compile")) + (
            ": FlopCounterMode cannot see inside compiled graphs" if compiled else "")},
        {"name": "Data parallelism", "value": parallel},
        {"name": "Activation checkpointing", "value": _yes_no(features.get("activation_checkpointing"))},
        {"name": "Gradient accumulation", "value": (
            "not recorded" if accumulation is None else
            "none: one backward pass per optimizer step" if accumulation <= 1 else
            f"{accumulation} backward passes per optimizer step")},
        {"name": "DataLoader", "value": _profile_dataloader(features.get("dataloader"))},
        {"name": "Checkpointing", "value": checkpointing},
    ]


def _profile_dataloader(value: Any) -> str:
    loader = _as_dict(value)
    if not loader:
        return "not seen: the batches do not come from a torch.utils.data.DataLoader"
    workers, batch = _int_param(loader, "workers"), _int_param(loader, "batch_size")
    parts = [f"{workers if workers is not None else '?'} workers"
             + (" (batches are loaded in the training process)" if workers == 0 else ""),
             f"pinned memory {_yes_no(loader.get('pin_memory'))}"]
    if batch is not None:
        parts.append(f"batch size {batch}")
    if loader.get("persistent_workers") is True:
        parts.append("persistent workers")
    return ", ".join(parts)


def _profile_model(model: dict[str, Any]) -> dict[str, Any] | None:
    if not model:
        return None
    parameters, trainable = _int_param(model, "parameters"), _int_param(model, "trainable")
    matmul = _int_param(model, "matmul_parameters")
    dtypes = _as_dict(model.get("dtypes"))
    return {"class": _text_param(model, "class") or MISSING, "wrapper": _text_param(model, "wrapper"),
            "parameters_short": _si_count(parameters),
            "parameters": f"{parameters:,}" if parameters is not None else None,
            "trainable": f"{trainable:,}" if trainable is not None else None,
            "matmul": f"{matmul:,}" if matmul is not None else None,
            "dtypes": ", ".join(f"{name} ({_plain(count)} tensors)" for name, count in dtypes.items())}


def _profile_transformer(shape: Any, seq_len: Any) -> list[tuple[str, str]]:
    """The transformer shape the hooks recognised (empty when none was), with the sequence length seen."""
    shape = _as_dict(shape)
    if not shape:
        return []
    rows = [(label, shape.get(key)) for key, label in (("layers", "layers"), ("hidden", "hidden size"),
                                                       ("heads", "attention heads"), ("vocab", "vocabulary"),
                                                       ("block", "block"))]
    rows.append(("sequence length", seq_len))
    return [(label, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else _plain(value))
            for label, value in rows if value not in (None, "")]


def _profile_collectives(value: Any) -> list[dict[str, Any]]:
    rows = []
    for op, counts in _as_dict(value).items():
        c = _as_dict(counts)
        seconds = c.get("seconds")
        rows.append({"op": str(op), "count": _int_param(c, "count"), "bytes": format_bytes(c.get("bytes")),
                     "ms": seconds * MS_PER_S if _finite(seconds) else None})
    return sorted(rows, key=lambda row: _op_sort(row["op"]))


def _profile_checkpoint_io(io: dict[str, Any]) -> list[dict[str, Any]]:
    """torch.save and torch.load during the profile, when the job called them."""
    rows = []
    for kind, name in (("save", "torch.save"), ("load", "torch.load")):
        c = _as_dict(io.get(kind))
        count, seconds, size = _int_param(c, "count"), c.get("seconds"), c.get("bytes")
        if count:
            rows.append({"kind": name, "count": count, "bytes": format_bytes(size),
                         "ms": seconds * MS_PER_S if _finite(seconds) else None,
                         "gbs": size / seconds / 1e9 if _finite(size) and _finite(seconds) and seconds > 0 else None})
    return rows


def _profile_marks(value: Any) -> dict[str, Any]:
    marks = [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []
    rows = [{"name": str(m.get("name") if m.get("name") is not None else ""), "step": _int_param(m, "step"),
             "t_s": m.get("t_s") if _finite(m.get("t_s")) else None} for m in marks[:PROFILE_MAX_MARKS]]
    return {"marks": rows, "marks_left_out": max(len(marks) - PROFILE_MAX_MARKS, 0)}


def _profile_target(value: Any) -> dict[str, Any] | None:
    """What the user means to train at scale: the model, the token budget and the systems to extrapolate to."""
    target = _as_dict(value)
    if not target:
        return None
    model = _as_dict(target.get("model"))
    sizes = [(label, f"{model[key]:,}" if isinstance(model[key], int) and not isinstance(model[key], bool)
              else _plain(model[key])) for key, label in TARGET_MODEL_SIZES.items() if model.get(key) is not None]
    sizes += [(str(k), _plain(v)) for k, v in model.items()
              if k not in TARGET_MODEL_SIZES and k != "kind" and v is not None]
    tokens, systems = target.get("tokens"), target.get("systems")
    return {"kind": _text_param(model, "kind"), "sizes": sizes,
            "tokens": f"{tokens:,.0f}" if _finite(tokens) else None, "tokens_short": _si_count(tokens),
            "systems": [str(s) for s in systems] if isinstance(systems, list) else []}


# --------------------------------------------------------------------------- records no section claims

def build_other(data: ReportData) -> dict[str, Any] | None:
    """Records of benchmarks no section presents yet, so an unknown benchmark is listed, never dropped."""
    claimed = {b for s in SECTIONS for b in s.benchmarks}
    rows = [_other_row(e) for e in data.entries if e.record.benchmark not in claimed]
    return {"rows": rows} if rows else None


def _other_row(entry: Entry) -> dict[str, Any]:
    r = entry.record
    return {"benchmark": r.benchmark, "case": r.case, "metric": r.metric, "unit": r.unit, "status": r.status,
            "value": r.value if r.status == "ok" else None, "reason": r.reason or "", "where": entry.where,
            "source": entry.source}


#: The report, in page order. A new section: a template in templates/sections/, a builder, one line here.
SECTIONS: list[Section] = [
    Section("overview", "Run notes", build_overview),
    Section("environment", "Environment", build_environment),
    Section("gemm", "GEMM throughput", build_gemm, benchmarks=(GEMM_BENCHMARK,)),
    Section("collectives", "Collective communication", build_collectives, benchmarks=(COLLECTIVES_BENCHMARK,)),
    Section("memory", "Memory bandwidth and kernels", build_memory, benchmarks=MEMORY_BENCHMARKS),
    Section("io", "I/O and data loading", build_io, benchmarks=(IO_BENCHMARK,)),
    Section("profile", "Your job, profiled", build_profile, benchmarks=(PROFILE_BENCHMARK,)),
    Section("train", "Training workloads", build_train, benchmarks=(TRAIN_BENCHMARK,)),
    Section("other", "Other records", build_other),
]
