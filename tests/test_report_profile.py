"""The profile section: a user's job, profiled. Its status first (a failure with its reason, exit code and stderr),
what ran, the lowest rank's figures beside the peak and its source, where a step's time goes, every timed step,
every rank with the slowest named, what the job uses, and its target; missing data is said, never a crash; and
everything the job wrote reaches the page escaped."""

from __future__ import annotations

from conftest import section_of
import copy
import re
import statistics

import pytest

from ai_ready.records import Record
from ai_ready.report import build_report
from chartstub import real_chart, stub_charts

from test_report import SCRIPT, chart_svgs, document, gemm, section_ids
from test_report_train import run as train_run

IMG = "<img src=x onerror=alert(1)>"
NAME = "pj"
DEVICE = "Intel(R) Xeon(R) Processor"
FLOPS = 35520512.0
BATCH = 64
# The ten timed steps and their phases of a real single-rank profile (`ai-ready profile /tmp/pj --steps 10`).
STEPS_S = [0.080054963, 0.07997551, 0.080005934, 0.080009437, 0.079996514, 0.084035711, 0.079974986, 0.079988818,
           0.087954169, 0.083967394]
PHASES_S = {
    "data": [0.000901665, 0.000931562, 0.000917939, 0.000915797, 0.000809686, 0.000839171, 0.000937153, 0.000960199,
             0.001052062, 0.000875374],
    "forward": [0.022590818, 0.022490659, 0.022527937, 0.022495579, 0.022616362, 0.02261824, 0.022493485,
                0.022495227, 0.022788335, 0.022566199],
    "backward": [0.047833285, 0.047798852, 0.047843691, 0.047804123, 0.047796526, 0.050306201, 0.04774781,
                 0.047767044, 0.047833328, 0.051815308],
    "optimizer": [0.007718717, 0.00769806, 0.007768622, 0.007809553, 0.007828353, 0.009363979, 0.007807238,
                  0.007851054, 0.007755798, 0.007751636],
    "checkpoint": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.007392884, 0.0],
    "other": [0.001010478, 0.001056377, 0.000947745, 0.000984385, 0.000945587, 0.00090812, 0.0009893, 0.000915294,
              0.001131762, 0.000958877],
}
PEAK_SOURCE = ("assumption: declared: 2 cores × 2300 MHz × 64 FLOP/cycle (AVX-512: 2 FMA units × 16 fp32 lanes × "
               "2 FLOP per FMA; 2 FMA units assumed)")
PEAK = {"value": 0.2944, "unit": "TFLOP/s", "kind": "declared", "label": "local-cpu fp32 dense peak",
        "source": PEAK_SOURCE, "references": []}
RANK = {
    "rank": 0, "world_size": 1, "host": "vm", "device": "cpu", "device_name": DEVICE, "status": "complete",
    "step_source": "optimizer", "optimizer_steps": 13, "forward_calls": 26, "backward_calls": 13,
    "flops": {"counted": FLOPS, "step": 2, "method": "FlopCounterMode", "note": None},
    "model": {"class": "Sequential", "wrapper": None, "parameters": 136714, "trainable": 136714,
              "dtypes": {"float32": 4}, "transformer": None, "matmul_parameters": 136192},
    "seq_len": None,
    "memory": {"peak_gb": 0.322572288, "kind": "peak resident memory of the process"},
    "features": {"autocast": [], "grad_scaler": False, "compile": False, "ddp": False, "fsdp": False,
                 "activation_checkpointing": False,
                 "dataloader": {"workers": 0, "pin_memory": False, "batch_size": 64, "persistent_workers": False},
                 "checkpointing": True, "grad_accumulation": 1},
    "collectives": {},
    "checkpoint_io": {"save": {"count": 2, "bytes": 1097942, "seconds": 0.0125696},
                      "load": {"count": 0, "bytes": 0, "seconds": 0.0}},
    "marks": [], "trace_file": None, "wall_s": 4.154521954,
    "settings": {"warmup_steps": 3, "warmup_steps_taken": 3, "steps": 10, "stop": True, "trace": False},
    "steps_recorded": 13, "timed_steps": 10,
}
PROFILE = {
    "job": {"name": NAME, "directory": "/tmp/pj", "command": ["python", "job.py"], "launcher": "none", "nproc": 1,
            "env": {}, "argv": ["/work/venv/bin/python", "job.py"], "source": None},
    "settings": {"warmup_steps": 3, "steps": 10, "timeout_s": 900.0, "trace": False},
    "status": "complete", "reason": None, "exit_code": 0, "stopped_by": None, "stderr_tail": "",
    "duration_s": 5.27416126999924, "ranks": [RANK], "target": None,
}


