"""Failures, checkpointing, energy and cost: hand-computed values, limits, a simulation, catalog systems."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from ai_ready.catalog import load_catalog
from ai_ready.errors import InputError
from ai_ready.model.energy import (DEFAULT_EUR_PER_KWH, DEFAULT_NODE_OVERHEAD_FRACTION, DEFAULT_PUE, cost_eur,
                                   energy_cost, energy_kwh, for_system)
from ai_ready.model.resilience import (CHECKPOINT_BYTES_PER_PARAMETER, DEFAULT_FAILURES_PER_1000_NODE_DAYS,
                                       SECONDS_PER_DAY, checkpoint_bytes, checkpoint_time_s, daly_interval_s,
                                       failures_for_system, first_order_overhead, goodput, job_mttf_s,
                                       young_interval_s)

EXACT = 1e-12
DAY = SECONDS_PER_DAY
HOUR = 3600.0


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


# --- MTTF and intervals -------------------------------------------------------------------------

def test_job_mttf_by_hand() -> None:
    assert job_mttf_s(1, 1.0) == DAY
    assert job_mttf_s(8, 0.5) == pytest.approx(DAY / 4, rel=EXACT)
    # 25,000 nodes at 4 per 1,000 node-days: 100 failures a day, one per 864 s.
    assert job_mttf_s(25_000, 0.004) == pytest.approx(864.0, rel=EXACT)
    assert job_mttf_s(10, 0.0) == math.inf


def test_young_and_daly_by_hand() -> None:
    # δ = 300 s, M = 1 day: √(2·300·86,400) = √51,840,000 = 7,200 s.
    assert young_interval_s(300, DAY) == pytest.approx(7200.0, rel=EXACT)
    # δ/(2M) = 300/172,800 = 1/576, √ = 1/24: 7,200·(1 + 1/72 + 1/5,184) − 300 = 7,001.3888... s.
    assert daly_interval_s(300, DAY) == pytest.approx(7200.0 + 100.0 + 7200.0 / 5184.0 - 300.0, rel=EXACT)
    # δ = 50 s, M = 10,000 s: √10⁶ = 1,000; δ/(2M) = 1/400, √ = 1/20: 1,000·(1 + 1/60 + 1/3,600) − 50.
    assert daly_interval_s(50, 10_000) == pytest.approx(1000.0 * (1 + 1 / 60 + 1 / 3600) - 50.0, rel=EXACT)


def test_daly_tends_to_young_as_checkpoint_shrinks() -> None:
    deviations = []
    for mttf in (1e3, 1e4, 1e5, 1e6, 1e8):
        ratio = daly_interval_s(10.0, mttf) / young_interval_s(10.0, mttf)
        deviations.append(abs(ratio - 1.0))
    assert deviations == sorted(deviations, reverse=True)
    assert deviations[-1] < 1e-3


@pytest.mark.parametrize("delta, mttf", [(200.0, 100.0), (500.0, 100.0), (1e6, 1.0)])
def test_daly_long_checkpoint_branch_returns_mttf(delta: float, mttf: float) -> None:
    assert daly_interval_s(delta, mttf) == mttf


def test_intervals_without_failures_are_infinite() -> None:
    assert young_interval_s(60, math.inf) == math.inf
    assert daly_interval_s(60, math.inf) == math.inf


# --- checkpoint size and time -------------------------------------------------------------------

def test_checkpoint_bytes_by_hand() -> None:
    assert CHECKPOINT_BYTES_PER_PARAMETER == 2 + 4 + 8  # bf16 weights, fp32 master, Adam moments
    assert checkpoint_bytes(175e9) == pytest.approx(2.45e12, rel=EXACT)
    assert checkpoint_bytes(1e9, bytes_per_parameter=16) == 16e9


def test_checkpoint_time_by_hand() -> None:
    assert checkpoint_time_s(1e12, 1e9) == pytest.approx(1000.0, rel=EXACT)
    assert checkpoint_time_s(1e12, 1e9, share=0.25) == pytest.approx(4000.0, rel=EXACT)
    assert checkpoint_time_s(1e12, 1e9, async_fraction=0.75) == pytest.approx(250.0, rel=EXACT)
    assert checkpoint_time_s(0, 1e9) == 0.0


# --- goodput ------------------------------------------------------------------------------------

def _fractions_sum(g) -> float:
    return g.goodput + g.checkpoint_fraction + g.lost_fraction + g.restart_fraction


def test_no_failures_costs_only_checkpoints() -> None:
    g = goodput(10 * DAY, checkpoint_s=60, mttf_s=math.inf, restart_s=600, interval_s=3600)
    assert g.goodput == pytest.approx(3600 / 3660, rel=EXACT)
    assert g.wall_s == pytest.approx(10 * DAY * (1 + 60 / 3600), rel=EXACT)
    assert g.interruptions == 0.0 and g.lost_fraction == 0.0 and g.restart_fraction == 0.0
    assert g.checkpoint_fraction == pytest.approx(60 / 3660, rel=EXACT)
    # Without an interval there are no checkpoints at all.
    free = goodput(10 * DAY, checkpoint_s=60, mttf_s=job_mttf_s(100, 0.0), restart_s=600)
    assert (free.goodput, free.wall_s, free.interval_s) == (1.0, 10 * DAY, math.inf)


def test_goodput_by_hand() -> None:
    # τ = 900, δ = 100, M = 1,000, R = 200: x = 1, r = 0.2; segment S = M·e^r·(e − 1).
    g = goodput(9000, checkpoint_s=100, mttf_s=1000, restart_s=200, interval_s=900)
    segment = 1000 * math.exp(0.2) * (math.e - 1)
    assert g.goodput == pytest.approx(900 / segment, rel=EXACT)
    assert g.wall_s == pytest.approx(10 * segment, rel=EXACT)  # 10 segments of 900 s work
    assert g.interruptions == pytest.approx(10 * segment / 1000, rel=EXACT)
    assert g.restart_fraction == pytest.approx(1 - math.exp(-0.2), rel=EXACT)
    assert g.lost_fraction == pytest.approx(math.exp(-0.2) * (1 - 1 / (math.e - 1)), rel=EXACT)
    assert _fractions_sum(g) == pytest.approx(1.0, rel=EXACT)
    assert g.waste == pytest.approx(1 - g.goodput, rel=EXACT)


def test_goodput_matches_a_simulation() -> None:
    """The expected wall time per segment, M·e^{R/M}·(e^{(τ+δ)/M} − 1), against Poisson failures."""
    tau, delta, mttf, restart, segments = 300.0, 50.0, 1000.0, 100.0, 40_000
    rng = random.Random(1974)
    wall = failures = 0.0
    for _ in range(segments):
        while True:
            t = rng.expovariate(1 / mttf)
            if t >= tau + delta:
                wall += tau + delta
                break
            wall, failures = wall + t, failures + 1
            while True:  # restarts can fail too
                t = rng.expovariate(1 / mttf)
                if t >= restart:
                    wall += restart
                    break
                wall, failures = wall + t, failures + 1
    g = goodput(segments * tau, delta, mttf, restart, interval_s=tau)
    assert wall == pytest.approx(g.wall_s, rel=0.02)
    assert failures == pytest.approx(g.interruptions, rel=0.03)


def test_goodput_falls_with_more_nodes() -> None:
    values = [goodput(30 * DAY, 120, job_mttf_s(nodes, 0.006), 600).goodput for nodes in (1, 10, 100, 1000, 10_000)]
    assert values == sorted(values, reverse=True)
    assert len(set(values)) == len(values)


@pytest.mark.parametrize("delta, mttf, restart", [(300, DAY, 600), (60, 864, 600), (10, 3600, 0), (500, 400, 100)])
def test_daly_interval_minimises_waste(delta: float, mttf: float, restart: float) -> None:
    best = goodput(DAY, delta, mttf, restart)
    assert best.interval_s == daly_interval_s(delta, mttf)
    for factor in (0.5, 2.0):
        assert best.waste <= goodput(DAY, delta, mttf, restart, interval_s=factor * best.interval_s).waste
    # Close to the numerical optimum of the exact model (Daly's estimate is not the exact minimum).
    grid = [goodput(DAY, delta, mttf, restart, interval_s=best.interval_s * k / 100).goodput for k in range(20, 400)]
    assert best.goodput >= max(grid) * (1 - 2e-3)


def test_exact_model_matches_first_order_for_rare_failures() -> None:
    delta, mttf, restart = 30.0, 30 * DAY, 300.0
    tau = young_interval_s(delta, mttf)
    exact = goodput(DAY, delta, mttf, restart, interval_s=tau).overhead
    assert exact == pytest.approx(first_order_overhead(delta, mttf, restart, tau), rel=1e-2)


def test_long_checkpoint_uses_daly_branch() -> None:
    g = goodput(DAY, checkpoint_s=500, mttf_s=200, restart_s=10)
    assert g.interval_s == 200
    assert 0.0 < g.goodput < 1.0 and math.isfinite(g.wall_s)


@pytest.mark.parametrize("mttf", [1e-3, 1.0, 10.0, 100.0])
def test_tiny_mttf_keeps_goodput_in_range(mttf: float) -> None:
    g = goodput(30 * DAY, checkpoint_s=60, mttf_s=mttf, restart_s=600)
    assert 0.0 <= g.goodput < 1e-2
    assert all(0.0 <= f <= 1.0 for f in (g.checkpoint_fraction, g.lost_fraction, g.restart_fraction))
    assert g.wall_s > 30 * DAY  # may be inf when goodput underflows


def test_free_checkpoints_leave_only_restarts() -> None:
    g = goodput(DAY, checkpoint_s=0, mttf_s=1000, restart_s=100)
    assert g.interval_s == 0.0
    assert g.goodput == pytest.approx(math.exp(-0.1), rel=EXACT)
    assert _fractions_sum(g) == pytest.approx(1.0, rel=EXACT)


# --- catalog: failures ---------------------------------------------------------------------------

def test_gigafactory_fails_about_a_hundred_times_a_day(catalog) -> None:
    system = catalog.system("gigafactory-100k")
    per_1000 = float(system.reliability["failures_per_1000_node_days"].value)
    per_node = int(system.accelerators_per_node.value)
    f = failures_for_system(system, 100_000)
    assert f.nodes == math.ceil(100_000 / per_node)
    assert f.failures_per_day == pytest.approx(f.nodes * per_1000 / 1000, rel=EXACT)
    assert f.mttf_s == pytest.approx(DAY / f.failures_per_day, rel=EXACT)
    assert 80 <= f.failures_per_day <= 120  # the catalog's note: "about 100 times a day (job MTTF ~14 min)"
    assert 12 * 60 <= f.mttf_s <= 16 * 60
    assert any("failures_per_1000_node_days" in a and "assumption" in a for a in f.assumptions)


def test_partial_nodes_round_up(catalog) -> None:
    assert failures_for_system(catalog.system("gigafactory-100k"), 5).nodes == 2
    f = failures_for_system(catalog.system("dgx-h100"), 5)
    assert f.nodes == 1 and f.failures_per_node_day == pytest.approx(0.006, rel=EXACT)


def test_missing_failure_rate_is_an_assumption(catalog) -> None:
    system = dataclasses.replace(catalog.system("dgx-h100"), reliability={})
    f = failures_for_system(system, 8)
    assert f.failures_per_node_day == DEFAULT_FAILURES_PER_1000_NODE_DAYS / 1000
    assert "not in the catalog" in f.assumptions[-1] and "assumption" in f.assumptions[-1]


def test_too_many_gpus_for_the_system(catalog) -> None:
    with pytest.raises(InputError, match="dgx-h100"):
        failures_for_system(catalog.system("dgx-h100"), 9)
    with pytest.raises(InputError, match="dgx-h100"):
        for_system(catalog.system("dgx-h100"), 9, 1.0)


# --- energy -------------------------------------------------------------------------------------

def test_energy_by_hand() -> None:
    # 8 × 700 W × 1.5 × PUE 1.3 × 10 h = 10,920 W × 10 h = 109.2 kWh; at 0.20 EUR/kWh 21.84 EUR.
    assert energy_kwh(8, 700, 10, 0.5, 1.3) == pytest.approx(109.2, rel=EXACT)
    assert cost_eur(109.2, 0.2) == pytest.approx(21.84, rel=EXACT)
    e = energy_cost(8, 700, 10, 0.5, 1.3, 0.2)
    assert (e.kwh, e.eur) == (pytest.approx(109.2, rel=EXACT), pytest.approx(21.84, rel=EXACT))
    assert e.it_power_kw == pytest.approx(8.4, rel=EXACT)
    assert e.facility_power_kw == pytest.approx(10.92, rel=EXACT)
    assert cost_eur(100) == pytest.approx(100 * DEFAULT_EUR_PER_KWH, rel=EXACT)


def test_energy_for_gigafactory(catalog) -> None:
    system = catalog.system("gigafactory-100k")
    e = for_system(system, 100_000, hours=24 * 30)
    tdp = float(system.accelerator.power_w.value)
    overhead = float(system.power["system_power_mw"].value) * 1e6 / (100_000 * tdp) - 1
    assert e.node_overhead_fraction == pytest.approx(overhead, rel=EXACT)
    assert e.pue == float(system.power["pue"].value)
    assert e.kwh == pytest.approx(energy_kwh(100_000, tdp, 24 * 30, overhead, e.pue), rel=EXACT)
    assert e.eur == pytest.approx(e.kwh * DEFAULT_EUR_PER_KWH, rel=EXACT)
    text = "\n".join(e.assumptions)
    for key in ("power_w", "power.system_power_mw", "power.pue", "electricity price"):
        assert key in text
    assert "S34" in text  # the price's source in the research notes


def test_energy_for_dgx_h100_uses_the_overhead_assumption(catalog) -> None:
    system = catalog.system("dgx-h100")
    e = for_system(system, 8, hours=10, utilisation_power_fraction=0.8, eur_per_kwh=0.25)
    assert e.node_overhead_fraction == DEFAULT_NODE_OVERHEAD_FRACTION
    assert e.gpu_power_w == pytest.approx(0.8 * float(system.accelerator.power_w.value), rel=EXACT)
    assert e.kwh == pytest.approx(energy_kwh(8, e.gpu_power_w, 10, e.node_overhead_fraction, e.pue), rel=EXACT)
    assert math.isfinite(e.eur) and e.eur > 0
    assert any(a.startswith("node overhead") and "assumption" in a for a in e.assumptions)
    assert sum("given by the caller" in a for a in e.assumptions) == 2


def test_missing_catalog_figures(catalog) -> None:
    system = catalog.system("dgx-h100")
    no_pue = for_system(dataclasses.replace(system, power={}), 8, 1.0)
    assert no_pue.pue == DEFAULT_PUE
    assert any(a.startswith("PUE") and "not in the catalog" in a for a in no_pue.assumptions)
    powerless = dataclasses.replace(system, accelerator=dataclasses.replace(system.accelerator, power_w=None))
    with pytest.raises(InputError, match="power_w"):
        for_system(powerless, 8, 1.0)


# --- bad arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: job_mttf_s(0, 0.005),
    lambda: job_mttf_s(2.5, 0.005),
    lambda: job_mttf_s(10, -0.005),
    lambda: job_mttf_s(10, math.nan),
    lambda: young_interval_s(-1, DAY),
    lambda: young_interval_s(60, 0),
    lambda: daly_interval_s(0, DAY),
    lambda: checkpoint_bytes(-1),
    lambda: checkpoint_bytes(1e9, bytes_per_parameter=0),
    lambda: checkpoint_time_s(-1, 1e9),
    lambda: checkpoint_time_s(1e12, 0),
    lambda: checkpoint_time_s(1e12, 1e9, share=0),
    lambda: checkpoint_time_s(1e12, 1e9, share=1.5),
    lambda: checkpoint_time_s(1e12, 1e9, async_fraction=1.0),
    lambda: goodput(-1, 60, DAY, 600),
    lambda: goodput(DAY, -60, DAY, 600),
    lambda: goodput(DAY, 60, 0, 600),
    lambda: goodput(DAY, 60, DAY, -1),
    lambda: goodput(DAY, 60, DAY, 600, interval_s=0),
    lambda: goodput(DAY, 60, DAY, 600, interval_s=math.inf),
    lambda: energy_kwh(-8, 700, 10, 0.5, 1.3),
    lambda: energy_kwh(8, -700, 10, 0.5, 1.3),
    lambda: energy_kwh(8, 700, -10, 0.5, 1.3),
    lambda: energy_kwh(8, 700, 10, -0.5, 1.3),
    lambda: energy_kwh(8, 700, 10, 0.5, 0.9),
    lambda: energy_kwh(8, 700, math.inf, 0.5, 1.3),
    lambda: cost_eur(-1, 0.2),
    lambda: cost_eur(1, -0.2),
])
def test_bad_arguments_raise(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_bad_system_arguments_raise(catalog) -> None:
    system = catalog.system("dgx-h100")
    for call in (lambda: failures_for_system(system, 0), lambda: for_system(system, 0, 1.0),
                 lambda: for_system(system, 8, -1.0),
                 lambda: for_system(system, 8, 1.0, utilisation_power_fraction=1.5)):
        with pytest.raises(ValueError):
            call()
