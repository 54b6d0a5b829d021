"""The command line as users meet it: real commands, real files, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import mpiexec, run_cli
from ai_ready.bench import gemm
from ai_ready.cli import main
from ai_ready.records import load_results

FAST = ["--warmup", "0.01", "--min-time", "0.05"]


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ai-ready: error:") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "info", "--json")
    env = json.loads(out)
    assert code == 0
    assert env["device"]["kind"] in ("cpu", "cuda")
    assert env["launcher"]["world_size"] >= 1 and env["versions"]["torch"]
    assert env["cpu"]["cores_logical"] >= 1


def test_info_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "info")
    assert code == 0 and "launcher" in out and "torch" in out


def test_gemm_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = tmp_path / "r.json"
    code, _, err = call(capsys, "bench", "gemm", "--sizes", "64,48x32x16", "--llm", "none",
                        "--dtype", "fp32,bf16", *FAST, "-o", str(result))
    assert code == 0, err
    doc = load_results(result)
    assert doc.meta["status"] == "complete" and doc.meta["environment"]["device"]["kind"] == "cpu"
    assert [r.case for r in doc.records] == ["square-64-fp32", "gemm-48x32x16-fp32", "square-64-bf16",
                                             "gemm-48x32x16-bf16"]
    for record in doc.records:
        assert record.status == "ok" and record.check["passed"]
        if record.ceiling is not None:  # the CPU peak is declared when the clock is known
            assert record.ceiling["kind"] == "declared" and "assumption" in record.ceiling["source"]
    html = tmp_path / "r.html"
    code, _, err = call(capsys, "report", str(result), "-o", str(html))
    assert code == 0, err
    text = html.read_text()
    assert "square-64-fp32" in text or "64" in text
    assert "<html" in text.lower()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["bench", "gemm", "--dtype", "fp99"], ["fp99", "accepted: fp32, tf32, bf16, fp16, fp8"]),
        (["bench", "gemm", "--sizes", "0"], ["invalid size '0'", "accepted"]),
        (["bench", "gemm", "--sizes", "10000000", "--dtype", "fp32"], ["needs", "GB", "accepted"]),
        (["bench", "gemm", "--llm", "big"], ["invalid LLM shape 'big'"]),
        (["bench", "gemm", "--device", "tpu"], ["--device tpu", "accepted"]),
        (["bench", "gemm", "--warmup", "-1"], ["--warmup"]),
        (["bench", "gemm", "--frobnicate"], ["--frobnicate"]),
        (["bench", "nosuch"], ["nosuch"]),
        (["systems", "show", "nosuch"], ["unknown system 'nosuch'", "dgx-h100"]),
        (["report"], ["INPUTS"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], args: list[str],
                                          fragments: list[str]) -> None:
    code, _, err = call(capsys, *args)
    assert_one_line_error(code, err, *fragments)


def test_report_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*call(capsys, "report", str(tmp_path / "missing.json"))[::2], "does not exist")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "ai-ready/results", "version": 1, "records": [')
    assert_one_line_error(*call(capsys, "report", str(bad))[::2], "not valid JSON")
    good = tmp_path / "empty.json"
    good.write_text('{"schema": "ai-ready/results", "version": 1, "meta": {}, "records": []}')
    assert_one_line_error(*call(capsys, "report", str(good), "-o", str(tmp_path / "r.txt"))[::2], ".html")


def test_output_path_that_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "bench", "gemm", "--sizes", "32", "-o", str(tmp_path))
    assert_one_line_error(code, err, "is a folder")


def test_failed_case_exits_1_and_keeps_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real = gemm.make_operands

    def broken_bf16(case, device, generator):
        ops = real(case, device, generator)
        if case.dtype == "bf16":
            ops.call = lambda: ops.out.fill_(0.0)
        return ops

    monkeypatch.setattr(gemm, "make_operands", broken_bf16)
    result = tmp_path / "r.json"
    code, _, err = call(capsys, "bench", "gemm", "--sizes", "64", "--dtype", "fp32,bf16", *FAST, "-o", str(result))
    assert code == 1 and "1 case(s) failed" in err
    statuses = {r.case: r.status for r in load_results(result).records}
    assert statuses == {"square-64-fp32": "ok", "square-64-bf16": "failed"}


def test_interrupt_keeps_finished_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = gemm.run_case
    seen = []

    def interrupted_second(case, ctx, ceiling):
        seen.append(case)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(case, ctx, ceiling)

    monkeypatch.setattr(gemm, "run_case", interrupted_second)
    result = tmp_path / "r.json"
    code, _, err = call(capsys, "bench", "gemm", "--sizes", "32,48", "--dtype", "fp32", *FAST, "-o", str(result))
    assert code == 130 and "interrupted" in err
    doc = load_results(result)
    assert doc.meta["status"] == "interrupted"
    assert [r.case for r in doc.records] == ["square-32-fp32"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary files left


def test_real_process_has_no_traceback() -> None:
    proc = run_cli("bench", "gemm", "--dtype", "fp99")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_help_everywhere() -> None:
    for args in (["--help"], ["bench", "--help"], ["bench", "gemm", "--help"], ["systems", "show", "--help"],
                 ["report", "--help"], ["info", "--help"]):
        proc = run_cli(*args)
        assert proc.returncode == 0 and "Usage:" in proc.stdout, args


@pytest.mark.skipif(mpiexec() is None, reason="no mpiexec: install the [test] extra (mpich wheel)")
def test_two_mpi_ranks_run_identical_plans(tmp_path: Path) -> None:
    """Real `mpiexec -n 2`: both ranks measured, rank 0 wrote both, same iteration counts."""
    import subprocess
    import sys

    from conftest import cli_env

    result = tmp_path / "mpi.json"
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "ai_ready", "--quiet", "bench", "gemm",
                           "--sizes", "64,96", "--dtype", "fp32", "--llm", "none", *FAST, "-o", str(result)],
                          capture_output=True, text=True, timeout=240, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    doc = load_results(result)
    assert doc.meta["environment"]["launcher"]["world_size"] == 2
    by_case: dict[str, dict[int, dict]] = {}
    for r in doc.records:
        assert r.status == "ok"
        by_case.setdefault(r.case, {})[r.rank] = r.timing
    assert set(by_case) == {"square-64-fp32", "square-96-fp32"}
    for timings in by_case.values():
        assert set(timings) == {0, 1}
        plan = {k: timings[0][k] for k in ("inner", "samples", "warmup_calls", "calibration_calls")}
        assert plan == {k: timings[1][k] for k in plan}


def test_two_torchrun_ranks_over_gloo(tmp_path: Path) -> None:
    """Real `torchrun --nproc-per-node 2`: the torch.distributed path gives the same guarantees as MPI."""
    import subprocess
    import sys

    from conftest import cli_env

    result = tmp_path / "torchrun.json"
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "ai_ready", "--quiet", "bench", "gemm", "--sizes", "64", "--dtype", "fp32",
               "--llm", "none", *FAST, "-o", str(result)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    first_failure = ""
    if proc.returncode != 0:  # a rare failed launch seen once in ~20 full runs: one retry, both logs kept
        first_failure = proc.stderr[-2000:]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, f"first attempt:\n{first_failure}\nretry:\n{proc.stderr[-2000:]}"
    doc = load_results(result)
    assert doc.meta["environment"]["launcher"]["name"] == "torchrun"
    timings = {r.rank: r.timing for r in doc.records}
    assert set(timings) == {0, 1} and all(r.status == "ok" for r in doc.records)
    assert timings[0]["samples"] == timings[1]["samples"] and timings[0]["inner"] == timings[1]["inner"]


def test_malformed_user_catalog_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ai_ready.catalog import clear_cache

    systems = tmp_path / "systems"
    systems.mkdir()
    (systems / "my-node.yaml").write_text("schema: ai-ready/catalog-system\nversion: 1\nname: my-node\n"
                                          "accelerator: h100-sxm\nnodes: {value: 1}\n")
    monkeypatch.setenv("AI_READY_CATALOG_PATH", str(tmp_path))
    clear_cache()
    try:
        code, _, err = call(capsys, "systems", "list")
    finally:
        clear_cache()
    assert_one_line_error(code, err, "my-node.yaml")


def test_the_command_list_shows_each_commands_own_help_line() -> None:
    from ai_ready.cli import COMMANDS, command

    for name, (_, _, _, short) in COMMANDS.items():
        assert short == command(name).get_short_help_str(limit=10**6), name


NO_TORCH = """
import sys
from ai_ready.cli import cli
try:
    cli.main(args=sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print("TORCH" if "torch" in sys.modules else "NO TORCH", file=sys.stderr)
"""


@pytest.mark.parametrize("args", [
    ["--help"], ["systems", "list"], ["systems", "show", "local"], ["validate"],
    ["extrapolate", "examples/workloads/gpt3-175b.yaml", "--system", "dgx-h100", "--nodes", "64"],
])
def test_commands_that_measure_nothing_do_not_import_torch(args: list[str]) -> None:
    import subprocess
    import sys

    from conftest import REPO, cli_env
    from ai_ready.env.detect import gpu_driver_present

    if gpu_driver_present() and args[:2] == ["systems", "show"]:
        pytest.skip("with a GPU driver present, describing `local` asks torch for the device")
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *args], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "NO TORCH", proc.stderr[-2000:]
