"""`ai-ready train {gpt,moe,cnn}`: a scaled-down training workload on this process."""

from __future__ import annotations

import copy
import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

import click
import psutil
import torch

from ai_ready.bench.ceiling import mfu_peak_label, peak_ceiling
from ai_ready.bench.context import BenchContext
from ai_ready.bench.io.scratch import Scratch
from ai_ready.bench.runner import ResultSink, finishing
from ai_ready.cli.bench import _device_name, output_path, resolve_device
from ai_ready.cli.console import note, print_table
from ai_ready.env.detect import detect
from ai_ready.errors import InputError
from ai_ready.records import Record, new_meta
from ai_ready.train import data, flops, models, presets
from ai_ready.train.schedule import peak_rate, rate_factor
from ai_ready.train.loop import train_steps
from ai_ready.cli.launch import mpiexec_argv, relaunch, setup_torch
from ai_ready.measure.comm import SingleComm, launched_world_size
from ai_ready.train.loop import backward_probe
from ai_ready.train.parallel import PARALLEL, enable_recompute, gradient_sync, wrap
from ai_ready.train.run import RunSpec, aggregate_throughput, exposed_comm_record, peak_memory_gb, records_for

ARCHES = ("gpt", "moe", "cnn")
PRECISIONS = ("fp32", "bf16", "fp16")
#: Mixed-precision Adam holds weights, gradients and two moments: 16 bytes per parameter in fp32.
TRAIN_BYTES_PER_PARAM = 16
#: Activation bytes per element for the Korthikanti et al. estimate (their 34 + 5as/h is for 16-bit).
ACTIVATION_SCALE = {"fp32": 2.0, "bf16": 1.0, "fp16": 1.0}
MEMORY_FRACTION = 0.8
#: Sequences (or images) written to disk per step of the run, so epochs reshuffle real files.
DATA_STEPS = 4
LEARNING_RATE = {"gpt": 3e-3, "moe": 3e-3, "cnn": 1e-3}
EXIT_FAILED = 1
#: torch.distributed timeout for a training run's collectives, seconds.
PG_TIMEOUT_S = 300.0
MAX_SCALING_RANKS = 1024
#: Backward passes with and without gradient synchronisation, each, in the exposed-communication probe.
PROBE_STEPS = 4


def _estimate_bytes(arch: str, cfg: Any, params: int, precision: str) -> int:
    """Weights, gradients, Adam moments, and activations (Korthikanti et al. 2022 for transformers)."""
    total = TRAIN_BYTES_PER_PARAM * params
    if arch in ("gpt", "moe"):
        s, b, h, a = cfg.seq_len, cfg.batch, cfg.hidden, cfg.heads
        per_layer = s * b * h * (34 + 5 * a * s / h)
        total += int(ACTIVATION_SCALE[precision] * cfg.layers * per_layer + 4 * b * s * cfg.vocab * 2)
    return int(total)


def _check_memory(estimate: int, device: str) -> None:
    free = torch.cuda.mem_get_info(torch.device(device))[0] if device.startswith("cuda") else \
        psutil.virtual_memory().available
    if estimate > MEMORY_FRACTION * free:
        raise InputError(f"this model needs about {estimate / 1e9:.1f} GB to train (weights, gradients, Adam "
                         f"moments, activations) and {free / 1e9:.1f} GB is free; accepted: a smaller preset, "
                         "--batch, --seq-len or --layers")


def _model(arch: str, cfg: Any, ep_group: Any = None) -> torch.nn.Module:
    return models.ResNet(cfg) if arch == "cnn" else models.GPT(cfg, ep_group)


def _expert_parallel_size(arch: str, cfg: Any, enabled: bool, world: int) -> int:
    """Ranks the experts are split over: all of them for moe on several ranks, unless turned off."""
    if arch != "moe" or not enabled or world == 1:
        return 1
    if cfg.experts % world:
        raise InputError(f"moe: experts ({cfg.experts}) must be a multiple of the ranks ({world}) to split them "
                         f"over the ranks; accepted: --experts a multiple of {world}, other --ranks, or "
                         "--no-expert-parallel (every expert on every rank)")
    return world


def _params_per_rank(arch: str, cfg: Any, params: int, ep: int) -> int:
    """Parameters one rank holds: with expert parallelism only 1/ep of the experts."""
    if ep == 1:
        return params
    return params - cfg.layers * cfg.experts * flops.mlp_params(cfg) * (ep - 1) // ep


