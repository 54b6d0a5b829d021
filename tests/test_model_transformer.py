"""Transformer workload arithmetic: published parameter counts, closed-form FLOPs, memory, validation."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
import yaml

from ai_ready.errors import InputError
from ai_ready.model import (MemoryBreakdown, Parallelism, Training, TransformerModel, activation_bytes_per_layer,
                            active_parameters, fits_memory, hardware_flops_per_step, layers_in_flight,
                            load_workload, memory_per_gpu, model_flops_per_step, parameters)
from ai_ready.model.transformer import expert_parameters

EXACT = 1e-12  # relative tolerance of a float identity
MEGATRON_VOCAB, MEGATRON_SEQ = 51200, 2048
GPT3_TOLERANCE = 0.005
A100_HBM = 80e9
BATCH = 1536

# Narayanan et al. SC'21, Table 1: (parameters in billions as printed, heads, hidden, layers).
MEGATRON_TABLE_1 = [
    ("1.7", 24, 2304, 24), ("3.6", 32, 3072, 30), ("7.5", 32, 4096, 36), ("18.4", 48, 6144, 40),
    ("39.1", 64, 8192, 48), ("76.1", 80, 10240, 60), ("145.6", 96, 12288, 80),
    ("310.1", 128, 16384, 96), ("529.6", 128, 20480, 105), ("1008", 160, 25600, 128),
]


def _megatron(heads: int, hidden: int, layers: int, **changes: object) -> TransformerModel:
    model = TransformerModel(layers=layers, hidden=hidden, heads=heads, vocab=MEGATRON_VOCAB, seq_len=MEGATRON_SEQ)
    return dataclasses.replace(model, **changes).validate()


GPT3 = _megatron(96, 12288, 96)
STANDARD = [_megatron(heads, hidden, layers) for _, heads, hidden, layers in MEGATRON_TABLE_1] + [GPT3]


def _close(a: float, b: float, rel: float = EXACT) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


# --- parameters ------------------------------------------------------------------------------

@pytest.mark.parametrize("printed,heads,hidden,layers", MEGATRON_TABLE_1)
def test_megatron_table_1_parameters(printed: str, heads: int, hidden: int, layers: int) -> None:
    ours = parameters(_megatron(heads, hidden, layers)) / 1e9
    half_digit = Decimal(1).scaleb(Decimal(printed).as_tuple().exponent) / 2
    print(f"{printed}B: ours {ours:.4f}B ({(ours / float(printed) - 1) * 100:+.3f}%)")
    assert abs(Decimal(ours) - Decimal(printed)) <= half_digit  # equal to the printed precision


@pytest.mark.parametrize("model", STANDARD, ids=lambda m: f"l{m.layers}h{m.hidden}")
def test_parameters_are_narayanan_eq2_plus_final_layernorm(model: TransformerModel) -> None:
    l, h, v, s = model.layers, model.hidden, model.vocab, model.seq_len
    formula = 12 * l * h * h + 13 * l * h + (v + s) * h  # 12·l·h²·(1 + 13/(12h) + (V+s)/(12·l·h))
    assert parameters(model) == formula + 2 * h


@pytest.mark.parametrize("vocab", [51200, 50257])
def test_gpt3_is_175b(vocab: int) -> None:
    ours = parameters(dataclasses.replace(GPT3, vocab=vocab))
    assert abs(ours / 175e9 - 1) <= GPT3_TOLERANCE


def test_llama2_7b_differs_by_its_architecture_only() -> None:
    # 6,738,415,616: 32 × (4h² + 3·h·f + 2h RMSNorm) + 2·V·h (untied) + h, no biases, rotary positions.
    llama = TransformerModel(layers=32, hidden=4096, heads=32, vocab=32000, seq_len=4096, ffn="swiglu",
                             ffn_hidden=11008, tied_embeddings=False).validate()
    l, h, s = llama.layers, llama.hidden, llama.seq_len
    # We add attention biases (4h) and LayerNorm biases (2h) per layer, learned positions, final norm bias.
    assert parameters(llama) - 6_738_415_616 == l * (4 * h + 2 * h) + s * h + h


@pytest.mark.parametrize("hidden,ffn", [(768, 2048), (4096, 10944), (1792, 4800), (100, 320)])
def test_swiglu_default_width(hidden: int, ffn: int) -> None:
    assert TransformerModel(2, hidden, 4, 100, 16, ffn="swiglu").resolved_ffn_hidden == ffn


def test_gqa_with_all_heads_is_mha() -> None:
    gqa = dataclasses.replace(GPT3, kv_heads=GPT3.heads)
    assert parameters(gqa) == parameters(GPT3)
    assert model_flops_per_step(gqa, BATCH) == model_flops_per_step(GPT3, BATCH)
    assert activation_bytes_per_layer(gqa, 1, 8) == activation_bytes_per_layer(GPT3, 1, 8)


@pytest.mark.parametrize("kv_heads", [1, 8, 32])
def test_gqa_shrinks_only_the_kv_projections(kv_heads: int) -> None:
    gqa = dataclasses.replace(GPT3, kv_heads=kv_heads)
    l, h, kv = GPT3.layers, GPT3.hidden, kv_heads * GPT3.head_dim
    assert parameters(GPT3) - parameters(gqa) == l * 2 * (h - kv) * (h + 1)  # K and V weights and biases
    tokens = BATCH * GPT3.seq_len
    assert model_flops_per_step(GPT3, BATCH) - model_flops_per_step(gqa, BATCH) == 3 * tokens * l * 4 * h * (h - kv)


def test_swiglu_8h_over_3_matches_gelu_4h_without_mlp_biases() -> None:
    gelu = _megatron(12, 768, 12)
    swiglu = dataclasses.replace(gelu, ffn="swiglu")
    assert swiglu.resolved_ffn_hidden * 3 == 8 * gelu.hidden
    assert parameters(gelu) - parameters(swiglu) == gelu.layers * 5 * gelu.hidden  # biases 4h + h
    assert model_flops_per_step(swiglu, BATCH) == model_flops_per_step(gelu, BATCH)
    assert activation_bytes_per_layer(swiglu, 2, 4) == activation_bytes_per_layer(gelu, 2, 4)


@pytest.mark.parametrize("ffn", ["gelu", "swiglu"])
def test_one_expert_is_dense_plus_router(ffn: str) -> None:
    dense = _megatron(12, 768, 12, ffn=ffn)
    moe = dataclasses.replace(dense, experts=1, top_k=1)
    l, h = dense.layers, dense.hidden
    assert parameters(moe) == active_parameters(moe) == parameters(dense) + l * h
    router_flops = 3 * BATCH * dense.seq_len * l * 2 * h
    assert model_flops_per_step(moe, BATCH) == model_flops_per_step(dense, BATCH) + router_flops


def test_moe_active_parameters_count_top_k_experts() -> None:
    moe = _megatron(16, 2048, 24, ffn="swiglu", experts=64, top_k=6)
    assert parameters(moe) - active_parameters(moe) == moe.layers * (64 - 6) * expert_parameters(moe)
    assert active_parameters(GPT3) == parameters(GPT3)


# --- FLOPs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("model", STANDARD, ids=lambda m: f"l{m.layers}h{m.hidden}")
def test_closed_forms_for_standard_models(model: TransformerModel) -> None:
    b, s, l, h, v = BATCH, model.seq_len, model.layers, model.hidden, model.vocab
    korthikanti_model = 72 * b * s * l * h * h * (1 + s / (6 * h) + v / (12 * l * h))
    narayanan_full = 96 * b * s * l * h * h * (1 + s / (6 * h) + v / (16 * l * h))
    korthikanti_selective = 72 * b * s * l * h * h * (1 + s / (3 * h) + v / (12 * l * h))
    assert _close(model_flops_per_step(model, b), korthikanti_model)
    assert hardware_flops_per_step(model, b, "none") == model_flops_per_step(model, b)
    assert _close(hardware_flops_per_step(model, b, "full"), narayanan_full)
    # Korthikanti's selective form adds 3× the attention core's forward; we add the one forward rerun.
    ours_selective = hardware_flops_per_step(model, b, "selective")
    assert _close(ours_selective, korthikanti_model + 4 * b * s * s * l * h)
    assert _close(korthikanti_selective - ours_selective, 8 * b * s * s * l * h, 1e-9)


def test_both_papers_count_the_output_layer_three_times() -> None:
    b, s, l, h, v = BATCH, GPT3.seq_len, GPT3.layers, GPT3.hidden, GPT3.vocab
    full_minus_model = hardware_flops_per_step(GPT3, b, "full") - model_flops_per_step(GPT3, b)
    assert _close(full_minus_model, 24 * b * s * l * h * h + 4 * b * s * s * l * h)  # layers only, no logits
    assert _close(72 * v / (12 * l * h), 96 * v / (16 * l * h))  # 6·B·s·V·h either way


@pytest.mark.parametrize("arch,preset,changes", [
    ("gpt", "small", {}), ("gpt", "medium", {}), ("gpt", "small", {"mlp": "swiglu"}),
    ("gpt", "small", {"tied_embeddings": False}), ("moe", "small", {}), ("moe", "medium", {}),
])
def test_agrees_with_the_training_models_count(arch: str, preset: str, changes: dict) -> None:
    from ai_ready.train.flops import gpt_step_flops  # imports torch; the model package does not
    from ai_ready.train.presets import PRESETS

    cfg = dataclasses.replace(PRESETS[arch][preset], **changes)
    model = TransformerModel(layers=cfg.layers, hidden=cfg.hidden, heads=cfg.heads, vocab=cfg.vocab,
                             seq_len=cfg.seq_len, ffn=cfg.mlp, experts=cfg.experts, top_k=cfg.top_k,
                             tied_embeddings=cfg.tied_embeddings).validate()
    counted = gpt_step_flops(cfg)
    assert model.resolved_ffn_hidden == cfg.ffn_hidden
    assert model_flops_per_step(model, cfg.batch) == counted.total
    assert (parameters(model), active_parameters(model)) == (counted.params, counted.active_params)


# --- memory ----------------------------------------------------------------------------------

def _states(breakdown: MemoryBreakdown) -> float:
    return breakdown.weights + breakdown.gradients + breakdown.optimizer


@pytest.mark.parametrize("zero,bytes_per_param", [
    (0, lambda n: 16), (1, lambda n: 4 + 12 / n), (2, lambda n: 2 + 14 / n), (3, lambda n: 16 / n),
])
@pytest.mark.parametrize("dp,cp", [(1, 1), (8, 1), (4, 2)])
def test_zero_stages(zero: int, bytes_per_param, dp: int, cp: int) -> None:
    model = _megatron(16, 2048, 24)
    par = Parallelism(tp=1, pp=1, dp=dp, cp=cp, zero=zero).validate(model, Training(64))
    states = _states(memory_per_gpu(model, Training(64), par))
    assert _close(states, parameters(model) * bytes_per_param(dp * cp))


def test_fp32_training_is_16_bytes_too() -> None:
    model = _megatron(16, 2048, 24)
    memory = memory_per_gpu(model, Training(8, precision="fp32"), Parallelism(1, 1, 1))
    psi = parameters(model)
    assert (memory.weights, memory.gradients, memory.optimizer) == (4 * psi, 4 * psi, 8 * psi)
    bf16 = memory_per_gpu(model, Training(8), Parallelism(1, 1, 1))
    logits = 4 * model.seq_len * model.vocab
    assert _close(memory.activations - logits, 2 * (bf16.activations - logits))


@pytest.mark.parametrize("zero,expected", [(0, lambda dense, expert, n, ep: 16 * (dense + expert / ep)),
                                           (3, lambda dense, expert, n, ep: 16 * (dense + expert) / n)])
def test_experts_shard_over_ep_and_the_rest_of_data_parallel(zero: int, expected) -> None:
    moe = _megatron(16, 2048, 24, experts=8, top_k=2)
    dp, ep = 8, 4
    par = Parallelism(tp=1, pp=1, dp=dp, ep=ep, zero=zero).validate(moe, Training(64))
    expert = moe.layers * moe.experts * expert_parameters(moe)
    states = _states(memory_per_gpu(moe, Training(64), par))
    assert _close(states, expected(parameters(moe) - expert, expert, dp, ep))


def _table_2(model: TransformerModel, b: int, t: int, sp: bool, recompute: str) -> float:
    """Korthikanti et al. 2022, Table 2: activation bytes per layer."""
    s, h, a = model.seq_len, model.hidden, model.heads
    scores = 5 * a * s / h
    if recompute == "full":
        return s * b * h * 2
    if sp:
        return s * b * h * (34 / t + (scores / t if recompute == "none" else 0))
    return s * b * h * (10 + 24 / t + (scores / t if recompute == "none" else 0))


@pytest.mark.parametrize("t,sp", [(1, False), (8, False), (8, True), (4, True)])
@pytest.mark.parametrize("recompute", ["none", "selective"])
def test_activations_reduce_to_table_2(t: int, sp: bool, recompute: str) -> None:
    for b in (1, 4):
        assert _close(activation_bytes_per_layer(GPT3, b, t, sp, recompute), _table_2(GPT3, b, t, sp, recompute))


def test_no_parallelism_is_34_plus_5as_over_h() -> None:
    s, b, h, a = GPT3.seq_len, 2, GPT3.hidden, GPT3.heads
    assert _close(activation_bytes_per_layer(GPT3, b), s * b * h * (34 + 5 * a * s / h))


@pytest.mark.parametrize("t,sp,shards", [(1, False, 1), (8, False, 1), (8, True, 8)])
def test_full_recompute_keeps_the_layer_input(t: int, sp: bool, shards: int) -> None:
    s, b, h = GPT3.seq_len, 2, GPT3.hidden
    assert activation_bytes_per_layer(GPT3, b, t, sp, "full") == 2 * s * b * h / shards


def test_context_parallel_divides_tokens_and_scores_once() -> None:
    s, b, h, a = GPT3.seq_len, 1, GPT3.hidden, GPT3.heads
    assert _close(activation_bytes_per_layer(GPT3, b, 8, True, "selective", cp=4),
                  activation_bytes_per_layer(GPT3, b, 8, True, "selective") / 4)
    assert _close(activation_bytes_per_layer(GPT3, b, 1, False, "none", cp=4), s / 4 * b * h * (34 + 5 * a * s / h))


@pytest.mark.parametrize("pp,v,m,stage,expected", [
    (1, 1, 16, 0, 96),  # no pipeline: one micro-batch of every layer
    (8, 1, 64, 0, 96),  # 1F1B first stage: p micro-batches of l/p layers
    (8, 1, 4, 0, 48),  # fewer micro-batches than stages: m of them
    (8, 1, 64, 7, 12),  # last stage: one micro-batch
    (8, 2, 64, 0, 96 * (1 + 7 / 16)),  # interleaved: × (1 + (p−1)/(p·v))
    (4, 3, 64, 0, 96 * (1 + 3 / 12)),
])
def test_layers_in_flight(pp: int, v: int, m: int, stage: int, expected: float) -> None:
    assert _close(layers_in_flight(96, pp, v, m, stage), expected)


def test_single_stage_holds_logits_and_every_layer() -> None:
    model, b, t = _megatron(16, 2048, 24), 2, 4
    par = Parallelism(tp=t, pp=1, dp=2, microbatch=b, sequence_parallel=True, recompute="selective")
    memory = memory_per_gpu(model, Training(64), par.validate(model, Training(64)))
    per_layer = activation_bytes_per_layer(model, b, t, True, "selective")
    assert memory.stage == "only"
    assert _close(memory.activations, model.layers * per_layer + 4 * b * model.seq_len * model.vocab / t)


@pytest.mark.parametrize("sp,recompute,fits", [(True, "selective", True), (False, "none", False)])
def test_gpt3_on_tp8_pp8_a100(sp: bool, recompute: str, fits: bool) -> None:
    # Korthikanti et al. 2022: GPT-3 175B on TP 8 × PP 8 fits 80 GB A100s with sequence parallelism
    # and selective recomputation, and does not without. Micro-batch 1, 64 micro-batches, no ZeRO.
    training = Training(global_batch=64)
    par = Parallelism(tp=8, pp=8, dp=1, microbatch=1, sequence_parallel=sp, recompute=recompute)
    memory = memory_per_gpu(GPT3, training, par.validate(GPT3, training))
    assert memory.stage == "first"
    assert fits_memory(memory, A100_HBM) is fits


def test_fits_memory_keeps_a_reserve() -> None:
    memory = MemoryBreakdown(weights=40, gradients=10, optimizer=30, activations=10)
    assert memory.total == 90
    assert fits_memory(memory, 100) and not fits_memory(memory, 99)
    assert fits_memory(memory, 91, reserve_fraction=0)


def test_gpus_exclude_expert_parallelism() -> None:
    assert Parallelism(tp=8, pp=4, dp=16, cp=2, ep=8).gpus == 8 * 4 * 16 * 2


# --- validation ------------------------------------------------------------------------------

GOOD_MODEL = TransformerModel(layers=8, hidden=512, heads=8, vocab=1000, seq_len=256)
GOOD_TRAINING = Training(global_batch=32)
MOE_MODEL = dataclasses.replace(GOOD_MODEL, experts=8, top_k=2)


@pytest.mark.parametrize("changes,field", [
    ({"layers": 0}, "model.layers"), ({"hidden": -1}, "model.hidden"), ({"vocab": True}, "model.vocab"),
    ({"seq_len": 2.0}, "model.seq_len"), ({"heads": 7}, "model.heads"), ({"kv_heads": 3}, "model.kv_heads"),
    ({"kv_heads": 0}, "model.kv_heads"), ({"ffn_hidden": 0}, "model.ffn_hidden"), ({"ffn": "relu"}, "model.ffn"),
    ({"experts": 4, "top_k": 0}, "model.top_k"), ({"experts": 4, "top_k": 5}, "model.top_k"),
    ({"top_k": 1}, "model.top_k"), ({"experts": -1}, "model.experts"),
    ({"tied_embeddings": "yes"}, "model.tied_embeddings"),
])
def test_model_errors(changes: dict, field: str) -> None:
    _expect_error(lambda: dataclasses.replace(GOOD_MODEL, **changes).validate(), field)


@pytest.mark.parametrize("changes,field", [
    ({"global_batch": 0}, "training.global_batch"), ({"tokens": -1.0}, "training.tokens"),
    ({"tokens": "1e9"}, "training.tokens"), ({"tokens": float("inf")}, "training.tokens"),
    ({"precision": "int8"}, "training.precision"),
])
def test_training_errors(changes: dict, field: str) -> None:
    _expect_error(lambda: dataclasses.replace(GOOD_TRAINING, **changes).validate(), field)


@pytest.mark.parametrize("model,fields,field", [
    (GOOD_MODEL, {"tp": 0}, "parallelism.tp"), (GOOD_MODEL, {"cp": True}, "parallelism.cp"),
    (GOOD_MODEL, {"microbatch": 0}, "parallelism.microbatch"), (GOOD_MODEL, {"pp": 9}, "parallelism.pp"),
    (GOOD_MODEL, {"pp": 4, "interleave": 4}, "parallelism.interleave"),
    (GOOD_MODEL, {"pp": 4, "first_stage_layers": 1}, "parallelism.pp"),
    (GOOD_MODEL, {"pp": 1, "last_stage_layers": 1}, "parallelism.last_stage_layers"),
    (GOOD_MODEL, {"interleave": 2}, "parallelism.interleave"), (GOOD_MODEL, {"tp": 16}, "parallelism.tp"),
    (dataclasses.replace(GOOD_MODEL, kv_heads=2), {"tp": 4}, "parallelism.tp"),
    (GOOD_MODEL, {"dp": 3}, "parallelism.dp"), (GOOD_MODEL, {"dp": 8, "microbatch": 8}, "parallelism.dp"),
    (GOOD_MODEL, {"cp": 3}, "parallelism.cp"),
    (GOOD_MODEL, {"tp": 8, "cp": 64, "sequence_parallel": True}, "parallelism.sequence_parallel"),
    (GOOD_MODEL, {"ep": 2, "dp": 2}, "parallelism.ep"), (MOE_MODEL, {"ep": 16, "dp": 16}, "parallelism.ep"),
    (MOE_MODEL, {"ep": 4, "dp": 2}, "parallelism.ep"), (GOOD_MODEL, {"recompute": "some"}, "parallelism.recompute"),
    (GOOD_MODEL, {"zero": 4}, "parallelism.zero"), (GOOD_MODEL, {"zero": 1.0}, "parallelism.zero"),
    (GOOD_MODEL, {"sequence_parallel": 1}, "parallelism.sequence_parallel"),
    (dataclasses.replace(GOOD_MODEL, layers=0), {}, "model.layers"),
])
def test_parallelism_errors(model: TransformerModel, fields: dict, field: str) -> None:
    par = Parallelism(**{"tp": 1, "pp": 1, "dp": 1, **fields})
    _expect_error(lambda: par.validate(model, GOOD_TRAINING), field)


def test_valid_layouts_pass() -> None:
    Parallelism(tp=8, pp=4, dp=4, cp=2, ep=8, interleave=2, microbatch=2, sequence_parallel=True,
                recompute="selective", zero=1).validate(dataclasses.replace(MOE_MODEL, layers=8), GOOD_TRAINING)
    Parallelism(tp=1, pp=1, dp=1, sequence_parallel=True).validate(GOOD_MODEL, GOOD_TRAINING)  # no effect


def _expect_error(call, field: str) -> None:
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(f"{field}:") and "\n" not in message, message


# --- workload files --------------------------------------------------------------------------

GPT3_YAML = """
name: gpt3-175b
model: {kind: transformer, layers: 96, hidden: 12288, heads: 96, kv_heads: 96, ffn_hidden: 49152, ffn: gelu,
        vocab: 51200, seq_len: 2048}
