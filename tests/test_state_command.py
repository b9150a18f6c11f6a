"""`campaign-sync state show|reset`: what the cursor holds, and a reset that makes the next
pass start a fresh sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.db.locks import try_lease
from campaign_sync.db.models import sync_state
from campaign_sync.db.types import utcnow
from campaign_sync.simulator import SimulatorServer
from tests.helpers import run
from tests.syncing import run_sync

pytestmark = pytest.mark.usefixtures("restore_logging")


def interrupted_sweeps(engine: Engine) -> None:
    """A push sweep stopped at offset 190, an in-app one complete."""
    with engine.begin() as conn:
        conn.execute(
            insert(sync_state),
            [
                {"app": "default", "campaign_type": "push", "sweep_id": 4,
                 "sweep_in_progress": True, "sweep_offset": 190,
                 "sweep_anchor_tokens": ["a", "b"], "updated_at": utcnow()},
                {"app": "default", "campaign_type": "in_app", "sweep_id": 2,
                 "sweep_in_progress": False, "sweep_offset": 0, "sweep_anchor_tokens": [],
                 "updated_at": utcnow()},
            ],
        )  # fmt: skip


def cursor(engine: Engine, campaign_type: str) -> tuple[int, bool, int]:
    s = sync_state.c
    with engine.connect() as conn:
        row = conn.execute(
            select(s.sweep_id, s.sweep_in_progress, s.sweep_offset).where(
                s.campaign_type == campaign_type
            )
        ).one()
    return int(row[0]), bool(row[1]), int(row[2])


def test_show_says_where_each_sweep_stands(db: Engine, pg_url: str) -> None:
    interrupted_sweeps(db)
    result = run("state", "show", env={"DATABASE_URL": pg_url})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "default/in-app: sweep 2 done, the next pass starts a fresh sweep; "
        "last complete sweep never",
        "default/push: sweep 4 in progress, resumes at offset 190; last complete sweep never",
    ]
    shown = json.loads(
        run("state", "show", "--type", "push", "--json", env={"DATABASE_URL": pg_url}).stdout
    )
    assert [(c["app"], c["type"], c["sweep_offset"]) for c in shown] == [("default", "push", 190)]
    everything = json.loads(run("state", "show", "--json", env={"DATABASE_URL": pg_url}).stdout)
    assert {(c["campaign_type"], c["type"]) for c in everything} == {
        ("push", "push"),
        ("in_app", "in-app"),  # the value machines read elsewhere (status --json), and ours
    }


def test_reset_asks_first_and_no_keeps_the_cursor(db: Engine, pg_url: str) -> None:
    interrupted_sweeps(db)
    result = run("state", "reset", "--type", "push", env={"DATABASE_URL": pg_url}, stdin="n\n")
    assert result.exit_code == 1
    assert "Reset the cursor of default/push?" in result.stdout
    assert cursor(db, "push") == (4, True, 190)


def test_reset_makes_the_next_pass_start_a_fresh_sweep(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    interrupted_sweeps(db)
    result = run("state", "reset", "--type", "push", "--yes", env={"DATABASE_URL": pg_url})
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "reset default/push: the next pass starts a fresh sweep, and records its live API key "
        "as the one their campaigns are synced with\n"
    )
    assert cursor(db, "push") == (4, False, 0)  # the sweep counter never goes back
    assert cursor(db, "in_app") == (2, False, 0)
    [push] = run_sync(pg_url, sim_server, [CampaignType.PUSH])
    assert push.status == "succeeded"
    assert cursor(db, "push") == (5, False, 0)  # a new sweep, not sweep 4 resumed


def test_reset_matching_nothing_says_so(db: Engine, pg_url: str, tmp_path: Path) -> None:
    interrupted_sweeps(db)
    config = tmp_path / "apps.toml"
    config.write_text('[[apps]]\nname = "android"\napi_key = "K"\n')
    env = {"DATABASE_URL": pg_url, "CAMPAIGN_SYNC_CONFIG": str(config)}
    result = run("state", "reset", "--app", "android", "--yes", env=env)
    assert result.exit_code == 0
    assert result.stdout == "no cursor matches: nothing to reset\n"
    assert cursor(db, "push") == (4, True, 190)


@pytest.mark.parametrize("command", ["show", "reset"])
def test_an_app_neither_configured_nor_with_a_cursor_is_a_typo(
    command: str, db: Engine, pg_url: str
) -> None:
    """`state show --app nope` said 'no cursor yet', exit 0, where `sync --app nope` names
    the apps there are."""
    interrupted_sweeps(db)
    args = ["state", command, "--app", "nope", *(["--yes"] if command == "reset" else [])]
    result = run(*args, env={"DATABASE_URL": pg_url, "BATCH_API_KEY": "k"})
    assert result.exit_code == 2
    assert result.stderr == (
        "campaign-sync: no app named 'nope'; configured apps: default; apps with a cursor: "
        "default\n"
    )
    assert cursor(db, "push") == (4, True, 190)


def test_reset_refuses_while_a_pass_holds_the_cursor(db: Engine, pg_url: str) -> None:
    """All or none: the cursors not held were reset before the busy one was met, under a
    message naming only that one, and the refusal was stamped as a skipped pass (a fresh
    review)."""
    interrupted_sweeps(db)
    with db.begin() as conn:  # the in-app sweep in progress too, and met first
        conn.execute(
            update(sync_state)
            .where(sync_state.c.campaign_type == "in_app")
            .values(sweep_in_progress=True, sweep_offset=95)
        )
    lease = try_lease(db, "default", CampaignType.PUSH, 60)
    assert not isinstance(lease, str)
    try:
        result = run("state", "reset", "--yes", env={"DATABASE_URL": pg_url})
    finally:
        lease.release()
    assert result.exit_code == 1
    assert result.stderr.startswith(f"campaign-sync: default/push (held by {lease.holder}")
    assert result.stderr.endswith(
        ") is being synced by another process; nothing was reset: reset once that pass is over\n"
    )
    assert cursor(db, "push") == (4, True, 190)
    assert cursor(db, "in_app")[1:] == (True, 95)
    with db.connect() as conn:
        skipped = conn.execute(select(sync_state.c.last_skipped_at)).scalars().all()
    assert skipped == [None, None]
