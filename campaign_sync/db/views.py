"""The reporting views analysts and BI tools read, on PostgreSQL and SQLite.

Each view is portable SQL written against a small `JsonSQL` vocabulary: the only pieces
that differ between the two databases (reading JSON, unnesting a JSON array, ordered
text aggregation, a UTC wall clock) are its two implementations below, nowhere else.
Migrations create the views with `create_views` and drop them with `drop_views`; a
revision that changes a view later keeps its own copy of the SQL it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, inspect, text

from campaign_sync.domain import BOOLEAN_TEXT_SPACE


class JsonSQL:
    """PostgreSQL (jsonb) spelling of the few non-portable pieces."""

    def text(self, doc: str, *path: str) -> str:
        """The value at `path` as text (NULL when absent)."""
        return f"({doc} #>> '{{{','.join(path)}}}')"

    def boolean(self, doc: str, key: str) -> str:
        """A JSON boolean as a boolean; anything else NULL."""
        value = f"({doc}->>'{key}')::boolean"
        return f"(case jsonb_typeof({doc}->'{key}') when 'boolean' then {value} end)"

    def flag(self, doc: str, key: str) -> str:
        """A boolean as `campaigns` reads it (`transform`): a JSON boolean, or text
        "true"/"false" in any case with ASCII whitespace around; anything else NULL."""
        space = "".join(f"\\{ord(c):03o}" for c in BOOLEAN_TEXT_SPACE)
        reading = f"lower(btrim({doc}->>'{key}', E'{space}'))"
        return (
            f"(case jsonb_typeof({doc}->'{key}') when 'boolean' then ({doc}->>'{key}')::boolean "
            f"when 'string' then (case {reading} when 'true' then true when 'false' then false "
            "end) end)"
        )

    def json_text(self, doc: str, key: str) -> str:
        """The value at `key` as JSON text ('true', '"TRUE"', '7'); NULL when absent."""
        return f"(({doc}->'{key}')::text)"

    def elements(self, doc: str, paths: tuple[tuple[str, ...], ...], alias: str) -> str:
        """A FROM item: the elements of the first array found at `paths`, as rows with
        `{alias}.value` and `{alias}.position` (0-based); none when no array is there."""
        cases = " ".join(
            f"when jsonb_typeof({doc} #> '{{{','.join(p)}}}') = 'array' "
            f"then {doc} #> '{{{','.join(p)}}}'"
            for p in paths
        )
        return (
            f"jsonb_array_elements(case {cases} else '[]'::jsonb end) "
            f"with ordinality as {alias}(value, ordinality)"
        )

    # The pieces that are one template each; a dialect only changes the template.
    POSITION = "({alias}.ordinality - 1)"
    ELEMENT_TEXT = (
        "(case jsonb_typeof({alias}.value) when 'string' then {alias}.value #>> '{{}}' end)"
    )
    ELEMENT_FIELD = "({alias}.value ->> '{key}')"
    ORDERED_TEXT = "string_agg({value}, '{separator}' order by {order})"
    UTC_WALL_CLOCK = "({column} at time zone 'UTC')"

    def position(self, alias: str) -> str:
        """An element's 0-based position in its array."""
        return self.POSITION.format(alias=alias)

    def element_text(self, alias: str) -> str:
        """An element that is a JSON string, as text; any other element NULL (the same on
        both databases: numbers would print differently, objects only on PostgreSQL)."""
        return self.ELEMENT_TEXT.format(alias=alias)

    def element_field(self, alias: str, key: str) -> str:
        """A field of an element that is a JSON object, as text."""
        return self.ELEMENT_FIELD.format(alias=alias, key=key)

    def ordered_text(self, value: str, separator: str, order: str) -> str:
        """Aggregate `value` into one text, in `order` (the FROM must not be a subquery)."""
        return self.ORDERED_TEXT.format(value=value, separator=separator, order=order)

    def utc_wall_clock(self, column: str) -> str:
        """A timestamptz as the UTC wall clock (timestamp without time zone)."""
        return self.UTC_WALL_CLOCK.format(column=column)

    def uncovered(self, doc: str, cover: Cover) -> str:
        """One comparable value of what `doc` holds besides what `cover` names: equal for
        two documents that differ only there (jsonb, whose equality ignores key order).
        What is left of an object is absent when nothing is (targeting that held only
        segments, or none at all, alike), and so is an array element: adding a message of
        a language, title and body only is all the named kind's. A key absent and a key
        holding JSON null differ."""
        parts = [self._without(doc, cover.top)]
        parts += [self._rest(f"({doc} #> {_pg_path(path)})", keys) for path, keys in cover.nested]
        parts += [
            self._each_rest(f"({doc} #> {_pg_path(path)})", keys, cover.anchor)
            for path, keys in cover.arrays
        ]
        # As text: jsonb's equality is numeric (2 = 2.0), its text keeps each number as
        # written, as the content hash does; keys come out in one order either way.
        return f"jsonb_build_array({', '.join(map(_absent_as, parts))})::text"

    @staticmethod
    def _without(value: str, keys: tuple[str, ...]) -> str:
        names = ", ".join(f"'{key}'" for key in keys)
        return (
            f"(case jsonb_typeof({value}) when 'object' then {value} - array[{names}]::text[] "
            f"else {value} end)"
        )

    def _rest(self, value: str, keys: tuple[str, ...]) -> str:
        """`_without`, NULL (absent) when nothing is left of an object."""
        return f"nullif({self._without(value, keys)}, '{{}}'::jsonb)"

    def _each_rest(self, value: str, keys: tuple[str, ...], anchor: str) -> str:
        """The array's elements' rests (`_rest`) in order, each with its `anchor` back,
        those with nothing left out; NULL (absent) when none has anything left."""
        rest = self._rest("e.value", keys)
        anchored = (
            f"case jsonb_typeof(e.value) when 'object' then {rest} || jsonb_build_object("
            f"'{anchor}', e.value -> '{anchor}') else {rest} end"
        )
        return (
            f"(case jsonb_typeof({value}) when 'array' then (select jsonb_agg(x.rest order by "
            f"x.ordinality) from (select {anchored} as rest, e.ordinality "
            f"from jsonb_array_elements({value}) with ordinality as e(value, ordinality)) x "
            f"where x.rest is not null) else {value} end)"
        )


