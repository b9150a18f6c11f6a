"""One `sync_warnings` row for a problem, however many passes warn of it: a pass's warning
identical to a stored one of the app and type (token, campaign, field, raw value) extends
the newest such row (`times_seen`, `last_seen_at`, `last_run_id`, the latest `message`);
anything else, and a write-back's warnings, are rows of their own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, select

from campaign_sync.db.models import sync_runs, sync_warnings
from campaign_sync.db.session import make_engine
from campaign_sync.db.warnings import record_warnings
from campaign_sync.domain import CampaignType
from tests.fake_batch import PUSH, FakeBatch, campaign_detail, sync_fake, sync_through

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


def test_a_problem_gone_for_a_pass_then_back_extends_its_row(any_db_url: str) -> None:
    """...as it does after passes that did not reach its page (a stop, a failure) or did
    not ask (push statistics, asked once an hour)."""
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
        ("ghost", "detail", None, 4, runs[0], runs[3]),
        (None, "list_entry", "1", 2, runs[1], runs[3]),
    ]
    engine.dispose()


def test_a_detail_that_keeps_failing_is_one_row_with_the_latest_wording(any_db_url: str) -> None:
    """Its message names the attempts and seconds spent, which differ at each pass: a
    review found a new row at every pass when the message was part of the key."""
    fake = FakeBatch()
    fake.add(PUSH, "fine")
    fake.add(PUSH, "broken")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.raw_path.decode().endswith("/broken"):
            body = {"code": 2, "type": "MAINTENANCE_ERROR", "message": "down"}
            return httpx.Response(503, json=body)
        return fake.handler(request)

    said = []
    for _ in range(3):
        [result] = sync_through(
            any_db_url, handler, retry_max_attempts=2, retry_backoff_initial_seconds=0.01
        )
        assert result.status == "succeeded"
        said.append(_messages(make_engine(any_db_url)))
    engine = make_engine(any_db_url)
    [(token, field, _, times, _, _)] = _rows(engine)
    assert (token, field, times) == ("broken", "detail", 3)
    assert "gave up" in said[-1][0] and len(said[-1]) == 1
    engine.dispose()


def _messages(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        found = list(conn.execute(select(sync_warnings.c.message)).scalars())
    engine.dispose()
    return found


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
        # Passes apart (the problem was not seen, that pass failed first, or did not ask).
        pytest.param([_warning(1)], [_warning(3)], [("tok", "x", 2, 1, 3)], id="a pass between"),
        # Any other value, token or field is another warning; another wording is not.
        pytest.param([_warning(1)], [_warning(2, raw_value="y")],
                     [("tok", "x", 1, 1, 1), ("tok", "y", 1, 2, 2)], id="other value"),
        pytest.param([_warning(1)], [_warning(2, raw_value=None)],
                     [("tok", "x", 1, 1, 1), ("tok", None, 1, 2, 2)], id="value gone"),
        pytest.param([_warning(1, raw_value=None)], [_warning(2, raw_value=None)],
                     [("tok", None, 2, 1, 2)], id="no value twice"),
        pytest.param([_warning(1, campaign_token=None)], [_warning(2, campaign_token=None)],
                     [(None, "x", 2, 1, 2)], id="no token twice"),
        pytest.param([_warning(1, campaign_token=None)],
                     [_warning(2, campaign_token=None, raw_value="y")],
                     [(None, "x", 1, 1, 1), (None, "y", 1, 2, 2)], id="no token, other value"),
        pytest.param([_warning(1)], [_warning(2, campaign_token=None)],
                     [("tok", "x", 1, 1, 1), (None, "x", 1, 2, 2)], id="token gone"),
        pytest.param([_warning(1)], [_warning(2, field="title")],
                     [("tok", "x", 1, 1, 1), ("tok", "x", 1, 2, 2)], id="other field"),
        pytest.param([_warning(1)], [_warning(2, message="other")], [("tok", "x", 2, 1, 2)],
                     id="other wording"),
        # Another app's pass in between changes nothing.
        pytest.param([_warning(1)], [_warning(3)], [("tok", "x", 2, 1, 3)],
                     id="another app's pass between"),
        # A write-back's warnings (no run) are each a row, and no pass extends them.
        pytest.param([_warning(None)], [_warning(2)],
                     [("tok", "x", 1, None, None), ("tok", "x", 1, 2, 2)],
                     id="a write-back's, then a pass's"),
        pytest.param([_warning(1), _warning(None)], [_warning(2)],
                     [("tok", "x", 1, None, None), ("tok", "x", 2, 1, 2)],
                     id="a write-back's between two passes'"),
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
        if "wording" in request.node.callspec.id:  # the latest wording is kept
            assert conn.execute(select(w.message)).scalar_one() == "other"
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


def test_a_token_no_btree_can_index_is_warned_of_and_folded(pg_url: str) -> None:
    """A token over ~2,700 bytes that do not compress is one PostgreSQL's btree indexes
    refuse (the campaign is skipped with a warning naming it): the index that finds a
    warning's row must take it, or that warning would fail its page."""
    import random

    rng = random.Random(14)
    token = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(3_000))  # ~9,000 bytes
    engine = make_engine(pg_url)
    first, second = _run(engine), _run(engine)
    for run_id in (first, second):
        with engine.begin() as conn:
            record_warnings(conn, [_warning(run_id, campaign_token=token, field="campaign")])
    w = sync_warnings.c
    with engine.connect() as conn:
        found = conn.execute(select(w.times_seen, w.run_id, w.last_run_id)).all()
        using = conn.exec_driver_sql(
            "select indexdef from pg_indexes where indexname = 'ix_sync_warnings_campaign_token'"
        ).scalar_one()
    assert [tuple(row) for row in found] == [(2, first, second)]
    assert "USING hash (campaign_token) WHERE (last_run_id IS NOT NULL)" in using
    engine.dispose()


def test_a_null_list_entry_is_warned_of_as_null_and_folded(any_db_url: str) -> None:
    """Its warning had neither token nor value, which the lookup's hash index cannot find:
    looking it up read the whole table (a review's find). Its value is the text null."""
    fake = FakeBatch()
    fake.add(PUSH, "first")
    fake.entries[PUSH].insert(0, "null")
    fake.add(PUSH, "last")
    runs = [sync_fake(any_db_url, fake)[0].run_id for _ in range(2)]
    engine = make_engine(any_db_url)
    assert _rows(engine) == [(None, "list_entry", "null", 2, runs[0], runs[1])]
    engine.dispose()
