"""Communication cost of collectives: the α-β (latency-bandwidth) model, flat and over two tiers.

Pure Python, plain floats: a search over 100,000-GPU layouts calls these millions of times, so the
time functions build no objects and check their arguments with two comparisons. A negative,
NaN or infinite size or rank count is a bug in the caller and raises ValueError.

Sources, cited as below:

- [PERF] nccl-tests ``doc/PERFORMANCE.md``: algorithm bandwidth S/t, bus bandwidth = algbw × 2(n−1)/n
  (all-reduce), × (n−1)/n (reduce-scatter, all-gather, all-to-all), × 1 (broadcast, reduce,
  send/receive); the factor is the share of S each rank must send, so bus bandwidth compares with
  a link's rate whatever n.
- [T05] Thakur, Rabenseifner & Gropp, "Optimization of Collective Communication Operations in
  MPICH", IJHPCA 19(1), 2005: ring all-gather and reduce-scatter (n−1)·α + (n−1)/n·S/B; all-reduce
  as a reduce-scatter then an all-gather.
- [PY09] Patarasuk & Yuan, "Bandwidth optimal all-reduce algorithms for clusters of workstations",
  JPDC 69(2), 2009: the ring all-reduce 2(n−1)·α + 2(n−1)/n·S/B is bandwidth-optimal.
- [SST09] Sanders, Speck & Träff, "Two-tree algorithms for full bandwidth broadcast, reduction and
  scan", Parallel Computing 35(12), 2009: NCCL's double binary tree; depth ⌊log₂ n⌋, full bandwidth.
- [NCCL] NVIDIA/nccl ``src/graph/tuning.cc`` (``ncclTopoTuneModel``): the tuner's cost per algorithm,
  time = latency + S / algbw. Ring: algbw = busbw · n / (2(n−1)); tree: busbw × 0.92, and algbw =
  busbw × 0.5, i.e. a bandwidth term 2·S/(0.92·B); tree latency 2·log2i(nNodes) hops.
- [REF] ``shared/reference/model-formulas.md``, "Collectives": the formulas above and the
  hierarchical decomposition 2(g−1)/g·S/B_scaleup + 2(N−1)/N·(S/g)/B_NIC.

Conventions (chosen here; the rest of the model relies on them):

- S is nccl-tests' "size" [PERF], bytes: the buffer each rank contributes to an all-reduce,
  broadcast or send; the *full, unsharded* buffer for reduce-scatter (its input) and all-gather (its
  output, which is what nccl-tests calls the all-gather size), so each rank's shard is S/n; each rank's
  whole send buffer for all-to-all (S/n to each peer, own block included).
- A :class:`Link` is one tier as one rank sees it: α per message (one ring step, one tree hop) and B
  the *bus* bandwidth a rank reaches on it, B = ``bandwidth_Bps × efficiency``.
- n == 1 costs nothing: every collective returns 0. S == 0 leaves the latency terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

RING, TREE, AUTO = "ring", "tree", "auto"
ALL_REDUCE_ALGORITHMS = (RING, TREE, AUTO)

# [NCCL] ncclTopoTuneModel: "if (a == NCCL_ALGO_TREE) busBw = std::min(busBw*.92, ...)": the tuner
# expects a tree to reach 92% of the ring's bus bandwidth on the same links.
TREE_BUS_BANDWIDTH_FRACTION = 0.92
# [NCCL] "ratio = .5" for the tree: algbw = busbw / 2, so the tree's bandwidth term is 2·S/busbw, n-free
# (each rank sends S up the reduction tree and receives S down the broadcast tree, [SST09]).
TREE_BYTES_PER_SIZE = 2.0

#: Bus factor per operation [PERF], as a function kind: 2(n−1)/n, (n−1)/n or 1. Names are the
#: project's (nccl-tests') operation names, plus "send_recv" and "reduce".
_BUS_KIND = {
    "all_reduce": 2, "reduce_scatter": 1, "all_gather": 1, "all_to_all": 1,
    "broadcast": 0, "reduce": 0, "sendrecv": 0, "send_recv": 0,
}
BUS_FACTOR_OPS = tuple(_BUS_KIND)

#: Latency steps of the ring algorithm each operation is modelled with here, as a function of n: the
#: α multiplier of :func:`ring_all_reduce` (2(n−1)), :func:`ring_reduce_scatter`,
#: :func:`ring_all_gather`, :func:`all_to_all` and :func:`broadcast` (n−1), :func:`p2p` (1).
_LATENCY_STEPS = {
    "all_reduce": lambda n: 2 * (n - 1), "reduce_scatter": lambda n: n - 1, "all_gather": lambda n: n - 1,
    "all_to_all": lambda n: n - 1, "broadcast": lambda n: n - 1, "reduce": lambda n: n - 1,
    "sendrecv": lambda n: 1, "send_recv": lambda n: 1,
}

# Units of the collectives benchmark's fit records (bench/collectives/run.py, fit.py).
_S_PER_US = 1e-6
_BPS_PER_GBS = 1e9
FIT_UNITS = {"alpha": "us", "beta": "GB/s"}

_INF = math.inf


@dataclass(frozen=True)
class Link:
    """One network tier as one rank sees it.

    ``alpha_s``: latency of one message (one ring step, one tree hop), seconds.
    ``bandwidth_Bps``: bytes/s per rank a collective reaches on this tier, as *bus* bandwidth [PERF]
    (what nccl-tests' busbw column shows), not the raw signalling rate.
    ``efficiency``: the fraction of ``bandwidth_Bps`` large messages reach; the cost functions use
    B = bandwidth_Bps × efficiency. Leave it at 1 when ``bandwidth_Bps`` was measured (it already is
    what is reached); set it below 1 when ``bandwidth_Bps`` is a catalog link rate.
    """

    alpha_s: float
    bandwidth_Bps: float
    efficiency: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha_s < _INF:
            raise ValueError(f"Link.alpha_s must be a finite latency >= 0 s, got {self.alpha_s!r}")
        if not 0.0 < self.bandwidth_Bps < _INF:
            raise ValueError(f"Link.bandwidth_Bps must be a finite bandwidth > 0, got {self.bandwidth_Bps!r}")
        if not 0.0 < self.efficiency <= 1.0:
            raise ValueError(f"Link.efficiency must be in (0, 1], got {self.efficiency!r}")

    @property
    def effective_Bps(self) -> float:
        """B of the formulas: the bus bandwidth large messages reach."""
        return self.bandwidth_Bps * self.efficiency

    @classmethod
    def from_fit(cls, fit: Any, op: str | None = None, n: int | None = None) -> "Link":
        """The link whose ring formula reproduces a fit t(S) = α + S/β of the collectives benchmark.

        ``fit`` is what the benchmark produces: an ``AlphaBeta`` (bench/collectives/fit.py) or its
        ``to_dict()`` (``alpha_us``, ``beta_gbs``), or the two fit records of one operation (``Record``
        objects or their dicts, metrics ``alpha`` in µs and ``beta`` in GB/s, case ``fit-<op>-<placement>``;
        a failed fit raises ValueError with its reason). ``op`` and ``n`` (the world size) come from the
        records' params (``op``, ``world_size``) unless given; an ``AlphaBeta`` needs them given.

        Conversions, so that e.g. ``ring_all_reduce(S, n, link)`` equals the fit at the measured n:

        - β is the algorithm-bandwidth asymptote S/t (docs/collectives.md); the link's bus bandwidth is
          B = β × bus factor(op, n) [PERF], e.g. × 2(n−1)/n for an all-reduce fit.
        - α is the latency of the whole operation; the link's per-message α is that divided by the
          ring's latency steps for op at n (2(n−1) for all-reduce, n−1 for reduce-scatter, all-gather,
          all-to-all and broadcast, 1 for sendrecv). If NCCL ran a tree at small sizes, this per-step α
          is the one a ring would need for the same latency.
        """
        alpha_us, beta_gbs, fit_op, fit_n = _fit_values(fit)
        op = _agree("op", op, fit_op)
        n = _agree("n", n, fit_n)
        if op is None or n is None:
            raise ValueError("Link.from_fit needs the operation and the world size: pass op= and n= "
                             "or give the fit records, whose params hold them")
        steps = latency_steps(op, n)
        factor = bus_factor(op, n)
        if steps <= 0 or factor <= 0:
            raise ValueError(f"a {op} fit over n={n} rank(s) moves nothing: no link to derive")
        return cls(alpha_s=alpha_us * _S_PER_US / steps, bandwidth_Bps=beta_gbs * _BPS_PER_GBS * factor)


def _fit_values(fit: Any) -> tuple[float, float, str | None, int | None]:
    """(α µs, β GB/s, op, world size) from an AlphaBeta, its dict, or the alpha and beta records."""
    if isinstance(fit, Mapping):
        if "alpha_us" in fit and "beta_gbs" in fit:
            return float(fit["alpha_us"]), float(fit["beta_gbs"]), fit.get("op"), fit.get("world_size")
        raise ValueError("a fit dict needs 'alpha_us' and 'beta_gbs' (AlphaBeta.to_dict()); "
                         "for records pass the alpha and beta records together")
    if hasattr(fit, "alpha_us") and hasattr(fit, "beta_gbs"):
        return float(fit.alpha_us), float(fit.beta_gbs), None, None
    if isinstance(fit, Iterable) and not isinstance(fit, (str, bytes)):
        return _record_values(list(fit))
    raise ValueError(f"cannot read an alpha-beta fit from {type(fit).__name__}")


def _record_values(records: list[Any]) -> tuple[float, float, str | None, int | None]:
    by_metric: dict[str, Mapping[str, Any]] = {}
    for r in records:
        d = r if isinstance(r, Mapping) else r.to_dict()
        if d.get("metric") in FIT_UNITS:
            by_metric[d["metric"]] = d
    if set(by_metric) != set(FIT_UNITS):
        raise ValueError("the fit records must include one 'alpha' and one 'beta' record")
    for metric, d in by_metric.items():
        if d.get("status", "ok") != "ok":
            raise ValueError(f"fit {d.get('case')} failed: {d.get('reason')}")
        if d.get("unit") != FIT_UNITS[metric]:
            raise ValueError(f"fit record {metric} is in {d.get('unit')!r}, expected {FIT_UNITS[metric]!r}")
    alpha, beta = by_metric["alpha"], by_metric["beta"]
    params = alpha.get("params") or {}
    if params.get("op") != (beta.get("params") or {}).get("op"):
        raise ValueError("the alpha and beta records belong to different operations")
    return float(alpha["value"]), float(beta["value"]), params.get("op"), params.get("world_size")


def _agree(name: str, given: Any, recorded: Any) -> Any:
    if given is not None and recorded is not None and given != recorded:
        raise ValueError(f"{name}={given!r} disagrees with the fit's {name} {recorded!r}")
    return given if given is not None else recorded


def _bad(**given: float) -> ValueError:
    """The error for a size below 0 bytes, a rank count below 1, or either NaN or infinite."""
    shown = ", ".join(f"{k}={v!r}" for k, v in given.items())
    return ValueError(f"sizes must be finite and >= 0 bytes and rank counts finite and >= 1; got {shown}")


# --- bandwidth conversions [PERF] ---------------------------------------------------------------

def bus_factor(op: str, n: int) -> float:
    """busbw / algbw for `op` over n ranks [PERF]: 2(n−1)/n, (n−1)/n or 1."""
    kind = _BUS_KIND.get(op)
    if kind is None:
        raise ValueError(f"unknown operation {op!r}; known: {', '.join(BUS_FACTOR_OPS)}")
    if not 1 <= n < _INF:
        raise _bad(n=n)
    return 1.0 if kind == 0 else kind * (n - 1) / n


def latency_steps(op: str, n: int) -> int:
    """The α multiplier of the ring formula this module uses for `op` over n ranks (0 when n == 1)."""
    steps = _LATENCY_STEPS.get(op)
    if steps is None:
        raise ValueError(f"unknown operation {op!r}; known: {', '.join(_LATENCY_STEPS)}")
    if not 1 <= n < _INF:
        raise _bad(n=n)
    return 0 if n == 1 else steps(n)


def bus_bandwidth(alg_bw: float, op: str, n: int) -> float:
    """Bus bandwidth from algorithm bandwidth (any unit) [PERF]."""
    if not 0.0 <= alg_bw < _INF:
        raise ValueError(f"bandwidth must be finite and >= 0, got {alg_bw!r}")
    return alg_bw * bus_factor(op, n)


def algorithm_bandwidth(bus_bw: float, op: str, n: int) -> float:
    """Algorithm bandwidth from bus bandwidth [PERF]; undefined for a factor of 0 (n == 1 but broadcast)."""
    if not 0.0 <= bus_bw < _INF:
        raise ValueError(f"bandwidth must be finite and >= 0, got {bus_bw!r}")
    factor = bus_factor(op, n)
    if factor == 0.0:
        raise ValueError(f"{op} over one rank has no bus traffic: its algorithm bandwidth is unbounded")
    return bus_bw / factor


# --- flat collectives on one link -------------------------------------------------------------

def ring_all_reduce(S: float, n: int, link: Link) -> float:
    """Ring all-reduce of S bytes per rank: 2(n−1)·α + 2(n−1)/n·S/B [T05, PY09, REF]."""
    if not (0.0 <= S < _INF and 1 <= n < _INF):
        raise _bad(S=S, n=n)
    if n == 1:
        return 0.0
    return 2 * (n - 1) * (link.alpha_s + S / (n * link.bandwidth_Bps * link.efficiency))


def tree_all_reduce(S: float, n: int, link: Link) -> float:
    """Double-binary-tree all-reduce: 2·⌊log₂ n⌋·α + 2·S/(0.92·B).

    Latency: reduce up and broadcast down a tree of depth ⌊log₂ n⌋ [SST09]; NCCL's tuner counts
    2·log2i(nNodes) inter-node hops, log2i being the floor [NCCL]. Bandwidth: each rank sends and
    receives S once per direction, 2·S whatever n, at 92% of the ring's bus bandwidth [NCCL]
    (TREE_BUS_BANDWIDTH_FRACTION). The ring's 2(n−1)/n·S/B is thus always the smaller bandwidth term:
    the tree wins at small S and large n, the ring at large S (:func:`all_reduce`).
    """
    if not (0.0 <= S < _INF and 1 <= n < _INF):
        raise _bad(S=S, n=n)
    if n == 1:
        return 0.0
    depth = int(n).bit_length() - 1
    return (2 * depth * link.alpha_s
            + TREE_BYTES_PER_SIZE * S / (TREE_BUS_BANDWIDTH_FRACTION * link.bandwidth_Bps * link.efficiency))


def all_reduce_choice(S: float, n: int, link: Link) -> tuple[float, str]:
    """(time, "ring" or "tree"): the faster of the two, as NCCL's tuner picks the least modelled time
    [NCCL]; a tie goes to the ring. n == 1 gives (0.0, "ring")."""
    ring = ring_all_reduce(S, n, link)
    tree = tree_all_reduce(S, n, link)
    return (tree, TREE) if tree < ring else (ring, RING)


def all_reduce(S: float, n: int, link: Link, algorithm: str = AUTO) -> float:
    """All-reduce of S bytes per rank with `algorithm` "ring", "tree" or "auto" (the faster,
    :func:`all_reduce_choice`)."""
    if algorithm == AUTO:  # both formulas inline, checked once: the search's hottest call
        if not (0.0 <= S < _INF and 1 <= n < _INF):
            raise _bad(S=S, n=n)
        if n == 1:
            return 0.0
        alpha, bw = link.alpha_s, link.bandwidth_Bps * link.efficiency
        ring = 2 * (n - 1) * (alpha + S / (n * bw))
        tree = 2 * (int(n).bit_length() - 1) * alpha + TREE_BYTES_PER_SIZE * S / (TREE_BUS_BANDWIDTH_FRACTION * bw)
        return tree if tree < ring else ring
    if algorithm == RING:
        return ring_all_reduce(S, n, link)
    if algorithm == TREE:
        return tree_all_reduce(S, n, link)
    raise ValueError(f"unknown all-reduce algorithm {algorithm!r}; known: {', '.join(ALL_REDUCE_ALGORITHMS)}")


def ring_reduce_scatter(S: float, n: int, link: Link) -> float:
    """Ring reduce-scatter of a full buffer of S bytes (each rank keeps S/n): (n−1)·α + (n−1)/n·S/B [T05].

    S is the unsharded input, nccl-tests' reduce_scatter size [PERF]."""
    if not (0.0 <= S < _INF and 1 <= n < _INF):
        raise _bad(S=S, n=n)
    if n == 1:
        return 0.0
    return (n - 1) * (link.alpha_s + S / (n * link.bandwidth_Bps * link.efficiency))