def _dataset(arch: str, cfg: Any, scratch: Scratch, steps: int, seed: int) -> Any:
    items = max(cfg.batch * DATA_STEPS, cfg.batch * min(steps, DATA_STEPS * 4))
    if arch == "cnn":
        images, labels = data.write_images(scratch, items, cfg.channels, cfg.image_size, cfg.classes, seed)
        return data.ImageFile(images, labels, cfg.channels, cfg.image_size)
    return data.TokenFile(data.write_tokens(scratch, items, cfg.seq_len, cfg.vocab, seed), cfg.seq_len)


def _loss(arch: str):
    if arch == "cnn":
        return torch.nn.functional.cross_entropy
    return lambda logits, targets: torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


@click.command()
@click.argument("arch", type=click.Choice(ARCHES))
@click.option("--preset", default="tiny", show_default=True, help="Model size; see docs/train.md for the list.")
@click.option("--layers", type=click.IntRange(min=1), help="Override: transformer layers.")
@click.option("--hidden", type=click.IntRange(min=1), help="Override: hidden size.")
@click.option("--heads", type=click.IntRange(min=1), help="Override: attention heads (must divide --hidden).")
@click.option("--seq-len", type=click.IntRange(min=1), help="Override: sequence length.")
@click.option("--vocab", type=click.IntRange(min=2), help="Override: vocabulary size.")
@click.option("--experts", type=click.IntRange(min=0), help="Override (moe): experts per MoE layer.")
@click.option("--top-k", type=click.IntRange(min=1), help="Override (moe): experts per token.")
@click.option("--batch", type=click.IntRange(min=1), help="Override: sequences (or images) per step.")
@click.option("--steps", type=click.IntRange(min=2, max=1_000_000), default=20, show_default=True)
@click.option("--warmup-steps", type=click.IntRange(min=0, max=10_000), default=3, show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True)
@click.option("--workers", type=click.IntRange(min=0, max=256), default=0, show_default=True,
              help="DataLoader worker processes.")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Where the synthetic dataset is written (inside a scratch folder removed afterwards).")
@click.option("--parallel", type=click.Choice(PARALLEL), default="ddp", show_default=True,
              help="Data parallelism across ranks: DDP, or FSDP2 (fully_shard per block).")
@click.option("--ranks", type=click.IntRange(min=1, max=1024), metavar="N",
              help="Start N local ranks through mpiexec (one node, convenience).")
@click.option("--compile", "compile_model", is_flag=True,
              help="torch.compile the model; the first (warm-up) step compiles and is reported apart.")
@click.option("--recompute", is_flag=True,
              help="Full activation recomputation: every block's forward runs again in backward (less memory).")
@click.option("--expert-parallel/--no-expert-parallel", default=True, show_default=True,
              help="moe on several ranks: split the experts over the ranks (tokens travel by all-to-all), "
                   "or keep every expert on every rank.")
@click.option("--scaling", metavar="LIST",
              help="Weak scaling: train at each rank count (e.g. 1,2,4) through mpiexec and record the efficiency.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Result file [default: reports/train-<time>.json].")
