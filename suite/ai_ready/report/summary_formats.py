"""The report as data for tickets and CI (``--format json``) and as a short Markdown summary (``--format md``).

Both come from the same assessment as the HTML page (verdicts per dimension, ranked recommendations, key
figures) plus the anomalies and what the inputs did not cover, so a ticket, a CI log and the page never
disagree. Markdown output escapes every string from a document: ``<``, ``>`` and ``&`` become entities (a
Markdown viewer renders raw HTML), ``|`` and line breaks cannot break a table row.
"""

from __future__ import annotations

from typing import Any, Sequence

from ai_ready import __version__
from ai_ready.records import ResultDocument, utc_now
from ai_ready.report.assess import assess
from ai_ready.report.sections import ReportData, build_anomalies, build_sections
from ai_ready.report.render import group_parts

SUMMARY_SCHEMA = "ai-ready/report-summary"
SUMMARY_VERSION = 1
FORMATS = ("html", "json", "md")
#: Anomalies listed by name in the Markdown summary; the rest are counted.
MD_ANOMALIES_LISTED = 10
#: Status words in Markdown, with the same shapes the page uses, so the summary reads without colour.
MD_STATUS = {"red": "✖ red", "amber": "▲ amber", "green": "✔ green", "unknown": "? no data"}


def summary_json(documents: Sequence[ResultDocument], title: str, sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Verdicts, the top actions, every recommendation, key figures, anomalies and the uncovered parts."""
    data = ReportData.from_documents(documents, sources)
    assessment = assess(data)
    parts, missing = group_parts(build_sections(data))
    anomalies = build_anomalies(data) or {"peers": [], "ceilings": []}
    a = assessment.to_json()
    return {
        "schema": SUMMARY_SCHEMA, "version": SUMMARY_VERSION, "title": title, "generated": utc_now(),
        "ai_ready_version": __version__, "inputs": list(data.labels), "rules": a["rules"],
        "parts": [p["key"] for p in parts], "missing": missing,
        "verdicts": a["verdicts"], "top": [r for r in a["recommendations"] if r["rule"] in a["top"]],
        "recommendations": a["recommendations"], "key_figures": a["metrics"],
        "anomalies": {"below_peers": anomalies["peers"], "far_below_ceiling": anomalies["ceilings"]},
    }


def _md(text: Any) -> str:
    """A document string, safe inside Markdown text and table cells."""
    s = " ".join(str(text).split())
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def summary_markdown(summary: dict[str, Any]) -> str:
    """A short Markdown summary of :func:`summary_json`'s object."""
    out = [f"# {_md(summary['title'])}", "",
           f"ai-ready {summary['ai_ready_version']}, {summary['generated']}, from {len(summary['inputs'])} input"
           f"{'s' if len(summary['inputs']) != 1 else ''}: {', '.join(f'`{_md(i)}`' for i in summary['inputs'])}.", ""]
    out += ["## Readiness", "", "| Dimension | Verdict | Finding | Figure |", "| --- | --- | --- | --- |"]
    for v in summary["verdicts"]:
        figure = v.get("figure") or {}
        fig = f"{_md(figure.get('text', ''))} {_md(figure.get('label', ''))}".strip() if figure else "—"
        out.append(f"| {_md(v['label'])} | {MD_STATUS.get(v['status'], v['status'])} | {_md(v['message'])} | {fig} |")
    out += ["", "## Most valuable actions", ""]
    if not summary["top"]:
        out.append("None: no rule asks for an action on these inputs.")
    for i, r in enumerate(summary["top"], 1):
        out.append(f"{i}. **{_md(r['action'])}** ({MD_STATUS.get(r['severity'], r['severity'])}) "
                   f"Why: {_md(r['finding'])}. Predicted effect: {_md(r['gain_text'])}.")
    peers, ceilings = summary["anomalies"]["below_peers"], summary["anomalies"]["far_below_ceiling"]
    out += ["", "## Anomalies", ""]
    if not peers and not ceilings:
        out.append("None found (or no benchmark results given).")
    else:
        out.append(f"{len(peers)} figure(s) far below their peers, {len(ceilings)} far below their ceiling.")
        for f in (peers + ceilings)[:MD_ANOMALIES_LISTED]:
            out.append(f"- {_md(f['benchmark'])} `{_md(f['case'])}` {_md(f['metric'])}: {f['value']:.4g} {_md(f['unit'])}, "
                       f"{f['worse_pct']:.0f}% worse than {_md(f['reference_label'])} ({_md(f['where'])})")
    if summary["missing"]:
        out += ["", "## Not covered", ""]
        out += [f"- {_md(m['title'])}: needs {_md(m['needs'])}" for m in summary["missing"]]
    if len(summary["recommendations"]) > len(summary["top"]):
        out += ["", f"{len(summary['recommendations'])} recommendations in all: see the HTML report "
                    "(`ai-ready report ... --format html`)."]
    return "\n".join(out) + "\n"
