"""`ai-ready report`: render result files into one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from ai_ready.cli.console import note
from ai_ready.errors import InputError
from ai_ready.report.inputs import load_input


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("reports/report.html"),
              show_default=True, help="The HTML file to write.")
@click.option("--title", help="Title shown at the top of the report.")
def report(inputs: tuple[Path, ...], output: Path, title: str | None) -> None:
    """Render RESULTS.json files into a self-contained HTML report (opens offline)."""
    from ai_ready.report import write_report

    if output.is_dir():
        raise InputError(f"-o {output} is a folder; give a file name such as {output / 'report.html'}")
    if output.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"-o {output}: the report is HTML; accepted: a file name ending in .html")
    documents = [load_input(path) for path in inputs]
    path = write_report(documents, output, title=title, sources=[str(p) for p in inputs])
    note(f"report: {path}")
