"""CAMPAIGN_SYNC_DB_SCHEMA: on PostgreSQL every table, view and the Alembic version table
live in the schema it names, and every command works there; `public` stays empty."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from campaign_sync.db import migrate
from campaign_sync.db.models import metadata
from campaign_sync.db.session import make_engine
from campaign_sync.db.views import VIEWS
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.conftest import API_KEY, CANARY_REST_KEY
from tests.syncing import count
from tests.test_cli import cli, cli_env

SCHEMA = "batch"


def test_the_migrations_build_everything_inside_the_schema(fresh_pg_url: str) -> None:
    migrate.upgrade(fresh_pg_url, schema=SCHEMA)
    plain = make_engine(fresh_pg_url)
    found = inspect(plain)
    assert set(found.get_table_names(schema=SCHEMA)) == set(metadata.tables) | {"alembic_version"}
    assert set(found.get_view_names(schema=SCHEMA)) == {view.name for view in VIEWS} | {
        "v_push_performance",
        "v_push_performance_total",
    }  # the push stats views, from revision 0005
    assert found.get_table_names(schema="public") == []
    assert found.get_view_names(schema="public") == []
    with pytest.raises(migrate.SchemaNotCurrent):
        migrate.ensure_current(plain)  # public has no schema of ours
    plain.dispose()
    inside = make_engine(fresh_pg_url, schema=SCHEMA)
    migrate.ensure_current(inside)
    with inside.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert list(compare_metadata(context, metadata)) == []
    inside.dispose()
    migrate.downgrade(fresh_pg_url, "base", schema=SCHEMA)
    plain = make_engine(fresh_pg_url)
    assert inspect(plain).get_table_names(schema=SCHEMA) == ["alembic_version"]
    plain.dispose()


def test_migrate_sync_and_status_honour_the_schema_setting(fresh_pg_url: str) -> None:
    simulator = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=12, in_app=5)
    with SimulatorServer(simulator) as server:
        env = cli_env(fresh_pg_url, server, CAMPAIGN_SYNC_DB_SCHEMA=SCHEMA)
        for command in ("migrate", "sync", "status"):
            result = cli(command, env=env)
            assert result.returncode == 0, (command, result.stderr)
    plain = make_engine(fresh_pg_url)
    assert count(plain, f"select count(*) from {SCHEMA}.campaigns") == 17
    assert count(plain, f"select count(*) from {SCHEMA}.v_campaigns") == 17
    assert count(plain, f"select count(*) from {SCHEMA}.campaign_versions") == 17
    assert count(plain, f"select count(*) from {SCHEMA}.sync_runs") == 2
    assert count(plain, f"select count(*) from {SCHEMA}.alembic_version") == 1
    assert inspect(plain).get_table_names(schema="public") == []
    plain.dispose()


def test_messages_name_the_schema_they_looked_in(fresh_pg_url: str) -> None:
    """With the tables in `batch` and CAMPAIGN_SYNC_DB_SCHEMA mistyped, status said only
    'the database has no campaign-sync schema': the schema it looked in was nowhere."""
    env = cli_env(fresh_pg_url, CAMPAIGN_SYNC_DB_SCHEMA=SCHEMA)
    migrated = cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.endswith(", PostgreSQL schema batch, CAMPAIGN_SYNC_DB_SCHEMA)\n"), (
        migrated.stdout
    )
    env["CAMPAIGN_SYNC_DB_SCHEMA"] = "bacth"
    refused = cli("status", env=env)
    assert refused.returncode == 2
    assert refused.stderr.startswith("campaign-sync: the database has no campaign-sync schema")
    assert refused.stderr.endswith(
        "run campaign-sync migrate (PostgreSQL schema bacth, CAMPAIGN_SYNC_DB_SCHEMA)\n"
    ), refused.stderr


def test_a_role_without_usage_on_the_schema_is_told_to_grant_it(
    fresh_pg_url: str, sim_server: SimulatorServer
) -> None:
    """A role with no USAGE on CAMPAIGN_SYNC_DB_SCHEMA's schema sees none of its tables:
    status and sync said "the database has no campaign-sync schema … run campaign-sync
    migrate", check "migrations pending", and migrate then failed with "permission denied
    for schema" (a newcomer's find). They name the missing grant now (exit 2)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    migrate.upgrade(fresh_pg_url, schema=SCHEMA)
    role = f"nousage_{make_url(fresh_pg_url).database}"[:60]
    admin = make_engine(fresh_pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'create role "{role}" login'))
    url = make_url(fresh_pg_url).set(username=role).render_as_string(hide_password=False)
    grant = f'GRANT USAGE ON SCHEMA {SCHEMA} TO "{role}"'
    try:
        env = cli_env(url, sim_server, CAMPAIGN_SYNC_DB_SCHEMA=SCHEMA)
        status = cli("status", env=env)
        assert status.returncode == 2, status.stderr
        assert f"the role {role} may not use the schema {SCHEMA} (no USAGE privilege)" in (
            status.stderr
        )
        assert grant in status.stderr and "run campaign-sync migrate" not in status.stderr
        checked = cli("check", env=env)
        assert checked.returncode == 2 and grant in checked.stdout, checked.stdout
        with admin.begin() as conn:  # the grant it names is the fix
            conn.execute(text(grant))
        assert "may not use the schema" not in cli("status", env=env).stderr
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'drop owned by "{role}"'))
            conn.execute(text(f'drop role "{role}"'))
        admin.dispose()
