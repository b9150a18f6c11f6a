"""Pure rules for push campaign statistics: which campaigns to ask Batch about, and what
an answer of the stats route becomes (rows of `campaign_stats_daily` plus warnings).

No I/O. Like `transform`, an answer first passes `storable()`, and a counter that cannot
be typed leaves its column NULL and becomes a `FieldWarning`, never an exception.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from campaign_sync.storable import FieldWarning, storable
from campaign_sync.transform import INT64, FieldReader

COUNTERS = ("sent", "sent_optins", "direct_open", "influenced_open", "reengaged", "errors")
VERSION_COUNTERS = COUNTERS[:-1]  # Batch gives no `errors` per A/B version
ALL_VERSIONS = "all"
# A/B tests: `a`, `b` (a third arm would be `c`), in either case; ASCII only: the Kelvin
# sign U+212A lower-cases to `k` (a review's find).
_VERSION_KEY = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class StatsPolicy:
    """Which campaigns' stats are fetched, and how often."""

    window_days: float = 30.0
    max_age_seconds: float = 3600.0


@dataclass(frozen=True)
class StatsCandidate:
    """What the selection rule reads of a stored (not deleted) push campaign."""

    campaign_id: int
    campaign_token: str
    live: bool | None
    send_time: datetime | None  # push_time, else local_push_time, else created_date (UTC)
    end_date: datetime | None  # end_date, else recurrence.end_date
    repeats: bool  # recurring, or a trigger automation: sends until it ends
    fetched_at: datetime | None  # last answer (stats or 404) of the stats route


def stats_due(candidate: StatsCandidate, *, now: datetime, policy: StatsPolicy) -> bool:
    """Fetch when the campaign is still sending (live, recurring or an automation, not
    ended) or was sent or ended within the window, and its last fetch is older than the
    max age. A campaign not yet sent has no stats; older ones are frozen (Batch's `live`
    also means "completed", so a live one-shot push sent long ago is frozen too)."""
    if candidate.fetched_at is not None and candidate.fetched_at > now - timedelta(
        seconds=policy.max_age_seconds
    ):
        return False
    send, end = candidate.send_time, candidate.end_date
    if send is not None and send > now:
        return False
    window_start = now - timedelta(days=policy.window_days)
    if send is not None and send >= window_start:
        return True
    if end is not None and window_start <= end <= now:
        return True
    still_sending = candidate.repeats and (end is None or end > now)
    return bool(candidate.live) and still_sending


