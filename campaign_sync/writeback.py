"""Changing an in-app campaign through Batch's update endpoint, safely.

Batch's update wants the *whole* campaign (at least every parameter it was created with),
refuses campaigns not created from the API, and silently overwrites whatever a colleague
changed meanwhile. Because we hold every campaign's last detail, we build the full
payload ourselves, refuse what Batch would refuse before sending anything, check the
campaign did not change since the last sync, and store the result at once. Every
attempt is audited in `campaign_updates`.

From a script::

    from campaign_sync.writeback import update_in_app_sync
    outcome = update_in_app_sync("TOKEN", {"name": "Spring sale", "trigger.capping": 3})
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import DBAPIError

from campaign_sync.batch.client import GONE
from campaign_sync.batch.endpoints import READ_ONLY_FIELDS
from campaign_sync.batch.errors import BatchError, RetryBudgetExhausted, StopRequested
from campaign_sync.config import (
    ConfigError,
    ResolvedApp,
    Settings,
    UnreadableFile,
    load_settings,
    read_named_file,
    resolve_apps,
    select_apps,
)
from campaign_sync.db.loader import stored_campaigns, write_page
from campaign_sync.db.models import campaign_updates, campaigns
from campaign_sync.db.session import (
    database_problem,
    make_engine,
    passing_problem,
    wait_for_locks,
)
from campaign_sync.db.types import utcnow
from campaign_sync.domain import CampaignType
from campaign_sync.plan import PageLoad, StoredCampaign, plan_page
from campaign_sync.runner import make_client
from campaign_sync.signals import held_until_recorded
from campaign_sync.storable import storable, storable_document
from campaign_sync.transform import INT32, document_hash, kind_of, stable_hash

Changes = dict[str, Any]  # dotted path ("trigger.capping") -> new value
_MISSING = object()


class UsageError(Exception):
    """The requested change itself is wrong (exit 2): nothing was sent or stored."""


T = TypeVar("T")


@dataclass
class UpdateOutcome:
    """How an update-in-app attempt ended. `stopped_by`: a SIGINT or SIGTERM held while
    the attempt was being recorded (`signals.held_until_recorded`), for the caller to
    raise again once it has said the outcome."""

    ok: bool
    message: str
    payload: dict[str, Any] | None = None
    conflict: str | None = None
    changed_fields: list[str] | None = None
    stopped_by: int | None = None


KNOWN_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "live": (bool,),
    "capping": (int,),
    "priority": (str,),
    "labels": (list,),
    "trigger": (dict,),
    "targeting": (dict,),
    "landing": (dict,),
    "start_date": (str,),
    "end_date": (str,),
    "local_start_date": (str,),
    "local_end_date": (str,),
}
_TYPE_WORDS = {
    str: "text",
    bool: "true or false",
    int: "a whole number",
    list: "an array",
    dict: "an object",
}
# Counts a campaign can cap its display at, and the grace period's number of units: whole
# numbers >= 0 (Batch's in-app view shows `"capping": 10` at both places and
# `"grace_period": {"every": 2, "unit": "HOURS"}`). One rule for all: `--set capping=-5`
# was sent as is.
COUNTS = ("capping", "trigger.capping", "trigger.grace_period.every")
# Text inside the campaign's objects (the same page, and NOTES.md's "Details").
NESTED_TEXTS = (
    "trigger.when",
    "trigger.event",
    "trigger.label",
    "trigger.grace_period.unit",
    "landing.theme",
)
# What an in-app campaign holds besides its read-only fields (Batch's in-app campaign API).
IN_APP_FIELDS = (*KNOWN_TYPES, "query", "custom_payload")
# The keys of the objects inside an in-app campaign (Batch's in-app view page and the
# answers seen: ../shared/batch-api/NOTES.md, "Details"). Objects of free form (targeting's
# query, custom_payload, landing's contents and their actions) are not listed: anything
# goes there. Batch keeps a parameter once an update added it ("Parameters added after an
# update cannot be removed", its update page), so a typo there stays in the campaign.
NESTED_FIELDS: dict[str, frozenset[str]] = {
    "trigger": frozenset({"when", "event", "label", "capping", "grace_period"}),
    "trigger.grace_period": frozenset({"every", "unit"}),
    "targeting": frozenset({"segments", "query", "lang", "region", "custom_audience"}),
    "landing": frozenset({"theme", "image", "contents"}),
}


def _decode(raw: str, where: str) -> Any:
    """`raw` read as JSON for `where` (the flag that gave it). A number no 64-bit float holds
    (1e400) and the non-standard NaN and Infinity raise UsageError saying so: read as
    Python's infinity, they were refused as "the number Infinity", a value never given.
    Raises ValueError for text that is no JSON, RecursionError for nesting too deep."""

    def finite(number: str) -> float:
        value = float(number)
        mantissa = number.lower().partition("e")[0]
        underflow = value == 0 and any(digit in "123456789" for digit in mantissa)
        if value in (float("inf"), float("-inf")) or underflow:  # 1e400, 1e-400 (sent as 0.0)
            raise UsageError(f"{where}: {number} is a number no 64-bit float holds")
        return value

    def whole(number: str) -> int:
        try:
            return int(number)
        except ValueError:  # past Python's 4,300 digits: it fell to plain text, sent as such
            raise UsageError(f"{where}: a number of {len(number)} digits is too long") from None

    def no_constant(name: str) -> Any:
        raise UsageError(f"{where}: {name} is not JSON: give a number")

    def once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:  # json keeps the last silently: {"name": "a", "name": "b"} sent "b"
            raise UsageError(f"{where}: the key {twice[0]!r} is given twice in one object")
        return dict(pairs)

    return json.loads(
        raw,
        parse_float=finite,
        parse_int=whole,
        parse_constant=no_constant,
        object_pairs_hook=once_each,
    )


# JSON text starts with one of these; a --set value that does not is taken as plain text
# (--set name=Spring), one that does must be JSON: `--set labels=["a",` was taken as the
# text '["a",' and refused as "labels must be list".
_JSON_OPENERS = ("[", "{", '"')


# A document of changes to one campaign: an in-app campaign's whole detail is tens of KB.
MAX_CHANGES_FILE_BYTES = 10 * 1024 * 1024


def _changes_file(named: str) -> bytes:
    """The bytes of --from-file's file: a regular file, a terminal, or a pipe (`/dev/stdin`,
    `<(jq ...)`) that gives its content without long silences (`config.read_at_most`), at most
    `MAX_CHANGES_FILE_BYTES` (`/dev/zero` was read until memory ran out, a FIFO no one
    writes to waited forever: a review's find). Raises UsageError naming what is wrong."""
    try:
        return read_named_file(Path(named), MAX_CHANGES_FILE_BYTES)
    except UnreadableFile as unreadable:
        hint = {
            "directory": ": name a JSON file",
            "too large": ": no campaign's changes are that long; name the JSON file of the changes",
        }.get(unreadable.kind, "")
        separator = ": " if unreadable.kind == "stalled" else " "
        raise UsageError(f"--from-file {named}{separator}{unreadable}{hint}") from None


def parse_changes(
    *,
    name: str | None = None,
    live: str | None = None,
    assignments: tuple[str, ...] | list[str] = (),
    from_file: str | None = None,
    allow_unknown_field: bool = False,
) -> Changes:
    """The changes asked: field path -> new value. Raises UsageError for a change that is
    malformed, given twice (--name beside --set name or the file's name), that the
    database could not store as given, or of an unknown field (unless allowed)."""
    changes: Changes = {}
    given: dict[str, str] = {}  # field path -> the flag that gave it
    if from_file:
        try:
            # utf-8-sig: a byte-order mark, as some editors write, is no JSON error.
            text_read = _changes_file(from_file).decode("utf-8-sig")
            document = _decode(text_read, f"--from-file {from_file}")
        except ValueError as error:
            raise UsageError(f"--from-file {from_file} is not valid JSON: {error}") from None
        except RecursionError:
            raise UsageError(f"--from-file {from_file}: JSON nested too deeply") from None
        if not isinstance(document, dict):
            raise UsageError(f"--from-file {from_file} must hold a JSON object of fields")
        for path, value in document.items():
            _check_path(path, f"--from-file {from_file}")
            _once(given, path, f"--from-file {from_file}")
            changes[path] = value
    for assignment in assignments:
        field, separator, raw = assignment.partition("=")
        field = field.strip()
        if not separator or not field:
            raise UsageError(f"--set takes FIELD=JSON, got {assignment!r}")
        _check_path(field, "--set")
        try:
            value = _decode(raw, f"--set {field}")
        except ValueError as error:
            if raw.strip().startswith(_JSON_OPENERS):
                raise UsageError(
                    f"--set {field}: not valid JSON ({error}); a value starting with [, {{ or "
                    '" must be JSON (other text is taken as is: --set name=Spring sale)'
                ) from None
            value = raw  # plain text is taken as a string: --set name=Spring
        except RecursionError:
            raise UsageError(f"--set {field}: JSON nested too deeply") from None
        _once(given, field, f"--set {field}")
        changes[field] = value
    for field, flag, value in (("name", "--name", name), ("live", "--live", live)):
        if value is not None:
            _once(given, field, flag)
            changes[field] = value if field == "name" else value == "true"
    if not changes:
        raise UsageError("nothing to change: give --name, --live, --set FIELD=JSON or --from-file")
    _check_values(changes, allow_unknown_field)
    return changes


def check_changes(changes: Changes, *, allow_unknown_field: bool = False) -> None:
    """The checks `parse_changes` makes, for changes given as a mapping (the Python API,
    `update_in_app_sync`): paths, a path inside another, values campaign-sync cannot store,
    unknown fields. Raises UsageError."""
    if not changes:
        raise UsageError("nothing to change: give at least one field path and its value")
    given: dict[str, str] = {}
    for path in changes:
        if not isinstance(path, str):
            raise UsageError(f"changes: the field path {path!r} is not text")
        _check_path(path, "changes")
        _once(given, path, "changes")
    try:
        odd = _key_not_text(changes)
    except RecursionError:
        raise UsageError("changes: JSON nested too deeply") from None
    if odd is not None:
        raise UsageError(f"changes: {odd} (JSON keys are text)")
    _check_values(changes, allow_unknown_field)


def _key_not_text(value: Any, where: str = "") -> str | None:
    """Where a mapping inside `value` has a key that is not text ({1: "x"} became "1" in
    JSON, beside a "1" of its own), in words; None if none has."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str):
                return f"the key {key!r}{f' in {where}' if where else ''} is not text"
            found = _key_not_text(inner, f"{where}.{key}" if where else key)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for inner in value:
            found = _key_not_text(inner, where)
            if found is not None:
                return found
    return None


def _check_values(changes: Changes, allow_unknown_field: bool) -> None:
    """Refuse what the database would store otherwise (U+0000, a lone surrogate, NaN,
    nesting past storable's limit): the audit could not keep it, and a sync would store it
    repaired, so that every later update saw a change made elsewhere. Refused, the reason
    named (without the repair a sync would make: nothing is stored). Then unknown fields,
    unless allowed."""
    _, repairs = storable(changes)
    if repairs:
        named = "; ".join(f"{w.field}: {w.message.split('; ')[0]}" for w in repairs[:3])
        raise UsageError(f"{named} (a value campaign-sync cannot store as given: change it)")
    if not allow_unknown_field:
        check_fields(changes)


def _check_path(path: str, flag: str) -> None:
    """Raises UsageError for a field path with an empty part (trigger.=3, trigger..capping)
    or a part with spaces around it ("trigger. capping" sent a key " capping")."""
    parts = path.split(".")
    if any(not part for part in parts) or any(part != part.strip() for part in parts):
        raise UsageError(f"{flag} {path!r}: a field path with an empty part or spaces around one")


def _once(given: dict[str, str], field: str, flag: str) -> None:
    """Record that `flag` gives `field`; raises UsageError when a flag gave it already, or
    a path inside it or around it: --name beside --set name (or the file's name) silently
    won, and --set trigger={...} after --set trigger.capping=5 dropped the capping."""
    for path, earlier in given.items():
        if path == field:
            both = f"{flag} is given twice" if earlier == flag else f"{earlier} and {flag}"
            raise UsageError(f"{both}: both change {field}; keep one")
        if path.startswith(f"{field}.") or field.startswith(f"{path}."):
            outer, inner = sorted((path, field), key=len)
            # One file giving trigger and trigger.when was "--from-file f and --from-file f".
            said = (
                f"{flag} gives both {outer} and {inner}"
                if earlier == flag
                else f"{earlier} and {flag} both change {inner}"
            )
            raise UsageError(f"{said}: keep one, or give {inner} inside the value for {outer}")
    given[field] = flag


def check_fields(changes: Changes) -> None:
    """Refuse a field an in-app campaign does not have (a typo Batch would store as is)."""
    unknown = sorted(
        {path.split(".")[0] for path in changes}
        - set(IN_APP_FIELDS)
        - set(READ_ONLY_FIELDS)  # refused later, with their own reason
    )
    if unknown:
        raise UsageError(
            f"{', '.join(unknown)}: not a field of an in-app campaign; known fields: "
            f"{', '.join(sorted(IN_APP_FIELDS))} (--allow-unknown-field sends it anyway)"
        )


def unknown_nested_fields(detail: dict[str, Any], changes: Changes) -> list[tuple[str, str]]:
    """What the changes would add inside one of `NESTED_FIELDS`' objects with a key neither
    known there nor held there by the campaign (`detail`, as stored): `--set
    trigger.capacity=5`, or `--set trigger={"capacity": 5}`. A key the campaign already
    has is Batch's own, whatever it is. Returns (the object's path, the key) pairs, sorted:
    a key of a JSON value may hold a dot itself (`{"grace_period.every": 3}`)."""
    found: set[tuple[str, str]] = set()

    def inside(place: str, value: Any, held: Any) -> None:
        known = NESTED_FIELDS.get(place)
        if known is None or not isinstance(value, dict):
            return
        for key, inner in value.items():
            there = held.get(key, _MISSING) if isinstance(held, dict) else _MISSING
            if key not in known and there is _MISSING:
                found.add((place, key))
            else:
                inside(f"{place}.{key}", inner, there)

    for path, value in changes.items():
        keys = path.split(".")
        held: Any = detail
        for depth, key in enumerate(keys):
            place = ".".join(keys[:depth])
            here = held.get(key, _MISSING) if isinstance(held, dict) else _MISSING
            if place in NESTED_FIELDS and key not in NESTED_FIELDS[place] and here is _MISSING:
                found.add((place, key))
                break
            held = here
        else:
            inside(path, value, held)
    return sorted(found)


def check_nested_fields(
    detail: dict[str, Any], changes: Changes, holder: str = "the stored copy of this campaign"
) -> None:
    """Refuse what `unknown_nested_fields` finds in `detail` (a typo Batch would keep for
    good); `holder` says in the message whose keys were looked at.

    Raises UsageError naming each key where it is and the keys known there."""
    unknown = unknown_nested_fields(detail, changes)
    if not unknown:
        return
    named = ", ".join(
        f"{place}.{key}" if _plain_key(key) else f"{json.dumps(key)} in {place}"
        for place, key in unknown
    )
    places = sorted({place for place, _ in unknown})
    known = "; ".join(f"{place}: {', '.join(sorted(NESTED_FIELDS[place]))}" for place in places)
    raise UsageError(
        f"{named}: not a field in-app campaigns are known to have there, nor one {holder} "
        f"has; known fields: {known} (Batch keeps a field once an update added it; "
        "--allow-unknown-field sends it anyway)"
    )


def _plain_key(key: str) -> bool:
    """A key that reads the same as part of a dotted path (not "", "a.b", " a", or one
    holding a line break, a tab or another character that does not print)."""
    return bool(key) and "." not in key and key == key.strip() and key.isprintable()


def pick_app(apps: list[ResolvedApp], name: str | None) -> ResolvedApp:
    if name is not None:
        return select_apps(apps, [name])[0]
    if len(apps) == 1:
        return apps[0]
    raise ConfigError(f"several apps are configured ({', '.join(a.name for a in apps)}): use --app")


def apply_changes(detail: dict[str, Any], changes: Changes) -> tuple[dict[str, Any], list[str]]:
    """The full payload: the detail minus read-only fields, with the changes applied."""
    payload = {k: copy.deepcopy(v) for k, v in detail.items() if k not in READ_ONLY_FIELDS}
    changed: list[str] = []
    for path, value in changes.items():
        keys = path.split(".")
        if keys[0] in READ_ONLY_FIELDS:
            raise UsageError(f"{keys[0]} is read-only in Batch and cannot be changed")
        target = payload
        for depth, key in enumerate(keys[:-1]):
            child = target.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise UsageError(f"cannot set {path}: {where} is not an object")
            target = child
        before = target.get(keys[-1], _MISSING)
        if before != value or type(before) is not type(value):  # true == 1 in Python
            changed.append(path)
        target[keys[-1]] = value
    return payload, sorted(changed)


def validate(payload: dict[str, Any], given: Collection[str] | None = None) -> list[str]:
    """What Batch would refuse in `payload`, in words, one problem a field. `given`: the
    field paths the user changed; a problem with a field none of them touches is the
    campaign's own value, and says so with the flag that sets it (a stored name of two
    characters failed every update with "name must be text of at least 3 characters",
    as if the user had given it)."""
    found: list[tuple[str, str]] = []
    name = payload.get("name")
    if not isinstance(name, str) or len(name.strip()) < 3:
        found.append(("name", "name must be text of at least 3 characters"))
    for field, types in KNOWN_TYPES.items():
        if field == "name" and found:  # said once: "name must be text of at least 3..."
            continue
        if field in payload and payload[field] is not None and field not in COUNTS:
            value = payload[field]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                found.append(
                    (field, f"{field} must be {_TYPE_WORDS[types[0]]}, got {kind_of(value)}")
                )
    for place in NESTED_FIELDS:  # the objects inside objects: trigger.grace_period
        if "." not in place:
            continue  # the top level's types are KNOWN_TYPES'
        value = _at(payload, place)
        if value is not None and not isinstance(value, dict):
            found.append((place, f"{place} must be an object, got {kind_of(value)}"))
    for path in NESTED_TEXTS:
        value = _at(payload, path)
        if value is not None and not isinstance(value, str):
            found.append((path, f"{path} must be text, got {kind_of(value)}"))
    for path in COUNTS:
        value = _at(payload, path)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT32:
            found.append((path, f"{path} must be a whole number from 0 to {INT32}"))
    if given is None:
        return [text for _, text in found]
    return [text if _touched(field, given) else f"{text} ({_own(field)})" for field, text in found]


def _at(document: Any, path: str) -> Any:
    """The value at a dotted path of nested objects; None where there is none."""
    for key in path.split("."):
        document = document.get(key) if isinstance(document, dict) else None
    return document


def _touched(field: str, given: Collection[str]) -> bool:
    """Whether one of the paths `given` sets `field`, a path inside it or around it."""
    return any(
        path == field or path.startswith(f"{field}.") or field.startswith(f"{path}.")
        for path in given
    )


def _own(field: str) -> str:
    flag = "--name" if field == "name" else f"--set {field}=..."
    return f"the campaign's own value, not one given: change it too, with {flag}"


def describe_difference(stored: dict[str, Any], current: dict[str, Any]) -> str:
    lines = []
    for key in sorted(set(stored) | set(current)):
        before, after = stored.get(key, _MISSING), current.get(key, _MISSING)
        if before != after:
            shown_before = "(absent)" if before is _MISSING else json.dumps(before)[:120]
            shown_after = "(absent)" if after is _MISSING else json.dumps(after)[:120]
            lines.append(f"  {key}: {shown_before} -> {shown_after}")
    return "\n".join(lines)


def _audit(
    engine: Engine,
    app: str,
    token: str,
    *,
    outcome: str,
    changed: list[str] | None,
    payload: dict[str, Any] | None,
    message: str,
    error: BatchError | None = None,
    wait: bool = False,
) -> None:
    """Write the attempt's `campaign_updates` row; `wait`: however long another session's
    locks hold it (an attempt Batch may have taken), else within the lock timeout.
    Raises what the database raises."""
    # Made storable: a payload built from Batch's campaign (a --force, or the one sent)
    # may hold what the sync stored repaired (U+0000, a lone surrogate), and the audit row
    # must be written whatever the update did.
    (changed, payload, message), _ = storable([changed, payload, message])
    with engine.begin() as conn:
        if wait:
            wait_for_locks(conn)
        conn.execute(
            insert(campaign_updates).values(
                attempted_at=utcnow(),
                app=app,
                campaign_token=token,
                changed_fields=changed,
                payload=payload,
                outcome=outcome,
                batch_status=error.status if error else None,
                batch_code=error.code if error else None,
                batch_type=error.error_type if error else None,
                message=message,
            )
        )


async def update_in_app(
    engine: Engine,
    settings: Settings,
    app: ResolvedApp,
    token: str,
    changes: Changes,
    *,
    dry_run: bool = False,
    force: bool = False,
    allow_unknown_field: bool = False,
) -> UpdateOutcome:
    """Validate, check freshness, send, store, audit. Raises UsageError for bad changes
    (`check_nested_fields` too, unless `allow_unknown_field`). From the send on, a first
    SIGINT or SIGTERM waits until the attempt is audited (`signals.held_until_recorded`),
    and is handed back in `UpdateOutcome.stopped_by`."""
    held: list[int] = []
    try:
        with contextlib.ExitStack() as recording:
            outcome = await _update_in_app(
                engine, settings, app, token, changes, recording, held,
                dry_run=dry_run, force=force, allow_unknown_field=allow_unknown_field,
            )  # fmt: skip
    except UpdateNotRecorded as unrecorded:
        unrecorded.stopped_by = held[0] if held else None
        raise
    if held:
        outcome.stopped_by = held[0]
    return outcome


async def _update_in_app(
    engine: Engine,
    settings: Settings,
    app: ResolvedApp,
    token: str,
    changes: Changes,
    recording: contextlib.ExitStack,
    held: list[int],
    *,
    dry_run: bool,
    force: bool,
    allow_unknown_field: bool,
) -> UpdateOutcome:
    attempt = _Attempt(engine, app.name, token)
    found = _stored_detail(engine, app.name, token)
    if isinstance(found, str):
        return attempt.refuse(found)
    stored, stored_hash = found
    # With --force the changes go on Batch's current copy, whose own keys count: decided
    # once it is read (a key Batch added since the last sync was refused as unknown).
    if not allow_unknown_field and (dry_run or not force):
        check_nested_fields(stored, changes)
    payload, changed = apply_changes(stored, changes)
    problems = validate(payload, changes)
    if problems:
        raise UsageError("; ".join(problems))
    if dry_run:
        return attempt.succeed("dry run: nothing was sent", payload, changed, outcome="dry_run")
    _refuse_unless_writable(engine)
    async with make_client(settings, app) as client:
        try:
            current = await client.view_in_app(token)
        except BatchError as error:  # a key refused, Batch failing: audited like the rest
            failed = f"could not read the campaign from Batch before updating it: {error}"
            return attempt.refuse(failed, payload, changed, outcome="failed", error=error)
        if current is GONE:
            return attempt.refuse(
                f"in-app campaign {token} no longer exists in Batch", payload, changed
            )
        assert isinstance(current, dict)
        conflict = None
        # The stored hash is of the detail as Batch sent it; the stored detail itself may be
        # repaired (U+0000, a lone surrogate: docs/reliability.md), so comparing it with
        # Batch's took every such campaign for one changed elsewhere, for ever.
        if stable_hash(current) != (stored_hash or stable_hash(stored)):
            conflict = (
                f"in-app campaign {token} changed in Batch since the last sync:\n"
                + describe_difference(stored, storable(current)[0])
            )
            if not force:
                return attempt.refuse(
                    CONFLICT, payload, changed, outcome="conflict", conflict=conflict
                )
        # The changes go on the campaign as Batch holds it now: forced, so that nothing
        # it holds is dropped (its "at least the same parameters" rule); otherwise it is the
        # stored one, but with the values the sync stored repaired as Batch has them.
        if not allow_unknown_field:
            check_nested_fields(current, changes, "this campaign as Batch holds it now")
        payload, changed = apply_changes(current, changes)
        problems = validate(payload, changes)
        if problems:
            as_held = "; ".join(problems) + " (in the campaign as Batch holds it now)"
            return attempt.refuse(as_held, payload, changed)
        attempt.sent = True  # from here on, what is audited may be what Batch took
        # A stop held meanwhile cuts short the retries' backoffs and skips the read-back:
        # an orchestrator's SIGKILL follows its SIGTERM (30 s on Kubernetes).
        stop = client.gate.stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def cut_short() -> None:
            loop.call_soon_threadsafe(stop.set)

        recording.enter_context(held_until_recorded(SENT_NOTICE, held, cut_short))
        try:
            # Safe to retry: an update replaces the whole campaign, so repeating it is harmless.
            await client.update_in_app(token, payload)
        except BatchError as error:
            return attempt.refuse(_refusal(error), payload, changed, outcome="failed", error=error)
        except StopRequested:
            return attempt.refuse(STOPPED_RETRYING, payload, changed, outcome="failed")
        unread: BatchError | StopRequested | str | None = None
        if held:  # the read-back only spares a sync; a request may hang its read timeout
            fresh, unread = None, "skipped: a stop was asked"
        else:
            try:
                fresh = await client.view_in_app(token)
            except (BatchError, StopRequested) as error:  # Batch took the update: audited
                fresh, unread = None, error
    unstored = _store_fresh(engine, app.name, token, fresh) if isinstance(fresh, dict) else None
    message = f"updated in-app campaign {token} of app '{app.name}'" + (
        f": {', '.join(changed)}" if changed else " (no field changed)"
    )
    # Otherwise the stored detail is the one before: compared with Batch's, the next update
    # would take our own change for one made elsewhere until a sync reads it.
    if unread is not None:
        message += (
            f"; reading it back failed ({unread}): run campaign-sync sync before changing it again"
        )
    if unstored is not None:
        message += (
            f"; storing Batch's copy failed ({unstored}): run campaign-sync sync before "
            "changing it again"
        )
    return attempt.succeed(message, payload, changed, conflict=conflict)


STOPPED_RETRYING = (
    "stopped while the update was being tried again after a failure: Batch may or may not "
    "have taken it; run campaign-sync sync, then look at the campaign"
)
SENT_NOTICE = (
    "the update is being sent to Batch: stopping once its outcome is recorded in "
    "campaign_updates (a second Ctrl-C or SIGTERM stops at once, unrecorded)"
)


def _store_fresh(engine: Engine, app: str, token: str, fresh: dict[str, Any]) -> str | None:
    """Store Batch's copy after an update it took (`_store_detail`), once more after a
    failure in passing (a deadlock, a lost connection); returns why it could not be
    stored, or None. Never raises a database error: the update is done in Batch, and
    must still be audited (a deadlock here lost the audit row; a review's find)."""
    try:
        stored = _once_more_in_passing(lambda: _store_detail(engine, app, token, fresh))
    except DBAPIError as error:
        return f"database problem: {database_problem(error)}"
    if stored is not None and stored.content_hash == document_hash(storable_document(fresh)):
        return None
    return (
        "the stored copy is not Batch's answer: the database left it out (a warning is "
        "logged), or another update or a sync stored another one meanwhile"
    )


def _once_more_in_passing(action: Callable[[], T]) -> T:
    """`action()`, run once more when the database failed in passing
    (`session.passing_problem`: a deadlock, a cut); what the record of an update Batch
    took needs. Raises the second failure, or any other at once."""
    try:
        return action()
    except DBAPIError as error:
        if not passing_problem(error):
            raise
    return action()


def _refuse_unless_writable(engine: Engine) -> None:
    """Refuse, before anything is sent, what the database would not let a write-back
    record: on PostgreSQL `ConfigError` for a read-only session or a privilege missing
    on any table or sequence of ours (`db.writable.write_problem_of`, which asks all of it);
    elsewhere (SQLite), the database's own refusal (DBAPIError) of statements that write
    what the update writes but touch no row, rolled back. Batch took an update that a
    read-only database then could not record: no audit row, a stale stored detail, and
    the next update took our own change for one made elsewhere."""
    from campaign_sync.db.writable import write_problem_of

    if engine.dialect.name == "postgresql":
        problem = write_problem_of(engine)
        if problem is not None:
            message = f"nothing was sent: the database could not record the update: {problem}"
            raise ConfigError(message)
        return
    with engine.connect() as conn, conn.begin() as transaction:
        conn.execute(text("update campaigns set name = name where 1 = 0"))
        conn.execute(text("insert into campaign_updates (app) select 'x' where 1 = 0"))
        transaction.rollback()


CONFLICT = (
    "refusing to overwrite a change made elsewhere: run campaign-sync sync and review, or "
    "repeat with --force to apply your changes on top of it"
)


@dataclass
class _Attempt:
    """One write-back attempt: every way it ends is audited in `campaign_updates`. Once
    the update is sent (`sent`), the audit waits for another session's locks however long
    they are held, and an audit the database still refuses raises `UpdateNotRecorded`;
    before, it waits as long as any statement of the command."""

    engine: Engine
    app: str
    token: str
    sent: bool = False

    def refuse(
        self,
        message: str,
        payload: dict[str, Any] | None = None,
        changed: list[str] | None = None,
        *,
        outcome: str = "refused",
        conflict: str | None = None,
        error: BatchError | None = None,
    ) -> UpdateOutcome:
        self._audit(outcome=outcome, message=message, changed=changed, payload=payload,
                    error=error)  # fmt: skip
        return UpdateOutcome(False, message, payload, conflict, changed)

    def succeed(
        self,
        message: str,
        payload: dict[str, Any],
        changed: list[str],
        *,
        outcome: str = "succeeded",
        conflict: str | None = None,
    ) -> UpdateOutcome:
        self._audit(outcome=outcome, message=message, changed=changed, payload=payload)
        return UpdateOutcome(True, message, payload, conflict, changed)

    def _audit(self, **row: Any) -> None:
        if not self.sent:
            _audit(self.engine, self.app, self.token, **row)
            return
        try:
            _once_more_in_passing(
                lambda: _audit(self.engine, self.app, self.token, wait=True, **row)
            )
        except DBAPIError as error:
            raise UpdateNotRecorded(
                f"{row['message']}; but its campaign_updates row could not be written "
                f"(database problem: {database_problem(error)})"
            ) from None


class UpdateNotRecorded(Exception):
    """An update was sent to Batch (taken, or perhaps taken), and the database refused its
    audit row: the message says how the attempt ended, then why the row is missing.
    `stopped_by`: a signal held meanwhile, as in `UpdateOutcome`."""

    stopped_by: int | None = None


def _refusal(error: BatchError) -> str:
    summary = error.error_type or (f"HTTP {error.status}" if error.status else "no answer")
    detail = f" ({error.code})" if error.code is not None else ""
    # A server error or no answer after every retry is no refusal: Batch did not say no.
    last = error.last_error if isinstance(error, RetryBudgetExhausted) else error
    verdict = "the update failed" if last.retriable else "Batch refused the update"
    return f"{verdict}: {summary}{detail}: {error.batch_message or error}"


def _stored_detail(engine: Engine, app: str, token: str) -> tuple[dict[str, Any], str | None] | str:
    """The stored detail of an in-app campaign Batch can update and the hash of the detail
    as Batch sent it (`content_hash`), or why there is none."""
    c = campaigns.c
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(c.id, c.detail, c.content_hash, c.from_api, c.deleted_at).where(
                    c.app == app,
                    c.campaign_type == CampaignType.IN_APP.value,
                    c.campaign_token == token,
                )
            )
            .mappings()
            .first()
        )
    if row is None and _is_push_campaign(engine, app, token):
        return f"{token} is a push campaign: Batch only updates in-app campaigns"
    if row is None:
        return (
            f"no in-app campaign {token} of app '{app}' in the database: check the token, "
            "or run campaign-sync sync first"
        )
    if row["deleted_at"] is not None:
        return f"in-app campaign {token} was deleted in Batch; it cannot be updated"
    if row["from_api"] is not True:
        return (
            f"in-app campaign {token} was created from the dashboard: Batch only updates "
            "campaigns created from the API (it would answer 403 API_MISUSE)"
        )
    if not isinstance(row["detail"], dict):
        return f"in-app campaign {token} has no stored detail yet: run campaign-sync sync first"
    return dict(row["detail"]), row["content_hash"]


