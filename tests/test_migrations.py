"""Models and migrations agree, and the revisions go down and up again."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select, text

from campaign_sync.db import migrate
from campaign_sync.db.models import metadata, sync_runs, sync_warnings
from campaign_sync.db.session import make_engine
from campaign_sync.db.warnings import record_warnings

TABLES = {
    "campaigns", "messages", "message_actions", "triggers", "targeting", "sync_state",
    "sync_runs", "sync_warnings", "campaign_updates", "campaign_versions",
}  # fmt: skip


def schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("fresh_pg_url"))
    return f"sqlite:///{request.getfixturevalue('tmp_path')}/empty.db"


def test_migrations_match_the_models(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    assert schema_diff(empty_url) == []


def test_downgrade_then_upgrade_works(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    migrate.downgrade(empty_url, "base")
    engine = make_engine(empty_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(empty_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_json_columns_are_jsonb_on_postgresql(fresh_pg_url: str) -> None:
    migrate.upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("campaigns")}
    engine.dispose()
    assert type(columns["detail"]).__name__ == "JSONB"
    assert type(columns["custom_payload"]).__name__ == "JSONB"
    assert columns["created_date"].timezone is True  # type: ignore[attr-defined]
    assert columns["local_push_time"].timezone is False  # type: ignore[attr-defined]


def test_a_database_not_yet_migrated_is_refused_with_the_fix(fresh_pg_url: str) -> None:
    engine = make_engine(fresh_pg_url)
    with pytest.raises(migrate.SchemaNotCurrent, match="run campaign-sync migrate"):
        migrate.ensure_current(engine)
    engine.dispose()


def test_downgrading_0007_removes_the_descriptions_it_wrote(fresh_pg_url: str) -> None:
    migrate.upgrade(fresh_pg_url)
    migrate.downgrade(fresh_pg_url, "0006")
    engine = make_engine(fresh_pg_url)
    with engine.connect() as conn:
        described = conn.execute(
            text(
                "select c.relname from pg_class c where c.relname like 'v_push_performance%' "
                "and (obj_description(c.oid, 'pg_class') is not null or exists (select 1 "
                "from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 "
                "and col_description(c.oid, a.attnum) is not null)) order by 1"
            )
        ).scalars()
        assert list(described) == []
        assert set(inspect(conn).get_view_names()) == {
            "v_push_performance",
            "v_push_performance_total",
        }
    engine.dispose()


def test_0008_moves_the_seen_marks_to_campaign_sightings_and_back(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0007")
    engine = make_engine(empty_url)
    columns = "app, campaign_type, campaign_token, first_seen_at, last_seen_at, updated_at"
    with engine.begin() as conn:
        conn.execute(
            text(
                f"insert into campaigns ({columns}, last_sweep_id) values "
                f"('ios', 'push', 'seen', '2026-01-02', '2026-01-03', '2026-01-02', 7), "
                f"('ios', 'push', 'never', '2026-01-02', '2026-01-02', '2026-01-02', null)"
            )
        )
    migrate.upgrade(empty_url)
    with engine.connect() as conn:
        marks = conn.execute(
            text(
                "select c.campaign_token, s.last_sweep_id from campaign_sightings s "
                "join campaigns c on c.id = s.campaign_id"
            )
        ).all()
    assert marks == [("seen", 7)]
    assert "last_sweep_id" not in {c["name"] for c in inspect(engine).get_columns("campaigns")}
    with engine.begin() as conn:
        conn.execute(text("update campaign_sightings set last_sweep_id = 8"))
    migrate.downgrade(empty_url, "0007")
    with engine.connect() as conn:
        swept = conn.execute(
            text("select campaign_token, last_sweep_id from campaigns order by campaign_token")
        ).all()
    engine.dispose()
    assert swept == [("never", None), ("seen", 8)]


def test_0010_keeps_the_current_version_detail_in_campaigns_only_and_back(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0009")
    engine = make_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into campaigns (id, app, campaign_type, campaign_token, detail, "
                "content_hash, first_seen_at, last_seen_at, updated_at) values (1, 'ios', "
                "'push', 'tok', '{\"name\": \"new\"}', 'h2', '2026-01-02', '2026-01-02', "
                "'2026-01-02')"
            )
        )
        conn.execute(
            text(
                "insert into campaign_versions (campaign_id, recorded_at, content_hash, detail, "
                "version, change_kind, valid_from, valid_to) values "
                "(1, '2026-01-01', 'h1', '{\"name\": \"old\"}', 1, 'created', '2026-01-01', "
                "'2026-01-02'), "
                "(1, '2026-01-02', 'h2', '{\"name\": \"new\"}', 2, 'changed', '2026-01-02', null)"
            )
        )
    migrate.upgrade(empty_url)
    stored = "select version, detail is null from campaign_versions order by version"
    named = "select version, name, detail is not null from v_campaign_versions order by version"
    with engine.connect() as conn:
        assert [tuple(row) for row in conn.execute(text(stored))] == [(1, False), (2, True)]
        assert [tuple(row) for row in conn.execute(text(named))] == [
            (1, "old", True),
            (2, "new", True),
        ]
    migrate.downgrade(empty_url, "0009")
    with engine.connect() as conn:
        assert [tuple(row) for row in conn.execute(text(stored))] == [(1, False), (2, False)]
        names = conn.execute(text("select name from v_campaign_versions order by version"))
        assert names.scalars().all() == ["old", "new"]
    engine.dispose()


def test_a_migration_is_one_transaction_and_migrators_take_turns(empty_url: str) -> None:
    """While `migrate` is halfway (its `campaigns` table created, not committed), another
    command finds no schema at all, never tables without their revision (which made it say
    "run migrate --adopt" on SQLite, where each CREATE used to commit alone); a second
    `migrate` started meanwhile (a process of its own: Alembic runs one at a time in a
    process) waits its turn and finds nothing left to do."""
    import threading

    from sqlalchemy import Engine, event

    from campaign_sync.db.revisions import SchemaNotCurrent, ensure_current
    from tests.test_cli import cli_env, start_cli

    halfway, resume = threading.Event(), threading.Event()

    def pause_after_campaigns(conn: object, cursor: object, statement: str, *_: object) -> None:
        created = statement.lstrip().upper().startswith("CREATE TABLE CAMPAIGNS")
        if created and not halfway.is_set():
            halfway.set()
            assert resume.wait(60)

    found: list[str | None] = []
    errors: list[BaseException] = []

    def first_migrator() -> None:
        try:
            found.append(migrate.upgrade(empty_url))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    event.listen(Engine, "after_cursor_execute", pause_after_campaigns)
    try:
        first = threading.Thread(target=first_migrator)
        first.start()
        assert halfway.wait(60)
        engine = make_engine(empty_url)
        try:
            with pytest.raises(SchemaNotCurrent) as seen:
                ensure_current(engine)
        finally:
            engine.dispose()
        assert str(seen.value) == (
            f"the database has no campaign-sync schema, the newest is {migrate.head_revision()}:"
            " run campaign-sync migrate"
        )
        second = start_cli("migrate", env=cli_env(empty_url))
        with pytest.raises(subprocess.TimeoutExpired):
            second.wait(3)  # its turn comes when the first one commits
        resume.set()
        first.join(60)
        out, err = second.communicate(timeout=60)
    finally:
        resume.set()
        event.remove(Engine, "after_cursor_execute", pause_after_campaigns)
    head = migrate.head_revision()
    assert errors == []
    assert found == [None]
    assert (second.returncode, err) == (0, "")
    assert out.startswith(f"database schema already at revision {head} (")
    assert schema_diff(empty_url) == []


MIGRATION_LOCK = (0x43534E43, 0x4D494752)  # migrations/env.py's advisory lock: "CSNC", "MIGR"


def test_a_migrator_waits_its_turn_whatever_lock_timeout_the_database_sets(
    fresh_pg_url: str,
) -> None:
    """Behind PgBouncer the docs suggest a lock_timeout on the role: the second of two
    migrators then failed after it ("canceling statement due to lock timeout") instead of
    waiting for the first one's commit. The turn is waited for; the timeout then holds
    again for the migration's own statements."""
    import threading

    from sqlalchemy.engine import make_url as parse_url

    database = parse_url(fresh_pg_url).database
    dsn = parse_url(fresh_pg_url).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"alter database \"{database}\" set lock_timeout = '200ms'")
    results: list[object] = []
    with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as first:
        first.execute("select pg_advisory_lock(%s, %s)", MIGRATION_LOCK)  # a migration runs
        second = threading.Thread(target=lambda: results.append(_upgrade_or_error(fresh_pg_url)))
        second.start()
        second.join(2)  # ten times the database's lock_timeout
        assert second.is_alive() and results == []  # still waiting its turn
        first.execute("select pg_advisory_unlock(%s, %s)", MIGRATION_LOCK)
        second.join(60)
    assert results == [None]  # migrated from no revision
    engine = make_engine(fresh_pg_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("show lock_timeout").scalar() == "200ms"
    engine.dispose()
    assert schema_diff(fresh_pg_url) == []


def _upgrade_or_error(url: str) -> object:
    try:
        return migrate.upgrade(url)
    except Exception as error:  # returned for the assertion to show
        return error


def test_revisions_0011_to_0013_go_down_to_the_views_before_them_and_up_again(
    empty_url: str,
) -> None:
    """0011 rewrote four views; its downgrade puts 0010's back (and 0005's statistics
    views), each still readable. 0012 rewrote two, and its downgrade puts 0011's back;
    0013 alike (0012's)."""
    added = {
        "v_campaign_versions": {"schedule_zone", "recurrence_end_date", "content_hash"},
        "v_push_performance": {"deleted_at"},
        "v_push_performance_total": {"deleted_at"},
    }
    views = ("v_campaign_versions", "v_campaign_changes", "v_push_performance",
             "v_push_performance_total")  # fmt: skip

    def columns() -> dict[str, set[str]]:
        engine = make_engine(empty_url)
        try:
            with engine.connect() as conn:
                for view in views:
                    conn.execute(text(f"select * from {view}")).all()
            found = inspect(engine)
            return {view: {c["name"] for c in found.get_columns(view)} for view in views}
        finally:
            engine.dispose()

    migrate.upgrade(empty_url, "0011")
    at_0011 = columns()
    migrate.downgrade(empty_url, "0010")
    at_0010 = columns()
    assert {view: at_0011[view] - at_0010[view] for view in added} == added
    assert at_0011["v_campaign_changes"] == at_0010["v_campaign_changes"]
    migrate.upgrade(empty_url, "0011")
    assert columns() == at_0011
    migrate.upgrade(empty_url, "0012")  # two columns more
    at_0012 = columns()
    assert {view: at_0012[view] - at_0011[view] for view in views} == {
        "v_campaign_versions": set(),
        "v_campaign_changes": set(),
        "v_push_performance": set(),
        "v_push_performance_total": {"sent_optins_a", "sent_optins_b"},
    }
    migrate.downgrade(empty_url, "0011")
    assert columns() == at_0011
    migrate.upgrade(empty_url, "0013")  # v_campaign_versions.live_as_sent
    assert {view: columns()[view] - at_0012[view] for view in views} == {
        "v_campaign_versions": {"live_as_sent"},
        "v_campaign_changes": set(),
        "v_push_performance": set(),
        "v_push_performance_total": set(),
    }
    migrate.downgrade(empty_url, "0012")
    assert columns() == at_0012


def test_0014_leaves_each_warning_before_it_one_sighting_and_goes_down_again(
    empty_url: str,
) -> None:
    """Rows from before 0014 were each recorded once: times_seen 1, and no last sighting
    to tell (NULL: the table, which may hold millions of them, is not rewritten). They
    stay out of the lookups (a review: a problem's 300,000 old duplicates were read at
    every pass), so the first pass that warns of one again starts a row of its own."""
    migrate.upgrade(empty_url, "0013")
    engine = make_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into sync_runs (id, app, campaign_type, started_at, status, full_refresh,"
                " sweep_complete, list_calls, detail_calls, retries, campaigns_inserted,"
                " campaigns_updated, campaigns_unchanged, campaigns_deleted, warnings)"
                " values (7, 'default', 'push', '2026-11-01 10:00:00+00', 'succeeded',"
                " false, true, 1, 0, 0, 0, 0, 0, 0, 1)"
            )
        )
        conn.execute(
            text(
                "insert into sync_warnings (run_id, app, campaign_type, campaign_token, field,"
                " raw_value, message, created_at) values"
                " (7, 'default', 'push', 'a', 'name', '1', 'not text', '2026-11-01 10:00:05+00'),"
                " (null, 'default', 'in_app', 'b', 'x', null, 'odd', '2026-11-02 11:00:00+00')"
            )
        )
    migrate.upgrade(empty_url, "0014")
    w = sync_warnings.c
    columns = (w.campaign_token, w.times_seen, w.last_run_id, w.last_seen_at, w.message)
    with engine.connect() as conn:
        found = conn.execute(select(*columns).order_by(w.id)).all()
    assert [tuple(row) for row in found] == [
        ("a", 1, None, None, "not text"),
        ("b", 1, None, None, "odd"),
    ]
    with engine.begin() as conn:  # a later pass warns of the first again
        conn.execute(
            insert(sync_runs).values(
                id=8, app="default", campaign_type="push", status="succeeded",
                started_at=datetime(2026, 11, 3, 10, tzinfo=UTC),
            )
        )  # fmt: skip
        record_warnings(
            conn,
            [
                {
                    "run_id": 8, "campaign_id": None, "app": "default", "campaign_type": "push",
                    "campaign_token": "a", "field": "name", "raw_value": "1",
                    "message": "not text, again",
                    "created_at": datetime(2026, 11, 3, 10, 0, 1, tzinfo=UTC),
                }
            ],
        )  # fmt: skip
    with engine.connect() as conn:
        found = conn.execute(select(*columns).order_by(w.id)).all()
    assert [tuple(row) for row in found] == [
        ("a", 1, None, None, "not text"),
        ("b", 1, None, None, "odd"),
        ("a", 1, 8, datetime(2026, 11, 3, 10, 0, 1, tzinfo=UTC), "not text, again"),
    ]
    migrate.downgrade(empty_url, "0013")
    columns_left = {c["name"] for c in inspect(engine).get_columns("sync_warnings")}
    assert columns_left.isdisjoint({"times_seen", "last_seen_at", "last_run_id"})
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from sync_warnings")).scalar_one() == 3
    engine.dispose()


