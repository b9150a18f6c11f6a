"""Pure functions from Batch JSON to table rows and warnings. No I/O, never raises on data.

A value that cannot be typed leaves its column NULL and becomes a `FieldWarning`; the
document itself is kept whole (the `detail` column), so nothing Batch sent is lost. The
document first passes `storable()` (the one boundary for what the databases refuse), so
every typed value read from it is storable too. Enum-like text is normalized for
reporting (`NEXT_SESSION` -> `next_session`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from campaign_sync.domain import BOOLEAN_TEXT_SPACE, CampaignType
from campaign_sync.jsondoc import UnreadableJSON, UnrepresentableNumber, decode
from campaign_sync.storable import (
    FieldWarning,
    StorableDocument,
    canonical_json,
    raw_text,
    storable,
    storable_document,
)

INT32 = 2**31 - 1
INT64 = 2**63 - 1
T = TypeVar("T")


@dataclass
class CampaignRows:
    """Everything one campaign document becomes. Child rows carry no `campaign_id` yet."""

    campaign_token: str
    campaign: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    message_actions: list[dict[str, Any]] = field(default_factory=list)
    trigger: dict[str, Any] | None = None
    targeting: dict[str, Any] | None = None
    warnings: list[FieldWarning] = field(default_factory=list)


def stable_hash(document: Any) -> str:
    """A SHA-256 hex digest of a JSON document that ignores key order and whitespace: of
    its `JSONText`."""
    return _digest(canonical_json(document))


def document_hash(prepared: StorableDocument) -> str:
    """`stable_hash` of the document as received, from the text its check already wrote
    when there is one."""
    if prepared.text is None:
        return stable_hash(prepared.received)
    return _digest(prepared.text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _Reader:
    """Typed reads that record a warning instead of raising: whatever a hostile value makes
    a parser raise (ValueError, OverflowError, ...) becomes a warning, never an exception.
    One warning per field: the first one found (the boundary's, when it repaired it) wins."""

    def __init__(self, warnings: list[FieldWarning]) -> None:
        self.warnings = warnings
        self._warned = {warning.field for warning in warnings}

    def warn(self, name: str, value: Any, message: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            self.warnings.append(FieldWarning(name, raw_text(value), message))

    def _safely(
        self, parse: Callable[[], T | None], value: Any, name: str, problem: str
    ) -> T | None:
        try:
            return parse()
        except Exception as error:  # a hostile value must cost its column, never the page
            self.warn(name, value, f"{problem}: {error}")
            return None

    def text(self, value: Any, name: str) -> str | None:
        if isinstance(value, UnrepresentableNumber):
            self.warn(name, value, "a number too large for any column; NULL")
            return None
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.warn(name, value, f"expected text, got {kind_of(value)}")
        return None

    def enum(self, value: Any, name: str, *, upper: bool = False) -> str | None:
        text = self.text(value, name)
        if text is None:
            return None
        return text.strip().upper() if upper else text.strip().lower()

    def boolean(self, value: Any, name: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            reading = value.strip(BOOLEAN_TEXT_SPACE).lower()
            if reading in ("true", "false"):
                return reading == "true"
        self.warn(name, value, f"expected a boolean, got {kind_of(value)}")
        return None

    def integer(self, value: Any, name: str, *, limit: int = INT32) -> int | None:
        if value is None:
            return None
        number = self._safely(lambda: _as_integer(value), value, name, "not an integer")
        if number is None:
            self.warn(name, value, f"expected an integer, got {kind_of(value)}")
            return None
        if not -limit - 1 <= number <= limit:
            self.warn(name, value, "integer out of range")
            return None
        return number

    def _timestamp(self, value: Any, name: str, convert: Callable[[datetime], datetime]) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            self.warn(name, value, f"expected a date yyyy-MM-ddTHH:mm:ss, got {kind_of(value)}")
            return None
        return self._safely(lambda: convert(_batch_date(value)), value, name, "not a valid date")

    def utc(self, value: Any, name: str) -> datetime | None:
        """A GMT date: Batch sends no zone, so a naive value is UTC. Kept only when every
        time zone can show it (`_FIRST_SHOWN`, `_LAST_SHOWN`)."""
        moment: datetime | None = self._timestamp(value, name, _to_utc)
        if moment is not None and not _FIRST_SHOWN <= moment <= _LAST_SHOWN:
            self.warn(name, value, _NOT_SHOWN_IN_EVERY_ZONE)
            return None
        return moment

    def wall_clock(self, value: Any, name: str) -> datetime | None:
        """A `local_*` date: the device's wall clock, kept without a zone. A zone on it is
        a contradiction: the wall clock it shows is kept, with a warning."""

        def local(moment: datetime) -> datetime:
            if moment.tzinfo is not None:
                self.warn(
                    name, value, "a device wall-clock time with a UTC offset: kept as the "
                    "wall clock it shows, the offset left out (detail keeps it)",
                )  # fmt: skip
            return moment.replace(tzinfo=None)

        return self._timestamp(value, name, local)

    def obj(self, value: Any, name: str) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        self.warn(name, value, f"expected an object, got {kind_of(value)}")
        return {}

    def array(self, value: Any, name: str) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.warn(name, value, f"expected an array, got {kind_of(value)}")
        return []

    def text_array(self, value: Any, name: str) -> Any:
        """A JSON array of text (labels, segments), kept as Batch sent it: the column holds
        the JSON; a warning says when it is not an array or holds something other than
        text, which the views (`v_campaign_labels`, `v_campaign_segments`...) leave out.
        A number no column can hold (`UnrepresentableNumber`, text in Python) is stored as
        null there, so that no view takes it for text; the detail keeps its digits."""
        if value is None:
            return None
        if not isinstance(value, list):
            self.warn(name, value, f"expected an array of text, got {kind_of(value)}")
            return value
        odd = [i for i, element in enumerate(value) if not _is_text(element)]
        if odd:
            kinds = sorted({kind_of(value[i]) for i in odd})
            self.warn(
                name,
                value,
                f"expected an array of text; element {odd[0]} of {len(value)} is "
                f"{' or '.join(kinds)}, left out of the views",
            )
        return [None if isinstance(e, UnrepresentableNumber) else e for e in value]


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and not isinstance(value, UnrepresentableNumber)


FieldReader = _Reader  # the same typed reads, for the other documents Batch sends (stats)


_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")
# Batch's dates: yyyy-MM-ddTHH:mm:ss (NOTES.md), a fraction and a zone tolerated. Python's
# fromisoformat also reads week dates (2024-W01-1), ordinal dates and other scripts' digits.
_BATCH_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-](?P<hours>[0-9]{2}):?(?P<minutes>[0-9]{2}))?"
)


