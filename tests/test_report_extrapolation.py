"""The "At scale" section: a profiled job extrapolated to its target systems (meta.profile.extrapolation, written by
`ai-ready profile`). What was extrapolated, the systems side by side, per system the prediction on the whole system
with time, energy, cost and goodput, the step breakdown, the scaling points (those that do not fit said so), the
assumptions; errors in one line; everything from the job or the user escaped. And the profile command's helpers that
store it: a failure never costs the profile."""

from __future__ import annotations

import copy
import importlib
import json
import math
import re

import pytest

from ai_ready.catalog import load_catalog
from ai_ready.errors import InputError
from ai_ready.report import build_report
from ai_ready.report.sections.extrapolation import layout_text
from chartstub import real_chart, stub_charts

from test_report import SCRIPT, chart_svgs, document, gemm, section_ids
from test_report_profile import IMG, profile_doc, profile_meta

profile_cli = importlib.import_module("ai_ready.cli.profile")  # the module, not the click command of that name

ADVICE = "; fix fewer of --tp/--pp/--dp/--recompute/--zero or use more GPUs"
MISFIT = ("no layout of '80-layer h=8192 model' fits the memory of gh200 (96 GB) on at most 4 GPUs with the choices "
          "allowed")
RUN = {"tokens": 2e12, "steps": 476837.158203125, "compute_days": 3.05341847611929, "wall_days": 3.5921198359030697,
       "goodput": 0.8500324642848814, "checkpoint_s": 0.85988668416, "checkpoint_interval_s": 84.60571972718016,
       "mttf_hours": 1.171875, "interruptions": 73.56661423929486, "failures_per_day": 20.48,
       "energy_mwh": 1375.695686274814, "cost_eur": 275139.1372549629, "eur_per_kwh": 0.2,
       "facility_power_mw": 15.957333333333336}
BREAKDOWN = {"forward": 0.046984862693382944, "backward": 0.09156466531931741, "grad_accumulate": 0.008814052291764705,
             "recompute": 0.0, "tp_comm": 0.023423201367521365, "cp_comm": 0.0, "ep_comm": 0.0,
             "pp_bubble": 0.10952533749049237, "pp_p2p": 0.023924929422222223, "dp_comm": 0.24897557556400673,
             "optimizer": 4.8278023529411764e-05}
