"""Production setups: PgBouncer in both pooling modes, replicas migrating at once."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.db import migrate
from campaign_sync.db.models import sync_runs
from campaign_sync.db.session import make_engine
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.conftest import API_KEY, CANARY_REST_KEY
from tests.pg import set_database_time_zone
from tests.pgbouncer import PgBouncer
from tests.syncing import by_type, count, hold_lists_until_a_pass_is_skipped, run_sync
from tests.test_cli import cli_env, start_cli

PUSH = CampaignType.PUSH


@pytest.fixture(scope="module", params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, pg_server: Any) -> Iterator[PgBouncer]:
    server = PgBouncer(pg_server.admin_url, request.param)
    yield server
    server.stop()


@pytest.fixture
def bounced_url(bouncer: PgBouncer, pg_server: Any) -> Iterator[str]:
    """A fresh migrated database, reached through PgBouncer."""
    direct = pg_server.create_database()
    url = bouncer.url(direct.rsplit("/", 1)[1])
    migrate.upgrade(url)
    yield url
    pg_server.drop_database(direct)


def test_150_campaigns_sync_through_pgbouncer_again_and_again(bounced_url: str) -> None:
    simulator = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=150, in_app=3, seed=9)
    with SimulatorServer(simulator) as server:
        for attempt in range(5):  # locks must never outlive the pass that took them
            results = by_type(run_sync(bounced_url, server))
            assert {r.status for r in results.values()} == {"succeeded"}, (attempt, results)
    engine = make_engine(bounced_url)
    assert count(engine, "select count(*) from campaigns") == 153
    assert count(engine, "select count(*) from sync_state where lock_holder is not null") == 0
    engine.dispose()


def test_two_processes_through_pgbouncer_never_sync_the_same_pair_at_once(
    bounced_url: str,
) -> None:
    slow = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=300, in_app=0, seed=8)
    poller = hold_lists_until_a_pass_is_skipped(slow, bounced_url)  # they surely overlap
    with SimulatorServer(slow) as server:
        env = cli_env(bounced_url, server)
        processes = [start_cli("sync", "--type", "push", env=env) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in processes]
    poller.dispose()
    assert [p.returncode for p in processes] == [0, 0], outputs
    skipped = sum(
        out.count("default/push: skipped (another process holds it") for out, _ in outputs
    )
    assert skipped == 1, outputs
    engine = make_engine(bounced_url)
    with engine.connect() as conn:
        spans = conn.execute(
            select(sync_runs.c.started_at, sync_runs.c.finished_at).order_by(sync_runs.c.id)
        ).all()
        skipped_at = conn.execute(select(text_column("last_skipped_at"))).scalar()
    engine.dispose()
    assert len(spans) == 1 and skipped_at is not None
    from campaign_sync.status import collect_status

    engine = make_engine(bounced_url)
    [push] = collect_status(engine, detail_max_age_seconds=86400, interval_seconds=300)
    engine.dispose()
    assert push.as_json()["last_skipped_at"] == skipped_at.isoformat()
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        assert second_start >= first_end


def text_column(name: str) -> Any:
    from campaign_sync.db.models import sync_state

    return sync_state.c[name]


def test_statements_never_depend_on_one_server_connection(bounced_url: str) -> None:
    """In transaction pooling each transaction may run on another server connection: a
    statement prepared on one is unknown (or already known) on the next."""
    from sqlalchemy import text

    engine = make_engine(bounced_url)
    try:
        with engine.connect() as first, engine.connect() as second:
            for _ in range(8):  # psycopg prepares a statement after 5 runs by default
                first.execute(text("select count(*) from campaigns where app = :a"), {"a": "x"})
                first.commit()
            second.execute(text("select 1"))  # holds the server connection `first` used
            for _ in range(3):
                first.execute(text("select count(*) from campaigns where app = :a"), {"a": "x"})
                first.commit()
            second.commit()
    finally:
        engine.dispose()


def _migrate_twice_at_once(url: str) -> list[subprocess.CompletedProcess[str]]:
    env = cli_env(url)
    processes = [start_cli("migrate", env=env) for _ in range(2)]
    return [
        subprocess.CompletedProcess(p.args, p.wait(60), *p.communicate(timeout=60))
        for p in processes
    ]


def test_two_replicas_migrating_a_fresh_database_at_once_both_succeed(pg_server: Any) -> None:
    for _ in range(2):
        url = pg_server.create_database()
        try:
            results = _migrate_twice_at_once(url)
            assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
            engine = make_engine(url)
            assert count(engine, "select count(*) from alembic_version") == 1
            assert migrate.current_revision(url) == migrate.head_revision()
            engine.dispose()
        finally:
            pg_server.drop_database(url)


def test_two_replicas_migrating_through_pgbouncer_both_succeed(
    bouncer: PgBouncer, pg_server: Any
) -> None:
    direct = pg_server.create_database()
    try:
        results = _migrate_twice_at_once(bouncer.url(direct.rsplit("/", 1)[1]))
        assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
        assert migrate.current_revision(direct) == migrate.head_revision()
    finally:
        pg_server.drop_database(direct)


@pytest.mark.parametrize("dumped_at", ["0003", "head"])
def test_tables_without_their_revision_record_are_adopted(
    fresh_pg_url: str, dumped_at: str, restore_logging: None
) -> None:
    from sqlalchemy import text

    from tests.helpers import run

    migrate.upgrade(fresh_pg_url, dumped_at)
    engine = make_engine(fresh_pg_url)
    with engine.begin() as conn:  # a restored dump without Alembic's table
        conn.execute(text("drop table alembic_version"))
    engine.dispose()
    recognised = "0003" if dumped_at == "0003" else migrate.head_revision()
    env = {"DATABASE_URL": fresh_pg_url, "BATCH_API_KEY": "k", "BATCH_REST_API_KEY": "r"}

    refused_sync = run("sync", env=env)
    assert refused_sync.exit_code == 2
    assert refused_sync.stderr == (
        f"campaign-sync: the database has campaign-sync tables (they match revision "
        f"{recognised}) but no record of their revision (alembic_version): run "
        "campaign-sync migrate --adopt\n"
    )
    refused_migrate = run("migrate", env=env)
    assert refused_migrate.exit_code == 2
    assert "run campaign-sync migrate --adopt" in refused_migrate.stderr
    adopted = run("migrate", "--adopt", env=env)
    assert adopted.exit_code == 0, adopted.stderr
    assert adopted.stdout.startswith(f"recognised the tables as revision {recognised}")
    assert migrate.current_revision(fresh_pg_url) == migrate.head_revision()


@pytest.mark.parametrize("check", ["migrate's", "a command's start"])
def test_tables_another_replica_commits_meanwhile_are_not_taken_for_unrecorded(
    check: str, fresh_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The revision was read (none), then the tables (another replica's migration had just
    committed them with their revision): 'run campaign-sync migrate --adopt', exit 2. Seen
    in CI as two replicas migrating through PgBouncer. Here that replica's migration
    commits in the same window: between the first read and the tables' inspection."""
    from campaign_sync.db import revisions

    inspect_tables = revisions.recognise
    migrated: list[bool] = []

    def another_replica_commits_first(engine: Any) -> str | None:
        if not migrated:  # once: that replica's own migrate looks at the tables too
            migrated.append(True)
            migrate.upgrade(fresh_pg_url)
        return inspect_tables(engine)

    monkeypatch.setattr(revisions, "recognise", another_replica_commits_first)
    engine = make_engine(fresh_pg_url)
    try:
        if check == "migrate's":
            assert revisions.unrecorded_schema(engine) is None
        else:
            revisions.ensure_current(engine)  # raised UnrecordedSchema
    finally:
        engine.dispose()
    assert migrate.current_revision(fresh_pg_url) == migrate.head_revision()


