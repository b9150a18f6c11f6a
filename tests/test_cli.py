"""The command line, run as a user would: real processes, real database, simulator."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select, text

from campaign_sync.db.models import sync_runs, sync_state
from campaign_sync.db.session import make_engine
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.conftest import API_KEY, CANARY_REST_KEY
from tests.pg import free_port, libpq_url
from tests.syncing import content_snapshot, count, wait_until_counted


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "campaign_sync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`campaign-sync ARGS` started in a real process, its output captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "campaign_sync", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli_env(
    database_url: str, server: SimulatorServer | None = None, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCH_", "CAMPAIGN_SYNC_"))}
    env["DATABASE_URL"] = database_url
    if server is not None:
        env.update(
            BATCH_API_BASE_URL=server.url,
            BATCH_API_KEY=API_KEY,
            BATCH_REST_API_KEY=CANARY_REST_KEY,
            CAMPAIGN_SYNC_BACKOFF_MIN_SECONDS="0.05",
            CAMPAIGN_SYNC_METRICS_PORT="0",
        )
    env.update(extra)
    return env


def assert_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    for stream in (result.stdout, result.stderr):
        assert CANARY_REST_KEY not in stream
        assert API_KEY not in stream


def test_migrate_then_sync_then_status(
    fresh_pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    env = cli_env(fresh_pg_url, sim_server)
    migrated = cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    synced = cli("sync", env=env)
    assert synced.returncode == 0, synced.stderr
    assert "default/push: succeeded - 60 inserted" in synced.stdout
    assert "default/in-app: succeeded - 40 inserted" in synced.stdout
    assert_no_secret(synced)
    engine = make_engine(fresh_pg_url)
    assert count(engine, "select count(*) from campaigns") == 100
    engine.dispose()

    status = cli("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = {(row["app"], row["campaign_type"]): row for row in json.loads(status.stdout)}
    push = report[("default", "push")]
    assert push["last_run_status"] == "succeeded"
    assert push["last_run_counts"]["campaigns_inserted"] == 60
    assert push["campaigns_stored"] == 60 and push["sweep_in_progress"] is False
    table = cli("status", env=env)
    assert table.returncode == 0 and "default" in table.stdout and "succeeded" in table.stdout


def test_only_one_type_and_one_app_can_be_asked_for(
    pg_url: str, sim_server: SimulatorServer
) -> None:
    result = cli("sync", "--type", "in-app", "--app", "default", env=cli_env(pg_url, sim_server))
    assert result.returncode == 0, result.stderr
    assert "in-app" in result.stdout and "push" not in result.stdout


@pytest.mark.parametrize(
    ("args", "env_extra", "message"),
    [
        (["sync"], {"BATCH_API_KEY": ""}, "BATCH_API_KEY is empty"),
        (["sync", "--app", "nope"], {}, "no app named 'nope'"),
        (["sync"], {"CAMPAIGN_SYNC_CONCURRENCY": "lots"}, "CAMPAIGN_SYNC_CONCURRENCY"),
        (["sync"], {"DATABASE_URL": "nonsense://x"}, "DATABASE_URL"),
        (["sync", "--type", "email"], {}, "Invalid value for '--type'"),
        (
            ["sync"],
            {"BATCH_API_BASE_URL": "ftp://api.batch.com"},
            "BATCH_API_BASE_URL: must be an http(s) URL such as https://api.batch.com",
        ),
    ],
)
def test_bad_configuration_exits_2_with_one_clear_line(
    pg_url: str,
    sim_server: SimulatorServer,
    args: list[str],
    env_extra: dict[str, str],
    message: str,
) -> None:
    result = cli(*args, env=cli_env(pg_url, sim_server, **env_extra))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "retrying" not in result.stderr


def test_an_unmigrated_database_is_refused_with_the_fix(
    fresh_pg_url: str, sim_server: SimulatorServer
) -> None:
    result = cli("sync", env=cli_env(fresh_pg_url, sim_server))
    assert result.returncode == 2
    assert "run campaign-sync migrate" in result.stderr
    assert "Traceback" not in result.stderr


@contextmanager
def silent_database() -> Iterator[tuple[socket.socket, str]]:
    """A listener that accepts connections and never answers (a hung server, a
    black-holing proxy), and a PostgreSQL URL pointing at it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(60)
        yield silent, f"postgresql://nobody@127.0.0.1:{silent.getsockname()[1]}/none"