def rank_records(rank: int = 0, scale: float = 1.0, case: str = NAME, host: str = "vm", flops: float | None = FLOPS,
                 peak: dict | None = PEAK, throughput: bool = True) -> list[Record]:
    """One rank's records as `ai-ready profile` writes them (ai_ready.profile.merge.rank_records): the real
    profile's steps, `scale` times slower."""
    steps = [s * scale for s in STEPS_S]
    fields = dict(benchmark="profile", case=case, rank=rank, host=host, device=DEVICE)
    base = {"precision": "fp32", "step_source": "optimizer", "steps": len(steps), "world_size": 1}
    mean_total = statistics.fmean(steps)
    records = [Record.from_samples(steps, params=dict(base), metric="step_time", unit="s",
                                   timing={"clock": "host (time.perf_counter) at step boundaries"}, **fields)]
    for phase, values in PHASES_S.items():
        values = [v * scale for v in values]
        records.append(Record.from_samples(values, warn_noise=False, metric="phase_time", unit="s", **fields,
                                           params=dict(base, phase=phase,
                                                       share_of_step=statistics.fmean(values) / mean_total)))
    if throughput:
        records.append(Record.from_samples([BATCH / t for t in steps], warn_noise=False, metric="throughput",
                                           unit="samples/s", params=dict(base, item="samples", per_step=64.0),
                                           **fields))
    if flops is None:
        records.append(Record(params=dict(base), metric="model_flops", unit="FLOP/step", status="skipped",
                              reason="not counted: FlopCounterMode does not see inside torch.compile graphs",
                              **fields))
    else:
        records.append(Record(params=dict(base, flop_counter=flops, analytic=None, source="FlopCounterMode on one step",
                                          counted_step=2),
                              metric="model_flops", unit="FLOP/step", value=flops, **fields))
        tflops = Record.from_samples([flops / t / 1e12 for t in steps], warn_noise=False, params=dict(base),
                                     metric="model_tflops", unit="TFLOP/s", **fields)
        if peak:
            tflops.ceiling, tflops.pct_of_ceiling = peak, 100 * tflops.value / peak["value"]
            mfu = Record.from_samples([100 * flops / t / (peak["value"] * 1e12) for t in steps], warn_noise=False,
                                      params=dict(base), metric="mfu", unit="%", **fields)
            mfu.ceiling = dict(peak, value=100.0, unit="%", label=f"100% of {peak['label']} (0.2944 TFLOP/s)")
            mfu.pct_of_ceiling = mfu.value
            records += [tflops, mfu]
        else:
            records.append(tflops)
    records.append(Record(params=dict(base, kind="peak resident memory of the process"), metric="peak_memory",
                          unit="GB", value=0.322572288 + rank, **fields))
    records.append(Record(params=dict(base, saves=2, bytes=1097942, seconds=0.0125696), metric="checkpoint_write",
                          unit="GB/s", value=1097942 / 0.0125696 / 1e9, **fields))
    return records


def profile_meta(ranks: list[dict] | None = None, **changes) -> dict:
    meta = copy.deepcopy(PROFILE)
    if ranks is not None:
        meta["ranks"] = ranks
    meta.update(changes)
    return meta


def rank_meta(**changes) -> dict:
    meta = copy.deepcopy(RANK)
    meta.update(changes)
    return meta


def profile_doc(records: list[Record] | None = None, meta: dict | None = None, status: str = "complete"):
    """A document as `ai-ready profile` writes it: records, meta.kind = "profile" and the meta.profile block."""
    return document(rank_records() if records is None else records, status=status, environment={}, kind="profile",
                    profile=profile_meta() if meta is None else meta)


