"""The training section: one block per run with throughput per rank and in aggregate, step time with its spread,
model TFLOP/s and MFU beside the peak and its source (or why there is none), the FLOPs check, the loss from first
to last, the step-time breakdown, every rank's figures, failures with their reasons, and everything escaped."""

from __future__ import annotations

from conftest import section_of
import re

import pytest

from ai_ready.records import Record
from ai_ready.report import build_report
from chartstub import real_chart, stub_charts

from test_report import PAYLOAD, SCRIPT, chart_svgs, document, gemm, section_ids

PEAK = {"value": 989.4, "unit": "TFLOP/s", "kind": "catalog", "label": "h100-sxm bf16 dense peak",
        "source": "S4, S1", "references": [{"id": "S4", "title": "NVIDIA H100 datasheet", "where": "example.org/h100"}]}
CHECK = {"passed": True, "metric": "analytic / FlopCounterMode", "value": 1.0, "tolerance": 0.05,
         "reference": "torch.utils.flop_counter.FlopCounterMode"}
SHARES = {"data": 0.05, "forward": 0.30, "backward": 0.50, "optimizer": 0.15}
FLOPS = 4.0e15
BASE = {"arch": "gpt", "preset": "1b", "vocab": 50304, "seq_len": 2048, "layers": 24, "hidden": 1792, "heads": 14,
        "mlp": "gelu", "experts": 0, "top_k": 0, "batch": 4, "steps": 20, "warmup_steps": 3, "precision": "bf16",
        "workers": 2, "parallel": "none", "world_size": 1, "parameters": 986_000_000, "model_flops_per_step": FLOPS}


def stats(value: float, cv: float = 0.02) -> dict:
    return {"n": 20, "median": value, "mean": value, "std": value * cv, "cv": cv, "min": value * 0.95,
            "max": value * 1.05, "p10": value * 0.98, "p90": value * 1.02}


def rec(metric: str, unit: str, value: float | None, rank: int = 0, params: dict | None = None,
        case: str = "gpt-1b", **kw) -> Record:
    fields = dict(benchmark="train", case=case, params={**BASE, **(params or {})}, metric=metric, unit=unit,
                  value=value, stats=stats(value) if value is not None else None, rank=rank, host=f"node0{rank}", device="NVIDIA H100 80GB HBM3")
    fields.update(kw)
    return Record(**fields)


def run(rank: int = 0, step: float = 8.0, peak: dict | None = PEAK, first_loss: float = 10.9,
        last_loss: float = 6.2, counted: float = FLOPS, **params) -> list[Record]:
    """One rank's records as `ai-ready train` writes them (step 8 s: 0.5 PFLOP/s, 50.5% of the H100 peak)."""
    tflops = FLOPS / step / 1e12
    passed = abs(FLOPS / counted - 1) <= 0.05
    check = dict(CHECK, value=FLOPS / counted, passed=passed)
    records = [
        rec("step_time", "s", step, rank, params, timing={"clock": "host, device synchronised at each phase boundary"}),
        rec("throughput", "tokens/s", 4 * 2048 / step, rank, dict(params, item="tokens")),
    ]
    if peak:
        records.append(rec("mfu", "%", 100 * tflops / peak["value"], rank, params, check=check,
                           ceiling=dict(peak, value=100.0, unit="%", label=f"100% of {peak['label']}"),
                           pct_of_ceiling=100 * tflops / peak["value"]))
    records.append(rec("model_tflops", "TFLOP/s", tflops, rank, params, check=check, ceiling=peak,
                       pct_of_ceiling=100 * tflops / peak["value"] if peak else None))
    records += [rec("phase_time", "s", step * share, rank, dict(params, phase=phase, share_of_step=share))
                for phase, share in SHARES.items()]
    records.append(rec("model_flops", "FLOP/step", FLOPS, rank, dict(params, flop_counter=counted, analytic=FLOPS),
                       stats=None, check=check, status="ok" if passed else "failed",
                       reason=None if passed else f"analytic FLOPs {FLOPS:.4g} differ from FlopCounterMode's "
                                                  f"{counted:.4g} by more than 5%"))
    records.append(rec("loss", "", (first_loss + last_loss) / 2, rank,
                       dict(params, first_loss=first_loss, last_loss=last_loss)))
    records.append(rec("peak_memory", "GB", 61.5 + rank, rank, params, stats=None))
    return records