def ring_all_gather(S: float, n: int, link: Link) -> float:
    """Ring all-gather to a full buffer of S bytes (each rank contributes S/n): (n−1)·α + (n−1)/n·S/B [T05].

    S is the gathered output, nccl-tests' all_gather size [PERF], not the shard each rank sends."""
    if not (0.0 <= S < _INF and 1 <= n < _INF):
        raise _bad(S=S, n=n)
    if n == 1:
        return 0.0
    return (n - 1) * (link.alpha_s + S / (n * link.bandwidth_Bps * link.efficiency))


def all_to_all(S: float, n: int, link: Link) -> float:
    """All-to-all of S bytes per rank (S/n to each rank, own block included): (n−1)·α + (n−1)/n·S/B.

    Each rank sends its n−1 foreign blocks, one message each; the bus factor (n−1)/n is [PERF]'s."""
    if not (0.0 <= S < _INF and 1 <= n < _INF):
        raise _bad(S=S, n=n)
    if n == 1:
        return 0.0
    return (n - 1) * (link.alpha_s + S / (n * link.bandwidth_Bps * link.efficiency))


def broadcast(S: float, n: int, link: Link) -> float:
    """Pipelined-ring broadcast of S bytes: (n−1)·α + S/B.

    The buffer is cut into chunks that stream along the ring, so each link carries S once (bus factor 1,
    [PERF]) and the last rank waits n−1 hops; the asymptote of NCCL's ring broadcast."""
    if not (0.0 <= S < _INF and 1 <= n < _INF):
        raise _bad(S=S, n=n)
    if n == 1:
        return 0.0
    return (n - 1) * link.alpha_s + S / (link.bandwidth_Bps * link.efficiency)


