"""Transform: Batch JSON -> typed rows and warnings, pure and unbreakable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.jsondoc import UnrepresentableNumber, decode, encode
from campaign_sync.storable import storable_document
from campaign_sync.transform import document_hash, stable_hash, transform_campaign

PUSH_DOC_EXAMPLE = {  # Batch's own example for the push view endpoint
    "campaign_token": "a0082dc6860938a26280bd3ba927303b",
    "from_api": False,
    "dev_only": True,
    "created_date": "2017-07-05T15:11:33",
    "name": "Test campaign",
    "live": True,
    "push_time": "2017-07-05T13:32:30",
    "gcm_collapse_key": "default",
    "targeting": {"segments": ["NEW", "ENGAGED", "ONE_TIME"]},
    "messages": [{"language": "en", "title": "Hello!", "body": "How's it going?"}],
}

IN_APP_DOC_EXAMPLE = {  # Batch's own example for the in-app view endpoint
    "campaign_token": "70448bafec76439d534ec98ea7ab712c",
    "from_api": True,
    "dev_only": False,
    "created_date": "2018-08-13T10:11:38",
    "name": "In-App campaign name",
    "live": True,
    "end_date": "2018-10-31T17:30:00",
    "trigger": {
        "capping": 10,
        "when": "next_session",
        "grace_period": {"every": 2, "unit": "HOURS"},
    },
    "targeting": {"segments": ["NEW"]},
    "landing": {
        "theme": "THEME_CODE",
        "contents": [
            {
                "language": "fr",
                "title": "Landing title",
                "body": "Landing body",
                "actions": [{"action": "DISMISS", "label": "Ok"}],
            }
        ],
    },
}


def test_push_example_becomes_rows_for_every_table() -> None:
    rows = transform_campaign(CampaignType.PUSH, "a008", PUSH_DOC_EXAMPLE)
    c = rows.campaign
    assert c["name"] == "Test campaign" and c["live"] is True and c["dev_only"] is True
    assert c["created_date"] == datetime(2017, 7, 5, 15, 11, 33, tzinfo=UTC)
    assert c["push_time"] == datetime(2017, 7, 5, 13, 32, 30, tzinfo=UTC)
    assert c["gcm_collapse_key"] == "default"
    assert c["detail"] == PUSH_DOC_EXAMPLE
    assert rows.messages == [
        {
            "position": 0,
            "language": "en",
            "header": None,
            "title": "Hello!",
            "body": "How's it going?",
            "image": None,
        }
    ]
    assert rows.targeting is not None
    assert rows.targeting["segments"] == ["NEW", "ENGAGED", "ONE_TIME"]
    assert rows.trigger is None and rows.warnings == []


def test_in_app_example_becomes_messages_actions_trigger_and_targeting() -> None:
    rows = transform_campaign(CampaignType.IN_APP, "7044", IN_APP_DOC_EXAMPLE)
    assert rows.campaign["end_date"] == datetime(2018, 10, 31, 17, 30, tzinfo=UTC)
    assert rows.campaign["theme"] == "THEME_CODE"
    assert rows.messages[0]["title"] == "Landing title"
    assert rows.message_actions == [
        {"message_position": 0, "position": 0, "action": "DISMISS", "label": "Ok", "args": None}
    ]
    assert rows.trigger == {
        "trigger_when": "next_session",
        "event": None,
        "label": None,
        "capping": 10,
        "grace_period_every": 2,
        "grace_period_unit": "HOURS",
    }


def test_the_docs_impossible_date_is_a_warning_and_stays_in_detail() -> None:
    doc = {**IN_APP_DOC_EXAMPLE, "end_date": "2018-02-29T17:30:00"}
    rows = transform_campaign(CampaignType.IN_APP, "7044", doc)
    assert rows.campaign["end_date"] is None
    assert [(w.field, w.raw_value) for w in rows.warnings] == [("end_date", "2018-02-29T17:30:00")]
    assert rows.campaign["detail"]["end_date"] == "2018-02-29T17:30:00"


def test_local_dates_stay_wall_clock_and_gmt_dates_become_utc() -> None:
    doc = {
        "local_push_time": "2017-03-03T13:10:19",
        "push_time": "2017-03-03T13:10:19",
        "local_start_date": "2017-03-03T08:00:00+02:00",
    }
    campaign = transform_campaign(CampaignType.PUSH, "t", doc).campaign
    assert campaign["local_push_time"] == datetime(2017, 3, 3, 13, 10, 19)
    assert campaign["local_push_time"].tzinfo is None
    assert campaign["push_time"].tzinfo is UTC
    assert campaign["local_start_date"] == datetime(2017, 3, 3, 8, 0)


def test_custom_payload_is_parsed_only_when_it_holds_json() -> None:
    valid = transform_campaign(CampaignType.PUSH, "t", {"custom_payload": '{"foo" : "bar"}'})
    assert valid.campaign["custom_payload"] == {"foo": "bar"}
    broken = transform_campaign(CampaignType.PUSH, "t", {"custom_payload": "{not valid json"})
    assert broken.campaign["custom_payload"] == "{not valid json"
    assert broken.warnings == []


def test_enum_spellings_are_normalized() -> None:
    doc = {
        "priority": "NORMAL",
        "trigger": {"when": "NEXT_SESSION", "grace_period": {"every": 1, "unit": "hours"}},
        "recurrence": {
            "repeat_unit": "weekly",
            "repeat_frequency": 2,
            "end_date": "2017-07-22T23:59:59",
        },
    }
    rows = transform_campaign(CampaignType.IN_APP, "t", doc)
    assert rows.campaign["priority"] == "normal"
    assert rows.campaign["recurrence_repeat_unit"] == "WEEKLY"
    assert rows.campaign["recurrence_repeat_frequency"] == 2
    assert rows.trigger and rows.trigger["trigger_when"] == "next_session"
    assert rows.trigger["grace_period_unit"] == "HOURS"


def test_wrong_types_become_warnings_never_crashes() -> None:
    doc = {
        "name": {"oops": 1},
        "live": "maybe",
        "capping": "three",
        "time_to_live": 1.5,
        "created_date": 20170101,
        "messages": ["not an object", {"title": ["list"]}],
        "trigger": "now",
        "targeting": [1, 2],
        "recurrence": 5,
        "landing": None,
        "a_field_from_tomorrow": {"nested": True},
    }
    rows = transform_campaign(CampaignType.PUSH, "t", doc)
    fields = {w.field for w in rows.warnings}
    assert {"name", "live", "capping", "time_to_live", "created_date", "messages[0]",
            "messages[1].title", "trigger", "targeting", "recurrence"} <= fields  # fmt: skip
    assert rows.campaign["detail"]["a_field_from_tomorrow"] == {"nested": True}
    assert rows.campaign["name"] is None and rows.campaign["capping"] is None


def test_out_of_range_integers_are_kept_out_of_typed_columns() -> None:
    rows = transform_campaign(CampaignType.PUSH, "t", {"capping": 2**40, "time_to_live": 2**70})
    assert rows.campaign["capping"] is None and rows.campaign["time_to_live"] is None
    assert {w.field for w in rows.warnings} == {"capping", "time_to_live"}


def test_nul_characters_are_replaced_for_storage() -> None:
    rows = transform_campaign(CampaignType.PUSH, "t", {"name": "a\x00b"})
    assert rows.campaign["name"] == "a\ufffdb"
    assert rows.campaign["detail"]["name"] == "a\ufffdb"
    assert rows.warnings


def test_a_list_level_query_reaches_targeting() -> None:
    query = {"$or": [{"isNear(45.7583907,4.8347867,30km)": True}]}
    rows = transform_campaign(CampaignType.IN_APP, "t", {"query": query})
    assert rows.targeting is not None and rows.targeting["query"] == query


def test_an_empty_trigger_marks_an_automation() -> None:
    rows = transform_campaign(CampaignType.PUSH, "t", {"trigger": {}})
    assert rows.trigger is not None and all(v is None for v in rows.trigger.values())


def test_stable_hash_ignores_key_order() -> None:
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash(json.loads('{"b": [1, 2], "a": 1}'))
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_a_document_is_serialised_once_for_its_check_its_hash_and_the_database() -> None:
    plain = {"b": 1, "a": ["é", 2.5, None]}
    prepared = storable_document(plain)
    assert prepared.value is plain and prepared.warnings == []
    assert prepared.text == '{"a":["é",2.5,null],"b":1}'
    assert (
        document_hash(prepared)
        == stable_hash(plain)
        == (
            "537e590b9a99c95fbf8e2aeab14638be47924000ef26560d4aa02b1e69241813"  # as stored before
        )
    )


def test_a_repaired_document_has_no_text_and_keeps_the_hash_of_what_was_received() -> None:
    received = {"name": "a\x00b", "size": float("inf")}
    prepared = storable_document(received)
    assert prepared.text is None
    assert prepared.value == {"name": "a\ufffdb", "size": "Infinity"}
    assert [warning.field for warning in prepared.warnings] == ["name", "size"]
    assert document_hash(prepared) == stable_hash(received) != stable_hash(prepared.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
known_keys = st.sampled_from(
    ["name", "live", "created_date", "end_date", "local_end_date", "messages", "landing",
     "trigger", "targeting", "recurrence", "custom_payload", "capping", "labels", "query"]
)  # fmt: skip
details = st.one_of(
    json_values, st.dictionaries(st.one_of(known_keys, st.text(max_size=8)), json_values)
)


@settings(max_examples=300, deadline=None)
@given(detail=details, campaign_type=st.sampled_from(list(CampaignType)))
def test_any_json_detail_transforms_without_raising_and_keeps_the_token(
    detail: Any, campaign_type: CampaignType
) -> None:
    rows = transform_campaign(campaign_type, "the-token", detail)
    assert rows.campaign_token == "the-token"
    assert isinstance(rows.campaign, dict)
    for message in rows.messages:
        assert message["title"] is None or isinstance(message["title"], str)


TEXT_ARRAYS = [  # (value, the warning's message or None): labels and segments alike
    (["promo", "spring"], None),
    ([], None),
    (None, None),
    (["a", 1], "expected an array of text; element 1 of 2 is a number, left out of the views"),
    ([1.5], "expected an array of text; element 0 of 1 is a number, left out of the views"),
    ([True], "expected an array of text; element 0 of 1 is a boolean, left out of the views"),
    (["a", None, {"x": 1}],
     "expected an array of text; element 1 of 3 is an object or null, left out of the views"),
    ([["a"]], "expected an array of text; element 0 of 1 is an array, left out of the views"),
    ("promo", "expected an array of text, got text"),
    ({"a": "b"}, "expected an array of text, got an object"),
    (3, "expected an array of text, got a number"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "message"), TEXT_ARRAYS)
def test_labels_and_segments_that_are_not_text_arrays_are_kept_and_warned(
    value: Any, message: str | None
) -> None:
    doc = {"labels": value, "targeting": {"segments": value}}
    rows = transform_campaign(CampaignType.PUSH, "t", doc)
    found = {(w.field, w.message) for w in rows.warnings}
    expected = set() if message is None else {("labels", message), ("targeting.segments", message)}
    assert found == expected
    assert rows.campaign["labels"] == value  # the column keeps what Batch sent
    assert rows.targeting is not None and rows.targeting["segments"] == value


def test_numbers_no_column_holds_are_not_text_in_labels_and_segments() -> None:
    doc = decode('{"labels": [1e400, "ok"], "targeting": {"segments": [NaN]}}')
    rows = transform_campaign(CampaignType.PUSH, "t", doc)
    assert {(w.field, w.message) for w in rows.warnings} >= {
        ("labels", "expected an array of text; element 0 of 2 is a number, left out of the views"),
        ("targeting.segments",
         "expected an array of text; element 0 of 1 is a number, left out of the views"),
    }  # fmt: skip
    assert rows.campaign["labels"] == [None, "ok"]
    assert rows.targeting is not None and rows.targeting["segments"] == [None]
    assert rows.campaign["detail"]["labels"] == ["1e400", "ok"]  # the detail keeps the digits


@pytest.mark.parametrize(
    ("value", "column", "warned"),
    [
        ("12", 12, False),  # a number written as text: taken
        (" 12 ", 12, False),
        ("-3", -3, False),
        ("\u0661\u0662", None, True),  # Arabic-Indic digits: Python's int() read 12
        ("1_000", None, True),  # Python's int() read 1000
        ("\uff11\uff12", None, True),  # full-width digits
        ("12.0", None, True),
        ("0x1f", None, True),
    ],
)
def test_an_integer_written_as_text_is_taken_only_in_ascii_digits(
    value: str, column: int | None, warned: bool
) -> None:
    rows = transform_campaign(CampaignType.PUSH, "t", {"capping": value})
    assert rows.campaign["capping"] == column
    assert [w.field for w in rows.warnings] == (["capping"] if warned else [])
    assert rows.campaign["detail"]["capping"] == value  # the detail keeps what Batch sent


@pytest.mark.parametrize(
    ("value", "column", "message"),
    [
        ("2024-06-01T10:00:00", datetime(2024, 6, 1, 10), None),
        ("2024-06-01T10:00:00.5", datetime(2024, 6, 1, 10, 0, 0, 500000), None),
        ("2024-06-01T10:00:00+05:00", datetime(2024, 6, 1, 10),
         "a device wall-clock time with a UTC offset: kept as the wall clock it shows, the "
         "offset left out (detail keeps it)"),
        ("2024-W01-1", None, "not a valid date: expected yyyy-MM-ddTHH:mm:ss"),  # a week date
        ("2024-153", None, "not a valid date: expected yyyy-MM-ddTHH:mm:ss"),  # an ordinal one
        ("2024-06-01T10:00:00.123456789", None, "not a valid date: expected yyyy-MM-ddTHH:mm:ss"),
        ("\u0662\u0660\u0662\u0664-06-01T10:00:00", None,
         "not a valid date: expected yyyy-MM-ddTHH:mm:ss"),
    ],
)  # fmt: skip
def test_a_local_date_is_read_only_as_batch_writes_dates(
    value: str, column: datetime | None, message: str | None
) -> None:
    """Python's fromisoformat read week and ordinal dates, other scripts' digits, and a
    local time's offset, which was dropped without a word; nanoseconds were cut."""
    rows = transform_campaign(CampaignType.PUSH, "t", {"local_push_time": value})
    assert rows.campaign["local_push_time"] == column
    assert [w.message for w in rows.warnings] == ([message] if message else [])