def two_rank_doc(**meta_changes):
    """Two ranks, rank 1 5% slower, with the aggregate record (JSON keys: ranks as strings)."""
    records = rank_records(0) + rank_records(1, scale=1.05, host="node1")
    steps = [max(t, t * 1.05) for t in STEPS_S]
    medians = {"0": statistics.median(STEPS_S), "1": statistics.median(STEPS_S) * 1.05}
    records.append(Record.from_samples([2 * BATCH / t for t in steps], benchmark="profile", case=f"{NAME}-aggregate",
                                       metric="throughput", unit="samples/s",
                                       params={"aggregate": True, "ranks": 2, "item": "samples", "slowest_rank": 1,
                                               "rank_spread_pct": 5.0, "step_time_per_rank": medians}))
    ranks = [rank_meta(world_size=2), rank_meta(rank=1, world_size=2, host="node1")]
    job = dict(PROFILE["job"], launcher="torchrun", nproc=2)
    return profile_doc(records, profile_meta(ranks, job=job, **meta_changes))


def section(html: str) -> str:
    start = html.index('<section id="profile"')
    return html[start:html.index("</section>", start)]


def row(html: str, cls: str) -> str:
    rows = re.findall(rf'<tr class="{cls}">.*?</tr>', section(html), flags=re.S)
    assert len(rows) == 1, f"expected one {cls} row, found {len(rows)}"
    return rows[0]


def table(text: str, cls: str) -> str:
    return re.search(rf'<table class="[^"]*\b{cls}\b[^"]*">.*?</table>', text, flags=re.S).group(0)


def kv(text: str, name: str) -> str:
    """The value cell of a key-value row."""
    return re.search(rf"<tr><th>{re.escape(name)}</th><td[^>]*>(.*?)</td></tr>", text, flags=re.S).group(1)


@pytest.fixture(autouse=True)
def fast_charts(monkeypatch, request):
    return stub_charts(monkeypatch, request, record=("bar", "line"))


# --------------------------------------------------------------------------- presence and placement

def test_section_appears_only_with_profile_data_and_claims_its_records():
    assert "profile" not in section_ids(build_report([document([gemm()])]))
    assert "profile" not in section_ids(build_report([document(train_run())]))
    html = build_report([profile_doc()])
    assert section_ids(html) == {"overview", "profile"}  # no "Other records": the section claims them
    assert "Your job, profiled" in html
    unknown = Record(benchmark="nvme", case="seq", params={}, metric="bw", unit="GB/s", value=1.0)
    mixed = build_report([profile_doc(rank_records() + [unknown])])
    other = section_of(mixed, "other")
    assert "nvme" in other and "<code>pj</code>" not in other and "step_time" not in other


def test_section_opens_its_part_after_the_system_measurements():
    html = build_report([document(train_run()), profile_doc()])
    ids = re.findall(r'<section id="([^"]+)"', html)
    assert ids.index("part-system") < ids.index("train") < ids.index("part-job") < ids.index("profile")
    assert "gpt-1b" not in section(html)  # train records stay in their own section


def test_a_profile_document_without_records_still_gets_its_block():
    html = build_report([profile_doc([], profile_meta(status="no_steps"), status="partial")])
    assert "profile" in section_ids(html)
    assert "No timed step was measured" in section(html)


# --------------------------------------------------------------------------- a complete single-rank profile

def test_complete_profile_says_so_and_describes_the_job():
    text = section(build_report([profile_doc()]))
    assert "<h4><code>pj</code> · <span class=\"flag flag-ok\">profile complete</span></h4>" in text
    assert "Status: complete" in text and "Exit code 0" in text and "ended by itself" in text
    assert 'role="alert"' not in text and "profile-stderr" not in text
    job = table(text, "profile-job-table")
    assert '<code class="command">python job.py</code>' in job and "/work/venv/bin/python job.py" in job
    assert "one process, no launcher" in kv(job, "Launch") and "none beyond" in kv(job, "Environment set")
    assert "3 warm-up steps, then 10 timed steps" in job and "900 s" in job
    assert kv(job, "Duration") == "5.27 s"