# jupiter-booster's prediction for examples/myjob's target (an 80-layer, h=8192 transformer, 2T tokens), as
# extrapolate_profile returned it, assumptions shortened.
PREDICTION = {
    "workload": "myjob", "system": "jupiter-booster", "kind": "transformer", "accelerator": "gh200", "gpus": 20480,
    "gpus_available": 24000, "step_time_s": 0.5532609021722371,
    "step_time_band_s": [0.4149456766291778, 0.6915761277152964], "uncertainty": 0.25,
    "tokens_per_s": 7581059.828251265, "model_tflops_per_gpu": 157.34059069337258,
    "hardware_tflops_per_gpu": 157.34059069337258, "mfu": 0.15909058715204505, "peak_tflops_per_gpu": 989.0,
    "memory_gb_per_gpu": 34.098369792,
    "memory_breakdown_gb": {"weights": 3.745972224, "gradients": 3.745972224, "optimizer": 0.043898112,
                            "activations": 26.562527232},
    "hbm_gb_per_gpu": 96.0, "fits_memory": True,
    "parallelism": {"tp": 4, "pp": 10, "dp": 512, "cp": 1, "ep": 1, "microbatch": 1, "interleave": 8,
                    "recompute": "none", "zero": 1, "sequence_parallel": True},
    "software": {"attention": "flash", "overlap_grad_reduce": True, "overlap_param_gather": True, "tp_overlap": 0.0},
    "breakdown": BREAKDOWN,
    "calibration": {"ratio": 1.0, "raw_ratio": None, "note": "not calibrated: the job was profiled on cpu"},
    "assumptions": ["peak: 989 TFLOP/s bf16 dense (gh200) (source S1, S4)", "HBM: 96 GB at 4 TB/s (source S5)"],
    "search": {"evaluated": 2663, "fitting": 2088, "elapsed_s": 0.39}, "run": RUN,
}
SCALING = [
    {"gpus": 4, "fits": False, "reason": MISFIT + ADVICE, "global_batch": 1024},
    {"gpus": 16, "gpus_used": 16, "fits": True, "global_batch": 1024, "step_time_s": 198.94143463398186,
     "tokens_per_s": 21083.109246280448, "mfu": 0.5663164663464494, "efficiency": 1.0,
     "parallelism": {"tp": 1, "pp": 1, "dp": 16, "cp": 1, "ep": 1, "microbatch": 2, "interleave": 1,
                     "recompute": "full", "zero": 3}},
    {"gpus": 24000, "gpus_used": 20480, "fits": True, "global_batch": 1024, "step_time_s": 0.5532609021722371,
     "tokens_per_s": 7581059.828251265, "mfu": 0.15909058715204505, "efficiency": 0.2809,
     "parallelism": {"tp": 4, "pp": 10, "dp": 512, "cp": 1, "ep": 1, "microbatch": 1, "interleave": 8,
                     "recompute": "none", "zero": 1}},
]
TRANSFORMER = {
    "workload": {"kind": "transformer", "name": "myjob",
                 "model": {"layers": 80, "hidden": 8192, "heads": 64, "kv_heads": 64, "ffn_hidden": 32768,
                           "ffn": "gelu", "vocab": 128000, "seq_len": 4096, "experts": 0, "top_k": 0},
                 "global_batch": 1024, "tokens": 2e12, "precision": "bf16"},
    "source": "target.model of ai-ready.yaml",
    "calibration": {"ratio": 1.0, "raw_ratio": None,
                    "note": "not calibrated: the job was profiled on cpu, not a GPU; catalog efficiencies used"},
    "notes": ["global batch: 1024 sequences; assumption: global batch of about 4M tokens"],
    "systems": [{"system": "jupiter-booster", "prediction": PREDICTION, "error": None, "scaling": SCALING},
                {"system": "nope", "prediction": None, "scaling": [],
                 "error": "unknown system 'nope'; known: alps, hammerhai"}],
}
GENERIC_PREDICTION = {
    "workload": "pj", "system": "hammerhai", "kind": "generic", "accelerator": "b300", "gpus": 1152,
    "gpus_available": 1152, "step_time_s": 4.412e-05, "step_time_band_s": [2.647e-05, 6.177e-05], "uncertainty": 0.4,
    "tokens_per_s": 1670946476.9, "model_tflops_per_gpu": 0.805, "hardware_tflops_per_gpu": 0.805, "mfu": 0.000358,
    "peak_tflops_per_gpu": 2250.0, "memory_gb_per_gpu": 1200.0,
    "memory_breakdown_gb": {"weights": 0.0022, "gradients": 0.0, "optimizer": 0.0, "activations": 1199.9},
    "hbm_gb_per_gpu": 270.0, "fits_memory": False,
    "parallelism": {"tp": 1, "pp": 1, "dp": 1152, "cp": 1, "ep": 1, "microbatch": 1, "interleave": 1,
                    "recompute": "none", "zero": 0, "sequence_parallel": False},
    "software": {"attention": "flash", "overlap_grad_reduce": True, "overlap_param_gather": True, "tp_overlap": 0.0},
    "breakdown": {"compute": 3.0e-05, "dp_comm": 1.0e-05, "optimizer": 4.12e-06},
    "calibration": {"ratio": 1.0, "raw_ratio": None, "note": "not calibrated"},
    "assumptions": ["peak: 2250 TFLOP/s bf16 dense (b300) (source S1, S3)"], "run": None, "item": "samples",
}
GENERIC = {
    "workload": {"kind": "generic", "name": "pj", "flops_per_item": 555008.0, "parameters": 136714.0,
                 "activation_bytes_per_item": 5006013.5, "items_per_gpu_step": 64, "item": "samples",
                 "tokens": None, "precision": "bf16"},
    "source": "measured totals of the profiled job (not a transformer the profile recognised)",
    "calibration": {"ratio": 1.0, "raw_ratio": None, "note": "not calibrated"}, "notes": [],
    "systems": [{"system": "hammerhai", "prediction": GENERIC_PREDICTION, "error": None, "scaling": [
        {"gpus": 8, "gpus_used": 8, "fits": True, "step_time_s": 1.53e-05, "tokens_per_s": 33468584.2, "mfu": 0.00103,
         "efficiency": 1.0, "global_batch": 512, "parallelism": {"dp": 8, "zero": 0}},
        {"gpus": 1152, "gpus_used": 1152, "fits": False, "step_time_s": 4.412e-05, "tokens_per_s": 1670946476.9,
         "mfu": 0.000358, "efficiency": 0.3467, "global_batch": 73728, "parallelism": {"dp": 1152, "zero": 0}}]}],
}