def test_every_revision_can_be_recognised_by_adopt() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(""))
    revisions = {revision.revision for revision in script.walk_revisions()}
    recognisable = {revision for revision, _ in migrate.SIGNATURES}
    assert revisions == recognisable, "a revision lacks its line in migrate.SIGNATURES"


# -- proxies -------------------------------------------------------------------------------

PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                   "all_proxy", "NO_PROXY", "no_proxy")  # fmt: skip


@pytest.fixture
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_requests_go_through_the_proxy_the_standard_variables_name(
    pg_url: str, no_proxy_variables: pytest.MonkeyPatch, kind: str
) -> None:
    from tests.proxies import HttpProxy, Socks5Proxy

    proxy = HttpProxy() if kind == "http" else Socks5Proxy()
    simulator = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=12, in_app=0, seed=3)
    with SimulatorServer(simulator) as server, proxy.running():
        variable = "HTTP_PROXY" if kind == "http" else "ALL_PROXY"
        no_proxy_variables.setenv(variable, f"{kind}://127.0.0.1:{proxy.port}")
        results = by_type(run_sync(pg_url, server, [PUSH]))
    assert results[PUSH].status == "succeeded" and results[PUSH].counts.campaigns_inserted == 12
    assert proxy.carried >= 1


def test_no_proxy_exempts_the_host_even_from_an_unusable_proxy(
    pg_url: str, no_proxy_variables: pytest.MonkeyPatch
) -> None:
    simulator = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=5, in_app=0, seed=3)
    no_proxy_variables.setenv("ALL_PROXY", "gopher://nowhere:70")
    no_proxy_variables.setenv("NO_PROXY", "127.0.0.1,localhost")
    with SimulatorServer(simulator) as server:
        results = by_type(run_sync(pg_url, server, [PUSH]))
    assert results[PUSH].status == "succeeded"


