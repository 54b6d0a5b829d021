"""Step time of a transformer training job on a given machine and parallel layout.

The model walks one transformer layer kernel by kernel for one micro-batch on one tensor rank,
then assembles the pipeline, the data-parallel reduction and the optimizer step:

- **GEMMs** take ``F / (peak · e) + t0`` or their memory traffic over HBM, whichever is longer: a
  fixed per-kernel cost makes small GEMMs less efficient, no per-shape table needed.
- **Attention core**: fused (flash) kernels at a fraction of the GEMM rate, computing the causal
  half of the scores, backward 2.5 × forward (it recomputes Q·Kᵀ, Dao 2023); or, unfused, two
  batched GEMMs plus softmax/mask/dropout passes over the b·a·s² score tensor in HBM.
- **Element-wise kernels** (LayerNorm, bias+dropout+residual, GELU/SwiGLU) stream their bytes over
  HBM; without sequence parallelism every tensor rank repeats the LayerNorm/dropout work
  (Korthikanti et al. 2022).
- **Tensor parallelism**: 2 all-reduces forward and 2 backward per layer of b·s·h 16-bit values
  (with sequence parallelism the same volume as reduce-scatter + all-gather), on the scale-up
  links, exposed unless the software overlaps them (``Software.tp_overlap``).
- **Context parallelism**: ring attention passes K/V shards around the cp ranks, hidden behind the
  attention compute where it is shorter; **expert parallelism**: a dispatch and a combine
  all-to-all per MoE layer, forward and backward.
- **Pipeline**: 1F1B with m micro-batches costs (m + (p−1)/v) micro-batch slots of the slowest
  stage (bubble (p−1)/(v·m), Narayanan et al. 2021), plus v point-to-point sends forward and back
  per micro-batch per stage.
- **Data parallelism**: gradient all-reduce (ZeRO-0) or reduce-scatter + all-gather (ZeRO-1/2),
  hierarchical over the GPUs of a scale-up domain and the NICs between domains, ring or tree,
  overlapped with the last micro-batch's backward when the software does so, except the last
  bucket (the first layer and the embeddings, whose gradients are ready only when the backward
  ends; their weights are the first the next forward waits for); ZeRO-3 gathers the weights for
  every micro-batch forward and backward.
- **Overlap is not free**: compute that shares the GPU with a hidden transfer runs (1 + σ) times
  slower (σ = 0.189, Lee et al. 2025), so every second of hidden communication costs σ/(1 + σ)
  seconds (``overlap_contention``).
- **Optimizer**: Adam streams ~30 bytes per parameter it owns.

Everything is returned as a :class:`StepTime` with a per-component breakdown that sums to the
step time, so a report can say where the time goes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from ai_ready.errors import InputError
from ai_ready.model import comm
from ai_ready.model.hardware import Hardware
from ai_ready.model.transformer import (MemoryBreakdown, _shared_layer_parameters, _stage_parameters,
                                        fits_memory, hardware_flops_per_step, memory_per_gpu,
                                        model_flops_per_step)
from ai_ready.model.workload import Parallelism, Training, TransformerModel

ATTENTION_KINDS = ("flash", "unfused")
VALUE = 2  # bytes of a 16-bit activation, gradient or weight
FP32 = 4
CAUSAL_FRACTION = 0.5  # fused causal attention computes half the score matrix
FLASH_BACKWARD_PER_FORWARD = 2.5  # 5 score-sized matmuls backward against 2 forward (Dao 2023)
BACKWARD_PER_FORWARD_BYTES = 2.0  # element-wise backward reads the saved input and the incoming gradient

# Element-wise bytes per token per hidden unit, forward, 16-bit: LayerNorm reads and writes h (4);
# bias + dropout + residual reads x and the residual, writes the sum and a 1-byte mask (7). Two of each.
LAYER_NORM_BYTES = 4
DROPOUT_RESIDUAL_BYTES = 7
# The MLP activation: GELU (with its bias) reads and writes f; SwiGLU reads 2f, writes f.
ACTIVATION_BYTES = {"gelu": 4, "swiglu": 6}
# Unfused attention over the b·a·s² scores, bytes per score forward: scale+mask+softmax read and write
# (4), dropout read, write and mask (5). Backward: softmax grad reads y and dy, writes dx (6), dropout (5).
SCORE_FORWARD_BYTES = 9
SCORE_BACKWARD_BYTES = 11
# Cross-entropy over the logits, bytes per logit, as Megatron's vocab-parallel loss runs it unfused:
# forward casts the 16-bit logits to fp32 (2 read + 4 written), takes the max (4), subtracts it (8),
# exponentiates (8), sums (4) and normalises (8); backward scales the stored softmax by the incoming
# gradient (8) and casts it back to 16 bits (4 + 2).
LOGIT_BYTES = 6 + 4 + 8 + 8 + 4 + 8 + 8 + 6
# Adam with fp32 master weights: read/write master, m and v (24), read the gradient (4), write the
# 16-bit weight (2) = 30 bytes per parameter the rank updates.
ADAM_BYTES_PER_PARAMETER = 30
# Mixed precision keeps fp32 main gradients: each micro-batch's weight gradient is added into them,
# reading and writing 4 bytes per parameter (Megatron's gradient-accumulation fusion does it in the
# wgrad GEMM's epilogue; PyTorch AMP accumulates into .grad the same way).
MAIN_GRAD_BYTES = 2 * FP32


@dataclass(frozen=True)
class Software:
    """How the training stack runs the step: implementation choices, not hardware.

    - ``attention``: ``flash`` (fused, causal half computed) or ``unfused`` (scores in HBM, as in
      Megatron-LM of 2021-22).
    - ``overlap_grad_reduce``: the data-parallel gradient reduction starts during the last
      micro-batch's backward (PyTorch DDP, FSDP, Megatron-Core ``--overlap-grad-reduce``).
    - ``overlap_param_gather``: ZeRO weight all-gathers run under the next forward.
    - ``tp_overlap``: fraction of tensor-parallel communication hidden behind GEMMs (0 unless the
      stack overlaps it, e.g. Transformer Engine's userbuffers, Megatron-Core ``--tp-comm-overlap``).
    - ``grad_reduce_bytes``: bytes per gradient value the data-parallel reduction moves: 2 (16-bit,
      PyTorch DDP/FSDP default) or 4 (fp32, what Megatron-LM forces for bf16 training,
      ``--accumulate-allreduce-grads-in-fp32``).
    - ``efficiency``: the share of the model's kernel rates (GEMM, attention, streaming; the rates
      the Megatron tables were modelled with) that the stack's kernels reach: fusion, launch and
      framework overheads of a stack in one number. Fitted per preset from published runs of that
      stack (``data/stack_fit.yaml``, :mod:`ai_ready.model.fit`); communication is not scaled.
    - ``interleaved_pipeline``: the stack can give a rank several virtual pipeline stages
      (Megatron's interleaved 1F1B, torchtitan's looped schedules); DeepSpeed's pipeline engine
      runs plain 1F1B only, so the search keeps interleave 1.
    - ``supports_sequence_parallel``: the stack can shard LayerNorm and dropout along the sequence
      under tensor parallelism (Korthikanti et al. 2022; Megatron-LM from 2022, torchtitan); Megatron-LM
      of 2021 and Megatron-DeepSpeed of BLOOM could not, so their layouts default to it off.
    """

    attention: str = "flash"
    overlap_grad_reduce: bool = True
    overlap_param_gather: bool = True
    tp_overlap: float = 0.0
    grad_reduce_bytes: int = VALUE
    efficiency: float = 1.0
    interleaved_pipeline: bool = True
    supports_sequence_parallel: bool = True

    def validate(self) -> "Software":
        if self.attention not in ATTENTION_KINDS:
            raise InputError(f"software.attention: got {self.attention!r}; accepted: {', '.join(ATTENTION_KINDS)}")
        for name in ("overlap_grad_reduce", "overlap_param_gather", "interleaved_pipeline", "supports_sequence_parallel"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"software.{name}: must be true or false, got {getattr(self, name)!r}")
        if self.grad_reduce_bytes not in (VALUE, FP32):
            raise InputError(f"software.grad_reduce_bytes: must be {VALUE} or {FP32}, got {self.grad_reduce_bytes!r}")
        ok = isinstance(self.tp_overlap, (int, float)) and not isinstance(self.tp_overlap, bool)
        if not ok or not 0.0 <= self.tp_overlap <= 1.0:
            raise InputError(f"software.tp_overlap: must be a fraction in [0, 1], got {self.tp_overlap!r}")
        ok = isinstance(self.efficiency, (int, float)) and not isinstance(self.efficiency, bool)
        if not ok or not 0.1 <= self.efficiency <= 1.5:
            raise InputError(f"software.efficiency: must be a number in [0.1, 1.5] (the share of the modelled kernel "
                             f"rates the stack reaches), got {self.efficiency!r}")
        return self


@dataclass(frozen=True)
class StepTime:
    """One configuration's predicted step: time, where it goes, FLOP rates and memory."""

    step_time_s: float
    breakdown: dict[str, float]
    model_flops: float
    hardware_flops: float
    gpus: int
    tokens_per_step: int
    memory: MemoryBreakdown
    fits_memory: bool
    parallelism: Parallelism
    software: Software
    peak_flops: float
    notes: tuple[str, ...] = field(default=())
    #: Transformer layers of the model (0 for a generic job), so the layout can name its pipeline stages.
    layers: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_time_s

    @property
    def model_tflops_per_gpu(self) -> float:
        return self.model_flops / self.step_time_s / self.gpus / 1e12

    @property
    def hardware_tflops_per_gpu(self) -> float:
        return self.hardware_flops / self.step_time_s / self.gpus / 1e12

    @property
    def mfu(self) -> float:
        return self.model_flops / self.step_time_s / self.gpus / self.peak_flops