def _batch_date(value: str) -> datetime:
    """`value` (a date as Batch writes it) parsed; ValueError naming what is wrong."""
    text = value.strip()
    written = _BATCH_DATE.fullmatch(text)
    if not written:
        raise ValueError("expected yyyy-MM-ddTHH:mm:ss")
    hours, minutes = written.group("hours", "minutes")
    if hours is not None and (int(hours) >= 24 or int(minutes) >= 60):  # Python's own words
        raise ValueError("a UTC offset must be less than 24 hours")  # name a timedelta
    return datetime.fromisoformat(text)


def _as_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        # ASCII digits only, as JSON writes numbers: Python's int() also takes other
        # scripts' digits ("١٢" -> 12) and underscores ("1_000"), silently.
        text = value.strip()
        if not _ASCII_INTEGER.fullmatch(text):
            return None
        try:
            return int(text)
        except ValueError:  # more digits than Python converts
            return None
    return None


def _to_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# A UTC moment that every time zone (offsets up to 24 h either way) shows within years
# 1-9999, the range of Python's datetime and of psycopg, which reads timestamptz in the
# session's zone: `0001-01-01T00:00:00` stored as it is made `select * from v_campaigns`
# fail for every row ("timestamp too small (before year 1)") in a session at
# America/New_York (a review's find). PostgreSQL stores it; its clients cannot read it.
_FIRST_SHOWN = datetime(1, 1, 2, tzinfo=UTC)
_LAST_SHOWN = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)