def test_our_names_are_every_table_and_view_the_head_creates(empty_url: str) -> None:
    """revisions.OUR_NAMES tells another's tables from ours: it must name them all."""
    from campaign_sync.db.revisions import OUR_NAMES

    migrate.upgrade(empty_url)
    engine = make_engine(empty_url)
    found = inspect(engine)
    names = set(found.get_table_names()) | set(found.get_view_names())
    engine.dispose()
    assert names - {"alembic_version"} == OUR_NAMES


def _view_definitions(url: str) -> dict[str, tuple[str, object, list[object]]]:
    """Each view's SQL, its comment and its columns' comments (PostgreSQL)."""
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {
            name: (
                str(found.get_view_definition(name)),
                found.get_table_comment(name)["text"],
                [(c["name"], c.get("comment")) for c in found.get_columns(name)],
            )
            for name in found.get_view_names()
        }
    finally:
        engine.dispose()


@pytest.mark.parametrize("revision", ["0007", "0010", "0011", "0012"])
def test_a_revision_builds_its_own_views_going_up_as_coming_down(
    revision: str, fresh_pg_url: str, pg_server: object, tmp_path: object
) -> None:
    """0007 and 0010 built today's views (0011's) going up, and 0011's downgrade put back
    0010's: the same revision had two sets of views, by the way it was reached. 0011 alike
    once 0012 changed two views, and 0012 once 0013 did. Their comments too."""
    from tests.pg import PostgresServer

    assert isinstance(pg_server, PostgresServer)
    other = pg_server.create_database()
    try:
        migrate.upgrade(fresh_pg_url, revision)
        migrate.upgrade(other)
        migrate.downgrade(other, revision)
        assert _view_definitions(fresh_pg_url) == _view_definitions(other)
    finally:
        pg_server.drop_database(other)


