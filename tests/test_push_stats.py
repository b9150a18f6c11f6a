"""Push campaign statistics: the route in the client and the simulator, the selection
rule, the transform, the upsert, the views, the shared 429 pause, and stats off."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select, text, update

from campaign_sync import stats_sync
from campaign_sync.batch import errors
from campaign_sync.batch.client import GONE, Paused, Responded
from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.db.models import (
    campaign_stats_daily,
    campaign_stats_fetches,
    campaigns,
    sync_runs,
    sync_warnings,
)
from campaign_sync.db.session import make_engine
from campaign_sync.metrics import Metrics
from campaign_sync.outcome import RunCounts
from campaign_sync.push_stats import StatsCandidate, StatsPolicy, stats_due, transform_stats
from campaign_sync.runner import pass_options, sync_apps
from campaign_sync.simulator import Simulator, SimulatorServer
from campaign_sync.status import collect_status
from campaign_sync.sync_pass import PassOptions, PassResult
from tests.conftest import API_KEY, CANARY_REST_KEY, make_app, make_settings
from tests.fake_batch import PUSH, FakeBatch, sync_fake
from tests.helpers import AlwaysError, batch_error, mock_client, ok
from tests.test_cli import cli, cli_env
from tests.test_ratelimit import sim_client

PLAIN = {
    "campaign_token": "plain",
    "detail": [
        {"date": "2026-11-20", "sent": 1200, "sent_optins": 900, "direct_open": 80,
         "influenced_open": 40, "reengaged": 5, "errors": 1},
    ],
}  # fmt: skip
AB_TEST = {
    "campaign_token": "ab",
    "detail": [
        {"date": "2026-11-21", "sent": 1000, "direct_open": 70, "influenced_open": 30,
         "reengaged": 9, "errors": 0,
         "versions": {"a": {"sent": 500, "sent_optins": 450, "direct_open": 45,
                            "influenced_open": 20, "reengaged": 6},
                      "b": {"sent": 500, "sent_optins": 440, "direct_open": 25,
                            "influenced_open": 10, "reengaged": 3}}},
    ],
}  # fmt: skip


def run(coro):
    return asyncio.run(coro)


# -- the client --------------------------------------------------------------------------


def test_the_client_asks_the_documented_stats_route_and_counts_the_call() -> None:
    seen: list[httpx.Request] = []

    answered = {**AB_TEST, "campaign_token": "ab/1"}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(answered)

    calls = RunCounts()

    async def fetch() -> Any:
        async with mock_client(handler) as client:
            return await client.push_stats("ab/1", counts=calls)

    answer = run(fetch())
    assert seen[0].method == "GET"
    assert seen[0].url.raw_path == f"/1.1/{API_KEY}/campaigns/stats/ab%2F1".encode()
    assert seen[0].headers["X-Authorization"] == CANARY_REST_KEY
    assert answer == answered
    assert calls.stats_calls == 1 and calls.detail_calls == 0


@pytest.mark.parametrize(
    ("status", "error_type", "code", "expected", "attempts"),
    [
        (401, "AUTHENTICATION_INVALID", 10, errors.AuthenticationInvalid, 1),
        (403, "API_MISUSE", 12, errors.ApiMisuse, 1),
        (500, "SERVER_ERROR", 0, errors.RetryBudgetExhausted, 2),
    ],
)
def test_stats_errors_are_typed_like_every_other_route(
    status: int, error_type: str, code: int, expected: type[errors.BatchError], attempts: int
) -> None:
    handler = AlwaysError(status, error_type, code)

    async def fetch() -> Any:
        async with mock_client(handler, attempts=2) as client:
            return await client.push_stats("t1")

    with pytest.raises(expected) as raised:
        run(fetch())
    assert (raised.value.status, raised.value.code) == (status, code)
    assert handler.calls == attempts  # 401 and 403 are not retried, 500 is


def test_a_404_on_stats_means_no_stats_and_a_500_is_retried() -> None:
    answers = [
        batch_error(500, "SERVER_ERROR", 0),
        ok(PLAIN),
        batch_error(404, "ROUTE_NOT_FOUND", 20),
    ]
    calls = RunCounts()

    async def fetch() -> list[Any]:
        async with mock_client(lambda request: answers.pop(0)) as client:
            return [
                await client.push_stats("plain", counts=calls),
                await client.push_stats("none", counts=calls),
            ]

    assert run(fetch()) == [PLAIN, GONE]
    assert calls.stats_calls == 2 and calls.retries == 1


# -- the simulator ------------------------------------------------------------------------


@pytest.fixture
def recent_simulator() -> Simulator:
    """Twenty push campaigns dated around 2026-11-29 11:00, the stats clock at 12:00."""
    simulator = Simulator(
        api_key=API_KEY,
        rest_api_key=CANARY_REST_KEY,
        push=20,
        in_app=0,
        seed=3,
        now=datetime(2026, 11, 29, 11, 0),
    )
    simulator.clock = lambda: datetime(2026, 11, 29, 12, 0)
    return simulator


def _stats(http: httpx.Client, token: str) -> httpx.Response:
    return http.get(f"/1.1/{API_KEY}/campaigns/stats/{token}")


def _send_time(detail: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(
        detail.get("push_time") or detail.get("local_push_time") or detail["created_date"]
    )


def test_the_simulator_serves_daily_stats_that_grow_then_stay(
    recent_simulator: Simulator,
) -> None:
    store = recent_simulator.store(PUSH)
    details = store.details()
    token = next(
        t for t in store.tokens() if "recurrence" not in details[t] and "push_time" in details[t]
    )
    send = _send_time(details[token])
    with (
        SimulatorServer(recent_simulator) as server,
        httpx.Client(base_url=server.url, headers={"X-Authorization": CANARY_REST_KEY}) as http,
    ):
        recent_simulator.clock = lambda: send - timedelta(minutes=1)
        before = _stats(http, token)
        recent_simulator.clock = lambda: send + timedelta(minutes=30)
        early = _stats(http, token).json()
        recent_simulator.clock = lambda: send + timedelta(days=2)
        later = _stats(http, token).json()
        again = _stats(http, token).json()
    assert before.status_code == 404 and before.json()["code"] == 20
    assert early["campaign_token"] == token
    assert [day["date"] for day in early["detail"]] == [send.date().isoformat()]
    assert [day["date"] for day in later["detail"]] == [
        (send.date() + timedelta(days=n)).isoformat() for n in range(3)
    ]
    first_day_early, first_day_later = early["detail"][0], later["detail"][0]
    assert 0 <= first_day_early["sent"] < first_day_later["sent"]
    assert later["detail"][1]["sent"] == 0  # a one-shot push sends on its day only
    assert later == again  # deterministic for a clock


def test_the_simulator_gives_ab_versions_and_the_same_faults(
    recent_simulator: Simulator,
) -> None:
    recent_simulator.script("stats push", [500, 429])
    tokens = recent_simulator.store(PUSH).tokens()
    with (
        SimulatorServer(recent_simulator) as server,
        httpx.Client(base_url=server.url, headers={"X-Authorization": CANARY_REST_KEY}) as http,
    ):
        first, second = _stats(http, tokens[0]), _stats(http, tokens[0])
        answers = [_stats(http, token) for token in tokens]
        unknown = _stats(http, "no-such-campaign")
        wrong_key = http.get("/1.1/WRONG/campaigns/stats/" + tokens[0])
    assert (first.status_code, first.json()["code"]) == (500, 0)
    assert (second.status_code, second.json()["code"]) == (429, 60)
    assert unknown.status_code == 404 and wrong_key.status_code == 401
    days = [day for a in answers if a.status_code == 200 for day in a.json()["detail"]]
    ab_days = [day for day in days if "versions" in day]
    assert ab_days and len(ab_days) < len(days)
    for day in ab_days:
        versions = day["versions"]
        assert sorted(versions) == ["a", "b"]
        assert day["sent"] == versions["a"]["sent"] + versions["b"]["sent"]
        assert "sent_optins" not in day  # as in Batch's A/B example
        assert "errors" not in versions["a"] and "errors" not in versions["b"]
    assert recent_simulator.count("stats push", 500) == 1
    assert recent_simulator.count("stats push", 429) == 1


# -- the selection rule -------------------------------------------------------------------

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = StatsPolicy(window_days=30, max_age_seconds=3600)


def _ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def _in(**delta: float) -> datetime:
    return NOW + timedelta(**delta)


def _recurring(send_days_ago: float, **fields: Any) -> StatsCandidate:
    return _candidate(send=_ago(days=send_days_ago), repeats=True, **fields)


def _candidate(
    *,
    live: bool | None = True,
    send: datetime | None = None,
    end: datetime | None = None,
    repeats: bool = False,
    fetched: datetime | None = None,
) -> StatsCandidate:
    return StatsCandidate(1, "t", live, send, end, repeats, fetched)


@pytest.mark.parametrize(
    ("case", "candidate", "due"),
    [
        ("sent 2 days ago, never fetched", _candidate(send=_ago(days=2)), True),
        ("sent 2 days ago, fetched 10 min ago",
         _candidate(send=_ago(days=2), fetched=_ago(minutes=10)), False),
        ("sent 2 days ago, fetched 2 h ago",
         _candidate(send=_ago(days=2), fetched=_ago(hours=2)), True),
        ("sent exactly at the window's start", _candidate(send=_ago(days=30)), True),
        ("one-shot sent 40 days ago, live: frozen", _candidate(send=_ago(days=40)), False),
        ("stopped, sent 5 days ago", _candidate(live=False, send=_ago(days=5)), True),
        ("recurring, live, ends in 10 days", _recurring(90, end=_in(days=10)), True),
        ("recurring, live, no end", _recurring(90), True),
        ("recurring, stopped, ends in 10 days",
         _recurring(90, live=False, end=_in(days=10)), False),
        ("recurring, ended 10 days ago", _recurring(90, live=False, end=_ago(days=10)), True),
        ("recurring, ended 40 days ago", _recurring(90, end=_ago(days=40)), False),
        ("recurring, live, fetched 30 min ago", _recurring(90, fetched=_ago(minutes=30)), False),
        ("scheduled in 2 days: no stats yet", _candidate(send=_in(days=2)), False),
        ("no send time, no end, one-shot", _candidate(), False),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)  # fmt: skip
def test_which_campaigns_are_fetched(case: str, candidate: StatsCandidate, due: bool) -> None:
    assert stats_due(candidate, now=NOW, policy=POLICY) is due


def test_stats_are_off_unless_the_setting_or_the_flag_turns_them_on() -> None:
    assert pass_options(make_settings("http://127.0.0.1:1")).stats is None
    assert pass_options(make_settings("http://127.0.0.1:1"), stats=True).stats == StatsPolicy(
        30, 3600
    )
    settings = make_settings(
        "http://127.0.0.1:1", stats=True, stats_window_days=7, stats_max_age_seconds=60
    )
    assert pass_options(settings).stats == StatsPolicy(7, 60)


# -- the transform ------------------------------------------------------------------------


def test_plain_and_ab_answers_become_one_row_per_day_and_version() -> None:
    plain, ab = transform_stats(PLAIN), transform_stats(AB_TEST)
    assert plain.warnings == [] and ab.warnings == []
    assert plain.rows == [
        {"date": date(2026, 11, 20), "version": "all", "sent": 1200, "sent_optins": 900,
         "direct_open": 80, "influenced_open": 40, "reengaged": 5, "errors": 1},
    ]  # fmt: skip
    assert ab.rows == [
        {"date": date(2026, 11, 21), "version": "all", "sent": 1000, "sent_optins": None,
         "direct_open": 70, "influenced_open": 30, "reengaged": 9, "errors": 0},
        {"date": date(2026, 11, 21), "version": "a", "sent": 500, "sent_optins": 450,
         "direct_open": 45, "influenced_open": 20, "reengaged": 6, "errors": None},
        {"date": date(2026, 11, 21), "version": "b", "sent": 500, "sent_optins": 440,
         "direct_open": 25, "influenced_open": 10, "reengaged": 3, "errors": None},
    ]  # fmt: skip


def test_untypable_stats_values_are_null_with_a_warning() -> None:
    answer = {
        "detail": [
            {"date": "2026-11-20", "sent": "lots", "direct_open": 1.5, "influenced_open": 3},
            {"date": "2026-02-30", "sent": 10},
            {"sent": 10},
            "not a day",
            {"date": "2026-11-21", "sent": 10, "versions": {"control": {"sent": 5}}},
        ]
    }
    stats = transform_stats(answer)
    assert [
        (row["date"], row["version"], row["sent"], row["direct_open"]) for row in stats.rows
    ] == [
        (date(2026, 11, 20), "all", None, None),
        (date(2026, 11, 21), "all", 10, None),
    ]
    assert stats.rows[0]["influenced_open"] == 3
    assert {w.field: w.raw_value for w in stats.warnings} == {
        "stats.detail[date=2026-11-20].sent": "lots",
        "stats.detail[date=2026-11-20].direct_open": "1.5",
        "stats.detail[1].date": "2026-02-30",
        "stats.detail[2].date": None,
        "stats.detail[3]": "not a day",
        "stats.detail[date=2026-11-21].versions.control": "control",
    }


# -- a pass with stats: upsert, warnings, 404, stats off ----------------------------------


def _recent_push(fake: FakeBatch, token: str, *, sent_days_ago: float = 2) -> None:
    push_time = datetime.now(UTC) - timedelta(days=sent_days_ago)
    detail = {
        "campaign_token": token,
        "name": f"Campaign {token}",
        "live": True,
        "created_date": (push_time - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "push_time": push_time.strftime("%Y-%m-%dT%H:%M:%S"),
        "messages": [{"language": "en", "title": "Hello", "body": "World"}],
    }
    fake.add(PUSH, token, detail)


def _day(sent: int, direct: int, influenced: int) -> str:
    return json.dumps(
        {"detail": [  # no campaign_token: the fake answers it for every campaign
            {"date": "2026-11-27", "sent": sent, "sent_optins": sent // 2,
             "direct_open": direct, "influenced_open": influenced, "reengaged": 1,
             "errors": 0}]}
    )  # fmt: skip


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    d = campaign_stats_daily.c
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                select(d.date, d.version, d.sent, d.direct_open, d.influenced_open).order_by(d.id)
            )
        ]


def _last_run(engine: Engine) -> Any:
    r = sync_runs.c
    with engine.connect() as conn:
        return conn.execute(
            select(r.status, r.stats_calls, r.stats_rows_written, r.stats_failures, r.warnings)
            .order_by(r.id.desc())
            .limit(1)
        ).one()


def test_a_days_growing_numbers_update_its_row_not_duplicate_it(
    any_db_url: str, any_db: Engine
) -> None:
    fake = FakeBatch()
    _recent_push(fake, "t")
    fake.stats["t"] = _day(100, 10, 5)
    always_due = StatsPolicy(window_days=30, max_age_seconds=0)
    sync_fake(any_db_url, fake, stats=always_due)
    assert _rows(any_db) == [(date(2026, 11, 27), "all", 100, 10, 5)]
    with any_db.connect() as conn:
        first_fetch = conn.execute(select(campaign_stats_daily.c.fetched_at)).scalar_one()

    fake.stats["t"] = _day(150, 16, 9)
    (result,) = sync_fake(any_db_url, fake, stats=always_due)
    assert result.status == "succeeded"
    assert _rows(any_db) == [(date(2026, 11, 27), "all", 150, 16, 9)]
    with any_db.connect() as conn:
        assert conn.execute(select(campaign_stats_daily.c.fetched_at)).scalar_one() > first_fetch
    assert tuple(_last_run(any_db)) == ("succeeded", 1, 1, 0, 0)


def test_stats_are_fetched_once_per_max_age(any_db_url: str, any_db: Engine) -> None:
    fake = FakeBatch()
    for token in ("t1", "t2"):
        _recent_push(fake, token)
        fake.stats[token] = _day(100, 10, 5)
    _recent_push(fake, "old", sent_days_ago=60)  # one-shot, out of the window: frozen
    fake.stats["old"] = _day(100, 10, 5)
    hourly = StatsPolicy(window_days=30, max_age_seconds=3600)
    sync_fake(any_db_url, fake, stats=hourly)
    sync_fake(any_db_url, fake, stats=hourly)
    stats_paths = sorted(p.rsplit("/", 1)[-1] for p in fake.raw_paths if "/stats/" in p)
    assert stats_paths == ["t1", "t2"]
    assert tuple(_last_run(any_db))[:3] == ("succeeded", 0, 0)


def test_untypable_stats_are_null_and_a_sync_warning(any_db_url: str, any_db: Engine) -> None:
    fake = FakeBatch()
    _recent_push(fake, "t")
    fake.stats["t"] = '{"detail": [{"date": "2026-11-27", "sent": 1e400, "direct_open": "x"}]}'
    sync_fake(any_db_url, fake, stats=StatsPolicy())
    assert _rows(any_db) == [(date(2026, 11, 27), "all", None, None, None)]
    w = sync_warnings.c
    with any_db.connect() as conn:
        warnings = conn.execute(
            select(w.campaign_token, w.field, w.raw_value).where(w.run_id.is_not(None))
        ).all()
    assert sorted(tuple(row) for row in warnings) == [
        ("t", "stats.detail[date=2026-11-27].direct_open", "x"),
        ("t", "stats.detail[date=2026-11-27].sent", "1e400"),
    ]
    assert tuple(_last_run(any_db)) == ("succeeded", 1, 1, 0, 2)


@pytest.mark.parametrize(
    "order",
    [
        ["2026-11-27", "2026-11-28", "2026-11-29"],
        ["2026-11-29", "2026-11-28", "2026-11-27"],
        ["2026-11-28", "2026-11-27"],
        ["2026-11-27"],
    ],
)
def test_a_days_warnings_are_named_by_its_date_wherever_it_stands(order: list[str]) -> None:
    """The field named a day by its position, so a problem that stays wrong changed names
    (and `sync_warnings` rows) as newer days came first or the window dropped old ones."""
    from campaign_sync.jsondoc import decode

    # 1e400 is storable()'s repair (its warning comes from the walk, before dates are read)
    bad = '{"date": "2026-11-27", "sent": "oops", "direct_open": 1e400, ' \
          '"versions": {"a": {"sent": -1}, "ctrl": {"sent": 1}}}'  # fmt: skip
    days = [bad if when == "2026-11-27" else json.dumps({"date": when}) for when in order]
    warnings = transform_stats(decode('{"detail": [' + ", ".join(days) + "]}")).warnings
    assert sorted((w.field, w.raw_value) for w in warnings) == [
        ("stats.detail[date=2026-11-27].direct_open", "1e400"),
        ("stats.detail[date=2026-11-27].sent", "oops"),
        ("stats.detail[date=2026-11-27].versions.a.sent", "-1"),
        ("stats.detail[date=2026-11-27].versions.ctrl", "ctrl"),
    ]


@pytest.mark.parametrize(
    ("days", "rows", "warnings"),
    [
        (  # the day given twice: the last one is the row, and its warnings are the day's
            [{"date": "2026-11-27", "sent": "lots"}, {"date": "2026-11-27", "sent": "1.5x"}],
            [(date(2026, 11, 27), None)],
            [("stats.detail[0].date", "2026-11-27"),
             ("stats.detail[date=2026-11-27].sent", "1.5x")],
        ),
        (  # a good count kept: no warning says the day's count is bad
            [{"date": "2026-11-27", "sent": "lots"}, {"date": "2026-11-27", "sent": 5}],
            [(date(2026, 11, 27), 5)],
            [("stats.detail[0].date", "2026-11-27")],
        ),
        (  # an ISO week date is no yyyy-MM-dd (fromisoformat read it as 2026-11-27)
            [{"date": "2026-W48-5", "sent": 1}, {"date": "2026-11-27", "sent": 2}],
            [(date(2026, 11, 27), 2)],
            [("stats.detail[0].date", "2026-W48-5")],
        ),
        (  # other scripts' digits and no dashes neither
            [{"date": "\u0662\u0660\u0662\u0666-11-27", "sent": 1},
             {"date": "20261127", "sent": 1}],
            [],
            [("stats.detail[0].date", "\u0662\u0660\u0662\u0666-11-27"),
             ("stats.detail[1].date", "20261127")],
        ),
    ],
)  # fmt: skip
def test_which_entry_is_a_days_row_and_whose_warnings_it_has(
    days: list[dict[str, Any]],
    rows: list[tuple[date, int | None]],
    warnings: list[tuple[str, str]],
) -> None:
    stats = transform_stats({"detail": days})
    assert [(row["date"], row["sent"]) for row in stats.rows] == rows
    assert [(w.field, w.raw_value) for w in stats.warnings] == warnings


def test_a_bad_counter_stays_one_warning_row_as_newer_days_come_first(
    any_db_url: str, any_db: Engine
) -> None:
    """Three stats fetches, each answer with one newer day first: one row seen three
    times (it was three rows, stats.detail[1].sent, [2] and [3]: a review's find)."""
    fake = FakeBatch()
    _recent_push(fake, "t")
    days: list[dict[str, Any]] = [{"date": "2026-11-27", "sent": "oops"}]
    for newer in ("2026-11-28", "2026-11-29", "2026-11-30"):
        days.insert(0, {"date": newer, "sent": 5})
        fake.stats["t"] = json.dumps({"detail": days})
        sync_fake(any_db_url, fake, stats=StatsPolicy(window_days=30, max_age_seconds=0))
    w = sync_warnings.c
    with any_db.connect() as conn:
        rows = conn.execute(
            select(w.field, w.raw_value, w.times_seen).where(w.field.like("stats.%"))
        ).all()
    assert [tuple(row) for row in rows] == [("stats.detail[date=2026-11-27].sent", "oops", 3)]


def test_a_404_on_stats_is_recorded_as_no_stats_yet(any_db_url: str, any_db: Engine) -> None:
    fake = FakeBatch()
    _recent_push(fake, "t")  # no stats answer: the fake says 404
    (result,) = sync_fake(any_db_url, fake, stats=StatsPolicy())
    assert result.status == "succeeded" and result.error is None
    f = campaign_stats_fetches.c
    with any_db.connect() as conn:
        outcome, fetched_at, days = conn.execute(select(f.outcome, f.fetched_at, f.days)).one()
    assert (outcome, days) == ("no_stats", None) and fetched_at is not None
    assert _rows(any_db) == []
    assert tuple(_last_run(any_db)) == ("succeeded", 1, 0, 0, 0)


def test_a_failed_stats_request_is_recorded_and_the_campaign_stays_due(
    any_db_url: str, any_db: Engine
) -> None:
    fake = FakeBatch()
    _recent_push(fake, "t")
    fake.stats["t"] = '{"detail": ['  # cut JSON: retried, then given up
    (result,) = sync_fake(any_db_url, fake, stats=StatsPolicy(), retry_max_attempts=2)
    assert result.status == "succeeded"
    f = campaign_stats_fetches.c
    with any_db.connect() as conn:
        assert conn.execute(select(f.outcome, f.fetched_at)).one() == ("failed", None)
    assert tuple(_last_run(any_db))[:4] == ("succeeded", 1, 0, 1)  # one call, retried once
    fake.stats["t"] = _day(100, 10, 5)
    sync_fake(any_db_url, fake, stats=StatsPolicy())
    assert _rows(any_db) == [(date(2026, 11, 27), "all", 100, 10, 5)]


def test_a_pass_with_stats_off_makes_no_stats_call(any_db_url: str, any_db: Engine) -> None:
    fake = FakeBatch()
    _recent_push(fake, "t")
    fake.stats["t"] = _day(100, 10, 5)
    (result,) = sync_fake(any_db_url, fake)
    assert result.status == "succeeded" and result.counts.campaigns_inserted == 1
    assert [p for p in fake.raw_paths if "/stats/" in p] == []
    assert tuple(_last_run(any_db))[:3] == ("succeeded", 0, 0)
    assert _rows(any_db) == []


# -- the views ----------------------------------------------------------------------------


def _campaign(conn: Any, token: str) -> int:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    return int(
        conn.execute(
            insert(campaigns).returning(campaigns.c.id),
            {"app": "ios", "campaign_type": "push", "campaign_token": token,
             "name": f"Campaign {token}", "push_time": datetime(2026, 11, 20, 9, tzinfo=UTC),
             "first_seen_at": now, "last_seen_at": now, "updated_at": now},
        ).scalar_one()
    )  # fmt: skip


def _stats_row(campaign_id: int, day: int, version: str, *counters: int | None) -> dict[str, Any]:
    names = ("sent", "sent_optins", "direct_open", "influenced_open", "reengaged", "errors")
    return {
        "campaign_id": campaign_id,
        "date": date(2026, 11, day),
        "version": version,
        "fetched_at": datetime(2026, 11, 29, tzinfo=UTC),
        **dict(zip(names, counters, strict=True)),
    }


def test_open_rate_in_the_views_for_plain_and_ab_campaigns(any_db: Engine) -> None:
    with any_db.begin() as conn:
        plain, ab = _campaign(conn, "plain"), _campaign(conn, "ab")
        conn.execute(
            insert(campaign_stats_daily),
            [
                _stats_row(plain, 20, "all", 1000, 800, 70, 30, 5, 2),
                _stats_row(plain, 21, "all", 0, 0, 6, 4, 1, 0),  # opens after the send day
                _stats_row(ab, 21, "all", 1000, None, 70, 30, 9, 0),
                _stats_row(ab, 21, "a", 500, 450, 45, 20, 6, None),
                _stats_row(ab, 21, "b", 500, 440, 25, 10, 3, None),
            ],
        )
    with any_db.connect() as conn:
        daily = conn.execute(
            text(
                "select campaign_token, date, version, sent, open_rate, name, app "
                "from v_push_performance order by campaign_token, date, version"
            )
        ).all()
        totals = conn.execute(
            text(
                "select campaign_token, sent, sent_optins, direct_open, influenced_open, errors, "
                "open_rate, sent_a, open_rate_a, sent_b, open_rate_b, sent_optins_a, "
                "sent_optins_b from v_push_performance_total order by campaign_token"
            )
        ).all()
    assert [(r[0], str(r[1]), r[2], r[3], r[5], r[6]) for r in daily] == [
        ("ab", "2026-11-21", "a", 500, "Campaign ab", "ios"),
        ("ab", "2026-11-21", "all", 1000, "Campaign ab", "ios"),
        ("ab", "2026-11-21", "b", 500, "Campaign ab", "ios"),
        ("plain", "2026-11-20", "all", 1000, "Campaign plain", "ios"),
        ("plain", "2026-11-21", "all", 0, "Campaign plain", "ios"),
    ]
    rates = [None if r[4] is None else round(float(r[4]), 4) for r in daily]
    assert rates == [0.13, 0.1, 0.07, 0.1, None]  # (direct + influenced) / sent; 0 sent: NULL
    ab_total, plain_total = (
        tuple(None if v is None else round(float(v), 4) if i >= 6 else v for i, v in enumerate(r))
        for r in totals
    )
    # An A/B test's opt-in sends come per version only (Batch's day object has none).
    assert ab_total == ("ab", 1000, None, 70, 30, 0, 0.1, 500, 0.13, 500, 0.07, 450, 440)
    assert plain_total == (
        ("plain", 1000, 800, 76, 34, 2, 0.11, None, None, None, None, None, None)
    )


def test_the_stats_views_say_which_campaigns_batch_deleted(any_db: Engine) -> None:
    """Statistics of a deleted push stay; without deleted_at, a ranking of pushes could
    not leave it out (v_campaigns does)."""
    gone_at = datetime(2026, 11, 28, 6, tzinfo=UTC)
    with any_db.begin() as conn:
        kept, gone = _campaign(conn, "kept"), _campaign(conn, "gone")
        conn.execute(update(campaigns).where(campaigns.c.id == gone).values(deleted_at=gone_at))
        conn.execute(
            insert(campaign_stats_daily),
            [_stats_row(kept, 20, "all", 10, 8, 1, 1, 0, 0),
             _stats_row(gone, 20, "all", 20, 16, 2, 2, 0, 0)],
        )  # fmt: skip
    with any_db.connect() as conn:
        for view in ("v_push_performance", "v_push_performance_total"):
            found = conn.execute(
                text(f"select campaign_token, deleted_at from {view} order by campaign_token")
            ).all()
            shown = [(token, None if at is None else str(at)[:16]) for token, at in found]
            assert shown == [("gone", "2026-11-28 06:00"), ("kept", None)], view


# -- politeness ---------------------------------------------------------------------------


def test_a_429_on_stats_pauses_the_other_requests_of_the_app(
    recent_simulator: Simulator,
) -> None:
    floor = 0.4
    tokens = recent_simulator.store(PUSH).tokens()[:20]
    recent_simulator.script("stats push", [429])
    paused_at: list[float] = []
    sent: list[tuple[float, str]] = []

    async def record_send(request: httpx.Request) -> None:
        sent.append((time.monotonic(), request.url.path))

    async def run_both(server: SimulatorServer) -> None:
        async with sim_client(server, floor=floor) as client:
            client.hooks.append(
                lambda event: (
                    paused_at.append(time.monotonic()) if isinstance(event, Paused) else None
                )
            )
            client._http.event_hooks["request"].append(record_send)
            await asyncio.gather(
                client.push_stats(tokens[0]),  # the first stats request is answered 429
                *(client.view_push(t) for t in tokens),
                *(client.list_push(offset=n) for n in range(5)),
                *(client.push_stats(t) for t in tokens[1:5]),
            )

    with SimulatorServer(recent_simulator) as server:
        asyncio.run(run_both(server))
    assert len(paused_at) == 1
    during_pause = [path for at, path in sent if paused_at[0] < at < paused_at[0] + floor]
    assert during_pause == [], f"{len(during_pause)} requests were sent during the pause"
    held = [path for at, path in sent if at >= paused_at[0] + floor]
    assert len(held) >= 10, "the other requests were not held back by the pause"
    assert len(sent) == 1 + 20 + 5 + 4 + 1  # the 429'd stats request is sent twice
    assert recent_simulator.count("stats push", 429) == 1
    assert (
        recent_simulator.count("stats push", 200) + recent_simulator.count("stats push", 404) == 5
    )
    assert recent_simulator.count("view push", 200) == 20
    assert recent_simulator.count("list push", 200) == 5


def test_a_pass_with_stats_on_the_simulator_shares_the_apps_client(
    recent_simulator: Simulator, any_db_url: str
) -> None:
    recent_simulator.clock = lambda: datetime.now(UTC).replace(tzinfo=None)
    responses: list[tuple[str, int]] = []
    with SimulatorServer(recent_simulator) as server:
        engine = make_engine(any_db_url)
        settings = make_settings(server.url, any_db_url, stats=True)
        results = asyncio.run(
            sync_apps(
                engine,
                settings,
                [make_app()],
                [CampaignType.PUSH],
                hooks=[
                    lambda event: (
                        responses.append((event.route, event.status))
                        if isinstance(event, Responded)
                        else None
                    )
                ],
            )
        )
        engine.dispose()
    (result,) = results
    assert result.status == "succeeded"
    stats_calls = recent_simulator.count("stats push")
    assert stats_calls == result.counts.stats_calls > 0
    assert (
        responses.count(("GET campaigns/stats", 200))
        + responses.count(("GET campaigns/stats", 404))
        == stats_calls
    )


# -- resuming, status, metrics -------------------------------------------------------------


def test_a_stop_during_the_stats_step_resumes_with_the_campaigns_not_fetched(
    any_db_url: str, any_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats_sync, "BATCH_SIZE", 1)
    fake = FakeBatch()
    for token in ("t1", "t2", "t3"):
        _recent_push(fake, token)
        fake.stats[token] = _day(100, 10, 5)
    stop = asyncio.Event()
    answer = fake.handler

    def stop_at_first_stats(request: httpx.Request) -> httpx.Response:
        if "/stats/" in request.url.path:
            stop.set()  # like SIGTERM arriving while the first batch is in flight
        return answer(request)

    async def one_pass(handler: Any, stop: asyncio.Event | None) -> Any:
        (result,) = await sync_apps(
            any_db,
            make_settings("https://batch.test", any_db_url),
            [make_app()],
            [PUSH],
            PassOptions(stats=StatsPolicy()),
            stop=stop,
            transport=httpx.MockTransport(handler),
        )
        return result

    first = asyncio.run(one_pass(stop_at_first_stats, stop))
    assert first.status == "interrupted" and first.sweep_complete
    assert (first.counts.stats_calls, first.counts.stats_rows_written) == (1, 1)
    second = asyncio.run(one_pass(fake.handler, None))
    assert second.status == "succeeded"
    assert (second.counts.stats_calls, second.counts.stats_rows_written) == (2, 2)
    with any_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(campaign_stats_daily)).scalar() == 3


