"""The fastest parallel layout of a training job on at most N GPUs, under the memory cap.

Exhaustive over tensor (inside the scale-up domain), pipeline, context, expert and data
parallelism, micro-batch size, interleaving, recomputation and ZeRO stage, with three prunings
that cannot lose the optimum in this model:

- recomputation only costs time, so for a layout the least recomputation that fits is the fastest
  (``none``, then ``selective``, then ``full``);
- ZeRO-2 and -3 only add memory savings over ZeRO-1 at equal or higher time, so they are tried
  only when ZeRO-0 and ZeRO-1 do not fit;
- for a (tp, pp, cp, ep, micro-batch) the data-parallel size is taken among the two largest that
  fit in N GPUs and divide the batch: a larger dp divides the compute, the extra reduction costs
  less (both are evaluated, so the rare exception is still found).

Fixed choices (``--tp 8``, ``--recompute full``...) restrict the space; with tp, pp and dp all given,
cp and ep are 1 unless given (the run is the tp·pp·dp GPUs the user named); a fully fixed layout is
just evaluated. Ties within 0.1% go to fewer GPUs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ai_ready.errors import InputError
from ai_ready.model.hardware import Hardware
from ai_ready.model.step import Software, StepTime, step_time
from ai_ready.model.transformer import fits_memory, memory_per_gpu
from ai_ready.model.workload import RECOMPUTE_MODES, Parallelism, Training, TransformerModel

MICROBATCHES = (1, 2, 4, 8)
CONTEXT_SIZES = (1, 2, 4, 8, 16, 32)
MIN_TOKENS_PER_CONTEXT_RANK = 1024  # below this, attention chunks are too small to be worth splitting
# Megatron accepts any interleave dividing the layers per stage, down to one layer per virtual stage;
# the cap only bounds the search (the point-to-point cost already penalises large v).
MAX_INTERLEAVE = 64
FIXABLE = ("tp", "pp", "dp", "cp", "ep", "microbatch", "interleave", "recompute", "zero", "sequence_parallel",
           "first_stage_layers", "last_stage_layers")
#: Choices that are part of the layout only when the user gives them (never searched).
GIVEN_ONLY = ("first_stage_layers", "last_stage_layers")
TIE = 1e-3


@dataclass(frozen=True)
class SearchResult:
    """The best layout and how the search went."""

    best: StepTime
    evaluated: int
    fitting: int
    elapsed_s: float
    gpus_available: int
    runner_up: tuple[StepTime, ...] = ()
    #: The layout choices the user gave (kept as given) and those the search chose.
    given: tuple[str, ...] = ()
    searched: tuple[str, ...] = ()


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _choices(fixed: Mapping[str, Any], key: str, default: list[Any]) -> list[Any]:
    return [fixed[key]] if key in fixed else default


def _check_fixed(fixed: Mapping[str, Any], model: TransformerModel, training: Training) -> None:
    """Fixed sizes that can never work are the user's input error, said as such (not "nothing fits")."""
    for key in fixed:
        if key not in FIXABLE:
            raise InputError(f"parallelism: unknown key '{key}'; accepted: {', '.join(FIXABLE)}")
    rules = (("tp", model.heads, "heads"), ("tp", model.resolved_kv_heads, "kv_heads"), ("cp", model.seq_len, "seq_len"),
             ("microbatch", training.global_batch, "global_batch"), ("dp", training.global_batch, "global_batch"))
    for key, whole, name in rules:
        if key in fixed and whole % fixed[key]:
            raise InputError(f"parallelism.{key}: {fixed[key]} must divide {name} ({whole})")
    if "ep" in fixed and fixed["ep"] != 1 and (not model.is_moe or model.experts % fixed["ep"]):
        raise InputError(f"parallelism.ep: {fixed['ep']} must divide experts ({model.experts})")
    if "pp" in fixed:  # stages as given or as trained (uneven where pp does not divide the layers)
        _pipeline(fixed, fixed["pp"], fixed.get("interleave", 1)).check_fit(model, training)
    elif any(k in fixed for k in GIVEN_ONLY):
        raise InputError("parallelism: first/last stage layers need --pp")


