"""Run notes: always shown, so the reader learns what was read, whether it is
complete, and what failed, warned or was too noisy before reading any figure.
"""

from __future__ import annotations

import shlex
from typing import Any

from ai_ready.measure.stats import CV_WARN_THRESHOLD
from ai_ready.records import ResultDocument
from ai_ready.report.inputs import incomplete_meaning, incomplete_status
from ai_ready.report.sections.common import MISSING, Entry, ReportData, _as_dict, _cv, _is_noisy, _plain


def build_overview(data: ReportData) -> dict[str, Any]:
    """Always present: says what was read, whether it is complete, and what went wrong or is noisy."""
    return {
        "documents": [_document_summary(doc, label) for doc, label in zip(data.documents, data.labels)],
        "incomplete": [_incomplete_note(doc, label) for doc, label in zip(data.documents, data.labels)
                       if incomplete_status(doc) is not None],
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
        "incomplete": incomplete_status(doc) is not None,
        "created": _plain(meta["created"]) if meta.get("created") else MISSING,
        "version": _plain(meta["ai_ready_version"]) if meta.get("ai_ready_version") else MISSING,
        "command": shlex.join(str(c) for c in command) if isinstance(command, list) else MISSING,
        "records": len(doc.records),
        "counts": counts,
    }


def _incomplete_note(doc: ResultDocument, label: str) -> dict[str, str]:
    status = _status(doc)
    return {"label": label, "status": status, "meaning": incomplete_meaning(status)}


def _problem_row(entry: Entry) -> dict[str, Any]:
    r = entry.record
    return {"benchmark": r.benchmark, "case": r.case, "status": r.status, "reason": r.reason or MISSING,
            "where": entry.where, "source": entry.source}


def _warning_row(entry: Entry, warning: str) -> dict[str, Any]:
    r = entry.record
    return {"benchmark": r.benchmark, "case": r.case, "warning": str(warning), "where": entry.where}


def _noisy_row(entry: Entry) -> dict[str, Any]:
    r = entry.record
    n = _as_dict(r.stats).get("n")
    return {"benchmark": r.benchmark, "case": r.case, "metric": r.metric, "cv_pct": (_cv(r) or 0.0) * 100,
            "n": n if n is not None else MISSING, "where": entry.where}
