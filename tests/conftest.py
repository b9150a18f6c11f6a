"""Fixtures: a real PostgreSQL database per session (SQLite where asked), the Batch
simulator on a real loopback port, and a canary REST key that must never reach a log."""

from __future__ import annotations

import logging
import shutil
import signal
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from campaign_sync.config import ResolvedApp, Settings
from campaign_sync.db import migrate
from campaign_sync.db.models import metadata
from campaign_sync.db.session import make_engine
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.pg import PostgresServer

# A suite started in the background by a non-interactive shell (`pytest &`, some CI
# runners) inherits SIGINT ignored, and so would every command line it starts: the tests
# of what a Ctrl-C does would see none. A handler of Python's own in this process makes
# the children start with SIGINT's default, as from a terminal (an exec resets a caught
# signal to the default, but keeps an ignored one ignored).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Likewise SIGHUP under `nohup pytest`: commands would take it for `nohup` and go on where
# the tests send it. Caught and dropped here, this process still outlives its terminal,
# and its children start with SIGHUP's default.
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, lambda signum, frame: None)

CANARY_REST_KEY = "canary-REST-key-d41d8cd98f00b204"
API_KEY = "live-api-key-9e107d9d372bb682"
SETTINGS_ENV = (
    "DATABASE_URL",
    "CAMPAIGN_SYNC_DB_SCHEMA",
    "BATCH_API_KEY",
    "BATCH_REST_API_KEY",
    "BATCH_API_BASE_URL",
    "CAMPAIGN_SYNC_CONFIG",
    "CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS",
    "CAMPAIGN_SYNC_CONCURRENCY",
    "CAMPAIGN_SYNC_DETAIL_MAX_AGE_SECONDS",
    "CAMPAIGN_SYNC_INTERVAL_SECONDS",
    "CAMPAIGN_SYNC_METRICS_PORT",
    "CAMPAIGN_SYNC_METRICS_HOST",
    "CAMPAIGN_SYNC_LOG_LEVEL",
    "CAMPAIGN_SYNC_SECRETS_DIR",
    "BATCH_REST_API_KEY_FILE",
)


class _Collector(logging.Handler):
    """Keeps every log line of the session, to prove no secret is ever logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


LOG_COLLECTOR = _Collector()


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(LOG_COLLECTOR)
    root.setLevel(logging.INFO)


def leaked_secret_lines() -> list[str]:
    return [line for line in LOG_COLLECTOR.lines if CANARY_REST_KEY in line or API_KEY in line]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = leaked_secret_lines()
    if leaks:
        print(f"\nSECRET LEAK: {len(leaks)} log line(s) carry a key, first: {leaks[0][:300]}")
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    # Settings read a .env in the working directory: a developer's own must not leak in.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """In-process commands attach a log handler to CliRunner's stderr: detach it after."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_campaign_sync", False):
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.find_or_start()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_session_url(pg_server: PostgresServer) -> Iterator[str]:
    url = pg_server.create_database()
    migrate.upgrade(url)
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def pg_url(pg_session_url: str) -> Iterator[str]:
    """The session database, emptied before each test."""
    engine = make_engine(pg_session_url)
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"truncate {tables} restart identity cascade"))
    engine.dispose()
    yield pg_session_url


@pytest.fixture
def fresh_pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A brand-new empty database (for migration tests)."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per test process, its WAL folded into the file."""
    path = tmp_path_factory.mktemp("sqlite-template") / "campaign_sync.db"
    migrate.upgrade(f"sqlite:///{path}")
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("pragma wal_checkpoint(truncate)")
    return path


@pytest.fixture
def sqlite_url(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> str:
    """A migrated SQLite database of the test's own: a copy of `sqlite_template` (the
    migrations ran for each test before, about 100 times a suite)."""
    path = tmp_path_factory.mktemp("sqlite") / "campaign_sync.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    fixture = "pg_url" if request.param == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def db(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def any_db(any_db_url: str) -> Iterator[Engine]:
    engine = make_engine(any_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    yield Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=60, in_app=40, seed=7)


@pytest.fixture
def sim_server(simulator: Simulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(simulator) as server:
        yield server


def make_settings(base_url: str, database_url: str = "sqlite://", **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "batch_api_base_url": base_url,
        "backoff_min_seconds": 0.05,
        "backoff_max_seconds": 0.5,
        "retry_max_attempts": 6,
        "retry_max_seconds": 30,
        "retry_backoff_initial_seconds": 0.02,
        "retry_backoff_max_seconds": 0.2,
        "read_timeout_seconds": 5,
        "connect_timeout_seconds": 2,
        "rate_start_per_second": 200,  # no slow start: tests of pacing set their own
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_app(name: str = "default", api_key: str = API_KEY, concurrency: int = 8) -> ResolvedApp:
    from pydantic import SecretStr

    return ResolvedApp(
        name=name,
        api_key=api_key,
        rest_api_key=SecretStr(CANARY_REST_KEY),
        interval_seconds=300,
        concurrency=concurrency,
    )