def test_summary_shows_step_time_throughput_flops_and_mfu_with_its_source():
    html = build_report([profile_doc()])
    step = row(html, "profile-step")
    assert "80.0 ms" in step and "p10–p90 80.0–84.4" in step and "CV 3.4%" in step and "10 steps" in step
    throughput = row(html, "profile-throughput")
    assert "800 samples/s" in throughput and "64.0 samples per step" in throughput
    assert "per rank" not in throughput
    flops = row(html, "profile-flops")
    assert "35,520,512 FLOP/step" in flops and "source: FlopCounterMode on one step" in flops
    tflops = row(html, "profile-tflops")
    assert "4.44e-04 TFLOP/s" in tflops and "0.2%" in tflops and "0.294 TFLOP/s" in tflops
    assert "declared: local-cpu fp32 dense peak" in tflops and PEAK_SOURCE in tflops
    mfu = row(html, "profile-mfu")
    assert "0.2%" in mfu and "local-cpu fp32 dense peak" in mfu and f"source {PEAK_SOURCE}" in mfu
    memory = row(html, "profile-memory")
    assert "0.323 GB" in memory and "peak resident memory of the process" in memory
    assert "none recorded" in row(html, "profile-exposed")
    checkpoint = row(html, "profile-checkpoint")
    assert "0.0873 GB/s" in checkpoint and "2 torch.save calls" in checkpoint and "1.05MiB" in checkpoint


def test_breakdown_shares_sum_to_100_and_feed_the_chart(fast_charts):
    text = section(build_report([profile_doc()]))
    phases = table(text, "profile-phases")
    for name, ms, pct in (("data wait", "0.917 ms", "1.1%"), ("forward", "22.5 ms", "27.7%"),
                          ("backward", "47.8 ms", "59.4%"), ("optimizer step", "7.79 ms", "9.7%"),
                          ("checkpoint I/O", "0 ms", "0.9%"), ("other (the rest of the step)", "0.972 ms", "1.2%")):
        assert re.search(rf"<td>{re.escape(name)}</td><td[^>]*>{re.escape(ms)}.*?{re.escape(pct)}</td>", phases,
                         flags=re.S), name
    assert 'Sum of the shares</th><td class="num">100.0%' in phases and "not ≈ 100%" not in phases
    (bars,) = [c for c in fast_charts if "groups" in c]
    values = bars["groups"][0].bars
    assert [b.label for b in values][-2:] == ["checkpoint I/O", "other (the rest of the step)"]
    assert sum(b.value for b in values) == pytest.approx(100.0, abs=0.1)
    assert bars["title"] == "Step-time breakdown (% of the step)"


def test_every_timed_step_is_plotted_with_the_median(fast_charts):
    text = section(build_report([profile_doc()]))
    (line,) = [c for c in fast_charts if "lines" in c]
    steps, median = line["lines"]
    assert [x for x, _ in steps.points] == list(range(1, 11))
    assert [y for _, y in steps.points] == pytest.approx([s * 1000 for s in STEPS_S])
    assert median.dashed and [x for x, _ in median.points] == [1, 10]
    assert [y for _, y in median.points] == pytest.approx([statistics.median(STEPS_S) * 1000] * 2)
    assert line["y_log"] is False and "10 steps" in line["alt"] and "median 80.0 ms" in line["alt"]
    assert "The time of each of the 10 timed steps" in text
    assert "80.05496" not in text  # the raw samples reach the page only as a picture


def test_what_the_job_uses():
    text = section(build_report([profile_doc()]))
    features = table(text, "profile-features")
    assert kv(features, "Checkpointing").startswith("yes") and "torch.save called 2 times" in features
    assert kv(features, "DataLoader").startswith("0 workers") and "pinned memory no" in features
    assert "batch size 64" in features and kv(features, "Loss scaling (GradScaler)") == "no"
    assert kv(features, "torch.compile") == "no" and kv(features, "Mixed precision").startswith("no autocast")
    assert "one backward pass per optimizer step" in kv(features, "Gradient accumulation")
    assert "none seen" in kv(features, "Data parallelism")
    found = re.search(r'<p class="profile-steps-found">.*?</p>', text, flags=re.S).group(0)
    assert "ends at <code>optimizer.step()</code>" in found and "fallback" not in found
    assert "13 optimizer steps" in found and "10 timed steps" in found
    model = table(text, "profile-model")
    assert "<code>Sequential</code>" in model and "137 K" in model and "136,714" in model
    assert "float32 (4 tensors)" in model and "not recognised" in model
    assert "profile-collectives" not in text and "profile-marks" not in text and "Trace" not in text
    assert "The target" not in text and "scaling outlook" not in text