def _is_push_campaign(engine: Engine, app: str, token: str) -> bool:
    c = campaigns.c
    with engine.connect() as conn:
        found = conn.execute(
            select(c.id).where(
                c.app == app,
                c.campaign_type == CampaignType.PUSH.value,
                c.campaign_token == token,
            )
        ).first()
    return found is not None


def _store_detail(
    engine: Engine, app: str, token: str, detail: dict[str, Any]
) -> StoredCampaign | None:
    """Store the fresh detail at once, and return the campaign as stored then: a campaign
    the database refuses is left out of the page with a warning, not raised
    (`write_page`), so only reading it back tells (a check constraint, or a concurrent
    update, in a review). The sweep's bookkeeping (list entry, seen mark) is left as the
    last sweep wrote it: a sweep may have run during our round trips."""
    with engine.begin() as conn:
        wait_for_locks(conn)  # Batch took the update: it is stored, however long that waits
        stored = stored_campaigns(conn, app, CampaignType.IN_APP, [token])
    load = PageLoad(
        app=app,
        campaign_type=CampaignType.IN_APP,
        run_id=None,
        sweep_id=None,
        now=utcnow(),
        list_entries={},
        details={token: detail},
        stored=stored,
    )
    write_page(engine, plan_page(load), wait_for_locks=True)
    with engine.begin() as conn:
        wait_for_locks(conn)
        return stored_campaigns(conn, app, CampaignType.IN_APP, [token]).get(token)


