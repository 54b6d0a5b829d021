"""The report as data for tickets and CI (``--format json``) and as a short Markdown summary (``--format md``).

Both come from the same assessment as the HTML page (verdicts per dimension, ranked recommendations, key
figures) plus the anomalies and what the inputs did not cover, so a ticket, a CI log and the page never
disagree. Markdown output escapes every string from a document: ``<``, ``>`` and ``&`` become entities (a
Markdown viewer renders raw HTML), ``|`` and line breaks cannot break a table row.

Both name each incomplete input at the top (``incomplete_inputs``) and mark every verdict, action, key figure
and anomaly drawn from one (``incomplete_input``, ``input_status``; in Markdown "from an incomplete run:
status ..."), as the page does (ai_ready.report.inputs holds the rule and the words).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from ai_ready import __version__
from ai_ready.records import ResultDocument, utc_now
from ai_ready.report.assess import assess
from ai_ready.report.inputs import drawn_from_incomplete, incomplete_inputs, incomplete_mark, incomplete_meaning
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
    incomplete = incomplete_inputs(data.documents, data.labels)
    recommendations = [_marked(r, r["evidence"]["inputs"], incomplete) for r in a["recommendations"]]
    return {
        "schema": SUMMARY_SCHEMA, "version": SUMMARY_VERSION, "title": title, "generated": utc_now(),
        "ai_ready_version": __version__, "inputs": list(data.labels),
        "incomplete_inputs": [{"input": label, "status": status, "meaning": incomplete_meaning(status)}
                              for label, status in incomplete.items()],
        "rules": a["rules"], "parts": [p["key"] for p in parts], "missing": missing,
        "verdicts": [_marked(v, (v["figure"] or {}).get("inputs", ()), incomplete) for v in a["verdicts"]],
        "top": [r for r in recommendations if r["rule"] in a["top"]],
        "recommendations": recommendations,
        "key_figures": {name: _marked(m, m["inputs"], incomplete) for name, m in a["metrics"].items()},
        "anomalies": {"below_peers": [_marked(f, (f["source"],), incomplete) for f in anomalies["peers"]],
                      "far_below_ceiling": [_marked(f, (f["source"],), incomplete) for f in anomalies["ceilings"]]},
    }


def _marked(item: dict[str, Any], inputs: Iterable[str], incomplete: Mapping[str, str]) -> dict[str, Any]:
    """`item` with whether it is drawn from an incomplete input, and that input's status."""
    status = drawn_from_incomplete(inputs, incomplete)
    return {**item, "incomplete_input": status is not None, "input_status": status}


def _md(text: Any) -> str:
    """A document string, safe inside Markdown text and table cells."""
    s = " ".join(str(text).split())
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _md_mark(item: dict[str, Any]) -> str:
    """The mark after what is drawn from an incomplete input (an empty string after anything else)."""
    return f" ({_md(incomplete_mark(item['input_status']))})" if item.get("input_status") else ""


def summary_markdown(summary: dict[str, Any]) -> str:
    """A short Markdown summary of :func:`summary_json`'s object."""
    out = [f"# {_md(summary['title'])}", "",
           f"ai-ready {summary['ai_ready_version']}, {summary['generated']}, from {len(summary['inputs'])} input"
           f"{'s' if len(summary['inputs']) != 1 else ''}: {', '.join(f'`{_md(i)}`' for i in summary['inputs'])}.", ""]
    if summary["incomplete_inputs"]:
        out += ["**Incomplete inputs**: what is drawn from them is marked below.", ""]
        out += [f"- `{_md(i['input'])}`: status `{_md(i['status'])}`: {_md(i['meaning'])}."
                for i in summary["incomplete_inputs"]]
        out.append("")
    out += ["## Readiness", "", "| Dimension | Verdict | Finding | Figure |", "| --- | --- | --- | --- |"]
    for v in summary["verdicts"]:
        figure = v.get("figure") or {}
        fig = f"{_md(figure.get('text', ''))} {_md(figure.get('label', ''))}".strip() if figure else "—"
        out.append(f"| {_md(v['label'])} | {MD_STATUS.get(v['status'], v['status'])} | {_md(v['message'])} | "
                   f"{fig}{_md_mark(v)} |")
    out += ["", "## Most valuable actions", ""]
    if not summary["top"]:
        out.append("None: no rule asks for an action on these inputs.")
    for i, r in enumerate(summary["top"], 1):
        out.append(f"{i}. **{_md(r['action'])}** ({MD_STATUS.get(r['severity'], r['severity'])}) "
                   f"Why: {_md(r['finding'])}. Predicted effect: {_md(r['gain_text'])}.{_md_mark(r)}")
    peers, ceilings = summary["anomalies"]["below_peers"], summary["anomalies"]["far_below_ceiling"]
    out += ["", "## Anomalies", ""]
    if not peers and not ceilings:
        out.append("None found (or no benchmark results given).")
    else:
        out.append(f"{len(peers)} figure(s) far below their peers, {len(ceilings)} far below their ceiling.")
        for f in (peers + ceilings)[:MD_ANOMALIES_LISTED]:
            out.append(f"- {_md(f['benchmark'])} `{_md(f['case'])}` {_md(f['metric'])}: {f['value']:.4g} {_md(f['unit'])}, "
                       f"{f['worse_pct']:.0f}% worse than {_md(f['reference_label'])} ({_md(f['where'])})"
                       f"{_md_mark(f)}")
    if summary["missing"]:
        out += ["", "## Not covered", ""]
        out += [f"- {_md(m['title'])}: needs {_md(m['needs'])}" for m in summary["missing"]]
    if len(summary["recommendations"]) > len(summary["top"]):
        out += ["", f"{len(summary['recommendations'])} recommendations in all: see the HTML report "
                    "(`ai-ready report ... --format html`)."]
    return "\n".join(out) + "\n"
