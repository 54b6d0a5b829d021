"""The acceptance history database: round trips, concurrent writers, a writer killed mid-write,
bad URLs, on SQLite and on a real PostgreSQL server (tests/helpers/postgres.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ai_ready.accept import history
from ai_ready.accept.history import (PAUSE_ENV, all_runs, load_past, open_history, record_counts, store_baseline,
                                     load_baseline, store_run)
from ai_ready.errors import InputError
from conftest import REPO, cli_env
from helpers.accept_writer import synthetic_run, verdict
from helpers.postgres import fresh_database, postgres_url  # noqa: F401  (fixture)

WRITER = REPO / "tests" / "helpers" / "accept_writer.py"
#: Runs and records each concurrent writer stores: enough batches that the two writers interleave.
WRITER_RUNS = 15
WRITER_RECORDS = 1200
#: Records of the run killed mid-write: more than one insert batch, so part of them is in when it dies.
KILLED_RECORDS = history.INSERT_BATCH * 3
PAUSE_WAIT_S = 120


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'history.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    server = request.getfixturevalue("postgres_url")
    return fresh_database(server, f"t{os.getpid()}_{abs(hash(request.node.name)) % 10**8}")


def test_a_run_round_trips_with_its_records_and_verdicts(db_url: str) -> None:
    engine = open_history(db_url)
    rows = [verdict("m1", "node01", 10.0 + i, [10.0 + i] * 3) for i in range(1)]
    for night in range(3):
        store_run(engine, synthetic_run(f"r{night}", 7, night=night, verdicts=[
            verdict("m1", "node01", 10.0 + night, [10.0 + night] * 3, regression=night == 1)]))
    runs = all_runs(engine)
    assert [r["meta"]["tag"] for r in runs] == ["r0", "r1", "r2"]
    assert set(record_counts(engine).values()) == {7}
    past = load_past(engine, "local", "", "synthetic", horizon=2)
    assert [n.value for n in past.nights("m1", "node01")] == [11.0, 12.0]  # the last two, oldest first
    assert [n.flagged for n in past.nights("m1", "node01")] == [True, False]
    assert past.nights("m1", "node01")[0].samples == (11.0, 11.0, 11.0)
    assert rows  # the helper builds verdict rows the table accepts
    engine.dispose()


def test_schema_creation_is_idempotent_and_baselines_are_kept_by_name(db_url: str) -> None:
    for _ in range(2):
        open_history(db_url).dispose()
    engine = open_history(db_url)
    store_baseline(engine, "good", "local", "a: 1\n")
    store_baseline(engine, "good", "local", "a: 2\n")
    assert load_baseline(engine, "good") == "a: 2\n"
    assert load_baseline(engine, "missing") is None
    engine.dispose()


def _writer(url: str, tag: str, runs: int, records: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WRITER), url, tag, str(runs), str(records)], env=env or cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_writing_at_once_lose_nothing(db_url: str) -> None:
    open_history(db_url).dispose()  # the schema exists; both writers race on the runs themselves
    writers = [_writer(db_url, tag, WRITER_RUNS, WRITER_RECORDS) for tag in ("a", "b")]
    for proc in writers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    engine = open_history(db_url)
    tags = sorted(r["meta"]["tag"] for r in all_runs(engine))
    assert tags == sorted(f"{t}-{i}" for t in ("a", "b") for i in range(WRITER_RUNS))
    counts = record_counts(engine)
    assert len(counts) == 2 * WRITER_RUNS and set(counts.values()) == {WRITER_RECORDS}
    engine.dispose()


def test_two_processes_creating_the_schema_at_once_both_succeed(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    writers = [_writer(url, tag, 2, 10) for tag in ("a", "b")]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    engine = open_history(url)
    assert len(all_runs(engine)) == 4
    engine.dispose()


def test_a_writer_killed_mid_write_leaves_no_partial_run(db_url: str, tmp_path: Path) -> None:
    engine = open_history(db_url)
    store_run(engine, synthetic_run("before", 5))
    marker = tmp_path / "paused"
    env = dict(cli_env(), **{PAUSE_ENV: str(marker)})
    proc = _writer(db_url, "killed", 1, KILLED_RECORDS, env=env)
    deadline = time.monotonic() + PAUSE_WAIT_S
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the writer never reached the middle of its transaction"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    store_run(engine, synthetic_run("after", 5, night=1))  # the next run writes fine (no lock left behind)
    tags = [r["meta"]["tag"] for r in all_runs(engine)]
    assert tags == ["before", "after"]
    assert sorted(record_counts(engine).values()) == [5, 5]
    engine.dispose()


@pytest.mark.parametrize("url, words", [
    ("not a url", "is not a database URL"),
    ("mysql://u@h/db", "unsupported database"),
    ("sqlite://", "in-memory"),
    ("sqlite:///:memory:", "in-memory"),
])
def test_unusable_urls_are_one_line_input_errors(url: str, words: str) -> None:
    with pytest.raises(InputError, match=words) as info:
        open_history(url)
    assert "\n" not in str(info.value)


def test_an_unreachable_postgresql_server_is_an_input_error_without_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://user:s3cret@/db?host={tmp_path}&port=1"
    with pytest.raises(InputError, match="cannot open the history database") as info:
        open_history(url)
    assert "s3cret" not in str(info.value)


def test_a_file_that_is_not_a_database_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(InputError, match="cannot open the history database"):
        open_history(f"sqlite:///{path}")
