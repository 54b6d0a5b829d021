"""`ai-ready report`: render result files into one self-contained HTML page, or a JSON/Markdown summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ai_ready.cli.console import note
from ai_ready.errors import InputError
from ai_ready.report.inputs import load_input

SUFFIXES = {"html": (".html", ".htm"), "json": (".json",), "md": (".md", ".markdown")}
DEFAULT_OUTPUT = {"html": "reports/report.html", "json": "reports/report.json", "md": "reports/report.md"}


def _format_of(output: Path | None, fmt: str | None) -> str:
    """The format asked for, else the one the output's suffix names, else HTML."""
    if fmt:
        return fmt
    if output is not None:
        for name, suffixes in SUFFIXES.items():
            if output.suffix.lower() in suffixes:
                return name
    return "html"


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="The file to write [default: reports/report.html, .json or .md by --format].")
@click.option("--format", "fmt", type=click.Choice(tuple(SUFFIXES)),
              help="html: the full page; json: verdicts, key figures and recommendations for tickets and CI; "
                   "md: a short summary. Default: from the -o suffix, else html.")
@click.option("--title", help="Title shown at the top of the report.")
@click.option("--rules", type=click.Path(path_type=Path),
              help="A centre's verdict/recommendation rule file (YAML) extending or replacing the shipped rules "
                   "(also $AI_READY_REPORT_RULES); see docs/report.md.")
def report(inputs: tuple[Path, ...], output: Path | None, fmt: str | None, title: str | None,
           rules: Path | None) -> None:
    """Render result files (bench, train, profile) and extrapolations into a readiness report (opens offline)."""
    from ai_ready.fileio import atomic_write_text
    from ai_ready.report import DEFAULT_TITLE, write_report
    from ai_ready.report.assess import RULES_ENV, load_rules
    from ai_ready.report.summary_formats import summary_json, summary_markdown

    fmt = _format_of(output, fmt)
    output = output if output is not None else Path(DEFAULT_OUTPUT[fmt])
    if output.is_dir():
        raise InputError(f"-o {output} is a folder; give a file name such as {output / Path(DEFAULT_OUTPUT[fmt]).name}")
    if output.suffix.lower() not in SUFFIXES[fmt]:
        raise InputError(f"-o {output}: --format {fmt} writes a file ending in {' or '.join(SUFFIXES[fmt])}")
    if rules is not None:
        load_rules(rules)  # a bad file is one clear line here, before any work
    documents = [load_input(path) for path in inputs]
    labels = [str(p) for p in inputs]
    # The section builders read the rule file from the environment; set it for this call only.
    saved = os.environ.get(RULES_ENV)
    if rules is not None:
        os.environ[RULES_ENV] = str(rules)
    try:
        if fmt == "html":
            path = write_report(documents, output, title=title, sources=labels)
        else:
            summary = summary_json(documents, title or DEFAULT_TITLE, sources=labels)
            text = json.dumps(summary, indent=2, default=str) + "\n" if fmt == "json" else summary_markdown(summary)
            path = atomic_write_text(output, text)
    finally:
        if saved is None:
            os.environ.pop(RULES_ENV, None)
        else:
            os.environ[RULES_ENV] = saved
    note(f"report: {path}")
