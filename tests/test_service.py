"""`serve`: passes at the interval, a clean SIGTERM, replicas, metrics and health."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from campaign_sync.db.models import campaigns, sync_runs, sync_state
from campaign_sync.db.session import make_engine
from campaign_sync.service import Service
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.conftest import API_KEY, CANARY_REST_KEY, make_app, make_settings
from tests.pg import free_port
from tests.syncing import count, hold_lists_until_a_pass_is_skipped, wait_until_counted
from tests.test_cli import cli, cli_env, start_cli


def run_service(service: Service, until: Callable[[], bool], timeout: float = 30) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(service.run(stop))
        deadline = time.monotonic() + timeout
        # In a thread: the check may call the service's own HTTP endpoints.
        while not await asyncio.to_thread(until) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(runner, 30)

    asyncio.run(main())


def service_for(
    url: str, server: SimulatorServer, *, interval: float, metrics_port: int = 0, **app: Any
) -> Service:
    settings = make_settings(server.url, url, metrics_port=metrics_port)
    resolved = make_app(**app)
    resolved = type(resolved)(**{**resolved.__dict__, "interval_seconds": interval})
    return Service(make_engine(url), settings, [resolved])


def test_passes_happen_at_the_interval(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    service = service_for(pg_url, sim_server, interval=0.4)
    planned: list[object] = []

    def four_passes() -> bool:
        if service.passes.get("default", 0) < 4:
            return False
        with db.connect() as conn:  # while serving: the next pass is planned
            planned.extend(v for (v,) in conn.execute(select(sync_state.c.next_pass_at)))
        return True

    started = time.monotonic()
    run_service(service, until=four_passes)
    elapsed = time.monotonic() - started
    assert service.passes["default"] >= 4
    assert elapsed >= 0.4 * 3 * 0.9, "passes came faster than the interval"
    with db.connect() as conn:
        statuses = [s for (s,) in conn.execute(select(sync_runs.c.status))]
        after_stop = [v for (v,) in conn.execute(select(sync_state.c.next_pass_at))]
    assert statuses.count("succeeded") >= 8  # both types, every pass
    assert len(planned) == 2 and all(v is not None for v in planned)
    assert after_stop == [None, None]  # once stopped, no pass is planned


def test_metrics_and_health_say_what_they_should(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    port = free_port()
    service = service_for(pg_url, sim_server, interval=0.3, metrics_port=port)
    seen: dict[str, Any] = {}

    def scrape() -> bool:
        if service.passes.get("default", 0) < 1:
            return False
        try:
            seen["metrics"] = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            seen["health"] = httpx.get(f"http://127.0.0.1:{port}/healthz")
        except httpx.TransportError:
            return False
        return True

    simulator.script("view push", [429])
    run_service(service, until=scrape)
    text = seen["metrics"]
    assert 'campaign_sync_runs_total{app="default",campaign_type="push",status="succeeded"}' in text
    assert (
        'campaign_sync_campaigns_total{app="default",campaign_type="push",change="inserted"} 60.0'
        in text
    )
    assert (
        'campaign_sync_api_requests_total{app="default",route="GET campaigns/list",status="200"}'
        in text
    )
    assert 'campaign_sync_rate_limited_total{app="default"} 1.0' in text
    assert 'campaign_sync_request_rate{app="default"}' in text
    assert "campaign_sync_pass_duration_seconds_bucket" in text
    assert (
        'campaign_sync_last_success_timestamp_seconds{app="default",campaign_type="in_app"}' in text
    )
    assert seen["health"].status_code == 200
    assert seen["health"].json()["status"] == "ok"
    # Every series of a pass's outcome exists from the start, at 0: an alert's increase()
    # sees the first failure (a series born at 1 is no increase).
    for status in ("failed", "skipped", "interrupted"):
        zero = f'campaign_sync_runs_total{{app="default",campaign_type="in_app",status="{status}"}}'
        assert f"{zero} 0.0" in text, status
    assert 'campaign_sync_retries_total{app="default",campaign_type="in_app"} 0.0' in text
    standard = ("process_start_time_seconds ", "process_resident_memory_bytes ", "python_info{")
    for name in standard:  # what every Prometheus client exports
        assert name in text, name


def test_health_turns_503_after_repeated_failures(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    port = free_port()
    simulator.rest_api_key = "rotated"
    service = service_for(pg_url, sim_server, interval=0.15, metrics_port=port)
    answers: list[httpx.Response] = []

    def unhealthy() -> bool:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/healthz")
        except httpx.TransportError:
            return False
        answers.append(answer)
        return answer.status_code == 503

    alive: list[httpx.Response] = []

    def unhealthy_but_alive() -> bool:
        if not unhealthy():
            return False
        alive.append(httpx.get(f"http://127.0.0.1:{port}/livez"))
        return True

    run_service(service, until=unhealthy_but_alive, timeout=20)
    # /livez, for an orchestrator's liveness probe: a restart cures no revoked key.
    assert alive[0].status_code == 200 and alive[0].json() == {"status": "alive"}
    codes = [answer.status_code for answer in answers]
    assert set(codes) <= {200, 503} and codes == sorted(codes), codes  # healthy, then not
    final = answers[-1]
    assert final.status_code == 503
    failing = final.json()["failing_apps"]["default"]
    assert failing["consecutive_failures"] > 3
    assert "AUTHENTICATION_INVALID" in failing["last_error"]


def test_sigterm_mid_pass_stops_cleanly_and_the_next_pass_resumes(
    pg_server: Any,
) -> None:
    slow = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=500, in_app=0, seed=5)
    slow.knobs.latency_seconds = 0.03
    url = pg_server.create_database()
    try:
        with SimulatorServer(slow) as server:
            env = cli_env(url, server, CAMPAIGN_SYNC_INTERVAL_SECONDS="3600")
            assert cli("migrate", env=env).returncode == 0
            process = start_cli("serve", env=env)
            engine = make_engine(url)
            wait_until_counted(
                engine,
                "select count(*) from sync_state "
                "where campaign_type = 'push' and sweep_offset >= 95",
            )
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
            assert process.returncode == 0, stderr[-2000:]
            assert time.monotonic() - signalled < 30
            assert CANARY_REST_KEY not in stderr and API_KEY not in stderr
            with engine.connect() as conn:
                run = (
                    conn.execute(select(sync_runs).where(sync_runs.c.campaign_type == "push"))
                    .mappings()
                    .one()
                )
                state = (
                    conn.execute(select(sync_state).where(sync_state.c.campaign_type == "push"))
                    .mappings()
                    .one()
                )
                stored = conn.execute(select(campaigns.c.detail)).all()
            assert run["status"] == "interrupted"
            assert state["sweep_in_progress"] and state["sweep_offset"] >= 95
            assert all(detail is not None for (detail,) in stored), "a half-written campaign"
            assert count(engine, "select count(*) from messages") > 0

            slow.reset_stats()
            resumed = cli("sync", "--type", "push", env=env)
            assert resumed.returncode == 0, resumed.stderr
            assert count(engine, "select count(*) from campaigns") == 500
            first = next(r for r in slow.requests if r.route == "list push")
            assert first.status == 200  # the resumed pass's first list call went through
            assert slow.count("list push") <= (500 - state["sweep_offset"]) // 95 + 2
            engine.dispose()
    finally:
        pg_server.drop_database(url)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_two_real_processes_never_sync_the_same_app_and_type_at_once(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("pg_url" if backend == "postgresql" else "sqlite_url"))
    slow = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=300, in_app=150, seed=8)
    poller = hold_lists_until_a_pass_is_skipped(slow, url)  # they surely overlap
    with SimulatorServer(slow) as server:
        env = cli_env(url, server)
        processes = [start_cli("sync", env=env) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    engine = make_engine(url)
    with engine.connect() as conn:
        runs = conn.execute(
            select(
                sync_runs.c.campaign_type, sync_runs.c.started_at, sync_runs.c.finished_at
            ).order_by(sync_runs.c.started_at)
        ).all()
    engine.dispose()
    for campaign_type in ("push", "in_app"):
        spans = [(s, f) for t, s, f in runs if t == campaign_type]
        for (_, first_end), (second_start, _) in itertools.pairwise(spans):
            assert second_start >= first_end, f"two {campaign_type} passes overlapped"
    poller.dispose()
    skipped = sum(out.count("skipped (another process holds it") for out, _ in outputs)
    assert skipped == 2 and len(runs) == 2  # each type: one process synced, one skipped


def test_a_stop_while_details_are_in_flight_commits_that_page(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.fake_batch import BASE_URL, PUSH, FakeBatch

    fake = FakeBatch()
    for index in range(150):
        fake.add(PUSH, f"c{index:03d}")
    settings = make_settings(BASE_URL, pg_url, metrics_port=0)
    app = make_app()
    app = type(app)(**{**app.__dict__, "interval_seconds": 3600})
    service = Service(
        make_engine(pg_url), settings, [app], transport=httpx.MockTransport(fake.handler)
    )
    fake.on_view = lambda token: service.stop.set() if token == "c140" else None

    caplog.set_level("INFO")
    asyncio.run(asyncio.wait_for(service.run(), 30))

    engine = make_engine(pg_url)
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(sync_runs.c.campaign_type, sync_runs.c.status)).all())
        tokens = {t for (t,) in conn.execute(select(campaigns.c.campaign_token))}
    engine.dispose()
    assert statuses["push"] == "interrupted"
    assert tokens == {f"c{index:03d}" for index in range(50, 150)}  # the first page, whole
    messages = [record.getMessage() for record in caplog.records]
    assert messages[-1] == "stopped", messages[-5:]
    assert not any(record.exc_info for record in caplog.records)
    assert not any("Cancelled" in message for message in messages)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("variable", "CAMPAIGN_SYNC_METRICS_PORT"),
        ("flag", "--metrics-port"),
        ("config file", "config file {config}, key metrics_port"),
    ],
)
def test_serve_on_a_metrics_port_in_use_is_one_line_naming_where_the_port_came_from(
    pg_url: str, restore_logging: None, tmp_path: Path, given: str, named: str
) -> None:
    import socket

    from tests.helpers import run

    config = tmp_path / "campaign-sync.toml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"DATABASE_URL": pg_url, "BATCH_API_KEY": "k", "BATCH_REST_API_KEY": "r"}
        args = ["serve"]
        if given == "variable":
            env["CAMPAIGN_SYNC_METRICS_PORT"] = str(port)
        elif given == "flag":
            args += ["--metrics-port", str(port)]
        else:
            config.write_text(f"metrics_port = {port}\n")
            env["CAMPAIGN_SYNC_CONFIG"] = str(config)
        result = run(*args, env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"campaign-sync: {named.format(config=config)}: port {port} cannot be used on 127.0.0.1 ("
    ), result.stderr
    assert result.stderr.endswith("): choose another port, or 0 to turn metrics off\n")


@pytest.mark.parametrize("host", [" ", "999.1.1.1", "no-such-host.invalid", "192.0.2.1"])
def test_a_metrics_host_that_is_no_address_here_is_named(pg_url: str, host: str) -> None:
    from tests.helpers import run

    env = {"DATABASE_URL": pg_url, "BATCH_API_KEY": "k", "BATCH_REST_API_KEY": "r",
           "CAMPAIGN_SYNC_METRICS_HOST": host, "CAMPAIGN_SYNC_METRICS_PORT": "19108"}  # fmt: skip
    result = run("serve", env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"campaign-sync: CAMPAIGN_SYNC_METRICS_HOST: {host!r} is no address of this machine ("
    ), result.stderr
    assert result.stderr.endswith(
        "): 127.0.0.1 for this machine only, 0.0.0.0 for every interface\n"
    )


def test_a_database_away_when_the_next_pass_is_recorded_is_one_warning_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """serve printed APScheduler's ~100-line job traceback at every pass while the
    database was away (a fresh review): recording the planned pass is one warning."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    away = f"postgresql+psycopg://root@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    engine = make_engine(away)
    service = Service(engine, make_settings("http://127.0.0.1:9", away), [make_app("ios")])
    job = SimpleNamespace(next_run_time=datetime(2026, 12, 1, tzinfo=UTC))
    service.scheduler = SimpleNamespace(get_job=lambda name: job)
    try:
        with caplog.at_level("WARNING", logger="campaign_sync.service"):
            asyncio.run(service._record_next_pass(make_app("ios")))
    finally:
        engine.dispose()
    [record] = caplog.records
    assert record.getMessage().startswith("could not record the next pass: ")
    assert record.exc_info is None and "\n" not in record.getMessage()