def _absent_as(part: str) -> str:
    """A part of `JsonSQL.uncovered`, absent (SQL NULL) as a text of its own: JSON null and
    absent would both be null in the array."""
    return f"coalesce({part}, '\"(absent)\"'::jsonb)"


@dataclass(frozen=True)
class Cover:
    """The parts of a detail some named kind of change reads (`v_campaign_changes`):
    `top` keys, `keys` of the objects at `nested` paths, and `keys` of each object in the
    arrays at `arrays` paths, but for `anchor`, kept in an element with anything else left
    (so that a field moving from one message to another is a change)."""

    top: tuple[str, ...]
    nested: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    arrays: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    anchor: str


def _pg_path(path: tuple[str, ...]) -> str:
    return "'{" + ",".join(path) + "}'"


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "'$" + "".join(f".{key}" for key in path) + "'"


class SqliteJsonSQL(JsonSQL):
    """SQLite (JSON text, json1) spelling of the same pieces."""

    def text(self, doc: str, *path: str) -> str:
        return f"json_extract({doc}, {_sqlite_path(path)})"

    def boolean(self, doc: str, key: str) -> str:
        return f"(case json_type({doc}, '$.{key}') when 'true' then 1 when 'false' then 0 end)"

    def flag(self, doc: str, key: str) -> str:
        space = ", ".join(str(ord(c)) for c in BOOLEAN_TEXT_SPACE)
        reading = f"lower(trim(json_extract({doc}, '$.{key}'), char({space})))"
        return (
            f"(case json_type({doc}, '$.{key}') when 'true' then 1 when 'false' then 0 "
            f"when 'text' then (case {reading} when 'true' then 1 when 'false' then 0 end) end)"
        )

    def json_text(self, doc: str, key: str) -> str:
        # json_each gives each member's type: true and false come back as 1 and 0 from
        # json_extract, and text unquoted, so each is spelt back as JSON.
        return (
            "(select case e.type when 'true' then 'true' when 'false' then 'false' "
            "when 'null' then 'null' when 'text' then json_quote(e.value) "
            "else cast(e.value as text) end "
            f"from json_each({doc}) as e where e.key = '{key}')"
        )

    def elements(self, doc: str, paths: tuple[tuple[str, ...], ...], alias: str) -> str:
        cases = " ".join(
            f"when json_type({doc}, {_sqlite_path(p)}) = 'array' "
            f"then json_extract({doc}, {_sqlite_path(p)})"
            for p in paths
        )
        return f"json_each(case {cases} else '[]' end) as {alias}"

    POSITION = "{alias}.key"
    ELEMENT_TEXT = "(case {alias}.type when 'text' then {alias}.value end)"
    ELEMENT_FIELD = (
        "(case {alias}.type when 'object' then json_extract({alias}.value, '$.{key}') end)"
    )
    # SQLite 3.40 has no ORDER BY inside aggregates; json_each yields array order and the
    # callers aggregate straight from it or from a table scanned in key order.
    ORDERED_TEXT = "group_concat({value}, '{separator}')"
    UTC_WALL_CLOCK = "{column}"  # stored as naive UTC already

    def uncovered(self, doc: str, cover: Cover) -> str:
        """As on PostgreSQL, as one text. SQLite keeps a document's key order, so two
        documents alike but for it compare unequal (Batch sends its keys in one order)."""
        parts = [f"json_remove({doc}, {self._paths(cover.top)})"]
        for path, keys in cover.nested:
            at = _sqlite_path(path)
            removed = f"nullif(json_remove(json_extract({doc}, {at}), {self._paths(keys)}), '{{}}')"
            other = self._tagged(doc, at)
            parts.append(
                f"(case json_type({doc}, {at}) when 'object' then {removed} else {other} end)"
            )
        for path, keys in cover.arrays:
            at = _sqlite_path(path)
            left = f"nullif(json_remove(e.value, {self._paths(keys)}), '{{}}')"
            anchor = _sqlite_path((cover.anchor,))
            rest = (
                f"(case e.type when 'object' then json_set({left}, {anchor}, "
                f"json_extract(e.value, {anchor})) else e.type || ':' || coalesce(e.value, '') end)"
            )
            each = (
                f"(select group_concat(x.rest, char(30)) from (select {rest} as rest "
                f"from json_each({doc}, {at}) as e) as x where x.rest is not null)"
            )
            other = self._tagged(doc, at)
            parts.append(f"(case json_type({doc}, {at}) when 'array' then {each} else {other} end)")
        return " || char(31) || ".join(f"coalesce({part}, '')" for part in parts)

    @staticmethod
    def _paths(keys: tuple[str, ...]) -> str:
        return ", ".join(_sqlite_path((key,)) for key in keys)

    @staticmethod
    def _tagged(doc: str, at: str) -> str:
        """A value that is no object or array, with its JSON type: 1 and "1" differ."""
        return f"json_type({doc}, {at}) || ':' || coalesce(json_extract({doc}, {at}), '')"


