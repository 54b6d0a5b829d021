#!/usr/bin/env python3
"""False-alarm rate and detection power of `ai-ready accept`'s history checks (target: < 1% false alarms).

Synthetic nightly histories (ai_ready.accept.synthetic): each night's level varies by 0.5-3% and its
samples by 2-5% (5-30 samples a night), both with Student-t (5 degrees of freedom) tails. Every night
is judged against the nights before it exactly as `ai-ready accept` would (reference-free: the median/
MAD history check with its rank test, and Pettitt's change-point test), and the alarms are counted.
Then a planted step regression (-10% by default) is judged on the night it appears, and within three
nights, for the default noise (3% samples, 1% nights) and for 3% night-to-night noise.

    python benchmarks/accept_false_alarms.py --histories 1080 --trials 400   # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import time

from ai_ready.accept.synthetic import STEP_MODEL, detection_power, false_alarm_rate, noise_models

TARGET_FALSE_ALARMS = 0.01


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--histories", type=int, default=540, help="noise-only histories (30 nights each)")
    parser.add_argument("--trials", type=int, default=200, help="histories with a planted step, per scenario")
    parser.add_argument("--step", type=float, default=0.10, help="planted regression as a fraction")
    args = parser.parse_args()
    start = time.perf_counter()
    worst = 0.0
    for better in ("higher", "lower"):
        rate = false_alarm_rate(args.histories, better=better)
        worst = max(worst, rate.per_night, rate.last_night)
        print(f"false alarms ({better} is better): {rate.alarms} of {rate.decisions} nightly decisions = "
              f"{rate.per_night:.3%} per metric-night; last night of each history: {rate.last_night_alarms} of "
              f"{rate.histories} = {rate.last_night:.2%}; {len(noise_models())} noise models; target < "
              f"{TARGET_FALSE_ALARMS:.0%}")
    scenarios = [("3% sample noise, 1% between nights", STEP_MODEL),
                 ("3% sample noise, 3% between nights", STEP_MODEL.with_(cv_night=0.03))]
    for label, model in scenarios:
        for within in (1, 3):
            power = detection_power(args.trials, model, args.step, within=within)
            print(f"detection power, -{args.step:.0%} step, {label}, caught within {within} night(s): {power:.1%} "
                  f"of {args.trials}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0 if worst < TARGET_FALSE_ALARMS else 1


if __name__ == "__main__":
    sys.exit(main())
