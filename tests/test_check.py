"""`campaign-sync check`: settings, database and both keys of every app, changing nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text

from campaign_sync import check as check_module
from campaign_sync.batch.client import key_fingerprint
from campaign_sync.db.migrate import head_revision
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.conftest import API_KEY, CANARY_REST_KEY
from tests.helpers import run
from tests.pg import libpq_url
from tests.syncing import count

pytestmark = pytest.mark.usefixtures("restore_logging")


def env_for(database_url: str, server: SimulatorServer, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "BATCH_API_BASE_URL": server.url,
        "BATCH_API_KEY": API_KEY,
        "BATCH_REST_API_KEY": CANARY_REST_KEY,
        **extra,
    }


def test_all_ready_exits_0_with_one_list_call_and_no_write(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    result = run("check", env=env_for(pg_url, sim_server))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ok    settings: 1 app(s): default"
    assert lines[1].endswith(f"reachable, schema at revision {head_revision()} (the newest)")
    assert lines[2].startswith("ok    metrics: ")  # 9108 may be taken by another test
    assert lines[3] == "ok    app 'default': both keys accepted (one list call)"
    assert simulator.count("list push") == 1
    assert simulator.count() == 1  # and no other request
    for table in ("sync_runs", "sync_state", "campaigns", "campaign_updates"):
        assert count(db, f"select count(*) from {table}") == 0, table
    assert CANARY_REST_KEY not in result.output and API_KEY not in result.output


@pytest.mark.parametrize("status", [500, 503])
def test_a_passing_server_error_is_retried_before_the_app_is_failed(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer, status: int
) -> None:
    simulator.script("list push", [status])
    result = run("check", env=env_for(pg_url, sim_server))
    assert result.exit_code == 0, result.output
    assert (
        "ok    app 'default': both keys accepted (one list call, answered at attempt 2)"
        in result.stdout
    )
    assert simulator.count("list push", status) == 1 and simulator.count("list push", 200) == 1


def test_a_server_error_that_lasts_fails_the_app_after_three_tries(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    simulator.script("list push", [500, 500, 500, 500])
    result = run("check", env=env_for(pg_url, sim_server))
    assert result.exit_code == 1, result.output
    assert (
        "FAIL  app 'default': GET campaigns/list for app 'default' failed: 500 SERVER_ERROR "
        "code 0: Injected by the simulator (after 3 attempts)"
    ) in result.stdout
    assert simulator.count("list push", 500) == 3 and simulator.count("list push", 200) == 0


FAST_RETRY = {"CAMPAIGN_SYNC_RETRY_BACKOFF_INITIAL_SECONDS": "0.1"}


def test_a_server_that_never_answers_gets_its_three_attempts(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each attempt's timeouts are cut to check's own (9 s, here 0.5 s), so that three fit in
    # its 30 s even when CAMPAIGN_SYNC_READ_TIMEOUT_SECONDS (30 s by default) would not.
    simulator.knobs.hang_seconds = 1.5
    simulator.script("list push", [-2, -2, -2, -2])
    monkeypatch.setattr(check_module, "CHECK_ATTEMPT_SECONDS", 0.5)
    result = run("check", env=env_for(pg_url, sim_server, **FAST_RETRY))
    assert result.exit_code == 1, result.output
    assert (
        "FAIL  app 'default': GET campaigns/list for app 'default' timed out (ReadTimeout) "
        "(after 3 attempts)"
    ) in result.stdout


def test_running_out_of_time_names_checks_own_limit_not_a_setting(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator.knobs.hang_seconds = 1.5
    simulator.script("list push", [-2, -2])
    monkeypatch.setattr(check_module, "CHECK_MAX_SECONDS", 1.0)
    result = run("check", env=env_for(pg_url, sim_server, **FAST_RETRY))
    assert result.exit_code == 1, result.output
    assert (
        "FAIL  app 'default': GET campaigns/list for app 'default' got no complete answer "
        "within 1s (check's own limit)"
    ) in result.stdout
    assert "CAMPAIGN_SYNC_RETRY_MAX_SECONDS" not in result.output


def test_a_retry_after_longer_than_check_waits_is_reported_as_a_limit_not_a_refusal(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    simulator.knobs.retry_after = "100"
    simulator.script("list push", [429, 429])
    result = run("check", env=env_for(pg_url, sim_server))
    assert result.exit_code == 1, result.output
    assert (
        "FAIL  app 'default': Batch is limiting this app's requests (1 answer of 429 Too Many "
        "Requests, the last asking to wait 100s): its keys could not be checked after 1 "
        "attempt, the limits being 3 attempts within 30s (check's own limits); run check "
        "again later"
    ) in result.stdout
    assert simulator.count("list push") == 1  # not asked again before Batch's 100 s


def test_a_tighter_setting_is_named_as_the_limit_that_ended_check(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    simulator.script("list push", [429, 429])
    env = env_for(pg_url, sim_server, CAMPAIGN_SYNC_RETRY_MAX_ATTEMPTS="1")
    result = run("check", env=env)
    assert result.exit_code == 1, result.output
    assert (
        "FAIL  app 'default': Batch is limiting this app's requests (1 answer of 429 Too Many "
        "Requests): its keys could not be checked after 1 attempt, the limits being 1 attempt "
        "(CAMPAIGN_SYNC_RETRY_MAX_ATTEMPTS) within 30s (check's own limit); run check again later"
    ) in result.stdout


def test_a_429_then_silence_is_reported_as_batch_limiting_the_app(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator.knobs.hang_seconds = 1.5
    simulator.script("list push", [429, -2, -2])
    monkeypatch.setattr(check_module, "CHECK_ATTEMPT_SECONDS", 0.5)
    env = env_for(pg_url, sim_server, CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS="0.2", **FAST_RETRY)
    result = run("check", env=env)
    assert result.exit_code == 1, result.output
    assert (
        "FAIL  app 'default': Batch is limiting this app's requests (1 answer of 429 Too Many "
        "Requests): its keys could not be checked after 3 attempts, the limits being 3 "
        "attempts within 30s (check's own limits); run check again later; then GET "
        "campaigns/list for app 'default' timed out (ReadTimeout)"
    ) in result.stdout


def test_a_refused_rest_key_is_named_and_exits_1(pg_url: str, sim_server: SimulatorServer) -> None:
    result = run("check", env=env_for(pg_url, sim_server, BATCH_REST_API_KEY="wrong-rest-key"))
    assert result.exit_code == 1
    assert (
        "FAIL  app 'default': Batch refused the REST API key (BATCH_REST_API_KEY, or the app's "
        "rest_api_key_env or rest_api_key) (401 AUTHENTICATION_INVALID (code 10): "
        "Invalid REST API key)"
    ) in result.stdout
    assert "wrong-rest-key" not in result.output


def test_a_refused_live_api_key_is_named_and_exits_1(
    pg_url: str, sim_server: SimulatorServer
) -> None:
    result = run("check", env=env_for(pg_url, sim_server, BATCH_API_KEY="not-a-live-key"))
    assert result.exit_code == 1
    assert (
        "FAIL  app 'default': Batch refused the live API key of app 'default' "
        "(BATCH_API_KEY or api_key)"
    ) in result.stdout


def test_pending_migrations_exit_2(fresh_pg_url: str, sim_server: SimulatorServer) -> None:
    result = run("check", env=env_for(fresh_pg_url, sim_server))
    assert result.exit_code == 2
    assert (
        "migrations pending: it has no campaign-sync schema, the newest is "
        f"{head_revision()}: run campaign-sync migrate"
    ) in result.stdout
    assert "ok    app 'default'" in result.stdout  # the apps are still checked


def test_a_missing_sqlite_file_is_reported_not_created(
    tmp_path: Path, sim_server: SimulatorServer
) -> None:
    database = tmp_path / "absent.db"
    result = run("check", env=env_for(f"sqlite:///{database}", sim_server))
    assert result.exit_code == 2
    assert f"{database} does not exist: run campaign-sync migrate" in result.stdout
    assert not database.exists()


def test_bad_settings_exit_2_in_one_line(pg_url: str, sim_server: SimulatorServer) -> None:
    result = run("check", env=env_for(pg_url, sim_server, BATCH_API_KEY=""))
    assert result.exit_code == 2
    assert result.stderr == (
        "campaign-sync: no app to sync: BATCH_API_KEY is empty (or only white space)\n"
    )


def test_tables_that_are_not_ours_are_the_databases_finding(
    fresh_pg_url: str, sim_server: SimulatorServer
) -> None:
    """check said 'migrations pending ... run campaign-sync migrate', which refuses them."""
    from sqlalchemy import text

    from campaign_sync.db.session import make_engine

    engine = make_engine(fresh_pg_url)
    with engine.begin() as conn:
        conn.execute(text("create table campaigns (id integer primary key, title text)"))
    engine.dispose()
    result = run("check", env=env_for(fresh_pg_url, sim_server))
    assert result.exit_code == 2
    assert (
        "the database holds tables campaign-sync did not create (campaigns): neither migrate "
        "nor migrate --adopt can use it"
    ) in result.stdout


def test_an_unreachable_database_exits_2_and_the_apps_are_still_checked(
    sim_server: SimulatorServer,
) -> None:
    url = "postgresql://nobody:secret-pw@127.0.0.1:1/none"
    result = run("check", env=env_for(url, sim_server))
    assert result.exit_code == 2
    assert "FAIL  database postgresql://nobody:***@127.0.0.1:1/none: cannot connect: " in (
        result.stdout
    )
    assert "ok    app 'default': both keys accepted (one list call)" in result.stdout
    assert "secret-pw" not in result.output


@pytest.mark.parametrize(
    ("retry_after", "words"),
    [
        (None, ""),
        (29.4, ", the last asking to wait 29s"),
        (2.3e9, ", the last asking to wait more than an hour"),
        (float("inf"), ", the last asking to wait more than an hour"),
    ],
)
def test_a_retry_after_is_put_in_words(retry_after: float | None, words: str) -> None:
    assert check_module._asked(retry_after) == words


def _role_url(url: str, role: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(username=role).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("setup", "said"),
    [
        (
            ["alter database {db} set default_transaction_read_only = on"],
            "the database accepts no writes (transaction_read_only is on: a read replica",
        ),
        (
            [
                "drop role if exists {role}",
                "create role {role} login",
                "grant select on all tables in schema public to {role}",
                "grant insert, update, delete on sync_runs, sync_state to {role}",
            ],
            "the role may not read, insert, update and delete in api_pacing, campaign_sightings, "
            "campaign_stats_daily and 9 more: grant",
        ),
        (
            [  # all but one: a pass failed on sync_warnings after check said ready
                "drop role if exists {role}",
                "create role {role} login",
                "grant select, insert, update, delete on all tables in schema public to {role}",
                "revoke insert on sync_warnings from {role}",
            ],
            "the role may not read, insert, update and delete in sync_warnings: grant",
        ),
        (
            [  # every table, no sequence: a pass failed on sync_runs_id_seq
                "drop role if exists {role}",
                "create role {role} login",
                "grant select, insert, update, delete on all tables in schema public to {role}",
            ],
            "the role may not use the sequence public.",
        ),
    ],
)
def test_a_database_sync_could_not_write_to_is_no_ready(
    fresh_pg_url: str, sim_server: SimulatorServer, setup: list[str], said: str
) -> None:
    """check said every line ok for a read-only database (a replica's URL), where every
    sync then failed: 'cannot execute UPDATE in a read-only transaction'."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from campaign_sync.db import migrate
    from campaign_sync.db.session import make_engine

    migrate.upgrade(fresh_pg_url)
    database = make_url(fresh_pg_url).database
    role = f"ro_{database}"[:60]
    engine = make_engine(fresh_pg_url)
    with engine.connect() as conn:
        for statement in setup:
            conn.execute(text(statement.format(db=f'"{database}"', role=f'"{role}"')))
        conn.commit()
    engine.dispose()
    url = _role_url(fresh_pg_url, role) if "role" in setup[-1] else fresh_pg_url
    try:
        result = run("check", env=env_for(url, sim_server))
        assert result.exit_code == 2, result.output
        assert said in result.stdout
        synced = run("sync", env=env_for(url, sim_server))
        if "read_only" in setup[0]:  # sync agrees, before any pass (exit 1 before, a review's)
            assert synced.exit_code == 2, synced.output
            assert f"campaign-sync: DATABASE_URL: {said}" in synced.stderr
            assert "pass" not in synced.stderr
        else:  # check names the privileges; a pass refused one is bad configuration too
            assert synced.exit_code == 2, synced.output  # 1 (retry later) until 2026-11-30
            assert "(campaign-sync check names them)" in synced.output
    finally:
        if "role" in setup[-1]:
            engine = make_engine(fresh_pg_url)
            with engine.connect() as conn:
                conn.execute(text(f'drop owned by "{role}"'))
                conn.execute(text(f'drop role "{role}"'))
                conn.commit()
            engine.dispose()


def test_check_says_where_serve_would_answer_for_metrics(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    """check never looked at CAMPAIGN_SYNC_METRICS_HOST: a host that is no address of this
    machine passed, and serve then refused to start (a review's find). It is now a
    configuration error (exit 2); a port taken now is only reported (the serve being
    checked may hold it); port 0 says metrics are off."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            ({"CAMPAIGN_SYNC_METRICS_HOST": "192.0.2.1"}, 2,
             "FAIL  metrics: CAMPAIGN_SYNC_METRICS_HOST: '192.0.2.1' is no address of this "
             "machine (Cannot assign requested address): 127.0.0.1 for this machine only, "
             "0.0.0.0 for every interface"),
            ({"CAMPAIGN_SYNC_METRICS_PORT": "0"}, 0,
             "ok    metrics: off (port 0): serve answers no /metrics or /healthz"),
            ({"CAMPAIGN_SYNC_METRICS_PORT": str(port)}, 0,
             f"ok    metrics: CAMPAIGN_SYNC_METRICS_PORT: port {port} cannot be used on "
             "127.0.0.1 (Address already in use): choose another port, or 0 to turn metrics "
             "off (a serve running now holds it?)"),
        ]  # fmt: skip
        for extra, code, line in cases:
            result = run("check", env={**env_for(pg_url, sim_server), **extra})
            assert (result.exit_code, result.stdout.splitlines()[2]) == (code, line), extra


@pytest.mark.parametrize("host", ["fe80::1%lo", "fe80::1", "256.1.1.1", "no such host.invalid"])
def test_a_metrics_host_that_cannot_be_bound_is_the_hosts_fault(host: str) -> None:
    """A link-local address without its zone failed with EINVAL and was reported as the
    port being taken, 'ok', exit 0 (a review's find): only a taken or privileged port is
    the port's fault."""
    from campaign_sync.config import Settings

    settings = Settings(metrics_host=host, metrics_port=49151)
    problem = check_module.metrics_address_problem(settings)
    assert problem is not None and problem[1] is True, problem


def test_the_key_fingerprint_is_the_one_every_release_compares_with() -> None:
    """sync_state keeps this very text: another function (another digest size, key or
    encoding) would refuse every pass of every database synced before it."""
    assert key_fingerprint("0123456789abcdef0123456789abcdef") == (
        "8d14480fbe62309dace2195ff2595006"
    )
    assert key_fingerprint("another-app-key") == "2a26c93eb1bab50a80ea243bd130dbaa"


def test_a_key_other_than_the_one_synced_with_fails_the_app_until_state_reset(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    """Batch accepts another app's key, so check said "ready" while every pass was refused
    (a review's find): it reads the recorded fingerprints, as the pass does."""
    env = env_for(pg_url, sim_server)
    assert run("sync", env=env).exit_code == 0
    assert run("check", env=env).exit_code == 0  # the key it recorded
    with db.begin() as conn:
        conn.execute(
            text(
                "update sync_state set api_key_fingerprint = '2a26c93eb1bab50a80ea243bd130dbaa'"
                " where app = 'default' and campaign_type = 'in_app'"
            )
        )  # as if the in-app campaigns had been synced with 'another-app-key'
    result = run("check", env=env)
    assert result.exit_code == 1, result.output
    assert (
        "FAIL  app 'default': Batch accepted both keys, but the live API key of app 'default' "
        "is not the one its in-app campaigns were synced with (a key of another Batch app?): "
        "its in-app passes will be refused. If the new key is right, run campaign-sync "
        "state reset --app default first"
    ) in result.stdout
    assert API_KEY not in result.output
    assert run("sync", env=env).exit_code == 1  # the pass agrees
    assert run("state", "reset", "--app", "default", "--yes", env=env).exit_code == 0
    result = run("check", env=env)
    assert result.exit_code == 0, result.output
    assert "ok    app 'default': both keys accepted (one list call)" in result.stdout


@pytest.mark.parametrize(
    "how",
    ["immutable file", "immutable directory", "mode=ro", "immutable=1", "immutable=02",
     "immutable=On"],
)  # fmt: skip
def test_check_refuses_a_sqlite_file_no_pass_could_write(
    tmp_path: Path, sim_server: SimulatorServer, how: str
) -> None:
    """check said "reachable, schema at revision …" for a SQLite file that refused writes,
    where every sync then failed with "attempt to write a readonly database" (a
    newcomer's find); PostgreSQL's read-only cases were caught already. An immutable
    flag refuses even root, as the suite runs here (permission bits do not)."""
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "sync.db"
    url = f"sqlite:///{path}"
    assert run("migrate", env=env_for(url, sim_server)).exit_code == 0
    target = {"immutable file": path, "immutable directory": folder}.get(how)
    if how.startswith(("mode=", "immutable=")):  # SQLite reads 02 and On as true too
        url = f"sqlite:///file:{path}?{how}&uri=true"
    else:
        subprocess.run(["chattr", "+i", str(target)], check=True)
    try:
        result = run("check", env=env_for(url, sim_server))
        synced = run("sync", env=env_for(url, sim_server))
    finally:
        if target is not None:
            subprocess.run(["chattr", "-i", str(target)], check=True)
    assert result.exit_code == 2, result.output
    assert synced.exit_code == 2, synced.output  # before any pass, as check says
    said = {
        "immutable file": f"the SQLite file {path} accepts no writes here",
        "immutable directory": f"the directory {folder} takes no new files here",
    }.get(how, f"the SQLite file {path} is opened read-only ({how} in DATABASE_URL)")
    assert said in result.stdout, result.stdout
    assert run("check", env=env_for(f"sqlite:///{path}", sim_server)).exit_code == 0
    not_read_only = f"sqlite:///file:{path}?immutable=0&uri=true"
    assert run("check", env=env_for(not_read_only, sim_server)).exit_code == 0


def test_a_directory_that_cannot_take_the_wal_files_is_named_by_every_command(
    tmp_path: Path, sim_server: SimulatorServer
) -> None:
    """With the -wal and -shm files not made yet and a directory that takes no new file,
    SQLite cannot open the file even to read it, and every command said only "unable to
    open database file" (a newcomer's find: a read-only mount)."""
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "sync.db"
    env = env_for(f"sqlite:///{path}", sim_server)
    assert run("migrate", env=env).exit_code == 0
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        status = run("status", env=env)
        snapshot = f"sqlite:///file:{path}?immutable=1&uri=true"  # read-only media's way
        reading = run("status", env=env_for(snapshot, sim_server))
        migrating = run("migrate", env=env_for(f"sqlite:///{folder / 'new.db'}", sim_server))
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert status.exit_code == 2, status.output
    assert status.stderr == (
        f"campaign-sync: the directory {folder} takes no new files here (its permissions, an "
        "immutable flag or a read-only mount), and SQLite makes the -wal and -shm files of "
        "sync.db there to open it (one or both are missing) (DATABASE_URL): name another "
        "file\n"
    )
    assert reading.exit_code == 0, reading.output  # immutable=1: SQLite needs neither file
    assert migrating.exit_code == 2, migrating.output
    assert migrating.stderr == (  # it said only "unable to open database file"
        f"campaign-sync: the directory {folder} takes no new files here (its permissions, an "
        "immutable flag or a read-only mount): SQLite cannot make new.db there (DATABASE_URL): "
        "name another file\n"
    )


def test_check_takes_a_directory_it_cannot_write_when_the_wal_files_are_there(
    tmp_path: Path, sim_server: SimulatorServer
) -> None:
    """With another connection open, SQLite's -wal and -shm files exist and a pass writes
    through them, directory or not: check refused it while sync worked (a review's find)."""
    import sqlite3

    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "sync.db"
    url = f"sqlite:///{path}"
    assert run("migrate", env=env_for(url, sim_server)).exit_code == 0
    holder = sqlite3.connect(path)
    holder.execute("select count(*) from campaigns").fetchone()  # WAL: -wal and -shm made
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        checked = run("check", env=env_for(url, sim_server))
        synced = run("sync", env=env_for(url, sim_server))
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
        holder.close()
    assert checked.exit_code == 0, checked.output
    assert synced.exit_code == 0, synced.output


def test_check_compares_the_key_on_sqlite_too(tmp_path: Path, sim_server: SimulatorServer) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    env = env_for(url, sim_server)
    assert run("migrate", env=env).exit_code == 0
    assert run("check", env=env).exit_code == 0  # nothing recorded yet: nothing to compare
    assert run("sync", env=env).exit_code == 0
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "update sync_state set api_key_fingerprint = '2a26c93eb1bab50a80ea243bd130dbaa'"
                " where campaign_type = 'push'"
            )
        )
    engine.dispose()
    result = run("check", env=env)
    assert result.exit_code == 1, result.output
    assert "is not the one its push campaigns were synced with" in result.stdout


@pytest.mark.parametrize(
    ("locked", "said"),
    [
        ("sync_state", "cannot read the recorded keys: canceling statement due to lock timeout"),
        ("alembic_version", "cannot read it: canceling statement due to lock timeout"),
    ],
)
def test_check_waits_a_bounded_time_for_another_sessions_lock(
    pg_url: str,
    sim_server: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    locked: str,
    said: str,
) -> None:
    """check's reads (the recorded key fingerprints, the schema revision) waited as long
    as another session held the table, and a database-level lock_timeout made it "cannot
    connect", exit 2 (two reviews' finds): now bounded, exit 1."""
    import psycopg

    from campaign_sync.db import session

    monkeypatch.setattr(session, "LOCK_TIMEOUT_SECONDS", 0.5)
    dsn = libpq_url(pg_url)
    with psycopg.connect(dsn) as admin:
        admin.execute(f"lock table {locked} in access exclusive mode")
        result = run("check", env=env_for(pg_url, sim_server))
        admin.rollback()
    assert result.exit_code == 1, result.output
    assert said in result.stdout
    assert "cannot connect" not in result.stdout


def test_check_on_a_schema_without_its_revision_waits_a_bounded_time(
    fresh_pg_url: str, sim_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With alembic_version gone, check reflected the tables with no lock timeout (74 s
    behind a table lock), and a database-level one lost its whole report to one line (a
    review's find)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from campaign_sync.db import migrate, session

    migrate.upgrade(fresh_pg_url)
    monkeypatch.setattr(session, "LOCK_TIMEOUT_SECONDS", 0.5)
    dsn = make_url(fresh_pg_url).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False)) as admin:
        admin.execute("drop table alembic_version")
        admin.commit()
        admin.execute("lock table campaigns in access exclusive mode")
        result = run("check", env=env_for(fresh_pg_url, sim_server))
        admin.rollback()
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok    settings: ")
    assert "cannot read it: canceling statement due to lock timeout" in lines[1]
    assert any(line.startswith("ok    app 'default'") for line in lines)


@pytest.mark.parametrize(
    ("said", "in_passing"),
    [
        ("consuming input failed: server closed the connection unexpectedly\n\tThis probably "
         "means the server terminated abnormally", True),
        ("server closed the connection unexpectedly", True),
        ("SSL connection has been closed unexpectedly", True),
        ("could not receive data from server: Connection reset by peer", True),
        ("could not send data to server: Broken pipe", True),
        ("SSL SYSCALL error: EOF detected", True),
        ("the connection is closed", True),
        ("the connection is lost", True),
        ("terminating connection due to administrator command", True),
        # a connect's own refusals: the URL's mistake as often as a server down
        ('connection to server at "127.0.0.1", port 5999 failed: Connection refused', False),
        ('failed to resolve host \'nohost\': [Errno -2] Name or service not known', False),
        ('connection failed: FATAL:  password authentication failed for user "x"', False),
        # a failed connect quotes the host first; a name may hold the words
        ('connection to server at "db", port 5432 failed: server closed the connection '
         "unexpectedly", False),
        ('database "closed the connection" does not exist', False),
        ('connection failed: FATAL:  database "review2_closed the connection" does not exist',
         False),
        ('connection failed: connection to server at "127.0.0.1", port 54399 failed: server '
         "closed the connection unexpectedly", False),  # a port that accepts, then closes
        ("connection failed: server closed the connection unexpectedly", False),
        ("", False),
    ],
)  # fmt: skip
def test_a_driver_error_with_no_sqlstate_is_in_passing_when_it_says_the_connection_was_lost(
    said: str, in_passing: bool
) -> None:
    """A cut that met SQLAlchemy's first use of a new connection (its dialect's
    initialize) came with no SQLSTATE and not `connection_invalidated`: `check` and
    `migrate` exited 2, bad configuration, in 3 runs of 40 under repeated
    pg_terminate_backend (a review's find)."""
    from sqlalchemy.exc import OperationalError

    from campaign_sync.db.session import passing_problem

    error = OperationalError("select 1", {}, psycopg.OperationalError(said))
    assert error.orig.sqlstate is None  # type: ignore[union-attr]
    assert not error.connection_invalidated
    assert passing_problem(error) is in_passing


def test_a_connection_cut_with_no_sqlstate_is_a_failure_in_passing() -> None:
    """libpq's "server closed the connection unexpectedly" (a proxy, PgBouncer) has no
    SQLSTATE: it was taken for bad configuration, exit 2 (a review's find)."""
    from sqlalchemy.exc import OperationalError

    from campaign_sync.db.session import passing_problem

    cut = OperationalError(
        "select 1", {}, Exception("server closed the connection unexpectedly"),
        connection_invalidated=True,
    )  # fmt: skip
    refused = OperationalError("connect", {}, Exception("connection refused"))
    assert passing_problem(cut) and not passing_problem(refused)
