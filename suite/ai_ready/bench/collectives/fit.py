"""Alpha-beta (latency-bandwidth) fit of collective times: t(S) = α + S/β.

The fit minimises *relative* residuals (weights 1/t), so microsecond-scale
small messages fix α as firmly as large messages fix β; an ordinary fit
would let the largest sizes decide everything. α is kept non-negative.
Quality is reported as R² (ordinary, on t) and the largest relative
residual, with the size range used, so the extrapolation knows what the
line is good for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

#: bytes per microsecond -> GB/s (1e9 bytes per second).
BYTES_PER_US_TO_GBS = 1e6 / 1e9
MIN_POINTS = 2
#: The size term S/β must reach this share of the time at the largest size, or there is no bandwidth to see.
MIN_SIZE_TERM_SHARE = 0.01


@dataclass(frozen=True)
class AlphaBeta:
    alpha_us: float
    beta_gbs: float
    r2: float
    max_rel_error: float
    points: int
    min_bytes: int
    max_bytes: int

    def predict_us(self, size_bytes: float) -> float:
        return self.alpha_us + size_bytes / (self.beta_gbs / BYTES_PER_US_TO_GBS)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


class FitError(ValueError):
    """The points do not determine a latency and a bandwidth."""


def fit_alpha_beta(sizes_bytes: Sequence[float], times_us: Sequence[float]) -> AlphaBeta:
    """Weighted least squares of t = α + γ·S with β = 1/γ; raises FitError when that is meaningless."""
    s = np.asarray(sizes_bytes, dtype=np.float64)
    t = np.asarray(times_us, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(t) & (t > 0)
    s, t = s[ok], t[ok]
    if s.size < MIN_POINTS or np.unique(s).size < MIN_POINTS:
        raise FitError(f"need at least {MIN_POINTS} distinct sizes with positive times, got {np.unique(s).size}")
    w = 1.0 / t
    design = np.column_stack([np.ones_like(s), s]) * w[:, None]
    (alpha, gamma), *_ = np.linalg.lstsq(design, t * w, rcond=None)
    if alpha < 0:  # latency cannot be negative: refit through the origin
        alpha = 0.0
        gamma = float(np.sum(w * w * s * t) / np.sum(w * w * s * s))
    largest_term = gamma * float(s.max())
    if gamma <= 0 or largest_term < MIN_SIZE_TERM_SHARE * (alpha + largest_term):
        raise FitError("time does not grow with message size over this range: no bandwidth to fit")
    predicted = alpha + gamma * s
    ss_res = float(np.sum((t - predicted) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return AlphaBeta(
        alpha_us=float(alpha),
        beta_gbs=float(BYTES_PER_US_TO_GBS / gamma),
        r2=r2,
        max_rel_error=float(np.max(np.abs(t - predicted) / t)),
        points=int(s.size),
        min_bytes=int(s.min()),
        max_bytes=int(s.max()),
    )