def doc_with(extrapolation, **meta_changes):
    target = {"model": TRANSFORMER["workload"]["model"] | {"kind": "transformer"}, "tokens": 2e12,
              "systems": ["jupiter-booster", "nope"]}
    meta = profile_meta(target=target, **meta_changes)
    meta["extrapolation"] = copy.deepcopy(extrapolation)
    return profile_doc(meta=meta)


def section(html: str) -> str:
    start = html.index('<section id="extrapolation"')
    return html[start:html.index("</section>", start)]


def table(text: str, cls: str) -> str:
    return re.search(rf'<table class="[^"]*\b{cls}\b[^"]*">.*?</table>', text, flags=re.S).group(0)


def summary_row(text: str, key: str) -> str:
    return re.search(rf'<tr class="ext-{key}">(.*?)</tr>', text, flags=re.S).group(1)


@pytest.fixture(autouse=True)
def fast_charts(monkeypatch, request):
    return stub_charts(monkeypatch, request, record=("scaling",))


# --------------------------------------------------------------------------- presence and placement

def test_section_follows_the_profile_only_when_an_extrapolation_is_stored():
    assert "extrapolation" not in section_ids(build_report([profile_doc()]))
    assert "extrapolation" not in section_ids(build_report([document([gemm()])]))
    html = build_report([doc_with(TRANSFORMER)])
    ids = re.findall(r'<section id="([^"]+)"', html)
    assert ids.index("profile") < ids.index("part-outlook") < ids.index("extrapolation")
    assert "At scale: your job on the target systems" in html
    assert 'href="#extrapolation"' in html[html.index('<section id="profile"'):html.index('<section id="extrap')]
    assert "appears when the extrapolation has run" in build_report([profile_doc(meta=profile_meta(
        target={"model": None, "tokens": 1e9, "systems": ["hammerhai"]}))])


# --------------------------------------------------------------------------- a transformer target

def test_what_was_extrapolated():
    t = table(section(build_report([doc_with(TRANSFORMER)])), "ext-workload")
    assert "layers 80 · hidden size 8,192 · attention heads 64" in t and "sequence length 4,096" in t
    assert "1,024 sequences" in t and "4.19 M tokens per step" in t
    assert "2.00 T tokens" in t and "bf16" in t and "target.model of ai-ready.yaml" in t
    assert "not calibrated: the job was profiled on cpu" in t
    assert "global batch of about 4M tokens" in section(build_report([doc_with(TRANSFORMER)]))


def test_the_systems_side_by_side():
    t = table(section(build_report([doc_with(TRANSFORMER)])), "ext-compare")
    row = re.search(r"<tr><td><code>jupiter-booster</code>.*?</tr>", t, flags=re.S).group(0)
    for figure in ("20,480 of 24,000", "tp4 pp10 dp512", "553 ms", "7.58 M", "15.9%", "3.59 days", "1,376",
                   "275,139", "85.0%"):
        assert figure in row, figure
    assert "<code>nope</code>" in t and "unknown system &#39;nope&#39;; known: alps, hammerhai" in t


