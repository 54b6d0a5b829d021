"""Assumptions and sources: every ceiling and catalog figure the report used, with where it comes from.

Two kinds of figures reach the page without being measured: the ceilings figures are shown against
(a catalog peak, a declared peak, or a ceiling measured in the same run) and the figures the performance
model read from the catalog for an extrapolation. Each is listed once, with its source, or marked as an
assumption where it rests on one, and the cited source ids are resolved to titles from the catalog.
"""

from __future__ import annotations

import re
from typing import Any

from ai_ready.report.sections.common import ReportData, _as_dict, _ceiling, _cited, _text_param
from ai_ready.stop import reraise_if_stopping

#: "(source S1, S4)" or "source S5" in a model assumption line: the ids it cites.
SOURCE_IDS = re.compile(r"\bsources? ((?:[A-Za-z0-9][\w.\-]*)(?:, ?[A-Za-z0-9][\w.\-]*)*)")
ASSUMPTION_WORD = "assumption"


def _is_assumption(text: str) -> bool:
    return ASSUMPTION_WORD in text.lower()


def _ceilings(data: ReportData) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in data.entries:
        c = _ceiling(e.record)
        if c is None or e.record.metric == "mfu":  # MFU's ceiling is the peak its TFLOP/s record lists already
            continue
        key = (c["label"], f"{c['value']:.6g}", c["source"])
        row = seen.setdefault(key, {**c, "assumption": _is_assumption(c["source"]) or c["kind"] == "declared",
                                    "used_by": [], "measured": c["kind"] == "measured"})
        if e.record.benchmark not in row["used_by"]:
            row["used_by"].append(e.record.benchmark)
    return sorted(seen.values(), key=lambda r: (r["measured"], r["label"]))


def _model_figures(data: ReportData) -> list[dict[str, Any]]:
    """Per extrapolated system, the assumption lines the model reported, split sourced / assumed."""
    blocks = []
    for doc, label in zip(data.documents, data.labels):
        meta = _as_dict(doc.meta)
        predictions: list[dict[str, Any]] = []
        if meta.get("kind") == "extrapolation":
            predictions.append(_as_dict(meta.get("extrapolation")))
        profile_ext = _as_dict(_as_dict(meta.get("profile")).get("extrapolation"))
        for entry in profile_ext.get("systems") or [] if isinstance(profile_ext.get("systems"), list) else []:
            predictions.append(_as_dict(_as_dict(entry).get("prediction")))
        for p in predictions:
            lines = [str(a) for a in p.get("assumptions") or [] if a] if isinstance(p.get("assumptions"), list) else []
            if not lines:
                continue
            blocks.append({"system": _text_param(p, "system") or "unnamed system", "source": label,
                           "workload": _text_param(p, "workload"),
                           "lines": [{"text": line, "assumption": _is_assumption(line)} for line in lines]})
    return blocks


def _cited_ids(texts: list[str]) -> list[str]:
    ids: list[str] = []
    for text in texts:
        for match in SOURCE_IDS.finditer(text):
            for sid in re.split(r", ?", match.group(1)):
                if sid and sid not in ids:
                    ids.append(sid)
    return ids


def _resolve(ids: list[str]) -> list[dict[str, str]]:
    """Titles and locations of catalog source ids; an id the catalog does not know is listed as such."""
    try:
        from ai_ready.catalog import load_catalog

        known = load_catalog().sources
    except Exception as exc:  # noqa: BLE001 - a broken user catalog must not cost the report its other sections
        reraise_if_stopping(exc)
        known = {}
    out = []
    for sid in ids:
        src = _as_dict(known.get(sid))
        if not src:
            continue  # a word after "source" that is not an id (the regex is generous)
        out.append({"id": sid, "title": str(src.get("title") or ""),
                    "where": str(src.get("url") or src.get("reference") or src.get("doi") or "")})
    return out


def build_sources(data: ReportData) -> dict[str, Any] | None:
    """None when no figure with a ceiling and no extrapolation was given."""
    ceilings = _ceilings(data)
    model = _model_figures(data)
    if not ceilings and not model:
        return None
    texts = [c["source"] for c in ceilings] + [line["text"] for b in model for line in b["lines"]]
    references = _cited(e.record.ceiling for e in data.entries)
    ids = {r["id"] for r in references}
    references += [r for r in _resolve(_cited_ids(texts)) if r["id"] not in ids]
    counts = {"assumed": sum(1 for c in ceilings if c["assumption"])
              + sum(1 for b in model for line in b["lines"] if line["assumption"]),
              "total": len(ceilings) + sum(len(b["lines"]) for b in model)}
    return {"ceilings": ceilings, "model": model, "references": references, "counts": counts}