def test_features_of_a_mixed_precision_ddp_job_with_a_transformer():
    features = dict(RANK["features"], autocast=["cuda:bfloat16"], grad_scaler=True, ddp=True,
                    activation_checkpointing=True, grad_accumulation=4,
                    dataloader={"workers": 8, "pin_memory": True, "batch_size": 16, "persistent_workers": True})
    model = dict(RANK["model"], **{"class": "GPT", "wrapper": "DistributedDataParallel",
                                   "transformer": {"layers": 12, "hidden": 768, "heads": 12, "vocab": 50304,
                                                   "block": "Block"}})
    meta = profile_meta([rank_meta(features=features, model=model, seq_len=1024, trace_file="/out/trace-rank0.json",
                                   collectives={"ddp_bucket_all_reduce": {"count": 40, "bytes": 3 << 30, "seconds": 1.5},
                                                "all_reduce": {"count": 2, "bytes": 8, "seconds": 0.001}},
                                   marks=[{"name": "eval", "step": 5, "t_s": 2.5}])])
    text = section(build_report([profile_doc(meta=meta)]))
    table_ = table(text, "profile-features")
    assert kv(table_, "Mixed precision") == "autocast to bfloat16 on cuda; MFU uses the fp32 peak"
    assert kv(table_, "Loss scaling (GradScaler)") == "yes" and kv(table_, "Data parallelism") == "DDP"
    assert kv(table_, "Activation checkpointing") == "yes"
    assert kv(table_, "Gradient accumulation") == "4 backward passes per optimizer step"
    assert "8 workers, pinned memory yes, batch size 16, persistent workers" == kv(table_, "DataLoader")
    model_ = table(text, "profile-model")
    assert "<code>GPT</code> wrapped in <code>DistributedDataParallel</code>" in model_
    for label, value in (("layers", "12"), ("hidden size", "768"), ("attention heads", "12"),
                         ("vocabulary", "50,304"), ("sequence length", "1,024")):
        assert kv(model_, f"Transformer {label}") == value
    coll = table(text, "profile-collectives")
    assert coll.index("all_reduce</code>") < coll.index("ddp_bucket_all_reduce")  # nccl-tests' order first
    assert "3GiB" in coll and "1,500" in coll and ">40<" in coll
    marks = table(text, "profile-marks")
    assert "<td>eval</td>" in marks and ">5<" in marks and "2.50" in marks
    assert "<code>/out/trace-rank0.json</code>" in text


def test_exposed_communication_in_ms_and_share_of_the_step():
    definition = "DDP: from the last gradient bucket ready to backward's return"
    exposed = Record.from_samples([0.004] * 10, warn_noise=False, benchmark="profile", case=NAME, device=DEVICE,
                                  metric="exposed_comm", unit="s",
                                  params={"precision": "fp32", "share_of_step": 0.05, "definition": definition})
    html = build_report([profile_doc(rank_records() + [exposed])])
    cell = row(html, "profile-exposed")
    assert "4.00 ms" in cell and "5.0% of the step" in cell and "from the last gradient bucket" in cell
    assert "Other profile records" not in section(html)


def test_an_unknown_metric_is_listed_not_dropped():
    extra = Record(benchmark="profile", case=NAME, params={}, metric="grad_norm", unit="", value=1.25)
    text = section(build_report([profile_doc(rank_records() + [extra])]))
    assert "Other profile records" in text and "grad_norm" in text


# --------------------------------------------------------------------------- several ranks

def test_multi_rank_aggregate_names_the_slowest_rank():
    html = build_report([two_rank_doc()])
    text = section(html)
    assert "Summary from rank 0" in text and "torchrun × 2 processes" in text
    assert "per rank" in row(html, "profile-throughput")
    aggregate = row(html, "profile-aggregate")
    assert "over 2 ranks" in aggregate and "1,524 samples/s" in aggregate and "slowest rank 1" in aggregate
    assert "differ by 5.0%" in aggregate and "rank 0: 80.0 ms, rank 1: 84.0 ms" in aggregate
    ranks = table(text, "profile-ranks")
    r0, r1 = re.findall(r'<tr(?: class="train-slowest")?><td class="num">.*?</tr>', ranks, flags=re.S)
    assert "slowest" not in r0 and "80.0" in r0 and ">vm<" in r0 and "800 samples/s" in r0
    assert 'class="train-slowest"' in r1 and "slowest" in r1 and "84.0" in r1 and "node1" in r1
    assert "+5.0% behind the fastest" in r1 and "1.32" in r1 and "complete" in r1


