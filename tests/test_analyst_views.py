"""The analyst layer: the validity history in `campaign_versions` and every reporting view,
each on a known data set synced through Batch faked at the HTTP level, expected rows
written out, on PostgreSQL and SQLite."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from campaign_sync.db import migrate
from campaign_sync.db.session import make_engine
from tests.fake_batch import IN_APP, PUSH, FakeBatch, sync_fake
from tests.syncing import count

SALE: dict[str, Any] = {
    "campaign_token": "sale",
    "name": "Spring sale",
    "live": False,
    "from_api": True,
    "dev_only": False,
    "created_date": "2026-11-01T10:00:00",
    "push_time": "2026-12-01T09:00:00",
    "targeting": {"segments": ["NEW", "ENGAGED"]},
    "labels": ["promo", "spring"],
    "messages": [
        {"language": "en", "title": "Sale", "body": "20% off"},
        {"language": "fr", "title": "Soldes", "body": "-20%"},
    ],
}
DIGEST: dict[str, Any] = {
    "campaign_token": "digest",
    "name": "Weekly digest",
    "live": True,
    "from_api": False,
    "dev_only": False,
    "created_date": "2026-10-01T08:00:00",
    "local_push_time": "2026-12-03T18:00:00",
    "recurrence": {
        "repeat_unit": "WEEKLY",
        "repeat_frequency": 1,
        "end_date": "2027-03-01T00:00:00",
    },
    "messages": [{"language": "en", "title": "Digest", "body": "Your week"}],
}
WELCOME: dict[str, Any] = {
    "campaign_token": "welcome",
    "name": "Welcome",
    "live": True,
    "from_api": True,
    "dev_only": False,
    "created_date": "2026-11-15T12:00:00",
    "start_date": "2026-11-20T00:00:00",
    "end_date": "2026-12-20T00:00:00",
    "trigger": {"when": "NEXT_SESSION", "capping": 2},
    "labels": ["onboarding"],
    "landing": {
        "theme": "t1",
        "contents": [
            {
                "language": "en",
                "title": "Hi",
                "body": "Welcome aboard",
                "actions": [
                    {"action": "batch.deeplink", "label": "Go", "args": {"l": "app://x"}},
                    {"action": "batch.dismiss", "label": "Later"},
                ],
            }
        ],
    },
}


def changed_sale() -> dict[str, Any]:
    sale = copy.deepcopy(SALE)
    sale.update(name="Spring sale!", live=True, push_time="2026-12-02T09:00:00")
    sale["messages"][0]["body"] = "30% off"
    sale["targeting"] = {"segments": ["NEW"]}
    return sale


def batch(*push: dict[str, Any], in_app: tuple[dict[str, Any], ...] = (WELCOME,)) -> FakeBatch:
    fake = FakeBatch()
    for detail in push:
        fake.add(PUSH, detail["campaign_token"], detail)
    for detail in in_app:
        fake.add(IN_APP, detail["campaign_token"], detail)
    return fake


def sync(url: str, fake: FakeBatch) -> None:
    results = sync_fake(url, fake, (PUSH, IN_APP))
    assert all(result.status == "succeeded" for result in results)


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    """Rows with dates as 'YYYY-MM-DD HH:MM:SS' text and booleans as 0/1: the same on
    both databases (SQLite hands views' dates back as text)."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, str) and len(value) == 26 and value[19] == ".":
            return value[:19]  # SQLite's stored datetime text
        if isinstance(value, bool):
            return int(value)
        return value

    with engine.connect() as conn:
        return [tuple(plain(v) for v in row) for row in conn.execute(text(sql))]


@pytest.fixture
def history(any_db_url: str, any_db: Engine) -> Engine:
    """Created, changed, deleted (gone from the list after a complete sweep), restored."""
    sync(any_db_url, batch(SALE, DIGEST))
    sync(any_db_url, batch(changed_sale(), DIGEST))
    sync(any_db_url, batch(DIGEST))
    sync(any_db_url, batch(changed_sale(), DIGEST))
    return any_db


def test_history_numbers_versions_and_chains_their_validity(history: Engine) -> None:
    assert rows(
        history,
        "select c.campaign_token, v.version, v.change_kind, v.content_hash is null, "
        "v.valid_to is null from campaign_versions v join campaigns c on c.id = v.campaign_id "
        "order by c.campaign_token, v.version",
    ) == [
        ("digest", 1, "created", 0, 1),
        ("sale", 1, "created", 0, 0),
        ("sale", 2, "changed", 0, 0),
        ("sale", 3, "deleted", 1, 0),
        ("sale", 4, "restored", 0, 1),
        ("welcome", 1, "created", 0, 1),
    ]
    # Each version ends exactly when the next begins.
    assert (
        count(
            history,
            "select count(*) from campaign_versions v join campaign_versions n "
            "on n.campaign_id = v.campaign_id and n.version = v.version + 1 "
            "where v.valid_to = n.valid_from and n.valid_from > v.valid_from",
        )
        == 3
    )


def test_an_unchanged_pass_adds_no_version(history: Engine, any_db_url: str) -> None:
    before = count(history, "select count(*) from campaign_versions")
    sync(any_db_url, batch(changed_sale(), DIGEST))
    assert count(history, "select count(*) from campaign_versions") == before == 6


def test_a_404_on_a_detail_closes_the_version_with_a_deleted_row(
    any_db_url: str, any_db: Engine
) -> None:
    sync(any_db_url, batch(SALE, DIGEST))
    fake = batch(changed_sale(), DIGEST)
    del fake.details[(PUSH, "sale")]  # listed, but its detail answers 404
    sync(any_db_url, fake)
    assert rows(
        any_db,
        "select version, change_kind, valid_to is null from campaign_versions v "
        "join campaigns c on c.id = v.campaign_id where c.campaign_token = 'sale' "
        "order by version",
    ) == [(1, "created", 0), (2, "deleted", 1)]


def test_v_campaign_versions_tells_what_a_message_said_at_each_version(history: Engine) -> None:
    assert rows(
        history,
        "select version, change_kind, is_current, name, live, schedule, message_titles, "
        "message_bodies from v_campaign_versions where campaign_token = 'sale' order by version",
    ) == [
        (1, "created", 0, "Spring sale", 0, "starts 2026-12-01T09:00:00 GMT",
         "en: Sale | fr: Soldes", "en: 20% off | fr: -20%"),
        (2, "changed", 0, "Spring sale!", 1, "starts 2026-12-02T09:00:00 GMT",
         "en: Sale | fr: Soldes", "en: 30% off | fr: -20%"),
        (3, "deleted", 0, None, None, None, None, None),
        (4, "restored", 1, "Spring sale!", 1, "starts 2026-12-02T09:00:00 GMT",
         "en: Sale | fr: Soldes", "en: 30% off | fr: -20%"),
    ]  # fmt: skip
    assert rows(
        history,
        "select campaign_token, schedule, schedule_zone, recurrence_end_date, message_titles, "
        "message_bodies from v_campaign_versions where campaign_token <> 'sale' "
        "order by campaign_token",
    ) == [
        ("digest", "starts 2026-12-03T18:00:00 local every 1 WEEKLY until 2027-03-01T00:00:00",
         "local", "2027-03-01T00:00:00", "en: Digest", "en: Your week"),
        ("welcome", "starts 2026-11-20T00:00:00 GMT ends 2026-12-20T00:00:00 GMT", "GMT", None,
         "en: Hi", "en: Welcome aboard"),
    ]  # fmt: skip


def test_each_document_is_stored_once_and_every_version_keeps_its_detail(
    history: Engine,
) -> None:
    # (token, version, stored detail is null, the view's detail is null, name from it)
    assert rows(
        history,
        "select v.campaign_token, v.version, s.detail is null, v.detail is null, v.name "
        "from v_campaign_versions v join campaign_versions s "
        "on s.campaign_id = v.campaign_id and s.version = v.version "
        "where v.campaign_token in ('sale', 'digest') order by v.campaign_token, v.version",
    ) == [
        ("digest", 1, 1, 0, "Weekly digest"),  # current: campaigns.detail, not a copy
        ("sale", 1, 0, 0, "Spring sale"),  # closed by a change: kept before the rewrite
        ("sale", 2, 0, 0, "Spring sale!"),  # closed by the deletion
        ("sale", 3, 1, 1, None),
        ("sale", 4, 1, 0, "Spring sale!"),
    ]


def test_v_campaign_changes_names_each_change_with_before_and_after(history: Engine) -> None:
    assert rows(
        history,
        "select campaign_token, name, version, change, before_value, after_value "
        "from v_campaign_changes order by version, change",
    ) == [
        ("sale", "Spring sale!", 2, "message_changed",
         "en: Sale | fr: Soldes / en: 20% off | fr: -20%",
         "en: Sale | fr: Soldes / en: 30% off | fr: -20%"),
        ("sale", "Spring sale!", 2, "renamed", "Spring sale", "Spring sale!"),
        ("sale", "Spring sale!", 2, "rescheduled", "starts 2026-12-01T09:00:00 GMT",
         "starts 2026-12-02T09:00:00 GMT"),
        ("sale", "Spring sale!", 2, "targeting_changed", "segments NEW, ENGAGED", "segments NEW"),
        ("sale", "Spring sale!", 2, "went_live", "false", "true"),
        ("sale", "Spring sale!", 3, "deleted", None, None),
        ("sale", "Spring sale!", 4, "restored", None, None),
    ]  # fmt: skip


def test_v_campaigns_summarises_each_campaign_not_deleted(history: Engine) -> None:
    assert rows(
        history,
        "select campaign_token, campaign_type, name, live, starts_at, ends_at, schedule_zone, "
        "recurrence_repeat_unit, recurrence_repeat_frequency, is_recurring, segments, labels, "
        "message_count, languages, trigger_when, trigger_capping "
        "from v_campaigns order by campaign_token",
    ) == [
        ("digest", "push", "Weekly digest", 1, "2026-12-03 18:00:00", None, "local", "WEEKLY",
         1, 1, None, None, 1, "en", None, None),
        ("sale", "push", "Spring sale!", 1, "2026-12-02 09:00:00", None, "GMT", None, None, 0,
         "NEW", "promo, spring", 2, "en, fr", None, None),
        ("welcome", "in_app", "Welcome", 1, "2026-11-20 00:00:00", "2026-12-20 00:00:00", "GMT",
         None, None, 0, None, "onboarding", 1, "en", "next_session", 2),
    ]  # fmt: skip


def in_app_scheduled(token: str, **dates: str) -> dict[str, Any]:
    campaign = {k: v for k, v in WELCOME.items() if k not in ("start_date", "end_date")}
    return campaign | {"campaign_token": token} | dates


def test_v_campaigns_names_the_clock_of_starts_at_and_of_ends_at_apart(
    any_db_url: str, any_db: Engine
) -> None:
    start, end = "2026-12-01T08:00:00", "2026-12-31T20:00:00"
    schedules = (
        in_app_scheduled("gmt_both", start_date=start, end_date=end),
        in_app_scheduled("local_both", local_start_date=start, local_end_date=end),
        in_app_scheduled("gmt_start_local_end", start_date=start, local_end_date=end),
        in_app_scheduled("local_start_gmt_end", local_start_date=start, end_date=end),
        in_app_scheduled("gmt_end_only", end_date=end),
        in_app_scheduled("local_end_only", local_end_date=end),
        in_app_scheduled("unscheduled"),
    )
    sync(any_db_url, batch(in_app=schedules))
    assert rows(
        any_db,
        "select campaign_token, starts_at, ends_at, schedule_zone, ends_zone from v_campaigns "
        "order by campaign_token",
    ) == [
        ("gmt_both", "2026-12-01 08:00:00", "2026-12-31 20:00:00", "GMT", "GMT"),
        ("gmt_end_only", None, "2026-12-31 20:00:00", "GMT", "GMT"),
        ("gmt_start_local_end", "2026-12-01 08:00:00", "2026-12-31 20:00:00", "GMT", "local"),
        ("local_both", "2026-12-01 08:00:00", "2026-12-31 20:00:00", "local", "local"),
        ("local_end_only", None, "2026-12-31 20:00:00", "local", "local"),
        ("local_start_gmt_end", "2026-12-01 08:00:00", "2026-12-31 20:00:00", "local", "GMT"),
        ("unscheduled", None, None, None, None),
    ]


def test_v_campaigns_leaves_out_deleted_campaigns(any_db_url: str, any_db: Engine) -> None:
    sync(any_db_url, batch(SALE, DIGEST))
    sync(any_db_url, batch(DIGEST))
    assert rows(any_db, "select campaign_token from v_campaigns order by 1") == [
        ("digest",),
        ("welcome",),
    ]


def test_v_messages_lists_push_messages_and_landing_contents(history: Engine) -> None:
    assert rows(
        history,
        "select campaign_token, campaign_type, campaign_name, live, position, language, title, "
        "body, button_count from v_messages order by campaign_token, position",
    ) == [
        ("digest", "push", "Weekly digest", 1, 0, "en", "Digest", "Your week", 0),
        ("sale", "push", "Spring sale!", 1, 0, "en", "Sale", "30% off", 0),
        ("sale", "push", "Spring sale!", 1, 1, "fr", "Soldes", "-20%", 0),
        ("welcome", "in_app", "Welcome", 1, 0, "en", "Hi", "Welcome aboard", 2),
    ]


def test_v_campaign_segments_and_labels_unnest_one_row_each(
    any_db_url: str, any_db: Engine
) -> None:
    sync(any_db_url, batch(SALE, DIGEST))
    assert rows(
        any_db,
        "select campaign_token, segment, campaign_type, campaign_name from v_campaign_segments "
        "order by campaign_token, segment",
    ) == [
        ("sale", "ENGAGED", "push", "Spring sale"),
        ("sale", "NEW", "push", "Spring sale"),
    ]
    assert rows(
        any_db,
        "select campaign_token, label, campaign_type, campaign_name from v_campaign_labels "
        "order by campaign_token, label",
    ) == [
        ("sale", "promo", "push", "Spring sale"),
        ("sale", "spring", "push", "Spring sale"),
        ("welcome", "onboarding", "in_app", "Welcome"),
    ]


def test_a_change_no_named_kind_covers_is_one_other_changed_row(
    any_db_url: str, any_db: Engine
) -> None:
    sync(any_db_url, batch(SALE, in_app=()))
    relabelled = copy.deepcopy(SALE) | {"labels": ["promo"]}
    sync(any_db_url, batch(relabelled, in_app=()))
    deeplinked = relabelled | {"deeplink": "app://sale"}
    sync(any_db_url, batch(deeplinked, in_app=()))
    sync(any_db_url, batch(deeplinked | {"name": "Sale"}, in_app=()))
    assert rows(
        any_db,
        "select version, change, before_value, after_value from v_campaign_changes "
        "order by version, change",
    ) == [
        (2, "other_changed", None, None),
        (3, "other_changed", None, None),
        (4, "renamed", "Spring sale", "Sale"),
    ]


RENAMED = {"name": "Sale"}
RELABELLED = {"labels": ["promo"]}


def _messages(**extra: Any) -> dict[str, Any]:
    """SALE's messages with the English one's fields changed or added."""
    english, french = copy.deepcopy(SALE["messages"])
    return {"messages": [english | extra, french]}


def _welcome_landing(**extra: Any) -> dict[str, Any]:
    landing = copy.deepcopy(WELCOME["landing"])
    return {"landing": landing | extra}


SALE_WITH_MEDIA = copy.deepcopy(SALE)
SALE_WITH_MEDIA["messages"][0]["media"] = {"picture": "https://x/p.png"}
SALE_CAPPED = copy.deepcopy(SALE) | {"capping": 2}


def _media_moved_to_french() -> dict[str, Any]:
    english, french = copy.deepcopy(SALE_WITH_MEDIA["messages"])
    media = english.pop("media")
    return {"messages": [english, french | {"title": "Nouveau", "media": media}]}


# (campaign, change, what v_campaign_changes shows for it)
CHANGES_BESIDE_NAMED: list[tuple[dict[str, Any], dict[str, Any], list[str]]] = [
    (SALE, RENAMED | RELABELLED, ["other_changed", "renamed"]),
    (SALE, RENAMED, ["renamed"]),
    (SALE, {"live": True, "deeplink": "app://sale"}, ["other_changed", "went_live"]),
    (SALE, {"push_time": "2026-12-02T09:00:00", "priority": "HIGH"},
     ["other_changed", "rescheduled"]),
    # Inside what a named kind reads: the messages' other fields, targeting's others.
    (SALE, _messages(title="Big sale", deeplink="app://x"),
     ["message_changed", "other_changed"]),
    (SALE, _messages(title="Big sale"), ["message_changed"]),
    (SALE, _messages(deeplink="app://x"), ["other_changed"]),
    (SALE, {"targeting": {"segments": ["NEW"], "os": "ios"}},
     ["other_changed", "targeting_changed"]),
    (SALE, {"targeting": {"segments": ["NEW"]}}, ["targeting_changed"]),
    (DIGEST, {"recurrence": DIGEST["recurrence"] | {"repeat_frequency": 2, "days": [1]}},
     ["other_changed", "rescheduled"]),
    (DIGEST, {"recurrence": DIGEST["recurrence"] | {"repeat_frequency": 2}},
     ["rescheduled"]),
    (WELCOME, _welcome_landing(theme="t2", contents=[{"language": "en", "title": "Yo"}]),
     ["message_changed", "other_changed"]),
    (WELCOME, _welcome_landing(theme="t2"), ["other_changed"]),
    # What a named kind reads appearing, going or growing is that kind's alone.
    (SALE, {"messages": [*SALE["messages"], {"language": "de", "title": "T", "body": "B"}]},
     ["message_changed"]),
    (SALE, {"messages": SALE["messages"][:1]}, ["message_changed"]),
    (SALE, {"messages": []}, ["message_changed"]),
    (DIGEST, {"messages": None}, ["message_changed", "other_changed"]),  # null: no array
    (SALE, {"targeting": None, "name": "Sale"}, ["other_changed", "renamed",
                                                 "targeting_changed"]),
    (WELCOME, {"targeting": {"segments": ["NEW"]}}, ["targeting_changed"]),
    (SALE, {"recurrence": {"repeat_unit": "DAILY"}}, ["rescheduled"]),
    (WELCOME, _welcome_landing(contents=[*WELCOME["landing"]["contents"],
                                         {"language": "fr", "title": "Salut"}]),
     ["message_changed"]),
    # A field moving from one message to another, beside a title change (a review's find).
    (SALE_WITH_MEDIA, _media_moved_to_french(), ["message_changed", "other_changed"]),
    # A number written otherwise (2 -> 2.0): the content hash tells them apart, and
    # PostgreSQL's jsonb equality did not.
    (SALE_CAPPED, {"capping": 2.0, "name": "Capped"}, ["other_changed", "renamed"]),
]  # fmt: skip


def test_an_unnamed_change_beside_named_ones_is_its_own_other_changed_row(
    any_db_url: str, any_db: Engine
) -> None:
    """A rename and a label change in one version showed only `renamed`: other_changed
    was left out whenever a named kind had a row (a fresh analyst review). Each case is
    a campaign of its own, all synced in two passes (one table, one database per run)."""
    before: dict[Any, list[dict[str, Any]]] = {PUSH: [], IN_APP: []}
    after: dict[Any, list[dict[str, Any]]] = {PUSH: [], IN_APP: []}
    for index, (campaign, change, _) in enumerate(CHANGES_BESIDE_NAMED):
        kind = IN_APP if campaign is WELCOME else PUSH
        first = copy.deepcopy(campaign) | {"campaign_token": f"case{index:02d}"}
        before[kind].append(first)
        after[kind].append(copy.deepcopy(first) | change)
    sync(any_db_url, batch(*before[PUSH], in_app=tuple(before[IN_APP])))
    sync(any_db_url, batch(*after[PUSH], in_app=tuple(after[IN_APP])))
    shown: dict[str, list[str]] = {}
    for token, change in rows(
        any_db, "select campaign_token, change from v_campaign_changes order by 1, 2"
    ):
        shown.setdefault(token, []).append(change)
    expected = {f"case{i:02d}": kinds for i, (*_, kinds) in enumerate(CHANGES_BESIDE_NAMED)}
    assert shown == expected


def test_labels_and_segments_that_are_not_text_are_left_out_of_the_views_and_warned(
    any_db_url: str, any_db: Engine
) -> None:
    odd = copy.deepcopy(SALE)
    odd["labels"] = ["promo", 7, {"k": "v"}, None, True, ["x"], 1.5, "spring", "BIG"]
    odd["targeting"] = {"segments": ["NEW", 3, {"s": "X"}, "NAN"]}
    fake = FakeBatch()  # numbers no float holds, which Python reads as text, are numbers too
    raw = json.dumps(odd).replace('"BIG"', "1e400").replace('"NAN"', "NaN")
    fake.add(PUSH, "sale", raw)
    sync(any_db_url, fake)
    assert rows(
        any_db, "select label from v_campaign_labels where campaign_token = 'sale' order by label"
    ) == [("promo",), ("spring",)]
    assert rows(any_db, "select segment from v_campaign_segments") == [("NEW",)]
    assert rows(
        any_db, "select segments, labels from v_campaigns where campaign_token = 'sale'"
    ) == [("NEW", "promo, spring")]
    assert rows(any_db, "select field from sync_warnings order by field") == [
        ("labels",),
        ("labels[8]",),
        ("targeting.segments",),
        ("targeting.segments[3]",),
    ]


def test_what_a_message_said_on_a_date_is_one_query(history: Engine) -> None:
    on_date = (  # a moment inside version 1's validity: just when it was first seen
        "(select valid_from from campaign_versions where version = 1 and campaign_id = "
        "(select id from campaigns where campaign_token = 'sale'))"
    )
    assert rows(
        history,
        "select version, message_bodies from v_campaign_versions "
        f"where campaign_token = 'sale' and valid_from <= {on_date} "
        f"and (valid_to is null or valid_to > {on_date})",
    ) == [(1, "en: 20% off | fr: -20%")]


@pytest.fixture(params=["postgresql", "sqlite"])
def url_at_0006(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "postgresql":
        url = str(request.getfixturevalue("fresh_pg_url"))
    else:
        url = f"sqlite:///{tmp_path}/at_0006.db"
    migrate.upgrade(url, "0006")
    return url


def test_the_migration_backfills_the_history_from_existing_rows(url_at_0006: str) -> None:
    engine = make_engine(url_at_0006)
    campaign = (
        "insert into campaigns (id, app, campaign_type, campaign_token, first_seen_at, "
        "last_seen_at, updated_at, content_hash, detail, deleted_at) values "
        "(:id, 'ios', 'push', :token, :t, :t, :t, :hash, '{\"name\": \"x\"}', :deleted)"
    )
    version = (
        "insert into campaign_versions (id, campaign_id, recorded_at, content_hash, detail) "
        "values (:id, :campaign_id, :t, 'h', '{}')"
    )
    with engine.begin() as conn:
        conn.execute(text(campaign), [
            {"id": 1, "token": "two-versions", "t": "2026-11-01 10:00:00", "hash": "h",
             "deleted": None},
            {"id": 2, "token": "no-history", "t": "2026-11-02 10:00:00", "hash": "h",
             "deleted": None},
            {"id": 3, "token": "deleted", "t": "2026-11-03 10:00:00", "hash": "h",
             "deleted": "2026-11-10 10:00:00"},
        ])  # fmt: skip
        conn.execute(text(version), [
            {"id": 10, "campaign_id": 1, "t": "2026-11-05 10:00:00"},
            {"id": 11, "campaign_id": 1, "t": "2026-11-01 10:00:00"},
            {"id": 12, "campaign_id": 3, "t": "2026-11-03 10:00:00"},
        ])  # fmt: skip
    migrate.upgrade(url_at_0006)
    assert rows(
        engine,
        "select campaign_id, version, change_kind, valid_from, valid_to from campaign_versions "
        "order by campaign_id, version",
    ) == [
        (1, 1, "created", "2026-11-01 10:00:00", "2026-11-05 10:00:00"),
        (1, 2, "changed", "2026-11-05 10:00:00", None),
        (2, 1, "created", "2026-11-02 10:00:00", None),
        (3, 1, "created", "2026-11-03 10:00:00", "2026-11-10 10:00:00"),
        (3, 2, "deleted", "2026-11-10 10:00:00", None),
    ]
    migrate.downgrade(url_at_0006, "0006")
    assert count(engine, "select count(*) from campaign_versions") == 4
    engine.dispose()


def test_a_campaign_back_with_new_content_shows_restored_and_what_changed(
    any_db_url: str, any_db: Engine
) -> None:
    sync(any_db_url, batch(SALE, DIGEST))
    sync(any_db_url, batch(DIGEST))
    sync(any_db_url, batch({**SALE, "name": "Back again"}, DIGEST))
    assert rows(
        any_db,
        "select campaign_token, version, change, before_value, after_value "
        "from v_campaign_changes order by version, change",
    ) == [
        ("sale", 2, "deleted", None, None),
        ("sale", 3, "renamed", "Spring sale", "Back again"),
        ("sale", 3, "restored", None, None),
    ]


def test_a_new_recurrence_end_or_another_clock_is_rescheduled(
    any_db_url: str, any_db: Engine
) -> None:
    """The schedule text left out the recurrence's end (a recurring push's only end) and
    which clock a time is on: both changes read as other_changed, without before/after."""
    sync(any_db_url, batch(SALE, DIGEST, in_app=()))
    extended = copy.deepcopy(DIGEST)
    extended["recurrence"]["end_date"] = "2030-01-01T00:00:00"
    local_sale = {k: v for k, v in SALE.items() if k != "push_time"}
    local_sale["local_push_time"] = SALE["push_time"]
    sync(any_db_url, batch(local_sale, extended, in_app=()))
    assert rows(
        any_db,
        "select campaign_token, version, change, before_value, after_value "
        "from v_campaign_changes order by campaign_token, change",
    ) == [
        ("digest", 2, "rescheduled",
         "starts 2026-12-03T18:00:00 local every 1 WEEKLY until 2027-03-01T00:00:00",
         "starts 2026-12-03T18:00:00 local every 1 WEEKLY until 2030-01-01T00:00:00"),
        ("sale", 2, "rescheduled", "starts 2026-12-01T09:00:00 GMT",
         "starts 2026-12-01T09:00:00 local"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("away", "expected"),
    [
        ({"labels": ["promo"]}, [(3, "other_changed"), (3, "restored")]),  # unnamed change
        ({}, [(3, "restored")]),  # back as it left: no change to show
        ({"name": "Back"}, [(3, "renamed"), (3, "restored")]),  # named: no other_changed
    ],
)
def test_a_campaign_back_with_an_unnamed_change_also_shows_other_changed(
    away: dict[str, Any], expected: list[tuple[int, str]], any_db_url: str, any_db: Engine
) -> None:
    """Only changed versions could be other_changed: a campaign whose labels changed
    while it was deleted came back as `restored` alone."""
    sync(any_db_url, batch(SALE, DIGEST, in_app=()))
    sync(any_db_url, batch(DIGEST, in_app=()))
    sync(any_db_url, batch(copy.deepcopy(SALE) | away, DIGEST, in_app=()))
    assert (
        rows(
            any_db,
            "select version, change from v_campaign_changes where campaign_token = 'sale' "
            "and version = 3 order by change",
        )
        == expected
    )


# (live before, live after, what v_campaign_changes shows; the view's live and
# live_as_sent after). A `live` that came as text or a number was read as no boolean by
# the views (campaigns.live reads text "true"), and counted as false: a campaign live all
# along showed `stopped` or `went_live` (a review's find).
LIVE_READINGS: list[tuple[Any, Any, list[str], int | None, str]] = [
    (True, "true", ["other_changed"], 1, '"true"'),
    (True, " TRUE\n", ["other_changed"], 1, '" TRUE\\n"'),
    ("true", True, ["other_changed"], 1, "true"),
    (False, "true", ["went_live"], 1, '"true"'),
    (True, "False", ["stopped"], 0, '"False"'),
    ("false", True, ["went_live"], 1, "true"),
    (True, 7, ["other_changed"], None, "7"),
    (7, True, ["other_changed"], 1, "true"),
    (True, "yes", ["other_changed"], None, '"yes"'),
    (True, None, ["other_changed"], None, "null"),
    (True, "\u00a0true", ["other_changed"], None, '"\u00a0true"'),  # no ASCII space
    (False, True, ["went_live"], 1, "true"),
    (True, False, ["stopped"], 0, "false"),
]


def test_went_live_and_stopped_only_between_readable_live_values(
    any_db_url: str, any_db: Engine
) -> None:
    """Each case is a campaign of its own, synced twice; the view's `live` is what
    campaigns.live holds, on both databases."""
    before, after = [], []
    for index, (first, then, *_) in enumerate(LIVE_READINGS):
        campaign = copy.deepcopy(SALE) | {"campaign_token": f"live{index:02d}"}
        before.append(campaign | {"live": first})
        after.append(campaign | {"live": then})
    sync(any_db_url, batch(*before))
    sync(any_db_url, batch(*after))
    shown: dict[str, list[str]] = {}
    for token, change in rows(
        any_db,
        "select campaign_token, change from v_campaign_changes "
        "where campaign_token like 'live%' order by 1, 2",
    ):
        shown.setdefault(token, []).append(change)
    assert shown == {f"live{i:02d}": kinds for i, (_, _, kinds, *_) in enumerate(LIVE_READINGS)}
    current = rows(
        any_db,
        "select v.campaign_token, v.live, c.live, v.live_as_sent from v_campaign_versions v "
        "join campaigns c on c.id = v.campaign_id "
        "where v.is_current and v.campaign_token like 'live%' order by 1",
    )
    assert current == [
        (f"live{i:02d}", live, live, sent) for i, (_, _, _, live, sent) in enumerate(LIVE_READINGS)
    ]


_ABSENT = object()  # the detail has no `live` key at all

# (live in versions 1, 2, 3; v2 also renamed; what v_campaign_changes shows: (version,
# change)). A real stop across an unreadable value (true -> 7 -> false) showed only
# other_changed twice, and an unreadable live beside a rename showed nothing of live at
# all (a review's find): went_live/stopped compare with the last readable live, and live
# moving otherwise is other_changed even beside named kinds.
LIVE_HISTORIES: list[tuple[tuple[Any, Any, Any], bool, list[tuple[int, str]]]] = [
    ((True, 7, False), False, [(2, "other_changed"), (3, "stopped")]),
    ((True, _ABSENT, False), False, [(2, "other_changed"), (3, "stopped")]),
    ((False, None, True), False, [(2, "other_changed"), (3, "went_live")]),
    ((True, 7, True), False, [(2, "other_changed"), (3, "other_changed")]),
    ((True, "yes", "TRUE"), False, [(2, "other_changed"), (3, "other_changed")]),
    ((True, 7, 7), True, [(2, "other_changed"), (2, "renamed")]),
    ((True, "true", "true"), True, [(2, "other_changed"), (2, "renamed")]),
    ((True, True, False), True, [(2, "renamed"), (3, "stopped")]),
    ((False, "false", True), False, [(2, "other_changed"), (3, "went_live")]),
]  # fmt: skip


def test_live_changes_are_told_across_unreadable_values(any_db_url: str, any_db: Engine) -> None:
    """Each case is a campaign of its own, synced three times, on both databases."""
    passes: list[list[dict[str, Any]]] = [[], [], []]
    for index, (lives, renamed, _) in enumerate(LIVE_HISTORIES):
        for number, live in enumerate(lives):
            campaign = copy.deepcopy(SALE) | {"campaign_token": f"hist{index:02d}"}
            if live is _ABSENT:
                del campaign["live"]
            else:
                campaign["live"] = live
            if renamed and number >= 1:
                campaign["name"] = "Renamed sale"
            passes[number].append(campaign)
    for campaigns in passes:
        sync(any_db_url, batch(*campaigns))
    shown: dict[str, list[tuple[int, str]]] = {}
    for token, version, change in rows(
        any_db,
        "select campaign_token, version, change from v_campaign_changes "
        "where campaign_token like 'hist%' order by 1, 2, 3",
    ):
        shown.setdefault(token, []).append((version, change))
    assert shown == {f"hist{i:02d}": seen for i, (*_, seen) in enumerate(LIVE_HISTORIES)}


def test_0013_reads_stored_yes_no_text_again_by_its_rule(any_db_url: str, any_db: Engine) -> None:
    """Rows stored before 0013 read "\\u00a0true" (Python's wider whitespace) as true, where
    the views read NULL: the upgrade reads such text again by the one rule (a review's
    find). A value that is no text is left as stored."""
    odd = copy.deepcopy(SALE) | {"campaign_token": "odd", "live": "\u00a0true",
                                 "dev_only": "\u3000false", "from_api": " TRUE\n"}  # fmt: skip
    plain = copy.deepcopy(SALE) | {"campaign_token": "plain", "live": True}
    sync(any_db_url, batch(odd, plain, in_app=()))
    with any_db.begin() as conn:  # as the rule before 0013 had stored them
        conn.execute(text("update campaigns set live = true, dev_only = false"))
    migrate.downgrade(any_db_url, "0012")
    migrate.upgrade(any_db_url)
    assert rows(
        any_db, "select campaign_token, live, dev_only, from_api from campaigns order by 1"
    ) == [("odd", None, None, 1), ("plain", 1, 0, 1)]
    assert rows(
        any_db,
        "select v.campaign_token, v.live from v_campaign_versions v join campaigns c "
        "on c.id = v.campaign_id where v.is_current and v.live is not distinct from c.live "
        "order by 1",
    ) == [("odd", None), ("plain", 1)]