def test_0013_keeps_an_analysts_own_view_on_v_campaign_versions(fresh_pg_url: str) -> None:
    """0013 dropped v_campaign_versions to remake it: with an analyst's view built on it,
    PostgreSQL refused ("other objects depend on it") and migrate failed (a review's
    find). Going up, it is replaced in place."""
    migrate.upgrade(fresh_pg_url, "0012")
    engine = make_engine(fresh_pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("create view my_live as select campaign_id, live from v_campaign_versions")
            )
        migrate.upgrade(fresh_pg_url)
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from my_live")).scalar() == 0
            assert conn.execute(text("select live_as_sent from v_campaign_versions")).all() == []
    finally:
        engine.dispose()


def test_views_dropped_by_hand_are_named_by_check_and_made_again_by_migrate(
    empty_url: str,
) -> None:
    """A view of ours dropped by hand stayed missing: migrate said 'already at revision',
    check said ready (a review's find). check names it (exit 2) and migrate makes it
    again, with its description; a table dropped is named with its own fix."""
    from campaign_sync.check import check_database
    from campaign_sync.db.revisions import SchemaNotCurrent

    migrate.upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("drop view v_campaign_changes"))
            conn.execute(text("drop view v_campaign_versions"))
        finding = check_database(empty_url)
        assert (finding.code, finding.message) == (
            2,
            "the schema lacks the view(s) v_campaign_versions, v_campaign_changes: run "
            "campaign-sync migrate, which makes missing views again",
        )
        assert migrate.restore_views(empty_url) == ["v_campaign_versions", "v_campaign_changes"]
        assert migrate.restore_views(empty_url) == []
        assert check_database(empty_url).code == 0
        with engine.connect() as conn:
            assert conn.execute(text("select * from v_campaign_changes")).all() == []
        assert migrate.missing_objects(engine) == ([], [])
        with engine.begin() as conn:
            conn.execute(text("drop table campaign_updates"))
        lacking = (
            "the schema is recorded as the newest but lacks the table(s) campaign_updates: "
            "restore them from a backup, or migrate a new database and sync it afresh"
        )
        assert check_database(empty_url).message == lacking
        with pytest.raises(SchemaNotCurrent) as refused:  # not "relation ... does not exist"
            migrate.restore_views(empty_url)
        assert str(refused.value) == lacking
    finally:
        engine.dispose()


