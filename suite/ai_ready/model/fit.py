"""Each software stack's kernel efficiency, fitted on published runs, and the model judged on the runs it was
not fitted to (leave-one-source-out).

The model's hardware terms come from the catalog and a few stated assumptions; what differs between a
Megatron run and a PyTorch FSDP run on the same GPUs beyond the terms the model has (overlap, attention
kernels, gradient bytes, pipeline schedule) is how fast the stack's kernels run: fusion, launch and
framework overheads. That is one number per stack, ``Software.efficiency``, and it is the only constant
fitted on the validation set:

1. **Per source** ``s`` (a publication: its tables share a ``source_id``): the efficiency at which the
   median of log(predicted / published speed) over the source's cases is 0, each case at the layout the
   model chooses at efficiency 1. The median keeps one odd row from moving its source.
2. **Per preset** ``P``: the median of log η over the sources whose runs used ``P``; with none, over the
   sources of ``P``'s family (stacks that share their kernels, data/software.yaml); with none either,
   over all sources.
3. **Leave one source out**: every source is predicted with the efficiencies of step 2 fitted without
   it. That error, not the in-sample one, is what a user should expect on a run the model has not
   seen, and it is what ``ai-ready validate`` judges.
4. **Band**: the 10th and 90th percentiles of published / predicted step time over the cross-validated
   cases: a prediction's step-time band, which holds the published figure in 80% of those cases.

``python -m ai_ready.model.fit`` writes the result to ``data/stack_fit.yaml``, which the presets and
every prediction read (so ``extrapolate`` runs no fit); a test checks the file is current.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ai_ready.fileio import atomic_write_text
from ai_ready.model.published import (DEVELOPMENT, OUT_OF_SAMPLE, OUT_OF_SAMPLE_BAND, Case, CaseResult, ErrorSummary,
                                      Table, case_hardware, load_published, predict_case, result_of, speed_ratio)
from ai_ready.model.software import FIT_FILE, presets
from ai_ready.model.step import step_time

SCHEMA, VERSION = "ai-ready/stack-fit", 1
#: The model's target, judged on the leave-one-source-out errors (issue 17): median |error| and share within 25%.
TARGET_MEDIAN = 0.10
TARGET_WITHIN = 0.80
#: Efficiencies searched: a stack reaching under a tenth or over 1.5 times the modelled rates is a modelling error.
EFFICIENCY_RANGE = (0.1, 1.5)
#: Percentiles of published / predicted step time that bound a prediction's band.
BAND_PERCENTILES = (10, 90)


@dataclass(frozen=True)
class SourceFit:
    """One source's efficiency: its cases are predicted right, in the median, at this efficiency."""

    source: str
    preset: str
    cases: int
    efficiency: float


@dataclass(frozen=True)
class StackEfficiency:
    """A preset's efficiency and what it rests on."""

    preset: str
    efficiency: float
    basis: str
    sources: tuple[str, ...]


def _median_log_speed(cases: Sequence[tuple[Case, CaseResult, Any]], efficiency: float) -> float:
    logs = []
    for case, base, hw in cases:
        software = replace(case.software, efficiency=efficiency)
        step = step_time(case.model, case.training, base.parallelism, hw, software, check=False)
        logs.append(math.log(speed_ratio(result_of(case, step, base.gpus_per_node))))
    return statistics.median(logs)


def fit_source(source: str, cases: Sequence[tuple[Case, CaseResult, Any]]) -> SourceFit:
    """The efficiency at which the source's median log speed ratio is 0 (bisection: speed rises with it)."""
    low, high = EFFICIENCY_RANGE
    if _median_log_speed(cases, low) >= 0:
        found = low
    elif _median_log_speed(cases, high) <= 0:
        found = high
    else:
        for _ in range(40):
            mid = math.sqrt(low * high)
            if _median_log_speed(cases, mid) > 0:
                high = mid
            else:
                low = mid
        found = math.sqrt(low * high)
    return SourceFit(source, cases[0][0].preset, len(cases), found)