def test_status_shows_the_stats_side_of_each_app(any_db_url: str, any_db: Engine) -> None:
    fake = FakeBatch()
    for token in ("t1", "t2"):
        _recent_push(fake, token)
    fake.stats["t1"] = _day(100, 10, 5)  # t2: 404, no stats yet
    sync_fake(any_db_url, fake, (PUSH, CampaignType.IN_APP), stats=StatsPolicy())
    report = {
        row.campaign_type: row
        for row in collect_status(any_db, detail_max_age_seconds=86400, interval_seconds=300)
    }
    push, in_app = report["push"], report["in_app"]
    assert push.stats_campaigns_covered == 1
    assert push.stats_last_fetch_at is not None
    assert datetime.now(UTC) - push.stats_last_fetch_at < timedelta(minutes=5)
    assert push.last_run_counts["stats_calls"] == 2
    assert (in_app.stats_campaigns_covered, in_app.stats_last_fetch_at) == (0, None)


def test_metrics_count_stats_calls_and_rows_per_app() -> None:
    metrics = Metrics()
    counts = RunCounts(stats_calls=3, stats_rows_written=7)
    metrics.record_pass(PassResult("ios", CampaignType.PUSH, "succeeded", 1, counts))
    metrics.on_client_event(Responded("ios", "GET campaigns/stats", 200, None))
    text_metrics = metrics.render().decode()
    assert 'campaign_sync_stats_calls_total{app="ios"} 3.0' in text_metrics
    assert 'campaign_sync_stats_rows_written_total{app="ios"} 7.0' in text_metrics
    assert (
        'campaign_sync_api_requests_total{app="ios",route="GET campaigns/stats",status="200"} 1.0'
        in text_metrics
    )