def test_an_unusable_proxy_is_one_line_naming_its_variable(
    pg_url: str, no_proxy_variables: pytest.MonkeyPatch, restore_logging: None
) -> None:
    from tests.helpers import run

    env = {"DATABASE_URL": pg_url, "BATCH_API_KEY": "k", "BATCH_REST_API_KEY": "r",
           "HTTPS_PROXY": "gopher://nowhere:70"}  # fmt: skip
    result = run("sync", env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        "campaign-sync: HTTPS_PROXY is not a proxy URL campaign-sync can use (expected "
        "http://HOST:PORT, https://HOST:PORT, socks5://HOST:PORT, socks5h://HOST:PORT); fix it, "
        "or exempt Batch's host with NO_PROXY\n"
    )


@pytest.mark.parametrize(
    ("base_url", "proxy", "opt_in", "refused"),
    [
        ("http://127.0.0.1:8787", "http://192.0.2.1:3128", False, True),  # the review's case
        ("http://127.0.0.1:8787", "socks5://proxy.example:1080", False, True),
        ("http://127.0.0.1:8787", "192.0.2.1:3128", False, True),  # no scheme: http://
        ("http://127.0.0.1:8787", "http://192.0.2.1:3128", True, False),  # asked for
        ("http://127.0.0.1:8787", "http://127.0.0.1:3128", False, False),  # on this machine
        ("http://127.0.0.1:8787", "http://localhost:3128", False, False),
        ("http://127.0.0.1:8787", "http://[::1]:3128", False, False),
        ("http://127.0.0.1:8787", "http://[::ffff:127.0.0.1]:3128", False, False),
        ("http://127.0.0.1:8787", "https://proxy.example:443", False, True),  # it reads it
        ("https://api.batch.com", "http://192.0.2.1:3128", False, False),  # a TLS tunnel
    ],
)
def test_plain_http_through_a_proxy_on_another_host_needs_the_opt_in(
    base_url: str,
    proxy: str,
    opt_in: bool,
    refused: bool,
    no_proxy_variables: pytest.MonkeyPatch,
) -> None:
    """A loopback base URL with HTTP_PROXY on another host sent the REST key in clear to
    that proxy (a review saw it arrive), though plain http to another host needs
    CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP."""
    from campaign_sync.batch.proxies import UnusableProxy, proxy_for

    variable = "HTTPS_PROXY" if base_url.startswith("https") else "HTTP_PROXY"
    no_proxy_variables.setenv(variable, proxy)
    if refused:
        with pytest.raises(UnusableProxy) as refusal:
            proxy_for(base_url, allow_insecure_http=opt_in)
        host = proxy.split("://")[-1].rsplit(":", 1)[0]
        assert str(refusal.value) == (
            f"the base URL is plain http and {variable} names a proxy on another host "
            f"({host}): the REST key would leave this machine in a plain-http request that "
            "proxy reads. Use https, exempt the base URL's host with NO_PROXY, or set "
            "CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP=true if that is what you want"
        )
    else:
        found = proxy_for(base_url, allow_insecure_http=opt_in)
        assert found is not None and found.variable == variable


