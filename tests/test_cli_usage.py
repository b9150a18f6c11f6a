"""The command line as a person meets it, in-process (click's CliRunner): help, version,
option checks, one-line errors, settings flags and `migrate`'s one line."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest

from campaign_sync.cli import main
from campaign_sync.db.migrate import head_revision
from tests.helpers import run

COMMANDS = sorted(main.commands)
pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_works_on_every_command(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: main {command}")


def test_no_command_prints_the_help_and_exits_0() -> None:
    result = run()
    assert result.exit_code == 0
    assert "Usage: main [OPTIONS] COMMAND" in result.stdout or "Usage: main [OPTIONS]" in (
        result.stdout
    )
    for command in COMMANDS:
        assert f"  {command} " in result.stdout


def test_version_prints_the_package_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == "main, version 0.1.0\n"


def test_command_summaries_are_whole_sentences_not_cut() -> None:
    for name, command in main.commands.items():
        summary = command.get_short_help_str(limit=45)
        assert not summary.endswith("..."), f"{name}: {summary!r}"
        assert summary.endswith("."), f"{name}: {summary!r}"


def test_serve_help_names_the_interval_and_metrics_settings() -> None:
    help_text = " ".join(run("serve", "--help").stdout.split())
    for variable in (
        "CAMPAIGN_SYNC_INTERVAL_SECONDS",
        "CAMPAIGN_SYNC_METRICS_PORT",
        "CAMPAIGN_SYNC_METRICS_HOST",
        "CAMPAIGN_SYNC_CONFIG",
        "CAMPAIGN_SYNC_LOG_LEVEL",
    ):
        assert f"env var: {variable}" in help_text


def test_every_command_that_reads_settings_takes_config_and_log_level() -> None:
    reading = [name for name in COMMANDS if name != "simulate"]
    for name in reading:
        command = main.commands[name]
        commands = command.commands.values() if isinstance(command, click.Group) else [command]
        for leaf in commands:
            options = {option for param in leaf.params for option in param.opts}
            assert {"--config", "--log-level"} <= options, leaf.name


def test_every_simulate_option_has_help_text() -> None:
    missing = [p.name for p in main.commands["simulate"].params if not getattr(p, "help", None)]
    assert missing == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--push", "-3"], "Invalid value for '--push': -3 is not in the range 0<=x<=200000."),
        (["--fault-500", "1.5"], "Invalid value for '--fault-500': 1.5 is not in the range"),
        (["--port", "70000"], "Invalid value for '--port': 70000 is not in the range"),
        (["--rate-limit", "0"], "Invalid value for '--rate-limit': 0.0 is not in the range x>0."),
        (["--latency-ms", "nan"], "Invalid value for '--latency-ms': 'nan' is not a finite"),
        (["--hang-seconds", "inf"], "Invalid value for '--hang-seconds': 'inf' is not a finite"),
    ],
)
def test_simulate_refuses_bad_numbers_in_one_line(args: list[str], message: str) -> None:
    result = run("simulate", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"campaign-sync: {message}")
    assert result.stderr.count("\n") == 1
    assert result.stderr.endswith("(see main simulate --help)\n")


def test_simulate_on_a_busy_port_is_one_line_from_the_group() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("simulate", "--port", str(port))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"campaign-sync: cannot listen on 127.0.0.1:{port}: ")
    assert result.stderr.count("\n") == 1


def test_a_usage_error_of_any_command_is_one_line() -> None:
    result = run("sync", "--type", "email")
    assert result.exit_code == 2
    assert result.stderr == (
        "campaign-sync: Invalid value for '--type': 'email' is not one of 'push', 'in-app'. "
        "(see main sync --help)\n"
    )


def test_migrate_says_from_which_revision_to_which_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = run("migrate", env={"DATABASE_URL": url})
    assert first.exit_code == 0, first.output
    assert first.stdout == f"database schema from revision (empty) to {head_revision()} ({url})\n"
    assert first.stderr == ""
    again = run("migrate", env={"DATABASE_URL": url})
    assert again.stdout == f"database schema already at revision {head_revision()} ({url})\n"


def test_migrate_verbose_shows_alembic_steps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = run("migrate", "--verbose", "--log-level", "info", env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "Running upgrade  -> 0001" in result.stderr


def test_config_flag_is_read_by_every_command(tmp_path: Path) -> None:
    database = tmp_path / "from-config.db"
    config = tmp_path / "settings.toml"
    config.write_text(f'database_url = "sqlite:///{database}"\n')
    result = run("migrate", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert database.exists()
    status = run("status", "--json", "--config", str(config))
    assert status.exit_code == 0, status.output
    assert status.stdout == "[]\n"


def test_a_missing_config_file_names_the_flag(tmp_path: Path) -> None:
    result = run("status", "--config", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"campaign-sync: --config names {tmp_path / 'nope.toml'}, which does not exist\n"
    )


def test_log_level_flag_wins_over_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {"DATABASE_URL": url, "CAMPAIGN_SYNC_LOG_LEVEL": "debug"}
    assert run("migrate", "--log-level", "warning", env=env).exit_code == 0
    assert logging.getLogger().level == logging.WARNING
    assert run("migrate", env=env).exit_code == 0
    assert logging.getLogger().level == logging.DEBUG


def test_help_and_version_import_no_database_http_or_settings_library() -> None:
    probe = (
        "import sys\n"
        "from campaign_sync.cli import main\n"
        "for args in (['--help'], ['--version'], ['sync', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('sqlalchemy', 'alembic', 'httpx', 'pydantic', 'pydantic_settings', 'rich',\n"
        "         'psycopg', 'uvicorn', 'apscheduler', 'campaign_sync.config')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "[]\n"


def test_an_unreachable_database_from_the_config_file_is_named_without_its_password(
    tmp_path: Path,
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('database_url = "postgresql://sync:hunter2@127.0.0.1:1/none"\n')
    result = run("status", "--config", str(config))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "campaign-sync: database problem (DATABASE_URL=postgresql://sync:***@127.0.0.1:1/none): "
    )
    assert "hunter2" not in result.output and result.stderr.count("\n") == 1


def test_a_lost_database_connection_is_a_failure_not_bad_configuration() -> None:
    import sqlalchemy.exc

    from campaign_sync.cli import EXIT_FAILED, EXIT_USAGE, explain

    class Refused(Exception):
        def __init__(self, sqlstate: str | None, text: str) -> None:
            super().__init__(text)
            self.sqlstate = sqlstate

    def outcome(sqlstate: str | None, text: str) -> tuple[str, int] | None:
        error = sqlalchemy.exc.OperationalError("select 1", {}, Refused(sqlstate, text))
        return explain(error)

    lost = outcome("57P01", "terminating connection due to administrator command")
    assert lost is not None and lost[1] == EXIT_FAILED
    assert lost[0].endswith(": terminating connection due to administrator command")
    refused = outcome("28P01", "password authentication failed for user x")
    assert refused is not None and refused[1] == EXIT_USAGE


@pytest.mark.usefixtures("restore_logging")
def test_config_with_an_empty_path_exits_2_naming_the_flag() -> None:
    result = run("status", "--config", "")
    assert result.exit_code == 2, result.output
    assert "--config names no file (an empty path): name the TOML file" in result.output


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("command", "least"), [("simulate", 0), ("demo", 25)])
@pytest.mark.parametrize("count", [str(2**63), "1000000", "200001", "5", "-1"])
def test_generated_data_sets_have_a_size_that_can_be_built(
    command: str, least: int, count: str
) -> None:
    """`simulate --push 2**63` used to generate until memory ran out; `demo --push 5`
    ended in an IndexError (it changes campaigns among the first 21)."""
    if command == "simulate" and count == "5":
        return  # a valid size for the simulator
    result = run(command, "--push", count)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--push': {count} is not in the range {least}<=x<=200000" in (
        result.output
    )


@pytest.mark.usefixtures("restore_logging")
def test_a_config_file_named_by_the_variable_is_reported_by_the_variable() -> None:
    """click reads CAMPAIGN_SYNC_CONFIG into --config; its errors name the variable."""
    result = run("status", env={"CAMPAIGN_SYNC_CONFIG": "/nonexistent/settings.toml"})
    assert result.exit_code == 2, result.output
    assert (
        "CAMPAIGN_SYNC_CONFIG names /nonexistent/settings.toml, which does not exist"
        in result.output
    )
    result = run("status", "--config", "/nonexistent/settings.toml")
    assert "--config names /nonexistent/settings.toml, which does not exist" in result.output
    result = run("status", env={"CAMPAIGN_SYNC_CONFIG": "/tmp"})
    assert "CAMPAIGN_SYNC_CONFIG names /tmp, which is a directory: name a TOML file" in (
        result.output
    )


def test_a_database_error_that_is_no_configuration_problem_exits_1_in_one_line() -> None:
    """Only SQLite's bare DatabaseError ('file is not a database') is bad configuration
    (exit 2); a DataError after Batch took an update was reported as 'database problem',
    exit 2, which for update-in-app means nothing was sent. Such errors were then left
    unexpected, which printed SQLAlchemy's text, the SQL and its values with it (a
    review's find): one line, exit 1."""
    from sqlalchemy.exc import DatabaseError, DataError, IntegrityError

    from campaign_sync.cli import explain

    not_a_database = DatabaseError("select 1", None, Exception("file is not a database"))
    assert explain(not_a_database) is not None and explain(not_a_database)[1] == 2  # type: ignore[index]
    for failure, said in (
        (DataError("insert", {"payload": "secret"}, Exception("22P05 bad value")),
         "22P05 bad value"),
        (IntegrityError("i", {"payload": "secret"}, Exception("23505 duplicate")),
         "23505 duplicate"),
    ):  # fmt: skip
        explained = explain(failure)
        assert explained is not None
        message, code = explained
        assert code == 1 and message.endswith(f": {said}")
        assert message.startswith("database problem (") and "secret" not in message