def fit_sources(runs: Any, catalog: Any) -> dict[str, SourceFit]:
    """Every source's efficiency, from its cases at the layouts the model chooses at efficiency 1."""
    grouped: dict[str, list[tuple[Case, CaseResult, Any]]] = {}
    for case in runs.cases:
        base = predict_case(case, catalog, 1.0)
        grouped.setdefault(case.source_id, []).append((case, base, case_hardware(case, catalog)))
    presets_of = {s: {c.preset for c, _, _ in cases} for s, cases in grouped.items()}
    for source, used in presets_of.items():
        if len(used) > 1:  # one efficiency per source: its tables must share a stack
            raise ValueError(f"source {source}: its tables use several presets ({', '.join(sorted(used))})")
    return {source: fit_source(source, cases) for source, cases in grouped.items()}


def _geometric_median(values: Sequence[float]) -> float:
    return math.exp(statistics.median(math.log(v) for v in values))


def stack_efficiencies(fits: Mapping[str, SourceFit], leave_out: str | None = None) -> dict[str, StackEfficiency]:
    """Every preset's efficiency from the source fits (without ``leave_out``): its own sources, else its family's,
    else all."""
    known, _ = presets()
    usable = {s: f for s, f in fits.items() if s != leave_out}
    family_of = {name: p.family for name, p in known.items()}
    found = {}
    for name, preset in known.items():
        own = sorted(s for s, f in usable.items() if f.preset == name)
        family = sorted(s for s, f in usable.items() if family_of.get(f.preset) == preset.family)
        if own:
            chosen, basis = own, f"fitted on its own published runs ({', '.join(own)})"
        elif family:
            chosen, basis = family, (f"no published runs of its own: fitted on its family {preset.family}'s "
                                     f"({', '.join(family)})")
        else:
            chosen = sorted(usable)
            basis = f"no published runs of its own or its family's: the median of all sources ({', '.join(chosen)})"
        found[name] = StackEfficiency(name, _geometric_median([usable[s].efficiency for s in chosen]), basis,
                                      tuple(chosen))
    return found


def band_of(ratios: Sequence[float]) -> tuple[float, float]:
    """(low, high): the BAND_PERCENTILES of ``ratios``, rounded outward to observed values so that at least
    their share (80%) of the ratios lies inside, never fewer."""
    ordered = sorted(ratios)
    last = len(ordered) - 1
    low_q, high_q = BAND_PERCENTILES
    return ordered[math.floor(last * low_q / 100.0)], ordered[math.ceil(last * high_q / 100.0)]


@dataclass(frozen=True)
class ValidationReport:
    """In-sample and leave-one-source-out predictions of every case, their summaries and the fit.

    ``cases`` are predicted with the efficiencies fitted on every source, ``cross_validated`` (same order)
    with those fitted without the case's own source; the target is judged on the latter. ``band`` is the
    (low, high) ratio of published to predicted step time that holds 80% of the cross-validated cases."""

    tables: tuple[Table, ...]
    cases: tuple[CaseResult, ...]
    cross_validated: tuple[CaseResult, ...]
    in_sample: ErrorSummary
    loso: ErrorSummary
    loso_by_role: dict[str, ErrorSummary]
    efficiencies: dict[str, StackEfficiency]
    source_fits: dict[str, SourceFit]
    band: tuple[float, float]
    band_coverage: float
    target_median: float = TARGET_MEDIAN
    target_within: float = TARGET_WITHIN

    @property
    def within_target(self) -> bool:
        return self.loso.median_abs_error <= self.target_median and self.loso.within_band >= self.target_within

    def misses(self) -> list[str]:
        """Why the target is missed (empty when it is met), one phrase each."""
        why = []
        if self.loso.median_abs_error > self.target_median:
            why.append(f"leave-one-source-out median |error| {self.loso.median_abs_error:.1%} is above "
                       f"{self.target_median:.0%}")
        if self.loso.within_band < self.target_within:
            why.append(f"only {self.loso.within_band:.0%} of cross-validated cases within {OUT_OF_SAMPLE_BAND:.0%} "
                       f"(target {self.target_within:.0%})")
        return why


def step_time_ratio(result: CaseResult) -> float:
    """Published over predicted step time."""
    return speed_ratio(result)