def test_a_database_that_never_answers_is_given_up_on(sim_server: SimulatorServer) -> None:
    """A listener that accepts connections and says nothing (a hung server, a black-holing
    proxy) once held `status` 131 s; libpq now gives up after 10 s (session.py)."""
    with silent_database() as (_, url):
        started = time.monotonic()
        result = cli("status", env=cli_env(url, sim_server), timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith("/none): connection timeout expired\n"), result.stderr
    assert 9 < elapsed < 40  # the default 10 s, not the kernel's two minutes


@pytest.mark.parametrize(
    ("command", "stop"),
    [("sync", signal.SIGTERM), ("serve", signal.SIGTERM), ("serve", signal.SIGINT)],
)
def test_a_stop_while_starting_is_a_clean_stop(
    sim_server: SimulatorServer, command: str, stop: signal.Signals
) -> None:
    """SIGTERM while the command still waits for its database (a pod deleted as it starts)
    used to kill it with exit 143; it is a clean stop, exit 0, one line (SIGINT too)."""
    with silent_database() as (silent, url):
        process = start_cli(command, env=cli_env(url, sim_server))
        try:
            connection, _ = silent.accept()  # it is connecting: set-up, not work
            with connection:
                process.send_signal(stop)
                _, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 0, stderr
    assert (
        stderr == f"campaign-sync: stopped by {stop.name} before the work began; nothing was done\n"
    )


@pytest.mark.parametrize(
    ("command", "stop", "status"),
    [
        ("sync", signal.SIGTERM, 0),
        ("serve", signal.SIGINT, 0),
        ("check", signal.SIGTERM, -signal.SIGTERM),
        ("check", signal.SIGINT, -signal.SIGINT),
        ("update-in-app", signal.SIGINT, -signal.SIGINT),
        ("status", signal.SIGTERM, -signal.SIGTERM),
        # A closed terminal's SIGHUP: it killed the process with no line, exit 129.
        ("serve", signal.SIGHUP, 0),
        ("status", signal.SIGHUP, -signal.SIGHUP),
    ],
)
def test_a_stop_while_setting_up_is_clean_for_sync_and_serve_only(
    command: str, stop: signal.Signals, status: int
) -> None:
    """Once the set-up window opened before the command line's imports, a Ctrl-C in a
    command's first ~50 ms gave every command exit 0 "nothing was done": `check && deploy`
    went on (a review's find). `sync` and `serve` stop cleanly (0); the others end by the
    signal after the same line. The signal is sent from inside the window, at once."""
    probe = (
        "import os, signal, sys\n"
        f"sys.argv = ['campaign-sync', {command!r}, '--help']\n"
        "from campaign_sync import startup\n"
        "startup.set_up_begins()\n"
        f"os.kill(os.getpid(), {int(stop)})\n"
        "print('NOT STOPPED', file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == status, result.stderr
    assert result.stderr == (
        f"campaign-sync: stopped by {stop.name} before the work began; nothing was done\n"
    )


@pytest.mark.parametrize("where", ["config", "secrets dir", "sqlite file", "not a database"])
def test_a_path_or_file_no_command_can_use_is_one_line(where: str, tmp_path: Path) -> None:
    """A 300-character path ended in 'unexpected error: OSError: [Errno 36] File name too
    long' (exit 1); a SQLite URL naming a file that is no database, in 'unexpected error:
    DatabaseError' over two lines."""
    long = str(tmp_path / ("a" * 300))
    env = cli_env(f"sqlite:///{tmp_path / 'absent.db'}", BATCH_API_KEY="k", BATCH_REST_API_KEY="r")
    args = ["status"]
    if where == "config":
        args += ["--config", f"{long}.toml"]
    elif where == "secrets dir":
        env["CAMPAIGN_SYNC_SECRETS_DIR"] = long
    elif where == "sqlite file":
        env["DATABASE_URL"] = f"sqlite:///{long}.db"
    else:
        (tmp_path / "notes.db").write_text("not a database\n")
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'notes.db'}"
    result = cli(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "unexpected" not in result.stderr, result.stderr
    expected = "file is not a database" if where == "not a database" else "File name too long"
    assert expected in result.stderr


def test_an_unreachable_database_is_one_line(sim_server: SimulatorServer) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"
    result = cli("sync", env=cli_env(url, sim_server))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "database problem" in result.stderr
    assert "Traceback" not in result.stderr


def test_one_failing_app_exits_1_and_the_others_still_sync(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer, tmp_path: Path
) -> None:
    simulator.add_app("ANDROID_KEY", push=5, in_app=5, seed=9)
    config = tmp_path / "apps.toml"
    config.write_text(
        "[[apps]]\n"
        'name = "android"\napi_key = "ANDROID_KEY"\n'
        "[[apps]]\n"
        'name = "ios"\napi_key = "NOT_A_KEY"\n'
    )
    env = cli_env(pg_url, sim_server, CAMPAIGN_SYNC_CONFIG=str(config))
    del env["BATCH_API_KEY"]
    result = cli("sync", env=env)
    assert result.returncode == 1
    assert "android/push: succeeded" in result.stdout
    assert "ios/push: failed" in result.stdout
    assert "app 'ios'" in result.stdout
    engine = make_engine(pg_url)
    assert count(engine, "select count(*) from campaigns where app = 'android'") == 10
    engine.dispose()
    assert_no_secret(result)


def test_a_sync_killed_mid_pass_resumes_to_the_same_database(
    pg_server: Any, tmp_path: Path
) -> None:
    slow = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=400, in_app=0, seed=11)
    slow.knobs.latency_seconds = 0.02
    killed_url, reference_url = pg_server.create_database(), pg_server.create_database()
    try:
        with SimulatorServer(slow) as server:
            env = cli_env(killed_url, server)
            assert cli("migrate", env=env).returncode == 0
            process = subprocess.Popen(
                [sys.executable, "-m", "campaign_sync", "sync", "--type", "push"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            engine = make_engine(killed_url)
            wait_until_counted(engine, "select count(*) from sync_state where sweep_offset >= 95")
            process.send_signal(signal.SIGKILL)
            process.wait()
            with engine.connect() as conn:
                offset = conn.execute(select(sync_state.c.sweep_offset)).scalar() or 0
            assert offset >= 95, "the pass never committed a page"
            with engine.connect() as conn:
                assert conn.execute(select(sync_runs.c.status)).scalar_one() == "running"
            slow.reset_stats()

            resumed = cli("sync", "--type", "push", env=env)
            assert resumed.returncode == 0, resumed.stderr
            with engine.connect() as conn:
                statuses = [
                    s for (s,) in conn.execute(select(sync_runs.c.status).order_by(sync_runs.c.id))
                ]
            assert statuses == ["failed", "succeeded"]
            # A sweep from the top costs 6 list calls (0, 95, ..., 380, and 400 to confirm).
            assert slow.count("list push") < 6, "the resumed pass started over"

        fresh = Simulator(  # the same data: the same seed, dated around the same now
            api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=400, in_app=0, seed=11, now=slow.now
        )
        with SimulatorServer(fresh) as reference_server:
            env = cli_env(reference_url, reference_server)
            assert cli("migrate", env=env).returncode == 0
            assert cli("sync", "--type", "push", env=env).returncode == 0
        reference = make_engine(reference_url)
        assert content_snapshot(engine) == content_snapshot(reference)
        engine.dispose()
        reference.dispose()
    finally:
        pg_server.drop_database(killed_url)
        pg_server.drop_database(reference_url)


def test_one_sigterm_interrupts_sync_cleanly_with_exit_0(pg_url: str) -> None:
    slow = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=400, in_app=0, seed=4)
    slow.knobs.latency_seconds = 0.02
    with SimulatorServer(slow) as server:
        env = cli_env(pg_url, server, CAMPAIGN_SYNC_LOG_FORMAT="text")
        process = start_cli("sync", "--type", "push", env=env)
        engine = make_engine(pg_url)
        wait_until_counted(engine, "select count(*) from campaigns")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr and "never retrieved" not in stderr, stderr[-3000:]
    assert process.returncode == 0, stderr[-2000:]
    assert "default/push: interrupted" in stdout
    with engine.connect() as conn:
        assert conn.execute(select(sync_runs.c.status)).scalar_one() == "interrupted"
    assert 0 < count(engine, "select count(*) from campaigns") < 400
    assert count(engine, "select count(*) from campaigns where detail is null") == 0
    engine.dispose()


def test_one_sigterm_during_a_long_429_pause_is_obeyed_at_once(pg_url: str) -> None:
    # Batch asks for 100 s: a stop must not wait them out (nor the retries after them).
    limited = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=50, in_app=0)
    limited.knobs.fault_429 = 1.0
    limited.knobs.retry_after = "100"
    with SimulatorServer(limited) as server:
        env = cli_env(pg_url, server, CAMPAIGN_SYNC_LOG_FORMAT="text")
        process = start_cli("sync", "--type", "push", env=env)
        deadline = time.monotonic() + 30
        while limited.count("list push", 429) == 0:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        time.sleep(0.2)  # well inside the pause
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)  # a guard against a hang, not a timing
    assert "Traceback" not in stderr, stderr[-3000:]
    assert process.returncode == 0, stderr[-2000:]
    assert "default/push: interrupted" in stdout
    assert "pass interrupted while waiting for Batch" in stderr
    assert limited.count("list push", 429) == 1  # nothing sent after the stop
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(select(sync_runs.c.status)).scalar_one() == "interrupted"
    engine.dispose()