def test_sync_refuses_plain_http_through_a_remote_proxy_before_any_request(
    pg_url: str, no_proxy_variables: pytest.MonkeyPatch, restore_logging: None
) -> None:
    from tests.helpers import run

    env = {"DATABASE_URL": pg_url, "BATCH_API_KEY": "k", "BATCH_REST_API_KEY": "r",
           "BATCH_API_BASE_URL": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://192.0.2.1:3128"}  # fmt: skip
    result = run("sync", env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "campaign-sync: the base URL is plain http and HTTP_PROXY names a proxy on another "
        "host (192.0.2.1)"
    ), result.stderr


@pytest.mark.parametrize(
    "value",
    ["http://[bad", "http://proxy:99999", "http://proxy:port", "http://a\x7fb:3128",
     "http://[::1]x", "http://xn--zz.com:3128"],
)  # fmt: skip
def test_a_proxy_url_that_does_not_parse_is_one_line_naming_its_variable(
    value: str, no_proxy_variables: pytest.MonkeyPatch
) -> None:
    """`http://[bad` ended every command with 'unexpected error: ValueError: Invalid IPv6
    URL' (exit 1): urlparse raised before the check."""
    from campaign_sync.batch.proxies import UnusableProxy, proxy_for

    no_proxy_variables.setenv("HTTPS_PROXY", value)
    with pytest.raises(UnusableProxy, match=r"^HTTPS_PROXY is not a proxy URL campaign-sync"):
        proxy_for("https://api.batch.com")


def test_adopt_refuses_tables_that_differ_from_the_revision_they_resemble(
    fresh_pg_url: str, restore_logging: None
) -> None:
    from sqlalchemy import text

    from tests.helpers import run

    migrate.upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    with engine.begin() as conn:  # a damaged dump: a column lost, the version table too
        conn.execute(text("drop table alembic_version"))
        conn.execute(text("alter table campaigns drop column theme"))
    engine.dispose()
    result = run("migrate", "--adopt", env={"DATABASE_URL": fresh_pg_url})
    assert result.exit_code == 2
    assert "but differ from it" in result.stderr and "theme" in result.stderr
    assert migrate.current_revision(fresh_pg_url) is None  # nothing recorded


def test_a_database_migrated_by_a_newer_version_is_named_not_touched(
    fresh_pg_url: str, restore_logging: None
) -> None:
    from sqlalchemy import text

    from tests.helpers import run

    migrate.upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    with engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = '9999'"))
    engine.dispose()
    env = {"DATABASE_URL": fresh_pg_url, "BATCH_API_KEY": "k", "BATCH_REST_API_KEY": "r"}
    expected = (
        "campaign-sync: the database is at revision 9999, which this campaign-sync does not "
        "know (a newer version migrated it): run that version, or this one on another database\n"
    )
    for command in ("migrate", "sync"):
        result = run(command, env=env)
        assert (result.exit_code, result.stderr) == (2, expected), command


def test_a_lease_holder_is_judged_gone_only_within_its_own_pid_namespace() -> None:
    from campaign_sync.db.locks import Holder

    mine = Holder.mine()
    dead_here = Holder(mine.host, 2**22 + 12345, "n")  # beyond pid_max: surely no process
    elsewhere = Holder(mine.host.split("/")[0] + "/[1]", 2**22 + 12345, "n")
    assert Holder.parse(str(dead_here)) == dead_here
    assert dead_here.gone() is True
    assert elsewhere.gone() is False  # same host name, another PID namespace: can't tell


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "SSL_CERT_FILE",
            "/nonexistent/ca.pem",
            "SSL_CERT_FILE=/nonexistent/ca.pem cannot be used",
        ),
        ("HTTP_PROXY", "not a url", "HTTP_PROXY is not a proxy URL campaign-sync can use"),
        ("HTTP_PROXY", "http://127.0.0.1:99999", "HTTP_PROXY is not a proxy URL"),
    ],
)
def test_network_variables_no_client_can_use_are_one_line_before_anything(
    pg_url: str,
    no_proxy_variables: pytest.MonkeyPatch,
    restore_logging: None,
    variable: str,
    value: str,
    message: str,
) -> None:
    from tests.helpers import run

    env = {"DATABASE_URL": pg_url, "BATCH_API_KEY": "k", "BATCH_REST_API_KEY": "r",
           "BATCH_API_BASE_URL": "http://127.0.0.1:9", variable: value}  # fmt: skip
    result = run("sync", env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"campaign-sync: {message}") and result.stderr.count("\n") == 1