def test_a_rank_that_timed_nothing_still_has_its_row():
    ranks = [rank_meta(world_size=2), rank_meta(rank=1, world_size=2, host="node1", status="no_steps",
                                                 timed_steps=0)]
    meta = profile_meta(ranks, status="incomplete", reason="rank 1 never stepped")
    text = section(build_report([profile_doc(rank_records(), meta, status="partial")]))
    ranks_table = table(text, "profile-ranks")
    assert "node1" in ranks_table and "no_steps" in ranks_table and "0 timed steps" in ranks_table


# --------------------------------------------------------------------------- failures and missing data

def test_failed_profile_without_records_shows_status_exit_code_and_escaped_stderr():
    stderr = f"Traceback (most recent call last):\n  File \"job.py\", line 3\nRuntimeError: {IMG}\n"
    meta = profile_meta([], status="failed", reason="the job exited with status 1 before its profile was complete",
                        exit_code=1, stderr_tail=stderr)
    html = build_report([profile_doc([], meta, status="partial")])
    text = section(html)
    assert '<span class="flag flag-bad">profile failed</span>' in text
    banner = re.search(r'<div class="banner banner-incomplete profile-status" role="alert">.*?</div>', text,
                       flags=re.S).group(0)
    assert "Status: failed" in banner and "exited with status 1 before its profile was complete" in banner
    assert "Exit code 1" in banner and "the job ended by itself" in banner
    pre = re.search(r'<pre class="profile-stderr">(.*?)</pre>', banner, flags=re.S).group(1)
    assert "RuntimeError: &lt;img src=x onerror=alert(1)&gt;" in pre and "\n  File &#34;job.py&#34;" in pre
    assert IMG not in html
    assert "No timed step was measured" in text and "profile-summary" not in text
    assert "Not recorded: no rank described the job" in text
    assert '<code class="command">python job.py</code>' in text  # what ran is still said


def test_no_steps_status_gives_the_step_advice():
    reason = ("the job ran 20 forward and 20 backward passes but never called optimizer.step(), so no training step "
              "could be measured")
    meta = profile_meta([rank_meta(status="no_steps", optimizer_steps=0, steps_recorded=0, timed_steps=0)],
                        status="no_steps", reason=reason, exit_code=0, stderr_tail="")
    text = section(build_report([profile_doc([], meta, status="partial")]))
    assert '<span class="flag flag-bad">profile no_steps</span>' in text and reason in text
    advice = re.search(r'<p class="profile-advice">.*?</p>', text, flags=re.S).group(0)
    assert "<code>with ai_ready.step():</code>" in advice and "<code>import ai_ready</code>" in advice
    assert "profile-stderr" not in text  # nothing to show: no empty box


def test_timeout_is_flagged_and_keeps_the_figures():
    meta = profile_meta(status="timeout", stopped_by="timeout", exit_code=-15,
                        reason="the job was stopped after timeout_s = 60 s with 8 of 13 steps measured")
    html = build_report([profile_doc(meta=meta, status="partial")])
    text = section(html)
    assert 'class="banner banner-note profile-status"' in text and "profile timeout" in text
    assert "ai-ready stopped it at the time limit" in text and "Exit code -15" in text
    assert "80.0 ms" in row(html, "profile-step")


def test_cycle_step_source_is_flagged_with_advice():
    text = section(build_report([profile_doc(meta=profile_meta([rank_meta(step_source="cycle")]))]))
    found = re.search(r'<p class="profile-steps-found">.*?</p>', text, flags=re.S).group(0)
    assert '<span class="flag flag-warn">fallback</span>' in found and "forward–backward cycle" in found
    assert "<code>with ai_ready.step():</code>" in found