def two_ranks() -> list[Record]:
    params = {"parallel": "fsdp", "world_size": 2}
    per_rank = [4 * 2048 / 8.0, 4 * 2048 / 8.4]
    aggregate = rec("throughput", "tokens/s", 2 * 4 * 2048 / 8.4, 0, case="gpt-1b-aggregate",
                    params=dict(params, item="tokens", aggregate=True, ranks=2, per_rank=per_rank, slowest_rank=1))
    return run(0, 8.0, **params) + run(1, 8.4, **params) + [aggregate]


def section(html: str) -> str:
    start = html.index('<section id="train"')
    return html[start:html.index("</section>", start)]


def row(html: str, cls: str) -> str:
    rows = re.findall(rf'<tr class="{cls}">.*?</tr>', section(html), flags=re.S)
    assert len(rows) == 1, f"expected one {cls} row, found {len(rows)}"
    return rows[0]


@pytest.fixture(autouse=True)
def fast_charts(monkeypatch, request):
    return stub_charts(monkeypatch, request, record=("bar", "line"))


def test_section_appears_only_with_train_records_and_claims_them():
    assert "train" not in section_ids(build_report([document([gemm()])]))
    html = build_report([document(run(), environment={})])
    assert section_ids(html) == {"overview", "train"}  # no "Other records": the section claims them
    assert "Training workloads" in html
    unknown = Record(benchmark="nvme", case="seq", params={}, metric="bw", unit="GB/s", value=1.0)
    mixed = build_report([document(two_ranks() + [unknown])])
    other = section_of(mixed, "other")
    assert "nvme" in other and "gpt-1b" not in other


def test_intro_states_the_step_split_mfu_and_medians():
    text = section(build_report([document(run())]))
    assert "<strong>data wait</strong>" in text and "<strong>optimizer</strong> step" in text
    assert "MFU</strong> = model FLOPs per second / the device's dense peak for the precision" in text
    assert "agree within 5%" in text and "medians over the timed steps" in text


def test_summary_shows_run_throughput_mfu_with_source_and_flops_check():
    html = build_report([document(run())])
    text = section(html)
    assert "gpt 1b" in text and "986 M" in text and "986,000,000" in text and "bf16" in text
    assert "single process" in text and "8,192 tokens per step per rank" in text
    assert "experts=" not in text  # zero experts: a dense model
    assert "1,024 tokens/s" in row(html, "train-throughput") and "CV 2.0%" in row(html, "train-throughput")
    step = row(html, "train-step")
    assert "8,000 ms" in step and "p10–p90 7,840–8,160" in step
    tflops = row(html, "train-tflops")
    assert "500 TFLOP/s" in tflops and "50.5%" in tflops and "989 TFLOP/s" in tflops
    assert "catalog: h100-sxm bf16 dense peak; source S4, S1" in tflops
    mfu = row(html, "train-mfu")
    assert "50.5%" in mfu and "h100-sxm bf16 dense peak" in mfu and "source S4, S1" in mfu
    flops = row(html, "train-flops")
    assert "check passed" in flops and "= 1.000" in flops and "within 5%" in flops
    assert "FlopCounterMode" in flops
    assert "61.5 GB" in row(html, "train-memory") and "CUDA peak allocated" in row(html, "train-memory")
    assert "Sources of the peaks" in text and "NVIDIA H100 datasheet" in text