# --- kernels ---------------------------------------------------------------------------------

def gemm_time(hw: Hardware, m: float, n: float, k: float, count: float = 1.0, sixteen_bit: bool = False) -> float:
    """``count`` GEMMs of (m×k)·(k×n): max(compute, HBM traffic) + the fixed kernel cost each.

    ``sixteen_bit``: a GEMM that stays in 16 bits in an fp8 run (the output layer)."""
    if m <= 0 or n <= 0 or k <= 0 or count <= 0:
        return 0.0
    flops = 2.0 * m * n * k * (k + hw.gemm_k_overhead) / k
    traffic = VALUE * (m * k + k * n + m * n)
    rate = hw.gemm16_flops if sixteen_bit else hw.gemm_flops
    return count * (max(flops / rate, traffic / hw.stream_Bps) + hw.kernel_overhead_s)


def stream_time(hw: Hardware, nbytes: float, kernels: float = 1.0) -> float:
    """Streaming (memory-bound) kernels moving ``nbytes`` in total over HBM."""
    if nbytes <= 0:
        return 0.0
    return nbytes / hw.stream_Bps + kernels * hw.kernel_overhead_s


@dataclass(frozen=True)
class LayerTime:
    """One transformer layer, one micro-batch, one tensor rank (seconds)."""

    forward: float            # compute, forward
    backward: float           # compute, backward
    attention_forward: float  # the attention core alone (what selective recomputation reruns)
    tp_forward: float         # exposed tensor-parallel communication of one forward
    tp_backward: float        # ... of one backward
    cp_comm: float            # exposed context-parallel communication, forward + backward
    ep_comm: float            # expert all-to-alls, forward + backward
    hidden_comm: float = 0.0  # communication overlapped with compute (tp_overlap, cp), fwd + bwd


