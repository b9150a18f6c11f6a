"""v_campaign_versions: the schedule names each time's clock and the recurrence's end (a
change of either was other_changed), with schedule_zone, recurrence_end_date and
content_hash; v_campaign_changes: a campaign back with other content than it left with
shows other_changed when no named kind covers it; v_push_performance and
v_push_performance_total: deleted_at

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 12:00:00
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from alembic import op
from sqlalchemy import text

from campaign_sync.db.views import (
    DESCRIBED_VIEWS,
    VERSION_DETAIL,
    JsonSQL,
    View,
    comment_views,
    json_sql,
)

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Dropped in this order (each reads the ones after it), created in the reverse one.
REPLACED = ("v_campaign_changes", "v_campaign_versions", "v_push_performance_total",
            "v_push_performance")  # fmt: skip
ADDED_COLUMNS = {
    "v_campaign_versions": ("schedule_zone", "recurrence_end_date", "content_hash"),
    "v_push_performance": ("deleted_at",),
    "v_push_performance_total": ("deleted_at",),
}
SCHEDULE_0010 = "The schedule as one readable text (start, end, recurrence)."
CHANGES_0010 = (
    "One row per change seen: renamed, went_live, stopped, rescheduled, "
    "message_changed, targeting_changed, deleted, restored; with before and after. A "
    "campaign back with new content also shows what changed while it was away. A "
    "change none of these names (labels, capping, deeplink, trigger...) is one "
    "other_changed row without before and after: compare the versions' detail in "
    "v_campaign_versions."
)


def _v_campaign_versions_0010(j: JsonSQL) -> str:
    """v_campaign_versions as revision 0010 made it."""
    d = VERSION_DETAIL  # unchanged since 0010
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
                    '')), '') as targeting,
    {d} as detail
from campaign_versions v
join campaigns c on c.id = v.campaign_id
"""


def _v_campaign_changes_0010(j: JsonSQL) -> str:
    """v_campaign_changes as revision 0010 made it."""
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
    # A changed version none of the named kinds covers (labels, capping, deeplink,
    # trigger...): one `other_changed` row, so that every change has a row.
    named = " or ".join(f"coalesce({condition}, false)" for *_, condition in changes)
    changes.append(
        ("other_changed", "null", "null", f"v.change_kind = 'changed' and not ({named})")
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


def _views_0010() -> tuple[View, ...]:
    """The four views as revision 0010 left them: v_campaign_versions and
    v_campaign_changes frozen above, the push statistics views as 0005 wrote them."""
    current = {view.name: view for view in DESCRIBED_VIEWS}
    script = op.get_context().script
    assert script is not None
    made_by_0005 = script.get_revision("0005").module
    push_sql = {
        "v_push_performance": made_by_0005.V_PUSH_PERFORMANCE,
        "v_push_performance_total": made_by_0005.V_PUSH_PERFORMANCE_TOTAL,
    }
    old = []
    for name in reversed(REPLACED):
        view = current[name]
        columns = {k: v for k, v in view.columns.items() if k not in ADDED_COLUMNS.get(name, ())}
        if name == "v_campaign_versions":
            columns["schedule"] = SCHEDULE_0010
            view = replace(view, sql=_v_campaign_versions_0010)
        elif name == "v_campaign_changes":
            view = replace(view, description=CHANGES_0010, sql=_v_campaign_changes_0010)
        else:
            sql = push_sql[name].split(" as\n", 1)[1]  # 0005's text is "create view ... as"
            view = replace(view, sql=_as_written(sql))
        old.append(replace(view, columns=columns))
    return tuple(old)


def _as_written(sql: str) -> Callable[[JsonSQL], str]:
    """A view's SQL that is the same on every dialect."""
    return lambda _j: sql


def _replace(views: tuple[View, ...]) -> None:
    conn = op.get_bind()
    j = json_sql(conn.dialect.name)
    for name in REPLACED:
        conn.execute(text(f"drop view if exists {name}"))
    for view in views:
        assert view.sql is not None
        conn.execute(text(f"create view {view.name} as {view.sql(j)}"))
    comment_views(conn, views)


def upgrade() -> None:
    current = {view.name: view for view in DESCRIBED_VIEWS}
    _replace(tuple(current[name] for name in reversed(REPLACED)))


def downgrade() -> None:
    _replace(_views_0010())
