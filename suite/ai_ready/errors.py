"""Errors that mean "the user gave us something we cannot use".

The CLI turns an :class:`InputError` into one line on stderr and exit code 2,
never a traceback; everything else is a bug or a failed measurement.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: say what was wrong and what is accepted, in one line."""

    exit_code = 2


def yaml_problem(exc: Exception) -> str:
    """A YAML parse error as one line with its position, for an InputError message."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())