@pytest.mark.parametrize(
    ("value", "column", "message"),
    [
        ("2024-06-01T10:00:00+23:59", datetime(2024, 5, 31, 10, 1, tzinfo=UTC), None),
        ("2024-06-01T10:00:00-23:59", datetime(2024, 6, 2, 9, 59, tzinfo=UTC), None),
        ("2024-06-01T10:00:00+24:00", None, "a UTC offset must be less than 24 hours"),
        ("2024-06-01T10:00:00-2500", None, "a UTC offset must be less than 24 hours"),
        ("2024-06-01T10:00:00+05:60", None, "a UTC offset must be less than 24 hours"),
    ],
)
def test_an_offset_of_a_day_or_more_is_named_in_our_words(
    value: str, column: datetime | None, message: str | None
) -> None:
    """Python's own message named a timedelta ('offset must be a timedelta strictly
    between -timedelta(hours=24) and timedelta(hours=24)')."""
    rows = transform_campaign(CampaignType.PUSH, "t", {"push_time": value})
    assert rows.campaign["push_time"] == column
    expected = [f"not a valid date: {message}"] if message else []
    assert [w.message for w in rows.warnings] == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"name": "a\xffb"}', "contains bytes that are not UTF-8 (or lone surrogates"),
        # CESU-8 is a surrogate written as UTF-8 would write it: json reads it as one
        (b'{"name": "a\xed\xa0\x80b"}', "contains a lone surrogate, which is not valid"),
        (b'{"name": "a\\ud800b"}', "contains a lone surrogate, which is not valid Unicode"),
        (b'{"name": "a\\udfffb"}', "contains a lone surrogate, which is not valid Unicode"),
    ],
)
def test_bytes_that_are_not_utf8_are_not_called_lone_surrogates(raw: bytes, message: str) -> None:
    rows = transform_campaign(CampaignType.PUSH, "t", decode(raw))
    assert [w.field for w in rows.warnings] == ["name"]
    assert rows.warnings[0].message.startswith(message)
    assert "\ufffd" in rows.campaign["name"]


