"""Errors that mean "the user gave us something we cannot use".

The CLI turns an :class:`InputError` into one line on stderr and exit code 2,
never a traceback; everything else is a bug or a failed measurement.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


class InputError(Exception):
    """Bad input: say what was wrong and what is accepted, in one line."""

    exit_code = 2


def yaml_problem(exc: Exception) -> str:
    """A YAML parse error as one line with its position, for an InputError message."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())


def checked_mapping(data: Any, where: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, Any]:
    """``data`` as a mapping with every ``required`` key and only those or ``optional`` ones, else an InputError
    naming ``where``, the key and what is accepted (configuration files are checked with this)."""
    accepted = tuple(required) + tuple(optional)
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: must be a mapping with keys {', '.join(accepted)}, got {type(data).__name__}")
    for key in data:
        if key not in accepted:
            raise InputError(f"{where}: unknown key '{key}'; accepted: {', '.join(accepted)}")
    for key in required:
        if key not in data:
            raise InputError(f"{where}: missing key '{key}'")
    return dict(data)
