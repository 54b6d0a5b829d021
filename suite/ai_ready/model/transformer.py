"""Parameters, FLOPs and per-GPU memory of one transformer configuration.

Pure Python (no torch): a search over 100,000-GPU layouts calls these millions of times. The
inputs are assumed valid (:meth:`TransformerModel.validate`, :meth:`Parallelism.validate`);
nothing here checks them again.

Counting conventions, the same as :mod:`ai_ready.train.flops` (the two agree exactly on the
project's own GPT, see the tests): matrix multiplies only, 2 FLOPs per multiply-add, backward =
2 × forward (one GEMM for the input gradient, one for the weight gradient); attention counted
dense (the causal mask is ignored), which is also the convention of the published formulas.

Sources, cited as [N21], [K22] and [R20] below:

- [N21] Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
  Megatron-LM", SC'21: parameters P = 12·l·h²·(1 + 13/(12h) + (V+s)/(12·l·h)) (§5.1, eq. 2) and
  FLOPs with full recomputation F = 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)) (§5.1, eq. 3).
- [K22] Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models",
  2022: activation bytes per layer (§4, Table 2), pipeline in-flight activations (§4.2.3), model
  FLOPs 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)) and selective-recompute hardware FLOPs
  72·B·s·l·h²·(1 + s/(3h) + V/(12·l·h)) (Appendix A).
- [R20] Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
  Models", SC'20: 16 bytes per parameter for mixed-precision Adam (§3.1) and its sharding per
  ZeRO stage (Figure 1).

Notation: B global batch (sequences), b micro-batch, s sequence length, l layers, h hidden, a
heads, V vocabulary, t/p/v tensor/pipeline/interleave sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ai_ready.errors import InputError
from ai_ready.model.workload import RECOMPUTE_MODES, Parallelism, Training, TransformerModel

FLOPS_PER_MAC = 2
# [N21] Appendix / [K22] Appendix A: "the backward pass requires double the FLOPs of the forward
# pass" (gradients with respect to the input and to the weights).
BACKWARD_PER_FORWARD = 2
PASSES_PER_STEP = 1 + BACKWARD_PER_FORWARD
# [K22] Appendix A: the attention core is two batched GEMMs per layer, scores Q·Kᵀ and
# softmax·V, each s·s·h multiply-adds per sequence (2·B·s²·h FLOPs each, forward).
ATTENTION_CORE_GEMMS = 2
FFN_MATRICES = {"gelu": 2, "swiglu": 3}  # up, down (+ gate for SwiGLU)
LAYERNORMS_PER_LAYER = 2  # pre-norm before attention and before the MLP
LAYERNORM_PARAMS = 2  # weight and bias per channel; gives [N21]'s 13/(12h) with the biases

# [K22] §4.1: activations are 16-bit values, dropout masks 1 byte per element.
VALUE_BYTES = 2
MASK_BYTES = 1
# [K22] §4.1: per attention score, the softmax output (2) + its dropout mask (1) + the dropout
# output (2) = 5 bytes: the 5·a·s²·b term.
SCORE_BYTES = 5
# [K22] §4.1: the GELU input and output (2 × 8·s·b·h for f = 4h); SwiGLU by the same rule keeps
# the gate and up outputs and their product (Megatron's fused SwiGLU saves its input and output).
FFN_INTERIOR_TENSORS = {"gelu": 2, "swiglu": 3}
# [K22] Table 2, full recomputation: only the layer's 16-bit input is kept, 2·s·b·h.
FULL_RECOMPUTE_BYTES = 2
# Bytes of one stored activation value per training precision. fp8 runs keep 16-bit activations
# between layers (assumption: Transformer Engine's transient fp8 copies are not counted); fp32
# doubles every term of [K22]'s 16-bit accounting, masks included (a small over-count).
ACTIVATION_VALUE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 2, "fp32": 4}
# Assumption (not in [K22]'s per-layer table): the output layer keeps fp32 logits for the softmax
# cross-entropy, 4·b·s·V/t bytes (vocab-parallel over t), one micro-batch at a time, last stage.
LOGITS_BYTES = 4

# [R20] §3.1: mixed-precision Adam keeps 16-bit weights (2) and gradients (2) and fp32 master
# weights, momentum and variance (K = 12): 16 bytes per parameter. fp8 training keeps the same
# (assumption: fp8 weight copies are transient). Pure fp32 training: fp32 weights (4), gradients
# (4) and the two Adam moments (8), no master copy: also 16 bytes.
MIXED_PRECISION_STATE_BYTES = (2, 2, 12)  # weights, gradients, optimizer
FP32_STATE_BYTES = (4, 4, 8)
STATE_BYTES = {"bf16": MIXED_PRECISION_STATE_BYTES, "fp16": MIXED_PRECISION_STATE_BYTES,
               "fp8": MIXED_PRECISION_STATE_BYTES, "fp32": FP32_STATE_BYTES}
# ZeRO stage from which each state is sharded over the data-parallel ranks ([R20] Figure 1):
# optimizer states from stage 1 (P_os), gradients from 2 (P_os+g), weights from 3 (P_os+g+p).
ZERO_SHARDS_OPTIMIZER, ZERO_SHARDS_GRADIENTS, ZERO_SHARDS_WEIGHTS = 1, 2, 3

# Assumption: keep 10% of HBM for the CUDA context, communication buffers and allocator
# fragmentation, which none of the formulas count.
DEFAULT_RESERVE_FRACTION = 0.1


# --- parameters ------------------------------------------------------------------------------

def expert_parameters(model: TransformerModel) -> int:
    """Parameters of one MLP (one expert when MoE): GELU with biases, SwiGLU without."""
    h, f = model.hidden, model.resolved_ffn_hidden
    if model.ffn == "swiglu":
        return FFN_MATRICES["swiglu"] * h * f
    return FFN_MATRICES["gelu"] * h * f + f + h


def _attention_parameters(model: TransformerModel) -> int:
    """Q and output projections h×h, K and V h×(kv_heads·head_dim), each with a bias ([N21])."""
    h, kv = model.hidden, model.kv_width
    return 2 * h * h + 2 * h * kv + 2 * h + 2 * kv


def _shared_layer_parameters(model: TransformerModel) -> int:
    """Per-layer parameters outside the experts: attention, LayerNorms, router (MoE) or MLP (dense)."""
    norms = LAYERNORMS_PER_LAYER * LAYERNORM_PARAMS * model.hidden
    mlp = model.hidden * model.experts if model.is_moe else expert_parameters(model)
    return _attention_parameters(model) + norms + mlp


def _outside_layers(model: TransformerModel) -> int:
    """Word and learned position embeddings, final LayerNorm, untied output layer."""
    head = 0 if model.tied_embeddings else model.vocab * model.hidden
    final_norm = LAYERNORM_PARAMS * model.hidden
    return (model.vocab + model.seq_len) * model.hidden + final_norm + head


def parameters(model: TransformerModel) -> int:
    """Exact parameter count of the architecture described by ``model``.

    For a GELU MHA model with tied embeddings this is [N21] eq. 2,
    12·l·h² + 13·l·h + (V+s)·h, plus the final LayerNorm (2h) that the formula leaves out.
    Generalised: K/V projections h×(kv_heads·head_dim) (GQA), any ffn_hidden, three bias-free
    SwiGLU matrices, ``experts`` expert MLPs plus a bias-free h×experts router per MoE layer,
    and V·h more for an untied output layer.
    """
    experts = model.experts * expert_parameters(model)
    return model.layers * (_shared_layer_parameters(model) + experts) + _outside_layers(model)


def active_parameters(model: TransformerModel) -> int:
    """Parameters one token uses: as :func:`parameters` with ``top_k`` experts per MoE layer."""
    experts = model.top_k * expert_parameters(model)
    return model.layers * (_shared_layer_parameters(model) + experts) + _outside_layers(model)


# --- FLOPs -----------------------------------------------------------------------------------

def _attention_core_flops_per_token(model: TransformerModel) -> int:
    """Forward FLOPs of Q·Kᵀ and softmax·V per token of one layer (dense, [K22] Appendix A)."""
    return FLOPS_PER_MAC * ATTENTION_CORE_GEMMS * model.seq_len * model.hidden


def _layer_forward_flops_per_token(model: TransformerModel) -> int:
    """Forward matmul FLOPs per token of one layer: projections, attention core, MLP(s), router."""
    h, kv = model.hidden, model.kv_width
    projections = FLOPS_PER_MAC * (2 * h * h + 2 * h * kv)
    mlp = FLOPS_PER_MAC * FFN_MATRICES[model.ffn] * h * model.resolved_ffn_hidden
    if model.is_moe:
        mlp = model.top_k * mlp + FLOPS_PER_MAC * h * model.experts
    return projections + _attention_core_flops_per_token(model) + mlp


def model_flops_per_step(model: TransformerModel, global_batch: int) -> float:
    """Model FLOPs of one training step (forward + backward, no recomputation): what MFU counts.

    For a GELU MHA model with ffn_hidden = 4h this is exactly [K22] Appendix A,
    72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)): three passes over every layer GEMM and over the
    output-layer GEMM (2·B·s·V·h forward). Generalised exactly to GQA (K/V GEMMs of width
    kv_heads·head_dim), any ffn_hidden, SwiGLU (three GEMMs) and MoE (top_k expert MLPs per token
    plus the h×experts router GEMM).
    """
    tokens = global_batch * model.seq_len
    logits = FLOPS_PER_MAC * model.hidden * model.vocab
    return float(PASSES_PER_STEP * tokens * (model.layers * _layer_forward_flops_per_token(model) + logits))


def recompute_flops_per_step(model: TransformerModel, global_batch: int, recompute: str) -> float:
    """Extra forward FLOPs that activation recomputation adds to one step.

    - ``none``: 0.
    - ``selective``: one more forward of every layer's attention core, 4·B·s²·h per layer.
    - ``full``: one more forward of every layer (not of the output layer, whose logits the loss
      needs anyway). This reproduces [N21] eq. 3 exactly: 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h))
      = model FLOPs + 24·B·s·l·h² + 4·B·s²·l·h; its V term is the same 6·B·s·V·h as [K22]'s
      V/(12·l·h), only factored by 96 instead of 72.

    [K22]'s selective closed form, 72·B·s·l·h²·(1 + s/(3h) + V/(12·l·h)), adds 12·B·s²·l·h, three
    times the attention core's forward: more than rerunning it costs. We count what is rerun, one
    forward (the tests show the relation); the paper's figure is 8·B·s²·l·h higher.
    """
    tokens = global_batch * model.seq_len
    if recompute == "none":
        return 0.0
    if recompute == "selective":
        return float(tokens * model.layers * _attention_core_flops_per_token(model))
    if recompute == "full":
        return float(tokens * model.layers * _layer_forward_flops_per_token(model))
    raise InputError(f"recompute: got {recompute!r}; accepted: {', '.join(RECOMPUTE_MODES)}")


def hardware_flops_per_step(model: TransformerModel, global_batch: int, recompute: str) -> float:
    """FLOPs the GPUs execute in one step: model FLOPs plus recomputation.

    This is what Megatron-lineage papers' "TFLOP/s per GPU" counts; see
    :func:`recompute_flops_per_step` for what each mode adds and how it relates to the papers.
    """
    return model_flops_per_step(model, global_batch) + recompute_flops_per_step(model, global_batch, recompute)


# --- memory ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per GPU on the busiest pipeline stage (``stage``: ``first``, ``last`` or ``only``)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    stage: str = "only"

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations


def _activation_bytes_per_token(model: TransformerModel) -> tuple[int, int]:
    """(replicated, tensor-sharded) 16-bit activation bytes per token of one layer, [K22] §4.1.

    Replicated across tensor ranks unless sequence parallel: the two LayerNorm inputs (4h), the
    QKV GEMM input and the attention dropout mask (3h), the MLP (router) input and the MLP
    dropout mask (3h): 10h. Sharded over t: Q, K, V (2h + 4·kv_width), the output projection's
    input (2h) and the MLP interior (GELU: its input and output, 4f; SwiGLU: gate, up and their
    product, 6f): 24h for the standard model. MoE: top_k routed copies of the token (2h each,
    counted with the replicated inputs) and top_k expert interiors; router logits are left out.
    """
    h, f = model.hidden, model.resolved_ffn_hidden
    norms = LAYERNORMS_PER_LAYER * VALUE_BYTES * h
    attention_in = VALUE_BYTES * h + MASK_BYTES * h
    mlp_in = VALUE_BYTES * h + MASK_BYTES * h
    replicated = norms + attention_in + mlp_in
    qkv = VALUE_BYTES * (h + 2 * model.kv_width)
    attention_out = VALUE_BYTES * h
    interior = FFN_INTERIOR_TENSORS[model.ffn] * VALUE_BYTES * f
    if model.is_moe:
        replicated += model.top_k * VALUE_BYTES * h
        interior *= model.top_k
    return replicated, qkv + attention_out + interior


def activation_bytes_per_layer(model: TransformerModel, microbatch: int, tp: int = 1,
                               sequence_parallel: bool = False, recompute: str = "none",
                               cp: int = 1, fused_attention: bool = False) -> float:
    """16-bit activation bytes one layer keeps for the backward of one micro-batch ([K22] Table 2).

    Standard model (s·b·h factored out): none 34 + 5·a·s/h; with t: 10 + 24/t + 5·a·s/(h·t); with
    t and sequence parallelism (34 + 5·a·s/h)/t; selective drops the 5·a·s/h term; full keeps only
    the layer input, 2 (÷ t with sequence parallelism, as Megatron stores the sequence shard;
    [K22] lists 2·s·b·h). Context parallelism: each rank holds s/cp tokens, whose attention
    scores span all s keys, so the score term is divided by cp once, not twice. Fused (flash)
    attention never stores the scores (Dao et al. 2022 keep only the softmax statistics, O(s) per
    head): ``fused_attention`` drops the score term, as selective recomputation does.
    """
    tokens = microbatch * model.seq_len / cp
    sequence_shards = tp if sequence_parallel else 1
    if recompute == "full":
        return tokens * FULL_RECOMPUTE_BYTES * model.hidden / sequence_shards
    replicated, sharded = _activation_bytes_per_token(model)
    per_token = replicated / sequence_shards + sharded / tp
    if recompute == "none":
        if not fused_attention:
            per_token += SCORE_BYTES * model.heads * model.seq_len / tp
    elif recompute != "selective":
        raise InputError(f"recompute: got {recompute!r}; accepted: {', '.join(RECOMPUTE_MODES)}")
    return tokens * per_token


def layers_in_flight(layers: int, pp: int, interleave: int, microbatches: int, stage: int = 0,
                     stage_layers: int | None = None) -> float:
    """Layers' worth of micro-batch activations pipeline stage ``stage`` holds at its peak.

    Megatron's 1F1B warm-up: stage r runs p−r−1 forwards (interleaved: 2·(p−r−1) + (v−1)·p chunk
    forwards) before its first backward, so it holds one more, capped by the micro-batches
    (chunks) there are, each of l/(p·v) layers. The first stage thus holds l layers' worth and,
    interleaved, l·(1 + (p−1)/(p·v)) ([K22] §4.2.3); without pipelining, l layers of one micro-batch.
    ``stage_layers``: this stage's layers when stages are uneven (default l/p).
    """
    per_chunk = (layers / pp / interleave if stage_layers is None
                 else math.ceil(stage_layers / interleave))  # uneven chunks: the largest is held
    if interleave == 1:
        warmup = pp - stage - 1
    else:
        warmup = 2 * (pp - stage - 1) + (interleave - 1) * pp
    held = min(warmup + 1, microbatches * interleave)
    return held * per_chunk


def _stage_parameters(model: TransformerModel, par: Parallelism, stage: int) -> tuple[float, float]:
    """(dense, expert) parameters one GPU of pipeline stage ``stage`` holds.

    The l/p layers are divided by t (LayerNorms and row-parallel biases, replicated in Megatron,
    are treated as sharded too: a relative error below 1/h); experts are also divided by ep. The
    first stage holds the word embedding (vocab-parallel, ÷ t) and the position embedding
    (replicated); the last the final LayerNorm and the output layer (÷ t), which with p > 1 is a
    copy of the word embedding even when tied, as in Megatron.
    """
    layers = par.layers_of_stage(model.layers, stage)
    h = model.hidden
    dense = layers * _shared_layer_parameters(model) / par.tp
    expert = layers * model.experts * expert_parameters(model) / (par.tp * par.ep)
    if stage == 0:
        dense += model.vocab * h / par.tp + model.seq_len * h
    if stage == par.pp - 1:
        dense += LAYERNORM_PARAMS * h
        if not model.tied_embeddings or par.pp > 1:
            dense += model.vocab * h / par.tp
    return dense, expert


def _model_states(params: float, shards: int, precision: str, zero: int) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes of ``params`` parameters under ZeRO over ``shards`` ranks.

    [R20] Figure 1: ZeRO-1 4Ψ + 12Ψ/N_d, ZeRO-2 2Ψ + 14Ψ/N_d, ZeRO-3 16Ψ/N_d.
    """
    weight, gradient, optimizer = STATE_BYTES[precision]
    return (params * weight / (shards if zero >= ZERO_SHARDS_WEIGHTS else 1),
            params * gradient / (shards if zero >= ZERO_SHARDS_GRADIENTS else 1),
            params * optimizer / (shards if zero >= ZERO_SHARDS_OPTIMIZER else 1))