def json_sql(dialect_name: str) -> JsonSQL:
    return SqliteJsonSQL() if dialect_name == "sqlite" else JsonSQL()


@dataclass(frozen=True)
class View:
    name: str
    description: str
    columns: dict[str, str]  # column -> meaning, in the view's order
    sql: Callable[[JsonSQL], str] | None  # the SELECT, for a dialect


def _v_campaigns(j: JsonSQL) -> str:
    start = (
        "case when c.push_time is not null or c.start_date is not null then 'GMT' "
        "when c.local_push_time is not null or c.local_start_date is not null then 'local' end"
    )
    end = (
        "case when c.end_date is not null then 'GMT' "
        "when c.local_end_date is not null then 'local' end"
    )
    return f"""
select
    c.id as campaign_id, c.app, c.campaign_type, c.campaign_token, c.name, c.live,
    c.from_api, c.dev_only, c.created_date,
    coalesce({j.utc_wall_clock("c.push_time")}, {j.utc_wall_clock("c.start_date")},
             c.local_push_time, c.local_start_date) as starts_at,
    coalesce({j.utc_wall_clock("c.end_date")}, c.local_end_date) as ends_at,
    coalesce({start}, {end}) as schedule_zone,
    {end} as ends_zone,
    c.recurrence_repeat_unit, c.recurrence_repeat_frequency, c.recurrence_end_date,
    c.recurrence_repeat_unit is not null as is_recurring,
    (select {j.ordered_text(j.element_text("s"), ", ", j.position("s"))}
       from {j.elements("t.segments", ((),), "s")}) as segments,
    (select {j.ordered_text(j.element_text("l"), ", ", j.position("l"))}
       from {j.elements("c.labels", ((),), "l")}) as labels,
    (select count(*) from messages m where m.campaign_id = c.id) as message_count,
    (select {j.ordered_text("m.language", ", ", "m.language")}
       from (select distinct language from messages
             where campaign_id = c.id and language is not null order by language) m
    ) as languages,
    tr.trigger_when, tr.event as trigger_event, tr.capping as trigger_capping,
    c.capping, c.priority, c.updated_at
from campaigns c
left join targeting t on t.campaign_id = c.id
left join triggers tr on tr.campaign_id = c.id
where c.deleted_at is null
"""


def _v_messages(j: JsonSQL) -> str:
    return """
select
    m.campaign_id, c.app, c.campaign_type, c.campaign_token, c.name as campaign_name,
    c.live, m.position, m.language, m.header, m.title, m.body, m.image,
    (select count(*) from message_actions a
      where a.campaign_id = m.campaign_id and a.message_position = m.position
    ) as button_count
from messages m
join campaigns c on c.id = m.campaign_id
where c.deleted_at is null
"""


def _unnested(j: JsonSQL, name: str, array: str, join: str = "") -> str:
    """One row per campaign not deleted and element of its JSON array `array`, as `name`."""
    return f"""
select
    c.id as campaign_id, {j.element_text("e")} as {name}, c.app, c.campaign_type,
    c.campaign_token, c.name as campaign_name, c.live
from campaigns c
{join}cross join {j.elements(array, ((),), "e")}
where c.deleted_at is null and {j.element_text("e")} is not null
"""


def _v_campaign_segments(j: JsonSQL) -> str:
    return _unnested(j, "segment", "t.segments", "join targeting t on t.campaign_id = c.id\n")


def _v_campaign_labels(j: JsonSQL) -> str:
    return _unnested(j, "label", "c.labels")


# A version's content: its own copy once closed, `campaigns.detail` while it is current
# (each document is stored once, db.history); a deletion has none.
VERSION_DETAIL = (
    "coalesce(v.detail, case when v.valid_to is null and v.change_kind <> 'deleted' "
    "then c.detail end)"
)


