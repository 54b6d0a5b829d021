"""Collective cost model: hand-computed α-β values, ring/tree choice, two tiers, conversions, calibration."""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest

from ai_ready.bench.collectives.fit import fit_alpha_beta
from ai_ready.bench.collectives.ops import COLLECTIVES, size_sweep
from ai_ready.bench.collectives.run import Sweep
from ai_ready.model.comm import (
    TREE_BUS_BANDWIDTH_FRACTION, Link, algorithm_bandwidth, all_reduce, all_reduce_choice, all_to_all, broadcast,
    bus_bandwidth, bus_factor, hierarchical_all_gather, hierarchical_all_reduce, hierarchical_all_to_all,
    hierarchical_reduce_scatter, latency_steps, p2p, ring_all_gather, ring_all_reduce, ring_reduce_scatter,
    tree_all_reduce,
)

EXACT = 1e-12
MIB = 1 << 20
# Round numbers for hand computation: 10 µs per message, 1 GB/s, so S/B is S in GB as seconds.
ALPHA, BW = 1e-5, 1e9
LINK = Link(alpha_s=ALPHA, bandwidth_Bps=BW)
# Realistic tiers: NVLink-class scale-up and a 400 Gb/s NIC per GPU.
NVLINK = Link(alpha_s=2e-6, bandwidth_Bps=360e9)
NIC = Link(alpha_s=8e-6, bandwidth_Bps=45e9)
TREE_BW = TREE_BUS_BANDWIDTH_FRACTION

Flat = Callable[[float, int, Link], float]
FLAT: dict[str, Flat] = {
    "ring_all_reduce": ring_all_reduce, "tree_all_reduce": tree_all_reduce, "all_reduce": all_reduce,
    "ring_reduce_scatter": ring_reduce_scatter, "ring_all_gather": ring_all_gather, "all_to_all": all_to_all,
    "broadcast": broadcast,
}
HIERARCHICAL = {
    "all_reduce": hierarchical_all_reduce, "reduce_scatter": hierarchical_reduce_scatter,
    "all_gather": hierarchical_all_gather, "all_to_all": hierarchical_all_to_all,
}
#: The flat formula of each benchmarked operation, in the benchmark's size convention.
MODEL_OF_OP: dict[str, Flat] = {
    "all_reduce": ring_all_reduce, "all_gather": ring_all_gather, "reduce_scatter": ring_reduce_scatter,
    "all_to_all": all_to_all, "broadcast": broadcast, "sendrecv": lambda S, n, link: p2p(S, link),
}


# --- flat formulas, by hand ---------------------------------------------------------------------

# (n, S, ring all-reduce, reduce-scatter = all-gather = all-to-all, broadcast, tree all-reduce), α = 1e-5, B = 1e9
HAND = [
    # n=2, S=1 GB: 2·1·α + 2·½·1 s; 1·α + ½ s; α + 1 s; 2·⌊log₂2⌋·α + 2·1 s / 0.92
    (2, 1e9, 2e-5 + 1.0, 1e-5 + 0.5, 1e-5 + 1.0, 2e-5 + 2.0 / TREE_BW),
    # n=8, S=8 MB: 14α + 2·⅞·8 ms; 7α + ⅞·8 ms; 7α + 8 ms; 2·3·α + 16 ms / 0.92
    (8, 8e6, 14e-5 + 0.014, 7e-5 + 0.007, 7e-5 + 0.008, 6e-5 + 0.016 / TREE_BW),
    # n=6, S=3 MB: 10α + 2·⅚·3 ms; 5α + ⅚·3 ms; 5α + 3 ms; 2·⌊log₂6⌋=4 α + 6 ms / 0.92
    (6, 3e6, 10e-5 + 0.005, 5e-5 + 0.0025, 5e-5 + 0.003, 4e-5 + 0.006 / TREE_BW),
    # n=1000, S=0: latency only; ⌊log₂1000⌋ = 9
    (1000, 0.0, 1998e-5, 999e-5, 999e-5, 18e-5),
]


