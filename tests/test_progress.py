"""The live display a person sees on a terminal, and the status table."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.engine import PassResult
from campaign_sync.progress import RichProgress, print_status_table
from campaign_sync.status import TypeStatus


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
