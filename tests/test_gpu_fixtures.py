"""ai-ready on real GPU results: the H200 files of 2026-12-04 (tests/data/h200-2026-12-04, copied from
shared/gpu-runs, README there) read by the commands and the report as users will see them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_ready.cli import profile as profile_cli
from ai_ready.cli import train as train_cli
from ai_ready.records import load_results

H200 = Path(__file__).parent / "data" / "h200-2026-12-04"


def _text(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().out.split())


def test_the_train_table_prints_mfu_as_a_share_of_the_peak(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    document = load_results(H200 / "train-gpt-1b-bf16.json")
    train_cli._summarise(document.records, tmp_path / "out.json")
    out = _text(capsys)
    assert "100% of" not in out
    assert "of the h200-sxm bf16 dense peak" in out and "989 TFLOP/s" in out


def test_the_profile_table_prints_mfu_as_a_share_of_the_peak(capsys: pytest.CaptureFixture[str]) -> None:
    document = load_results(H200 / "profile-myjob.json")
    profile_cli._summarise(document, "completed", None, "")
    out = _text(capsys)
    assert "100% of" not in out and "MFU" in out
    assert "of the h200-sxm" in out