@pytest.mark.parametrize("n, S, ring, split, bcast, tree", HAND)
def test_flat_formulas_match_hand_values(n: int, S: float, ring: float, split: float, bcast: float,
                                         tree: float) -> None:
    assert ring_all_reduce(S, n, LINK) == pytest.approx(ring, rel=EXACT)
    assert ring_reduce_scatter(S, n, LINK) == pytest.approx(split, rel=EXACT)
    assert ring_all_gather(S, n, LINK) == pytest.approx(split, rel=EXACT)
    assert all_to_all(S, n, LINK) == pytest.approx(split, rel=EXACT)
    assert broadcast(S, n, LINK) == pytest.approx(bcast, rel=EXACT)
    assert tree_all_reduce(S, n, LINK) == pytest.approx(tree, rel=EXACT)
    assert all_reduce(S, n, LINK, "ring") == ring_all_reduce(S, n, LINK)
    assert all_reduce(S, n, LINK, "tree") == tree_all_reduce(S, n, LINK)
    assert all_reduce(S, n, LINK) == pytest.approx(min(ring, tree), rel=EXACT)


@pytest.mark.parametrize("S, expected", [(0.0, 1e-5), (5e8, 1e-5 + 0.5), (123.0, 1e-5 + 123e-9)])
def test_p2p_is_alpha_plus_size_over_bandwidth(S: float, expected: float) -> None:
    assert p2p(S, LINK) == pytest.approx(expected, rel=EXACT)


def test_efficiency_scales_the_bandwidth() -> None:
    derated = Link(alpha_s=ALPHA, bandwidth_Bps=2 * BW, efficiency=0.5)
    assert derated.effective_Bps == BW
    for name, fn in FLAT.items():
        assert fn(3e7, 16, derated) == pytest.approx(fn(3e7, 16, LINK), rel=EXACT), name
    assert p2p(3e7, derated) == pytest.approx(p2p(3e7, LINK), rel=EXACT)


@pytest.mark.parametrize("name", sorted(FLAT))
def test_one_rank_costs_nothing(name: str) -> None:
    assert FLAT[name](1e9, 1, LINK) == 0.0


@pytest.mark.parametrize("name", sorted(HIERARCHICAL))
def test_one_rank_costs_nothing_over_two_tiers(name: str) -> None:
    assert HIERARCHICAL[name](1e9, 1, 1, NVLINK, NIC) == 0.0


def test_zero_bytes_leave_the_latency_terms() -> None:
    n = 16
    assert ring_all_reduce(0.0, n, LINK) == pytest.approx(2 * (n - 1) * ALPHA, rel=EXACT)
    assert tree_all_reduce(0.0, n, LINK) == pytest.approx(2 * 4 * ALPHA, rel=EXACT)
    for fn in (ring_reduce_scatter, ring_all_gather, all_to_all, broadcast):
        assert fn(0.0, n, LINK) == pytest.approx((n - 1) * ALPHA, rel=EXACT)
    assert p2p(0.0, LINK) == ALPHA


# --- ring or tree -----------------------------------------------------------------------------------

def _choices(n: int, link: Link) -> tuple[list[float], list[str]]:
    sizes = [float(10.0 ** (k / 4)) for k in range(0, 4 * 15 + 1)]  # 1 B .. 1e15 B
    return sizes, [all_reduce_choice(S, n, link)[1] for S in sizes]


def test_auto_is_the_faster_algorithm_and_says_which() -> None:
    for n in (2, 3, 8, 72, 1024, 100_000):
        for S in (0.0, 1e3, 1e6, 1e9, 1e12):
            ring, tree = ring_all_reduce(S, n, NIC), tree_all_reduce(S, n, NIC)
            time, algorithm = all_reduce_choice(S, n, NIC)
            assert time == min(ring, tree) == all_reduce(S, n, NIC)
            assert algorithm == ("tree" if tree < ring else "ring")


