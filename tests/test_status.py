"""`campaign-sync status`: one spelling of the type, an honest next pass, and a clear word
on a database that has no schema yet."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, Engine, func, select, update

from campaign_sync.db import migrate
from campaign_sync.db.models import sync_runs, sync_state
from campaign_sync.db.session import make_engine
from campaign_sync.simulator import SimulatorServer
from campaign_sync.status import describe_next_pass
from tests.conftest import API_KEY, CANARY_REST_KEY
from tests.fake_batch import sync_through
from tests.helpers import run
from tests.syncing import count, run_sync

pytestmark = pytest.mark.usefixtures("restore_logging")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("next_pass_at", "last_status", "expected"),
    [
        (NOW + timedelta(seconds=30), "succeeded", "in 30s"),
        (NOW - timedelta(seconds=10), "succeeded", "starting"),
        (
            NOW - timedelta(hours=1),
            "succeeded",
            "none: serve is not running (a pass was planned 60m ago)",
        ),
        (NOW - timedelta(hours=1), "running", "running now"),
        (None, "succeeded", "-"),
    ],
)
def test_the_next_pass_is_never_called_due_when_nothing_will_run_it(
    next_pass_at: datetime | None, last_status: str, expected: str
) -> None:
    assert describe_next_pass(next_pass_at, last_status, NOW) == expected
    if last_status == "running":  # but no pass holds the lease: it was stopped unfinished
        stopped = describe_next_pass(next_pass_at, last_status, NOW, running=False)
        assert stopped == "none: serve is not running (a pass was planned 60m ago)"


def test_the_table_spells_the_type_as_the_command_line_does(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    with db.begin() as conn:
        conn.execute(update(sync_state).values(next_pass_at=datetime.now(UTC) - timedelta(hours=2)))
    result = run("status", env={"DATABASE_URL": pg_url})
    assert result.exit_code == 0, result.output
    assert "in-app" in result.stdout and "in_app" not in result.stdout
    assert "due" not in result.stdout
    assert result.stdout.count("none: serve is not running") == 2


def test_a_missing_sqlite_file_is_named_and_not_created(tmp_path: Path) -> None:
    database = tmp_path / "nothing-here.db"
    result = run("status", env={"DATABASE_URL": f"sqlite:///{database}"})
    assert result.exit_code == 2
    assert result.stderr == (
        f"campaign-sync: the database file {database} does not exist: run campaign-sync "
        "migrate (or set DATABASE_URL to the database to use)\n"
    )
    assert not database.exists()


def test_a_database_without_our_schema_says_so(fresh_pg_url: str) -> None:
    result = run("status", env={"DATABASE_URL": fresh_pg_url})
    assert result.exit_code == 2
    assert result.stderr.startswith("campaign-sync: the database has no campaign-sync schema")
    assert result.stderr.endswith("run campaign-sync migrate\n")


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["sync"]])
def test_a_command_closes_its_database_connections_when_it_ends(
    args: list[str], fresh_pg_url: str, sim_server: SimulatorServer
) -> None:
    """A command run in-process (a script, the tests) left its pool's connection open until
    the garbage collector came: PostgreSQL saw a session that outlived the command. A
    database of its own: sessions other tests left on the shared one must not count."""
    migrate.upgrade(fresh_pg_url)
    env = {
        "DATABASE_URL": fresh_pg_url,
        "BATCH_API_BASE_URL": sim_server.url,
        "BATCH_API_KEY": API_KEY,
        "BATCH_REST_API_KEY": CANARY_REST_KEY,
    }
    result = run(*args, env=env)
    assert result.exit_code == 0, result.output
    others = "select count(*) from pg_stat_activity where datname = current_database() "
    engine = make_engine(fresh_pg_url)
    try:
        assert count(engine, others + "and pid <> pg_backend_pid()") == 0
    finally:
        engine.dispose()


def test_an_error_quoting_brackets_is_shown_as_text_not_markup(pg_url: str) -> None:
    """ "[/messages/0]" in Batch's message was read by the table as a closing tag: status
    failed with a MarkupError until a pass succeeded."""
    said = "unexpected value at [/messages/0] [bold]"
    answer = httpx.Response(400, json={"code": 30, "type": "BAD_REQUEST", "message": said})
    sync_through(pg_url, lambda request: answer)
    result = run("status", env={"DATABASE_URL": pg_url})
    assert result.exit_code == 0, result.output
    assert f"400 BAD_REQUEST code 30: {said}" in result.output


@pytest.mark.parametrize("alive", [True, False])
def test_a_pass_killed_mid_way_is_told_from_one_running(
    alive: bool, db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    """After `kill -9` of a sync, status said 'running now' and 'a pass holds the lock'
    forever, its lease long expired and nothing stale (a fresh review)."""
    run_sync(pg_url, sim_server)
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=40) if alive else now - timedelta(seconds=30)
    last = _a_running_push_pass(db, "host:4242:abc", started=now - timedelta(minutes=5),
                                lease_until=expires)  # fmt: skip
    result = run("status", env={"DATABASE_URL": pg_url})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())
    said = (
        f"the last pass (run {last}, started 5m ago) stopped without finishing, or stalled: "
        "its lease ran out unrenewed"
    )
    assert (said.split(": ")[0] in flat) is not alive, flat  # the table wraps the rest
    assert ("running now" in flat) is alive
    assert ("a pass holds the lock now (host:4242:abc)" in flat) is alive
    listed = run("status", "--json", env={"DATABASE_URL": pg_url})
    push = next(row for row in json.loads(listed.stdout) if row["campaign_type"] == "push")
    assert push["lock_held"] is alive
    assert any(said in stale for stale in push["stale"]) is not alive


def test_a_pass_whose_process_is_gone_from_this_host_is_not_running(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    """After `kill -9` of a sync on this host, status and state show said "running now"
    and "a pass holds the lock" for the rest of its lease, while the next sync took the
    lease at once and `state reset` went ahead (a review's find)."""
    import subprocess

    from campaign_sync.db.locks import Holder

    run_sync(pg_url, sim_server)
    ended = subprocess.Popen(["true"])
    ended.wait()  # a process id that ran here and is gone
    holder = f"{Holder.mine().host}:{ended.pid}:abc"
    now = datetime.now(UTC)
    last = _a_running_push_pass(db, holder, started=now - timedelta(minutes=5),
                                lease_until=now + timedelta(seconds=40))  # fmt: skip
    result = run("status", env={"DATABASE_URL": pg_url})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())
    assert "running now" not in flat and "holds the lock" not in flat, flat
    listed = run("status", "--json", env={"DATABASE_URL": pg_url})
    push = next(row for row in json.loads(listed.stdout) if row["campaign_type"] == "push")
    assert push["lock_held"] is False
    said = (
        f"the last pass (run {last}, started 5m ago) stopped without finishing: its process "
        f"({ended.pid}, on this host) is gone; the next pass records it failed"
    )
    assert said in push["stale"], push["stale"]


