"""Checkpoint save/load and DataLoader benchmarks: sizes, round-trip checks, figures and cleanup."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ai_ready.bench.context import BenchContext
from ai_ready.bench.io import checkpoint, dataload
from ai_ready.bench.io.checkpoint import run_checkpoint, synthetic_state, tensor_bytes
from ai_ready.bench.io.dataload import run_dataloader
from ai_ready.bench.io.scratch import Scratch

#: Small enough for a quick test, large enough for the full transformer mix.
CKPT_BYTES = 3_000_000
SIZE_TOLERANCE = 0.02
REL = 1e-9
SAMPLES = 40
SAMPLE_BYTES = 4096
CACHE_STATES = (checkpoint.CACHE_DROPPED, checkpoint.CACHE_WARM)


def ctx() -> BenchContext:
    return BenchContext(device="cpu", device_name="cpu")


def by_case(records: list) -> dict[tuple[str, str], object]:
    return {(r.case, r.metric): r for r in records}


@pytest.mark.parametrize("total", [1_000_000, CKPT_BYTES, 20_000_000])
def test_synthetic_state_size_and_mix(total: int) -> None:
    state = synthetic_state(total, seed=1)
    assert abs(tensor_bytes(state) - total) <= SIZE_TOLERANCE * total
    dtypes = {t.dtype for t in state.values()}
    assert {torch.bfloat16, torch.float32} <= dtypes
    assert {t.dim() for t in state.values()} == {1, 2}
    assert len({tuple(t.shape) for t in state.values()}) >= 5
    assert any(k.startswith("model.") for k in state)
    assert any(k.startswith("optim.exp_avg.") for k in state)
    assert any(k.startswith("optim.exp_avg_sq.") for k in state)
    assert "model.embed.weight" in state
    assert all(bool((t != 0).all()) for t in state.values())
    largest = max(t.numel() * t.element_size() for t in state.values())
    smallest = min(t.numel() * t.element_size() for t in state.values())
    assert largest > 50 * smallest  # a few big matrices next to tiny norms


def test_synthetic_state_is_seeded() -> None:
    a, b = synthetic_state(CKPT_BYTES, 3), synthetic_state(CKPT_BYTES, 3)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_synthetic_state_refuses_tiny_budget() -> None:
    with pytest.raises(ValueError):
        synthetic_state(100, 0)


def test_checkpoint_records(tmp_path: Path) -> None:
    with Scratch(tmp_path) as s:
        records = run_checkpoint(ctx(), s, CKPT_BYTES, repeats=2)
        folder = s.path
        assert list(folder.iterdir()) == []  # each repeat deleted its files
    assert not folder.exists()
    got = by_case(records)
    for case in ("checkpoint-save-torch", "checkpoint-load-torch"):
        _check_pair(got[(case, "bandwidth")], got[(case, "time")], api="torch.save")
    dcp = got[("checkpoint-save-dcp", "bandwidth")]
    if dcp.status == "skipped":
        assert dcp.reason and got[("checkpoint-load-dcp", "bandwidth")].status == "skipped"
    else:
        for case in ("checkpoint-save-dcp", "checkpoint-load-dcp"):
            _check_pair(got[(case, "bandwidth")], got[(case, "time")], api="torch.distributed.checkpoint")


def _check_pair(bandwidth, time, api: str) -> None:
    assert bandwidth.status == "ok" and time.status == "ok", bandwidth.reason
    assert bandwidth.benchmark == "io" and bandwidth.unit == "GB/s" and time.unit == "s"
    params = bandwidth.params
    assert params["api"] == api and params["per_rank"] is True and params["repeats"] == 2
    assert abs(params["bytes"] - CKPT_BYTES) <= SIZE_TOLERANCE * CKPT_BYTES
    assert params["file_bytes"] >= params["bytes"] and params["tensors"] > 10
    seconds = bandwidth.timing["samples_s"]
    assert len(seconds) == 2 and time.samples == pytest.approx(seconds, rel=REL)
    assert bandwidth.samples == pytest.approx([params["bytes"] / t / 1e9 for t in seconds], rel=REL)
    assert bandwidth.timing["clock"] == "host"
    cache = bandwidth.timing["cache"]
    if params["op"] == "save":
        assert cache == checkpoint.CACHE_WRITE
    else:
        assert cache.startswith("read: ") and cache.removeprefix("read: ") in CACHE_STATES


def test_corrupted_load_fails_without_a_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_load = torch.load

    def corrupting_load(*args, **kwargs):
        state = real_load(*args, **kwargs)
        if not isinstance(state, dict):  # DCP's own reads go through torch.load too: leave them be
            return state
        name = next(iter(state))
        state[name] = state[name].clone()
        state[name].view(-1)[0] += 1
        return state

    monkeypatch.setattr(torch, "load", corrupting_load)
    with Scratch(tmp_path) as s:
        records = run_checkpoint(ctx(), s, CKPT_BYTES, repeats=1)
    got = by_case(records)
    for metric in ("bandwidth", "time"):
        load = got[("checkpoint-load-torch", metric)]
        assert load.status == "failed" and load.value is None and "different values" in load.reason
    assert not list(tmp_path.iterdir())


def test_dcp_unavailable_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint, "dcp_module", lambda: (None, "no torch.distributed in this build"))
    with Scratch(tmp_path) as s:
        records = run_checkpoint(ctx(), s, CKPT_BYTES, repeats=1)
    got = by_case(records)
    for case in ("checkpoint-save-dcp", "checkpoint-load-dcp"):
        assert got[(case, "bandwidth")].status == "skipped"
        assert got[(case, "bandwidth")].reason == "no torch.distributed in this build"
    assert got[("checkpoint-save-torch", "bandwidth")].status == "ok"


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_records(tmp_path: Path, workers: int) -> None:
    with Scratch(tmp_path) as s:
        records = run_dataloader(ctx(), s, SAMPLES, SAMPLE_BYTES, workers=[workers], repeats=2)
        folder = s.path
    assert not folder.exists()
    got = by_case(records)
    throughput = got[(f"dataloader-w{workers}", "throughput")]
    bandwidth = got[(f"dataloader-w{workers}", "bandwidth")]
    assert throughput.status == "ok" and bandwidth.status == "ok", throughput.reason
    assert throughput.unit == "samples/s" and bandwidth.unit == "MB/s"
    seconds = throughput.timing["samples_s"]
    assert len(seconds) == 2
    assert throughput.samples == pytest.approx([SAMPLES / t for t in seconds], rel=REL)
    assert bandwidth.samples == pytest.approx([SAMPLES * SAMPLE_BYTES / t / 1e6 for t in seconds], rel=REL)
    assert throughput.params == {"op": "dataloader", "workers": workers, "samples": SAMPLES,
                                 "sample_bytes": SAMPLE_BYTES, "batch_size": dataload.BATCH_SIZE, "repeats": 2}
    assert any(state in throughput.timing["cache"] for state in CACHE_STATES)


def test_dataloader_wrong_content_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_getitem = dataload.FileSamples.__getitem__

    def corrupt(self, index: int):
        i, tensor = real_getitem(self, index)
        return i, tensor + 1

    monkeypatch.setattr(dataload.FileSamples, "__getitem__", corrupt)
    with Scratch(tmp_path) as s:
        records = run_dataloader(ctx(), s, SAMPLES, SAMPLE_BYTES, workers=[0], repeats=1)
    assert all(r.status == "failed" and r.value is None and "first batch" in r.reason for r in records)


def test_write_samples_are_raw_float32(tmp_path: Path) -> None:
    with Scratch(tmp_path) as s:
        paths = dataload.write_samples(s, 3, SAMPLE_BYTES, seed=5)
        assert [p.parent.name for p in paths] == ["samples"] * 3
        assert all(p.stat().st_size == SAMPLE_BYTES for p in paths)
        data = torch.frombuffer(bytearray(paths[1].read_bytes()), dtype=torch.float32)
        assert torch.equal(data, torch.from_numpy(dataload.sample_values(5, 1, SAMPLE_BYTES)))
        with pytest.raises(ValueError):
            dataload.write_samples(s, 1, 5, seed=0)


def test_dcp_error_fails_both_dcp_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_load(dcp, target, folder):
        raise RuntimeError("disk vanished")

    if checkpoint.dcp_module()[0] is None:
        pytest.skip("torch.distributed.checkpoint is not in this torch build")
    monkeypatch.setattr(checkpoint, "_dcp_load", broken_load)
    with Scratch(tmp_path) as s:
        got = by_case(run_checkpoint(ctx(), s, CKPT_BYTES, repeats=2))
    for case in ("checkpoint-save-dcp", "checkpoint-load-dcp"):
        record = got[(case, "bandwidth")]
        assert record.status == "failed" and "disk vanished" in record.reason
    assert got[("checkpoint-load-torch", "bandwidth")].status == "ok"
    assert not list(tmp_path.iterdir())