def test_tree_wins_small_messages_at_scale_and_ring_wins_large_messages_on_few_ranks() -> None:
    assert all_reduce_choice(1024.0, 100_000, NIC)[1] == "tree"
    assert all_reduce_choice(float(1 << 30), 8, NIC)[1] == "ring"
    # two ranks: the same latency, the tree's bandwidth is lower, so the ring always (a tie goes to it)
    assert set(_choices(2, NIC)[1]) == {"ring"}


def test_ring_tree_crossover_is_single_and_moves_up_with_ranks() -> None:
    crossovers = []
    for n in (4, 16, 256, 4096, 100_000):
        sizes, choices = _choices(n, NIC)
        switches = [i for i in range(1, len(choices)) if choices[i] != choices[i - 1]]
        assert choices[0] == "tree" and choices[-1] == "ring" and len(switches) == 1, (n, choices)
        crossovers.append(sizes[switches[0]])
    assert crossovers == sorted(crossovers) and crossovers[0] < crossovers[-1]


# --- two tiers ----------------------------------------------------------------------------------------

def test_hierarchical_all_reduce_is_the_reference_decomposition() -> None:
    S, g, N = 1e9, 8, 16
    expected = (2 * (g - 1) * NVLINK.alpha_s + 2 * (g - 1) / g * S / NVLINK.bandwidth_Bps
                + 2 * (N - 1) * NIC.alpha_s + 2 * (N - 1) / N * (S / g) / NIC.bandwidth_Bps)
    assert hierarchical_all_reduce(S, g, N, NVLINK, NIC, inter_algorithm="ring") == pytest.approx(expected, rel=EXACT)
    assert hierarchical_all_reduce(S, g, N, NVLINK, NIC) == pytest.approx(
        ring_reduce_scatter(S, g, NVLINK) + all_reduce(S / g, N, NIC) + ring_all_gather(S, g, NVLINK), rel=EXACT)


def test_hierarchical_reduce_scatter_and_all_gather_by_hand() -> None:
    # S = 64 MB over 4 domains of 8: inside 7·(α + 8 MB/B_intra), across 3·(α + 2 MB/B_inter)
    S, g, N = 64e6, 8, 4
    expected = 7 * (2e-6 + 8e6 / 360e9) + 3 * (8e-6 + 2e6 / 45e9)
    assert hierarchical_reduce_scatter(S, g, N, NVLINK, NIC) == pytest.approx(expected, rel=EXACT)
    assert hierarchical_all_gather(S, g, N, NVLINK, NIC) == pytest.approx(expected, rel=EXACT)


@pytest.mark.parametrize("intra, inter, expected", [
    # S = 32 MB, g = 8, N = 4: 1 MB per peer; inside 7·(1 µs + 1 MB/400 GB/s), outside 24·(10 µs + 1 MB/50 GB/s)
    (Link(1e-6, 400e9), Link(1e-5, 50e9), max(7 * (1e-6 + 2.5e-6), 24 * (1e-5 + 2e-5))),
    # a slow scale-up tier bounds the time instead: 7·(1 µs + 1 MB/1 GB/s) against 24·(10 µs + 1 MB/1 TB/s)
    (Link(1e-6, 1e9), Link(1e-5, 1e12), max(7 * (1e-6 + 1e-3), 24 * (1e-5 + 1e-6))),
])
def test_hierarchical_all_to_all_is_bounded_by_the_slower_tier(intra: Link, inter: Link, expected: float) -> None:
    assert hierarchical_all_to_all(32e6, 8, 4, intra, inter) == pytest.approx(expected, rel=EXACT)