training: {global_batch: 1536, tokens: 3.0e11, precision: bf16}
"""


def test_load_workload() -> None:
    data = yaml.safe_load(GPT3_YAML)
    assert data["training"]["tokens"] == "3.0e11"  # PyYAML's YAML 1.1 float rule needs a signed exponent
    workload = load_workload(data)
    assert workload.name == "gpt3-175b"
    assert workload.training == Training(global_batch=1536, tokens=3.0e11, precision="bf16")
    assert parameters(workload.model) == parameters(GPT3)
    assert workload.training.steps(workload.model.seq_len) == 3.0e11 / (1536 * 2048)


def test_load_workload_defaults() -> None:
    workload = load_workload({"name": "tiny", "model": {"kind": "transformer", "layers": 2, "hidden": 64,
                                                        "heads": 4, "vocab": 100, "seq_len": 16},
                              "training": {"global_batch": 8}})
    assert workload.model == TransformerModel(2, 64, 4, 100, 16)
    assert workload.training == Training(8)


@pytest.mark.parametrize("edit,field,fragment", [
    (lambda d: d.update(owner="me"), "workload", "'workload.owner'"),
    (lambda d: d["model"].update(dropout=0.1), "model", "'model.dropout'"),
    (lambda d: d["training"].update(lr=1e-4), "training", "'training.lr'"),
    (lambda d: d["model"].pop("layers"), "model", "'model.layers'"),
    (lambda d: d.pop("training"), "workload", "'workload.training'"),
    (lambda d: d["model"].update(kind="cnn"), "model.kind", "transformer"),
    (lambda d: d["model"].update(layers=True), "model.layers", "True"),
    (lambda d: d["training"].update(tokens="lots"), "training.tokens", "'lots'"),
    (lambda d: d.update(name=""), "workload.name", "''"),
    (lambda d: d.update(model=[1, 2]), "model", "list"),
])
def test_load_workload_errors(edit, field: str, fragment: str) -> None:
    data = yaml.safe_load(GPT3_YAML)
    edit(data)
    _expect_error(lambda: load_workload(data), field)
    with pytest.raises(InputError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        load_workload(data)


def test_unknown_key_message_lists_accepted_keys() -> None:
    data = yaml.safe_load(GPT3_YAML)
    data["training"]["batch"] = 8
    with pytest.raises(InputError, match="accepted: global_batch, tokens, precision"):
        load_workload(data)


def test_uneven_pipeline_stages_as_trained() -> None:
    """Llama 3 405B's 126 layers on 16 stages (Llama 3 paper §3.3.2: the first and last stages hold one layer
    fewer, for the embedding and the loss): 7 + 14 × 8 + 7, and the pipeline runs at a middle stage's pace."""
    from ai_ready.model.workload import Parallelism

    par = Parallelism(tp=8, pp=16, dp=1, microbatch=1)
    assert par.stage_layers(126) == (7,) + (8,) * 14 + (7,)
    given = Parallelism(tp=8, pp=4, dp=1, first_stage_layers=6, last_stage_layers=6)
    assert given.stage_layers(30) == (6, 9, 9, 6)
    assert Parallelism(tp=1, pp=4, dp=1).stage_layers(32) == (8,) * 4  # even when pp divides the layers


def test_fused_attention_stores_no_scores() -> None:
    """FlashAttention keeps only softmax statistics, so without recomputation it holds what selective
    recomputation holds (Korthikanti et al.'s 5as/h term is gone)."""
    from ai_ready.model.transformer import activation_bytes_per_layer

    model = TransformerModel(layers=8, hidden=4096, heads=32, vocab=50000, seq_len=4096)
    unfused = activation_bytes_per_layer(model, 1, recompute="none")
    fused = activation_bytes_per_layer(model, 1, recompute="none", fused_attention=True)
    assert fused == activation_bytes_per_layer(model, 1, recompute="selective") < unfused
