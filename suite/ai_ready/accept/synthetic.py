"""Synthetic nightly histories: noise only, or with a planted step, for calibrating and testing the detectors.

A night's true level varies around the base (``cv_night``: node state, temperature, neighbours); its
samples vary around that level (``cv_sample``); both with Student-t tails (``tail_df``), because real
timings have occasional wild values. The night's figure is the median of its samples, as in a record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ai_ready.accept.detect import HIGHER, Night

#: Student-t degrees of freedom of the default noise: heavier tails than normal, finite variance.
DEFAULT_TAIL_DF = 5.0


@dataclass(frozen=True)
class NoiseModel:
    """How a figure varies between nights and between samples of one night (coefficients of variation)."""

    base: float = 100.0
    cv_night: float = 0.01
    cv_sample: float = 0.03
    samples: int = 10
    tail_df: float = DEFAULT_TAIL_DF

    def with_(self, **changes: float) -> "NoiseModel":
        return replace(self, **changes)


def _unit_noise(rng: np.random.Generator, size: int, df: float) -> np.ndarray:
    """Zero-mean, unit-variance noise: Student-t scaled to variance 1 (normal when df is infinite)."""
    if math.isinf(df):
        return rng.standard_normal(size)
    return rng.standard_t(df, size) * math.sqrt((df - 2) / df)


def history(rng: np.random.Generator, model: NoiseModel, nights: int, step: float = 0.0, step_at: int | None = None,
            better: str = HIGHER) -> list[Night]:
    """`nights` nights, oldest first; from night `step_at` on the level is worse by the fraction `step`."""
    out = []
    for night in range(nights):
        level = model.base * (1 + model.cv_night * _unit_noise(rng, 1, model.tail_df)[0])
        if step and step_at is not None and night >= step_at:
            level *= (1 - step) if better == HIGHER else (1 + step)
        samples = level * (1 + model.cv_sample * _unit_noise(rng, model.samples, model.tail_df))
        out.append(Night(run_id=night + 1, started=f"night-{night + 1:03d}", value=float(np.median(samples)),
                         samples=tuple(float(s) for s in samples)))
    return out


def judge_nights(nights: list[Night], better: str = HIGHER) -> list[Night]:
    """Judge every night in turn against the ones before it, as the nightly runs would have, and return
    the nights with their `flagged` state (a flagged night leaves later baselines, see check_history)."""
    from ai_ready.accept.detect import HORIZON_NIGHTS, history_findings

    judged: list[Night] = []
    for night in nights:
        findings = history_findings(night, judged[-HORIZON_NIGHTS:], better)
        judged.append(replace(night, flagged=any(f.failing for f in findings)))
    return judged


#: Noise models of the false-alarm measurement: night-to-night CV x sample CV x samples per night.
NIGHT_CVS = (0.005, 0.01, 0.02, 0.03)
SAMPLE_CVS = (0.02, 0.03, 0.05)
SAMPLE_COUNTS = (5, 10, 30)
#: The model of "a -10% step with 3% noise": samples vary by 3%, nights by 1%, 10 samples a night.
STEP_MODEL = NoiseModel(cv_night=0.01, cv_sample=0.03, samples=10)


def noise_models() -> list[NoiseModel]:
    return [NoiseModel(cv_night=n, cv_sample=s, samples=k)
            for n in NIGHT_CVS for s in SAMPLE_CVS for k in SAMPLE_COUNTS]


@dataclass(frozen=True)
class AlarmRate:
    """Alarms among decisions: every night judged with enough history, and the last night of each history."""

    histories: int
    decisions: int
    alarms: int
    last_night_alarms: int

    @property
    def per_night(self) -> float:
        return self.alarms / self.decisions if self.decisions else 0.0

    @property
    def last_night(self) -> float:
        return self.last_night_alarms / self.histories if self.histories else 0.0


def false_alarm_rate(histories: int, nights: int = 30, seed: int = 0, better: str = HIGHER) -> AlarmRate:
    """Judge `histories` noise-only histories (spread over noise_models()) night by night and count alarms."""
    from ai_ready.accept.detect import MIN_HISTORY_NIGHTS

    models = noise_models()
    decisions = alarms = last = 0
    for index in range(histories):
        model = models[index % len(models)]
        judged = judge_nights(history(np.random.default_rng([seed, index]), model, nights, better=better), better)
        flags = [n.flagged for n in judged[MIN_HISTORY_NIGHTS:]]
        decisions += len(flags)
        alarms += sum(flags)
        last += judged[-1].flagged
    return AlarmRate(histories, decisions, alarms, last)


def detection_power(trials: int, model: NoiseModel = STEP_MODEL, step: float = 0.10, nights: int = 30,
                    within: int = 1, seed: int = 1, better: str = HIGHER) -> float:
    """Share of histories whose step on the last `within` nights is caught by one of those nights."""
    caught = 0
    for index in range(trials):
        rng = np.random.default_rng([seed, index])
        judged = judge_nights(history(rng, model, nights, step=step, step_at=nights - within, better=better), better)
        caught += any(n.flagged for n in judged[nights - within:])
    return caught / trials if trials else 0.0