def test_breakdown_shares_sum_to_100_and_feed_the_chart(fast_charts):
    text = section(build_report([document(run())]))
    table = re.search(r'<table class="data train train-phases">.*?</table>', text, flags=re.S).group(0)
    for name, pct in (("data wait", "5.0%"), ("forward (with the loss)", "30.0%"), ("backward", "50.0%"),
                      ("optimizer step", "15.0%")):
        assert re.search(rf"<td>{re.escape(name)}</td>.*?{re.escape(pct)}</td>", table, flags=re.S), name
    assert "Sum of the shares</th><td class=\"num\">100.0%" in table and "not ≈ 100%" not in table
    assert 'class="train-stack"' in text and "width: 50.00%" in text
    (call,) = fast_charts
    bars = call["groups"][0].bars
    assert [b.label for b in bars] == ["data wait", "forward (with the loss)", "backward", "optimizer step"]
    assert sum(b.value for b in bars) == pytest.approx(100.0)
    assert bars[2].note == "4,000 ms"


def test_loss_first_to_last_and_a_warning_when_it_did_not_decrease():
    good = row(build_report([document(run())]), "train-loss")
    assert "10.90 → 6.200" in good and "did not decrease" not in good
    bad = row(build_report([document(run(first_loss=6.0, last_loss=6.5))]), "train-loss")
    assert "6.000 → 6.500" in bad and '<span class="flag flag-warn">did not decrease</span>' in bad


def test_without_a_peak_mfu_says_why():
    html = build_report([document(run(peak=None))])
    assert "no ceiling known" in row(html, "train-tflops")
    mfu = row(html, "train-mfu")
    assert "not computed" in mfu and "no catalog entry or declared peak for NVIDIA H100 80GB HBM3 at bf16" in mfu


def test_multi_rank_aggregate_and_per_rank_rows():
    html = build_report([document(two_ranks())])
    text = section(html)
    assert text.count('<div class="train-group">') == 1  # the aggregate joins its run
    assert "fsdp × 2 ranks" in text and "Summary from rank 0" in text
    agg = row(html, "train-aggregate")
    assert "over 2 ranks" in agg and "1,950 tokens/s" in agg and "slowest rank 1" in agg
    assert "rank 0: 1,024, rank 1: 975" in agg
    table = re.search(r'<table class="data train train-ranks">.*?</table>', text, flags=re.S).group(0)
    r0, r1 = re.findall(r"<tr(?: class=\"train-slowest\")?><td class=\"num\">.*?</tr>", table, flags=re.S)
    assert "slowest" not in r0 and "8,000" in r0 and "node00" in r0 and "61.5" in r0
    assert "train-slowest" in table and "slowest" in r1 and "8,400" in r1 and "+5.0% vs fastest" in r1
    assert "62.5" in r1 and "975 tokens/s" in r1


def test_failed_flops_check_shows_the_reason():
    html = build_report([document(run(counted=FLOPS / 1.2))])
    flops = row(html, "train-flops")
    assert "check FAILED" in flops and "= 1.200" in flops and "row-bad" in flops
    assert "differ from FlopCounterMode&#39;s" in flops and "by more than 5%" in flops
    assert "train-problems" in section(html)


def test_failed_and_skipped_records_show_reasons_and_no_number():
    failed = rec("step_time", "s", None, stats=None, status="failed", reason="CUDA out of memory at batch 64")
    skipped = rec("throughput", "tokens/s", None, case="moe-1b", stats=None, status="skipped",
                  reason="no CUDA device")
    text = section(build_report([document([failed, skipped])]))
    assert "CUDA out of memory at batch 64" in text and "no CUDA device" in text
    assert text.count('<div class="train-group">') == 2


def test_unknown_train_metric_is_listed_not_dropped():
    text = section(build_report([document(run() + [rec("grad_norm", "", 1.25)])]))
    assert "Other training records" in text and "grad_norm" in text


def exposed(rank: int, synced: float, local: float, step: float = 8.0, **params) -> Record:
    """The exposed-communication record `ai-ready train` writes on each of several ranks."""
    return rec("exposed_comm", "s", synced - local, rank, dict(params, backward_synced_s=synced, backward_local_s=local,
                                                             share_of_step=(synced - local) / step, probe_steps=4),
               stats=None)