@pytest.mark.parametrize("S", [0.0, 4096.0, 1e9])
@pytest.mark.parametrize("n", [2, 8, 72])
def test_one_domain_is_the_flat_ring_on_the_scale_up_link(S: float, n: int) -> None:
    assert hierarchical_all_reduce(S, n, 1, NVLINK, NIC) == pytest.approx(ring_all_reduce(S, n, NVLINK), rel=EXACT)
    assert hierarchical_reduce_scatter(S, n, 1, NVLINK, NIC) == pytest.approx(
        ring_reduce_scatter(S, n, NVLINK), rel=EXACT)
    assert hierarchical_all_gather(S, n, 1, NVLINK, NIC) == pytest.approx(ring_all_gather(S, n, NVLINK), rel=EXACT)
    assert hierarchical_all_to_all(S, n, 1, NVLINK, NIC) == pytest.approx(all_to_all(S, n, NVLINK), rel=EXACT)


@pytest.mark.parametrize("S", [0.0, 4096.0, 1e9])
@pytest.mark.parametrize("n", [2, 64, 100_000])
def test_one_rank_per_domain_is_the_flat_collective_on_the_inter_link(S: float, n: int) -> None:
    assert hierarchical_all_reduce(S, 1, n, NVLINK, NIC) == pytest.approx(all_reduce(S, n, NIC), rel=EXACT)
    assert hierarchical_all_reduce(S, 1, n, NVLINK, NIC, "ring") == pytest.approx(
        ring_all_reduce(S, n, NIC), rel=EXACT)
    assert hierarchical_reduce_scatter(S, 1, n, NVLINK, NIC) == pytest.approx(ring_reduce_scatter(S, n, NIC), rel=EXACT)
    assert hierarchical_all_gather(S, 1, n, NVLINK, NIC) == pytest.approx(ring_all_gather(S, n, NIC), rel=EXACT)
    assert hierarchical_all_to_all(S, 1, n, NVLINK, NIC) == pytest.approx(all_to_all(S, n, NIC), rel=EXACT)


def test_two_tiers_beat_a_flat_ring_on_the_slow_tier() -> None:
    S, g, N = 1e9, 8, 128
    assert hierarchical_all_reduce(S, g, N, NVLINK, NIC) < ring_all_reduce(S, g * N, NIC)
    assert hierarchical_reduce_scatter(S, g, N, NVLINK, NIC) < ring_reduce_scatter(S, g * N, NIC)


# --- monotonic ----------------------------------------------------------------------------------------

SIZES = [0.0, 1.0, 1e3, 1e5, 1e7, 1e9, 1e11]
RANKS = [1, 2, 3, 4, 7, 8, 64, 72, 1000, 1024, 100_000]


@pytest.mark.parametrize("name", sorted(FLAT))
def test_flat_times_grow_with_size_and_ranks(name: str) -> None:
    fn = FLAT[name]
    for n in RANKS:
        times = [fn(S, n, NIC) for S in SIZES]
        assert times == sorted(times), (name, n)
    for S in SIZES:
        times = [fn(S, n, NIC) for n in RANKS]
        assert times == sorted(times), (name, S)
    times = [p2p(S, NIC) for S in SIZES]
    assert times == sorted(times)


@pytest.mark.parametrize("name", sorted(HIERARCHICAL))
def test_hierarchical_times_grow_with_size_and_domains(name: str) -> None:
    fn = HIERARCHICAL[name]
    for g in (1, 4, 8, 72):
        for N in (1, 2, 16, 1389):
            times = [fn(S, g, N, NVLINK, NIC) for S in SIZES]
            assert times == sorted(times), (name, g, N)
        for S in SIZES:
            times = [fn(S, g, N, NVLINK, NIC) for N in (1, 2, 3, 16, 128, 1389)]
            assert times == sorted(times), (name, g, S)


# --- bus bandwidth (nccl-tests doc/PERFORMANCE.md) ----------------------------------------------------

