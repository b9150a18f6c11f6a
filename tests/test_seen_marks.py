"""An unchanged pass writes nothing to `campaigns` and its children: the seen marks go to
`campaign_sightings` (db/sightings.py), and `campaigns.last_seen_at` moves only once it is
more than a day behind."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text, update

from campaign_sync.db.models import campaign_sightings, campaigns
from campaign_sync.db.session import make_engine
from campaign_sync.simulator import SimulatorServer
from tests.syncing import run_sync, wait_until_counted

WATCHED = ("campaigns", "messages", "message_actions", "triggers", "targeting", "campaign_versions")


def tuples_written(url: str) -> dict[str, tuple[int, int, int]]:
    """Rows inserted, updated and deleted per table since the database began, as PostgreSQL
    counts them (pg_stat_user_tables). A backend reports its counts at the latest when it
    exits, so this waits until no other session is connected, then drops its own cached
    snapshot (PostgreSQL 15: stats_fetch_consistency caches them per transaction)."""
    engine = make_engine(url)
    try:
        wait_until_counted(
            engine,
            "select (count(*) = 0)::int from pg_stat_activity "
            "where datname = current_database() and pid <> pg_backend_pid()",
        )
        with engine.connect() as conn:
            conn.execute(text("select pg_stat_clear_snapshot()"))
            rows = conn.execute(
                text(
                    "select relname, n_tup_ins, n_tup_upd, n_tup_del from pg_stat_user_tables "
                    "where schemaname = current_schema()"
                )
            ).all()
    finally:
        engine.dispose()
    return {name: (ins, upd, dele) for name, ins, upd, dele in rows}


def test_an_unchanged_pass_writes_no_row_of_campaigns_or_their_children(
    pg_url: str, sim_server: SimulatorServer
) -> None:
    empty = tuples_written(pg_url)  # counts persist across tests in the session database
    run_sync(pg_url, sim_server)
    before = tuples_written(pg_url)
    # the simulator's 60 push + 40 in-app campaigns
    assert before["campaigns"][0] - empty["campaigns"][0] == 100

    run_sync(pg_url, sim_server)
    after = tuples_written(pg_url)

    assert {name: after[name] for name in WATCHED} == {name: before[name] for name in WATCHED}
    sightings = after["campaign_sightings"], before["campaign_sightings"]
    moved = tuple(a - b for a, b in zip(*sightings, strict=True))
    assert moved == (0, 100, 0)  # every campaign's mark moved, in its own table


def test_last_seen_at_moves_once_it_is_more_than_a_day_behind(
    any_db_url: str, sim_server: SimulatorServer
) -> None:
    run_sync(any_db_url, sim_server)
    engine = make_engine(any_db_url)
    c = campaigns.c
    with engine.begin() as conn:
        first, second = conn.execute(select(c.id, c.last_seen_at).order_by(c.id).limit(2)).all()
        stale, recent = first[1] - timedelta(days=2), second[1] - timedelta(hours=23)
        conn.execute(update(campaigns).where(c.id == first[0]).values(last_seen_at=stale))
        conn.execute(update(campaigns).where(c.id == second[0]).values(last_seen_at=recent))

    run_sync(any_db_url, sim_server)

    s = campaign_sightings.c
    with engine.connect() as conn:
        seen = dict(
            conn.execute(select(c.id, c.last_seen_at).where(c.id.in_([first[0], second[0]]))).all()
        )
        exact = dict(conn.execute(select(s.campaign_id, s.last_seen_at)).all())
    engine.dispose()
    assert exact[first[0]] > first[1]  # the second pass's sighting
    assert seen == {first[0]: exact[first[0]], second[0]: recent}