@dataclass
class CampaignStats:
    """What one stats answer becomes: rows without `campaign_id`/`fetched_at` yet."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[FieldWarning] = field(default_factory=list)

    @property
    def days(self) -> int:
        return len({row["date"] for row in self.rows})


# No app sends 10^12 pushes a day; beyond, a sum over days could overflow the views.
MAX_COUNT = 10**12


def transform_stats(document: Any) -> CampaignStats:
    """Rows for `campaign_stats_daily` from the answer of the stats route: one per day
    (`version` `all`) and, for an A/B test, one per day and version. Every counter is
    optional. A day without a readable `date` cannot be keyed: it is left out with a
    warning, as is a day repeated in the same answer (the last one wins).

    A warning's field names a day by its date once that is read (`stats.detail[date=
    2026-11-27].sent`), by its position before (`stats.detail[3].date`): a bad counter
    that stays wrong is one `sync_warnings` row however the answer's days move (newest
    first, or the window dropping the oldest), as `db.warnings` folds by field."""
    doc, repairs = storable(document, "stats")
    kept = _kept_days(doc)
    read = FieldReader([_named_by_date(repair, kept) for repair in repairs])
    if not isinstance(doc, dict):
        read.warn("stats", doc, "expected a JSON object")
        return CampaignStats(warnings=read.warnings)
    result: dict[tuple[date, str], dict[str, Any]] = {}
    for position, day in enumerate(read.array(doc.get("detail"), "stats.detail")):
        where = f"stats.detail[{position}]"
        if not isinstance(day, dict):
            read.warn(where, day, "expected an object")
            continue
        when = _day(read, day.get("date"), f"{where}.date")
        if when is None:
            continue
        if position not in kept:  # the same day again further on: that one is kept
            read.warn(f"{where}.date", day.get("date"), "the same day twice; the last one kept")
            continue
        dated = _day_name(when)
        result[(when, ALL_VERSIONS)] = _counters(read, day, dated, COUNTERS, when, ALL_VERSIONS)
        versions = read.obj(day.get("versions"), f"{dated}.versions")
        keys: dict[str, str] = {}  # version -> the key that named it this day
        for key, numbers in versions.items():
            version_where = f"{dated}.versions.{key}"
            # Spaces around it aside, not any white space: str.strip() also removed
            # U+001C-U+001F, so "\x1fa" was taken for 'a' (a review's find).
            if not _VERSION_KEY.fullmatch(key.strip(" ")):
                read.warn(version_where, key, "not an A/B version name (a, b, ...)")
                continue
            version = key.strip(" ").lower()
            if not isinstance(numbers, dict):  # no counters to key: the version is left out
                read.warn(version_where, numbers, "expected an object of counters; left out")
                continue
            if version in keys:  # `a` and `A`, or `a` and ` a`: one row, as for a day twice
                read.warn(
                    version_where, numbers,
                    f"the same version as {keys[version]!r} (case and spaces aside); the "
                    "last one kept",
                )  # fmt: skip
            keys[version] = key
            result[(when, version)] = _counters(
                read, numbers, version_where, VERSION_COUNTERS, when, version
            )
    return CampaignStats(rows=list(result.values()), warnings=read.warnings)


def _day(read: FieldReader, value: Any, name: str) -> date | None:
    if value is None:
        read.warn(name, value, "a day without a date cannot be stored")
        return None
    if not isinstance(value, str):
        read.warn(name, value, "expected a date yyyy-MM-dd")
        return None
    try:
        return _parse_day(value)
    except ValueError as error:
        read.warn(name, value, f"not a valid date: {error}")
        return None


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_day(value: str) -> date:
    """The day of a stats entry's `date` (yyyy-MM-dd, anything after the tenth character
    ignored); ValueError when it is none. ASCII digits in that form only: Python's
    fromisoformat also reads week dates (`2026-W48-5` is 2026-11-27) and other scripts'
    digits, as transform's `_BATCH_DATE` notes for campaign dates."""
    text = value.strip()[:10]
    if not _ISO_DAY.fullmatch(text):
        raise ValueError("expected yyyy-MM-dd")
    return date.fromisoformat(text)


def _day_name(when: date) -> str:
    return f"stats.detail[date={when.isoformat()}]"


def _kept_days(doc: Any) -> dict[int, date]:
    """The entries of the answer's `detail` that become rows, by position: each whose
    `date` reads, the last one of a day given twice."""
    days = doc.get("detail") if isinstance(doc, dict) else None
    last: dict[date, int] = {}
    for position, day in enumerate(days if isinstance(days, list) else []):
        value = day.get("date") if isinstance(day, dict) else None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                last[_parse_day(value)] = position
    return {position: when for when, position in last.items()}


_POSITION = re.compile(r"stats\.detail\[([0-9]+)\]")


def _named_by_date(warning: FieldWarning, kept: dict[int, date]) -> FieldWarning:
    """`storable()`'s repair inside a day that becomes a row (`_kept_days`), named by its
    date as the counters' warnings are (its `date` itself stays named by position)."""
    found = _POSITION.match(warning.field)
    when = kept.get(int(found.group(1))) if found else None
    if found is None or when is None:
        return warning
    rest = warning.field[found.end() :]
    if rest == ".date" or rest.startswith((".date.", ".date ")):
        return warning
    return replace(warning, field=f"{_day_name(when)}{rest}")


def _counters(
    read: FieldReader,
    numbers: dict[str, Any],
    where: str,
    names: tuple[str, ...],
    when: date,
    version: str,
) -> dict[str, Any]:
    row: dict[str, Any] = {"date": when, "version": version}
    for name in COUNTERS:
        value = numbers.get(name) if name in names else None
        number = read.integer(value, f"{where}.{name}", limit=INT64)
        if number is not None and not 0 <= number <= MAX_COUNT:
            read.warn(f"{where}.{name}", value, f"a count must lie in 0..{MAX_COUNT:.0e}")
            number = None
        row[name] = number
    return row


__all__ = [
    "ALL_VERSIONS",
    "COUNTERS",
    "CampaignStats",
    "StatsCandidate",
    "StatsPolicy",
    "stats_due",
    "transform_stats",
]
