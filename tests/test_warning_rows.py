"""A problem that lasts is one `sync_warnings` row, not one a pass: a warning identical to
one the same pass or the pair's previous pass recorded extends that row (`times_seen`,
`last_seen_at`, `last_run_id`); anything else is a row of its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from campaign_sync.db.models import sync_runs, sync_warnings
from campaign_sync.db.session import make_engine
from campaign_sync.db.warnings import record_warnings
from campaign_sync.domain import CampaignType
from tests.fake_batch import PUSH, FakeBatch, campaign_detail, sync_fake

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    """(campaign_token, field, raw_value, times_seen, run_id, last_run_id) of every row."""
    w = sync_warnings.c
    with engine.connect() as conn:
        found = conn.execute(
            select(w.campaign_token, w.field, w.raw_value, w.times_seen, w.run_id, w.last_run_id)
            .order_by(w.id)
        )  # fmt: skip
        return [tuple(row) for row in found]


def _fake_with_lasting_problems() -> FakeBatch:
    """Two stored campaigns; between them an entry that is no campaign, and a listed
    campaign whose detail answers 404 (never stored: a warning at each pass)."""
    fake = FakeBatch()
    fake.add(PUSH, "first")
    fake.entries[PUSH].insert(0, "1")
    fake.entries[PUSH].insert(0, json.dumps({**campaign_detail(PUSH, "ghost")}))
    fake.add(PUSH, "last")
    return fake


def test_what_stays_wrong_in_the_list_is_one_row_seen_again(any_db_url: str) -> None:
    fake = _fake_with_lasting_problems()
    runs = []
    for _ in range(3):
        [result] = sync_fake(any_db_url, fake)
        assert result.status == "succeeded"
        assert result.counts.warnings == 2  # each pass still counts what it warned of
        runs.append(result.run_id)
    engine = make_engine(any_db_url)
    assert _rows(engine) == [
        (None, "list_entry", "1", 3, runs[0], runs[2]),
        ("ghost", "detail", None, 3, runs[0], runs[2]),
    ]
    with engine.connect() as conn:
        seen = conn.execute(select(sync_warnings.c.created_at, sync_warnings.c.last_seen_at)).all()
        warned = conn.execute(
            select(sync_runs.c.warnings).where(sync_runs.c.id.in_(runs)).order_by(sync_runs.c.id)
        ).scalars()
        assert list(warned) == [2, 2, 2]
    assert all(last > first for first, last in seen), seen
    engine.dispose()


def test_a_problem_gone_for_a_pass_then_back_is_a_row_of_its_own(any_db_url: str) -> None:
    fake = _fake_with_lasting_problems()
    junk = fake.entries[PUSH].pop(fake.entries[PUSH].index("1"))
    runs = [sync_fake(any_db_url, fake)[0].run_id]
    fake.entries[PUSH].insert(1, junk)
    runs.append(sync_fake(any_db_url, fake)[0].run_id)
    fake.entries[PUSH].remove(junk)
    runs.append(sync_fake(any_db_url, fake)[0].run_id)
    fake.entries[PUSH].insert(1, junk)
    runs.append(sync_fake(any_db_url, fake)[0].run_id)
    engine = make_engine(any_db_url)
    assert _rows(engine) == [
        ("ghost", "detail", None, 4, runs[0], runs[3]),  # seen by every pass
        (None, "list_entry", "1", 1, runs[1], runs[1]),
        (None, "list_entry", "1", 1, runs[3], runs[3]),
    ]
    engine.dispose()


def _run(engine: Engine, app: str = "default") -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(sync_runs)
                .values(app=app, campaign_type="push", started_at=T0, status="succeeded")
                .returning(sync_runs.c.id)
            ).scalar_one()
        )


def _warning(run_id: int | None, app: str = "default", **changes: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "campaign_id": None,
        "app": app,
        "campaign_type": CampaignType.PUSH.value,
        "campaign_token": "tok",
        "field": "name",
        "raw_value": "x",
        "message": "not text",
        "created_at": T0 + timedelta(minutes=run_id or 0),
        **changes,
    }


@pytest.mark.parametrize(
    ("earlier", "later", "rows"),
    [
        # The same warning at the next pass of the pair: one row, seen twice.
        pytest.param(
            [_warning(1)], [_warning(2)], [("tok", "x", 2, 1, 2)], id="next pass"
        ),
        # Twice in one pass (a page read again): one row.
        pytest.param([], [_warning(2), _warning(2)], [("tok", "x", 2, 2, 2)], id="one pass"),
        # Two passes apart (the problem was not seen, or that pass failed first).
        pytest.param([_warning(1)], [_warning(3)], [("tok", "x", 1, 1, 1), ("tok", "x", 1, 3, 3)],
                     id="a pass between"),
        # Any other value, token, field or message is another warning.
        pytest.param([_warning(1)], [_warning(2, raw_value="y")],
                     [("tok", "x", 1, 1, 1), ("tok", "y", 1, 2, 2)], id="other value"),
        pytest.param([_warning(1)], [_warning(2, raw_value=None)],
                     [("tok", "x", 1, 1, 1), ("tok", None, 1, 2, 2)], id="value gone"),
        pytest.param([_warning(1, raw_value=None)], [_warning(2, raw_value=None)],
                     [("tok", None, 2, 1, 2)], id="no value twice"),
        pytest.param([_warning(1, campaign_token=None)], [_warning(2, campaign_token=None)],
                     [(None, "x", 2, 1, 2)], id="no token twice"),
        pytest.param([_warning(1)], [_warning(2, campaign_token=None)],
                     [("tok", "x", 1, 1, 1), (None, "x", 1, 2, 2)], id="token gone"),
        pytest.param([_warning(1)], [_warning(2, message="other")],
                     [("tok", "x", 1, 1, 1), ("tok", "x", 1, 2, 2)], id="other message"),
        # Another app's pass in between is not this pair's previous pass: it is skipped.
        pytest.param([_warning(1)], [_warning(3)], [("tok", "x", 2, 1, 3)],
                     id="another app's pass between"),
        # A write-back's warnings (no run) are each a row.
        pytest.param([_warning(None)], [_warning(None)],
                     [("tok", "x", 1, None, None), ("tok", "x", 1, None, None)], id="write-backs"),
    ],
)  # fmt: skip
def test_which_warnings_extend_a_row(
    any_db_url: str,
    request: pytest.FixtureRequest,
    earlier: list[dict[str, Any]],
    later: list[dict[str, Any]],
    rows: list[tuple[Any, ...]],
) -> None:
    """Runs 1 to 3 of app 'default' (run 2 of app 'other' in the case that says so)."""
    engine = make_engine(any_db_url)
    between = "another app's" in request.node.callspec.id
    assert [_run(engine, "other" if between and n == 2 else "default") for n in (1, 2, 3)] == [
        1,
        2,
        3,
    ]
    for batch in (earlier, later):
        with engine.begin() as conn:
            record_warnings(conn, batch)
    w = sync_warnings.c
    with engine.connect() as conn:
        found = conn.execute(
            select(w.campaign_token, w.raw_value, w.times_seen, w.run_id, w.last_run_id)
            .order_by(w.id)
        )  # fmt: skip
        assert [tuple(row) for row in found] == rows
        stamps = conn.execute(
            select(w.run_id, w.last_run_id, w.created_at, w.last_seen_at).order_by(w.id)
        ).all()
    for run_id, last_run_id, created, last_seen in stamps:  # _warning's times: T0 + run minutes
        assert created == T0 + timedelta(minutes=run_id or 0)
        assert last_seen == T0 + timedelta(minutes=last_run_id or 0)
    engine.dispose()


def test_a_warning_of_another_app_is_never_folded_into_ours(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    ours, theirs = _run(engine), _run(engine, "other")
    with engine.begin() as conn:
        record_warnings(conn, [_warning(ours)])
    with engine.begin() as conn:
        record_warnings(conn, [_warning(theirs, app="other")])
    w = sync_warnings.c
    with engine.connect() as conn:
        found = conn.execute(select(w.app, w.times_seen).order_by(w.id)).all()
    assert [tuple(row) for row in found] == [("default", 1), ("other", 1)]
    engine.dispose()