@pytest.mark.parametrize("command", ["migrate", "status"])
@pytest.mark.parametrize(
    "kind", ["missing directory", "a file as directory", "a directory", "too long"]
)
def test_every_command_names_why_the_sqlite_file_cannot_be_used(
    command: str, kind: str, tmp_path: Path, restore_logging: None
) -> None:
    """migrate said only SQLite's 'unable to open database file' (the 300-character path
    whole), where every other command named the path and why."""
    from tests.helpers import run

    if kind == "missing directory":
        path = tmp_path / "nowhere" / "x.db"
        expected = (
            f"campaign-sync: the directory {tmp_path / 'nowhere'} of the SQLite file x.db does "
            "not exist (DATABASE_URL): name another file\n"
        )
    elif kind == "a file as directory":
        (tmp_path / "plain").write_text("")
        path = tmp_path / "plain" / "x.db"
        expected = (
            f"campaign-sync: {tmp_path / 'plain'}, where the SQLite file x.db would go, is no "
            "directory (DATABASE_URL): name another file\n"
        )
    elif kind == "a directory":
        path = tmp_path
        expected = (
            f"campaign-sync: {tmp_path} is a directory, not a SQLite file (DATABASE_URL): "
            "name another file\n"
        )
    else:
        path = tmp_path / ("a" * 300 + ".db")
        expected = ""
    result = run(command, env={"DATABASE_URL": f"sqlite:///{path}"})
    assert result.exit_code == 2
    if expected:
        assert result.stderr == expected
    else:
        assert result.stderr.startswith("campaign-sync: cannot use the path ")
        assert result.stderr.endswith(" characters): File name too long\n")