def test_exposed_communication_row_per_run_and_per_rank():
    params = {"parallel": "ddp", "world_size": 2}
    records = two_ranks() + [exposed(0, 4.4, 4.0, **params), exposed(1, 4.3, 4.2, **params)]
    text = section(build_report([document(records)]))
    row = re.search(r'<tr class="train-exposed">.*?</tr>', text, flags=re.S).group(0)
    assert "400 ms" in row and "5.0% of the step" in row and "4,400 ms" in row and "4,000 ms" in row
    assert "4 probe steps" in row and "below the probe" not in row
    ranks = re.search(r'<table class="data train train-ranks">.*?</table>', text, flags=re.S).group(0)
    assert "Exposed comm ms" in ranks and "100" in ranks and "1.2% of the step" in ranks
    assert "Other training records" not in text  # shown in the block, not as an unknown metric


def test_negative_exposed_communication_is_called_noise():
    text = section(build_report([document(run() + [exposed(0, 3.9, 4.0)])]))
    row = re.search(r'<tr class="train-exposed">.*?</tr>', text, flags=re.S).group(0)
    assert "below the probe&#39;s noise" in row or "below the probe's noise" in row


def test_recompute_shows_hardware_flops_and_options_and_expert_split():
    params = {"recompute": True, "hardware_flops_per_step": 1.3 * FLOPS, "arch": "moe", "expert_parallel": 2,
              "parallel": "fsdp", "world_size": 2}
    text = section(build_report([document(run(**params))]))
    flops = re.search(r'<tr class="train-flops">.*?</tr>', text, flags=re.S).group(0)
    assert "hardware FLOPs per step with recomputation 5,200,000,000,000,000" in flops and "1.30 × the model FLOPs" in flops
    assert "full activation recomputation" in text and "experts split over 2 ranks" in text
    assert "hardware_flops_per_step" not in text  # a run setting, not a model shape


def test_without_recompute_no_hardware_flops_line():
    text = section(build_report([document(run(hardware_flops_per_step=FLOPS, recompute=False))]))
    assert "hardware FLOPs" not in text and "<th>Options</th><td>none</td>" in text


def scaling_sweep(fail: int | None = None, efficiencies: dict | None = None) -> list[Record]:
    """A weak-scaling sweep at 1, 2 and 4 ranks as `ai-ready train --scaling 1,2,4` writes it: every run's
    own records (the same case, world_size = k, an aggregate for k > 1) and one scaling record per rank count."""
    efficiencies = efficiencies or {1: 100.0, 2: 92.0, 4: 70.0}
    one = 4 * 2048 / 8.0  # 1,024 tokens/s at one rank
    records: list[Record] = []
    for k, eff in efficiencies.items():
        params = {"parallel": "ddp", "world_size": k}
        if k != fail:
            for rank in range(k):
                records += run(rank, 8.0 + rank * 0.1, **params)
            if k > 1:
                records.append(rec("throughput", "tokens/s", k * one * eff / 100, 0, case="gpt-1b-aggregate",
                                   params=dict(params, item="tokens", aggregate=True, ranks=k,
                                               per_rank=[one] * k, slowest_rank=k - 1)))
        base = {"arch": "gpt", "preset": "1b", "parallel": "ddp", "ranks": k, "batch": 4}
        if k == fail:
            records.append(Record(benchmark="train", case="gpt-1b-scaling", params=base,
                                  metric="scaling_efficiency", unit="%", value=None, status="failed",
                                  reason=f"the {k}-rank run failed: NCCL timeout"))
        else:
            records.append(Record(benchmark="train", case="gpt-1b-scaling", metric="scaling_efficiency",
                                  unit="%", value=eff,
                                  params=dict(base, throughput=k * one * eff / 100, throughput_1=one,
                                              item="tokens")))
    return records


def scaling_table(text: str) -> str:
    return re.search(r'<table class="data train train-scaling-table">.*?</table>', text, flags=re.S).group(0)