def test_a_second_sigterm_stops_sync_at_once_in_one_line(pg_url: str) -> None:
    slow = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=400, in_app=0, seed=4)
    slow.knobs.latency_seconds = 0.05
    with SimulatorServer(slow) as server:
        env = cli_env(pg_url, server, CAMPAIGN_SYNC_LOG_FORMAT="text")
        process = start_cli("sync", "--type", "push", env=env)
        engine = make_engine(pg_url)
        wait_until_counted(engine, "select count(*) from sync_runs")
        process.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr[-3000:]
    assert process.returncode == 1
    assert stderr.splitlines()[-1] == (
        "campaign-sync: stopped at once by a second signal; passes in flight are recorded "
        "interrupted and the next pass resumes from their last committed page"
    )
    with engine.connect() as conn:
        assert conn.execute(select(sync_runs.c.status)).scalar_one() == "interrupted"
    engine.dispose()


def test_simulate_serves_the_documented_curl(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign_sync", "simulate", "--port", str(port),
         "--api-key", "KEY", "--rest-api-key", "SECRET", "--push", "500", "--in-app", "300",
         "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/1.1/KEY/campaigns/list?limit=2"
        body = _wait_for(url, {"X-Authorization": "SECRET"})  # what the documented curl gets
        assert len(body) == 2 and all(isinstance(e["campaign_token"], str) for e in body)
        refused = httpx.get(url, headers={"X-Authorization": "wrong"})
        assert refused.status_code == 401 and refused.json()["type"] == "AUTHENTICATION_INVALID"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for(url: str, headers: dict[str, str]) -> Any:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, headers=headers).json()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_logs_are_json_lines_carrying_app_type_and_run_when_not_a_terminal(
    pg_url: str, sim_server: SimulatorServer
) -> None:
    result = cli("sync", "--type", "push", env=cli_env(pg_url, sim_server))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    summary = next(line for line in lines if line["message"].startswith("pass succeeded"))
    assert summary["app"] == "default" and summary["campaign_type"] == "push"
    assert isinstance(summary["run_id"], int)
    assert summary["level"] == "info" and "ts" in summary