def p2p(S: float, link: Link) -> float:
    """One send/receive of S bytes: α + S/B (nccl-tests sendrecv, bus factor 1 [PERF])."""
    if not 0.0 <= S < _INF:
        raise _bad(S=S)
    return link.alpha_s + S / (link.bandwidth_Bps * link.efficiency)


# --- two tiers: g ranks per scale-up domain, N domains ----------------------------------------

def hierarchical_all_reduce(S: float, g: int, N: int, intra: Link, inter: Link, inter_algorithm: str = AUTO) -> float:
    """All-reduce of S bytes per rank over N domains of g ranks [REF]:

    1. ring reduce-scatter of S inside each domain (each rank holds S/g, summed over its domain);
    2. all-reduce of S/g across domains among the N ranks of the same local index, the g of them
       concurrently, each on its own share of the inter tier (``inter`` is per rank, i.e. per rail);
       ring or tree, whichever is faster (``inter_algorithm``);
    3. ring all-gather of S inside each domain.

    ≈ 2(g−1)/g·S/B_intra + 2(N−1)/N·(S/g)/B_inter + 2(g−1)·α_intra + inter latency. N == 1 is the
    flat ring on ``intra``; g == 1 the flat all-reduce on ``inter``.
    """
    if not (0.0 <= S < _INF and 1 <= g < _INF and 1 <= N < _INF):
        raise _bad(S=S, g=g, N=N)
    inside = 0.0
    if g > 1:
        inside = 2 * (g - 1) * (intra.alpha_s + S / (g * intra.bandwidth_Bps * intra.efficiency))
    return inside + all_reduce(S / g, N, inter, inter_algorithm)