@pytest.mark.usefixtures("restore_logging")
def test_serve_says_which_apps_keep_their_own_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve --interval-seconds 60 went unheeded for apps with their own interval_seconds,
    without a word (a fresh review): the more specific setting wins, and serve says so."""
    from tests.helpers import run

    config = tmp_path / "apps.toml"
    config.write_text(
        '[[apps]]\nname = "ios"\napi_key = "K1"\ninterval_seconds = 5\n'
        '[[apps]]\nname = "android"\napi_key = "K2"\n'
    )
    config.chmod(0o600)
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "BATCH_REST_API_KEY": "r"}
    assert run("migrate", env=env).exit_code == 0
    served: list[list[str]] = []
    monkeypatch.setattr(
        "campaign_sync.service.serve",
        lambda engine, settings, apps: served.append([app.name for app in apps]),
    )
    result = run("serve", "--interval-seconds", "60", "--config", str(config), env=env)
    assert result.exit_code == 0, result.output
    assert served == [["ios", "android"]]
    assert (
        "--interval-seconds 60 applies to the apps without an interval_seconds of their own "
        "in the config file; these keep theirs: ios (5s)"
    ) in result.stderr


@pytest.mark.parametrize(
    ("command", "revision", "said"),
    [
        ("serve", "0099", "the database is at revision 0099, which this campaign-sync does not"),
        ("sync", "0013", "the database is at revision 0013, the newest is"),  # migrated down
    ],
)
def test_a_pass_stops_at_its_next_page_when_the_database_is_migrated_under_it(
    pg_server: Any, command: str, revision: str, said: str
) -> None:
    """A replica left running wrote into a database a newer campaign-sync had migrated,
    while every new process refused it (a review's find), and a pass in flight went on
    writing thousands of rows (the next review's): each page's lease renewal reads the
    revision, so the pass stops at its next page, and `sync` and `serve` end as a refused
    start does (exit 2, where a cron job retried on 1, the same message)."""
    slow = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=800, in_app=0, seed=6)
    slow.knobs.latency_seconds = 0.03
    url = pg_server.create_database()
    with SimulatorServer(slow) as server:
        env = cli_env(url, server, CAMPAIGN_SYNC_INTERVAL_SECONDS="3600")
        assert cli("migrate", env=env).returncode == 0
        process = start_cli(command, *(["--type", "push"] if command == "sync" else []), env=env)
        try:
            engine = make_engine(url)
            wait_until_counted(
                engine, "select case when count(*) >= 100 then 1 else 0 end from campaigns"
            )
            with engine.begin() as conn:
                conn.exec_driver_sql(f"update alembic_version set version_num = '{revision}'")
            at_change = count(engine, "select count(*) from campaigns")
            stdout, stderr = process.communicate(timeout=60)
            stored = count(engine, "select count(*) from campaigns")
            with engine.connect() as conn:
                run = conn.execute(
                    select(sync_runs.c.status, sync_runs.c.error).where(
                        sync_runs.c.campaign_type == "push"
                    )
                ).one()
                planned = list(conn.execute(select(sync_state.c.next_pass_at)).scalars())
            engine.dispose()
        finally:
            process.kill()
            pg_server.drop_database(url)
    assert process.returncode == 2, stderr[-2000:]
    assert said in stdout + stderr
    assert stored - at_change <= 100, (at_change, stored)  # the page in flight at most
    assert stored < 800
    assert run.status == "failed" and f"revision {revision}" in run.error
    # No next pass planned after serve's stop (one outlived serve in `status`), no traceback.
    assert planned == [None] * len(planned), planned
    assert "Traceback" not in stderr and "raised an exception" not in stderr, stderr[-3000:]


def test_a_stopping_replica_leaves_another_replicas_next_pass_alone(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    """`status` said serve had stopped while another replica still ran: the stopping one
    cleared every app's planned pass. Now only the times it recorded itself."""
    from datetime import UTC, datetime

    service = service_for(pg_url, sim_server, interval=3600)
    other = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)  # what another replica planned

    def planned_then_overtaken() -> bool:
        if "default" not in service._next_passes:
            return False
        with db.begin() as conn:
            conn.execute(sync_state.update().where(sync_state.c.campaign_type == "push")
                         .values(next_pass_at=other))  # fmt: skip
        return True

    run_service(service, until=planned_then_overtaken)
    with db.connect() as conn:
        rows = conn.execute(select(sync_state.c.campaign_type, sync_state.c.next_pass_at))
        after = {campaign_type: planned for campaign_type, planned in rows}
    assert after == {"push": other, "in_app": None}


@pytest.mark.parametrize(("level", "expected"), [("debug", 30), ("warning", 30), ("error", 40)])
def test_the_libraries_loggers_follow_ours_above_warning(
    level: str, expected: int, restore_logging: None
) -> None:
    """A library logger's own level wins over the root's: at error, their warnings still
    printed (uvicorn's at any TLS probe). Never below warning: httpx logs request URLs,
    which carry the API key, at info."""
    import logging

    from campaign_sync.logs import setup_logging

    libraries = ("httpx", "httpcore", "uvicorn", "uvicorn.error", "alembic", "apscheduler")
    before = {name: logging.getLogger(name).level for name in libraries}
    try:
        setup_logging("text", level)
        assert {name: logging.getLogger(name).level for name in libraries} == dict.fromkeys(
            libraries, expected
        )
    finally:
        for name, was in before.items():
            logging.getLogger(name).setLevel(was)


@pytest.mark.parametrize(("level", "said"), [("warning", True), ("error", False)])
def test_serve_logs_only_json_lines_even_for_a_bad_request_to_its_port(
    sqlite_url: str, sim_server: SimulatorServer, level: str, said: bool
) -> None:
    """uvicorn wrote its own plain text ("WARNING:  Invalid HTTP request received.") among
    serve's JSON lines when anything but HTTP reached the metrics port (a TLS probe, a
    port scan), and kept its warnings at CAMPAIGN_SYNC_LOG_LEVEL=error: reviews' finds."""
    import json
    import socket

    port = free_port()
    env = cli_env(
        sqlite_url, sim_server, CAMPAIGN_SYNC_INTERVAL_SECONDS="3600",
        CAMPAIGN_SYNC_METRICS_PORT=str(port), CAMPAIGN_SYNC_LOG_FORMAT="json",
        CAMPAIGN_SYNC_LOG_LEVEL=level,
    )  # fmt: skip
    assert cli("migrate", env=env).returncode == 0
    process = start_cli("serve", env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/livez").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port)) as probe:
            probe.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
            probe.settimeout(5)
            with contextlib.suppress(OSError):
                probe.recv(1024)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # each line one JSON object
    assert any("Invalid HTTP request" in record["message"] for record in records) is said, lines


def test_a_second_sigterm_cuts_serves_passes_short_saying_why(pg_url: str) -> None:
    """The passes a second signal cancels were said cut short by "the stop's grace period"
    (a review's find): that reason is for passes that outlast the grace alone."""
    slow = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=400, in_app=0, seed=4)
    slow.knobs.latency_seconds = 0.05
    with SimulatorServer(slow) as server:
        env = cli_env(
            pg_url, server, CAMPAIGN_SYNC_LOG_FORMAT="text", CAMPAIGN_SYNC_INTERVAL_SECONDS="3600"
        )
        process = start_cli("serve", env=env)
        engine = make_engine(pg_url)
        wait_until_counted(engine, "select count(*) from sync_runs")
        process.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        engine.dispose()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "grace period ran out" not in stderr, stderr[-3000:]
    assert "pass of app 'default' cut short: stopped at once" in stderr, stderr[-3000:]
