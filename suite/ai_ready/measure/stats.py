"""Summary statistics over raw samples.

Outliers are never dropped: a noisy measurement is reported with its spread
and a warning, in the spirit of pyperf and torch.utils.benchmark.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

#: Coefficient of variation (std / mean) above which a measurement is flagged as noisy.
CV_WARN_THRESHOLD = 0.10


@dataclass(frozen=True)
class Summary:
    """Median and spread of one set of samples."""

    n: int
    median: float
    mean: float
    std: float
    cv: float
    min: float
    max: float
    p10: float
    p90: float
    q1: float
    q3: float
    iqr: float

    @property
    def noisy(self) -> bool:
        return self.cv > CV_WARN_THRESHOLD

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(samples: Sequence[float]) -> Summary:
    """Summarise `samples`; raises ValueError for an empty or non-finite set."""
    values = np.asarray(list(samples), dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot summarise an empty set of samples")
    if not np.all(np.isfinite(values)):
        raise ValueError("samples contain NaN or infinity")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    p10, q1, median, q3, p90 = (float(v) for v in np.percentile(values, [10, 25, 50, 75, 90]))
    cv = std / abs(mean) if mean != 0 else (0.0 if std == 0 else math.inf)
    return Summary(
        n=int(values.size),
        median=median,
        mean=mean,
        std=std,
        cv=cv,
        min=float(values.min()),
        max=float(values.max()),
        p10=p10,
        p90=p90,
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
    )


def noise_warning(summary: Summary, what: str) -> str | None:
    """A warning that tells the user what to do when `summary` is too noisy to trust."""
    if not summary.noisy:
        return None
    return (
        f"{what}: CV {summary.cv:.1%} > {CV_WARN_THRESHOLD:.0%} over {summary.n} samples; "
        "the machine was busy or clocks changed: rerun on an idle node, or with a longer time budget"
    )