def test_missing_flops_and_throughput_say_what_is_missing():
    records = rank_records(flops=None, throughput=False)
    html = build_report([profile_doc(records)])
    assert "skipped" in row(html, "profile-flops") and "torch.compile graphs" in row(html, "profile-flops")
    assert "not computed: no model FLOPs per step" in row(html, "profile-tflops")
    assert "not computed: no model FLOPs per step" in row(html, "profile-mfu")
    assert "not recorded: the size of the job" in row(html, "profile-throughput")
    assert "80.0 ms" in row(html, "profile-step")


def test_without_a_peak_mfu_says_why():
    html = build_report([profile_doc(rank_records(peak=None))])
    assert "no ceiling known" in row(html, "profile-tflops")
    assert f"not computed: no catalog entry or declared peak for {DEVICE} at fp32" in row(html, "profile-mfu")


def test_records_without_the_job_description_still_render():
    html = build_report([document(rank_records(), environment={})])  # no meta.kind, no meta.profile
    text = section(html)
    assert "Status: not recorded" in text and "no description of the job" in text
    assert "80.0 ms" in row(html, "profile-step")
    assert "not recorded: the document has no" in text and "Not recorded: no rank described the job" in text


def test_odd_meta_values_do_not_break_the_page():
    meta = profile_meta(["not a rank", {"rank": "x", "features": "none", "model": [], "marks": "m",
                                        "collectives": {"all_reduce": "?"}}],
                        job={"command": "python job.py", "env": ["A"], "nproc": "two"}, settings=None,
                        exit_code=True, duration_s="long", target={"model": "big", "tokens": "many"})
    text = section(build_report([profile_doc(meta=meta)]))
    assert "python job.py" in text and "Exit code not recorded" in text
    assert "not seen: the batches do not come from" in text


# --------------------------------------------------------------------------- target

def test_target_is_listed_with_the_outlook_note():
    target = {"model": {"kind": "transformer", "layers": 48, "hidden": 6144, "heads": 48, "seq_len": 4096,
                        "vocab": 128000}, "tokens": 1e12, "systems": ["jupiter-booster", "leonardo-booster"]}
    text = section(build_report([profile_doc(meta=profile_meta(target=target))]))
    t = table(text, "profile-target")
    assert "transformer" in kv(t, "Model") and "hidden size 6,144" in t and "sequence length 4,096" in t
    assert kv(t, "Token budget").startswith("1.00 T tokens") and "1,000,000,000,000" in t
    assert "<code>jupiter-booster</code>, <code>leonardo-booster</code>" in t
    assert "The scaling outlook for these systems appears when the extrapolation has run." in text


# --------------------------------------------------------------------------- escaping and real charts

@real_chart
def test_job_text_is_escaped_everywhere():
    hostile = dict(RANK, host=IMG, device_name=IMG, trace_file=IMG, marks=[{"name": IMG, "step": 1, "t_s": 0.5}],
                   model=dict(RANK["model"], **{"class": IMG, "wrapper": SCRIPT}),
                   collectives={IMG: {"count": 1, "bytes": 8, "seconds": 0.1}})
    job = dict(PROFILE["job"], name=SCRIPT, command=["python", IMG], argv=[IMG], env={"X": IMG, IMG: "1"},
               directory=IMG, source=IMG)
    meta = profile_meta([hostile], job=job, status="failed", reason=IMG, stderr_tail=IMG, stopped_by=IMG,
                        target={"model": {"kind": IMG}, "tokens": 1e9, "systems": [IMG]})
    records = rank_records(case=SCRIPT, host=IMG)
    html = build_report([profile_doc(records, meta, status="partial")], sources=[IMG])
    assert SCRIPT not in html and "<img src=x" not in html
    text = section(html)
    assert "<h4><code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in text
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    for where in ('<code class="command">python ', '<pre class="profile-stderr">', f"<code>X={escaped}</code>",
                  f"<td>{escaped}</td>", f"<code>{escaped}</code>"):
        assert where in text, where
    assert text.count(escaped) >= 10
    svgs = chart_svgs(text)
    assert len(svgs) == 2 and all("<script" not in s and "<img" not in s for s in svgs)


@real_chart
def test_charts_are_drawn_as_svg():
    svgs = chart_svgs(section(build_report([two_rank_doc()])))
    assert len(svgs) == 2  # the step-time breakdown and every timed step
    for svg in svgs:
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<text" not in svg