def hierarchical_reduce_scatter(S: float, g: int, N: int, intra: Link, inter: Link) -> float:
    """Reduce-scatter of a full buffer of S bytes over N domains of g ranks (each rank keeps S/(gN)).

    Inside first, where bandwidth is plentiful: ring reduce-scatter of S within each domain, then ring
    reduce-scatter of the S/g each rank holds across the N domains (g rails concurrently) [T05, REF]:
    (g−1)·α_intra + (g−1)/g·S/B_intra + (N−1)·α_inter + (N−1)/N·(S/g)/B_inter. The shards land in a
    permuted order relative to the flat collective's; the cost is the same. The ZeRO/FSDP gradient step.
    """
    if not (0.0 <= S < _INF and 1 <= g < _INF and 1 <= N < _INF):
        raise _bad(S=S, g=g, N=N)
    time = 0.0
    if g > 1:
        time = (g - 1) * (intra.alpha_s + S / (g * intra.bandwidth_Bps * intra.efficiency))
    if N > 1:
        time += (N - 1) * (inter.alpha_s + S / (g * N * inter.bandwidth_Bps * inter.efficiency))
    return time


def hierarchical_all_gather(S: float, g: int, N: int, intra: Link, inter: Link) -> float:
    """All-gather to a full buffer of S bytes over N domains of g ranks (each rank starts with S/(gN)).

    The mirror of :func:`hierarchical_reduce_scatter`: ring all-gather across domains to S/g per rank
    (g rails concurrently), then ring all-gather of S inside each domain; the same time. The ZeRO-3/FSDP
    weight gather."""
    return hierarchical_reduce_scatter(S, g, N, intra, inter)