def test_keys_alike_once_repaired_keep_every_value() -> None:
    """{"k\\u0000": 1, "k\\ud800": 2, "k\\ufffd": 3} was stored as {"k\\ufffd": 3}: two values
    lost, and the warnings named only the keys."""
    rows = transform_campaign(
        CampaignType.PUSH, "t", decode(b'{"k\\u0000": 1, "k\\ud800": 2, "k\\ufffd": 3}')
    )
    detail = rows.campaign["detail"]
    assert {key: detail[key] for key in detail if key.startswith("k")} == {
        "k\ufffd (2)": 1,
        "k\ufffd (3)": 2,
        "k\ufffd": 3,
    }
    assert [w.field for w in rows.warnings] == ["k\ufffd (2) (key)", "k\ufffd (3) (key)"]


@pytest.mark.parametrize(
    "text",
    [
        '{"ttl":1e400}',
        '{"q":{"age":{"$gt":-1e999}}}',
        '{"a":[NaN,Infinity,-Infinity]}',
        '{"tiny":1e-400,"ok":0.5,"zero":0.0}',
        '{"big":' + "9" * 5000 + "}",
        '{"looks":"1e400","is":1e400}',  # a string stays a string, a number a number
        '{"n":"NaN","nested":[[{"x":1E400}]]}',
        '{"plain":1,"t":"\\u00e9t\\u00e9"}',  # no such number: json.dumps's own text
        "[1e400,2]",
    ],
)
def test_encode_writes_back_every_number_as_batch_sent_it(text: str) -> None:
    """What goes back to Batch (an in-app update's body) holds the numbers no Python type
    holds as the numbers they came as, never as strings."""
    assert encode(decode(text)) == text


def test_encode_keeps_a_string_that_looks_like_a_number_a_string() -> None:
    document = {"a": "1e400", "b": UnrepresentableNumber("1e400"), "c": ["NaN"]}
    assert encode(document) == '{"a":"1e400","b":1e400,"c":["NaN"]}'
    assert encode(document, indent=1) == '{\n "a": "1e400",\n "b": 1e400,\n "c": [\n  "NaN"\n ]\n}'