@pytest.mark.parametrize("command", ["migrate", "status", "sync", "demo"])
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (  # SQLAlchemy ignored it: a database meant read-only was written
            "?mode=ro",
            "campaign-sync: DATABASE_URL: Query string argument(s) 'mode' are not accepted by "
            "the pysqlite driver and are being ignored; SQLite URI arguments require that "
            "'uri=true' also be present in the URL.\n",
        ),
        (
            "?cache=shared&mode=ro",
            "campaign-sync: DATABASE_URL: Query string argument(s) 'cache', 'mode' are not "
            "accepted by the pysqlite driver and are being ignored; SQLite URI arguments "
            "require that 'uri=true' also be present in the URL.\n",
        ),
        (  # SQLite made an empty file named 'x.db?mode=ro' beside x.db
            "?mode=ro&uri=true",
            "campaign-sync: DATABASE_URL: with uri=true, SQLite reads the parameters only "
            "after a path starting with file: (sqlite:///file:{path}?...&uri=true); as written "
            "it would open a file named '{path}?mode=ro'\n",
        ),
        (
            "?timeout=abc",
            "campaign-sync: DATABASE_URL: a parameter of the SQLite driver has an unusable "
            "value: could not convert string to float: 'abc'\n",
        ),
        (
            "?check_same_thread=maybe",
            "campaign-sync: DATABASE_URL: a parameter of the SQLite driver has an unusable "
            "value: String is not true/false: 'maybe'\n",
        ),
    ],
)
def test_a_sqlite_query_string_the_driver_would_not_honour_is_refused(
    command: str, query: str, expected: str, tmp_path: Path, restore_logging: None
) -> None:
    """`sqlite:///x.db?mode=ro` printed SQLAlchemy's warning and went on writing the
    database; with `&uri=true` but no `file:` a new empty file named `x.db?mode=ro` was
    made. Nothing is created either way."""
    from tests.helpers import run

    path = tmp_path / "x.db"
    env = {
        "DATABASE_URL": f"sqlite:///{path}{query}",
        "BATCH_API_KEY": "live-key",
        "BATCH_REST_API_KEY": "rest-key",
        "BATCH_API_BASE_URL": "http://127.0.0.1:9",  # never asked: refused before
    }
    result = run(command, env=env)
    assert (result.exit_code, result.stderr) == (2, expected.format(path=path))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("query", ["?timeout=5", "?uri=true", "?mode=rwc&uri=true"])