def test_sync_stats_fetches_them_for_one_pass_and_status_shows_them(
    sqlite_url: str, recent_simulator: Simulator
) -> None:
    recent_simulator.clock = lambda: datetime.now(UTC).replace(tzinfo=None)
    with SimulatorServer(recent_simulator) as server:
        env = cli_env(sqlite_url, server)
        plain = cli("sync", "--type", "push", env=env)
        with_stats = cli("sync", "--type", "push", "--stats", env=env)
        table = cli("status", env=env)
    assert plain.returncode == 0 and with_stats.returncode == 0, with_stats.stderr
    assert "stats:" not in plain.stdout
    calls = recent_simulator.count("stats push")
    assert calls > 0
    assert f"stats: {calls} calls" in with_stats.stdout
    assert "default push stats: last fetch" in table.stdout


def test_counts_outside_what_an_app_can_send_are_null_with_a_warning() -> None:
    answer = {"detail": [{"date": "2026-11-20", "sent": -5, "direct_open": 9223372036854775807,
                          "influenced_open": 10**12, "reengaged": 2}]}  # fmt: skip
    [row] = transform_stats(answer).rows
    assert (row["sent"], row["direct_open"], row["influenced_open"], row["reengaged"]) == (
        None,
        None,
        10**12,
        2,
    )
    assert [w.field for w in transform_stats(answer).warnings] == [
        "stats.detail[date=2026-11-20].sent",
        "stats.detail[date=2026-11-20].direct_open",
    ]