def search(model: TransformerModel, training: Training, hw: Hardware, sw: Software = Software(),
           gpus: int | None = None, fixed: Mapping[str, Any] | None = None, keep: int = 5) -> SearchResult:
    """The fastest layout on at most ``gpus`` GPUs (default: the whole system) that fits memory.

    Raises :class:`InputError` when nothing fits, naming what was tried.
    """
    started = time.perf_counter()
    fixed = _as_given({k: v for k, v in (fixed or {}).items() if v is not None})
    given = tuple(k for k in FIXABLE if k in fixed)
    searched = tuple(k for k in FIXABLE if k not in fixed and k not in GIVEN_ONLY)
    model.validate()
    training.validate()
    _check_fixed(fixed, model, training)
    sw.validate()
    if not sw.interleaved_pipeline and fixed.get("interleave", 1) > 1:
        raise InputError(f"parallelism.interleave: {fixed['interleave']} virtual stages per rank, but the software "
                         "runs plain 1F1B (interleaved_pipeline false, as DeepSpeed's pipeline engine); accepted: 1")
    limit = hw.total_gpus if gpus is None else gpus
    if limit > hw.total_gpus:
        raise InputError(f"--gpus {limit}: system '{hw.name}' has {hw.total_gpus} GPUs")
    if limit < 1:
        raise InputError(f"--gpus: must be at least 1, got {limit}")
    if all(k in fixed for k in ("tp", "pp", "dp")) and set(fixed) >= {"microbatch"}:
        par = _full(fixed, sw)
        if par.gpus > limit:
            raise InputError(f"parallelism: tp·pp·dp·cp = {par.gpus} GPUs, more than the {limit} available "
                             f"on '{hw.name}'")
        result = step_time(model, training, par, hw, sw)
        return SearchResult(result, 1, int(result.fits_memory), time.perf_counter() - started, limit,
                            given=given, searched=searched)

    heads = model.heads if model.resolved_kv_heads == model.heads else _gcd(model.heads, model.resolved_kv_heads)
    tps = [t for t in _divisors(heads) if t <= min(hw.scale_up_size, limit)]
    cps = [c for c in CONTEXT_SIZES if model.seq_len % c == 0 and model.seq_len // c >= MIN_TOKENS_PER_CONTEXT_RANK
           or c == 1]
    pps = _divisors(model.layers)  # uneven stages only when the user gives such a pp (as trained)
    mbs = [b for b in MICROBATCHES if training.global_batch % b == 0]
    recomputes = list(RECOMPUTE_MODES)
    zeros = [0, 1, 2, 3]
    eps = _divisors(model.experts) if model.is_moe else [1]
    tps, cps, pps = _choices(fixed, "tp", tps), _choices(fixed, "cp", cps), _choices(fixed, "pp", pps)
    mbs, eps = _choices(fixed, "microbatch", mbs), _choices(fixed, "ep", eps)
    recomputes, zeros = _choices(fixed, "recompute", recomputes), _choices(fixed, "zero", zeros)

    stage_sizes = (fixed.get("first_stage_layers"), fixed.get("last_stage_layers"))

    def zeros_with(pp: int) -> list[int]:
        # no stack runs ZeRO-3 under pipeline parallelism: DeepSpeed refuses ZeRO-2/3 with its pipeline engine,
        # Megatron shards only the optimizer (ZeRO-1), torchtitan keeps parameters gathered between forward and
        # backward when it pipelines (ZeRO-2); a ZeRO-3 the user gives is kept
        return zeros if pp == 1 or "zero" in fixed else [z for z in zeros if z != 3]
    evaluated = fitting = 0
    kept: list[StepTime] = []
    for tp in tps:
        sp = fixed.get("sequence_parallel", tp > 1 and sw.supports_sequence_parallel)
        for cp in cps:
            for pp in pps:
                width = tp * cp * pp
                if width > limit:
                    continue
                stages = _pipeline(fixed, pp, 1).stage_layers(model.layers)
                vs = [1] if pp == 1 or not sw.interleaved_pipeline else _interleaves(stages)
                vs = _choices(fixed, "interleave", vs)
                for mb in mbs:
                    for dp in _data_parallel(fixed, training.global_batch, mb, limit // width):
                        for ep in eps:
                            if (dp * cp) % ep:
                                continue
                            for v in vs:
                                best = _best_memory_choice(model, training, hw, sw, tp, pp, dp, cp, ep, mb, v, sp,
                                                           recomputes, zeros_with(pp), stage_sizes)
                                evaluated += best[1]
                                if best[0] is None:
                                    continue
                                fitting += 1
                                kept = _keep(kept, best[0], keep)
    if not kept:
        raise InputError(f"no layout of '{model_name(model)}' fits the memory of {hw.accelerator} "
                         f"({hw.hbm_bytes / 1e9:g} GB) on at most {limit} GPUs with the choices allowed; "
                         "fix fewer of --tp/--pp/--dp/--recompute/--zero or use more GPUs")
    return SearchResult(kept[0], evaluated, fitting, time.perf_counter() - started, limit, tuple(kept[1:]),
                        given=given, searched=searched)


def _as_given(fixed: dict[str, Any]) -> dict[str, Any]:
    """With tp, pp and dp all given, the run is tp·pp·dp GPUs: context and expert parallelism are 1 unless
    given too, so the search never adds GPUs (a cp 2) the user did not ask for."""
    if all(k in fixed for k in ("tp", "pp", "dp")):
        fixed.setdefault("cp", 1)
        fixed.setdefault("ep", 1)
    return fixed


def model_name(model: TransformerModel) -> str:
    return f"{model.layers}-layer h={model.hidden} model"


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _pipeline(fixed: Mapping[str, Any], pp: int, interleave: int) -> Parallelism:
    """A one-GPU-wide layout with this pipeline, to ask about its stages."""
    return Parallelism(1, pp, 1, interleave=interleave, **{k: fixed[k] for k in GIVEN_ONLY if k in fixed})


def _interleaves(stages: tuple[int, ...]) -> list[int]:
    """Virtual stages per rank worth trying: the divisors of every stage's layers with even stages (Megatron's
    rule); with uneven ones (a pipeline layout) also the divisors of the smallest and the largest stage, up to
    the smallest stage's layers."""
    common = [v for v in _divisors(_gcd_all(stages)) if v <= MAX_INTERLEAVE]
    if len(set(stages)) == 1:
        return common
    low = min(stages)
    extra = {v for n in (low, max(stages)) for v in _divisors(n) if v <= min(low, MAX_INTERLEAVE)}
    return sorted(set(common) | extra)


def _gcd_all(values: tuple[int, ...]) -> int:
    result = 0
    for value in values:
        result = _gcd(result, value)
    return result


def _full(fixed: Mapping[str, Any], sw: Software) -> Parallelism:
    """The layout a fully fixed request names; sequence parallelism defaults on with tp > 1 where the stack has it,
    as in the search."""
    given = {k: fixed[k] for k in FIXABLE if k in fixed}
    given.setdefault("sequence_parallel", given["tp"] > 1 and sw.supports_sequence_parallel)
    return Parallelism(**given)


def _data_parallel(fixed: Mapping[str, Any], batch: int, mb: int, room: int) -> list[int]:
    if "dp" in fixed:
        dp = fixed["dp"]
        return [dp] if dp <= room and batch % (dp * mb) == 0 else []
    options = [d for d in _divisors(batch // mb) if d <= room]
    return options[-2:]


def _best_memory_choice(model: TransformerModel, training: Training, hw: Hardware, sw: Software, tp: int, pp: int,
                        dp: int, cp: int, ep: int, mb: int, v: int, sp: bool, recomputes: list[str],
                        zeros: list[int], stage_sizes: tuple[int | None, int | None] = (None, None)
                        ) -> tuple[StepTime | None, int]:
    """The fastest of the recompute × ZeRO choices that fit for one layout (see the module pruning)."""
    tried = 0
    best: StepTime | None = None
    for recompute in recomputes:
        found_here = False
        for zero in zeros:
            if zero >= 2 and found_here:
                break
            par = Parallelism(tp, pp, dp, cp, ep, mb, v, recompute, zero, sp, *stage_sizes)
            try:
                par.check_fit(model, training)  # model and training were validated once, above
            except InputError:
                continue
            if not fits_memory(memory_per_gpu(model, training, par, fused_attention=sw.attention == "flash"),
                               hw.hbm_bytes):
                continue
            tried += 1
            result = step_time(model, training, par, hw, sw, check=False)
            found_here = True
            if best is None or result.step_time_s < best.step_time_s:
                best = result
        if found_here:
            break  # more recomputation only costs time
    return best, max(tried, 1)


def _complexity(p: Parallelism) -> tuple[int, int, int, int]:
    return p.cp, p.pp * p.interleave, p.tp, int(p.zero == 3)


def _keep(kept: list[StepTime], candidate: StepTime, keep: int) -> list[StepTime]:
    def key(s: StepTime) -> tuple[float, int]:
        return (s.step_time_s, s.gpus)

    if kept and candidate.step_time_s > kept[-1].step_time_s and len(kept) >= keep:
        return kept
    merged = sorted(kept + [candidate], key=key)
    # within TIE of the fastest (below what the model can tell apart), prefer fewer GPUs, then the simpler layout a
    # practitioner would run: no context parallelism, fewer pipeline chunks, less tensor parallelism, no ZeRO-3
    head = merged[0]
    near = [s for s in merged if s.step_time_s <= head.step_time_s * (1 + TIE)]
    if len(near) > 1:
        chosen = min(near, key=lambda s: (s.gpus, _complexity(s.parallelism), s.step_time_s))
        merged.remove(chosen)
        merged.insert(0, chosen)
    return merged[:keep]