def _schedule_zones(j: JsonSQL, doc: str) -> tuple[str, str]:
    """SQL for which clock a detail's start and end are on: 'GMT' (push_time, start_date,
    end_date) or 'local' (their local_ twins, the device's wall clock); NULL without one."""
    start = (
        f"case when coalesce({j.text(doc, 'push_time')}, {j.text(doc, 'start_date')}) "
        "is not null then 'GMT' "
        f"when coalesce({j.text(doc, 'local_push_time')}, {j.text(doc, 'local_start_date')}) "
        "is not null then 'local' end"
    )
    end = (
        f"case when {j.text(doc, 'end_date')} is not null then 'GMT' "
        f"when {j.text(doc, 'local_end_date')} is not null then 'local' end"
    )
    return start, end


def _v_campaign_versions(j: JsonSQL) -> str:
    return versions_sql(j)


def versions_sql(j: JsonSQL, *, live_as_campaigns: bool = True) -> str:
    """v_campaign_versions' SQL. `live_as_campaigns`: `live` reads as campaigns.live does
    (text "true" too) and `live_as_sent` shows it as sent, since revision 0013; before,
    only a JSON boolean was read (`db.past_views`)."""
    d = VERSION_DETAIL
    contents = (("messages",), ("landing", "contents"))

    def messages(value: str) -> str:
        return (
            f"(select {j.ordered_text(value, ' | ', j.position('e'))} "
            f"from {j.elements(d, contents, 'e')})"
        )

    title, body = j.element_field("e", "title"), j.element_field("e", "body")
    language = j.element_field("e", "language")
    starts = (
        f"coalesce({j.text(d, 'push_time')}, {j.text(d, 'start_date')}, "
        f"{j.text(d, 'local_push_time')}, {j.text(d, 'local_start_date')})"
    )
    ends = f"coalesce({j.text(d, 'end_date')}, {j.text(d, 'local_end_date')})"
    start_zone, end_zone = _schedule_zones(j, d)
    segments = (
        f"(select {j.ordered_text(j.element_text('s'), ', ', j.position('s'))} "
        f"from {j.elements(d, (('targeting', 'segments'),), 's')})"
    )
    unit = j.text(d, "recurrence", "repeat_unit")
    frequency = j.text(d, "recurrence", "repeat_frequency")
    until = j.text(d, "recurrence", "end_date")
    live = j.flag(d, "live") if live_as_campaigns else j.boolean(d, "live")
    live_as_sent = f",\n    {j.json_text(d, 'live')} as live_as_sent" if live_as_campaigns else ""
    return f"""
select
    v.campaign_id, c.app, c.campaign_type, c.campaign_token, v.version, v.change_kind,
    v.valid_from, v.valid_to, v.valid_to is null as is_current, v.run_id,
    {j.text(d, "name")} as name, {live} as live,
    {starts} as starts_at, {ends} as ends_at,
    {unit} as recurrence_repeat_unit, {frequency} as recurrence_repeat_frequency,
    nullif(trim(coalesce('starts ' || {starts} || ' ' || {start_zone} || ' ', '')
        || coalesce('ends ' || {ends} || ' ' || {end_zone} || ' ', '')
        || coalesce('every ' || coalesce({frequency}, '1') || ' ' || {unit} || ' ', '')
        || coalesce('until ' || {until}, '')), '')
        as schedule,
    {messages(f"coalesce({language}, '?') || ': ' || coalesce({title}, '')")}
        as message_titles,
    {messages(f"coalesce({language}, '?') || ': ' || coalesce({body}, '')")}
        as message_bodies,
    nullif(trim(coalesce('segments ' || {segments}, '')
        || coalesce(' query ' || coalesce({j.text(d, "targeting", "query")}, {j.text(d, "query")}),
                    '')), '') as targeting,
    {d} as detail,
    coalesce({start_zone}, {end_zone}) as schedule_zone,
    {until} as recurrence_end_date,
    v.content_hash{live_as_sent}
from campaign_versions v
join campaigns c on c.id = v.campaign_id
"""


def version_content_hash(version: str) -> str:
    """SQL: the content hash of the campaign_versions row `version` (an alias of
    v_campaign_versions) stands for. Read from the table, so that v_campaign_changes also
    stands on the older v_campaign_versions a downgrade puts back."""
    return (
        "(select h.content_hash from campaign_versions h "
        f"where h.campaign_id = {version}.campaign_id and h.version = {version}.version)"
    )


# What the named kinds of v_campaign_changes read of a detail (v_campaign_versions'
# name, live, schedule, message_titles and message_bodies, targeting): a change anywhere
# else is other_changed.
NAMED_COVER = Cover(
    top=("name", "live", "push_time", "start_date", "local_push_time", "local_start_date",
         "end_date", "local_end_date", "recurrence", "targeting", "query", "messages",
         "landing"),
    nested=((("recurrence",), ("repeat_unit", "repeat_frequency", "end_date")),
            (("targeting",), ("segments", "query")),
            (("landing",), ("contents",))),
    arrays=((("messages",), ("title", "body", "language")),
            (("landing", "contents"), ("title", "body", "language"))),
    anchor="language",
)  # fmt: skip