def test_a_sqlite_query_string_the_driver_honours_is_accepted(
    query: str, tmp_path: Path, restore_logging: None
) -> None:
    from tests.helpers import run

    path = tmp_path / "x.db"
    database = f"file:{path}" if "mode" in query else str(path)
    result = run("migrate", env={"DATABASE_URL": f"sqlite:///{database}{query}"})
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["x.db"]


@pytest.mark.parametrize("query", ["?mode=ro", "?mode=ro&uri=true"])
def test_check_reports_a_sqlite_query_string_the_driver_would_not_honour(
    query: str, tmp_path: Path, restore_logging: None
) -> None:
    """check printed SQLAlchemy's warning and said the database was fine, or made an empty
    file named 'x.db?mode=ro' (a fresh review); it writes nothing."""
    from tests.helpers import run

    path = tmp_path / "x.db"
    assert run("migrate", env={"DATABASE_URL": f"sqlite:///{path}"}).exit_code == 0
    env = {
        "DATABASE_URL": f"sqlite:///{path}{query}",
        "BATCH_API_KEY": "live-key",
        "BATCH_REST_API_KEY": "rest-key",
        "BATCH_API_BASE_URL": "http://127.0.0.1:9",  # the keys' check fails: not our subject
    }
    result = run("check", env=env)
    assert result.exit_code == 2
    [line] = [line for line in result.stdout.splitlines() if "database" in line]
    assert line.startswith(f"FAIL  database sqlite:///{path}{query}: ")
    assert ("uri=true" in line) and "SAWarning" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["x.db"]


@pytest.mark.parametrize("command", ["check", "status"])
def test_a_missing_file_named_by_a_sqlite_uri_is_named_not_created(
    command: str, tmp_path: Path, restore_logging: None
) -> None:
    """`sqlite:///file:x.db?uri=true` (SQLite's URI filename) skipped the missing-file check:
    check made an empty x.db and said 'migrations pending' (a fresh review)."""
    from tests.helpers import run

    path = tmp_path / "x.db"
    env = {
        "DATABASE_URL": f"sqlite:///file:{path}?uri=true",
        "BATCH_API_KEY": "live-key",
        "BATCH_REST_API_KEY": "rest-key",
        "BATCH_API_BASE_URL": "http://127.0.0.1:9",
    }
    result = run(command, env=env)
    assert result.exit_code == 2
    assert f"{path} does not exist: run campaign-sync migrate" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_exception_a_trigger_raises_is_no_configuration_problem() -> None:
    """A trigger's RAISE EXCEPTION (SQLSTATE P0001) comes as a ProgrammingError, which was
    bad configuration, exit 2 (a review's find)."""
    from sqlalchemy.exc import ProgrammingError

    from campaign_sync.cli import explain

    class Raised(Exception):
        sqlstate = "P0001"

    explained = explain(ProgrammingError("insert", None, Raised("campaigns are frozen")))
    assert explained is not None and explained[1] == 1
    assert explained[0].endswith(": campaigns are frozen")
