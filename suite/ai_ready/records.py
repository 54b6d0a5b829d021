"""The result-record format shared by every benchmark, workload, profile and report.

One JSON document per run::

    {"schema": "ai-ready/results", "version": 1,
     "meta": {...environment, command, timestamps, status...},
     "records": [{"benchmark": ..., "case": ..., "params": {...}, "metric": ...,
                  "unit": ..., "value": <median>, "stats": {...}, "samples": [...],
                  "rank": 0, "host": ..., "device": ..., "status": "ok", ...}]}

`docs/records.md` documents every field. The version is bumped whenever a
field changes meaning; :data:`MIGRATIONS` upgrades older documents on load so
history never becomes unreadable.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ai_ready import __version__
from ai_ready.errors import InputError
from ai_ready.fileio import WriteFailed, atomic_write_text
from ai_ready.measure.stats import noise_warning, summarize

SCHEMA = "ai-ready/results"
VERSION = 1

#: Record status values: a failed or skipped record carries a reason and no value.
STATUSES = ("ok", "failed", "skipped")

#: Upgrades from version N to N+1, applied in order when an older document is loaded.
#: Version 1 is the first; the history of the format is written here as it grows.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass
class Record:
    """One figure of one case: a metric, its median, its spread and its raw samples."""

    benchmark: str
    case: str
    params: dict[str, Any]
    metric: str
    unit: str
    value: float | None = None
    status: str = "ok"
    reason: str | None = None
    stats: dict[str, Any] | None = None
    samples: list[float] = field(default_factory=list)
    rank: int = 0
    host: str = ""
    device: str = ""
    ceiling: dict[str, Any] | None = None
    pct_of_ceiling: float | None = None
    #: Further ceilings the figure is shown against (each a ceiling dict plus its "pct"), e.g. the
    #: catalog HBM peak next to a measured copy ceiling. Optional; absent in older documents.
    other_ceilings: list[dict[str, Any]] = field(default_factory=list)
    check: dict[str, Any] | None = None
    timing: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"record status '{self.status}' is not one of {', '.join(STATUSES)}")
        if self.status == "ok" and (self.value is None or not math.isfinite(self.value)):
            raise ValueError(f"record {self.benchmark}/{self.case}/{self.metric} is ok but has no finite value")
        if self.status != "ok" and not self.reason:
            raise ValueError(f"{self.status} record {self.benchmark}/{self.case} needs a reason")

    @classmethod
    def from_samples(cls, samples: Sequence[float], warn_noise: bool = True, **kwargs: Any) -> "Record":
        """An ok record whose value is the median of `samples`, whose stats describe them,
        and which warns when they are too noisy to trust (unless another record of the
        same measurement already does: derived figures share their source's noise)."""
        summary = summarize(samples)
        record = cls(value=summary.median, stats=summary.to_dict(), samples=[float(s) for s in samples], **kwargs)
        warning = noise_warning(summary, record.case) if warn_noise else None
        if warning and warning not in record.warnings:
            record.warnings.append(warning)
        return record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Record":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ResultDocument:
    """A run's records plus the metadata needed to interpret them later."""

    meta: dict[str, Any]
    records: list[Record] = field(default_factory=list)
    schema: str = SCHEMA
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "version": self.version,
            "meta": self.meta,
            "records": [r.to_dict() for r in self.records],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False, default=_json_default) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write atomically: readers see the previous document or this one, never half of it. A refusal of
        the system (a full disk) is a WriteFailed naming the result file."""
        return atomic_write_text(path, self.to_json(), what="result file")


def keep_unsaved(document: ResultDocument, failure: WriteFailed) -> WriteFailed:
    """Keep what a document whose file could not be written measured: a new file in the temporary folder
    ($TMPDIR, usually another file system than the results), else JSON on stdout. Returns the failure
    saying where the records went, for its one error line."""
    if not document.records:
        return failure
    text = document.to_json()
    count = f"the {len(document.records)} finished record(s)"
    try:
        kept = f"{count} are kept in {_rescue_file(text, Path(failure.filename).stem)}"
    except OSError as exc:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError:
            kept = f"{count} are lost: the temporary folder and stdout could not be written either"
        else:
            kept = (f"{count} are printed on stdout as JSON (the temporary folder {tempfile.gettempdir()} "
                    f"failed too: {exc.strerror})")
    return WriteFailed(failure.what, failure.filename, failure, kept)


def _rescue_file(text: str, stem: str) -> Path:
    name = f"ai-ready-{stem}-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.json"
    return atomic_write_text(Path(tempfile.gettempdir()) / name, text, what="rescue copy")


def new_meta(command: Sequence[str] | None = None, environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metadata every result document starts with."""
    return {
        "ai_ready_version": __version__,
        "created": utc_now(),
        "command": list(command) if command is not None else None,
        "environment": environment or {},
        "status": "running",
    }


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a result record")


def load_results(path: str | Path) -> ResultDocument:
    """Read a result document, upgrading old versions; bad input raises InputError with one line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"result file '{p}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read result file '{p}': {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"result file '{p}' is not valid JSON ({exc.msg} at line {exc.lineno}); "
                         "expected an ai-ready results document") from None
    return parse_results(data, source=str(p))


def parse_results(data: Any, source: str = "<data>") -> ResultDocument:
    """Validate and upgrade a decoded result document."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(f"'{source}' is not an ai-ready results document (expected \"schema\": \"{SCHEMA}\")")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise InputError(f"'{source}' has an invalid results version {version!r}; expected an integer 1..{VERSION}")
    if version > VERSION:
        raise InputError(f"'{source}' is results version {version}, newer than this ai-ready reads ({VERSION}); "
                         "upgrade ai-ready")
    while version < VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    records = data.get("records")
    if not isinstance(records, list):
        raise InputError(f"'{source}' has no list of \"records\"")
    try:
        parsed = [Record.from_dict(r) for r in records]
    except (TypeError, ValueError) as exc:
        raise InputError(f"'{source}' holds a malformed record: {exc}") from None
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    return ResultDocument(meta=meta, records=parsed)


def records_frame(documents: Iterable[ResultDocument]):
    """All records of `documents` as one pandas DataFrame; params flattened to `params.<name>` columns."""
    import pandas as pd

    rows = []
    for doc_index, doc in enumerate(documents):
        for record in doc.records:
            row = record.to_dict()
            row["document"] = doc_index
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=[f.name for f in fields(Record)] + ["document"])
    return pd.json_normalize(rows, max_level=1)