def test_each_system_on_the_whole_system():
    text = section(build_report([doc_with(TRANSFORMER)]))
    s = table(text, "ext-summary")
    assert "20,480 of 24,000 gh200" in summary_row(s, "gpus") and "85% of the system" in summary_row(s, "gpus")
    assert "2,663 layouts" in summary_row(s, "gpus")
    assert "tp4 pp10 dp512 · interleave 8 · micro-batch 1 · ZeRO-1 · sequence parallel" in summary_row(s, "layout")
    assert "553 ms" in summary_row(s, "step") and "band 415 ms – 692 ms" in summary_row(s, "step")
    assert "7.58 M tokens/s" in summary_row(s, "throughput") and "370 tokens/s per GPU" in summary_row(s, "throughput")
    assert "15.9%" in summary_row(s, "mfu") and "989 TFLOP/s dense peak" in summary_row(s, "mfu")
    memory = summary_row(s, "memory")
    assert "34.1 GB of 96.0 GB HBM" in memory and "flag-ok" in memory and "activations 26.6 GB" in memory
    assert "3.59 days" in summary_row(s, "time") and "3.05 days of pure compute" in summary_row(s, "time")
    assert "1,376 MWh" in summary_row(s, "energy") and "16.0 MW" in summary_row(s, "energy")
    assert "275,139 EUR" in summary_row(s, "cost") and "0.200 EUR/kWh" in summary_row(s, "cost")
    assert "85.0%" in summary_row(s, "goodput") and "flag" not in summary_row(s, "goodput")
    assert "1.17 hours" in summary_row(s, "mttf") and "20.5 failures per day" in summary_row(s, "mttf")
    assert "every 84.6 s" in summary_row(s, "checkpoint") and "860 ms per checkpoint" in summary_row(s, "checkpoint")
    assert "73.6 expected" in summary_row(s, "interruptions")


def test_step_breakdown_shares_add_up_biggest_first():
    t = table(section(build_report([doc_with(TRANSFORMER)])), "ext-breakdown")
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">([^<]+)</td><td class=\"num\">([0-9.]+)%</td></tr>", t)
    assert rows[0][:2] == ("data-parallel communication (not hidden)", "249")
    assert [r[0] for r in rows][:2] == ["data-parallel communication (not hidden)", "pipeline bubble"]
    assert "activation recomputation" not in t  # zero components are left out
    assert sum(float(r[2]) for r in rows) == pytest.approx(100.0, abs=0.3)


def test_scaling_points_and_the_ones_that_do_not_fit(fast_charts):
    text = section(build_report([doc_with(TRANSFORMER)]))
    t = table(text, "ext-scaling")
    misfit = re.search(r'<tr class="ext-scaling-misfit">.*?</tr>', t, flags=re.S).group(0)
    assert "does not fit" in misfit and "at most 4 GPUs" in misfit and "fix fewer" not in misfit
    last = re.findall(r'<tr class="ext-scaling-row">.*?</tr>', t, flags=re.S)[-1]
    assert "24,000" in last and "20,480" in last and "28.1%" in last and "553 ms" in last
    assert "full recomputation" in t and "ZeRO-3" in t
    (call,) = fast_charts
    (series,) = call["series"]  # the system with an error has no curve
    assert series.label == "jupiter-booster" and series.misfits == [4.0] and series.size == 24000.0
    assert [p[0] for p in series.points] == [16.0, 20480.0]  # plotted at the GPUs the layout uses
    assert call["throughput_label"] == "tokens/s"
    assert "nothing fits on 4 GPUs" in call["alt"] and "20,480 GPUs 7.58 M tokens/s (28%)" in call["alt"]
    assert 'class="chart ext-scaling-chart"' in text


