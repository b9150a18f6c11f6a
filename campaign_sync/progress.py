"""What a person sees: a live progress display on a terminal, and the status table.

Off a terminal nothing is drawn; the structured logs tell the same story.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from campaign_sync.domain import CampaignType
from campaign_sync.logs import logging_through, printable, printable_lines
from campaign_sync.outcome import PassResult, RunCounts
from campaign_sync.status import age
from campaign_sync.sync_pass import NoProgressSink

if TYPE_CHECKING:
    from campaign_sync.status import TypeStatus


class RichProgress(NoProgressSink):
    """Per app and type: pages swept, details fetched of those needed, 429 waits.

    How many details a pass needs is known only once its sweep ends, so the bar pulses
    until the pass finishes (a total that grows would make it jump backwards); the text
    says what is known so far. Log lines go through the display's console meanwhile.
    """

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            TextColumn("{task.fields[fetched]}/{task.fields[needed]} details"),
            TextColumn("{task.fields[pages]} pages"),
            TextColumn("{task.fields[retries]} retries"),
            TextColumn("[yellow]{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[tuple[str, CampaignType], TaskID] = {}
        self._pauses: dict[str, float] = {}
        self._logging = contextlib.ExitStack()

    def __enter__(self) -> RichProgress:
        self._logging.enter_context(logging_through(self._progress.console))
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
        self._logging.close()

    def _task(self, app: str, campaign_type: CampaignType) -> TaskID:
        key = (app, campaign_type)
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(
                f"{app}/{campaign_type.label}",
                total=None,
                fetched=0,
                needed=0,
                pages=0,
                retries=0,
                note="",
            )
        return self._tasks[key]

    def _field(self, task: TaskID, name: str) -> int:
        return int(self._progress.tasks[task].fields[name])

    def _note(self, app: str) -> str:
        until = self._pauses.get(app, 0.0)
        remaining = until - time.monotonic()
        return f"waiting {remaining:.0f}s after a 429" if remaining > 0.5 else ""

    def page_swept(self, app: str, campaign_type: CampaignType, entries: int, needed: int) -> None:
        task = self._task(app, campaign_type)
        self._progress.update(
            task,
            needed=self._field(task, "needed") + needed,
            pages=self._field(task, "pages") + 1,
            note=self._note(app),
        )

    def detail_fetched(self, app: str, campaign_type: CampaignType) -> None:
        task = self._task(app, campaign_type)
        self._progress.update(task, fetched=self._field(task, "fetched") + 1, note=self._note(app))

    def retried(self, app: str, campaign_type: CampaignType) -> None:
        task = self._task(app, campaign_type)
        self._progress.update(task, retries=self._field(task, "retries") + 1, note=self._note(app))

    def rate_limited(self, app: str, seconds: float) -> None:
        self._pauses[app] = time.monotonic() + seconds
        for (task_app, _), task in self._tasks.items():
            if task_app == app:
                self._progress.update(task, note=self._note(app))
        self._progress.refresh()  # show the wait now, not at the next tick

    def pass_finished(self, result: PassResult) -> None:
        task = self._task(result.app, result.campaign_type)
        self._progress.update(task, total=1, completed=1, note=result.status)


# The campaign counters the status table shows (warnings have a column of their own).
TABLE_COUNTERS = tuple(n for n in RunCounts.names("campaigns") if n.startswith("campaigns_"))


def print_status_table(report: list[TypeStatus], console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    if not report:
        console.print("No pass has run yet: try campaign-sync sync")
        return
    table = Table(title="campaign-sync status")
    for heading in (
        "app",
        "type",
        "last pass",
        "outcome",
        "ins/upd/unch/del",
        "stored",
        "oldest detail",
        "cursor",
        "next pass",
        "stale",
    ):
        table.add_column(heading)
    for row in report:
        counts = row.last_run_counts
        table.add_row(
            row.app,
            CampaignType(row.campaign_type).label,
            f"{age(row.last_run_started_at)} ago" if row.last_run_started_at else "-",
            (row.last_run_status or "-")
            + (f"; one skipped {age(row.last_skipped_at)} ago" if row.last_skipped_at else ""),
            "/".join(str(counts.get(k, 0)) for k in TABLE_COUNTERS) if counts else "-",
            f"{row.campaigns_stored - row.campaigns_deleted} (+{row.campaigns_deleted} deleted)",
            f"{age(row.oldest_detail_fetched_at)} old",
            f"resume at {row.sweep_offset}" if row.sweep_in_progress else "complete",
            row.next_pass,
            Text("; ".join(row.stale) or "ok"),
        )
    console.print(table)
    for row in report:
        if row.stats_last_fetch_at is not None:
            console.print(
                f"{row.app} push stats: last fetch {age(row.stats_last_fetch_at)} ago, "
                f"{row.stats_campaigns_covered} campaign(s) covered"
            )
    for row in report:
        label = CampaignType(row.campaign_type).label
        # Texts, not markup: an error quotes Batch's words ("[/messages/0]" was read as a
        # closing tag), and is printed unwrapped (wrapping a long one took minutes).
        if row.last_run_status == "failed" and row.last_run_error:
            said = printable_lines(row.last_run_error)  # Batch's words, a URL's, a path's
            error = Text.assemble((f"{row.app}/{label}", "red"), ": ", said)
            console.print(error, soft_wrap=True)
        if row.lock_held:
            holder = printable(f"{row.app}/{label}: a pass holds the lock now ({row.lock_holder})")
            console.print(Text(holder), soft_wrap=True)
