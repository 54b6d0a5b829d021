"""Terminal output: rich tables for people, plain text in logs, nothing with --quiet.

Everything printed through rich goes in as :class:`rich.text.Text`, never as a markup string: titles and
cells hold job names, case names and paths that users chose, and ``x[/]y`` must print as written rather
than end a finished command with a MarkupError (issue 20).
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text


def is_quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("quiet"))


def is_debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("debug"))


#: Width of tables written to logs and pipes (a terminal uses its own width).
LOG_WIDTH = 160


def stdout_console() -> Console:
    return Console(soft_wrap=False, highlight=False, markup=False,
                   width=None if sys.stdout.isatty() else LOG_WIDTH)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False)


def interactive() -> bool:
    """Live progress only on a terminal: logs of batch jobs stay clean."""
    return sys.stderr.isatty() and not is_quiet()


def _numeric(text: str) -> bool:
    try:
        float(text.rstrip("%*").split(" ")[0].replace(",", ""))
        return True
    except ValueError:
        return False


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table whose all-numeric columns are right-aligned."""
    if is_quiet():
        return
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    table = Table(title=Text(title), title_justify="left")
    for i, col in enumerate(columns):
        values = [row[i] for row in cells if row[i]]
        numeric = bool(values) and all(_numeric(v) for v in values)
        table.add_column(Text(col), justify="right" if numeric else "left", overflow="fold")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    stdout_console().print(table)


def note(message: str) -> None:
    """A one-line message on stderr for the user (not with --quiet)."""
    if not is_quiet():
        click.echo(message, err=True)
