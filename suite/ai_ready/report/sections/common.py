"""What every section shares: the registry's types, the number formats (also the
templates' filters) and the small readers of a record's params, ceiling, check
and spread. They live apart from the sections so each section imports them
from one place instead of from whichever section happened to define them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.records import Record, ResultDocument


#: Shown wherever a figure is missing or deliberately withheld.
MISSING = "—"


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
    """A registered section: where it renders, what builds its data, which benchmarks it presents,
    and which part of the page (:data:`PARTS`) it belongs to."""

    key: str
    title: str
    build: Builder
    benchmarks: tuple[str, ...] = ()
    part: str = "appendix"

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
    part: str = "appendix"


#: The page's parts, in order: (key, title, what it needs when it is empty). The order is the order a
#: consultant walks a user through: verdict first, evidence next, sources and raw data last.
PARTS: tuple[tuple[str, str, str], ...] = (
    ("summary", "Summary", "any input"),
    ("system", "This system, measured", "benchmark or training results (`ai-ready bench ...`, `ai-ready train ...`)"),
    ("job", "Your job, profiled", "a profile (`ai-ready profile DIR`)"),
    ("outlook", "Scaling outlook", "a profile with target systems, or an extrapolation (`ai-ready extrapolate ... -o FILE.json`)"),
    ("recommendations", "Recommendations", "a profile, benchmark results or an extrapolation"),
    ("sources", "Assumptions and sources", "figures with ceilings or an extrapolation"),
    ("appendix", "Appendix", "any input"),
)


# --------------------------------------------------------------------------- reading records

def _cv(record: Record) -> float | None:
    cv = _as_dict(record.stats).get("cv")
    return float(cv) if _finite(cv) or cv == math.inf else None


def _is_noisy(record: Record) -> bool:
    cv = _cv(record)
    return record.status == "ok" and cv is not None and cv > CV_WARN_THRESHOLD


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


def _ceiling(record: Record) -> dict[str, Any] | None:
    c = _as_dict(record.ceiling)
    if not _finite(c.get("value")):
        return None
    return {"value": c["value"], "unit": str(c.get("unit") or record.unit), "kind": str(c.get("kind") or MISSING),
            "label": str(c.get("label") or ""), "source": str(c.get("source") or "source not recorded")}


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


def _text_param(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    return "" if value is None or value == "" else str(value)


def _coll_hosts(records: list[Record]) -> str:
    hosts: dict[str, None] = {}
    for record in records:
        per_rank = _as_dict(record.timing).get("per_rank")
        named = [_as_dict(r).get("host") for r in per_rank] if isinstance(per_rank, list) else []
        hosts.update((str(h), None) for h in [record.host, *named] if h)
    shown = ", ".join(sorted(hosts)[:MAX_HOSTS_LISTED])
    more = len(hosts) - MAX_HOSTS_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _other_row(entry: Entry) -> dict[str, Any]:
    r = entry.record
    return {"benchmark": r.benchmark, "case": r.case, "metric": r.metric, "unit": r.unit, "status": r.status,
            "value": r.value if r.status == "ok" else None, "reason": r.reason or "", "where": entry.where,
            "source": entry.source}