def _v_campaign_changes(j: JsonSQL) -> str:
    return changes_sql(j)


# went_live and stopped before revision 0013: an unreadable or missing live counted as
# false (`not coalesce(..., false)`), so a version whose live came as text or a number
# showed a stop that never happened (`changes_sql`, `db.past_views`).
LIVE_CHANGES_0012 = {
    "went_live": "v.live and not coalesce(p.live, false)",
    "stopped": "p.live and not coalesce(v.live, false)",
}

# The live a version changed from, since revision 0013: the version before it, or, when
# that one's live is unreadable (7, "yes", missing), the last readable one before it:
# true -> 7 -> false is a stop, seen at the version that brought false.
_LAST_READABLE_LIVE = (
    "(case when p.live is not null then p.live else (select q.live from v_campaign_versions q "
    "where q.campaign_id = v.campaign_id and q.version < p.version "
    "and q.change_kind <> 'deleted' and q.live is not null "
    "order by q.version desc limit 1) end)"
)
LIVE_CHANGES = {
    "went_live": f"({_LAST_READABLE_LIVE} is false and v.live is true)",
    "stopped": f"({_LAST_READABLE_LIVE} is true and v.live is false)",
}


def changes_sql(j: JsonSQL, *, since_0013: bool = True) -> str:
    """v_campaign_changes' SQL. `since_0013`: went_live and stopped go from the last
    readable live to a readable one (`LIVE_CHANGES`), and live moving otherwise (to or
    from an unreadable value, or written otherwise: "true" for true) is other_changed even
    beside named changes; before (`db.past_views`), `LIVE_CHANGES_0012` and no such rule."""
    live_changes = LIVE_CHANGES if since_0013 else LIVE_CHANGES_0012
    # Each version is compared with the one before it that had content: a campaign that
    # comes back changed shows `restored` and what changed while it was away.
    changes = [
        ("renamed", "p.name", "v.name", "p.name is distinct from v.name"),
        ("went_live", "'false'", "'true'", live_changes["went_live"]),
        ("stopped", "'true'", "'false'", live_changes["stopped"]),
        ("rescheduled", "p.schedule", "v.schedule", "p.schedule is distinct from v.schedule"),
        (
            "message_changed",
            "p.message_titles || ' / ' || p.message_bodies",
            "v.message_titles || ' / ' || v.message_bodies",
            "(p.message_titles is distinct from v.message_titles "
            "or p.message_bodies is distinct from v.message_bodies)",
        ),
        (
            "targeting_changed",
            "p.targeting",
            "v.targeting",
            "p.targeting is distinct from v.targeting",
        ),
    ]
    # A change none of the named kinds covers (labels, capping, deeplink, trigger...),
    # in a changed version or in one back with other content than it left with, alone or
    # beside named changes: one `other_changed` row, so that every change has a row.
    named = " or ".join(f"coalesce({condition}, false)" for *_, condition in changes)
    moved = f"{version_content_hash('v')} is distinct from {version_content_hash('p')}"
    content_moved = f"(v.change_kind = 'changed' or {moved})"
    after, before = j.uncovered("v.detail", NAMED_COVER), j.uncovered("p.detail", NAMED_COVER)
    beyond = f"{after} is distinct from {before}"
    if since_0013:  # live is read by named kinds, so `beyond` never sees it move
        unnamed_live = (
            "(v.live_as_sent is distinct from p.live_as_sent and not coalesce("
            f"{live_changes['went_live']} or {live_changes['stopped']}, false))"
        )
        beyond = f"({beyond} or {unnamed_live})"
    changes.append(
        ("other_changed", "null", "null", f"{content_moved} and (not ({named}) or {beyond})")
    )
    parts = [
        f"""
select v.campaign_id, v.app, v.campaign_type, v.campaign_token, v.name, v.version,
    '{change}' as change, {before} as before_value, {after} as after_value,
    v.valid_from as seen_at, v.run_id
from v_campaign_versions v
join v_campaign_versions p on p.campaign_id = v.campaign_id and p.version = (
    select max(e.version) from campaign_versions e
    where e.campaign_id = v.campaign_id and e.version < v.version
      and e.change_kind <> 'deleted')
where v.change_kind in ('changed', 'restored') and {condition}"""
        for change, before, after, condition in changes
    ]
    parts.append(
        """
select v.campaign_id, v.app, v.campaign_type, v.campaign_token, coalesce(v.name, p.name),
    v.version, v.change_kind, null, null, v.valid_from, v.run_id
from v_campaign_versions v
left join v_campaign_versions p on p.campaign_id = v.campaign_id and p.version = v.version - 1
where v.change_kind in ('deleted', 'restored')"""
    )
    return "\nunion all".join(parts) + "\n"


CAMPAIGN = {
    "app": "The app's configured name (campaigns.app).",
    "campaign_type": "'push' or 'in_app'.",
    "campaign_token": "Batch's token of the campaign.",
}

