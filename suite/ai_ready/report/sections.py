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
    seen: dict[str, dict[str, str]] = {}
    for record in records:
        for ref in _as_dict(record.ceiling).get("references") or []:
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
    Section("other", "Other records", build_other),
]