def hierarchical_all_to_all(S: float, g: int, N: int, intra: Link, inter: Link) -> float:
    """All-to-all of S bytes per rank over n = g·N ranks spanning N domains of g (expert parallelism).

    Each rank sends S/n to each of its n−1 peers: g−1 of them share its domain, (g−1)·S/n bytes over
    ``intra``; n−g = g(N−1) are outside, (N−1)/N·S bytes over ``inter``, one message each. Assumption:
    the two tiers move data concurrently and the slower bounds the time, so
    max((g−1)·α_intra + (g−1)/n·S/B_intra, g(N−1)·α_inter + (N−1)/N·S/B_inter). N == 1 and g == 1 give
    the flat :func:`all_to_all` on ``intra`` and ``inter``.
    """
    if not (0.0 <= S < _INF and 1 <= g < _INF and 1 <= N < _INF):
        raise _bad(S=S, g=g, N=N)
    inside = outside = 0.0
    per_peer = S / (g * N)
    if g > 1:
        inside = (g - 1) * (intra.alpha_s + per_peer / (intra.bandwidth_Bps * intra.efficiency))
    if N > 1:
        outside = g * (N - 1) * (inter.alpha_s + per_peer / (inter.bandwidth_Bps * inter.efficiency))
    return inside if inside > outside else outside