VIEWS: tuple[View, ...] = (
    View(
        "v_campaigns",
        "One row per campaign not deleted, with its schedule, targeting, messages and "
        "trigger summarised as analysts think of them.",
        {
            "campaign_id": "campaigns.id.",
            **CAMPAIGN,
            "name": "The campaign's name.",
            "live": "Running or completed (true), stopped or draft (false).",
            "from_api": "Created through Batch's API rather than the dashboard.",
            "dev_only": "Sent to development devices only.",
            "created_date": "When the campaign was created in Batch (UTC).",
            "starts_at": "Push time or in-app start: the GMT column when set (as UTC wall "
            "clock), else the local one (device wall clock); schedule_zone says which.",
            "ends_at": "In-app end date, GMT when set (UTC wall clock), else local; ends_zone "
            "says which.",
            "schedule_zone": "Which clock starts_at is: 'GMT' (UTC wall clock) or 'local' "
            "(the device's); without a start, that of ends_at; NULL without a schedule.",
            "ends_zone": "Which clock ends_at is: 'GMT' or 'local'; NULL without an end.",
            "recurrence_repeat_unit": "Recurrence unit (DAILY, WEEKLY, ...) of a recurring push.",
            "recurrence_repeat_frequency": "Every how many units the push repeats.",
            "recurrence_end_date": "When the recurrence stops (UTC).",
            "is_recurring": "The push repeats (has a recurrence unit).",
            "segments": "Targeted segments as readable text, comma separated (text elements only).",
            "labels": "The campaign's labels, comma separated (text elements only).",
            "message_count": "Number of messages (push) or landing contents (in-app).",
            "languages": "Languages of the messages, comma separated, alphabetical.",
            "trigger_when": "When an in-app campaign or trigger automation fires.",
            "trigger_event": "The event that triggers it.",
            "trigger_capping": "How many times the trigger may fire per user.",
            "capping": "How many times the campaign may be shown per user.",
            "priority": "Push priority (normal, high).",
            "updated_at": "When its content last changed, as seen by campaign-sync.",
        },
        _v_campaigns,
    ),
    View(
        "v_messages",
        "Each message (push message or in-app landing content) with its campaign.",
        {
            "campaign_id": "campaigns.id.",
            **CAMPAIGN,
            "campaign_name": "The campaign's name.",
            "live": "The campaign is live.",
            "position": "Order of the message in the campaign, from 0.",
            "language": "The message's language, NULL for the default.",
            "header": "In-app header.",
            "title": "Title.",
            "body": "Body text.",
            "image": "Image URL.",
            "button_count": "Number of buttons (in-app actions) of the message.",
        },
        _v_messages,
    ),
    View(
        "v_campaign_segments",
        "One row per campaign not deleted and segment it targets (an element that is "
        "not text is left out; sync_warnings names it).",
        {
            "campaign_id": "campaigns.id.",
            "segment": "A targeted segment (NEW, ONE_TIME, ENGAGED, DORMANT, IMPORTED...).",
            **CAMPAIGN,
            "campaign_name": "The campaign's name.",
            "live": "The campaign is live.",
        },
        _v_campaign_segments,
    ),
    View(
        "v_campaign_labels",
        "One row per campaign not deleted and label it carries (an element that is not "
        "text is left out; sync_warnings names it).",
        {
            "campaign_id": "campaigns.id.",
            "label": "One of the campaign's labels.",
            **CAMPAIGN,
            "campaign_name": "The campaign's name.",
            "live": "The campaign is live.",
        },
        _v_campaign_labels,
    ),
    View(
        "v_campaign_versions",
        "The validity history: one row per version of a campaign, with the content "
        "analysts compare. The version valid on date D: valid_from <= D and (valid_to is "
        "null or valid_to > D).",
        {
            "campaign_id": "campaigns.id.",
            **CAMPAIGN,
            "version": "1, 2, ... per campaign.",
            "change_kind": "created, changed, deleted or restored.",
            "valid_from": "When campaign-sync first saw this version (UTC).",
            "valid_to": "When the next version replaced it; NULL for the current one.",
            "is_current": "This is the campaign's current version.",
            "run_id": "The sync_runs row that recorded it (NULL for a write-back).",
            "name": "The name in this version.",
            "live": "Live in this version, read as campaigns.live is (a boolean, or text "
            "'true'/'false'); NULL when unreadable (live_as_sent shows what came).",
            "starts_at": "Push time or in-app start, as Batch wrote it (text).",
            "ends_at": "In-app end date, as Batch wrote it (text).",
            "recurrence_repeat_unit": "Recurrence unit in this version.",
            "recurrence_repeat_frequency": "Recurrence frequency in this version.",
            "schedule": "The schedule as one readable text: start and end, each with its "
            "clock (GMT, or local: the device's), then the recurrence and when it ends, as "
            "Batch wrote it ('starts 2026-12-01T09:00:00 GMT every 1 WEEKLY until "
            "2027-03-01T00:00:00').",
            "message_titles": "'language: title' of every message, ' | ' separated ('?' "
            "for a message without a language).",
            "message_bodies": "'language: body' of every message, ' | ' separated ('?' for "
            "a message without a language).",
            "targeting": "Targeted segments, then the query as JSON text: 'segments NEW, "
            "ENGAGED query {...}'.",
            "detail": "The campaign's detail in this version (JSON), as Batch sent it; NULL "
            "for a deletion.",
            "schedule_zone": "Which clock starts_at is: 'GMT' or 'local' (the device's); "
            "without a start, that of ends_at; NULL without a schedule.",
            "recurrence_end_date": "When the recurrence stops, as Batch wrote it (text).",
            "content_hash": "Hash of the version's content (campaign_versions.content_hash): "
            "equal hashes, equal content.",
            "live_as_sent": "`live` as Batch sent it in this version, as JSON text (true, "
            "false, or what else came: '\"TRUE\"', 7) written by the database (spacing "
            "and number forms may differ: 1e5 as 100000); NULL when absent.",
        },
        _v_campaign_versions,
    ),
    View(
        "v_campaign_changes",
        "One row per change seen: renamed, went_live, stopped, rescheduled, "
        "message_changed, targeting_changed, deleted, restored; with before and after. A "
        "campaign back with new content also shows what changed while it was away. A "
        "change none of these names (labels, capping, deeplink, trigger...), while present "
        "or while away, alone or beside named ones, is one other_changed row without before "
        "and after: compare the versions' detail in v_campaign_versions. (Beside a named "
        "change, one inside the keys that kind reads is not told apart: a second start time "
        "the schedule does not show, a segment that is no text.) went_live and stopped go "
        "from the last readable live to a readable one; live moving otherwise (to or from "
        "an unreadable value, or written otherwise) is other_changed.",
        {
            "campaign_id": "campaigns.id.",
            **CAMPAIGN,
            "name": "The campaign's name after the change.",
            "version": "The version that brought the change.",
            "change": "What changed.",
            "before_value": "The value before (text); NULL where there was none (no "
            "message, no schedule...).",
            "after_value": "The value after (text); NULL where there is none.",
            "seen_at": "When campaign-sync saw the change (UTC).",
            "run_id": "The sync_runs row that saw it; NULL for a change campaign-sync wrote "
            "itself (update-in-app).",
        },
        _v_campaign_changes,
    ),
)


