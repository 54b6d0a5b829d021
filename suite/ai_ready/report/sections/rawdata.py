"""Raw data: the report's inputs, downloadable from the page itself (no server, no network).

Every record goes into one CSV (one row per record: where, figure, spread and sample count, ceiling) and
each input document into its own JSON file with its raw samples, both as ``data:`` links with a
``download`` name. Large inputs (collective sweeps hold thousands of samples) would push the page past what
mail and tickets accept (2 MB), so the JSON copies are embedded only while they stay under
:data:`EMBED_LIMIT_BYTES` together; the CSV is always there, and the page says what it left out and where
the files are (the result files keep every sample).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from typing import Any

from ai_ready.records import Record
from ai_ready.report.sections.common import ReportData, _as_dict, _cv, _pct_of_ceiling

#: Budget for the embedded JSON copies (before base64), so a typical report stays well under 2 MB.
EMBED_LIMIT_BYTES = 200_000
CSV_COLUMNS = ("file", "benchmark", "case", "metric", "unit", "status", "value", "median", "cv", "min", "max",
               "n_samples", "ceiling", "ceiling_label", "pct_of_ceiling", "rank", "host", "device", "reason",
               "params")


def _row(label: str, r: Record) -> dict[str, Any]:
    stats = _as_dict(r.stats)
    ceiling = _as_dict(r.ceiling)
    return {"file": label, "benchmark": r.benchmark, "case": r.case, "metric": r.metric, "unit": r.unit,
            "status": r.status, "value": r.value, "median": stats.get("median"), "cv": _cv(r),
            "min": stats.get("min"), "max": stats.get("max"), "n_samples": len(r.samples or []),
            "ceiling": ceiling.get("value"), "ceiling_label": ceiling.get("label"),
            "pct_of_ceiling": _pct_of_ceiling(r), "rank": r.rank, "host": r.host, "device": r.device,
            "reason": r.reason or "",
            "params": json.dumps(r.params or {}, sort_keys=True, separators=(",", ":"), default=str)}


def records_csv(data: ReportData) -> str:
    """All records as CSV text, in input order (the raw samples stay in the JSON copies and the result files)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for e in data.entries:
        writer.writerow(_row(e.source, e.record))
    return out.getvalue()


def _data_uri(text: str, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(text.encode('utf-8')).decode('ascii')}"


def _download_name(label: str, suffix: str) -> str:
    """A safe file name for the browser's download (the label is a user path)."""
    stem = label.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0] or "input"
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)[:80]
    return f"{stem}{suffix}"


def build_rawdata(data: ReportData) -> dict[str, Any] | None:
    """None when there is no input at all."""
    if not data.documents:
        return None
    files, used, left_out = [], 0, []
    for doc, label in zip(data.documents, data.labels):
        text = json.dumps(doc.to_dict(), separators=(",", ":"), default=str)
        if used + len(text) <= EMBED_LIMIT_BYTES:
            used += len(text)
            files.append({"label": label, "name": _download_name(label, ".json"), "size": len(text),
                          "href": _data_uri(text, "application/json")})
        else:
            left_out.append({"label": label, "size": len(text)})
    csv_text = records_csv(data) if data.entries else ""
    return {"csv": {"name": "ai-ready-records.csv", "href": _data_uri(csv_text, "text/csv"), "rows": len(data.entries),
                    "size": len(csv_text)} if csv_text else None,
            "files": files, "left_out": left_out, "limit": EMBED_LIMIT_BYTES}
