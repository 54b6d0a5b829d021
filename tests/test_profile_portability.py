"""NVIDIA-only imports in a profiled job, and the portability verdict they lead to."""

from __future__ import annotations

import json

from ai_ready.profile.portability import nvidia_only_imports
from ai_ready.records import parse_results
from ai_ready.report.assess import assess
from ai_ready.report.sections import ReportData
from conftest import REPO


def test_only_nvidia_only_libraries_are_named() -> None:
    modules = {"torch": 1, "torch.cuda": 1, "apex": 1, "apex.optimizers": 1, "numba": 1, "triton": 1,
               "transformer_engine.pytorch": 1}
    assert [f["module"] for f in nvidia_only_imports(modules)] == ["apex", "transformer_engine"]
    assert [f["module"] for f in nvidia_only_imports({"numba": 1, "numba.cuda": 1})] == ["numba"]
    assert nvidia_only_imports({"torch": 1, "deepspeed": 1}) == []


def _assessment(nvidia_only: list[dict[str, str]] | None):  # noqa: ANN202
    doc = json.loads((REPO / "tests" / "data" / "profile_myjob.json").read_text())
    for rank in doc["meta"]["profile"]["ranks"]:
        if nvidia_only is None:
            rank["features"].pop("nvidia_only", None)
        else:
            rank["features"]["nvidia_only"] = nvidia_only
    return assess(ReportData.from_documents([parse_results(doc)], ["p.json"]))


def test_a_job_importing_apex_gets_a_portability_action_and_an_older_profile_says_nothing() -> None:
    flagged = _assessment(nvidia_only_imports({"apex": 1}))
    rec = next(r for r in flagged.recommendations if r.rule_id == "software.portability")
    assert "apex" in rec.evidence_text and "AMD" in rec.action
    clean = _assessment([])
    assert "software.portability" not in [r.rule_id for r in clean.recommendations]
    assert clean.metrics["profile.nvidia_only_libraries"].value == 0
    assert "profile.nvidia_only_libraries" not in _assessment(None).metrics