_STATS_COUNTERS = {
    "sent": "Pushes sent.",
    "sent_optins": "Pushes sent to opted-in installs (NULL where Batch gives none).",
    "direct_open": "Opens straight from the push.",
    "influenced_open": "App opens the push influenced.",
    "reengaged": "Installs re-engaged.",
    "errors": "Pushes that failed (NULL per A/B version: Batch gives none).",
}
_OPEN_RATE = (
    "(direct_open + influenced_open) / sent; NULL when nothing was sent. Not capped at 1: "
    "Batch counts opens apart from sends."
)
_PUSH_CAMPAIGN = {
    "name": "The campaign's name.",
    "app": "The app's configured name (campaigns.app).",
    "campaign_token": "Batch's token of the campaign.",
    "push_time": "When the push is sent, GMT (UTC).",
    "local_push_time": "When the push is sent, in each device's wall clock.",
}


def stats_sums(version: str) -> dict[str, str]:
    """SQL: each counter of A/B version `version` ('all', 'a', 'b') summed over the days."""
    return {
        counter: f"sum(case when s.version = '{version}' then s.{counter} end)"
        for counter in ("sent", "sent_optins", "direct_open", "influenced_open", "reengaged",
                        "errors")
    }  # fmt: skip


def open_rate_sql(sums: dict[str, str]) -> str:
    return f"({sums['direct_open']} + {sums['influenced_open']}) * 1.0 / nullif({sums['sent']}, 0)"


# Portable SQL (PostgreSQL and SQLite), no JSON: `* 1.0` makes the division decimal on
# both, and NULLIF leaves an open rate NULL where nothing was sent. Migration 0005 made
# them (its own SQL); 0011 added deleted_at.
def _v_push_performance(j: JsonSQL) -> str:
    return """
select
    s.campaign_id, s.date, s.version,
    s.sent, s.sent_optins, s.direct_open, s.influenced_open, s.reengaged, s.errors,
    (s.direct_open + s.influenced_open) * 1.0 / nullif(s.sent, 0) as open_rate,
    c.name, c.app, c.campaign_token, c.push_time, c.local_push_time,
    s.fetched_at,
    c.deleted_at
from campaign_stats_daily s
join campaigns c on c.id = s.campaign_id
"""