def test_a_nul_in_a_stats_answer_costs_nothing_but_a_warning(pg_url: str) -> None:
    fake = FakeBatch()
    _recent_push(fake, "t1")
    fake.stats["t1"] = json.dumps(
        {"detail": [{"date": "2026-11-28\u0000", "sent": 10, "versions": {"\u0000": {}}}]}
    )
    [result] = sync_fake(pg_url, fake, stats=StatsPolicy(window_days=30, max_age_seconds=0))
    assert result.status == "succeeded" and result.counts.stats_rows_written == 1
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        fields = sorted(f for (f,) in conn.execute(select(sync_warnings.c.field)))
    engine.dispose()
    assert fields == [
        "stats.detail[0].date",  # a date's own warning names its day by position
        "stats.detail[date=2026-11-28].versions.\ufffd",
        "stats.detail[date=2026-11-28].versions.\ufffd (key)",  # storable()'s repair too
    ]


def test_a_version_without_counters_is_left_out_with_a_warning() -> None:
    answer = {"detail": [{"date": "2026-11-20", "sent": 4, "versions": {"a": 5, "b": None}}]}
    stats = transform_stats(answer)
    assert [(row["version"], row["sent"]) for row in stats.rows] == [("all", 4)]
    assert [w.field for w in stats.warnings] == [
        "stats.detail[date=2026-11-20].versions.a",
        "stats.detail[date=2026-11-20].versions.b",
    ]


