"""docs/queries.sql, the analysts' questions: every query runs on a PostgreSQL database
synced from the simulator (dated around now) and returns rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.conftest import API_KEY, CANARY_REST_KEY
from tests.syncing import run_sync

QUERIES = Path(__file__).resolve().parent.parent / "docs" / "queries.sql"
PUSH, IN_APP = CampaignType.PUSH, CampaignType.IN_APP


def queries() -> list[tuple[str, str]]:
    """(question, SQL) for each numbered question of the file."""
    found = []
    for chunk in QUERIES.read_text().split(";\n"):
        match = re.search(r"^-- (\d+\. .+)$", chunk, re.M)
        if match:
            found.append((match.group(1), chunk.strip()))
    return found


def test_the_file_asks_at_least_ten_questions() -> None:
    numbers = [question.split(".")[0] for question, _ in queries()]
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)]
    assert len(numbers) >= 10


@pytest.fixture
def synced(pg_url: str, db: Engine) -> Engine:
    """Two days of history: a first sync dated back two days, then a pass that sees a
    rename, a stop, a campaign going live, a message edited and a deletion."""
    simulator = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=200, in_app=100)
    with SimulatorServer(simulator) as server:
        run_sync(pg_url, server, stats=True)
        with db.begin() as conn:
            conn.execute(
                text(
                    "update campaign_versions set valid_from = valid_from - interval '2 days', "
                    "recorded_at = recorded_at - interval '2 days'"
                )
            )
        push = simulator.store(PUSH)
        details = push.details()
        live = [t for t in push.tokens() if details[t]["live"]]
        stopped = [t for t in push.tokens() if not details[t]["live"]]
        push.rename(live[0], "Renamed for the analysts")
        push.change_inside_detail(live[0])
        push.replace(live[1], {**details[live[1]], "live": False})
        push.replace(stopped[0], {**details[stopped[0]], "live": True})
        push.delete(live[2])
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        push.create(
            {**details[live[3]], "campaign_token": "brandnewlive", "name": "Launched live",
             "live": True, "created_date": now}
        )  # fmt: skip
        run_sync(pg_url, server)
    return db


def test_every_query_returns_rows(synced: Engine) -> None:
    """...and question 12 lists a campaign created live beside one turned live: it
    counted only went_live changes, and a new campaign's first version is 'created' (a
    fresh analyst review). One test, as the synced database takes seconds to build."""
    empty = []
    with synced.connect() as conn:
        for question, sql in queries():
            if not conn.execute(text(sql)).first():
                empty.append(question)
        twelve = next(sql for question, sql in queries() if question.startswith("12."))
        went_live = [row.name for row in conn.execute(text(twelve))]
        turned_live = conn.execute(
            text("select name from v_campaign_changes where change = 'went_live'")
        ).scalar_one()
    assert empty == []
    assert "Launched live" in went_live and turned_live in went_live