def test_the_ca_bundle_is_loaded_once_and_again_when_its_variables_change(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ssl

    from campaign_sync.batch.client import BatchClient
    from campaign_sync.batch.proxies import UnusableNetworkSetting, ssl_context

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    first = BatchClient(app="a", api_key="k", rest_api_key="r")
    second = BatchClient(app="b", api_key="k", rest_api_key="r")
    # httpx hands its transport's context to httpcore's pool: the context in use.
    contexts = [client._http._transport._pool._ssl_context for client in (first, second)]  # type: ignore[attr-defined]
    assert contexts[0] is contexts[1] is ssl_context()  # one load for every client
    assert isinstance(contexts[0], ssl.SSLContext)
    # A bundle named later is loaded (and refused) anew: the cache is per variable value.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(UnusableNetworkSetting, match="SSL_CERT_FILE="):
        ssl_context()


def test_a_password_in_the_query_string_is_never_printed() -> None:
    from campaign_sync.db.session import masked_url

    assert masked_url("postgresql://root@db/app?password=s3cret&sslmode=require") == (
        "postgresql://root@db/app?password=***&sslmode=require"
    )
    assert masked_url("postgresql://root:s3cret@db/app") == "postgresql://root:***@db/app"


def test_an_in_memory_sqlite_database_is_refused_by_migrate_and_sync(
    restore_logging: None,
) -> None:
    from tests.helpers import run

    for command in ("migrate", "sync"):
        result = run(command, env={"DATABASE_URL": "sqlite://", "BATCH_API_KEY": "k",
                                   "BATCH_REST_API_KEY": "r"})  # fmt: skip
        assert result.exit_code == 2, command
        assert "in-memory SQLite database" in result.stderr


def test_the_newest_revision_known_without_alembic_is_alembics_head() -> None:
    from campaign_sync.db.revisions import HEAD_REVISION

    assert migrate.head_revision() == HEAD_REVISION


FOREIGN = "tables campaign-sync did not create (campaigns)"
PARTIAL = "only some of campaign-sync's tables (missing: sync_runs, sync_warnings)"


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
@pytest.mark.parametrize(
    ("setup", "what"),
    [
        (("create table campaigns (id integer primary key, title text)",), FOREIGN),
        (("create table foo (x integer)", "create table campaigns (x integer)"), FOREIGN),
        (("create table api_pacing (k text, v text)",),
         "tables campaign-sync did not create (api_pacing)"),  # a later revision's name
        (("create view v_campaigns as select 1 as x",),
         "tables campaign-sync did not create (v_campaigns)"),
        ("ours without sync_runs and sync_warnings", PARTIAL),
        ("ours without campaign_stats_daily",  # a revision's tables without an older one's
         "only some of campaign-sync's tables (missing: v_push_performance_total.sent_optins_a, "
         "campaign_stats_daily)"),
    ],
)  # fmt: skip
def test_tables_named_like_ours_that_are_not_ours_are_refused_and_never_adopted(
    database: str,
    setup: tuple[str, ...] | str,
    what: str,
    request: pytest.FixtureRequest,
    tmp_path: Any,
    restore_logging: None,
) -> None:
    """Another tool's `campaigns` table was 'recognised' as revision 0001: --adopt
    recorded 0001, then failed ('no such table: sync_state'), and every command after
    asked for a migrate that could only fail again."""
    from sqlalchemy import text

    from tests.helpers import run

    url = (
        request.getfixturevalue("fresh_pg_url")
        if database == "postgresql"
        else f"sqlite:///{tmp_path / 'theirs.db'}"
    )
    if setup == "ours without sync_runs and sync_warnings":
        migrate.upgrade(url)
        statements: tuple[str, ...] = (
            "drop table alembic_version", "drop table sync_warnings", "drop table sync_runs"
        )  # fmt: skip
    elif setup == "ours without campaign_stats_daily":
        migrate.upgrade(url)
        statements = (
            "drop table alembic_version", "drop view v_push_performance_total",
            "drop view v_push_performance", "drop table campaign_stats_daily",
        )  # fmt: skip
    else:
        assert isinstance(setup, tuple)
        statements = setup
    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()
    env = {"DATABASE_URL": url, "BATCH_API_KEY": "k", "BATCH_REST_API_KEY": "r"}
    expected = (
        f"campaign-sync: the database holds {what}: neither migrate nor migrate --adopt can "
        "use it; use an empty database, or on PostgreSQL another schema "
        "(CAMPAIGN_SYNC_DB_SCHEMA)\n"
    )
    for command in (("migrate",), ("migrate", "--adopt"), ("status",), ("sync",), ("demo",)):
        result = run(*command, env=env)
        # Only our lines: in-process, the collector may log another test's leftover tasks.
        ours = [line for line in result.stderr.splitlines(True) if "campaign-sync" in line]
        assert (result.exit_code, ours) == (2, [expected]), command
        assert command == ("demo",) or result.stdout == ""  # demo's banner comes first
    assert migrate.current_revision(url) is None  # nothing recorded


def test_migrate_on_a_read_only_database_is_one_line(
    fresh_pg_url: str, restore_logging: None
) -> None:
    """A multi-line 'unexpected error: InternalError ... [SQL: CREATE TABLE ...]', exit 1."""
    from tests.helpers import run

    read_only = fresh_pg_url + "?options=-c%20default_transaction_read_only%3Don"
    result = run("migrate", env={"DATABASE_URL": read_only})
    assert result.exit_code == 2
    assert result.stderr.startswith("campaign-sync: database problem (")
    assert result.stderr.endswith("): cannot execute CREATE TABLE in a read-only transaction\n"), (
        result.stderr
    )
    assert result.stderr.count("\n") == 1


def test_a_schema_made_beforehand_needs_no_create_on_the_database(fresh_pg_url: str) -> None:
    """`create schema if not exists` asks for CREATE on the database even when the schema
    is there: a role given only the schema could not migrate (docs/deploy.md says it can)."""
    from sqlalchemy import text

    role = f"cs_schema_only_{os.getpid()}"
    database = make_url(fresh_pg_url).database
    admin = make_engine(fresh_pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"create role {role} login"))
        conn.execute(text(f'revoke create on database "{database}" from public'))
        conn.execute(text("create schema batch"))
        conn.execute(text(f"grant usage, create on schema batch to {role}"))
    try:
        as_role = make_url(fresh_pg_url).set(username=role).render_as_string(hide_password=False)
        migrate.upgrade(as_role, schema="batch")
        assert migrate.current_revision(as_role, "batch") == migrate.head_revision()
    finally:
        with admin.begin() as conn:
            conn.execute(text("drop schema batch cascade"))
            conn.execute(text(f"drop owned by {role}"))
            conn.execute(text(f"drop role {role}"))
        admin.dispose()


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_another_applications_alembic_version_is_not_blamed_on_a_newer_campaign_sync(
    database: str, request: pytest.FixtureRequest, tmp_path: Any, restore_logging: None
) -> None:
    """Another Alembic-managed application's revision ('ae1027a6acf') was reported as 'a
    newer version migrated it: run that version'."""
    from sqlalchemy import text

    from tests.helpers import run

    url = (
        request.getfixturevalue("fresh_pg_url")
        if database == "postgresql"
        else f"sqlite:///{tmp_path / 'theirs.db'}"
    )
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("create table alembic_version (version_num varchar(32) primary key)"))
        conn.execute(text("insert into alembic_version values ('ae1027a6acf')"))
    engine.dispose()
    expected = (
        "campaign-sync: the database's alembic_version records revision 'ae1027a6acf', which "
        "is not campaign-sync's (another application managed by Alembic uses this database): "
        "use an empty database, or on PostgreSQL another schema (CAMPAIGN_SYNC_DB_SCHEMA)\n"
    )
    env = {"DATABASE_URL": url, "BATCH_API_KEY": "k", "BATCH_REST_API_KEY": "r"}
    for command in (("migrate",), ("status",)):
        result = run(*command, env=env)
        ours = [line for line in result.stderr.splitlines(True) if "campaign-sync" in line]
        assert (result.exit_code, ours) == (2, [expected]), command


