"""One source of descriptions: every table, column and view described, written into
PostgreSQL as comments, and docs/schema.md generated from it and current."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from campaign_sync import schema_doc
from campaign_sync.db.descriptions import TABLES
from campaign_sync.db.models import metadata
from campaign_sync.db.views import DESCRIBED_VIEWS, VIEWS


def test_docs_schema_md_is_current() -> None:
    assert schema_doc.DOC.read_text() == schema_doc.render(), (
        "docs/schema.md is stale: run python -m campaign_sync.schema_doc"
    )
    assert schema_doc.main(["--check"]) == 0


def test_docs_schema_md_has_a_mermaid_diagram_and_every_view() -> None:
    doc = schema_doc.render()
    assert "```mermaid\nerDiagram\n    campaigns ||--o{ messages : campaign_id" in doc
    assert "| `open_rate_b` | Open rate of version b; NULL outside A/B tests. |" in doc
    for view in DESCRIBED_VIEWS:
        assert f"### `{view.name}`" in doc


def test_every_table_and_column_is_described() -> None:
    assert set(TABLES) == set(metadata.tables)
    for name, table in metadata.tables.items():
        meaning, columns = TABLES[name]
        assert meaning and table.comment == meaning
        assert list(columns) == [c.name for c in table.columns], name
        assert all(columns.values()), name


def test_every_view_column_is_described(any_db: Engine) -> None:
    found = inspect(any_db)
    assert {v.name for v in DESCRIBED_VIEWS} == set(found.get_view_names())
    for view in DESCRIBED_VIEWS:
        assert [c["name"] for c in found.get_columns(view.name)] == list(view.columns)
        assert all(view.columns.values())


def test_postgresql_holds_the_descriptions_as_comments(db: Engine) -> None:
    column_comment = (
        "select col_description(a.attrelid, a.attnum) from pg_attribute a "
        "where a.attrelid = cast(:relation as regclass) and a.attname = :column"
    )
    with db.connect() as conn:
        table, view = (
            conn.execute(
                text("select obj_description(cast(:r as regclass), 'pg_class')"), {"r": r}
            ).scalar_one()
            for r in ("campaigns", "v_campaigns")
        )
        push_time, change, open_rate_a = (
            conn.execute(text(column_comment), {"relation": r, "column": c}).scalar_one()
            for r, c in (
                ("campaigns", "push_time"),
                ("v_campaign_changes", "change"),
                ("v_push_performance_total", "open_rate_a"),
            )
        )
        undescribed = conn.execute(
            text(
                "select c.relname || '.' || a.attname from pg_class c "
                "join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 "
                "join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = current_schema() and c.relkind in ('r', 'v') "
                "and c.relname <> 'alembic_version' and not a.attisdropped "
                "and col_description(c.oid, a.attnum) is null"
            )
        ).scalars()
        assert sorted(undescribed) == []
    assert table == TABLES["campaigns"][0]
    assert view == VIEWS[0].description
    assert push_time == "When the push is sent, GMT (UTC)."
    assert change == "What changed."
    assert open_rate_a == "Open rate of version a; NULL outside A/B tests."