@pytest.mark.parametrize(
    ("versions", "kept", "warned"),
    [
        # Two keys of one version: the last kept, the other said (both were merged silently).
        ({"a": {"sent": 1}, "A": {"sent": 2}}, [("a", 2)], ["A"]),
        ({"b": {"sent": 1}, " b": {"sent": 3}}, [("b", 3)], [" b"]),
        ({"A": {"sent": 5}}, [("a", 5)], []),  # Batch's case is not ours to judge
        # Only ASCII letters: the Kelvin sign lower-cases to 'k', and was taken for it.
        ({"\u212a": {"sent": 1}}, [], ["\u212a"]),
        ({"\u0430": {"sent": 1}}, [], ["\u0430"]),  # Cyrillic a
        ({"ab": {"sent": 1}, "a ": {"sent": 2}}, [("a", 2)], ["ab"]),
        ({"\x1fa": {"sent": 1}, "a\n": {"sent": 2}}, [], ["\x1fa", "a\n"]),
    ],
)
def test_ab_version_keys_are_one_ascii_letter_each_named_once(
    versions: dict[str, Any], kept: list[tuple[str, int]], warned: list[str]
) -> None:
    answer = {"detail": [{"date": "2026-11-20", "sent": 9, "versions": versions}]}
    stats = transform_stats(answer)
    rows = [(row["version"], row["sent"]) for row in stats.rows if row["version"] != "all"]
    assert rows == kept
    where = "stats.detail[date=2026-11-20].versions."
    assert [w.field.removeprefix(where) for w in stats.warnings] == warned
