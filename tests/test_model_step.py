"""The step-time model: its parts behave as the physics says (bubble, overlap, recomputation, links),
the breakdown adds up, and the search finds what brute force finds."""

from __future__ import annotations

import itertools

import pytest

from ai_ready.catalog import load_catalog
from ai_ready.errors import InputError
from ai_ready.model.comm import Link
from ai_ready.model.hardware import hardware_for
from ai_ready.model.search import search
from ai_ready.model.step import Software, gemm_time, step_time
from ai_ready.model.transformer import fits_memory, memory_per_gpu
from ai_ready.model.workload import Parallelism, Training, TransformerModel

GPT_13B = TransformerModel(layers=40, hidden=5120, heads=40, vocab=51200, seq_len=2048)
BATCH = Training(global_batch=512)


@pytest.fixture(scope="module")
def h100():
    return hardware_for(load_catalog().system("dgx-h100"), "bf16").with_(total_gpus=4096)


def run(hw, par: Parallelism, model=GPT_13B, training=BATCH, sw=Software()):
    return step_time(model, training, par, hw, sw)


def test_breakdown_adds_up_to_the_step_time(h100) -> None:
    result = run(h100, Parallelism(tp=4, pp=4, dp=8, microbatch=2, interleave=2, recompute="selective", zero=1,
                                   sequence_parallel=True))
    assert sum(result.breakdown.values()) == pytest.approx(result.step_time_s)
    assert all(v >= 0 for v in result.breakdown.values())
    assert result.mfu == pytest.approx(result.model_tflops_per_gpu * 1e12 / h100.peak_flops)


def test_large_gemms_reach_the_catalog_efficiency_and_small_ones_do_not(h100) -> None:
    big = gemm_time(h100, 16384, 16384, 16384)
    assert 2 * 16384 ** 3 / big == pytest.approx(h100.gemm_flops, rel=0.01)
    small = gemm_time(h100, 256, 256, 256)
    assert 2 * 256 ** 3 / small < 0.2 * h100.gemm_flops


def test_pipeline_bubble_shrinks_with_more_microbatches_and_with_interleaving(h100) -> None:
    def bubble_share(batch: int, v: int) -> float:
        r = run(h100, Parallelism(tp=8, pp=8, dp=1, microbatch=1, interleave=v), training=Training(batch))
        return r.breakdown["pp_bubble"] / r.step_time_s

    assert bubble_share(64, 1) < bubble_share(16, 1) < bubble_share(8, 1)
    assert bubble_share(16, 5) < bubble_share(16, 1)
    # (p-1)/(v·m) of the busy time: with m = 8 and p = 8 the bubble is about 7/8 of the rest
    r = run(h100, Parallelism(tp=8, pp=8, dp=1, microbatch=1), training=Training(8))
    rest = r.step_time_s - r.breakdown["pp_bubble"] - r.breakdown["optimizer"] - r.breakdown["dp_comm"]
    assert r.breakdown["pp_bubble"] / rest == pytest.approx(7 / 8, rel=0.05)


def test_tensor_parallel_traffic_follows_the_scale_up_link(h100) -> None:
    par = Parallelism(tp=8, pp=1, dp=1, microbatch=4)
    assert run(h100, Parallelism(tp=1, pp=1, dp=1, microbatch=4)).breakdown["tp_comm"] == 0
    fast = run(h100, par).breakdown["tp_comm"]
    slow_link = h100.with_(scale_up=Link(h100.scale_up.alpha_s, h100.scale_up.bandwidth_Bps / 2,
                                         h100.scale_up.efficiency))
    assert run(slow_link, par).breakdown["tp_comm"] == pytest.approx(2 * fast, rel=0.05)
    hidden = run(h100, par, sw=Software(tp_overlap=0.75)).breakdown["tp_comm"]
    assert hidden == pytest.approx(fast / 4)


def test_hidden_tensor_parallel_traffic_still_slows_the_compute_beside_it(h100) -> None:
    par = Parallelism(tp=8, pp=1, dp=1, microbatch=4, sequence_parallel=True)
    exposed = run(h100, par, sw=Software(tp_overlap=0.0))
    hidden = run(h100, par, sw=Software(tp_overlap=1.0))
    sigma = h100.overlap_slowdown
    assert exposed.breakdown["overlap_contention"] == 0 and hidden.breakdown["tp_comm"] == 0
    assert hidden.breakdown["overlap_contention"] == pytest.approx(
        exposed.breakdown["tp_comm"] * sigma / (1 + sigma))
    assert hidden.step_time_s < exposed.step_time_s


def test_gradient_reduction_overlap_hides_data_parallel_traffic(h100) -> None:
    par = Parallelism(tp=1, pp=1, dp=64, microbatch=8, recompute="full")
    exposed = run(h100, par, sw=Software(overlap_grad_reduce=False)).breakdown["dp_comm"]
    overlapped = run(h100, par).breakdown["dp_comm"]
    assert exposed > 0 and overlapped < exposed