_NOT_SHOWN_IN_EVERY_ZONE = (
    "a date some time zone shows outside years 1-9999, which PostgreSQL's clients cannot "
    "read there; NULL (detail keeps it)"
)


def kind_of(value: Any) -> str:
    """What a JSON value is, as messages name it: "null", "a boolean", "a number", "text",
    "an array", "an object" (a Python type's name for anything else)."""
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "text",
        UnrepresentableNumber: "a number",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def parse_custom_payload(value: Any) -> tuple[Any, list[FieldWarning]]:
    """Batch sends a JSON document inside a string: the parsed document when the string
    holds valid JSON, else the string itself; made storable (it is a new document)."""
    if isinstance(value, str):
        try:
            value = decode(value)
        except UnreadableJSON:
            return value, []
    return storable(value, "custom_payload")


# Top-level fields of either type's document, by the `_Reader` method that types them.
TYPED_FIELDS = {
    "name": "text",
    "live": "boolean",
    "from_api": "boolean",
    "dev_only": "boolean",
    "created_date": "utc",
    "push_time": "utc",
    "start_date": "utc",
    "end_date": "utc",
    "local_push_time": "wall_clock",
    "local_start_date": "wall_clock",
    "local_end_date": "wall_clock",
    "deeplink": "text",
    "capping": "integer",
    "priority": "enum",
}


def transform_campaign(
    campaign_type: CampaignType, campaign_token: str, document: Any
) -> CampaignRows:
    """Rows for every table from a detail (or, lacking one, a list entry) of either type.

    `document` is what Batch sent, as `jsondoc.decode` gives it. The stored `detail` is
    that document made storable; each repair and each untypable value is a warning.
    """
    return transform_storable(campaign_type, campaign_token, storable_document(document))


def transform_storable(
    campaign_type: CampaignType, campaign_token: str, prepared: StorableDocument
) -> CampaignRows:
    """`transform_campaign` of a document already through `storable_document`."""
    doc = prepared.value
    read = _Reader(list(prepared.warnings))
    if not isinstance(doc, dict):
        read.warn("detail", doc, f"expected a JSON object, got {kind_of(doc)}")
        doc = {}
    custom_payload, payload_repairs = parse_custom_payload(doc.get("custom_payload"))
    for warning in payload_repairs:
        read.warn(warning.field, warning.raw_value, warning.message)
    recurrence = read.obj(doc.get("recurrence"), "recurrence")
    landing = read.obj(doc.get("landing"), "landing")
    campaign: dict[str, Any] = {
        name: getattr(read, kind)(doc.get(name), name) for name, kind in TYPED_FIELDS.items()
    }
    campaign |= {
        "custom_payload": custom_payload,
        "time_to_live": read.integer(doc.get("time_to_live"), "time_to_live", limit=INT64),
        "labels": read.text_array(doc.get("labels"), "labels"),
        "recurrence_repeat_unit": read.enum(
            recurrence.get("repeat_unit"), "recurrence.repeat_unit", upper=True
        ),
        "recurrence_repeat_frequency": read.integer(
            recurrence.get("repeat_frequency"), "recurrence.repeat_frequency"
        ),
        "recurrence_end_date": read.utc(recurrence.get("end_date"), "recurrence.end_date"),
        "theme": read.text(landing.get("theme"), "landing.theme"),
        "landing_image": read.text(landing.get("image"), "landing.image"),
        "gcm_collapse_key": doc.get("gcm_collapse_key"),
        "detail": doc,
    }
    actions: list[dict[str, Any]] = []
    if campaign_type is CampaignType.PUSH:
        messages = _push_messages(read, doc)
    else:
        messages, actions = _landing_contents(read, landing)
    return CampaignRows(
        campaign_token=campaign_token,
        campaign=campaign,
        messages=messages,
        message_actions=actions,
        trigger=_trigger(read, doc),
        targeting=_targeting(read, doc),
        warnings=read.warnings,
    )