def test_a_name_of_ours_held_by_another_kind_of_object_is_named(empty_url: str) -> None:
    """An analyst's table named v_campaign_changes (ours dropped) passed check as the view,
    and migrate then failed on "relation already exists" (review 2)."""
    from campaign_sync.check import check_database
    from campaign_sync.db.revisions import SchemaNotCurrent

    migrate.upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("drop view v_campaign_changes"))
            conn.execute(text("create table v_campaign_changes (x integer)"))
        taken = (
            "v_campaign_changes: another object (a table, a materialized view, an index, a "
            "sequence, a type) holds the name of campaign-sync's view: rename or drop it, then "
            "run campaign-sync migrate, which makes missing views again"
        )
        assert (check_database(empty_url).code, check_database(empty_url).message) == (2, taken)
        with pytest.raises(SchemaNotCurrent) as refused:
            migrate.restore_views(empty_url)
        assert str(refused.value) == taken
        # Anything else holding the name: an index (both), a sequence, a materialized view.
        others = ["create index v_campaign_changes on sync_runs (id)"]
        if engine.dialect.name == "postgresql":
            others += [
                "create sequence v_campaign_changes",
                "create materialized view v_campaign_changes as select 1 as x",
                "create type v_campaign_changes as enum ('a')",
            ]
        drop = {"index": "drop index v_campaign_changes", "sequence": "drop sequence "
                "v_campaign_changes", "materialized": "drop materialized view "
                "v_campaign_changes", "type": "drop type v_campaign_changes"}  # fmt: skip
        with engine.begin() as conn:
            conn.execute(text("drop table v_campaign_changes"))
        for made in others:
            with engine.begin() as conn:
                conn.execute(text(made))
            assert check_database(empty_url).message == taken, made
            kind = next(word for word in drop if word in made)
            with engine.begin() as conn:
                conn.execute(text(drop[kind]))
        if engine.dialect.name == "sqlite":  # a trigger's name is in a space of its own
            with engine.begin() as conn:
                conn.execute(text(
                    "create trigger v_campaign_changes after insert on sync_runs "
                    "begin select 1; end"
                ))  # fmt: skip
            assert "lacks the view(s) v_campaign_changes" in check_database(empty_url).message
        assert migrate.restore_views(empty_url) == ["v_campaign_changes"]
        with engine.begin() as conn:
            conn.execute(text("drop table campaign_updates"))
            conn.execute(text("create view campaign_updates as select 1 as id"))
        assert check_database(empty_url).message == (
            "campaign_updates: another object (a view, an index, a sequence, a type) holds the "
            "name of campaign-sync's table: rename or drop it, then restore the table from a "
            "backup (or migrate a new database and sync it afresh)"
        )
    finally:
        engine.dispose()