@click.pass_context
def train(ctx: click.Context, arch: str, preset: str, layers: int | None, hidden: int | None, heads: int | None,
          seq_len: int | None, vocab: int | None, experts: int | None, top_k: int | None, batch: int | None,
          steps: int, warmup_steps: int, precision: str, workers: int, device: str, data_dir: Path,
          parallel: str, ranks: int | None, compile_model: bool, recompute: bool, expert_parallel: bool,
          scaling: str | None, seed: int, output: Path | None) -> None:
    """Train a scaled-down GPT, mixture-of-experts GPT or ResNet for a few steps: throughput, MFU,
    time breakdown (data, forward, backward, optimizer), loss curve and memory. Under mpiexec, srun,
    torchrun or --ranks N every rank trains its shard of the data (DDP or FSDP; --batch is per rank)."""
    overrides = {k: v for k, v in dict(layers=layers, hidden=hidden, heads=heads, seq_len=seq_len, vocab=vocab,
                                       experts=experts, top_k=top_k, batch=batch).items() if v is not None}
    cfg = presets.resolve(arch, preset, overrides)
    if compile_model and warmup_steps < 1:
        raise InputError("--compile needs at least one --warmup-steps: the first step compiles and is not timed")
    out = output_path(output, f"train-{arch}")
    from ai_ready.bench.io.scratch import announce_stale, check_path
    from ai_ready.env.launcher import detect_launcher

    root = check_path(data_dir)
    if int(detect_launcher()["rank"]) == 0:  # one rank says it
        announce_stale(root, False, note)
    if scaling is not None:
        _scaling(ctx, _rank_counts(scaling, ranks), out, arch, preset, parallel)
        return
    if ranks is not None:
        _expert_parallel_size(arch, cfg, expert_parallel, ranks)  # before starting ranks that would all fail
        relaunch(ctx, ranks, out)
    environment = detect()
    torch_device = resolve_device(device, int(environment["launcher"]["local_rank"]))
    if torch_device.startswith("cuda"):
        torch.cuda.set_device(torch.device(torch_device))
    step_flops = _analytic_flops(arch, cfg)
    _, announced = launched_world_size()
    ep = _expert_parallel_size(arch, cfg, expert_parallel, announced)
    _check_memory(_estimate_bytes(arch, cfg, _params_per_rank(arch, cfg, step_flops.params, ep), precision),
                  torch_device)
    comm = setup_torch("nccl" if torch_device.startswith("cuda") else "gloo", PG_TIMEOUT_S) if announced > 1 \
        else SingleComm()
    torch.manual_seed(seed)
    if ep > 1:
        import torch.distributed as dist

        ep_group = dist.group.WORLD
    else:
        ep_group = None
    model = _model(arch, cfg, ep_group).to(torch_device)
    bench_ctx = BenchContext(device=torch_device, device_name=_device_name(torch_device, environment), comm=comm,
                             environment=environment, seed=seed)
    from ai_ready.catalog import load_catalog

    catalog = load_catalog()
    ceiling = peak_ceiling(catalog, catalog.system("local", environment), precision)
    spec = RunSpec(arch=arch, preset=preset, settings=dataclasses.asdict(cfg), batch=cfg.batch, steps=steps,
                   warmup_steps=warmup_steps, precision=precision, workers=workers,
                   items_per_sample=1 if arch == "cnn" else cfg.seq_len,
                   item_name="samples" if arch == "cnn" else "tokens",
                   parallel=parallel if comm.size > 1 else "none", world_size=comm.size, expert_parallel=ep)
    meta = new_meta(["ai-ready", *sys.argv[1:]], environment)
    meta["world_size"] = comm.size
    sink = ResultSink(out, meta) if comm.rank == 0 else None
    loss_fn = _loss(arch)
    with finishing(sink), Scratch(root, tag=f"train-r{comm.rank}-") as scratch:
        dataset = _dataset(arch, cfg, scratch, (warmup_steps + steps) * comm.size, seed)
        loader = data.loader(dataset, cfg.batch, workers, seed, comm.rank, comm.size)
        probe_batch = next(iter(loader))  # one batch for both counts: each new iterator reshuffles
        counted = _count_expert_parallel(model, probe_batch, loss_fn, torch_device, ep) if ep > 1 else \
            _count(model, probe_batch, loss_fn, torch_device)
        if recompute:
            enable_recompute(model)
            spec.recompute = True
            spec.hardware_flops = _count_expert_parallel(model, probe_batch, loss_fn, torch_device, ep) if ep > 1 \
                else _count_in_place(model, probe_batch, loss_fn, torch_device)
        else:
            spec.hardware_flops = counted
        model = wrap(model, parallel, torch_device, comm.size)
        if compile_model:
            model = torch.compile(model)
            spec.compile = True
        peak = peak_rate(LEARNING_RATE[arch], getattr(cfg, "hidden", None))
        optimizer = torch.optim.AdamW(model.parameters(), lr=peak)
        total_steps = warmup_steps + steps
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: rate_factor(step, total_steps))
        try:
            log = train_steps(model, loader, loss_fn, optimizer, steps, warmup_steps, torch_device, precision,
                              schedule=schedule)
        except torch.OutOfMemoryError as exc:
            raise InputError(f"out of memory training {arch} --preset {preset} with batch {cfg.batch}: "
                             f"{str(exc).splitlines()[0]}; accepted: a smaller model or batch") from None
        records = records_for(spec, log, step_flops.total, counted, step_flops.params, ceiling, bench_ctx,
                              peak_memory_gb(torch_device))
        if comm.size > 1:
            probe = backward_probe(model, loader, loss_fn, PROBE_STEPS, torch_device,
                                   lambda on: gradient_sync(model, on))
            records.append(exposed_comm_record(spec, probe, statistics.median(log.total), bench_ctx))
        gathered = comm.gather((records, log.total))
        if sink is not None and gathered is not None:
            sink.add([r for rank_records, _ in gathered for r in rank_records])
            if comm.size > 1:
                sink.add([aggregate_throughput(spec, [times for _, times in gathered], bench_ctx)])
    if comm.size > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    if sink is not None:
        _summarise(sink.document.records, out)


