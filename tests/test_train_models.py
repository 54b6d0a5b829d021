"""Training models: analytic FLOPs and parameters against torch's own counts, learning, shape checks."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from conftest import REPO

from ai_ready.errors import InputError
from ai_ready.train import (GPT, PRESETS, GPTConfig, ResNet, ResNetConfig, cnn_step_flops,
                            flop_counter_flops, gpt_step_flops, resolve)
from ai_ready.train.models import MoE

FLOPS_TOLERANCE = 0.05  # analytic vs FlopCounterMode, relative
TRAIN_STEPS = 30
LOSS_DROP = 0.7  # final loss must be below this fraction of the initial loss
ONE_BILLION = 1e9
BILLION_TOLERANCE = 0.05

GPT_CASES = [("gpt", "gelu"), ("gpt", "swiglu"), ("moe", "gelu"), ("moe", "swiglu")]


def _tokens(cfg: GPTConfig) -> torch.Tensor:
    return torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq_len), generator=torch.Generator().manual_seed(0))


def _lm_loss(tokens: torch.Tensor):
    return lambda logits: F.cross_entropy(logits.flatten(0, 1), tokens.flatten())


def _cnn_batch(cfg: ResNetConfig) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(cfg.batch, cfg.channels, cfg.image_size, cfg.image_size, generator=gen)
    return images, torch.randint(0, cfg.classes, (cfg.batch,), generator=gen)


@pytest.mark.parametrize("arch,mlp", GPT_CASES)
def test_gpt_flops_match_flop_counter(arch: str, mlp: str) -> None:
    torch.manual_seed(0)
    cfg = resolve(arch, "tiny", {"mlp": mlp})
    tokens = _tokens(cfg)
    measured = flop_counter_flops(GPT(cfg), tokens, _lm_loss(tokens))
    analytic = gpt_step_flops(cfg)
    ratio = analytic.total / measured
    print(f"{arch}/{mlp}: analytic/FlopCounterMode = {ratio:.4f}")
    assert abs(ratio - 1) <= FLOPS_TOLERANCE
    assert analytic.backward == 2 * analytic.forward


def test_megatron_formula_equals_dense_gelu_count() -> None:
    cfg = PRESETS["gpt"]["small"]
    flops = gpt_step_flops(cfg)
    assert flops.megatron == flops.total
    assert gpt_step_flops(resolve("gpt", "tiny", {"mlp": "swiglu"})).megatron is None


def test_cnn_flops_match_flop_counter() -> None:
    torch.manual_seed(0)
    cfg = PRESETS["cnn"]["tiny"]
    images, labels = _cnn_batch(cfg)
    measured = flop_counter_flops(ResNet(cfg), images, lambda logits: F.cross_entropy(logits, labels))
    ratio = cnn_step_flops(cfg).total / measured
    print(f"cnn: analytic/FlopCounterMode = {ratio:.4f}")
    assert abs(ratio - 1) <= FLOPS_TOLERANCE


@pytest.mark.parametrize("arch,mlp", GPT_CASES)
@pytest.mark.parametrize("tied", [True, False])
def test_gpt_param_count_is_exact(arch: str, mlp: str, tied: bool) -> None:
    cfg = resolve(arch, "tiny", {"mlp": mlp, "tied_embeddings": tied})
    model = GPT(cfg)
    flops = gpt_step_flops(cfg)
    assert flops.params == sum(p.numel() for p in model.parameters())
    if cfg.is_moe:
        per_expert = sum(p.numel() for p in model.blocks[0].mlp.experts[0].parameters())
        idle = cfg.layers * (cfg.experts - cfg.top_k) * per_expert
        assert flops.active_params == flops.params - idle
    else:
        assert flops.active_params == flops.params


@pytest.mark.parametrize("preset", list(PRESETS["cnn"]))
def test_cnn_param_count_is_exact(preset: str) -> None:
    cfg = PRESETS["cnn"][preset]
    assert cnn_step_flops(cfg).params == sum(p.numel() for p in ResNet(cfg).parameters())


def test_1b_preset_is_about_one_billion() -> None:
    params = gpt_step_flops(PRESETS["gpt"]["1b"]).params
    print(f"gpt/1b: {params} parameters")
    assert abs(params / ONE_BILLION - 1) <= BILLION_TOLERANCE


def _train(model: torch.nn.Module, inputs: torch.Tensor, loss_fn, lr: float) -> tuple[float, float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(TRAIN_STEPS):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize("arch", ["gpt", "moe"])
def test_gpt_learns(arch: str) -> None:
    torch.manual_seed(0)
    cfg = PRESETS[arch]["tiny"]
    tokens = _tokens(cfg)
    first, last = _train(GPT(cfg), tokens[:, :-1], lambda logits: F.cross_entropy(
        logits.flatten(0, 1), tokens[:, 1:].flatten()), lr=1e-2)
    print(f"{arch}: loss {first:.3f} -> {last:.3f}")
    assert last < LOSS_DROP * first


def test_cnn_learns() -> None:
    torch.manual_seed(0)
    cfg = PRESETS["cnn"]["tiny"]
    images, labels = _cnn_batch(cfg)
    first, last = _train(ResNet(cfg), images, lambda logits: F.cross_entropy(logits, labels), lr=1e-2)
    print(f"cnn: loss {first:.3f} -> {last:.3f}")
    assert last < LOSS_DROP * first


def test_moe_routes_each_token_to_top_k_experts() -> None:
    torch.manual_seed(0)
    cfg = PRESETS["moe"]["tiny"]
    moe = MoE(cfg)
    x = torch.randn(3, 5, cfg.hidden)
    y = moe(x)
    assert y.shape == x.shape
    index = moe.last_expert_index
    assert index is not None and index.shape == (15, cfg.top_k)
    assert all(len(set(row)) == cfg.top_k for row in index.tolist())
    assert int(index.min()) >= 0 and int(index.max()) < cfg.experts
    logits = GPT(cfg)(_tokens(cfg))
    assert logits.shape == (cfg.batch, cfg.seq_len, cfg.vocab)


def test_moe_matches_explicit_per_token_mixture() -> None:
    """Gather/scatter dispatch equals the naive sum over each token's chosen experts."""
    torch.manual_seed(0)
    cfg = PRESETS["moe"]["tiny"]
    moe = MoE(cfg)
    x = torch.randn(7, cfg.hidden)
    y = moe(x)
    top_logits, top_index = moe.router(x).topk(cfg.top_k, dim=-1)
    gates = top_logits.softmax(-1)
    expected = torch.stack([sum(gates[t, j] * moe.experts[int(top_index[t, j])](x[t:t + 1])[0]
                                for j in range(cfg.top_k)) for t in range(x.shape[0])])
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("config,message", [
    (GPTConfig(vocab=512, seq_len=64, layers=2, hidden=64, heads=5), "heads (5) must divide hidden (64)"),
    (GPTConfig(vocab=512, seq_len=64, layers=2, hidden=64, heads=4, experts=2, top_k=3),
     "top_k (3) must be between 1 and experts (2)"),
    (GPTConfig(vocab=512, seq_len=64, layers=0, hidden=64, heads=4), "layers must be a positive integer"),
    (GPTConfig(vocab=-1, seq_len=64, layers=2, hidden=64, heads=4), "vocab must be a positive integer"),
    (GPTConfig(vocab=512, seq_len=64, layers=2, hidden=64, heads=4, mlp="relu"), "unknown mlp 'relu'"),
    (ResNetConfig(widths=(16, 0)), "width must be a positive integer"),
    (ResNetConfig(image_size=0), "image_size must be a positive integer"),
])
def test_bad_shapes_raise_input_error(config, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        config.validate()
    assert "\n" not in str(err.value)


def test_models_validate_on_construction() -> None:
    with pytest.raises(InputError, match="must divide hidden"):
        GPT(dataclasses.replace(PRESETS["gpt"]["tiny"], heads=3))


def test_resolve_applies_overrides_then_validates() -> None:
    cfg = resolve("gpt", "tiny", {"layers": 3, "seq-len": "32", "batch": 2, "hidden": None})
    assert (cfg.layers, cfg.seq_len, cfg.batch, cfg.hidden) == (3, 32, 2, 64)
    assert resolve("cnn", "tiny", {"widths": "4,8"}).widths == (4, 8)
    with pytest.raises(InputError, match="must divide hidden"):
        resolve("gpt", "tiny", {"heads": 3})
    with pytest.raises(InputError, match="top_k"):
        resolve("moe", "tiny", {"top_k": 9})


@pytest.mark.parametrize("arch,preset,message", [
    ("rnn", "tiny", "unknown architecture 'rnn'; accepted: gpt, moe, cnn"),
    ("gpt", "huge", "unknown gpt preset 'huge'; accepted: tiny, small, medium, 1b"),
])
def test_resolve_rejects_unknown_names(arch: str, preset: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        resolve(arch, preset, {})


def test_resolve_rejects_overrides_that_do_not_apply() -> None:
    with pytest.raises(InputError, match="--layers does not apply to cnn; accepted: --image-size"):
        resolve("cnn", "tiny", {"layers": 4})
    with pytest.raises(InputError, match="expected an integer"):
        resolve("gpt", "tiny", {"layers": "many"})


EP_RANKS = 2


def _ep_worker(rank: int, init_file: str, errors) -> None:
    """One rank: expert-parallel MoE against the all-local MoE holding the same weights."""
    try:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=EP_RANKS)
        cfg = PRESETS["moe"]["tiny"]
        torch.manual_seed(0)
        reference = MoE(cfg)
        parallel = MoE(cfg, ep_group=dist.group.WORLD)
        assert len(parallel.experts) == cfg.experts // EP_RANKS
        parallel.router.load_state_dict(reference.router.state_dict())
        for i, expert in enumerate(parallel.experts):
            expert.load_state_dict(reference.experts[parallel.first_expert + i].state_dict())
        x = torch.randn(16 + 5 * rank, cfg.hidden, generator=torch.Generator().manual_seed(rank + 1))
        x_ref, x_par = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_ref, y_par = reference(x_ref), parallel(x_par)
        torch.testing.assert_close(y_par, y_ref)
        (y_ref ** 2).sum().backward()
        (y_par ** 2).sum().backward()
        torch.testing.assert_close(x_par.grad, x_ref.grad)
        torch.testing.assert_close(parallel.router.weight.grad, reference.router.weight.grad)
        # An expert's gradient sums over all ranks' tokens; an expert no token chose has none.
        summed = [torch.zeros_like(e.up.weight) if e.up.weight.grad is None else e.up.weight.grad
                  for e in reference.experts]
        for grad in summed:
            dist.all_reduce(grad)
        for i, expert in enumerate(parallel.experts):
            got = expert.up.weight.grad
            torch.testing.assert_close(torch.zeros_like(expert.up.weight) if got is None else got,
                                       summed[parallel.first_expert + i])
        dist.barrier()  # no rank tears its connections down while a peer still reads from them
        dist.destroy_process_group()
    except BaseException as exc:  # report to the parent, which asserts
        errors.put(f"rank {rank}: {exc!r}")
        raise


def _spawn(worker, tmp_path, monkeypatch, *args) -> None:
    """Run ``worker(rank, rendezvous_file, errors, *args)`` on EP_RANKS gloo processes; fail with their errors.

    A rank killed by a signal without reporting an error of its own (gloo tearing a connection down under
    heavy load) is retried once; any error a rank reports fails the test at once."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "suite"), str(REPO / "tests"),
                                                      os.environ.get("PYTHONPATH", "")]))
    for attempt in range(2):
        errors = mp.get_context("spawn").SimpleQueue()
        problems, reported = [], []
        try:
            mp.spawn(worker, args=(str(tmp_path / f"rendezvous-{attempt}"), errors, *args), nprocs=EP_RANKS)
        except Exception as exc:  # the ranks' own messages, read below, say more
            problems.append(repr(exc))
        while not errors.empty():
            reported.append(errors.get())
        signalled = problems and "terminated with signal" in problems[0]
        if not (signalled and not reported) or attempt == 1:
            break
    assert not problems + reported, problems + reported


def test_moe_expert_parallel_matches_local(tmp_path, monkeypatch) -> None:
    _spawn(_ep_worker, tmp_path, monkeypatch)


def _ep_training_worker(rank: int, init_file: str, errors, parallel: str) -> None:
    """One SGD step of an expert-parallel GPT wrapped for data parallelism (each rank its own batch)
    against the all-local GPT on both ranks' batches together: the same updated weights."""
    try:
        from ai_ready.train.parallel import wrap

        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=EP_RANKS)
        cfg = dataclasses.replace(PRESETS["moe"]["tiny"], batch=4)
        torch.manual_seed(3)
        full = GPT(cfg)
        torch.manual_seed(3)
        inner = GPT(cfg, ep_group=dist.group.WORLD)
        local = cfg.experts // EP_RANKS
        for name, param in inner.named_parameters():  # the initialisation does not depend on the split
            torch.testing.assert_close(param, full.get_parameter(_global_name(name, rank * local)))
        batches = [torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq_len + 1),
                                 generator=torch.Generator().manual_seed(10 + r)) for r in range(EP_RANKS)]
        before = {name: param.detach().clone() for name, param in inner.named_parameters()}
        model = wrap(inner, parallel, "cpu", EP_RANKS)
        for net, batch in ((full, torch.cat(batches)), (model, batches[rank])):
            optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
            _lm_loss(batch[:, 1:])(net(batch[:, :-1])).backward()
            optimizer.step()
        moved = False
        for name, param in inner.named_parameters():
            value = param.full_tensor() if hasattr(param, "full_tensor") else param.detach()
            expected = full.get_parameter(_global_name(name, rank * local)).detach()
            torch.testing.assert_close(value, expected, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
            moved = moved or ("experts" in name and not torch.equal(value, before[name]))
        assert moved, "no expert weight changed: the step trained nothing"
        dist.barrier()  # no rank tears its connections down while a peer still reads from them
        dist.destroy_process_group()
    except BaseException as exc:  # report to the parent, which asserts
        errors.put(f"rank {rank}: {exc!r}")
        raise


def _global_name(name: str, first_expert: int) -> str:
    """blocks.0.mlp.experts.1.up.weight on a rank whose first expert is 2 -> blocks.0.mlp.experts.3.up.weight"""
    parts = name.split(".")
    if "experts" in parts:
        i = parts.index("experts") + 1
        parts[i] = str(first_expert + int(parts[i]))
    return ".".join(parts)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_expert_parallel_training_step_equals_all_local_step(parallel: str, tmp_path, monkeypatch) -> None:
    _spawn(_ep_training_worker, tmp_path, monkeypatch, parallel)


def test_expert_parallel_needs_divisible_experts(monkeypatch) -> None:
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 3)  # no communication happens
    with pytest.raises(InputError, match=r"experts \(4\) must be a multiple of the expert-parallel size \(3\)"):
        MoE(PRESETS["moe"]["tiny"], ep_group=object())  # type: ignore[arg-type]


def test_the_1b_preset_fits_the_gpu_it_is_documented_for() -> None:
    """Planned from the peak measured on an H200 (batch 8: 104.8 GB): the preset's batch fits 90% of 80 GB."""
    from ai_ready.train.presets import MEMORY_PLAN

    plan = MEMORY_PLAN[("gpt", "1b")]
    config = PRESETS["gpt"]["1b"]
    assert plan.peak_gb(8) == pytest.approx(104.8)  # reproduces the measurement it comes from
    assert config.batch == plan.batch()
    assert plan.peak_gb(config.batch) <= plan.usable * plan.device_gb
    assert plan.peak_gb(config.batch * 2) > plan.usable * plan.device_gb  # the largest batch that fits
    assert gpt_step_flops(config).params == plan.parameters