def test_replicas_making_views_again_at_once_take_turns(fresh_pg_url: str) -> None:
    """Four migrate runs remaking dropped views at once: one failed in one round of five
    with IntegrityError on pg_type (two CREATE OR REPLACE VIEW of one name at once; a
    review's find). They now take the migrators' turn; each view is made once."""
    import threading

    migrate.upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    try:
        for _ in range(3):
            with engine.begin() as conn:
                conn.execute(text("drop view v_campaign_changes"))
                conn.execute(text("drop view v_campaigns cascade"))
            made: list[list[str]] = []
            errors: list[BaseException] = []
            threads = [
                threading.Thread(target=_remake_views, args=(fresh_pg_url, made, errors))
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert errors == []
            remade = sorted(name for names in made for name in names)
            assert "v_campaign_changes" in remade and "v_campaigns" in remade
            assert remade.count("v_campaigns") == 1  # made by one of them, after its turn
            assert migrate.missing_objects(engine) == ([], [])
    finally:
        engine.dispose()


def _remake_views(url: str, made: list[list[str]], errors: list[BaseException]) -> None:
    try:
        made.append(migrate.restore_views(url))
    except BaseException as error:  # reported by the caller's assertion
        errors.append(error)


def test_the_models_list_each_tables_columns_in_the_migrated_order(empty_url: str) -> None:
    """docs/schema.md lists the models' columns: for sync_runs and sync_state in another
    order than `\\d` and `select *` show them, as later revisions appended columns that
    the models had placed among the others (a review's find)."""
    from campaign_sync.db.models import metadata

    migrate.upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        inspector = inspect(engine)
        differing = {
            table.name: [column["name"] for column in inspector.get_columns(table.name)]
            for table in metadata.sorted_tables
            if [column["name"] for column in inspector.get_columns(table.name)]
            != [column.name for column in table.columns]
        }
    finally:
        engine.dispose()
    assert differing == {}


def test_a_migration_committed_by_another_replica_meanwhile_is_no_foreign_schema(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas migrating a new database at once (through PgBouncer): the second read
    no revision, then read the first one's objects midway through its commit and took them
    for another tool's ('the database holds tables campaign-sync did not create
    (v_campaign_changes, ...)'), exit 2; seen twice in full runs. The revision read again
    tells: recorded now, it was a migration; still none, another's indeed."""
    from campaign_sync.db import revisions

    migrate.upgrade(empty_url)  # the other replica's migration, committed
    engine = make_engine(empty_url)
    real = revisions.stored_revision
    reads: list[str | None] = []

    def before_the_commit_once(conn_or_engine: Engine) -> str | None:
        found = real(conn_or_engine) if reads else None  # the first read came before it
        reads.append(found)
        return found

    def midway(_engine: Engine) -> str | None:
        raise revisions.ForeignSchema("the database holds tables campaign-sync did not create")

    monkeypatch.setattr(revisions, "stored_revision", before_the_commit_once)
    monkeypatch.setattr(revisions, "recognise", midway)
    try:
        assert revisions.unrecorded_schema(engine) is None
        assert reads == [None, migrate.head_revision()]
        monkeypatch.setattr(revisions, "stored_revision", lambda _engine: None)
        with pytest.raises(revisions.ForeignSchema):  # no revision after all: another's
            revisions.unrecorded_schema(engine)
    finally:
        engine.dispose()