def _stage_memory(model: TransformerModel, training: Training, par: Parallelism, stage: int,
                  fused_attention: bool = False) -> MemoryBreakdown:
    dense, expert = _stage_parameters(model, par, stage)
    data_shards = par.dp * par.cp
    states = [d + e for d, e in zip(_model_states(dense, data_shards, training.precision, par.zero),
                                    _model_states(expert, data_shards // par.ep, training.precision, par.zero))]
    per_layer = activation_bytes_per_layer(model, par.microbatch, par.tp, par.sequence_parallel,
                                           par.recompute, par.cp, fused_attention)
    per_layer *= ACTIVATION_VALUE_BYTES[training.precision] / VALUE_BYTES
    activations = per_layer * layers_in_flight(model.layers, par.pp, par.interleave,
                                               par.microbatches(training), stage,
                                               par.layers_of_stage(model.layers, stage))
    if stage == par.pp - 1:
        activations += LOGITS_BYTES * par.microbatch * model.seq_len / par.cp * model.vocab / par.tp
    name = "only" if par.pp == 1 else ("first" if stage == 0 else "last" if stage == par.pp - 1 else "middle")
    return MemoryBreakdown(*states, activations=activations, stage=name)


def memory_per_gpu(model: TransformerModel, training: Training, par: Parallelism,
                   fused_attention: bool = False) -> MemoryBreakdown:
    """Bytes per GPU on the busier of the first and last pipeline stage.

    Weights, gradients and optimizer: 16 bytes per parameter held (see ``STATE_BYTES``), sharded
    over the N_d = dp·cp data-parallel ranks per the ZeRO stage ([R20]); expert parameters over
    dp·cp/ep ranks (the rest of the data-parallel group holds the same experts).
    Activations: :func:`activation_bytes_per_layer` × :func:`layers_in_flight` for this stage,
    plus the fp32 logits on the last stage (``LOGITS_BYTES``). Left out: the embedding dropout
    mask, the transient full-layer activations while recomputing, router logits, communication
    buffers (see :func:`fits_memory`'s reserve).
    """
    first = _stage_memory(model, training, par, 0, fused_attention)
    if par.pp == 1:
        return first
    candidates = [first, _stage_memory(model, training, par, par.pp - 1, fused_attention)]
    if par.pp > 2 and not par.even_stages(model.layers):
        candidates.append(_stage_memory(model, training, par, 1, fused_attention))  # uneven: a fuller middle stage may peak
    return max(candidates, key=lambda m: m.total)


def fits_memory(breakdown: MemoryBreakdown, hbm_bytes: float,
                reserve_fraction: float = DEFAULT_RESERVE_FRACTION) -> bool:
    """Whether ``breakdown`` fits in ``hbm_bytes`` with ``reserve_fraction`` of it kept free."""
    return breakdown.total <= hbm_bytes * (1 - reserve_fraction)
