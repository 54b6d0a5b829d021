"""Render result documents to one self-contained HTML file.

The page is built from the stored records only (it never measures), from
Jinja2 templates shipped in ``templates/``. Autoescaping is on and no document
value is ever marked safe; the only markup trusted verbatim is our own
stylesheet, inlined so the page loads nothing from anywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import jinja2
from markupsafe import Markup

from ai_ready import __version__
from ai_ready.fileio import atomic_write_text
from ai_ready.records import ResultDocument, utc_now
from ai_ready.report.inputs import incomplete_mark
from ai_ready.report.sections import (PARTS, BuiltSection, ReportData, build_sections, format_number, format_percent,
                                      format_sci)
from ai_ready.resources import resource_dir

DEFAULT_TITLE = "ai-ready report"
PAGE_TEMPLATE = "report.html.j2"
STYLESHEET = "style.css"


def template_environment() -> jinja2.Environment:
    """Autoescape everything (templates are .j2, so extension-based selection would miss them)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=format_number, pct=format_percent, sci=format_sci, fold_tables=fold_long_tables,
                       incomplete=incomplete_mark)
    return env


#: A table with more rows than this is folded under a summary line (a closed <details> does not print either, so
#: the printed report keeps to what a consultant walks through).
FOLD_ROWS = 8
#: Benchmark sections whose headline and chart carry the finding: every table under them is folded.
FOLD_ALL_TABLES = ("gemm", "collectives", "memory", "io", "extrapolation")
#: Sections read as reference material: folded whole.
FOLDED_SECTIONS = ("overview",)
_TABLE_BLOCK = re.compile(r'<div class="table-wrap">\s*(<table\b.*?</table>)\s*</div>', re.S)
_CAPTION = re.compile(r"<caption>(.*?)</caption>", re.S)
_TAGS = re.compile(r"<[^>]+>")


_HEADING = re.compile(r"<h[45][^>]*>(.*?)</h[45]>", re.S)


def _table_name(table: str, before: str) -> str:
    """The table's caption, else the heading just above it (already escaped page text, tags removed)."""
    caption = _CAPTION.search(table)
    if caption:
        return " ".join(_TAGS.sub("", caption.group(1)).split())
    headings = _HEADING.findall(before[-3000:])
    return " ".join(_TAGS.sub("", headings[-1]).split()) if headings else "Table"


def fold_long_tables(html: str, section: str = "") -> Markup:
    """Fold every table of more than FOLD_ROWS body rows (every table of a FOLD_ALL_TABLES section) under a summary
    line naming it and its size; tables already inside a folded block, or marked ``no-fold``, stay as they are."""
    limit = 0 if section in FOLD_ALL_TABLES else FOLD_ROWS
    out, last = [], 0
    for match in _TABLE_BLOCK.finditer(html):
        table = match.group(1)
        body = table.split("<tbody", 1)[1] if "<tbody" in table else table
        rows = body.count("<tr")
        before = html[:match.start()]
        inside_fold = before.count("<details") > before.count("</details>")
        if rows <= limit or inside_fold or "no-fold" in table.split(">", 1)[0]:
            continue
        name = _table_name(table, before)
        out += [html[last:match.start()], f'<details class="fold fold-table"><summary>{name}: table of {rows} row{"s" if rows != 1 else ""}</summary>',
                match.group(0), "</details>"]
        last = match.end()
    out.append(html[last:])
    return Markup("".join(out))


def _stylesheet(env: jinja2.Environment) -> Markup:
    """Our own CSS, inlined verbatim: escaping would turn its quotes and '>' into entities CSS cannot read."""
    source, _, _ = env.loader.get_source(env, STYLESHEET)
    if "</style" in source.lower():
        raise ValueError(f"{STYLESHEET} must not contain '</style'")
    return Markup(source)


def group_parts(sections: Sequence[BuiltSection]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(parts with their sections, in page order; the parts left empty with what they would need).

    A part holding one section of its own title shows no second heading (``single``).
    """
    parts, missing = [], []
    for key, title, needs in PARTS:
        members = [s for s in sections if s.part == key]
        if members:
            single = len(members) == 1 and members[0].title == title
            parts.append({"key": key, "title": title, "sections": members, "single": single})
        elif key not in ("summary", "appendix"):
            missing.append({"title": title, "needs": needs})
    return parts, missing


def build_report(documents: Sequence[ResultDocument], title: str | None = None,
                 sources: Sequence[str] | None = None) -> str:
    """The report as one HTML string; `sources` names the input files, in the order of `documents`."""
    data = ReportData.from_documents(documents, sources)
    parts, missing = group_parts(build_sections(data))
    env = template_environment()
    return env.get_template(PAGE_TEMPLATE).render(
        title=title or DEFAULT_TITLE,
        generated=utc_now(),
        version=__version__,
        sources=[str(s) for s in sources] if sources else list(data.labels),
        parts=parts,
        missing=missing,
        folded_sections=FOLDED_SECTIONS,
        stylesheet=_stylesheet(env),
    )


def write_report(documents: Sequence[ResultDocument], out_path: str | os.PathLike[str], title: str | None = None,
                 sources: Sequence[str] | None = None) -> Path:
    """Render fully first, then write atomically: a failure leaves any previous report as it was."""
    html = build_report(documents, title=title, sources=sources)
    return atomic_write_text(out_path, html)