def test_the_demo_uses_database_url_when_set(pg_url: str) -> None:
    """The demo's rows go under the app '(demo)', a name no configured app can have: a real
    app named 'demo' in the same database was erased by each demo's fresh start."""
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into campaigns (app, campaign_type, campaign_token, name, "
                "first_seen_at, last_seen_at, updated_at) "
                "values ('demo', 'push', 'REALTOKEN', 'real', now(), now(), now())"
            )
        )
    engine.dispose()
    result = cli("demo", "--push", "120", "--in-app", "80", env=cli_env(pg_url))
    assert result.returncode == 0, result.stderr
    assert "Second pass: only what changed is fetched" in result.stdout
    assert "Stored: 80 in-app, 120 push" in result.stdout  # as people read it, not in_app
    # A URL with no password is printed as psql takes it (no +psycopg), ready to run.
    assert f"psql {pg_url} -c" in result.stdout.replace("\n", " ")
    hint = next(line for line in result.stdout.splitlines() if "psql " in line)
    assert "from v_campaigns" in hint and "count(*) filter (where live)" in hint
    query = hint.split(' -c "', 1)[1].removesuffix('"')
    with psycopg.connect(libpq_url(pg_url)) as conn:  # the demo's rows, not the real app's
        counted = {kind: campaigns for kind, campaigns, _ in conn.execute(query)}
    assert counted == {"push": 120, "in_app": 80}
    engine = make_engine(pg_url)
    assert count(engine, "select count(*) from campaigns where app = '(demo)'") == 201
    engine.dispose()
    # Again, behind a company's proxy on another host, with a plain-http base URL of the
    # user's own set: the demo's requests to its simulator went to that proxy (which would
    # reach its own loopback), then were refused as plain http through another host.
    behind = cli_env(pg_url, HTTP_PROXY="http://192.0.2.1:3128", http_proxy="", NO_PROXY="")
    behind["BATCH_API_BASE_URL"] = "http://127.0.0.1:8787"
    again = cli("demo", "--push", "120", "--in-app", "80", env=behind)
    assert again.returncode == 0, again.stderr
    engine = make_engine(pg_url)
    assert count(engine, "select count(*) from campaigns where app = '(demo)'") == 201
    assert count(engine, "select count(*) from campaigns where app = 'demo'") == 1
    engine.dispose()


