"""The reporting views as earlier revisions made them, for the migrations that create or
restore them: a migration builds its own revision's schema, not today's (`db.views`).
Revisions 0007-0009 made v_campaign_versions without `detail`, 0010 added it, 0011 the
schedule's clocks and three columns; v_campaign_changes kept 0007's SQL until 0011, whose
own lasted until 0012 (other_changed beside named changes); 0012 also gave
v_push_performance_total sent_optins_a and _b; 0013 read `live` as campaigns.live does
(v_campaign_versions, with `live_as_sent`) and v_campaign_changes' went_live and stopped
only between readable values."""

from __future__ import annotations

from dataclasses import replace

from campaign_sync.db.views import (
    DESCRIBED_VIEWS,
    VERSION_DETAIL,
    VIEWS,
    JsonSQL,
    View,
    changes_sql,
    open_rate_sql,
    stats_sums,
    version_content_hash,
    versions_sql,
)

SCHEDULE_0007 = "The schedule as one readable text (start, end, recurrence)."
_CHANGES_0007 = (
    "One row per change seen: renamed, went_live, stopped, rescheduled, "
    "message_changed, targeting_changed, deleted, restored; with before and after. A "
    "campaign back with new content also shows what changed while it was away. A "
    "change none of these names (labels, capping, deeplink, trigger...) is one "
    "other_changed row without before and after: compare the versions' detail in "
)
ADDED_BY_0011 = ("schedule_zone", "recurrence_end_date", "content_hash")


# Texts of descriptions and column comments as revisions before 0012 wrote them.
_CHANGES_0011 = (
    "One row per change seen: renamed, went_live, stopped, rescheduled, "
    "message_changed, targeting_changed, deleted, restored; with before and after. A "
    "campaign back with new content also shows what changed while it was away. A "
    "change none of these names (labels, capping, deeplink, trigger...), while present "
    "or while away, is one other_changed row without before and after: compare the "
    "versions' detail in v_campaign_versions."
)
RUN_ID_0007 = "The sync_runs row that saw it."
BEFORE_0007 = "The value before (text)."
AFTER_0007 = "The value after (text)."
SENT_OPTINS_0005 = "Pushes sent to opted-in installs, all days (NULL where Batch gives none)."
ADDED_BY_0012 = ("sent_optins_a", "sent_optins_b")


# What revision 0013 changed: v_campaign_versions' `live` read only a JSON boolean and
# `live_as_sent` was not there; v_campaign_changes counted an unreadable live as false.
LIVE_0007 = "Live in this version."
ADDED_BY_0013 = ("live_as_sent",)
_CHANGES_0012 = (
    "One row per change seen: renamed, went_live, stopped, rescheduled, "
    "message_changed, targeting_changed, deleted, restored; with before and after. A "
    "campaign back with new content also shows what changed while it was away. A "
    "change none of these names (labels, capping, deeplink, trigger...), while present "
    "or while away, alone or beside named ones, is one other_changed row without before "
    "and after: compare the versions' detail in v_campaign_versions. (Beside a named "
    "change, one inside the keys that kind reads is not told apart: a second start time "
    "the schedule does not show, a segment that is no text.)"
)


def _before_0013(view: View) -> View:
    """`view` as revisions 0011 and 0012 made it (0013 changed only these two)."""
    if view.name == "v_campaign_versions":
        columns = {k: v for k, v in view.columns.items() if k not in ADDED_BY_0013}
        columns["live"] = LIVE_0007
        return replace(view, columns=columns, sql=_v_campaign_versions_0011)
    if view.name == "v_campaign_changes":
        return replace(view, description=_CHANGES_0012, sql=_v_campaign_changes_0012)
    return view


def views_at(revision: str) -> tuple[View, ...]:
    """The views as revision `revision` made them: "0007" (through 0009) and "0010",
    `db.views.VIEWS`; "0011" and "0012", every view (`DESCRIBED_VIEWS`, the push
    statistics views included). Raises ValueError for another revision."""
    if revision not in ("0007", "0010", "0011", "0012"):
        raise ValueError(f"no views recorded for revision {revision}")
    made: list[View] = []
    for view in DESCRIBED_VIEWS if revision in ("0011", "0012") else VIEWS:
        view = _before_0013(view)
        if revision == "0012":
            made.append(view)
            continue
        if view.name == "v_campaign_versions" and revision != "0011":
            dropped = ADDED_BY_0011 + (("detail",) if revision == "0007" else ())
            columns = {k: v for k, v in view.columns.items() if k not in dropped}
            columns["schedule"] = SCHEDULE_0007
            sql = _v_campaign_versions_0007 if revision == "0007" else _v_campaign_versions_0010
            view = replace(view, columns=columns, sql=sql)
        elif view.name == "v_campaign_changes":
            old = {"run_id": RUN_ID_0007, "before_value": BEFORE_0007, "after_value": AFTER_0007}
            columns = {**view.columns, **old}
            if revision == "0011":
                view = replace(
                    view, description=_CHANGES_0011, columns=columns, sql=_v_campaign_changes_0011
                )
            else:
                where = "campaign_versions." if revision == "0007" else "v_campaign_versions."
                view = replace(
                    view,
                    description=_CHANGES_0007 + where,
                    columns=columns,
                    sql=_v_campaign_changes_0007,
                )
        elif view.name == "v_push_performance_total":
            columns = {k: v for k, v in view.columns.items() if k not in ADDED_BY_0012}
            columns["sent_optins"] = SENT_OPTINS_0005
            view = replace(view, columns=columns, sql=_v_push_performance_total_0011)
        made.append(view)
    return tuple(made)