def test_assumptions_are_collapsed():
    text = section(build_report([doc_with(TRANSFORMER)]))
    details = re.search(r'<details class="ext-assumptions">.*?</details>', text, flags=re.S).group(0)
    assert "2 assumptions" in details and "<li>HBM: 96 GB at 4 TB/s (source S5)</li>" in details


# --------------------------------------------------------------------------- generic jobs, errors, no budget

def test_a_generic_job_in_its_own_items():
    text = section(build_report([doc_with(GENERIC)]))
    w = table(text, "ext-workload")
    assert "not a transformer" in w and "64 samples per step" in w and "137 K" in w
    assert "set target.tokens in ai-ready.yaml (in samples)" in w
    s = table(text, "ext-summary")
    assert "DDP over 1,152 GPUs" in summary_row(s, "layout")
    assert "samples/s" in summary_row(s, "throughput") and "flag-bad" in summary_row(s, "memory")
    assert "not computed" in summary_row(s, "run") and "no token budget" in summary_row(s, "run")
    c = table(text, "ext-compare")
    assert "does not fit" in c and "no token budget" in c and "Throughput samples/s" in c
    t = table(text, "ext-scaling")
    assert "DDP over 8 GPUs" in t
    misfit = re.search(r'<tr class="ext-scaling-misfit">.*?</tr>', t, flags=re.S).group(0)
    assert "does not fit memory" in misfit and "1.67 B" in misfit  # figures kept, flagged
    assert "compute (forward, backward)" in table(text, "ext-breakdown")


def test_an_extrapolation_error_is_one_line_and_keeps_the_profile():
    html = build_report([doc_with({"error": "the profile counted no FLOPs per step,\nso a generic job cannot be "
                                            "extrapolated"})])
    text = section(html)
    assert re.search(r'<p class="ext-error row-bad"><span class="flag flag-bad">not extrapolated</span> the '
                     r"profile counted no FLOPs per step, so a generic job cannot be extrapolated</p>", text)
    assert "ext-compare" not in text and '<section id="profile"' in html
    assert "not readable" in section(build_report([doc_with(["odd"])]))


def test_odd_values_do_not_break_the_page():
    odd = copy.deepcopy(TRANSFORMER)
    odd["systems"][0]["prediction"].update(step_time_band_s="wide", mfu=None, run={"wall_days": "long"},
                                           breakdown=[1, 2], parallelism=None, memory_breakdown_gb=None)
    odd["systems"][0]["scaling"] = [{"gpus": "many"}, {"gpus": 8, "fits": False}, 7]
    odd["workload"]["model"] = "big"
    odd["notes"] = "not a list"
    text = section(build_report([doc_with(odd)]))
    assert "jupiter-booster" in text and "—" in text and "does not fit memory" in text


def test_no_systems_says_how_to_name_them():
    empty = dict(copy.deepcopy(TRANSFORMER), systems=[])
    assert "no target system was given" in section(build_report([doc_with(empty)]))


# --------------------------------------------------------------------------- escaping

@real_chart
def test_job_and_user_text_is_escaped():
    hostile = copy.deepcopy(TRANSFORMER)
    hostile["workload"]["name"] = SCRIPT
    hostile["source"] = IMG
    hostile["notes"] = [SCRIPT]
    hostile["calibration"]["note"] = IMG
    hostile["systems"][0]["system"] = SCRIPT
    hostile["systems"][0]["prediction"]["accelerator"] = IMG
    hostile["systems"][0]["prediction"]["assumptions"] = [IMG]
    hostile["systems"][0]["scaling"][0]["reason"] = SCRIPT
    hostile["systems"][1]["system"] = IMG
    hostile["systems"][1]["error"] = SCRIPT
    job = dict(profile_meta()["job"], name=SCRIPT)
    html = build_report([doc_with(hostile, job=job)], sources=[IMG])
    assert SCRIPT not in html and "<img src=x" not in html
    text = section(html)
    assert "<h4><code>&lt;script&gt;alert(1)&lt;/script&gt;</code> at scale" in text
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
    assert text.count("&lt;img src=x onerror=alert(1)&gt;") >= 4
    (svg,) = chart_svgs(text)
    assert "<script" not in svg and "<img" not in svg and "<text" not in svg  # text as paths


