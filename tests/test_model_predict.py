"""Predictions at scale and the bridge from a job profile: which workload a profile becomes, how a GPU
profile calibrates targets (bounded), generic jobs, and the run's time/energy/goodput arithmetic."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import REPO

from ai_ready.catalog import load_catalog
from ai_ready.model.from_profile import extrapolate_profile, workload_from_profile
from ai_ready.model.predict import (CALIBRATION_BOUNDS, Calibration, predict, predict_generic,
                                   scaling_points, uncertainty_for)
from ai_ready.model.workload import Training, TransformerModel, Workload

PROFILE = json.loads((REPO / "tests" / "data" / "profile_myjob.json").read_text())
GPT_7B = Workload("gpt-7b", TransformerModel(32, 4096, 32, 50257, 2048), Training(512, 1e11))


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_calibration_is_bounded_and_says_so() -> None:
    assert Calibration.from_measurement(1.2, 1.0, "x").ratio == pytest.approx(1.2)
    clamped = Calibration.from_measurement(10.0, 1.0, "x")
    assert clamped.ratio == CALIBRATION_BOUNDS[1] and clamped.raw_ratio == 10.0 and "clamped" in clamped.note


def test_a_profile_with_a_target_extrapolates_the_target_model(catalog) -> None:
    work = workload_from_profile(PROFILE, catalog)
    assert work.transformer.model.layers == 80 and work.transformer.training.tokens == 2e12
    assert work.transformer.training.global_batch == 1024  # 4M tokens of 4,096, said in the notes
    assert any("global batch" in n for n in work.notes)
    assert "not calibrated" in work.calibration.note and work.calibration.ratio == 1.0


def test_without_a_target_the_profiled_transformer_is_extrapolated(catalog) -> None:
    doc = copy.deepcopy(PROFILE)
    doc["meta"]["profile"]["target"] = None
    work = workload_from_profile(doc, catalog)
    assert work.transformer.model.hidden == 128 and work.transformer.model.seq_len == 128
    assert "profiled model" in work.source


def test_a_job_that_is_no_transformer_becomes_a_generic_workload(catalog) -> None:
    doc = copy.deepcopy(PROFILE)
    doc["meta"]["profile"]["target"] = None
    doc["meta"]["profile"]["ranks"][0]["model"].pop("transformer")
    work = workload_from_profile(doc, catalog)
    assert work.transformer is None and work.generic is not None
    assert work.generic.flops_per_item == pytest.approx(4429185024.0 / 1024)
    prediction = predict_generic(work.generic, catalog.system("dgx-h100"), gpus=8)
    assert prediction.kind == "generic" and prediction.step.gpus == 8
    assert prediction.uncertainty > uncertainty_for(catalog.system("dgx-h100"))


def test_a_toy_job_does_not_calibrate_a_target_of_another_shape(catalog) -> None:
    """The H200 run of examples/myjob (shared/gpu-runs/h200-2026-12-04): a 128-wide job at 1% MFU scaled a
    8192-wide target down to 8-9% MFU. Efficiency measured on small matrices does not carry over."""
    doc = copy.deepcopy(PROFILE)
    rank = doc["meta"]["profile"]["ranks"][0]
    rank["device"], rank["device_name"] = "cuda:0", "NVIDIA H100 80GB HBM3"
    assert doc["meta"]["profile"]["target"]["model"]["hidden"] >= 4 * rank["model"]["transformer"]["hidden"]
    work = workload_from_profile(doc, catalog)
    assert work.calibration.ratio == 1.0 and work.calibration.raw_ratio is None
    assert "very different shapes" in work.calibration.note


def test_a_gpu_profile_calibrates_the_targets(catalog) -> None:
    doc = copy.deepcopy(PROFILE)
    rank = doc["meta"]["profile"]["ranks"][0]
    rank["device"], rank["device_name"] = "cuda:0", "NVIDIA H100 80GB HBM3"
    doc["meta"]["profile"]["target"]["model"] = None  # the profiled model itself is the target: alike shapes
    work = workload_from_profile(doc, catalog)
    assert work.calibration.raw_ratio is not None
    assert CALIBRATION_BOUNDS[0] <= work.calibration.ratio <= CALIBRATION_BOUNDS[1]
    assert "H100" in work.calibration.note
    calibrated = predict(work.transformer, catalog.system("jupiter-booster"), calibration=work.calibration)
    plain = predict(work.transformer, catalog.system("jupiter-booster"))
    assert calibrated.step.step_time_s == pytest.approx(plain.step.step_time_s * work.calibration.ratio, rel=0.02)


def test_the_run_adds_up(catalog) -> None:
    result = predict(GPT_7B, catalog.system("jupiter-booster"), gpus=1024).to_json()
    run = result["run"]
    assert run["steps"] == pytest.approx(1e11 / (512 * 2048))
    assert run["wall_days"] == pytest.approx(run["compute_days"] / run["goodput"])
    assert run["failures_per_day"] == pytest.approx(1024 / 4 * 4 / 1000)  # 256 nodes at 4 per 1,000 node-days


def test_assumed_systems_get_a_wider_band(catalog) -> None:
    assert uncertainty_for(catalog.system("gigafactory-100k")) > uncertainty_for(catalog.system("dgx-h100"))


def test_scaling_points_end_at_the_whole_system(catalog) -> None:
    points = scaling_points(catalog.system("gigafactory-100k"))
    assert points[0] == 4 and points[-1] == 100_000 and points == sorted(points)


def test_extrapolate_profile_keeps_going_past_a_bad_system(catalog) -> None:
    out = extrapolate_profile(PROFILE, catalog, systems=("nope", "hammerhai"), scaling=False)
    bad, good = out["systems"]
    assert "unknown system" in bad["error"] and bad["prediction"] is None
    assert good["error"] is None and good["prediction"]["fits_memory"]
