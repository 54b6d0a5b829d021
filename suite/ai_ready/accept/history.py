"""The acceptance history: every run with its system, nodes, date, versions, records and verdicts.

SQLAlchemy Core over SQLite (the default: one file, nothing to start) or PostgreSQL (``postgresql://``
or ``postgresql+psycopg://``). A run is written in one transaction, so a run killed mid-write leaves
nothing behind and readers never see half a run. SQLite writers take the write lock when their
transaction begins (``BEGIN IMMEDIATE``) and wait up to :data:`SQLITE_BUSY_TIMEOUT_S` for it, so two
runs finishing at once are written one after the other and both land. The rollback journal is kept
(not WAL) because WAL needs shared memory that network file systems, where such files often live, do
not provide. PostgreSQL serialises schema creation with an advisory lock. Opening for writing inserts a row
and rolls it back, so a history that cannot be written is refused before a suite is measured, not after.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlalchemy import (JSON, Boolean, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text,
                        create_engine, event, func, insert, select, text)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ai_ready.accept.detect import HORIZON_NIGHTS, Night
from ai_ready.errors import InputError

#: Version of the tables below; bump it (and add a migration to MIGRATIONS) when a column changes meaning.
SCHEMA_VERSION = 1
#: Seconds a SQLite writer waits for another writer's transaction before giving up.
SQLITE_BUSY_TIMEOUT_S = 120.0
#: Records inserted per statement (executemany); a run of any size is still one transaction.
INSERT_BATCH = 500
#: Test hook only: the path of a file to create once part of a run's records are inserted, after which
#: the writer sleeps inside its open transaction, so a test can kill it mid-write.
PAUSE_ENV = "AI_READY_TEST_PAUSE_MID_WRITE"
PAUSE_S = 600.0
#: The schema version the write check inserts and rolls back; no real version is ever negative.
PROBE_VERSION = -1
#: Advisory-lock key serialising schema creation on PostgreSQL ("AIRA" in ASCII).
PG_SCHEMA_LOCK = 0x41495241
DEFAULT_URL = "sqlite:///reports/accept-history.sqlite"
ACCEPTED_URLS = "sqlite:///PATH, postgresql://USER@HOST/DB or postgresql+psycopg://..."

metadata = MetaData()

schema_table = Table("accept_schema", metadata, Column("version", Integer, primary_key=True))

runs = Table(
    "accept_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(36), nullable=False, unique=True),
    Column("system", String(128), nullable=False, index=True),
    Column("partition", String(128), nullable=False, default=""),
    Column("gpu_model", String(128), nullable=False, default=""),
    Column("suite", String(128), nullable=False, index=True),
    Column("started", DateTime(timezone=True), nullable=False, index=True),
    Column("finished", DateTime(timezone=True)),
    Column("nodes", JSON, nullable=False),
    Column("versions", JSON, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("meta", JSON, nullable=False),
)

records = Table(
    "accept_records", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("accept_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("benchmark", String(128), nullable=False),
    Column("case_name", String(256), nullable=False),
    Column("metric", String(128), nullable=False),
    Column("unit", String(64), nullable=False),
    Column("host", String(256), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("value", Float),
    Column("record", JSON, nullable=False),
)

verdicts = Table(
    "accept_verdicts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("accept_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("metric", String(256), nullable=False, index=True),
    Column("node", String(256), nullable=False),
    Column("benchmark", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("regression", Boolean, nullable=False),
    Column("value", Float),
    Column("unit", String(64), nullable=False),
    Column("samples", JSON, nullable=False),
    Column("reference", JSON),
    Column("findings", JSON, nullable=False),
)

baselines = Table(
    "accept_baselines", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("system", String(128), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("document", Text, nullable=False),
)


# --------------------------------------------------------------------------- opening

def open_history(url: str, write: bool = True) -> Engine:
    """An engine on `url` with the tables in place, checked writable unless only `write=False` reading is
    wanted; every problem is one InputError line (exit 2), found before anything is measured."""
    engine = _engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SCHEMA_LOCK})
            metadata.create_all(conn)
            version = conn.execute(select(func.max(schema_table.c.version))).scalar()
            if version is None:
                conn.execute(insert(schema_table), {"version": SCHEMA_VERSION})
            elif version > SCHEMA_VERSION:
                raise InputError(f"--db {shown}: history schema version {version} is newer than this ai-ready "
                                 f"reads ({SCHEMA_VERSION}); upgrade ai-ready")
    except SQLAlchemyError as exc:
        engine.dispose()
        raise InputError(f"--db {shown}: cannot open the history database: {_one_line(exc)}") from None
    if write:
        _check_writable(engine, shown)
    return engine


def _check_writable(engine: Engine, shown: str) -> None:
    """Insert a row and roll it back: a read-only file or folder, role or server refuses it now, not when the
    run is stored after the whole suite has run (opening and reading succeed on all of them)."""
    try:
        with engine.connect() as conn:
            conn.begin()
            conn.execute(insert(schema_table), {"version": PROBE_VERSION})
            conn.rollback()
    except SQLAlchemyError as exc:
        engine.dispose()
        raise InputError(f"--db {shown}: the history database is not writable by this user: {_one_line(exc)}; "
                         "accepted: a database this user may write (for SQLite, its file and its folder)") from None


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(f"--db {url!r} is not a database URL; accepted: {ACCEPTED_URLS}") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.get_driver_name() in ("psycopg2", "postgresql", "postgres") or "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise InputError("--db postgresql://... needs psycopg: pip install 'ai-ready[postgres]'") from None
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise InputError(f"--db: {_one_line(exc)}; accepted: {ACCEPTED_URLS}") from None
    if backend != "sqlite" or parsed.get_driver_name() not in ("pysqlite", "sqlite"):
        raise InputError(f"--db {parsed.render_as_string(hide_password=True)}: unsupported database "
                         f"'{parsed.drivername}'; accepted: {ACCEPTED_URLS}")
    if not parsed.database or parsed.database == ":memory:":
        raise InputError("--db: an in-memory SQLite database keeps no history; accepted: sqlite:///PATH to a file")
    path = Path(parsed.database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--db {url}: cannot create the folder {path.parent} ({exc.strerror or exc})") from None
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Let SQLAlchemy's `begin` event issue BEGIN itself (pysqlite would defer it to the first write)."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Take the write lock up front: two deferred transactions that both read and then write would deadlock."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _one_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None)
    return " ".join(str(original if original is not None else exc).split())


def describe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


# --------------------------------------------------------------------------- writing

@dataclass
class RunRow:
    """Everything stored about one run."""

    system: str
    partition: str
    gpu_model: str
    suite: str
    started: datetime
    finished: datetime | None
    nodes: list[str]
    versions: dict[str, Any]
    outcome: str
    meta: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


def store_run(engine: Engine, run: RunRow) -> int:
    """Write the run, its records and its verdicts in one transaction; returns the run's id."""
    try:
        with engine.begin() as conn:
            run_id = conn.execute(insert(runs).returning(runs.c.id), {
                "uid": run.uid, "system": run.system, "partition": run.partition, "gpu_model": run.gpu_model,
                "suite": run.suite, "started": run.started, "finished": run.finished, "nodes": run.nodes,
                "versions": run.versions, "outcome": run.outcome, "meta": run.meta}).scalar_one()
            for index, batch in enumerate(_batches([_record_row(run_id, r) for r in run.records], INSERT_BATCH)):
                conn.execute(insert(records), batch)
                if index == 0:
                    _pause_for_tests()
            rows = [_verdict_row(run_id, v) for v in run.verdicts]
            for batch in _batches(rows, INSERT_BATCH):
                conn.execute(insert(verdicts), batch)
    except SQLAlchemyError as exc:
        raise InputError(f"--db {describe_url(engine)}: could not store the run: {_one_line(exc)}") from None
    return int(run_id)


