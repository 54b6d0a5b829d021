"""What `ai-ready report` reads: result documents, and extrapolations written by `ai-ready extrapolate -o`.

Both are JSON objects that name their kind in ``"schema"``. An extrapolation is wrapped into a result
document with no records whose ``meta.extrapolation`` holds the object, so every section reads one
kind of input; anything else is refused with one line that says what is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ai_ready.errors import InputError
from ai_ready.records import SCHEMA, ResultDocument, parse_results

#: Written by `ai-ready extrapolate --json/-o` (ai_ready.cli.extrapolate).
EXTRAPOLATION_SCHEMA = "ai-ready/extrapolation"
EXTRAPOLATION_VERSION = 1
#: Keys an extrapolation must hold for the report to lay it out.
EXTRAPOLATION_REQUIRED = ("workload", "system", "step_time_s", "parallelism", "assumptions")
ACCEPTED = (f"an ai-ready results document (\"schema\": \"{SCHEMA}\", from bench, train or profile) or an "
            f"extrapolation (\"schema\": \"{EXTRAPOLATION_SCHEMA}\", from `ai-ready extrapolate -o FILE.json`)")


def load_input(path: str | Path) -> ResultDocument:
    """Read one report input; bad or foreign input raises InputError with one line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"input '{p}' does not exist; accepted: {ACCEPTED}") from None
    except IsADirectoryError:
        raise InputError(f"input '{p}' is a folder; give its JSON files; accepted: {ACCEPTED}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read input '{p}': {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"input '{p}' is not valid JSON ({exc.msg} at line {exc.lineno}); accepted: {ACCEPTED}") from None
    return parse_input(data, str(p))


def parse_input(data: Any, source: str) -> ResultDocument:
    """A decoded input as a result document (see the module docstring)."""
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema == EXTRAPOLATION_SCHEMA:
        return _extrapolation_document(data, source)
    if schema == SCHEMA:
        return parse_results(data, source=source)
    raise InputError(f"'{source}' is not an input the report reads (schema {schema!r}); accepted: {ACCEPTED}")


def _extrapolation_document(data: dict[str, Any], source: str) -> ResultDocument:
    version = data.get("version")
    if not isinstance(version, int) or not 1 <= version <= EXTRAPOLATION_VERSION:
        raise InputError(f"'{source}' is extrapolation version {version!r}; this ai-ready reads "
                         f"1..{EXTRAPOLATION_VERSION} (upgrade ai-ready for newer ones)")
    missing = [key for key in EXTRAPOLATION_REQUIRED if key not in data]
    if missing:
        raise InputError(f"'{source}' is an extrapolation without {', '.join(missing)}; write it again with "
                         "`ai-ready extrapolate WORKLOAD --system NAME -o FILE.json`")
    meta = {"kind": "extrapolation", "extrapolation": data, "status": "complete",
            "created": data.get("created"), "ai_ready_version": data.get("ai_ready_version"),
            "command": data.get("command") if isinstance(data.get("command"), list) else None}
    return ResultDocument(meta=meta, records=[])
