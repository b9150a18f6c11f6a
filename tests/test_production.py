"""Production setups: PgBouncer in both pooling modes, replicas migrating at once."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from campaign_sync.db import migrate
from campaign_sync.db.models import sync_runs
from campaign_sync.db.session import make_engine
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.conftest import API_KEY, CANARY_REST_KEY
from tests.pgbouncer import PgBouncer
from tests.syncing import by_type, count, run_sync
from tests.test_cli import cli_env

PUSH_ONLY = ("push",)


@pytest.fixture(scope="module", params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, pg_server: Any) -> Iterator[PgBouncer]:
    server = PgBouncer(pg_server.admin_url, request.param)
    yield server
    server.stop()


@pytest.fixture
def bounced_url(bouncer: PgBouncer, pg_server: Any) -> Iterator[str]:
    """A fresh migrated database, reached through PgBouncer."""
    direct = pg_server.create_database()
    url = bouncer.url(direct.rsplit("/", 1)[1])
    migrate.upgrade(url)
    yield url
    pg_server.drop_database(direct)


def test_150_campaigns_sync_through_pgbouncer_again_and_again(bounced_url: str) -> None:
    simulator = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=150, in_app=3, seed=9)
    with SimulatorServer(simulator) as server:
        for attempt in range(5):  # locks must never outlive the pass that took them
            results = by_type(run_sync(bounced_url, server))
            assert {r.status for r in results.values()} == {"succeeded"}, (attempt, results)
    engine = make_engine(bounced_url)
    assert count(engine, "select count(*) from campaigns") == 153
    assert count(engine, "select count(*) from sync_state where lock_holder is not null") == 0
    engine.dispose()


def test_two_processes_through_pgbouncer_never_sync_the_same_pair_at_once(
    bounced_url: str,
) -> None:
    slow = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=300, in_app=0, seed=8)
    slow.knobs.latency_seconds = 0.04
    with SimulatorServer(slow) as server:
        env = cli_env(bounced_url, server)
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "campaign_sync", "sync", "--type", "push"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    skipped = sum(
        out.count("default/push: skipped (another process holds it") for out, _ in outputs
    )
    assert skipped == 1, outputs
    engine = make_engine(bounced_url)
    with engine.connect() as conn:
        spans = conn.execute(
            select(sync_runs.c.started_at, sync_runs.c.finished_at).order_by(sync_runs.c.id)
        ).all()
        skipped_at = conn.execute(select(text_column("last_skipped_at"))).scalar()
    engine.dispose()
    assert len(spans) == 1 and skipped_at is not None
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        assert second_start >= first_end


def text_column(name: str) -> Any:
    from campaign_sync.db.models import sync_state

    return sync_state.c[name]


def test_statements_never_depend_on_one_server_connection(bounced_url: str) -> None:
    """In transaction pooling each transaction may run on another server connection: a
    statement prepared on one is unknown (or already known) on the next."""
    from sqlalchemy import text

    engine = make_engine(bounced_url)
    try:
        with engine.connect() as first, engine.connect() as second:
            for _ in range(8):  # psycopg prepares a statement after 5 runs by default
                first.execute(text("select count(*) from campaigns where app = :a"), {"a": "x"})
                first.commit()
            second.execute(text("select 1"))  # holds the server connection `first` used
            for _ in range(3):
                first.execute(text("select count(*) from campaigns where app = :a"), {"a": "x"})
                first.commit()
            second.commit()
    finally:
        engine.dispose()
