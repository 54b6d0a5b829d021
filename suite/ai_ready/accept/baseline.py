"""Baselines: reference values written from good history, for systems whose figures nobody published.

`ai-ready accept baseline --from-db URL --system NAME --nights N` takes, per metric of the suite, the
last N nights on which that metric passed on every node, and writes the median of their fleet figures
as the reference, with a tolerance from their spread (:data:`TOLERANCE_SD` robust standard deviations,
at least :data:`MIN_TOLERANCE`) on the worse side only. `ai-ready accept --baseline NAME` then judges
tonight against it (a file, or a baseline stored in the database under that name).

A baseline obeys the bounds of a suite's references (ai_ready.accept.suite.checked_bounds), both ways:
reading one refuses a reference outside them, and writing one leaves out, with a note that gives the
nights and their spread, a metric whose nights scatter so widely that its tolerance would pass
:data:`MAX_TOLERANCE`. Such a reference could never fail, so writing it (or clamping it to the bound)
would only look like a check; without it the metric is judged against the suite's reference or its history.
"""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import yaml

from ai_ready.accept.detect import HIGHER, PASS, Reference, robust_spread
from ai_ready.accept.history import PastRuns
from ai_ready.accept.suite import LOWEST_LOWER, Suite, Target, checked_bounds
from ai_ready.errors import InputError, yaml_problem

SCHEMA = "ai-ready/accept-baseline"
VERSION = 1
#: The tolerance spans this many robust standard deviations of the good nights ...
TOLERANCE_SD = 4.0
#: ... and never less than this fraction, so a very steady history does not make every wobble a failure.
MIN_TOLERANCE = 0.05
#: The widest tolerance written, on either side: a suite's widest lower one (-100%, a bound of zero).
MAX_TOLERANCE = -LOWEST_LOWER
#: Fewer good nights than this: no reference for that metric (a median of two nights is not a baseline).
MIN_BASELINE_NIGHTS = 3
#: Runs read to find N good nights: a few bad nights in between are skipped over.
LOOKBACK_FACTOR = 3


def lookback(nights: int) -> int:
    return nights * LOOKBACK_FACTOR + MIN_BASELINE_NIGHTS


def make_baseline(past: PastRuns, suite: Suite, target: Target, nights: int, name: str,
                  source: str) -> tuple[dict[str, Any], list[str]]:
    """The baseline document, and a note per metric left out (too few good nights, or too scattered)."""
    references: dict[str, Any] = {}
    notes = []
    for spec in suite.metrics():
        good = _good_nights(past, spec.name)[-nights:]
        if len(good) < MIN_BASELINE_NIGHTS:
            notes.append(f"{spec.name}: {len(good)} good night(s), needs {MIN_BASELINE_NIGHTS}: no reference written")
            continue
        median, sigma = robust_spread([value for _, value, _ in good])
        tolerance = round(max(MIN_TOLERANCE, TOLERANCE_SD * sigma / median), 4) if median > 0 else math.inf
        if tolerance > MAX_TOLERANCE:
            notes.append(f"{spec.name}: {_why_no_reference(good, median, sigma, tolerance)}: no reference written; "
                         "it is judged against the suite's reference or its history")
            continue
        references[spec.name] = {
            "value": float(f"{median:.6g}"), "unit": good[-1][2],
            "lower": -tolerance if spec.better == HIGHER else None,
            "upper": None if spec.better == HIGHER else tolerance,
            "nights": len(good), "first": good[0][0], "last": good[-1][0], "robust_sd": float(f"{sigma:.4g}"),
        }
    document = {"schema": SCHEMA, "version": VERSION, "name": name, "system": target.system,
                "partition": target.partition, "suite": suite.name, "nights": nights,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "source": source,
                "references": references}
    return document, notes


def _why_no_reference(good: list[tuple[str, float, str]], median: float, sigma: float, tolerance: float) -> str:
    """Why these nights give no reference within the bounds: their median, their spread, the tolerance."""
    unit = good[-1][2]
    nights = f"{len(good)} good nights ({good[0][0]} to {good[-1][0]})"
    if median <= 0:
        return f"{nights} have a median of {median:.4g} {unit}; a reference needs a positive figure"
    return (f"{nights} scatter too widely: robust sd {sigma:.4g} {unit} is {sigma / median:.0%} of their median "
            f"{median:.4g} {unit}, so the tolerance ({TOLERANCE_SD:g} sd) would be {tolerance:.0%}, beyond the "
            f"{MAX_TOLERANCE:.0%} a reference allows")


def _good_nights(past: PastRuns, metric: str) -> list[tuple[str, float, str]]:
    """(date, fleet median, unit) of each past run on which `metric` passed on every node, oldest first."""
    runs: dict[int, list[Any]] = {}
    for night in past.by_metric.get(metric, []):
        runs.setdefault(night.run_id, []).append(night)
    good = []
    for nights in runs.values():
        if all(n.outcome == PASS and n.value is not None for n in nights):
            good.append((nights[0].started, float(statistics.median(n.value for n in nights)), nights[0].unit))
    good.sort(key=lambda g: g[0])
    return [(started.strftime("%Y-%m-%d %H:%M"), value, unit) for started, value, unit in good]


def dump_baseline(document: Mapping[str, Any]) -> str:
    header = ("# ai-ready acceptance baseline: references from good history (see docs/acceptance.md).\n"
              "# Use it with: ai-ready accept --system SYSTEM --baseline THIS_FILE\n")
    return header + yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)


def parse_baseline(text: str, where: str, target: Target) -> dict[str, Reference]:
    """References by metric name from a baseline document written for `target`'s system."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"--baseline {where}: not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(f"--baseline {where}: not an ai-ready baseline (expected schema: {SCHEMA}); write one with "
                         "'ai-ready accept baseline'")
    if data.get("version") != VERSION:
        raise InputError(f"--baseline {where}: version {data.get('version')!r}; accepted: {VERSION}")
    if data.get("system") != target.system or (data.get("partition") or "") != target.partition:
        written = str(data.get("system")) + (f":{data['partition']}" if data.get("partition") else "")
        raise InputError(f"--baseline {where} was written for system {written}, not {target.label()}; accepted: "
                         f"a baseline of {target.label()}")
    references = data.get("references")
    if not isinstance(references, dict):
        raise InputError(f"--baseline {where}: 'references' must be a mapping of metric names")
    label = f"baseline {data.get('name') or where}"
    out = {}
    for metric, ref in references.items():
        if not isinstance(ref, dict) or "value" not in ref or "unit" not in ref:
            raise InputError(f"--baseline {where}: reference for '{metric}' needs value, unit, lower and upper")
        value, lower, upper = checked_bounds(ref["value"], ref.get("lower"), ref.get("upper"),
                                             f"--baseline {where}: references.{metric}")
        out[str(metric)] = Reference(value=value, unit=str(ref["unit"]), key=label, lower=lower, upper=upper)
    return out


def read_baseline_file(path: Path, target: Target) -> dict[str, Reference]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--baseline {path}: cannot read it ({exc})") from None
    return parse_baseline(text, str(path), target)