def _v_push_performance_total(j: JsonSQL) -> str:
    every, a, b = stats_sums("all"), stats_sums("a"), stats_sums("b")
    return f"""
select
    c.id as campaign_id, c.name, c.app, c.campaign_token, c.push_time, c.local_push_time,
    min(s.date) as first_date, max(s.date) as last_date,
    {every["sent"]} as sent,
    {every["sent_optins"]} as sent_optins,
    {every["direct_open"]} as direct_open,
    {every["influenced_open"]} as influenced_open,
    {every["reengaged"]} as reengaged,
    {every["errors"]} as errors,
    {open_rate_sql(every)} as open_rate,
    {a["sent"]} as sent_a,
    {open_rate_sql(a)} as open_rate_a,
    {b["sent"]} as sent_b,
    {open_rate_sql(b)} as open_rate_b,
    max(s.fetched_at) as fetched_at,
    c.deleted_at,
    {a["sent_optins"]} as sent_optins_a,
    {b["sent_optins"]} as sent_optins_b
from campaigns c
join campaign_stats_daily s on s.campaign_id = c.id
group by c.id, c.name, c.app, c.campaign_token, c.push_time, c.local_push_time, c.deleted_at
"""


_DELETED_AT = (
    "When campaign-sync found the campaign deleted in Batch (UTC); NULL while it exists. "
    "Its statistics stay."
)

# The push statistics views, described here with the others so that COMMENT ON and
# docs/schema.md cover them.
PUSH_VIEWS: tuple[View, ...] = (
    View(
        "v_push_performance",
        "Push statistics per campaign, day and version ('all'; 'a', 'b' in A/B tests): the "
        "counters of campaign_stats_daily with the open rate and the campaign's name.",
        {
            "campaign_id": "campaigns.id.",
            "date": "The day, as Batch counts it.",
            "version": "'all', or an A/B version ('a', 'b'...).",
            **_STATS_COUNTERS,
            "open_rate": _OPEN_RATE,
            **_PUSH_CAMPAIGN,
            "fetched_at": "When Batch last gave these numbers (UTC); they grow for days.",
            "deleted_at": _DELETED_AT,
        },
        _v_push_performance,
    ),
    View(
        "v_push_performance_total",
        "Push statistics per campaign over all its days: version 'all' summed, with the "
        "sends and open rate of A/B versions a and b (any other version is only in "
        "v_push_performance). A counter Batch left out on some days (NULL there) is the "
        "sum of the days that have it, and a rate covers those days.",
        {
            "campaign_id": "campaigns.id.",
            **_PUSH_CAMPAIGN,
            "first_date": "First day with statistics.",
            "last_date": "Last day with statistics.",
            "sent": "Pushes sent, all days (version 'all').",
            "sent_optins": "Pushes sent to opted-in installs, all days (NULL where Batch "
            "gives none: in A/B tests it gives them per version, sent_optins_a and _b).",
            "direct_open": "Opens straight from the push, all days.",
            "influenced_open": "App opens the push influenced, all days.",
            "reengaged": "Installs re-engaged, all days.",
            "errors": "Pushes that failed, all days.",
            "open_rate": _OPEN_RATE,
            "sent_a": "Pushes sent to A/B version a (NULL outside A/B tests).",
            "open_rate_a": "Open rate of version a; NULL outside A/B tests.",
            "sent_b": "Pushes sent to A/B version b (NULL outside A/B tests).",
            "open_rate_b": "Open rate of version b; NULL outside A/B tests.",
            "fetched_at": "When Batch last gave any of these numbers (UTC).",
            "deleted_at": _DELETED_AT,
            "sent_optins_a": "Pushes of A/B version a sent to opted-in installs (NULL outside "
            "A/B tests).",
            "sent_optins_b": "Pushes of A/B version b sent to opted-in installs (NULL outside "
            "A/B tests).",
        },
        _v_push_performance_total,
    ),
)
DESCRIBED_VIEWS = VIEWS + PUSH_VIEWS  # every view campaign-sync creates, for comments and docs


def create_views(
    conn: Connection, views: tuple[View, ...] = VIEWS, *, if_missing: bool = False
) -> None:
    """Create every view of `views` (in order: later views read earlier ones).
    `if_missing`: one another process made meanwhile is no error (PostgreSQL's CREATE OR
    REPLACE, SQLite's IF NOT EXISTS)."""
    j = json_sql(conn.dialect.name)
    create = "create view"
    if if_missing:
        postgresql = conn.dialect.name == "postgresql"
        create = "create or replace view" if postgresql else "create view if not exists"
    for view in views:
        assert view.sql is not None
        conn.execute(text(f"{create} {view.name} as {view.sql(j)}"))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def comment_views(
    conn: Connection, views: tuple[View, ...] = DESCRIBED_VIEWS, *, clear: bool = False
) -> None:
    """Write each view's and view column's description as `COMMENT ON` (PostgreSQL), the
    push statistics views' included; `clear=True` removes them instead (a downgrade)."""
    if conn.dialect.name != "postgresql":
        return
    found = inspect(conn)
    for view in views:
        comment = "null" if clear else _literal(view.description)
        conn.execute(text(f"comment on view {view.name} is {comment}"))
        present = {column["name"] for column in found.get_columns(view.name)}
        for column, meaning in view.columns.items():
            if column not in present:  # at an older revision: the one that adds it says it
                continue
            comment = "null" if clear else _literal(meaning)
            conn.execute(text(f"comment on column {view.name}.{column} is {comment}"))


def drop_views(conn: Connection) -> None:
    for view in reversed(VIEWS):
        conn.execute(text(f"drop view if exists {view.name}"))