def _rank_counts(text: str, ranks: int | None) -> list[int]:
    """`--scaling 1,2,4` -> [1, 2, 4]; 1 is always measured, as the baseline of the efficiency."""
    if ranks is not None:
        raise InputError("--scaling chooses the rank counts itself; drop --ranks")
    engine, size = launched_world_size()
    if engine != "single":
        raise InputError(f"--scaling starts its own runs through mpiexec; it cannot run inside a launcher "
                         f"(this is one of {size} ranks)")
    try:
        counts = sorted({int(t) for t in text.split(",") if t.strip()} | {1})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1 or counts[-1] > MAX_SCALING_RANKS:
        raise InputError(f"--scaling {text}: accepted: rank counts from 1 to {MAX_SCALING_RANKS}, comma-separated, "
                         "e.g. 1,2,4")
    return counts


def _scaling(ctx: click.Context, counts: list[int], out: Path, arch: str, preset: str, parallel: str) -> None:
    """Run the same training at each rank count, keep every run's records, add the efficiency records."""
    import subprocess
    import tempfile

    from ai_ready import proctree
    from ai_ready.records import ResultDocument, load_results, utc_now
    from ai_ready.train.scaling import EFFICIENCY_FLAG_PCT, efficiency_records

    import os

    # every run gives each rank the same CPU threads (the cores shared by the largest run), so a rank
    # is the same unit of work at every count; a user's OMP_NUM_THREADS wins
    env = dict(os.environ)
    threads = env.get("OMP_NUM_THREADS") or str(max(1, (psutil.cpu_count(logical=False) or 1) // counts[-1]))
    env["OMP_NUM_THREADS"] = threads
    runs: dict[int, tuple[list[Record], str | None]] = {}
    base = {"arch": arch, "preset": preset, "parallel": parallel, "threads_per_rank": int(threads)}
    document = ResultDocument(meta=new_meta(["ai-ready", *sys.argv[1:]], detect()))
    document.meta.update(scaling=counts)
    status = "stopped"
    try:
        with tempfile.TemporaryDirectory(prefix="ai-ready-scaling-") as tmp:
            for k in counts:
                path, log = Path(tmp) / f"ranks-{k}.json", Path(tmp) / f"ranks-{k}.log"
                note(f"scaling: training with {k} rank(s), {threads} CPU thread(s) each ...")
                with open(log, "w", encoding="utf-8") as handle:
                    code = proctree.run(mpiexec_argv(ctx, k, path, skip=("ranks", "output", "scaling")),
                                        stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
                records = load_results(path).records if path.exists() else []
                runs[k] = (records, None if code == 0 else f"the {k}-rank run exited with code {code}: "
                           f"{proctree.last_error_line(log)}")
        status = "complete"
    finally:  # a stopped sweep keeps the rank counts it finished
        for k in runs:
            document.records.extend(runs[k][0])
        scaling = efficiency_records(runs, base, f"{arch}-{preset}-scaling") if runs else []
        document.records.extend(scaling)
        document.meta.update(status=status, finished=utc_now())
        document.save(out)
    rows = [(r.params["ranks"], f"{r.params['throughput']:.4g} {r.params['item']}/s" if r.status == "ok" else "",
             f"{r.value:.1f}%" if r.status == "ok" else r.status,
             ("below " + f"{EFFICIENCY_FLAG_PCT:.0f}%" if r.status == "ok" and r.value < EFFICIENCY_FLAG_PCT else "")
             or (r.reason or "")) for r in scaling]
    print_table(f"weak scaling: {arch}-{preset}, {parallel}, batch per rank fixed",
                ["ranks", "total throughput", "efficiency", "notes"], rows)
    note(f"results: {out}")
    if any(r.status == "failed" for r in scaling):
        raise SystemExit(EXIT_FAILED)


def _analytic_flops(arch: str, cfg: Any) -> Any:
    return flops.cnn_step_flops(cfg, cfg.batch) if arch == "cnn" else flops.gpt_step_flops(cfg, cfg.batch)


def _count(model: torch.nn.Module, batch: Any, loss_fn: Any, device: str) -> float:
    """FlopCounterMode on one forward+backward of a copy, so the trained model is untouched (attention
    through SDPA's math path, whose matmuls the counter sees; see ai_ready.train.flops)."""
    inputs, targets = batch
    targets = targets.to(device)
    return float(flops.flop_counter_flops(copy.deepcopy(model), inputs.to(device), lambda out: loss_fn(out, targets)))


def _count_expert_parallel(model: torch.nn.Module, batch: Any, loss_fn: Any, device: str, ep: int) -> float:
    """FlopCounterMode with experts split over ranks: a rank's experts compute the tokens routed to them
    from every rank, so one rank's count depends on the routing; the mean over ranks is one rank's share
    of the model's FLOPs, which the analytic per-rank figure describes. Counted on the model itself (the
    all-to-all needs every rank's copy to be the one in the process group); gradients cleared after."""
    import torch.distributed as dist

    total = torch.tensor([_count_in_place(model, batch, loss_fn, device)], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total.item()) / ep


def _count_in_place(model: torch.nn.Module, batch: Any, loss_fn: Any, device: str) -> float:
    """FLOPs of one forward+backward of `model` itself (recomputation included), gradients cleared after."""
    inputs, targets = batch
    targets = targets.to(device)
    counted = float(flops.flop_counter_flops(model, inputs.to(device), lambda out: loss_fn(out, targets)))
    model.zero_grad(set_to_none=True)
    return counted


def _summarise(all_records: list[Record], out: Path) -> None:
    """Rank 0's figures, and the aggregate over ranks when several trained."""
    records = [r for r in all_records if r.rank == 0 and not r.params.get("aggregate")]
    by_metric = {r.metric: r for r in records if r.metric not in ("phase_time",)}
    rows = []
    for metric in ("step_time", "throughput", "model_tflops", "mfu", "model_flops", "loss", "peak_memory"):
        r = by_metric.get(metric)
        if r is None:
            continue
        value = f"{r.value:.4g}" if r.value is not None else r.status
        extra = ""
        if metric == "mfu" and r.ceiling:
            extra = mfu_peak_label(r.ceiling)
        elif metric == "model_tflops" and r.ceiling:
            extra = f"{r.pct_of_ceiling:.1f}% of {r.ceiling['label']} ({r.ceiling['kind']})"
        elif metric == "model_flops":
            extra = f"FlopCounterMode {r.params['flop_counter']:.4g}; analytic/counted {r.check['value']:.4f}"
        elif metric == "loss":
            extra = f"first {r.params['first_loss']:.4g} -> last {r.params['last_loss']:.4g}"
        rows.append((metric, value, r.unit, extra))
    for r in records:
        if r.metric == "exposed_comm":
            rows.append(("exposed communication", f"{r.value:.4g}", "s",
                         f"{r.params['share_of_step']:.1%} of the step (backward synced minus not synced)"))
    for r in all_records:
        if r.params.get("aggregate"):
            rows.append((f"throughput, {r.params['ranks']} ranks", f"{r.value:.4g}", r.unit,
                         f"all ranks' {r.params['item']} over the slowest rank's step; slowest rank "
                         f"{r.params['slowest_rank']}"))
    for r in records:
        if r.metric == "phase_time":
            rows.append((f"  {r.params['phase']}", f"{r.value:.4g}", "s", f"{r.params['share_of_step']:.0%} of the step"))
    print_table(f"training: {records[0].case if records else '?'} (medians over steps)",
                ["figure", "value", "unit", "notes"], rows)
    note(f"results: {out}")
    if any(r.status == "failed" for r in all_records):
        note(f"ai-ready: a check failed; see {out}")
        raise SystemExit(EXIT_FAILED)