def update_in_app_sync(
    token: str,
    changes: Changes,
    *,
    app: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    allow_unknown_field: bool = False,
) -> UpdateOutcome:
    """The same as `campaign-sync update-in-app`, for scripts (settings from the environment):
    `changes` maps field paths to values, as `parse_changes` returns them, and the same
    checks apply (`check_changes`; a field in-app campaigns do not have is refused unless
    `allow_unknown_field`). Raises UsageError for bad changes, ConfigError for bad
    settings, `UpdateNotRecorded` when Batch was sent the update and the database refused
    its audit row. A SIGINT or SIGTERM that came once the update was sent waited until it
    was recorded and is not raised here: it is in `stopped_by` of the outcome (or of the
    error), for the script to act on once it has used them (`signal.raise_signal`)."""
    check_changes(changes, allow_unknown_field=allow_unknown_field)
    settings = load_settings()
    engine = make_engine(settings.database_url, schema=settings.db_schema, lock_timeout=True)
    try:
        chosen = pick_app(resolve_apps(settings), app)
        outcome = asyncio.run(
            update_in_app(
                engine,
                settings,
                chosen,
                token,
                changes,
                dry_run=dry_run,
                force=force,
                allow_unknown_field=allow_unknown_field,
            )
        )
    finally:
        engine.dispose()
    return outcome
