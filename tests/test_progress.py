"""The live display a person sees on a terminal, and the status table."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from datetime import UTC, datetime

import pyte
from rich.console import Console

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.db.models import sync_runs
from campaign_sync.db.session import make_engine
from campaign_sync.progress import RichProgress, print_status_table
from campaign_sync.simulator import Simulator, SimulatorServer
from campaign_sync.status import TypeStatus
from campaign_sync.sync_pass import PassResult
from tests.conftest import API_KEY, CANARY_REST_KEY
from tests.syncing import count
from tests.test_cli import cli_env


def test_the_live_display_shows_pages_details_and_429_waits() -> None:
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=140)
    with RichProgress(console) as progress:
        progress.page_swept("ios", CampaignType.PUSH, entries=100, needed=40)
        for _ in range(12):
            progress.detail_fetched("ios", CampaignType.PUSH)
        progress.retried("ios", CampaignType.PUSH)
        progress.retried("ios", CampaignType.PUSH)
        progress.rate_limited("ios", 30.0)
        progress.detail_fetched("ios", CampaignType.PUSH)
        shown = output.getvalue()
        assert "waiting" in shown and "after a 429" in shown
        progress.pass_finished(PassResult("ios", CampaignType.PUSH, "succeeded"))
    text = output.getvalue()
    assert "ios/push" in text and "13/40 details" in text and "1 pages" in text
    assert "2 retries" in text


def test_the_status_table_shows_each_app_and_type() -> None:
    now = datetime.now(UTC)
    row = TypeStatus(
        app="ios",
        campaign_type="push",
        last_run_id=3,
        last_run_status="failed",
        last_run_started_at=now,
        last_run_finished_at=now,
        last_run_error="Batch refused the credentials of app 'ios'",
        last_run_counts={"campaigns_inserted": 5, "campaigns_updated": 1},
        last_success_at=None,
        consecutive_failures=2,
        campaigns_stored=10,
        campaigns_deleted=1,
        oldest_detail_fetched_at=now,
        details_older_than_max_age=0,
        sweep_in_progress=True,
        sweep_offset=190,
        last_complete_sweep_at=None,
        stale=["never synced successfully"],
    )
    output = io.StringIO()
    print_status_table([row], Console(file=output, width=200))
    text = output.getvalue()
    assert "ios" in text and "failed" in text and "5/1/0/0" in text
    assert "resume at 190" in text and "never synced successfully" in text
    assert "Batch refused the credentials of app 'ios'" in text


def test_the_bar_never_jumps_backwards_as_pages_arrive() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=140)
    shown: list[float] = []
    with RichProgress(console) as progress:
        progress.page_swept("ios", CampaignType.PUSH, entries=100, needed=10)
        for _ in range(8):
            progress.detail_fetched("ios", CampaignType.PUSH)
            shown.append(progress._progress.tasks[0].percentage)
        progress.page_swept("ios", CampaignType.PUSH, entries=100, needed=90)  # more to do
        shown.append(progress._progress.tasks[0].percentage)
        progress.pass_finished(PassResult("ios", CampaignType.PUSH, "succeeded"))
        shown.append(progress._progress.tasks[0].percentage)
    assert shown == sorted(shown)
    assert shown[-1] == 100.0
    assert "8/100 details" in console.file.getvalue()  # type: ignore[attr-defined]


def run_on_a_terminal(args: list[str], env: dict[str, str], columns: int, rows: int) -> str:
    """Everything `args` writes to a pseudo-terminal of that size, as raw text."""
    main_fd, terminal_fd = pty.openpty()
    fcntl.ioctl(terminal_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        args, stdin=terminal_fd, stdout=terminal_fd, stderr=terminal_fd, env=env
    )
    os.close(terminal_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: the program closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        process.kill() if process.poll() is None else None
        process.wait(timeout=10)
        os.close(main_fd)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode(errors="replace")


def test_log_lines_never_break_into_the_live_display(pg_url: str) -> None:
    simulator = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=250, in_app=150)
    simulator.knobs.latency_seconds = 0.01
    simulator.knobs.fault_500 = 0.03  # retries log warnings while the bars are drawn
    with SimulatorServer(simulator) as server:
        env = cli_env(
            pg_url,
            server,
            TERM="xterm-256color",
            CAMPAIGN_SYNC_RETRY_BACKOFF_INITIAL_SECONDS="0.02",
        )
        raw = run_on_a_terminal(
            [sys.executable, "-m", "campaign_sync", "sync"], env, columns=160, rows=300
        )
    screen = pyte.Screen(160, 300)
    pyte.Stream(screen).feed(raw)
    lines = [line.rstrip() for line in screen.display if line.strip()]
    bar = re.compile(r"^default/(push|in-app)\s{3,}")
    log_line = re.compile(r"\d\d:\d\d:\d\d (INFO|WARNING|ERROR) ")
    logs = [line for line in lines if log_line.search(line)]
    assert any("pass succeeded" in line for line in logs)  # logged while the bars were up
    assert any("WARNING" in line for line in logs)
    assert [line for line in logs if bar.search(line)] == []
    for label in ("default/push", "default/in-app"):
        drawn = [line for line in lines if bar.search(line) and line.startswith(label + " ")]
        assert len(drawn) == 1, drawn  # drawn once, not again in the scroll-back
        assert "succeeded" in drawn[0]
    assert [line for line in lines if "in_app" in line] == []  # one spelling: in-app
    summary = [line for line in lines if line.startswith(("default/push:", "default/in-app:"))]
    assert len(summary) == 2 and all("succeeded - " in line for line in summary)


def test_a_terminal_closed_under_sync_ends_its_pass_cleanly(pg_url: str) -> None:
    """An ssh session ended under a `sync` on its terminal: SIGHUP killed it at once, its
    run left `running` until the next pass; stopped like SIGTERM, it then met EIO on the
    live display's last write and on its summary and exited 1 "unexpected error". Now the
    pass stops after its page, is recorded `interrupted`, and the command exits 0."""
    simulator = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=400, in_app=0)
    simulator.knobs.latency_seconds = 0.02
    engine = make_engine(pg_url)
    with SimulatorServer(simulator) as server:
        env = cli_env(pg_url, server, TERM="xterm-256color")
        main_fd, terminal_fd = pty.openpty()

        def own_terminal() -> None:  # a session whose controlling terminal this is
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        process = subprocess.Popen(
            [sys.executable, "-m", "campaign_sync", "sync", "--type", "push"],
            stdin=terminal_fd, stdout=terminal_fd, stderr=terminal_fd, env=env,
            preexec_fn=own_terminal,
        )  # fmt: skip
        os.close(terminal_fd)
        try:
            os.set_blocking(main_fd, False)
            deadline = time.monotonic() + 60
            while count(engine, "select count(*) from campaigns") == 0:
                assert time.monotonic() < deadline and process.poll() is None
                with contextlib.suppress(OSError):  # keep the terminal's buffer drained
                    os.read(main_fd, 65536)
                time.sleep(0.02)
        finally:
            os.close(main_fd)  # the terminal goes away: SIGHUP to its session
        code = process.wait(timeout=60)
    with engine.connect() as conn:
        statuses = (
            conn.execute(sync_runs.select().with_only_columns(sync_runs.c.status)).scalars().all()
        )
    engine.dispose()
    assert (code, statuses) == (0, ["interrupted"])
