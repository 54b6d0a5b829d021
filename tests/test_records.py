from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ai_ready.errors import InputError
from ai_ready.fileio import atomic_write_text
from ai_ready.records import SCHEMA, VERSION, Record, ResultDocument, load_results, new_meta, records_frame


def sample_document() -> ResultDocument:
    ok = Record.from_samples([10.0, 12.0, 11.0], benchmark="gemm", case="square-64-fp32",
                             params={"shape": "square", "m": 64, "n": 64, "k": 64, "dtype": "fp32"},
                             metric="throughput", unit="TFLOP/s", rank=1, host="node7", device="cpu",
                             ceiling={"value": 20.0, "unit": "TFLOP/s", "kind": "declared"}, pct_of_ceiling=55.0)
    failed = Record(benchmark="gemm", case="square-64-bf16", params={"dtype": "bf16", "m": 64},
                    metric="throughput", unit="TFLOP/s", status="failed", reason="wrong result")
    return ResultDocument(meta=new_meta(["ai-ready", "bench", "gemm"], {"host": "node7"}), records=[ok, failed])


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    doc = sample_document()
    path = doc.save(tmp_path / "r.json")
    raw = json.loads(path.read_text())
    assert raw["schema"] == SCHEMA and raw["version"] == VERSION
    loaded = load_results(path)
    assert loaded.to_dict() == doc.to_dict()
    ok = loaded.records[0]
    assert ok.value == 11.0 and ok.stats["median"] == 11.0 and ok.samples == [10.0, 12.0, 11.0]
    assert (ok.rank, ok.host, ok.device) == (1, "node7", "cpu")


def test_loads_as_a_dataframe_with_flat_params(tmp_path: Path) -> None:
    frame = records_frame([sample_document(), sample_document()])
    assert len(frame) == 4
    assert {"benchmark", "metric", "unit", "value", "params.dtype", "params.m", "stats.median", "document"} <= set(frame.columns)
    assert list(frame["params.dtype"][:2]) == ["fp32", "bf16"]
    assert frame["value"].isna().sum() == 2  # failed records have no value


def test_record_invariants() -> None:
    with pytest.raises(ValueError):
        Record(benchmark="b", case="c", params={}, metric="m", unit="u")  # ok without value
    with pytest.raises(ValueError):
        Record(benchmark="b", case="c", params={}, metric="m", unit="u", status="failed")  # no reason
    with pytest.raises(ValueError):
        Record(benchmark="b", case="c", params={}, metric="m", unit="u", status="great", reason="x")


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "not valid JSON"),
        ('{"schema": "something-else", "version": 1, "records": []}', "not an ai-ready results document"),
        (f'{{"schema": "{SCHEMA}", "version": 99, "records": []}}', "newer than this ai-ready reads"),
        (f'{{"schema": "{SCHEMA}", "version": "one", "records": []}}', "invalid results version"),
        (f'{{"schema": "{SCHEMA}", "version": 1, "records": {{}}}}', "no list"),
        (f'{{"schema": "{SCHEMA}", "version": 1, "records": [{{"benchmark": "x"}}]}}', "malformed record"),
    ],
)
def test_malformed_files_are_input_errors(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=fragment):
        load_results(path)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_results(tmp_path / "nope.json")


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert os.listdir(target.parent) == ["r.json"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    sample_document().save(target)
    before = target.read_text()
    doc = sample_document()
    doc.records[0].params["bad"] = object()  # not JSON-serialisable: fails before anything is renamed
    with pytest.raises(TypeError):
        doc.save(target)
    assert target.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["r.json"]


def test_interrupted_write_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    atomic_write_text(target, "complete")

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "half-written")
    assert target.read_text() == "complete"
    assert os.listdir(tmp_path) == ["r.json"]


def test_new_files_get_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "shared.json", "{}")
        assert path.stat().st_mode & 0o777 == 0o644  # readable by colleagues, not mkstemp's 0600
        path.chmod(0o640)
        atomic_write_text(path, "{}")
        assert path.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode
    finally:
        os.umask(umask)


def test_result_sink_throttles_saves_but_finish_always_saves(tmp_path: Path) -> None:
    from conftest import FakeClock
    from ai_ready.bench.runner import ResultSink

    clock = FakeClock()
    path = tmp_path / "r.json"
    sink = ResultSink(path, new_meta(), min_interval_s=2.0, clock=clock)
    record = sample_document().records[0]
    sink.add([record])  # first add saves
    assert len(load_results(path).records) == 1
    clock.advance(1.0)
    sink.add([record])  # within the interval: kept in memory only
    assert len(load_results(path).records) == 1
    clock.advance(1.5)
    sink.add([record])  # interval passed: saved with everything so far
    assert len(load_results(path).records) == 3
    sink.add([record])
    sink.finish("interrupted")
    doc = load_results(path)
    assert len(doc.records) == 4 and doc.meta["status"] == "interrupted"