def test_weak_scaling_table_flags_low_efficiency_and_draws_the_curves(fast_charts):
    text = section(build_report([document(scaling_sweep())]))
    assert "<h4>Weak scaling</h4>" in text and "<code>gpt-1b</code> · ddp" in text
    rows = re.findall(r"<tr class=\"train-scaling-(?:row|low|failed)\">.*?</tr>", scaling_table(text), flags=re.S)
    assert len(rows) == 3
    r1, r2, r4 = rows
    assert ">1</td>" in r1 and "1,024 tokens/s" in r1 and "100.0%" in r1 and "below 80%" not in r1
    assert ">2</td>" in r2 and "1,884 tokens/s" in r2 and "942 tokens/s" in r2 and "92.0%" in r2
    assert "below 80%" not in r2
    assert 'class="train-scaling-low"' in r4 and ">4</td>" in r4 and "2,867 tokens/s" in r4 and "717 tokens/s" in r4
    assert "70.0%" in r4 and '<span class="flag flag-warn">below 80%</span>' in r4
    assert "below 80% at 4 ranks" in text
    eff, tput = [c for c in fast_charts if "lines" in c]  # the line charts; the bars are the step breakdowns
    assert eff["lines"][0].points == [(1.0, 100.0), (2.0, 92.0), (4.0, 70.0)]
    assert eff["ceilings"] == [(100.0, "ideal")] and eff["x_log2"] is True
    assert "Weak-scaling efficiency" in eff["title"]
    measured, ideal = tput["lines"]
    assert [y for _, y in measured.points] == pytest.approx([1024.0, 1884.16, 2867.2])
    assert ideal.dashed and ideal.points == [(1.0, 1024.0), (2.0, 2048.0), (4.0, 4096.0)]
    assert "tokens/s" in tput["title"]


def test_weak_scaling_failed_rank_count_shows_its_reason(fast_charts):
    text = section(build_report([document(scaling_sweep(fail=2))]))
    table = scaling_table(text)
    failed = re.search(r'<tr class="train-scaling-failed">.*?</tr>', table, flags=re.S).group(0)
    assert ">2</td>" in failed and "failed" in failed and "the 2-rank run failed: NCCL timeout" in failed
    assert "row-bad" in failed
    eff = next(c for c in fast_charts if "lines" in c)
    assert eff["lines"][0].points == [(1.0, 100.0), (4.0, 70.0)]


def test_weak_scaling_records_leave_the_per_run_blocks_alone():
    text = section(build_report([document(scaling_sweep())]))
    # one ordinary block per rank count, none for the scaling records, nothing in "Other training records"
    assert text.count('<div class="train-group">') == 3
    assert "ddp × 1 rank" in text and "ddp × 2 ranks" in text and "ddp × 4 ranks" in text
    assert "Other training records" not in text
    assert not re.search(r"<h4><code>gpt-1b-scaling</code>", text)
    blocks = text.split('<div class="train-group">')[1:]
    assert "over 2 ranks" in blocks[1] and "over 4 ranks" in blocks[2] and "train-aggregate" not in blocks[0]
    assert "1,024 tokens/s" in blocks[0]
    html = build_report([document(scaling_sweep())])
    assert '<section id="other"' not in html


def test_no_scaling_block_without_scaling_records():
    text = section(build_report([document(two_ranks())]))
    assert "Weak scaling" not in text


@real_chart
def test_weak_scaling_charts_draw():
    svgs = chart_svgs(section(build_report([document(scaling_sweep(fail=2))])))
    assert len(svgs) >= 3  # the step breakdowns plus efficiency and throughput


@real_chart
def test_document_text_is_escaped_in_tables_and_chart():
    hostile = dict(PEAK, label=PAYLOAD, source=PAYLOAD, references=[{"id": PAYLOAD, "title": PAYLOAD}])
    records = run(peak=hostile, arch=PAYLOAD, precision=PAYLOAD, parallel=PAYLOAD, mlp=PAYLOAD)
    records[0].host = PAYLOAD
    records[0].device = PAYLOAD
    records.append(rec("step_time", "s", None, case=PAYLOAD, stats=None, status="failed", reason=PAYLOAD))
    records.append(rec(PAYLOAD, PAYLOAD, 1.0))
    html = build_report([document(records)], sources=[PAYLOAD])
    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section(html)
    svgs = chart_svgs(section(html))
    assert svgs and all("<script" not in s and "<img" not in s and "<text" not in s for s in svgs)
