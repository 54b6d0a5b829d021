"""The in-job recorder's accounting with an injected clock: steps from optimizer steps, exclusive phases,
gradient accumulation, the forward/backward-cycle fallback, explicit steps, and what it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeClock

from ai_ready.profile.agent import FALLBACK_BACKWARDS, Recorder


class Optimizer:
    pass


def recorder(tmp_path: Path, warmup: int = 1, steps: int = 3, stop: bool = False) -> tuple[Recorder, FakeClock]:
    clock = FakeClock()
    return Recorder(str(tmp_path), warmup, steps, stop=stop, clock=clock), clock


def step(rec: Recorder, clock: FakeClock, opt: object, data: float = 0.01, fwd: float = 0.02, bwd: float = 0.04,
         optim: float = 0.005, gap: float = 0.001, accum: int = 1) -> None:
    """One training iteration as the hooks would report it."""
    for _ in range(accum):
        with rec.phase("data"):
            clock.advance(data)
        rec.root_forward_start(object(), ())
        with rec.phase("forward"):
            clock.advance(fwd)
        clock.advance(gap)  # e.g. the loss computed outside any module
        with rec.phase("backward"):
            clock.advance(bwd)
        rec.backward_done()
    rec.optimizer_pre(opt)
    clock.advance(optim)
    rec.optimizer_post(opt)


def test_phases_add_up_to_the_step_and_the_rest_is_other(tmp_path: Path) -> None:
    rec, clock = recorder(tmp_path)
    opt = Optimizer()
    for _ in range(4):
        step(rec, clock, opt)
    assert len(rec.done_steps) == 4
    s = rec.done_steps[2]
    assert s["total_s"] == pytest.approx(0.076)
    assert s["phases"]["data"] == pytest.approx(0.01) and s["phases"]["backward"] == pytest.approx(0.04)
    assert s["phases"]["other"] == pytest.approx(0.001)
    assert sum(s["phases"].values()) == pytest.approx(s["total_s"])


def test_a_phase_inside_another_is_not_counted_twice(tmp_path: Path) -> None:
    rec, clock = recorder(tmp_path)
    opt = Optimizer()
    step(rec, clock, opt)
    with rec.phase("backward"):
        clock.advance(0.01)
        with rec.phase("comm"):  # e.g. FSDP's reduce-scatter issued inside backward
            clock.advance(0.02)
    step(rec, clock, opt)
    s = rec.done_steps[1]
    assert s["phases"]["comm"] == 0.0
    assert s["phases"]["backward"] == pytest.approx(0.04 + 0.03)


def test_gradient_accumulation_counts_optimizer_steps_not_micro_batches(tmp_path: Path) -> None:
    rec, clock = recorder(tmp_path, warmup=1, steps=3)
    opt = Optimizer()
    for _ in range(4):
        step(rec, clock, opt, accum=4)
    snap = rec.snapshot()
    assert len(snap["steps"]) == 4 and snap["features"]["grad_accumulation"] == 4
    assert all(s["backward_calls"] == 4 for s in snap["steps"])
    assert snap["status"] == "complete" and snap["timed_steps"] == [1, 2, 3]


def test_only_the_first_optimizer_sets_the_step_rhythm(tmp_path: Path) -> None:
    rec, clock = recorder(tmp_path, steps=5)
    generator, discriminator = Optimizer(), Optimizer()
    for _ in range(3):
        step(rec, clock, generator)
        rec.optimizer_pre(discriminator)
        clock.advance(0.003)
        rec.optimizer_post(discriminator)
    assert len(rec.done_steps) == 3
    # the second optimizer's time is optimizer time of the following step
    assert rec.done_steps[1]["phases"]["optimizer"] == pytest.approx(0.005 + 0.003)


def test_without_an_optimizer_steps_fall_back_to_forward_backward_cycles(tmp_path: Path) -> None:
    rec, clock = recorder(tmp_path, warmup=1, steps=3)
    for _ in range(FALLBACK_BACKWARDS + 5):
        rec.root_forward_start(object(), ())
        with rec.phase("forward"):
            clock.advance(0.01)
        with rec.phase("backward"):
            clock.advance(0.02)
        rec.backward_done()
    snap = rec.snapshot()
    assert snap["step_source"] == "cycle"
    assert snap["optimizer_steps"] == 0
    cycles = snap["steps"][1:]
    assert cycles and all(s["total_s"] == pytest.approx(0.03) for s in cycles)


def test_a_job_that_never_steps_says_so(tmp_path: Path) -> None:
    rec, clock = recorder(tmp_path)
    rec.root_forward_start(object(), ())
    with rec.phase("forward"):
        clock.advance(0.01)
    rec.at_exit()
    written = json.loads((tmp_path / "rank-0.json").read_text())
    assert written["status"] == "no_steps" and written["forward_calls"] == 1


def test_explicit_steps_replace_optimizer_boundaries_and_marks_are_kept(tmp_path: Path) -> None:
    rec, clock = recorder(tmp_path, warmup=1, steps=2)
    opt = Optimizer()
    for i in range(3):
        clock.advance(0.5)  # between blocks: not part of a step
        with rec.explicit_step():
            step(rec, clock, opt)
        if i == 1:
            rec.mark("eval")
    snap = rec.snapshot()
    assert snap["step_source"] == "explicit" and len(snap["steps"]) == 3
    assert all(s["total_s"] == pytest.approx(0.076) for s in snap["steps"])
    assert snap["marks"][0]["name"] == "eval" and snap["marks"][0]["step"] == 2
    assert snap["status"] == "complete"


def test_complete_profile_stops_the_job_when_asked(tmp_path: Path) -> None:
    rec, clock = recorder(tmp_path, warmup=1, steps=2, stop=True)
    opt = Optimizer()
    step(rec, clock, opt)
    step(rec, clock, opt)
    with pytest.raises(SystemExit) as stop:
        step(rec, clock, opt)
    assert stop.value.code == 0
    assert json.loads((tmp_path / "rank-0.json").read_text())["status"] == "complete"


def test_batches_count_samples_and_tokens(tmp_path: Path) -> None:
    import torch

    rec, clock = recorder(tmp_path)
    rec.batch((torch.zeros(8, 128, dtype=torch.long), torch.zeros(8, 128, dtype=torch.long)))
    rec.batch({"pixels": torch.zeros(4, 3, 8, 8), "label": torch.zeros(4)})
    assert rec.current["samples"] == 12 and rec.current["tokens"] == 8 * 128


def test_transformer_shape_is_read_from_the_modules(tmp_path: Path) -> None:
    from ai_ready.train import GPT, PRESETS

    rec, _ = recorder(tmp_path)
    cfg = PRESETS["gpt"]["tiny"]
    model = GPT(cfg)
    import torch

    rec.root_forward_start(model, (torch.zeros(2, 32, dtype=torch.long),))
    rec.root_forward_end(model, (torch.zeros(2, 32, dtype=torch.long),), {}, training=True)
    shape = rec.model["transformer"]
    assert (shape["layers"], shape["hidden"], shape["heads"], shape["vocab"]) == (cfg.layers, cfg.hidden, cfg.heads,
                                                                                  cfg.vocab)
    assert rec.seq_len == 32
    assert rec.model["parameters"] == sum(p.numel() for p in model.parameters())