@pytest.mark.parametrize("op, n, factor", [
    ("all_reduce", 2, 1.0), ("all_reduce", 8, 1.75), ("all_reduce", 1, 0.0), ("reduce_scatter", 8, 0.875),
    ("all_gather", 4, 0.75), ("all_to_all", 2, 0.5), ("broadcast", 8, 1.0), ("reduce", 8, 1.0),
    ("sendrecv", 2, 1.0), ("send_recv", 64, 1.0),
])
def test_bus_factors(op: str, n: int, factor: float) -> None:
    assert bus_factor(op, n) == pytest.approx(factor, rel=EXACT)
    assert bus_bandwidth(10.0, op, n) == pytest.approx(10.0 * factor, rel=EXACT)


@pytest.mark.parametrize("op", sorted(COLLECTIVES))
@pytest.mark.parametrize("n", [1, 2, 3, 8, 100_000])
def test_bus_factors_agree_with_the_benchmark(op: str, n: int) -> None:
    assert bus_factor(op, n) == pytest.approx(COLLECTIVES[op].bus_factor(n), rel=EXACT)


@pytest.mark.parametrize("op", ["all_reduce", "reduce_scatter", "all_gather", "all_to_all", "broadcast", "sendrecv"])
@pytest.mark.parametrize("n", [2, 5, 8, 4096])
def test_bus_bandwidth_round_trips(op: str, n: int) -> None:
    for alg in (0.0, 1.5, 123.456e9):
        assert algorithm_bandwidth(bus_bandwidth(alg, op, n), op, n) == pytest.approx(alg, rel=EXACT)
        assert bus_bandwidth(algorithm_bandwidth(alg, op, n), op, n) == pytest.approx(alg, rel=EXACT)


def test_bandwidth_conversion_errors() -> None:
    with pytest.raises(ValueError, match="one rank"):
        algorithm_bandwidth(1.0, "all_reduce", 1)
    with pytest.raises(ValueError, match="unknown operation"):
        bus_factor("allreduce", 8)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            bus_bandwidth(bad, "all_reduce", 8)
    with pytest.raises(ValueError):
        bus_factor("all_reduce", 0)


# --- calibration from the collectives benchmark's fits ------------------------------------------------

def _fit_records(op: str, n: int, sizes: list[int], times_us: list[float]) -> list:
    """The fit records exactly as the benchmark writes them (Sweep._fit_records), without a sweep."""
    fake = SimpleNamespace(backend=SimpleNamespace(name="nccl", buffers="device", dtype_name="float32"),
                           comm=SimpleNamespace(size=n), host="node0")
    fake.params = functools.partial(Sweep.params, fake)
    fake._record = functools.partial(Sweep._record, fake)
    return Sweep._fit_records(fake, COLLECTIVES[op], "out-of-place", list(zip(sizes, times_us)))


def _synthetic_times_us(op: str, n: int, link: Link, sizes: list[int]) -> list[float]:
    return [MODEL_OF_OP[op](float(S), n, link) * 1e6 for S in sizes]


@pytest.mark.parametrize("op", sorted(MODEL_OF_OP))
@pytest.mark.parametrize("n", [2, 8])
def test_link_from_fit_records_recovers_alpha_and_bus_bandwidth(op: str, n: int) -> None:
    truth = Link(alpha_s=3e-6, bandwidth_Bps=150e9)
    sizes = size_sweep(8, 256 * MIB, 2)
    records = _fit_records(op, n, sizes, _synthetic_times_us(op, n, truth, sizes))
    assert [r.metric for r in records] == ["alpha", "beta"] and all(r.status == "ok" for r in records)
    for source in (records, [r.to_dict() for r in records]):
        link = Link.from_fit(source)
        assert link.alpha_s == pytest.approx(truth.alpha_s, rel=1e-6)
        assert link.bandwidth_Bps == pytest.approx(truth.bandwidth_Bps, rel=1e-6)
        assert link.efficiency == 1.0