def run_probe(probe: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `probe` (Python source) in a child interpreter (`env`, else this process's
    environment); it must exit 0."""
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


# How a user starts it: the installed `campaign-sync` script, or `python -m campaign_sync`.
ENTRY_POINTS = {
    "script": (
        "from importlib.metadata import entry_points\n"
        "(script,) = entry_points(group='console_scripts', name='campaign-sync')\n"
        "start = script.load()\n"
    ),
    "module": (
        "import runpy\nstart = lambda: runpy.run_module('campaign_sync', run_name='__main__')\n"
    ),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_the_set_up_window_opens_before_the_command_line_is_imported(entry: str) -> None:
    """The window (collector off, SIGTERM a clean stop) opened once click and our command
    line were imported: ~80 ms in which a SIGTERM killed the process with 143 (a known
    defect) and the collector ran. It opens now before either is imported."""
    probe = (
        "import gc, signal, sys\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('click', 'campaign_sync.cli') and name not in sys.modules:\n"
        "            print('IMPORTING', name, gc.isenabled(),"
        " signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, file=sys.stderr)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Watch())\n"
        f"{ENTRY_POINTS[entry]}"
        "sys.argv = ['campaign-sync', '--version']\n"
        "try:\n"
        "    start()\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    result = run_probe(probe, cli_env("sqlite:///unused.db"))
    assert "IMPORTING click False False" in result.stderr, result.stderr[-500:]
    assert "IMPORTING campaign_sync.cli False False" in result.stderr, result.stderr[-500:]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("command", "work", "collections", "transport"),
    [
        # sync and serve import their modules before they resume the collector: none ran;
        # the HTTP transport's too, which httpx imports at a client's first request.
        ("sync", "campaign_sync.signals.run_until_signalled", "0", "True"),
        ("serve", "campaign_sync.service.serve", "0", "True"),
        # status imports after (the group resumes it): collections, so a number.
        ("status", "campaign_sync.status.collect_status", r"\d+", "(True|False)"),
    ],
)
def test_the_set_up_window_closes_before_the_work(
    tmp_path: Path,
    sim_server: SimulatorServer,
    entry: str,
    command: str,
    work: str,
    collections: str,
    transport: str,
) -> None:
    """`campaign-sync` sets up with the garbage collector off and SIGTERM a clean stop
    (campaign_sync.startup), then freezes what it imported, turns the collector on and gives
    SIGTERM back its default before the command's work: `sync` and `serve` after their
    set-up (which imports the HTTP transport, `batch.client.import_transport`), every
    other command before it runs."""
    url = f"sqlite:///{tmp_path / 'collector.db'}"
    assert cli("migrate", env=cli_env(url)).returncode == 0
    module, name = work.rsplit(".", 1)
    probe = (
        "import gc, importlib, signal, sys\n"
        "collections = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and collections.append(1))\n"
        f"work = importlib.import_module({module!r})\n"
        "def seen(*args, **kwargs):\n"
        "    print('AT WORK', len(collections), gc.isenabled(), gc.get_freeze_count() > 0,"
        " signal.getsignal(signal.SIGTERM) is signal.SIG_DFL,"
        " all(m in sys.modules for m in ('httpcore', 'h11', 'anyio._backends._asyncio')),"
        " file=sys.stderr)\n"
        "    sys.exit(0)\n"
        f"setattr(work, {name!r}, seen)\n"
        f"{ENTRY_POINTS[entry]}"
        f"sys.argv = ['campaign-sync', {command!r}]\n"
        "collections.clear()\n"
        "start()\n"
    )
    result = run_probe(probe, cli_env(url, sim_server))
    # With the collector on, importing SQLAlchemy alone starts dozens of collections.
    at_work = rf"^AT WORK {collections} True True True {transport}$"  # SIGTERM Python's own
    assert re.search(at_work, result.stderr, re.M), result.stderr[-500:]


@pytest.mark.parametrize("args", [["sync", "--help"], ["--version"], ["sync", "--bogus"]])
def test_the_set_up_window_closes_however_the_command_line_ends(args: list[str]) -> None:
    probe = (
        "import gc, signal, sys\n"
        "from campaign_sync.cli import run\n"
        f"sys.argv = ['campaign-sync', *{args!r}]\n"
        "try:\n"
        "    run()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('AFTER', gc.isenabled(), signal.getsignal(signal.SIGTERM) is signal.SIG_DFL,"
        " file=sys.stderr)\n"
    )
    result = run_probe(probe, cli_env("sqlite:///unused.db"))
    assert "AFTER True True" in result.stderr, result.stderr[-500:]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_sync_imports_only_what_a_pass_needs(
    entry: str, any_db_url: str, sim_server: SimulatorServer
) -> None:
    # Not rich (nor pygments) when not on a terminal: httpx imported them for its own
    # command line until the executable deferred it (startup.defer_httpx_command_line).
    # Nor the ORM: the tables are Core Tables (~70 ms of imports and class building); nor
    # tenacity while every call succeeds at once. (SQLite's dialect is: the tables name
    # SQLite's partial indexes, whose options SQLAlchemy reads from the dialect.)
    heavy = ["alembic", "starlette", "uvicorn", "prometheus_client", "apscheduler", "tenacity"]
    heavy += ["rich", "pygments"]
    modules = ["sqlalchemy.orm", "httpx._main", "tomllib"]
    probe = (
        "import atexit, sys\n"
        f"heavy, modules = {heavy!r}, {modules!r}\n"
        "def loaded():\n"
        "    real = {m for m, module in sys.modules.items() if getattr(module, '__file__', None)}\n"
        "    print('LOADED', sorted({m.split('.')[0] for m in real} & set(heavy)"
        " | set(modules) & real), file=sys.stderr)\n"
        "atexit.register(loaded)\n"
        f"{ENTRY_POINTS[entry]}"
        "sys.argv = ['campaign-sync', 'sync']\n"
        "try:\n"
        "    start()\n"
        "except SystemExit as end:\n"
        "    assert end.code in (0, None), end.code\n"
    )
    result = run_probe(probe, cli_env(any_db_url, sim_server))
    assert "LOADED []" in result.stderr, result.stderr[-500:]
    assert "succeeded" in result.stdout + result.stderr, result.stderr[-500:]


def test_httpx_command_line_still_runs_once_deferred() -> None:
    """What stands in for `httpx._main` imports the real one when `httpx.main` is called."""
    probe = (
        "import sys\n"
        "from campaign_sync.startup import defer_httpx_command_line\n"
        "defer_httpx_command_line()\n"
        "import httpx\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('httpx._main').name == 'httpx._main'\n"
        "print('BEFORE', 'rich' in sys.modules, file=sys.stderr)\n"
        "sys.argv = ['httpx', '--help']\n"
        "try:\n"
        "    httpx.main()\n"
        "except SystemExit as end:\n"
        "    print('EXIT', end.code, 'rich' in sys.modules, file=sys.stderr)\n"
    )
    result = run_probe(probe)
    assert "BEFORE False\n" in result.stderr
    assert "EXIT 0 True\n" in result.stderr, result.stderr[-500:]
    assert "Usage: httpx" in result.stdout


def test_a_ctrl_c_at_a_confirmation_ends_the_command_by_sigint(
    tmp_path: Path, sim_server: SimulatorServer
) -> None:
    """click's confirm raises Abort `from None` on a Ctrl-C, so the Ctrl-C was missed and
    the command exited 1 (a review's find); answering "n" stays exit 1
    (tests/test_state_command.py)."""
    env = cli_env(f"sqlite:///{tmp_path / 'prompt.db'}", sim_server)
    assert cli("migrate", env=env).returncode == 0
    assert cli("sync", env=env).returncode == 0  # cursors to reset
    reader, writer = os.pipe()  # a stdin that stays open and silent: the prompt waits
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign_sync", "state", "reset"],
        env=env, stdin=reader, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        shown, deadline = b"", time.monotonic() + 30
        while b"Reset the cursor of" not in shown and time.monotonic() < deadline:
            shown += process.stdout.read() or b""
            time.sleep(0.05)
        assert b"Reset the cursor of" in shown
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        os.close(reader)
        os.close(writer)
        process.kill()
    assert process.returncode == -signal.SIGINT, err
    assert err.endswith(b"campaign-sync: aborted\n"), err


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_a_signal_after_the_work_ended_does_not_end_the_process(stop: str) -> None:
    """A second SIGTERM arriving while `sync` printed its summary (the work done, the
    signal handlers given back) killed it by default: exit 143, no line, a failed job for
    cron or Kubernetes. A SIGINT then raised KeyboardInterrupt: exit 1 "aborted", then
    130 (a review: 10 of 120 Ctrl-Cs near a pass's end)."""
    script = (
        "import asyncio, os, signal, time\n"
        "from campaign_sync.signals import run_until_signalled\n"
        "async def work(stop):\n"
        "    return 'done'\n"
        "print(run_until_signalled(work), flush=True)\n"
        f"os.kill(os.getpid(), signal.{stop})\n"
        "time.sleep(0.2)\n"
        "print('reported', flush=True)\n"
    )
    finished = run_probe(script)
    assert (finished.stdout, finished.stderr) == ("done\nreported\n", "")


@pytest.mark.parametrize(
    ("hangup", "sent", "said"),
    [
        ("SIG_DFL", ["SIGHUP"], "stopped"),
        ("SIG_IGN", ["SIGHUP"], "went on"),
        # An interactive shell's job gets two as its terminal closes: still one stop.
        ("SIG_DFL", ["SIGHUP", "SIGHUP"], "stopped"),
        ("SIG_DFL", ["SIGHUP", "SIGTERM"], "cut"),  # a person's second signal still cuts
    ],
)
def test_sighup_stops_the_work_unless_ignored_as_nohup_does(
    hangup: str, sent: list[str], said: str
) -> None:
    """SIGHUP (a closed terminal) asks the work to stop as SIGTERM does: left to its
    default it killed `sync` mid-pass. Under `nohup`, which ignores it, it stays ignored.
    A second SIGHUP is no second signal: it cut the pass short, exit 1 (a review's find)."""
    script = (
        "import asyncio, os, signal\n"
        f"signal.signal(signal.SIGHUP, signal.{hangup})\n"
        "from campaign_sync.signals import StoppedAtOnce, run_until_signalled\n"
        "async def work(stop):\n"
        f"    for name in {sent!r}:\n"
        "        os.kill(os.getpid(), getattr(signal, name))\n"
        "        await asyncio.sleep(0.1)\n"
        "    try:\n"
        "        await asyncio.wait_for(stop.wait(), 1)\n"
        "    except TimeoutError:\n"
        "        return 'went on'\n"
        "    await asyncio.sleep(0.3)  # the page in flight\n"
        "    return 'stopped'\n"
        "try:\n"
        "    print(run_until_signalled(work), flush=True)\n"
        "except StoppedAtOnce:\n"
        "    print('cut', flush=True)\n"
    )
    assert run_probe(script).stdout == f"{said}\n"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["sync"], 0),  # the passes' own code: they all succeeded
        (["state", "show"], 1),  # click's rule for a reader gone: exit 1, silently
        (["check"], 1),
    ],
)
def test_a_command_whose_output_reader_is_gone_says_nothing_of_it(
    tmp_path: Path, sim_server: SimulatorServer, command: list[str], code: int
) -> None:
    """`campaign-sync sync | head -0`: the summary's write met EPIPE and the command exited
    1 "unexpected error: BrokenPipeError" although every pass succeeded; `state show` and
    `check` printed that line too (reviews' finds)."""
    env = cli_env(f"sqlite:///{tmp_path / 'gone.db'}", sim_server)
    assert cli("migrate", env=env).returncode == 0
    reader, writer = os.pipe()
    os.close(reader)  # no one will read what it prints
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaign_sync", *command],
            env=env, stdout=writer, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    finally:
        os.close(writer)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr[-2000:]
    assert "unexpected error" not in stderr and "Traceback" not in stderr, stderr[-2000:]


