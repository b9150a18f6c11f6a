"""The page plan: the diff of a page against the database, decided without one; and the
property that any page, however hostile, loads into real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.db.loader import write_page
from campaign_sync.db.models import campaigns, sync_warnings
from campaign_sync.jsondoc import UnrepresentableNumber
from campaign_sync.plan import PageLoad, StoredCampaign, campaigns_by_token, plan_page
from campaign_sync.transform import stable_hash

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PUSH = CampaignType.PUSH


def detail(token: str, name: str) -> dict[str, Any]:
    return {"campaign_token": token, "name": name, "live": True}


def test_the_plan_decides_every_kind_of_change_without_a_database() -> None:
    unchanged, renamed, gone, failed = (
        detail("same", "Same"),
        detail("renamed", "New name"),
        detail("gone", "Gone"),
        detail("failed", "Failed"),
    )
    stored = {
        "same": StoredCampaign(1, stable_hash(unchanged), stable_hash(unchanged), NOW, NOW),
        "renamed": StoredCampaign(2, "old", stable_hash(detail("renamed", "Old name")), NOW, None),
        "gone": StoredCampaign(3, stable_hash(gone), stable_hash(gone), NOW, None),
    }
    entries = [unchanged, renamed, gone, failed, detail("new", "New"), detail("bad\x00", "x")]
    by_token, unsendable = campaigns_by_token(entries)
    load = PageLoad(
        app="ios",
        campaign_type=PUSH,
        run_id=7,
        sweep_id=3,
        now=NOW,
        list_entries=by_token,
        details={"same": unchanged, "renamed": renamed, "new": detail("new", "New")},
        gone=["gone"],
        failed={"failed": "GET campaigns/view for app 'ios' failed: 500"},
        unsendable=unsendable,
        stored=stored,
    )
    plan = plan_page(load)
    assert [(w.campaign_token, w.campaign_id) for w in plan.writes] == [
        ("renamed", 2),
        ("new", None),
        ("failed", None),  # kept from its list entry, without a detail
    ]
    assert plan.writes[0].values["name"] == "New name"
    assert plan.writes[2].values["detail"] is None and plan.writes[2].values["list_hash"] is None
    assert [r["id"] for r in plan.refreshes] == [1]
    assert plan.restored == 1  # "same" was tombstoned and is back
    assert plan.tombstones == []  # "gone" (404) is left unseen: the sweep's end decides
    assert plan.seen == ["same", "renamed", "failed", "new"]
    assert [(w.campaign_token, w.warning.field) for w in plan.warnings] == [
        ("bad\x00", "campaign_token")
    ]
    counts = plan.counts()
    assert (
        counts.campaigns_inserted,
        counts.campaigns_updated,
        counts.campaigns_unchanged,
        counts.campaigns_deleted,
    ) == (2, 2, 0, 0)
    assert counts.warnings == 2  # the unsendable token, and the failed detail


def test_a_404_outside_a_sweep_is_marked_by_the_plan_itself() -> None:
    stored = {"t": StoredCampaign(5, "h", "old", NOW, None)}
    load = PageLoad("ios", PUSH, None, None, NOW, {}, gone=["t"], stored=stored)
    plan = plan_page(load)
    assert plan.tombstones == [5] and plan.counts().campaigns_deleted == 1


def test_a_write_back_plan_leaves_the_sweeps_bookkeeping_alone() -> None:
    stored = {"t": StoredCampaign(5, "h", "old", NOW, None)}
    load = PageLoad(
        "ios", PUSH, None, None, NOW, {}, details={"t": detail("t", "N")}, stored=stored
    )
    plan = plan_page(load)
    [write] = plan.writes
    assert not {"list_entry", "list_hash", "last_seen_at", "last_sweep_id"} & set(write.values)
    assert plan.seen == []


# -- the property ---------------------------------------------------------------------------

ODD_CHARACTERS = ["\x00", "\ud800", "\udfff", "\x01", "#", "?", "%", "/", ".", "é", "\U0001f600"]
text = st.text(st.one_of(st.characters(), st.sampled_from(ODD_CHARACTERS)), max_size=12)
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
    st.sampled_from([UnrepresentableNumber(n) for n in ("1e400", "-1e999", "NaN", "9" * 5000)]),
    st.sampled_from(
        ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2018-02-29T17:30:00"]
    ),
)
json_value = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)
deep = st.integers(min_value=95, max_value=140).map(lambda depth: _nest(depth))
value = st.one_of(json_value, deep)
FIELDS = ["name", "live", "created_date", "push_time", "end_date", "time_to_live", "capping",
          "messages", "landing", "trigger", "targeting", "custom_payload", "labels",
          "recurrence", "deeplink", "priority"]  # fmt: skip
document = st.dictionaries(st.sampled_from(FIELDS) | text, value, max_size=6)
token = st.text(st.one_of(st.characters(), st.sampled_from(ODD_CHARACTERS)), min_size=1, max_size=8)
hostile = st.tuples(token, document, document, st.sampled_from(["detail", "failed", "gone"]))


def _nest(depth: int) -> Any:
    node: Any = "bottom"
    for level in range(depth):
        node = [node] if level % 2 else {"k": node}
    return node


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(campaigns_=st.lists(hostile, min_size=1, max_size=4, unique_by=lambda c: c[0]))
def test_any_page_loads_and_its_ordinary_campaigns_are_always_stored(
    pg_session_url: str, campaigns_: list[tuple[str, Any, Any, str]]
) -> None:
    from campaign_sync.db.session import make_engine

    engine = make_engine(pg_session_url)
    try:
        _load_one_page(engine, campaigns_)
    finally:
        engine.dispose()


def _load_one_page(engine: Engine, hostile_campaigns: list[tuple[str, Any, Any, str]]) -> None:
    app = uuid.uuid4().hex  # a fresh app per example: no state carried over
    ordinary = [detail("ordinary-1", "First"), detail("ordinary-2", "Second")]
    entries: list[Any] = [ordinary[0]]
    for token_, entry, _, _ in hostile_campaigns:
        entries.append({**entry, "campaign_token": token_})
    entries.append(ordinary[1])
    by_token, unsendable = campaigns_by_token(entries)
    load = PageLoad(app, PUSH, None, 1, NOW, by_token, unsendable=unsendable)
    load.details = {d["campaign_token"]: d for d in ordinary}
    for token_, _, fetched, outcome in hostile_campaigns:
        if token_ not in by_token:
            continue
        if outcome == "detail":
            load.details[token_] = {**fetched, "campaign_token": token_}
        elif outcome == "failed":
            load.failed[token_] = "GET campaigns/view failed: 500 \x00"
        else:
            load.gone.append(token_)

    write_page(engine, plan_page(load))

    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                select(campaigns.c.campaign_token, campaigns.c.name).where(campaigns.c.app == app)
            ).all()
        )
        warned = {t for (t,) in conn.execute(
            select(sync_warnings.c.campaign_token).where(sync_warnings.c.app == app)
        )}  # fmt: skip
    assert stored["ordinary-1"] == "First" and stored["ordinary-2"] == "Second"
    for token_, _, _, outcome in hostile_campaigns:
        if token_ in unsendable:
            assert _clean(token_) in warned
        elif outcome != "gone":
            assert token_ in stored or token_ in warned


def _clean(text_: str) -> str:
    from campaign_sync.storable import storable

    return str(storable(text_)[0])


def test_what_the_decoder_reads_below_the_depth_limit_is_kept_as_text() -> None:
    from campaign_sync.jsondoc import decode
    from campaign_sync.storable import storable

    for depth in (150, 950):  # 950: deeper than the encoder reaches from inside the walk
        document = decode(('{"x": ' + "[" * depth + "1" + "]" * depth + "}").encode())
        clean, [warning] = storable(document)
        node = clean["x"]
        for _ in range(99):
            node = node[0]
        assert node == "[" * (depth - 99) + "1" + "]" * (depth - 99)
        assert warning.field == "x" + "[0]" * 99


def test_numbers_a_float_cannot_hold_keep_their_text_at_both_ends() -> None:
    from campaign_sync.jsondoc import decode

    # (JSON number, what decoding gives): overflow and underflow alike keep their digits.
    table = [
        ("1e400", UnrepresentableNumber("1e400")),
        ("1e-400", UnrepresentableNumber("1e-400")),
        ("-2.5E-999", UnrepresentableNumber("-2.5E-999")),
        ("0.0000e-999", 0.0),  # a zero is a zero
        ("0e5", 0.0),
        ("-0.0", -0.0),
        ("5e-324", 5e-324),  # the smallest double: representable
        ("1.5", 1.5),
    ]
    for text, expected in table:
        [value] = decode(f"[{text}]")
        assert type(value) is type(expected) and value == expected, text


def _decode_from_depth(frames: int, document: bytes) -> Any:
    """`decode(document)` called `frames` frames deeper than this test."""
    from campaign_sync.jsondoc import decode

    return _decode_from_depth(frames - 1, document) if frames else decode(document)


def test_how_deep_a_document_decodes_does_not_depend_on_the_callers_depth() -> None:
    from campaign_sync.jsondoc import NestedTooDeeply

    # (caller's extra frames, document depth, decodes?): a deeper caller (pytest-xdist's
    # worker, a deeper call path) reaches as deep as a shallow one.
    table = [(0, 1000, True), (300, 1000, True), (600, 1000, True), (900, 1000, True),
             (0, 5000, False), (600, 5000, False)]  # fmt: skip
    for frames, depth, decodes in table:
        document = ("[" * depth + "]" * depth).encode()
        try:
            value = _decode_from_depth(frames, document)
        except NestedTooDeeply:
            value = None
        assert (value is not None) is decodes, (frames, depth)
        if decodes:
            for _ in range(depth - 1):
                value = value[0]
            assert value == [], (frames, depth)


def test_the_plan_decides_each_campaigns_history_without_a_database() -> None:
    same, renamed, back = detail("same", "Same"), detail("renamed", "New"), detail("back", "Back")
    stored = {
        "same": StoredCampaign(1, "l", stable_hash(same), NOW, None, 1),
        "renamed": StoredCampaign(2, "l", stable_hash(detail("renamed", "Old")), NOW, None, 2),
        "back": StoredCampaign(3, "l", stable_hash(back), NOW, NOW, 3),  # tombstoned
        "gone": StoredCampaign(4, "l", "h", NOW, None, 1),
        "unversioned": StoredCampaign(5, None, None, None, None, None),
    }
    unversioned = detail("unversioned", "Had no detail yet")
    load = PageLoad(
        app="ios",
        campaign_type=PUSH,
        run_id=9,
        sweep_id=4,
        now=NOW,
        list_entries={t: detail(t, t) for t in ("same", "renamed", "back", "new", "unversioned")},
        details={"same": same, "renamed": renamed, "back": back, "new": detail("new", "New"),
                 "unversioned": unversioned},
        gone=["gone"],
        stored=stored,
    )  # fmt: skip
    plan = plan_page(load)
    written = {w.campaign_token: (w.version or {}).get("version") for w in plan.writes}
    assert written == {"renamed": 3, "new": 1, "unversioned": 1}
    assert [(w.campaign_token, (w.version or {})["change_kind"]) for w in plan.writes] == [
        ("renamed", "changed"),
        ("new", "created"),
        ("unversioned", "created"),
    ]
    assert [
        (v["campaign_id"], v["version"], v["change_kind"], v["content_hash"] is None)
        for v in plan.versions
    ] == [(3, 4, "restored", False)]  # "gone" gets its deleted version at the sweep's end
    assert all(v["valid_from"] == NOW and v["valid_to"] is None for v in plan.versions)