def _v_campaign_versions_0011(j: JsonSQL) -> str:
    """v_campaign_versions as revisions 0011 and 0012 made it (`live`: JSON booleans only)."""
    return versions_sql(j, live_as_campaigns=False)


def _v_campaign_changes_0012(j: JsonSQL) -> str:
    """v_campaign_changes as revision 0012 made it (an unreadable live counted as false)."""
    return changes_sql(j, since_0013=False)


def _v_campaign_versions_0007(j: JsonSQL) -> str:
    """v_campaign_versions as revisions 0007-0009 made it (every version's detail in
    campaign_versions, no `detail` column)."""
    return _v_campaign_versions_before_0011(j, "v.detail", detail_column=False)


def _v_campaign_versions_0010(j: JsonSQL) -> str:
    """v_campaign_versions as revision 0010 made it (the current version's detail in
    campaigns, every version's shown as `detail`)."""
    return _v_campaign_versions_before_0011(j, VERSION_DETAIL, detail_column=True)


def _v_campaign_versions_before_0011(j: JsonSQL, d: str, *, detail_column: bool) -> str:
    """The SQL of v_campaign_versions from revision 0007 to 0010, reading each version's
    detail from `d`."""
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
    segments = (
        f"(select {j.ordered_text(j.element_text('s'), ', ', j.position('s'))} "
        f"from {j.elements(d, (('targeting', 'segments'),), 's')})"
    )
    unit = j.text(d, "recurrence", "repeat_unit")
    frequency = j.text(d, "recurrence", "repeat_frequency")
    detail = f",\n    {d} as detail" if detail_column else ""
    return f"""
select
    v.campaign_id, c.app, c.campaign_type, c.campaign_token, v.version, v.change_kind,
    v.valid_from, v.valid_to, v.valid_to is null as is_current, v.run_id,
    {j.text(d, "name")} as name, {j.boolean(d, "live")} as live,
    {starts} as starts_at, {ends} as ends_at,
    {unit} as recurrence_repeat_unit, {frequency} as recurrence_repeat_frequency,
    nullif(trim(coalesce('starts ' || {starts} || ' ', '')
        || coalesce('ends ' || {ends} || ' ', '')
        || coalesce('every ' || coalesce({frequency}, '1') || ' ' || {unit}, '')), '')
        as schedule,
    {messages(f"coalesce({language}, '?') || ': ' || coalesce({title}, '')")}
        as message_titles,
    {messages(f"coalesce({language}, '?') || ': ' || coalesce({body}, '')")}
        as message_bodies,
    nullif(trim(coalesce('segments ' || {segments}, '')
        || coalesce(' query ' || coalesce({j.text(d, "targeting", "query")}, {j.text(d, "query")}),
                    '')), '') as targeting{detail}
from campaign_versions v
join campaigns c on c.id = v.campaign_id
"""


def _v_campaign_changes_0007(j: JsonSQL) -> str:
    """v_campaign_changes as revisions 0007-0010 made it: other_changed for a changed
    version none of the named kinds covers."""
    return _v_campaign_changes_before_0012("v.change_kind = 'changed'")


def _v_campaign_changes_0011(j: JsonSQL) -> str:
    """v_campaign_changes as revision 0011 made it: other_changed also for a campaign back
    with other content than it left with, but only when no named kind covers the change."""
    return _v_campaign_changes_before_0012(
        f"(v.change_kind = 'changed' or {version_content_hash('v')} is distinct from "
        f"{version_content_hash('p')})"
    )


def _v_campaign_changes_before_0012(moved: str) -> str:
    """The SQL of v_campaign_changes from revision 0007 to 0011; `moved`: when a version's
    content moved, for other_changed (which also needed no named kind then)."""
    # Each version is compared with the one before it that had content: a campaign that
    # comes back changed shows `restored` and what changed while it was away.
    changes = [
        ("renamed", "p.name", "v.name", "p.name is distinct from v.name"),
        ("went_live", "'false'", "'true'", "v.live and not coalesce(p.live, false)"),
        ("stopped", "'true'", "'false'", "p.live and not coalesce(v.live, false)"),
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
    named = " or ".join(f"coalesce({condition}, false)" for *_, condition in changes)
    changes.append(("other_changed", "null", "null", f"{moved} and not ({named})"))
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


def _v_push_performance_total_0011(j: JsonSQL) -> str:
    """v_push_performance_total as revision 0011 made it (no sent_optins_a and _b)."""
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
    c.deleted_at
from campaigns c
join campaign_stats_daily s on s.campaign_id = c.id
group by c.id, c.name, c.app, c.campaign_token, c.push_time, c.local_push_time, c.deleted_at
"""