@pytest.mark.parametrize("command", ["status", "sync"])
def test_a_refusal_keeps_its_exit_code_when_stderr_has_no_reader(
    tmp_path: Path, command: str
) -> None:
    """Writing the one-line refusal to a stderr whose reader is gone (`2>&1 | head -0`, a
    closed terminal) raised, and exit 2 (bad configuration) became 1 (a review's find)."""
    env = cli_env(f"sqlite:///{tmp_path / 'no such directory' / 'x.db'}")
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "campaign_sync", command],
            env=env, stdout=subprocess.DEVNULL, stderr=writer, timeout=60,
        )  # fmt: skip
    finally:
        os.close(writer)
    assert result.returncode == 2


STUCK_WORK = (
    "import asyncio, os, signal, sys, threading, time\n"
    "from campaign_sync.signals import run_until_signalled\n"
    "async def work(stop):\n"
    "    print('ready', flush=True)\n"
    "    await asyncio.to_thread(time.sleep, 60)  # a database that stopped answering\n"
    "run_until_signalled(work, cancel_after={cancel_after}, hard_stop=0.5)\n"
)


@pytest.mark.parametrize(
    ("cancel_after", "signals", "said"),
    [
        ("0.3", 1, "the stop's grace period (0.3 s) ran out, and the work did not end 0.5 s"),
        ("None", 2, "stopped at once by a second signal, and the work did not end 0.5 s"),
        # No one to say it to (a closed terminal): the write's error ended the watchdog's
        # thread before its exit, and the process hung on (a review's find).
        ("0.3", 1, None),
    ],
)
def test_a_stop_ends_the_process_even_when_the_work_is_stuck_in_a_thread(
    cancel_after: str, signals: int, said: str | None
) -> None:
    """A pass blocked in a database call that never returns (a proxy swallowing its
    traffic) ignored SIGTERM, then SIGINT: only SIGKILL ended it. A stop now cancels the
    work after its grace (sync) or at the second signal, and exits 1 if the clean-up is
    stuck too, whether or not stderr can still be written."""
    child = subprocess.Popen(
        [sys.executable, "-c", STUCK_WORK.format(cancel_after=cancel_after)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    assert child.stderr is not None
    if said is None:
        child.stderr.close()  # the reader of stderr is gone: its writes fail (EPIPE)
    started = time.monotonic()
    for _ in range(signals):
        child.send_signal(signal.SIGTERM)
        time.sleep(0.1)
    if said is None:
        child.wait(timeout=30)
    else:
        _, stderr = child.communicate(timeout=30)
        assert said in stderr and "exiting now, status 1" in stderr
    assert child.returncode == 1
    assert time.monotonic() - started < 20  # not the 60 s the work would take


def test_a_stop_the_work_asks_for_itself_is_one_a_signal_then_does_not_double() -> None:
    """serve stops itself on a schema it does not know: the first SIGTERM after it was
    taken for a second one, which cut the passes in flight at once (exit 1), and no
    watchdog was armed for the stop (a review's find). The work's own stop now arms the
    watchdog, and a signal after it is a first one."""
    script = (
        "import asyncio, os, signal, time\n"
        "from campaign_sync.signals import run_until_signalled\n"
        "async def work(stop):\n"
        "    stop.set()  # the work stops itself\n"
        "    await asyncio.sleep(0.1)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # an orchestrator's, meanwhile\n"
        "    await asyncio.sleep(0.3)  # the passes in flight finish their page\n"
        "    return 'ended its own way'\n"
        "print(run_until_signalled(work), flush=True)\n"
    )
    finished = run_probe(script)
    assert (finished.stdout, finished.stderr) == ("ended its own way\n", "")
    stuck = (
        "import asyncio, time\n"
        "from campaign_sync.signals import run_until_signalled\n"
        "import campaign_sync.signals as signals\n"
        "signals.SERVE_HARD_STOP_SECONDS = 0.5\n"
        "async def work(stop):\n"
        "    stop.set()\n"
        "    await asyncio.to_thread(time.sleep, 60)  # a database that stopped answering\n"
        "run_until_signalled(work)\n"
    )
    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-c", stuck], capture_output=True, text=True, timeout=30
    )
    assert child.returncode == 1
    assert "the command stopped itself, and the work did not end 0.5 s later" in child.stderr
    assert time.monotonic() - started < 20


def test_a_stop_honoured_in_time_leaves_no_watchdog_behind() -> None:
    """The hard exit is armed at the stop; work that ends in time disarms it, so the
    process goes on to report (here 1.5 s later, past every deadline) and exits 0."""
    script = (
        "import asyncio, os, signal, time\n"
        "from campaign_sync.signals import run_until_signalled\n"
        "async def work(stop):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    await stop.wait()\n"
        "    return 'stopped cleanly'\n"
        "print(run_until_signalled(work, cancel_after=0.3, hard_stop=0.5), flush=True)\n"
        "time.sleep(1.5)\n"
        "print('reported', flush=True)\n"
    )
    finished = run_probe(script)
    assert (finished.stdout, finished.stderr) == ("stopped cleanly\nreported\n", "")
