"""The learning rate every training preset runs with: one schedule shape, a peak scaled with the model's width.

A benchmark run is short (tens of steps), so the schedule must make a model learn from the first steps without
diverging:

- **peak** ``base · min(1, REFERENCE_WIDTH / hidden)``: wider models take smaller steps (the GPT-3 paper's table
  halves the rate from 768 to 2048 wide, Brown et al. 2020, Table 2.1; μP's 1/width rule for Adam). At the
  base rate the 64-wide tiny GPT learns; the 1,792-wide 1b preset runs at 0.14 of it.
- **shape**: linear warm-up over the first ``WARMUP_SHARE`` of the steps (at least one), then cosine decay to
  ``FLOOR`` of the peak at the last step.

A CNN has no hidden width and keeps its base rate.
"""

from __future__ import annotations

import math

REFERENCE_WIDTH = 256
WARMUP_SHARE = 0.2
FLOOR = 0.1


def peak_rate(base: float, hidden: int | None) -> float:
    """The peak learning rate of a model ``hidden`` wide (None: no width, the base rate)."""
    if not hidden:
        return base
    return base * min(1.0, REFERENCE_WIDTH / hidden)


def rate_factor(step: int, total: int) -> float:
    """The share of the peak at ``step`` (0-based) of ``total`` steps: warm-up, then cosine to FLOOR."""
    warmup = max(1, round(WARMUP_SHARE * total))
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup - 1)  # the last step runs at FLOOR
    progress = min(1.0, (step - warmup) / span)
    return FLOOR + (1.0 - FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress))