def test_overlapped_gradient_reduction_leaves_its_last_bucket_and_contention_exposed(h100) -> None:
    # a long backward hides all but the first layer's and the embeddings' gradients, reduced after it ends
    par = Parallelism(tp=1, pp=1, dp=64, microbatch=8, recompute="full", zero=1)
    off = run(h100, par, sw=Software(overlap_grad_reduce=False, overlap_param_gather=False))
    on = run(h100, par)
    assert 0 < on.breakdown["dp_comm"] < off.breakdown["dp_comm"]
    assert off.breakdown["overlap_contention"] == 0
    hidden = off.breakdown["dp_comm"] - on.breakdown["dp_comm"]
    sigma = h100.overlap_slowdown
    assert on.breakdown["overlap_contention"] == pytest.approx(hidden * sigma / (1 + sigma))
    # without contention overlap is free, and the step is shorter by exactly that
    free = run(h100.with_(overlap_slowdown=0.0), par)
    assert free.breakdown["overlap_contention"] == 0
    assert on.step_time_s - free.step_time_s == pytest.approx(on.breakdown["overlap_contention"])
    # a bigger vocabulary means a bigger last bucket, so more stays exposed
    wide = TransformerModel(layers=40, hidden=5120, heads=40, vocab=4 * 51200, seq_len=2048)
    assert run(h100, par, model=wide).breakdown["dp_comm"] > on.breakdown["dp_comm"]


def test_recomputation_costs_time_in_order(h100) -> None:
    times = {mode: run(h100, Parallelism(tp=8, pp=1, dp=1, microbatch=4, recompute=mode,
                                         sequence_parallel=True)).step_time_s
             for mode in ("none", "selective", "full")}
    assert times["none"] < times["selective"] < times["full"]
    # full recomputation reruns a forward: about a third more than forward + backward
    assert times["full"] / times["none"] == pytest.approx(4 / 3, rel=0.08)


def test_unfused_attention_is_slower_than_flash_at_long_sequences(h100) -> None:
    long = TransformerModel(layers=8, hidden=4096, heads=32, vocab=32000, seq_len=16384)
    par = Parallelism(tp=8, pp=1, dp=1, microbatch=1, sequence_parallel=True, recompute="selective")
    flash = run(h100, par, model=long, training=Training(8))
    unfused = run(h100, par, model=long, training=Training(8), sw=Software(attention="unfused"))
    assert unfused.step_time_s > 1.2 * flash.step_time_s


def test_experts_across_ranks_pay_all_to_all(h100) -> None:
    moe = TransformerModel(layers=8, hidden=2048, heads=16, vocab=32000, seq_len=2048, experts=8, top_k=2)
    local = run(h100, Parallelism(tp=1, pp=1, dp=8, ep=1, microbatch=1), model=moe, training=Training(64))
    split = run(h100, Parallelism(tp=1, pp=1, dp=8, ep=8, microbatch=1), model=moe, training=Training(64))
    assert local.breakdown["ep_comm"] == 0 and split.breakdown["ep_comm"] > 0


def test_calibration_scales_the_whole_step(h100) -> None:
    par = Parallelism(tp=2, pp=2, dp=4, microbatch=2)
    base = run(h100, par).step_time_s
    assert run(h100.with_(calibration=1.3), par).step_time_s == pytest.approx(1.3 * base)


def test_search_finds_what_brute_force_finds(h100) -> None:
    model = TransformerModel(layers=12, hidden=2048, heads=16, vocab=32000, seq_len=2048)
    training = Training(64)
    hw = h100.with_(total_gpus=16)
    found = search(model, training, hw, gpus=16)
    best = None
    for tp, pp, dp, mb, v, rc, zero in itertools.product((1, 2, 4, 8), (1, 2, 3, 4, 6, 12), (1, 2, 4, 8, 16),
                                                         (1, 2, 4, 8), (1, 2, 3, 4, 6), ("none", "selective", "full"),
                                                         (0, 1, 2, 3)):
        par = Parallelism(tp, pp, dp, 1, 1, mb, v, rc, zero, tp > 1)
        if par.gpus > 16:
            continue
        try:
            par.validate(model, training)
        except InputError:
            continue
        if not fits_memory(memory_per_gpu(model, training, par), hw.hbm_bytes):
            continue
        result = step_time(model, training, par, hw, check=False)
        if best is None or result.step_time_s < best.step_time_s:
            best = result
    assert best is not None
    assert found.best.step_time_s <= best.step_time_s * 1.001
    assert found.best.fits_memory


def test_search_respects_fixed_choices_and_refuses_impossible_ones(h100) -> None:
    found = search(GPT_13B, BATCH, h100, gpus=256, fixed={"tp": 4, "recompute": "full"})
    assert found.best.parallelism.tp == 4 and found.best.parallelism.recompute == "full"
    assert found.best.gpus <= 256
    with pytest.raises(InputError, match="must divide heads"):
        search(GPT_13B, BATCH, h100, fixed={"tp": 3})
    with pytest.raises(InputError, match="fits the memory"):
        search(TransformerModel(layers=96, hidden=12288, heads=96, vocab=51200, seq_len=2048), Training(8),
               h100.with_(total_gpus=8), gpus=8)


def test_every_figure_the_hardware_model_cites_is_a_catalog_source(h100) -> None:
    from ai_ready.report.sections.sources import SOURCE_IDS

    known = load_catalog().sources
    cited = {i.strip() for line in h100.assumptions for m in SOURCE_IDS.findall(line) for i in m.split(",")}
    assert "lee-overlap-2025" in cited
    assert any(line.startswith(f"overlap slowdown {h100.overlap_slowdown:g}") for line in h100.assumptions)
    assert cited <= set(known), cited - set(known)