def _record_row(run_id: int, record: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "benchmark": record["benchmark"], "case_name": record["case"], "metric": record["metric"],
            "unit": record["unit"], "host": record.get("host") or "", "rank": int(record.get("rank") or 0),
            "status": record["status"], "value": record.get("value"), "record": record}


def _verdict_row(run_id: int, verdict: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, **{key: verdict[key] for key in (
        "metric", "node", "benchmark", "outcome", "regression", "value", "unit", "samples", "reference", "findings")}}


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _pause_for_tests() -> None:
    marker = os.environ.get(PAUSE_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()))
        time.sleep(PAUSE_S)


# --------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class PastNight:
    """One stored verdict: a metric's figure on one node in one past run."""

    run_id: int
    started: datetime
    node: str
    outcome: str
    regression: bool
    value: float | None
    unit: str
    samples: tuple[float, ...]

    def night(self) -> Night:
        return Night(run_id=self.run_id, started=_date_text(self.started), value=float(self.value or 0.0),
                     samples=self.samples, flagged=self.regression)


def _date_text(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if when.tzinfo else when.strftime("%Y-%m-%d %H:%M")


@dataclass
class PastRuns:
    """The last runs of one system and suite, and per metric the stored figures of every node."""

    runs: list[dict[str, Any]]
    by_metric: dict[str, list[PastNight]]

    def nights(self, metric: str, node: str, unit: str | None = None) -> list[Night]:
        """This node's past figures of `metric`, oldest first: measured ones, in `unit` if given (a suite
        whose metric changed its unit starts a new history rather than compare apples with pears)."""
        return [p.night() for p in self.by_metric.get(metric, [])
                if p.node == node and p.value is not None and unit in (None, p.unit)]

    def fleet(self, metric: str, unit: str | None = None) -> list[Night]:
        """Per past run, the median over its nodes; flagged when most of its nodes were."""
        import statistics

        grouped: dict[int, list[PastNight]] = {}
        for p in self.by_metric.get(metric, []):
            if p.value is not None and unit in (None, p.unit):
                grouped.setdefault(p.run_id, []).append(p)
        out = []
        for run_id, nights in grouped.items():
            out.append(Night(run_id=run_id, started=_date_text(nights[0].started),
                             value=float(statistics.median(n.value for n in nights if n.value is not None)),
                             samples=(), flagged=sum(n.regression for n in nights) * 2 > len(nights)))
        return sorted(out, key=lambda n: (n.started, n.run_id))


def load_past(engine: Engine, system: str, partition: str, suite: str, horizon: int = HORIZON_NIGHTS,
              before_uid: str | None = None) -> PastRuns:
    """The last `horizon` runs of this system, partition and suite, oldest first, with their verdicts."""
    try:
        with engine.connect() as conn:
            query = (select(runs).where(runs.c.system == system, runs.c.partition == partition, runs.c.suite == suite)
                     .order_by(runs.c.started.desc(), runs.c.id.desc()).limit(horizon))
            if before_uid is not None:
                query = query.where(runs.c.uid != before_uid)
            past = [dict(row._mapping) for row in conn.execute(query)][::-1]
            ids = [r["id"] for r in past]
            started = {r["id"]: r["started"] for r in past}
            by_metric: dict[str, list[PastNight]] = {}
            if ids:
                rows = conn.execute(select(verdicts).where(verdicts.c.run_id.in_(ids)))
                for row in rows:
                    by_metric.setdefault(row.metric, []).append(PastNight(
                        run_id=row.run_id, started=started[row.run_id], node=row.node, outcome=row.outcome,
                        regression=bool(row.regression), value=row.value, unit=row.unit,
                        samples=tuple(float(s) for s in (row.samples or ()))))
            order = {run_id: index for index, run_id in enumerate(ids)}
            for nights in by_metric.values():
                nights.sort(key=lambda p: order[p.run_id])
    except SQLAlchemyError as exc:
        raise InputError(f"--db {describe_url(engine)}: cannot read the history: {_one_line(exc)}") from None
    return PastRuns(runs=past, by_metric=by_metric)


def count_runs(engine: Engine, system: str | None = None) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(runs)
        if system is not None:
            query = query.where(runs.c.system == system)
        return int(conn.execute(query).scalar_one())


# --------------------------------------------------------------------------- baselines

def store_baseline(engine: Engine, name: str, system: str, document: str) -> None:
    """Keep a named baseline in the database (replacing one of the same name), for `accept --baseline NAME`."""
    try:
        with engine.begin() as conn:
            conn.execute(baselines.delete().where(baselines.c.name == name))
            conn.execute(insert(baselines), {"name": name, "system": system, "created": datetime.now(timezone.utc),
                                             "document": document})
    except SQLAlchemyError as exc:
        raise InputError(f"--db {describe_url(engine)}: could not store baseline '{name}': {_one_line(exc)}") from None


def load_baseline(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        row = conn.execute(select(baselines.c.document).where(baselines.c.name == name)).first()
    return None if row is None else str(row[0])


def baseline_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(select(baselines.c.name).order_by(baselines.c.name))]


def suites_of(engine: Engine, system: str, partition: str) -> list[str]:
    with engine.connect() as conn:
        query = select(runs.c.suite).where(runs.c.system == system, runs.c.partition == partition).distinct()
        return sorted(str(r[0]) for r in conn.execute(query))


def all_runs(engine: Engine, system: str | None = None) -> Sequence[dict[str, Any]]:
    """Every run (for tests and tools), oldest first."""
    with engine.connect() as conn:
        query = select(runs).order_by(runs.c.started, runs.c.id)
        if system is not None:
            query = query.where(runs.c.system == system)
        return [dict(r._mapping) for r in conn.execute(query)]


def record_counts(engine: Engine) -> dict[int, int]:
    """Records stored per run id."""
    with engine.connect() as conn:
        rows = conn.execute(select(records.c.run_id, func.count()).group_by(records.c.run_id))
        return {int(run_id): int(count) for run_id, count in rows}