def _group_shape(hw: Hardware, ranks: int, inner: int) -> tuple[int, int]:
    """(g, N): a group of ``ranks`` consecutive-after-``inner`` ranks has g per scale-up domain."""
    per_domain = max(1, hw.scale_up_size // max(1, inner))
    g = math.gcd(ranks, per_domain) if ranks > 1 else 1
    return g, ranks // g


def _tp_link(hw: Hardware, tp: int) -> comm.Link:
    return hw.scale_up if tp <= hw.scale_up_size else hw.scale_out


@lru_cache(maxsize=65536)
def layer_time(model: TransformerModel, hw: Hardware, sw: Software, tp: int, cp: int, ep: int,
               microbatch: int, sequence_parallel: bool) -> LayerTime:
    """Times of one layer for one micro-batch on one tensor rank (see the module docstring)."""
    h, f, s = model.hidden, model.resolved_ffn_hidden, model.seq_len
    kv = model.kv_width
    tokens = microbatch * s / cp
    shards = tp if sequence_parallel else 1
    fwd = gemm_time(hw, tokens, (h + 2 * kv) / tp, h) + gemm_time(hw, tokens, h, h / tp)
    # MLP (dense, or experts after routing)
    up_width = f * (2 if model.ffn == "swiglu" else 1)
    if model.is_moe:
        local_experts = model.experts / ep
        per_expert = tokens * model.top_k * ep / model.experts
        fwd += gemm_time(hw, tokens, model.experts, h)  # router
        fwd += gemm_time(hw, per_expert, up_width / tp, h, local_experts)
        fwd += gemm_time(hw, per_expert, h, f / tp, local_experts)
        mlp_tokens = tokens * model.top_k
    else:
        fwd += gemm_time(hw, tokens, up_width / tp, h) + gemm_time(hw, tokens, h, f / tp)
        mlp_tokens = tokens
    # element-wise
    replicated = 2 * (LAYER_NORM_BYTES + DROPOUT_RESIDUAL_BYTES) * tokens * h / shards
    activation = ACTIVATION_BYTES[model.ffn] * mlp_tokens * f / tp
    elementwise = stream_time(hw, replicated + activation, kernels=5)
    # attention core: tokens local queries against s keys, heads / tp
    heads = model.heads / tp
    score_flops = 2.0 * 2.0 * tokens * s * h / tp  # Q·Kᵀ and P·V
    if sw.attention == "flash":
        attn_f = score_flops * CAUSAL_FRACTION / (hw.peak_flops * hw.attention_efficiency) + hw.kernel_overhead_s
        attn_b = FLASH_BACKWARD_PER_FORWARD * attn_f
    else:
        batch = microbatch * heads
        d = model.head_dim
        q_rows = s / cp
        scores = batch * q_rows * s
        score_gemms = (gemm_time(hw, q_rows, s, d, batch, sixteen_bit=True)
                       + gemm_time(hw, q_rows, d, s, batch, sixteen_bit=True))
        attn_f = score_gemms + stream_time(hw, SCORE_FORWARD_BYTES * scores, kernels=2)
        attn_b = 2 * score_gemms + stream_time(hw, SCORE_BACKWARD_BYTES * scores, kernels=2)
    gemm_f = fwd
    forward = gemm_f + elementwise + attn_f
    backward = 2 * gemm_f + BACKWARD_PER_FORWARD_BYTES * elementwise + attn_b
    # tensor parallelism: 2 all-reduces (or RS+AG pairs) of b·s·h per forward
    tp_forward = tp_backward = hidden_comm = 0.0
    if tp > 1:
        volume = VALUE * tokens * h
        raw = 2 * comm.ring_all_reduce(volume, tp, _tp_link(hw, tp))
        tp_forward = raw * (1.0 - sw.tp_overlap)
        # with sequence parallelism the backward also re-gathers the two column-parallel GEMMs' inputs
        # for their weight gradients (only the sequence shard is saved): one more all-gather each
        backward_factor = 1.5 if sequence_parallel else 1.0
        tp_backward = tp_forward * backward_factor
        hidden_comm = raw * sw.tp_overlap * (1.0 + backward_factor)
    # context parallelism: ring of cp−1 K/V shard passes, hidden behind the attention compute
    cp_comm = 0.0
    if cp > 1:
        g, n_out = _group_shape(hw, cp, tp)
        link = hw.scale_up if n_out == 1 else hw.scale_out
        shard = VALUE * tokens * 2 * kv / tp
        step_f = (cp - 1) * comm.p2p(shard, link)
        cp_comm = max(0.0, step_f - attn_f) + max(0.0, 2 * step_f - attn_b)
        hidden_comm += 3 * step_f - cp_comm
    ep_comm = 0.0
    if model.is_moe and ep > 1:
        g, n_out = _group_shape(hw, ep, tp)
        volume = VALUE * tokens * model.top_k * h / shards
        one = comm.hierarchical_all_to_all(volume, g, n_out, hw.scale_up, hw.scale_out)
        ep_comm = 4 * one  # dispatch + combine, forward and backward
    return LayerTime(forward, backward, attn_f, tp_forward, tp_backward, cp_comm, ep_comm, hidden_comm)


# --- the step --------------------------------------------------------------------------------

def _logits_time(model: TransformerModel, hw: Hardware, tp: int, cp: int, microbatch: int) -> tuple[float, float]:
    tokens = microbatch * model.seq_len / cp
    fwd = gemm_time(hw, tokens, model.vocab / tp, model.hidden, sixteen_bit=True)
    loss = stream_time(hw, LOGIT_BYTES * tokens * model.vocab / tp, kernels=2)
    return fwd + loss, 2 * fwd + loss


def _data_parallel_reduce(hw: Hardware, nbytes: float, ranks: int, inner: int, zero: int) -> float:
    """Gradient reduction over ``ranks`` data-parallel GPUs whose group stride is ``inner``."""
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    g, n_out = _group_shape(hw, ranks, inner)
    if zero == 0:
        return comm.hierarchical_all_reduce(nbytes, g, n_out, hw.scale_up, hw.scale_out)
    return comm.hierarchical_reduce_scatter(nbytes, g, n_out, hw.scale_up, hw.scale_out)


def _first_bucket_parameters(model: TransformerModel, par: Parallelism) -> float:
    """Dense parameters on one GPU of the first stage that the backward finishes last and the forward
    needs first: the input embeddings and the first layer.

    Gradient reduction runs in buckets as gradients become ready (PyTorch DDP's 25 MB buckets,
    Megatron-Core's max(40 M, 1 M·dp) parameters, FSDP's per-layer units); one layer plus the
    embeddings stands for that last bucket here.
    """
    return (model.vocab * model.hidden / par.tp + model.seq_len * model.hidden
            + _shared_layer_parameters(model) / par.tp)


def _gather(hw: Hardware, nbytes: float, ranks: int, inner: int) -> float:
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    g, n_out = _group_shape(hw, ranks, inner)
    return comm.hierarchical_all_gather(nbytes, g, n_out, hw.scale_up, hw.scale_out)


def _critical_stage(model: TransformerModel, par: Parallelism, layer: LayerTime, recompute: float,
                    logits: float) -> int:
    """The pipeline stage that sets the pace: the last with even stages (it also runs the output layer and the
    loss); with uneven ones (fewer layers first and last, as trained) a fuller middle stage may."""
    if par.even_stages(model.layers):
        return par.pp - 1
    per_layer = (layer.forward + layer.tp_forward + layer.backward + layer.tp_backward + recompute
                 + layer.cp_comm + layer.ep_comm)
    stages = par.stage_layers(model.layers)
    last = len(stages) - 1
    return max(range(len(stages)), key=lambda i: (stages[i] * per_layer + logits * (i == last), i))


@lru_cache(maxsize=64)
def at_stack_rates(hw: Hardware, efficiency: float) -> Hardware:
    """``hw`` as a stack of kernel ``efficiency`` sees it: GEMM, attention and streaming rates scaled,
    each kernel's fixed cost stretched; the links (communication) unchanged."""
    if efficiency == 1.0:
        return hw
    return hw.with_(gemm_efficiency=hw.gemm_efficiency * efficiency,
                    attention_efficiency=hw.attention_efficiency * efficiency,
                    hbm_efficiency=hw.hbm_efficiency * efficiency,
                    kernel_overhead_s=hw.kernel_overhead_s / efficiency)


def step_time(model: TransformerModel, training: Training, par: Parallelism, hw: Hardware,
              sw: Software = Software(), check: bool = True) -> StepTime:
    """Predicted time of one optimizer step of ``model`` laid out as ``par`` on ``hw``.

    ``check`` validates the layout first (the search, which builds only valid layouts, skips it).
    """
    peak = hw.peak_flops
    if sw.efficiency != 1.0:
        hw = at_stack_rates(hw, sw.efficiency)
    if check:
        par.validate(model, training)
        sw.validate()
        if par.gpus > hw.total_gpus:
            raise InputError(f"parallelism: tp·pp·dp·cp = {par.gpus} GPUs, more than the {hw.total_gpus} "
                             f"of system '{hw.name}'")
    tp, pp, dp, cp, ep, v = par.tp, par.pp, par.dp, par.cp, par.ep, par.interleave
    m = par.microbatches(training)
    layer = layer_time(model, hw, sw, tp, cp, ep, par.microbatch, par.sequence_parallel)
    recompute = 0.0
    if par.recompute == "full":
        recompute = layer.forward + layer.tp_forward
    elif par.recompute == "selective":
        recompute = layer.attention_forward
    logit_f, logit_b = _logits_time(model, hw, tp, cp, par.microbatch)
    # the pipeline runs at the pace of its slowest stage: with even stages the last (it also runs the output
    # layer and the loss); uneven stages (fewer layers first and last) move that to a middle stage
    critical = _critical_stage(model, par, layer, recompute, logit_f + logit_b)
    per_stage = par.layers_of_stage(model.layers, critical)
    if critical != pp - 1:
        logit_f = logit_b = 0.0
    dense, expert = _stage_parameters(model, par, critical)
    # every micro-batch's weight gradients are added into fp32 main gradients (read and written)
    accumulate = stream_time(hw, MAIN_GRAD_BYTES * (dense + expert), kernels=0)
    fwd = per_stage * (layer.forward + layer.tp_forward)
    bwd = per_stage * (layer.backward + layer.tp_backward + recompute) + accumulate
    tp_total = per_stage * (layer.tp_forward + layer.tp_backward
                            + (layer.tp_forward if par.recompute == "full" else 0.0))
    other_comm = per_stage * (layer.cp_comm + layer.ep_comm)
    slot = fwd + bwd + other_comm + logit_f + logit_b
    # point-to-point between stages: v sends forward and v backward per micro-batch
    p2p = 0.0
    if pp > 1:
        stride = tp * cp * dp
        link = hw.scale_up if stride * pp <= hw.scale_up_size else hw.scale_out
        shard = VALUE * par.microbatch * model.seq_len / cp * model.hidden / (tp if par.sequence_parallel else 1)
        p2p = 2 * v * comm.p2p(shard, link)
    # the warm-up and drain run (p − 1) virtual chunks of the critical stage: (p − 1)/v of its slot when its layers
    # split evenly into v chunks, more when they do not (a pipeline layout with uneven stages)
    bubble_slots = (pp - 1) * math.ceil(per_stage / v) / per_stage if per_stage else (pp - 1) / v
    breakdown = {
        "forward": m * (per_stage * layer.forward + logit_f),
        "backward": m * (per_stage * layer.backward + logit_b),
        "grad_accumulate": m * accumulate,
        "recompute": m * per_stage * (layer.forward if par.recompute == "full" else
                                      layer.attention_forward if par.recompute == "selective" else 0.0),
        "tp_comm": m * tp_total,
        "cp_comm": m * per_stage * layer.cp_comm,
        "ep_comm": m * per_stage * layer.ep_comm,
        "pp_bubble": bubble_slots * (slot + p2p),
        "pp_p2p": m * p2p,
    }
    # data parallelism over dp·cp ranks (experts over dp·cp/ep), gradients in 16 bits
    data_ranks = dp * cp
    grad_bytes = sw.grad_reduce_bytes
    grad = _data_parallel_reduce(hw, grad_bytes * dense, data_ranks, tp, par.zero)
    if model.is_moe and data_ranks // ep > 1:
        grad += _data_parallel_reduce(hw, grad_bytes * expert, data_ranks // ep, tp * ep, par.zero)
    gather = 0.0
    if par.zero in (1, 2):
        gather = _gather(hw, VALUE * dense, data_ranks, tp)
        if model.is_moe and data_ranks // ep > 1:
            gather += _gather(hw, VALUE * expert, data_ranks // ep, tp * ep)
    last_backward = bwd + logit_b
    # the last gradients computed (the first layer's and the input embedding's) can only be reduced
    # after the backward ends, and the first forward waits for their weights to be gathered
    first = _first_bucket_parameters(model, par)
    grad_tail = _data_parallel_reduce(hw, grad_bytes * first, data_ranks, tp, par.zero)
    first_gather = _gather(hw, VALUE * first, data_ranks, tp)
    gather_tail = first_gather if par.zero in (1, 2) else 0.0
    if sw.overlap_grad_reduce:
        exposed_grad = max(min(grad, grad_tail), grad - last_backward)
    else:
        exposed_grad = grad
    if sw.overlap_param_gather:
        exposed_gather = max(min(gather, gather_tail), gather - (fwd + logit_f))
    else:
        exposed_gather = gather
    dp_exposed = exposed_grad + exposed_gather
    dp_hidden = (grad - exposed_grad) + (gather - exposed_gather)
    if par.zero == 3 and data_ranks > 1:
        weights = _gather(hw, VALUE * dense, data_ranks, tp) + (
            _gather(hw, VALUE * expert, data_ranks // ep, tp * ep) if model.is_moe and data_ranks // ep > 1 else 0.0)
        per_micro = 2 * weights + grad  # gather for forward and for backward, reduce-scatter per micro-batch
        hidden_by = (fwd + bwd) if sw.overlap_param_gather else 0.0
        # the first layer's weights are gathered before the first forward, its gradients reduced after the last backward
        tail = grad_tail + first_gather
        dp_exposed = max(m * max(0.0, per_micro - hidden_by), min(m * per_micro, tail))
        dp_hidden = m * per_micro - dp_exposed
    breakdown["dp_comm"] = dp_exposed
    # overlapped communication is hidden, not free: its kernels take SMs and HBM bandwidth from the
    # compute beside it, which runs (1 + σ) times slower while they share the GPU
    hidden = dp_hidden + m * per_stage * layer.hidden_comm
    breakdown["overlap_contention"] = hidden * hw.overlap_slowdown / (1.0 + hw.overlap_slowdown)
    # optimizer: Adam over the parameters this rank owns
    owned = dense / (data_ranks if par.zero >= 1 else 1)
    if model.is_moe:
        owned += expert / (max(1, data_ranks // ep) if par.zero >= 1 else 1)
    breakdown["optimizer"] = stream_time(hw, ADAM_BYTES_PER_PARAMETER * owned, kernels=4)
    total = sum(breakdown.values()) * hw.calibration
    if hw.calibration != 1.0:
        breakdown = {k: t * hw.calibration for k, t in breakdown.items()}
    memory = memory_per_gpu(model, training, par, fused_attention=sw.attention == "flash")
    return StepTime(
        step_time_s=total, breakdown=breakdown,
        model_flops=model_flops_per_step(model, training.global_batch),
        hardware_flops=hardware_flops_per_step(model, training.global_batch, par.recompute),
        gpus=par.gpus, tokens_per_step=training.global_batch * model.seq_len, memory=memory,
        fits_memory=fits_memory(memory, hw.hbm_bytes), parallelism=par, software=sw,
        peak_flops=peak, layers=model.layers)