def test_staleness_counts_in_the_apps_own_interval(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    """An app passing every 10 minutes (its own interval_seconds) was called stale after
    3 x the global interval (a fresh review)."""
    from campaign_sync.status import collect_status

    run_sync(pg_url, sim_server)
    with db.begin() as conn:
        conn.execute(
            update(sync_runs).values(finished_at=datetime.now(UTC) - timedelta(minutes=10))
        )

    def stale(app_intervals: dict[str, float] | None) -> list[list[str]]:
        report = collect_status(
            db, detail_max_age_seconds=86400, interval_seconds=60, app_intervals=app_intervals
        )
        return [row.stale for row in report]

    assert stale(None) == [["last success 10m ago"]] * 2
    assert stale({"default": 600}) == [[], []]
    assert stale({"another": 600}) == [["last success 10m ago"]] * 2


def test_a_stored_error_is_shown_with_its_control_characters_escaped(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    """A failed pass's error quoting a URL with U+202E (or Batch's words with ESC) was
    printed by every later `status` raw, reordering or recolouring the terminal (a
    review's find)."""
    run_sync(pg_url, sim_server)
    with db.begin() as conn:
        _rewrite_last_push_run(
            conn, status="failed", error="could not reach http://h/a\u202eb \x1b[2J\x9b"
        )
    result = run("status", env={"DATABASE_URL": pg_url})
    assert result.exit_code == 0, result.output
    assert not any(c in result.output for c in "\u202e\x1b\x9b")
    assert "could not reach http://h/a\\u202eb \\x1b[2J\\x9b" in result.output


def _a_running_push_pass(
    db: Engine, holder: str, *, started: datetime, lease_until: datetime
) -> int:
    """Make the newest push run `running` since `started`, its lease held by `holder`
    until `lease_until`, as a pass killed mid-way leaves them; the run's id."""
    with db.begin() as conn:
        last = _rewrite_last_push_run(conn, status="running", finished_at=None,
                                      started_at=started)  # fmt: skip
        conn.execute(
            update(sync_state)
            .where(sync_state.c.campaign_type == "push")
            .values(lock_holder=holder, lock_expires_at=lease_until)
        )
    return last


def _rewrite_last_push_run(conn: Connection, **values: object) -> int:
    """Set `values` on the newest push run's row; its id."""
    last: int = conn.execute(
        select(func.max(sync_runs.c.id)).where(sync_runs.c.campaign_type == "push")
    ).scalar_one()
    conn.execute(update(sync_runs).where(sync_runs.c.id == last).values(**values))
    return last