def test_link_from_fit_reproduces_the_fitted_line_at_the_measured_world_size() -> None:
    sizes = size_sweep(8, 256 * MIB, 2)
    op, n = "all_reduce", 8
    fit = fit_alpha_beta(sizes, _synthetic_times_us(op, n, NVLINK, sizes))
    # β is an algorithm bandwidth: the link's bus bandwidth is β × 2(n−1)/n, its α the fit's over 2(n−1) steps
    link = Link.from_fit(fit, op=op, n=n)
    assert link.bandwidth_Bps == pytest.approx(fit.beta_gbs * 1e9 * 2 * (n - 1) / n, rel=EXACT)
    assert link.alpha_s == pytest.approx(fit.alpha_us * 1e-6 / latency_steps(op, n), rel=EXACT)
    for S in (0.0, 1e4, 1e8):
        assert ring_all_reduce(S, n, link) == pytest.approx(fit.predict_us(S) * 1e-6, rel=1e-9)
    assert Link.from_fit(fit.to_dict(), op=op, n=n) == link
    assert Link.from_fit(dict(fit.to_dict(), op=op, world_size=n)) == link


def test_link_from_noisy_fit_is_close() -> None:
    rng = np.random.default_rng(11)
    sizes = size_sweep(8, 256 * MIB, 2)
    op, n = "reduce_scatter", 8
    times = [t * rng.normal(1.0, 0.02) for t in _synthetic_times_us(op, n, NIC, sizes)]
    link = Link.from_fit(_fit_records(op, n, sizes, times))
    assert link.alpha_s == pytest.approx(NIC.alpha_s, rel=0.05)
    assert link.bandwidth_Bps == pytest.approx(NIC.bandwidth_Bps, rel=0.05)


def test_link_from_fit_refuses_what_it_cannot_read() -> None:
    sizes = [1000, 1000]  # one distinct size: the benchmark writes failed fit records
    failed = _fit_records("all_reduce", 8, sizes, [5.0, 5.0])
    assert all(r.status == "failed" for r in failed)
    with pytest.raises(ValueError, match="failed"):
        Link.from_fit(failed)
    fit = fit_alpha_beta([1e3, 1e6], [10.0, 30.0])
    with pytest.raises(ValueError, match="op= and n="):
        Link.from_fit(fit)
    good = _fit_records("all_reduce", 8, [1000, 10**6], [10.0, 30.0])
    with pytest.raises(ValueError, match="disagrees"):
        Link.from_fit(good, n=16)
    with pytest.raises(ValueError, match="alpha"):
        Link.from_fit(good[:1])
    with pytest.raises(ValueError):
        Link.from_fit({"alpha": 1.0})


# --- programming errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("S, n", [(-1.0, 8), (math.nan, 8), (math.inf, 8), (1e6, 0), (1e6, -3), (1e6, math.inf)])
def test_bad_sizes_and_rank_counts_raise(S: float, n: int) -> None:
    for fn in FLAT.values():
        with pytest.raises(ValueError):
            fn(S, n, LINK)
    for fn in HIERARCHICAL.values():
        with pytest.raises(ValueError):
            fn(S, n, 4, NVLINK, NIC)
        with pytest.raises(ValueError):
            fn(S, 4, n, NVLINK, NIC)
    if n == 8:
        with pytest.raises(ValueError):
            p2p(S, LINK)


def test_bad_links_and_algorithms_raise() -> None:
    for kwargs in ({"alpha_s": -1e-6, "bandwidth_Bps": 1e9}, {"alpha_s": 1e-6, "bandwidth_Bps": 0.0},
                   {"alpha_s": math.nan, "bandwidth_Bps": 1e9}, {"alpha_s": 1e-6, "bandwidth_Bps": math.inf},
                   {"alpha_s": 1e-6, "bandwidth_Bps": 1e9, "efficiency": 0.0},
                   {"alpha_s": 1e-6, "bandwidth_Bps": 1e9, "efficiency": 1.5}):
        with pytest.raises(ValueError):
            Link(**kwargs)
    with pytest.raises(ValueError, match="algorithm"):
        all_reduce(1e6, 8, LINK, algorithm="nvls")
