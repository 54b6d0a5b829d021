"""What `ai-ready report` reads: result documents, and extrapolations written by `ai-ready extrapolate -o`.

Both are JSON objects that name their kind in ``"schema"``. An extrapolation is wrapped into a result
document with no records whose ``meta.extrapolation`` holds the object, so every section reads one
kind of input; anything else is refused with one line that says what is accepted.

An input whose ``meta.status`` is anything but ``complete`` (``running`` after its run was killed,
``stopped``, ``failed``, ...) is incomplete. Every format names it at the top and marks each verdict,
finding and figure drawn from it, with the rule and the words kept here so the page, ``--format md`` and
``--format json`` say the same. A document that records no status (written by hand or by another tool)
is taken as complete, as `ai-ready accept` takes a stored one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ai_ready.errors import InputError
from ai_ready.records import SCHEMA, ResultDocument, parse_results

#: Written by `ai-ready extrapolate --json/-o` (ai_ready.cli.extrapolate).
EXTRAPOLATION_SCHEMA = "ai-ready/extrapolation"
EXTRAPOLATION_VERSION = 1
#: Keys an extrapolation must hold for the report to lay it out.
EXTRAPOLATION_REQUIRED = ("workload", "system", "step_time_s", "parallelism", "assumptions")
ACCEPTED = (f"an ai-ready results document (\"schema\": \"{SCHEMA}\", from bench, train or profile) or an "
            f"extrapolation (\"schema\": \"{EXTRAPOLATION_SCHEMA}\", from `ai-ready extrapolate -o FILE.json`)")

#: The status a result document records once its run finished.
COMPLETE = "complete"
#: What an incomplete status means for the figures, in words for the reader.
INCOMPLETE_MEANINGS: dict[str, str] = {
    "partial": "some cases did not run; the figures cover only the cases that finished",
    "interrupted": "the run was stopped before it finished (Ctrl-C); cases after the interruption are missing",
    "stopped": "the run was stopped by a signal (SIGTERM or SIGHUP: a time limit, scancel) before it finished; "
               "the figures cover what finished before",
    "failed": "the run failed; any figures are what was saved before the failure",
    "running": "the document was saved while the run was still going (the run was probably killed); "
               "treat it as incomplete",
}
#: The meaning of an incomplete status not listed above.
OTHER_INCOMPLETE = "the run did not record that it finished; treat its figures as incomplete"
#: How a verdict, finding or figure drawn from an incomplete input is marked in every format.
INCOMPLETE_MARK = "from an incomplete run: status {status}"


def incomplete_status(document: ResultDocument) -> str | None:
    """The recorded status of a document whose run did not finish; None for a finished one, or one that
    records no status (see the module docstring)."""
    status = document.meta.get("status") if isinstance(document.meta, dict) else None
    return None if status in (None, "", COMPLETE) else str(status)


def incomplete_meaning(status: str) -> str:
    return INCOMPLETE_MEANINGS.get(status, OTHER_INCOMPLETE)


def incomplete_inputs(documents: Sequence[ResultDocument], labels: Sequence[str]) -> dict[str, str]:
    """The status of each incomplete input, by its label (file name) in the report."""
    found = ((label, incomplete_status(doc)) for doc, label in zip(documents, labels))
    return {label: status for label, status in found if status is not None}


def drawn_from_incomplete(inputs: Iterable[str], incomplete: Mapping[str, str]) -> str | None:
    """The status of the incomplete inputs among `inputs` (several joined by ", "); None if all finished."""
    statuses = dict.fromkeys(incomplete[label] for label in inputs if label in incomplete)
    return ", ".join(statuses) or None


def incomplete_mark(status: str) -> str:
    return INCOMPLETE_MARK.format(status=status)


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