def _objects(read: _Reader, value: Any, where: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(position, path, object) for each object of an array; anything else is a warning."""
    for position, item in enumerate(read.array(value, where)):
        path = f"{where}[{position}]"
        if isinstance(item, dict):
            yield position, path, item
        else:
            read.warn(path, item, f"expected an object, got {kind_of(item)}")


def _message_row(
    read: _Reader, position: int, where: str, message: dict[str, Any], image: Any
) -> dict[str, Any]:
    return {
        "position": position,
        "language": read.text(message.get("language"), f"{where}.language"),
        "header": read.text(message.get("header"), f"{where}.header"),
        "title": read.text(message.get("title"), f"{where}.title"),
        "body": read.text(message.get("body"), f"{where}.body"),
        "image": read.text(image, f"{where}.image"),
    }


def _push_messages(read: _Reader, doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for position, where, message in _objects(read, doc.get("messages"), "messages"):
        media = message["media"] if isinstance(message.get("media"), dict) else {}
        image = message.get("image") or media.get("picture") or media.get("image")
        rows.append(_message_row(read, position, where, message, image))
    return rows


def _landing_contents(
    read: _Reader, landing: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    messages, actions = [], []
    for position, where, content in _objects(read, landing.get("contents"), "landing.contents"):
        messages.append(_message_row(read, position, where, content, content.get("image")))
        for index, action_where, action in _objects(
            read, content.get("actions"), f"{where}.actions"
        ):
            actions.append(
                {
                    "message_position": position,
                    "position": index,
                    "action": read.text(action.get("action"), f"{action_where}.action"),
                    "label": read.text(action.get("label"), f"{action_where}.label"),
                    "args": action.get("args"),
                }
            )
    return messages, actions


def _trigger(read: _Reader, doc: dict[str, Any]) -> dict[str, Any] | None:
    if "trigger" not in doc or doc["trigger"] is None:
        return None
    trigger = read.obj(doc["trigger"], "trigger")
    if not isinstance(doc["trigger"], dict):
        return None
    grace = read.obj(trigger.get("grace_period"), "trigger.grace_period")
    return {
        "trigger_when": read.enum(trigger.get("when"), "trigger.when"),
        "event": read.text(trigger.get("event"), "trigger.event"),
        "label": read.text(trigger.get("label"), "trigger.label"),
        "capping": read.integer(trigger.get("capping"), "trigger.capping"),
        "grace_period_every": read.integer(grace.get("every"), "trigger.grace_period.every"),
        "grace_period_unit": read.enum(grace.get("unit"), "trigger.grace_period.unit", upper=True),
    }


TARGETING_COLUMNS = ("segments", "query", "lang", "region", "custom_audience")


def _targeting(read: _Reader, doc: dict[str, Any]) -> dict[str, Any] | None:
    raw = doc.get("targeting")
    has_targeting = isinstance(raw, dict)
    if raw is not None and not has_targeting:
        read.warn("targeting", raw, f"expected an object, got {kind_of(raw)}")
    targeting: dict[str, Any] = raw if isinstance(raw, dict) else {}
    query = targeting.get("query", doc.get("query"))
    if not has_targeting and query is None:
        return None
    extra = {k: v for k, v in targeting.items() if k not in TARGETING_COLUMNS}
    return {
        "segments": read.text_array(targeting.get("segments"), "targeting.segments"),
        "query": query,
        "lang": targeting.get("lang"),
        "region": targeting.get("region"),
        "custom_audience": targeting.get("custom_audience"),
        "extra": extra or None,
    }
