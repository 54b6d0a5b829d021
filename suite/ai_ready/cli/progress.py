"""Progress over benchmark cases: a live bar on a terminal, one line per case in logs.

Case names reach rich as plain text (``markup=False``): a name such as ``x[/]y`` is shown as written
(see ai_ready.cli.console)."""

from __future__ import annotations

from typing import Any, Sequence

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ai_ready.records import Record


def _summary(records: Sequence[Record]) -> str:
    parts = []
    for r in records:
        if r.status == "ok":
            pct = f" ({r.pct_of_ceiling:.0f}% of ceiling)" if r.pct_of_ceiling is not None else ""
            parts.append(f"{r.value:.4g} {r.unit}{pct}")
        else:
            parts.append(f"{r.status}: {r.reason}")
    return "; ".join(parts)


class CaseProgress:
    """Context manager the runner drives with start(case) / done(case, records)."""

    def __init__(self, total: int, live: bool, log_lines: bool) -> None:
        self._live = live
        self._log = log_lines
        self._progress: Progress | None = None
        self._task: Any = None
        self._total = total

    def __enter__(self) -> "CaseProgress":
        if self._live:
            self._progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), transient=True,
                                      console=Console(stderr=True, markup=False))
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=self._total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start(self, name: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=name)

    def done(self, name: str, records: Sequence[Record]) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)
            self._progress.console.print(f"{name}: {_summary(records)}", highlight=False, markup=False)
        elif self._log:
            click.echo(f"{name}: {_summary(records)}", err=True)