def test_every_transaction_through_pgbouncer_reads_in_utc(bounced_url: str) -> None:
    """The engine sets TimeZone once per connection; in transaction pooling each
    transaction may run on another server connection, which PgBouncer sets to the
    client's TimeZone (it tracks it per client). Year 1 in UTC is a year before 1 in
    New York: read in the database's zone it could not be a Python datetime."""
    set_database_time_zone(bounced_url, "America/New_York")
    engine = make_engine(bounced_url, pool_size=2)
    edge = text("select timestamptz '0001-01-01 00:00:00+00', current_setting('TimeZone')")
    for _ in range(6):
        with engine.connect() as conn:
            moment, zone = conn.execute(edge).one()
        assert (moment.year, zone) == (1, "UTC")
    engine.dispose()


@pytest.mark.parametrize(
    ("query", "idle"),
    [("", "30"), ("?keepalives_idle=5", "5")],
)
def test_connections_find_a_dead_database_host_and_the_url_wins(
    pg_server: Any, query: str, idle: str
) -> None:
    """libpq waits on a socket as long as the kernel does: a database host gone mid-pass
    held the pass for ever. TCP keepalives and tcp_user_timeout are on by default."""
    url = pg_server.admin_url + query
    engine = make_engine(url)
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        used = dbapi.info.get_parameters()
    engine.dispose()
    assert {k: used.get(k) for k in ("keepalives", "keepalives_idle", "tcp_user_timeout")} == {
        "keepalives": "1",
        "keepalives_idle": idle,
        "tcp_user_timeout": "60000",
    }