def validate(catalog: Any, tables: Sequence[str] | None = None, path: str | Path | None = None) -> ValidationReport:
    """Fit every stack on all sources, predict every case of ``tables`` (default all) in sample and with its own
    source left out, and summarise both. The fit always uses every table: a selection only narrows what is
    shown."""
    runs = load_published(path)
    fits = fit_sources(runs, catalog)
    everywhere = stack_efficiencies(fits)
    left_out = {s: stack_efficiencies(fits, leave_out=s) for s in fits}
    in_sample, loso = [], []
    for case in runs.cases:
        in_sample.append(predict_case(case, catalog, everywhere[case.preset].efficiency))
        loso.append(predict_case(case, catalog, left_out[case.source_id][case.preset].efficiency))
    ratios = [step_time_ratio(r) for r in loso]
    low, high = band_of(ratios)
    coverage = sum(low <= x <= high for x in ratios) / len(ratios)
    shown = runs.select(tables)
    ids = {t.id for t in shown.tables}
    pick = [i for i, c in enumerate(runs.cases) if c.table in ids]
    in_shown, loso_shown = tuple(in_sample[i] for i in pick), tuple(loso[i] for i in pick)
    roles = {t.id: t.role for t in runs.tables}
    by_role = {}
    for role in (DEVELOPMENT, OUT_OF_SAMPLE):
        summary = ErrorSummary.of([r for r in loso_shown if roles[r.case.table] == role])
        if summary is not None:
            by_role[role] = summary
    summary_in, summary_loso = ErrorSummary.of(in_shown), ErrorSummary.of(loso_shown)
    assert summary_in is not None and summary_loso is not None  # a selection holds at least one table
    return ValidationReport(shown.tables, in_shown, loso_shown, summary_in, summary_loso, by_role, everywhere, fits,
                            (low, high), coverage)


# --- the file ---------------------------------------------------------------------------------

def fit_document(report: ValidationReport) -> dict[str, Any]:
    """What data/stack_fit.yaml holds, rounded so a refit that changes nothing writes the same file."""
    return {
        "schema": SCHEMA, "version": VERSION,
        "presets": {name: {"efficiency": round(e.efficiency, 3), "basis": e.basis}
                    for name, e in report.efficiencies.items()},
        "sources": {s: {"preset": f.preset, "cases": f.cases, "efficiency": round(f.efficiency, 3)}
                    for s, f in report.source_fits.items()},
        "in_sample": _summary(report.in_sample),
        "cross_validation": {
            "method": "leave one source out: each source predicted with the stack efficiencies fitted on the others",
            "sources": len(report.source_fits), **_summary(report.loso),
            "step_time_band": [round(report.band[0], 3), round(report.band[1], 3)],
            "band_percentiles": list(BAND_PERCENTILES), "band_coverage": round(report.band_coverage, 3),
        },
    }


def _summary(summary: ErrorSummary) -> dict[str, Any]:
    return {"cases": summary.cases, "median_abs_error": round(summary.median_abs_error, 4),
            "max_abs_error": round(summary.max_abs_error, 4), "within_25": round(summary.within_band, 4)}


HEADER = ("# Generated by `python -m ai_ready.model.fit` from published_runs.yaml and software.yaml; do not edit.\n"
          "# Each stack's kernel efficiency (ai_ready.model.step.Software.efficiency), the per-source fits it rests\n"
          "# on, and the model's leave-one-source-out error, whose step-time band every prediction carries.\n")


def render(report: ValidationReport) -> str:
    return HEADER + yaml.safe_dump(fit_document(report), sort_keys=False, width=120)


def main(argv: Sequence[str] | None = None) -> int:
    """Refit and write data/stack_fit.yaml (or the path given); print the summary."""
    from ai_ready.catalog import load_catalog

    args = list(sys.argv[1:] if argv is None else argv)
    target = Path(args[0]) if args else FIT_FILE
    report = validate(load_catalog())
    atomic_write_text(target, render(report))
    print(f"{target}: {len(report.source_fits)} sources; in sample median {report.in_sample.median_abs_error:.1%}, "
          f"leave-one-source-out median {report.loso.median_abs_error:.1%}, "
          f"{report.loso.within_band:.0%} within {OUT_OF_SAMPLE_BAND:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