@real_chart
def test_real_scaling_chart_is_svg():
    svgs = chart_svgs(section(build_report([doc_with(GENERIC)])))
    assert len(svgs) == 1 and svgs[0].lstrip().startswith("<?xml")


def test_layout_text():
    assert layout_text({"tp": 4, "pp": 10, "dp": 512, "cp": 2, "ep": 1}, full=False) == "tp4 pp10 dp512 cp2"
    assert layout_text({"dp": 8, "zero": 3}, "generic") == "FSDP (ZeRO-3) over 8 GPUs"
    assert layout_text({"dp": 8, "zero": 0}, "generic", full=False) == "DDP"
    assert layout_text(None) == "—"


# --------------------------------------------------------------------------- what `ai-ready profile` stores

class Doc:
    def __init__(self, profile):
        self.meta = {"profile": profile}
        self.records = []


@pytest.fixture
def notes(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(profile_cli, "note", said.append)
    return said


def test_the_target_systems_are_extrapolated_and_non_finite_numbers_stored_as_none(monkeypatch, notes):
    asked = {}

    def fake(document, catalog, systems=None, scaling=True):
        asked["systems"] = systems
        return {"systems": [{"system": systems[0], "prediction": {"mfu": math.inf}, "scaling": [math.nan]}]}

    monkeypatch.setattr("ai_ready.model.from_profile.extrapolate_profile", fake)
    doc = Doc({"job": {"name": "j"}, "target": {"systems": ["hammerhai"]}})
    profile_cli._extrapolate(doc, None, ())
    assert asked["systems"] == ("hammerhai",)
    stored = doc.meta["profile"]["extrapolation"]
    assert stored["systems"][0]["prediction"]["mfu"] is None and stored["systems"][0]["scaling"] == [None]
    json.dumps(stored, allow_nan=False)
    profile_cli._extrapolate(doc, None, ("dgx-h100", "alps"))  # --system replaces the target's systems
    assert asked["systems"] == ("dgx-h100", "alps")


@pytest.mark.parametrize("error", [InputError("bad target\nsecond line"), RuntimeError("boom")])
def test_a_failing_extrapolation_is_stored_as_one_line_and_warned(monkeypatch, notes, error):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("ai_ready.model.from_profile.extrapolate_profile", fail)
    doc = Doc({"job": {"name": "j"}, "target": {"systems": ["hammerhai"]}})
    profile_cli._extrapolate(doc, None, ())
    message = doc.meta["profile"]["extrapolation"]["error"]
    assert message in ("bad target second line", "RuntimeError: boom")
    assert "\n" not in message and any("warning" in n and message in n for n in notes)


def test_without_target_systems_nothing_is_extrapolated(notes):
    doc = Doc({"job": {"name": "j"}, "target": None})
    profile_cli._extrapolate(doc, None, ())
    assert "extrapolation" not in doc.meta["profile"] and "target.systems" in notes[-1]


def test_a_real_profile_is_extrapolated_in_process():
    """extrapolate_profile on the synthetic profile of the profile section's tests (a small CPU MLP): a generic
    workload the section renders."""
    doc = profile_doc(meta=profile_meta(target={"model": None, "tokens": 1e9, "systems": ["hammerhai"],
                                                "global_batch": None, "precision": None}))
    profile_cli._extrapolate(doc, load_catalog(), ())
    stored = doc.meta["profile"]["extrapolation"]
    assert stored["workload"]["kind"] == "generic" and stored["systems"][0]["prediction"]["run"]
    text = section(build_report([doc]))
    assert "samples/s" in text and "hammerhai" in text and "Time to train" in text
