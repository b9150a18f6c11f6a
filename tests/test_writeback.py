"""Write-back through Batch's update endpoint: safe payloads, refusals, conflicts, audit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, select, text

from campaign_sync.batch.endpoints import READ_ONLY_FIELDS, CampaignType
from campaign_sync.db.models import (
    campaign_sightings,
    campaign_updates,
    campaigns,
)
from campaign_sync.jsondoc import UnrepresentableNumber
from campaign_sync.simulator import Simulator, SimulatorServer
from campaign_sync.writeback import (
    UpdateOutcome,
    UsageError,
    apply_changes,
    check_changes,
    check_nested_fields,
    parse_changes,
    unknown_nested_fields,
    update_in_app,
    validate,
)
from tests.conftest import make_app, make_settings
from tests.pg import libpq_url
from tests.syncing import run_sync
from tests.test_cli import cli, cli_env

IN_APP = CampaignType.IN_APP


def api_made(simulator: Simulator, *, with_trigger: bool = True) -> str:
    details = simulator.store(IN_APP).details()
    return next(
        t
        for t, d in details.items()
        if d["from_api"] and ("trigger" in d or not with_trigger) and "landing" in d
    )


def _run_env(database_url: str, server: SimulatorServer) -> dict[str, str]:
    """The settings of `tests.helpers.run` for update-in-app against the simulator."""
    from tests.conftest import API_KEY, CANARY_REST_KEY

    return {
        "DATABASE_URL": database_url,
        "BATCH_API_BASE_URL": server.url,
        "BATCH_API_KEY": API_KEY,
        "BATCH_REST_API_KEY": CANARY_REST_KEY,
    }


@contextlib.contextmanager
def _installed(engine: Engine, made: list[str], dropped: list[str]) -> Iterator[None]:
    """Database objects of the database's own (a trigger, a constraint) while the block
    runs: `made` run before it, `dropped` after it, whatever it does."""
    with engine.begin() as conn:
        for statement in made:
            conn.execute(text(statement))
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in dropped:
                conn.execute(text(statement))


# A database of its own refusing every audit row (a trigger), made and dropped again.
_AUDITS_REFUSED = (
    [
        "create function refuse_audits() returns trigger language plpgsql as "
        "$$ begin raise exception 'the audit table is full'; end $$",
        "create trigger audit_full before insert on campaign_updates for each row "
        "execute function refuse_audits()",
    ],
    ["drop trigger audit_full on campaign_updates", "drop function refuse_audits()"],
)


def _slow_updates(simulator: Simulator, released: threading.Event | None = None) -> threading.Event:
    """Batch answers each update 1.5 s after it arrives, or, given `released`, 0.3 s after
    the test sets it (at most 30 s: on a loaded machine the test's signals came after
    1.5 s, once the update was answered); the event returned is set on arrival (the moment
    to send a signal to the command under test)."""
    arrived = threading.Event()

    async def slow_update(route: str, _request: Any) -> None:
        if route == "update in-app":
            arrived.set()
            if released is None:
                await asyncio.sleep(1.5)
                return
            for _ in range(3000):
                if released.is_set():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)

    simulator.hooks.append(slow_update)
    return arrived


def _ctrl_c_at_the_update(route: str, _request: Any) -> None:
    """A simulator hook: a SIGINT to this (test) process as an update reaches Batch."""
    if route == "update in-app":
        os.kill(os.getpid(), signal.SIGINT)


def dashboard_made(simulator: Simulator) -> str:
    return next(t for t, d in simulator.store(IN_APP).details().items() if not d["from_api"])


def update(
    engine: Engine, server: SimulatorServer, token: str, changes: dict[str, Any], **flags: bool
) -> UpdateOutcome:
    settings = make_settings(server.url, str(engine.url))
    return asyncio.run(update_in_app(engine, settings, make_app(), token, changes, **flags))


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(campaign_updates).order_by(campaign_updates.c.id))
        return [dict(row) for row in rows.mappings()]


@pytest.fixture
def synced(db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer) -> Engine:
    run_sync(pg_url, sim_server, [IN_APP])
    simulator.reset_stats()
    return db


def test_an_update_succeeds_and_the_database_shows_it_at_once(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    token = api_made(simulator)
    outcome = update(synced, sim_server, token, {"name": "Spring sale", "trigger.capping": 3})
    assert outcome.ok, outcome.message
    assert outcome.changed_fields == ["name", "trigger.capping"]
    in_batch = simulator.store(IN_APP).detail(token)
    assert in_batch is not None
    assert in_batch["name"] == "Spring sale" and in_batch["trigger"]["capping"] == 3
    with synced.connect() as conn:
        row = conn.execute(
            select(campaigns.c.name, campaigns.c.detail).where(campaigns.c.campaign_token == token)
        ).one()
    assert row.name == "Spring sale" and row.detail["trigger"]["capping"] == 3
    with synced.connect() as conn:
        versions = conn.execute(
            text(
                "select name from v_campaign_versions where campaign_token = :token "
                "order by version"
            ),
            {"token": token},
        ).all()
    assert [v.name for v in versions][-1] == "Spring sale"
    assert len(versions) == 2, "the history keeps the version before the update"
    assert versions[0].name != "Spring sale"
    with synced.connect() as conn:
        list_hash = conn.execute(
            select(campaigns.c.list_hash).where(campaigns.c.campaign_token == token)
        ).scalar()
    assert list_hash is not None, "the write-back wiped what the sweep knew"
    assert simulator.count("update in-app", 200) == 1
    audit = audit_rows(synced)[-1]
    assert audit["outcome"] == "succeeded" and audit["changed_fields"] == outcome.changed_fields
    assert audit["payload"]["name"] == "Spring sale"


def test_the_payload_carries_every_parameter_the_campaign_has(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    token = api_made(simulator)
    stored = simulator.store(IN_APP).detail(token)
    assert stored is not None
    outcome = update(synced, sim_server, token, {"live": not stored["live"]}, dry_run=True)
    assert outcome.payload is not None
    assert set(outcome.payload) == set(stored) - set(READ_ONLY_FIELDS)
    # And the simulator, which enforces Batch's rule, accepts it.
    assert update(synced, sim_server, token, {"live": not stored["live"]}).ok
    assert simulator.count("update in-app", 400) == 0


def test_a_dashboard_campaign_is_refused_before_any_request(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    outcome = update(synced, sim_server, dashboard_made(simulator), {"name": "Never sent"})
    assert not outcome.ok and "API_MISUSE" in outcome.message
    assert simulator.count() == 0
    assert audit_rows(synced)[-1]["outcome"] == "refused"


def test_unknown_and_deleted_tokens_are_refused_locally(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    unknown = update(synced, sim_server, "no-such-token", {"name": "Nope"})
    assert not unknown.ok and "no in-app campaign no-such-token" in unknown.message
    token = api_made(simulator)
    with synced.begin() as conn:
        conn.execute(
            campaigns.update()
            .where(campaigns.c.campaign_token == token)
            .values(deleted_at=campaigns.c.first_seen_at)
        )
    deleted = update(synced, sim_server, token, {"name": "Nope"})
    assert not deleted.ok and "deleted" in deleted.message
    assert simulator.count() == 0


def test_a_dry_run_makes_no_request(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    token = api_made(simulator)
    outcome = update(synced, sim_server, token, {"name": "Dry name"}, dry_run=True)
    assert outcome.ok and outcome.payload and outcome.payload["name"] == "Dry name"
    assert simulator.count() == 0
    assert audit_rows(synced)[-1]["outcome"] == "dry_run"


def test_a_campaign_stored_repaired_is_updated_and_keeps_batchs_own_text(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """A title with U+0000 is stored repaired (U+FFFD); compared with Batch's, every update
    of that campaign was 'a change made elsewhere', for ever, and --force failed writing
    its audit row (PostgreSQL stores no U+0000) after Batch had taken the update."""
    token = api_made(simulator)
    detail = simulator.store(IN_APP).detail(token)
    assert detail is not None
    detail["landing"]["contents"][0]["title"] = "A\u0000B"
    simulator.store(IN_APP).replace(token, detail)
    run_sync(pg_url, sim_server, [IN_APP])

    first = update(db, sim_server, token, {"name": "First rename"})
    assert first.ok, first.message
    again = update(db, sim_server, token, {"name": "Second rename"})  # the fresh one stored
    assert again.ok, again.message
    in_batch = simulator.store(IN_APP).detail(token)
    assert in_batch is not None and in_batch["name"] == "Second rename"
    assert in_batch["landing"]["contents"][0]["title"] == "A\u0000B"  # Batch's, not ours
    audit = audit_rows(db)[-1]
    assert audit["outcome"] == "succeeded"
    assert audit["payload"]["landing"]["contents"][0]["title"] == "A\ufffdB"

    simulator.store(IN_APP).change_inside_detail(token)  # a colleague edits the landing
    forced = update(db, sim_server, token, {"name": "Forced"}, force=True)
    assert forced.ok, forced.message
    assert [row["outcome"] for row in audit_rows(db)] == ["succeeded"] * 3
    with db.connect() as conn:
        stored = conn.execute(
            select(campaigns.c.detail).where(campaigns.c.campaign_token == token)
        ).scalar_one()
    assert stored["name"] == "Forced"
    assert stored["landing"]["contents"][0]["title"] == "A\ufffdB"


def test_numbers_no_python_type_holds_go_back_to_batch_as_the_numbers_they_are(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """An update of the name sent a targeting query's `1e400` (and an action's NaN) back
    to Batch as the strings "1e400" and "NaN": what the query matched changed, silently,
    in a field the user never touched (a review's find). The kind: every number the
    decoder keeps as its text (overflow, underflow, NaN and the infinities, more than
    4,300 digits), anywhere in the campaign."""
    token = api_made(simulator)
    detail = simulator.store(IN_APP).detail(token)
    assert detail is not None
    odd = {
        "over": UnrepresentableNumber("1e400"),
        "under": UnrepresentableNumber("1e-400"),
        "nan": UnrepresentableNumber("NaN"),
        "minus_infinity": UnrepresentableNumber("-Infinity"),
        "digits": UnrepresentableNumber("7" * 5000),
        "text": "1e400",  # Batch's string stays a string
    }
    detail["targeting"] = {"query": {"age": {"$gt": odd["over"]}}, "odd": [odd]}
    detail["time_to_live"] = UnrepresentableNumber("1e999")
    simulator.store(IN_APP).replace(token, detail)
    run_sync(pg_url, sim_server, [IN_APP])

    done = update(db, sim_server, token, {"name": "Renamed once"})
    assert done.ok, done.message
    in_batch = simulator.store(IN_APP).detail(token)
    assert in_batch is not None and in_batch["name"] == "Renamed once"
    assert in_batch["time_to_live"] == "1e999"
    assert type(in_batch["time_to_live"]) is UnrepresentableNumber  # a number, not a string
    [kept] = in_batch["targeting"]["odd"]
    assert kept == odd
    assert {key: type(value) for key, value in kept.items()} == {
        "over": UnrepresentableNumber,
        "under": UnrepresentableNumber,
        "nan": UnrepresentableNumber,
        "minus_infinity": UnrepresentableNumber,
        "digits": UnrepresentableNumber,
        "text": str,
    }
    assert type(in_batch["targeting"]["query"]["age"]["$gt"]) is UnrepresentableNumber


def test_a_stale_update_is_stopped_and_force_applies_it_on_top(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    token = api_made(simulator)
    simulator.store(IN_APP).change_inside_detail(token)  # a colleague edits the landing
    stale = update(synced, sim_server, token, {"name": "My rename"})
    assert not stale.ok and stale.conflict and "landing" in stale.conflict
    assert simulator.count("update in-app") == 0
    assert audit_rows(synced)[-1]["outcome"] == "conflict"

    forced = update(synced, sim_server, token, {"name": "My rename"}, force=True)
    assert forced.ok, forced.message
    in_batch = simulator.store(IN_APP).detail(token)
    assert in_batch is not None and in_batch["name"] == "My rename"
    assert in_batch["landing"]["contents"][0]["body"].startswith("Edited"), "colleague's edit lost"


def test_a_429_during_the_update_is_retried_safely(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    token = api_made(simulator)
    simulator.script("update in-app", [429, 503])
    outcome = update(synced, sim_server, token, {"name": "After a wait"})
    assert outcome.ok
    assert simulator.count("update in-app", 429) == 1
    assert simulator.count("update in-app", 503) == 1
    assert simulator.count("update in-app", 200) == 1


def test_an_update_batch_took_is_a_success_even_when_reading_it_back_fails(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """A 500 on the view after the update's 200 made the command fail (exit 1), with no
    audit row, while Batch held the change (a fresh review)."""
    token = api_made(simulator)
    simulator.script("view in-app", [200, *[500] * 8])  # the check before, then the read-back
    outcome = update(synced, sim_server, token, {"name": "Taken"}, force=False)
    assert outcome.ok, outcome.message
    assert outcome.message.startswith(f"updated in-app campaign {token} of app 'default': name")
    assert (
        "reading it back failed" in outcome.message and "run campaign-sync sync" in outcome.message
    )
    assert simulator.store(IN_APP).details()[token]["name"] == "Taken"
    audit = audit_rows(synced)[-1]
    assert (audit["outcome"], audit["campaign_token"]) == ("succeeded", token)


def test_a_failure_to_read_the_campaign_before_the_update_is_audited(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """README: every attempt is in campaign_updates; a 500 on the view before the update
    left none (a fresh review)."""
    token = api_made(simulator)
    simulator.script("view in-app", [500] * 8)
    outcome = update(synced, sim_server, token, {"name": "Never sent"})
    assert not outcome.ok
    assert outcome.message.startswith("could not read the campaign from Batch before updating")
    assert simulator.count("update in-app") == 0
    audit = audit_rows(synced)[-1]
    assert (audit["outcome"], audit["batch_status"]) == ("failed", 500)


def test_a_server_error_on_the_update_is_no_refusal(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """A 500 on the update, after every retry, read 'Batch refused the update: HTTP 500'."""
    token = api_made(simulator)
    simulator.script("update in-app", [500] * 8)
    outcome = update(synced, sim_server, token, {"name": "Not taken"})
    assert not outcome.ok and outcome.message.startswith("the update failed: ")
    assert audit_rows(synced)[-1]["outcome"] == "failed"


def test_batchs_refusal_is_shown_and_audited(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    token = api_made(simulator)
    simulator.script("update in-app", [400])
    outcome = update(synced, sim_server, token, {"name": "Refused"})
    assert not outcome.ok and "MALFORMED_PARAMETER (31)" in outcome.message
    audit = audit_rows(synced)[-1]
    assert audit["outcome"] == "failed"
    assert (audit["batch_status"], audit["batch_code"], audit["batch_type"]) == (
        400, 31, "MALFORMED_PARAMETER",
    )  # fmt: skip


def test_bad_changes_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="nothing to change"):
        parse_changes()
    with pytest.raises(UsageError, match="FIELD=JSON"):
        parse_changes(assignments=["no-equals"])
    for empty_part in ("trigger.=3", ".=3", "trigger..capping=3"):  # were sent, or ': not a field'
        with pytest.raises(UsageError, match="a field path with an empty part"):
            parse_changes(assignments=[empty_part])
    assert parse_changes(assignments=["trigger.capping=3", "name=Plain text"]) == {
        "trigger.capping": 3,
        "name": "Plain text",
    }
    with pytest.raises(UsageError, match="read-only"):
        apply_changes({"name": "abc"}, {"created_date": "x"})
    with pytest.raises(UsageError, match="is not an object"):
        apply_changes({"name": "abc", "trigger": 5}, {"trigger.capping": 1})


NOT_A_COUNT = "trigger.capping must be a whole number from 0 to 2147483647"
NOT_A_TOP_COUNT = "capping must be a whole number from 0 to 2147483647"


@pytest.mark.parametrize(
    ("payload", "problems"),
    [
        ({"name": "Sale", "capping": 0, "trigger": {"capping": 10}}, []),
        ({"name": "Sale", "capping": None, "trigger": {"capping": None}}, []),  # as Batch sends
        ({"name": "Sale", "trigger": {"when": "now"}}, []),
        ({"name": "Sale", "capping": -5}, ["capping must be a whole number from 0 to 2147483647"]),
        ({"name": "Sale", "trigger": {"capping": -1}}, [NOT_A_COUNT]),
        ({"name": "Sale", "trigger": {"capping": 2.5}}, [NOT_A_COUNT]),
        ({"name": "Sale", "trigger": {"capping": True}}, [NOT_A_COUNT]),
        ({"name": "Sale", "trigger": {"capping": "3"}}, [NOT_A_COUNT]),
        ({"name": "Sale", "capping": 1.5}, [NOT_A_TOP_COUNT]),
        ({"name": "Sale", "capping": False}, [NOT_A_TOP_COUNT]),
        ({"name": "Sale", "trigger": "soon"}, ["trigger must be an object, got text"]),
        # Words, not Python's type names ("labels must be list").
        ({"name": "Sale", "labels": "x"}, ["labels must be an array, got text"]),
        ({"name": "Sale", "end_date": 5}, ["end_date must be text, got a number"]),
        ({"name": "Sale", "live": 1}, ["live must be true or false, got a number"]),
        ({"name": "Sale", "priority": True}, ["priority must be text, got a boolean"]),
        ({"name": "Sale", "capping": 10**29}, ["capping must be a whole number from 0 to "
                                                "2147483647"]),
        ({"name": 123}, ["name must be text of at least 3 characters"]),  # said once
        # An object inside an object is checked as the top level's are (it was sent as is).
        ({"name": "Sale", "trigger": {"grace_period": "3 days"}},
         ["trigger.grace_period must be an object, got text"]),
        ({"name": "Sale", "trigger": {"grace_period": [{"evry": 1}]}},
         ["trigger.grace_period must be an object, got an array"]),
        ({"name": "Sale", "trigger": {"grace_period": None}}, []),
        # And the values inside them: the grace period's count, the texts.
        ({"name": "Sale", "trigger": {"grace_period": {"every": {"a": 1}, "unit": "HOURS"}}},
         ["trigger.grace_period.every must be a whole number from 0 to 2147483647"]),
        ({"name": "Sale", "trigger": {"grace_period": {"every": -2, "unit": 3}}},
         ["trigger.grace_period.unit must be text, got a number",
          "trigger.grace_period.every must be a whole number from 0 to 2147483647"]),
        ({"name": "Sale", "trigger": {"when": ["now"], "event": None}},
         ["trigger.when must be text, got an array"]),
        ({"name": "Sale", "landing": {"theme": True}}, ["landing.theme must be text, got a "
                                                        "boolean"]),
        ({"name": "Sale", "trigger": {"grace_period": {"every": 2, "unit": "HOURS"}}}, []),
    ],
)  # fmt: skip
def test_both_cappings_are_counts(payload: dict[str, Any], problems: list[str]) -> None:
    assert validate(payload) == problems


_OWN_NAME = "the campaign's own value, not one given: change it too, with --name"
_BAD_CAPPING = "trigger.capping must be a whole number from 0 to 2147483647"


@pytest.mark.parametrize(
    ("given", "problems"),
    [
        (["trigger.capping"], [f"name must be text of at least 3 characters ({_OWN_NAME})",
                               _BAD_CAPPING]),
        (["trigger"], [f"name must be text of at least 3 characters ({_OWN_NAME})",
                       _BAD_CAPPING]),  # given around it
        (["name", "trigger.when"], [
            "name must be text of at least 3 characters",
            f"{_BAD_CAPPING} (the campaign's own value, not one given: change it too, with "
            "--set trigger.capping=...)",
        ]),
        (["name.first"], ["name must be text of at least 3 characters",  # given inside it
                          f"{_BAD_CAPPING} (the campaign's own value, not one given: change it "
                          "too, with --set trigger.capping=...)"]),
    ],
)  # fmt: skip
def test_a_problem_with_a_value_not_given_says_it_is_the_campaigns_own(
    given: list[str], problems: list[str]
) -> None:
    """A stored name of two characters failed every update with "name must be text of at
    least 3 characters", as if the user had given it (review 3)."""
    payload = {"name": "ab", "trigger": {"when": "now", "capping": -1}}
    assert validate(payload, given) == problems


def test_a_stored_name_too_short_is_named_as_the_campaigns_own(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    token = api_made(simulator)
    with synced.begin() as conn:
        detail = conn.execute(
            select(campaigns.c.detail).where(campaigns.c.campaign_token == token)
        ).scalar_one()
        conn.execute(
            campaigns.update()
            .where(campaigns.c.campaign_token == token)
            .values(detail={**detail, "name": "ab"})
        )
    with pytest.raises(UsageError) as raised:
        update(synced, sim_server, token, {"live": False})
    assert str(raised.value) == f"name must be text of at least 3 characters ({_OWN_NAME})"
    assert simulator.count() == 0
    outcome = update(synced, sim_server, token, {"live": False, "name": "Fixed name"}, dry_run=True)
    assert outcome.ok, outcome.message


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        (
            {"assignments": ["custom_payload=NaN"]},
            "--set custom_payload: NaN is not JSON: give a number",
        ),
        # 1e400 was read as Python's infinity and refused as "the number Infinity".
        (
            {"assignments": ["landing.x=1e400"]},
            "--set landing.x: 1e400 is a number no 64-bit float holds",
        ),
        (
            {"assignments": ['trigger={"capping": -1e999}']},
            "--set trigger: -1e999 is a number no 64-bit float holds",
        ),
        (
            {"name": "ab\u0000cd"},
            "name: contains U+0000 (NUL), which PostgreSQL cannot store (a value campaign-sync "
            "cannot store as given: change it)",
        ),  # no "replaced": nothing is
        ({"assignments": ['name="x\\ud800"']}, "name: "),  # a lone surrogate
        ({"assignments": ["custom_payload=" + "[" * 3000 + "]" * 3000]}, "nested too deeply"),
        ({"assignments": ["custom_payload=" + "[" * 150 + "]" * 150]}, "custom_payload[0]"),
    ],
)
def test_a_change_campaign_sync_could_not_store_as_given_is_a_usage_error(
    changes: dict[str, Any], refused: str, tmp_path: Path
) -> None:
    """NaN, U+0000 or deep nesting in a change ended in 'unexpected error: DataError' (the
    audit's JSON) or RecursionError, exit 1, even with --dry-run; sent, the campaign was
    stored repaired, and every later update saw a change made elsewhere (a fresh review)."""
    with pytest.raises(UsageError) as error:
        parse_changes(**changes)
    assert refused in str(error.value)
    deep = tmp_path / "deep.json"
    deep.write_text('{"custom_payload": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(UsageError, match="JSON nested too deeply"):
        parse_changes(from_file=str(deep))


def test_no_secret_is_stored_in_the_audit(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    from tests.conftest import API_KEY, CANARY_REST_KEY

    update(synced, sim_server, api_made(simulator), {"name": "Audited"})
    dump = json.dumps(audit_rows(synced), default=str)
    assert CANARY_REST_KEY not in dump and API_KEY not in dump


def test_the_command_line_exit_codes(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer, tmp_path: Path
) -> None:
    env = cli_env(pg_url, sim_server)
    assert cli("sync", "--type", "in-app", env=env).returncode == 0
    token = api_made(simulator)
    dry = cli("update-in-app", token, "--name", "From the CLI", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["name"] == "From the CLI"
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"priority": "high"}))
    sent = cli(
        "update-in-app", token, "--name", "From the CLI", "--set", "trigger.capping=2",
        "--from-file", str(payload), env=env,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert simulator.store(IN_APP).detail(token)["priority"] == "high"  # type: ignore[index]
    refused = cli("update-in-app", dashboard_made(simulator), "--name", "Nope", env=env)
    assert refused.returncode == 1 and "API_MISUSE" in refused.stderr
    usage = cli("update-in-app", token, "--name", "ab", env=env)
    assert usage.returncode == 2 and "at least 3 characters" in usage.stderr
    nothing = cli("update-in-app", token, env=env)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr


def test_it_is_usable_from_a_script(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    env = cli_env(pg_url, sim_server)
    assert cli("sync", "--type", "in-app", env=env).returncode == 0
    token = api_made(simulator)
    script = (
        "from campaign_sync.writeback import update_in_app_sync\n"
        f"outcome = update_in_app_sync({token!r}, {{'name': 'Scripted'}})\n"
        "print(outcome.ok, outcome.changed_fields)\n"
    )
    import sys

    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "True ['name']", result.stderr


def test_the_app_is_named_when_several_are_configured() -> None:
    from campaign_sync.config import ConfigError
    from campaign_sync.writeback import pick_app

    ios, android = make_app("ios"), make_app("android")
    assert pick_app([ios], None) is ios
    assert pick_app([ios, android], "android") is android
    with pytest.raises(ConfigError, match="use --app"):
        pick_app([ios, android], None)
    with pytest.raises(ConfigError, match="no app named 'web'; configured apps: ios, android"):
        pick_app([ios, android], "web")


def test_a_sweep_during_the_write_back_is_not_undone(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    token = api_made(simulator)
    with synced.connect() as conn:
        campaign_id = conn.execute(
            select(campaigns.c.id).where(campaigns.c.campaign_token == token)
        ).scalar_one()

    def a_sweep_passes(route: str, request: Any) -> None:
        if route == "update in-app":  # a sweep marks the campaign seen meanwhile
            with synced.begin() as conn:
                conn.execute(
                    campaigns.update()
                    .where(campaigns.c.campaign_token == token)
                    .values(list_entry={"seen": "by sweep 99"})
                )
                conn.execute(
                    campaign_sightings.update()
                    .where(campaign_sightings.c.campaign_id == campaign_id)
                    .values(last_sweep_id=99)
                )

    simulator.hooks.append(a_sweep_passes)
    outcome = update(synced, sim_server, token, {"name": "Spring sale"})
    assert outcome.ok, outcome.message
    with synced.connect() as conn:
        row = conn.execute(
            select(campaigns.c.name, campaign_sightings.c.last_sweep_id, campaigns.c.list_entry)
            .join(campaign_sightings, campaign_sightings.c.campaign_id == campaigns.c.id)
            .where(campaigns.c.campaign_token == token)
        ).one()
    assert row == ("Spring sale", 99, {"seen": "by sweep 99"})


def test_a_field_in_app_campaigns_do_not_have_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UsageError) as raised:
        parse_changes(assignments=["trigerr.capping=3", "name=Fine"])
    assert str(raised.value) == (
        "trigerr: not a field of an in-app campaign; known fields: capping, custom_payload, "
        "end_date, labels, landing, live, local_end_date, local_start_date, name, priority, "
        "query, start_date, targeting, trigger (--allow-unknown-field sends it anyway)"
    )
    allowed = parse_changes(assignments=["trigerr.capping=3"], allow_unknown_field=True)
    assert allowed == {"trigerr.capping": 3}


_HELD = {
    "trigger": {"when": "now", "x_custom": 1},
    "landing": {"theme": "t"},
    "targeting": {"segments": []},
    "custom_payload": "{}",
}


@pytest.mark.parametrize(
    ("detail", "changes", "unknown"),
    [
        (_HELD, {"trigger.capacity": 5}, [("trigger", "capacity")]),
        (_HELD, {"trigger.capping": 5}, []),
        (_HELD, {"trigger": {"capacity": 5, "when": "now"}}, [("trigger", "capacity")]),
        (_HELD, {"trigger.x_custom": 2}, []),  # the campaign's own: Batch's, whatever it is
        (_HELD, {"trigger": {"x_custom": 2}}, []),
        (_HELD, {"trigger.grace_period": {"every": 2, "units": "HOURS"}},
         [("trigger.grace_period", "units")]),
        (_HELD, {"trigger.grace_period.evry": 2}, [("trigger.grace_period", "evry")]),
        (_HELD, {"trigger.grace_period.every": 2}, []),
        (_HELD, {"targeting.query": {"anything": {"goes": 1}}}, []),  # free form
        (_HELD, {"targeting": {"lang": ["fr"], "langs": ["fr"]}}, [("targeting", "langs")]),
        (_HELD, {"landing.contents": [{"whatever": 1}]}, []),  # free form
        (_HELD, {"landing.imag": "u", "landing.theme": "x"}, [("landing", "imag")]),
        (_HELD, {"custom_payload.flag": 1}, []),  # no object of known keys
        (_HELD, {"trigger": "not an object"}, []),  # its type is validate's to refuse
        ({}, {"trigger.when": "now"}, []),
        ({}, {"trigger.foo": 1, "landing": {"bar": 1}}, [("landing", "bar"), ("trigger", "foo")]),
        ({"trigger": "text"}, {"trigger.foo": 1}, [("trigger", "foo")]),
        # A key holding a dot is one key, not a path (it made a KeyError of the message).
        (_HELD, {"trigger": {"foo.bar": 1}}, [("trigger", "foo.bar")]),
        (_HELD, {"trigger": {"grace_period.every": 3}}, [("trigger", "grace_period.every")]),
        (_HELD, {"landing": {"a.b": {"c": 1}}}, [("landing", "a.b")]),
    ],
)  # fmt: skip
def test_a_key_inside_a_campaign_object_is_known_or_the_campaigns_own(
    detail: dict[str, Any], changes: dict[str, Any], unknown: list[tuple[str, str]]
) -> None:
    """Only the top level was checked: --set trigger.capacity=5 (for capping) was sent,
    and Batch keeps a field once an update added it (its update page)."""
    assert unknown_nested_fields(detail, changes) == unknown


def _update_while_held(
    engine: Engine,
    sim_server: SimulatorServer,
    token: str,
    changes: dict[str, Any],
    pg_url: str,
    held: str,
    *params: object,
) -> UpdateOutcome:
    """`update` in a thread while another session of `pg_url`'s database holds what `held`
    takes, released after 1.5 s (five times the short timeout the callers set); its
    outcome."""
    outcomes: list[UpdateOutcome] = []
    with psycopg.connect(libpq_url(pg_url)) as other:
        other.execute(held, params)
        worker = threading.Thread(
            target=lambda: outcomes.append(update(engine, sim_server, token, changes))
        )
        worker.start()
        time.sleep(1.5)
        other.rollback()
        worker.join(60)
    [outcome] = outcomes
    return outcome


def test_an_update_batch_took_is_recorded_however_long_a_lock_holds_the_row(
    synced: Engine,
    pg_url: str,
    simulator: Simulator,
    sim_server: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the lock timeout, an update Batch had taken failed to be stored and audited
    (exit 2, no campaign_updates row, the stored copy left behind Batch's) while another
    session held the campaign's row (a review's find). What Batch took is recorded,
    however long that waits."""
    from campaign_sync.db import session

    monkeypatch.setattr(session, "LOCK_TIMEOUT_SECONDS", 0.3)
    token = api_made(simulator)
    outcome = _update_while_held(
        synced, sim_server, token, {"name": "Locked"}, pg_url,
        "select 1 from campaigns where campaign_token = %s for update", token,
    )  # fmt: skip
    assert outcome.ok, outcome.message
    batch_copy = simulator.store(IN_APP).detail(token)
    assert batch_copy is not None and batch_copy["name"] == "Locked"
    with synced.connect() as conn:
        stored = conn.execute(
            select(campaigns.c.name).where(campaigns.c.campaign_token == token)
        ).scalar_one()
    assert stored == "Locked"
    assert [row["outcome"] for row in audit_rows(synced)] == ["succeeded"]


def test_with_force_a_key_batch_added_since_the_sync_is_the_campaigns_own(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """--force puts the changes on Batch's current copy, yet a key only that copy had
    (added in Batch since the last sync) was refused as unknown (a review's find)."""
    token = api_made(simulator)
    current = simulator.store(IN_APP).detail(token)
    assert current is not None
    simulator.store(IN_APP).replace(
        token, {**current, "trigger": {**current["trigger"], "delay": 1}}
    )
    for flags in ({"dry_run": True}, {}):  # the stored copy decides: it is what is sent
        with pytest.raises(UsageError) as refused:
            update(synced, sim_server, token, {"trigger.delay": 5}, **flags)
        assert "nor one the stored copy of this campaign has" in str(refused.value)
    assert simulator.count("update in-app") == 0
    forced = update(synced, sim_server, token, {"trigger.delay": 5}, force=True)
    assert forced.ok, forced.message
    sent = simulator.store(IN_APP).detail(token)
    assert sent is not None and sent["trigger"]["delay"] == 5
    with pytest.raises(UsageError) as unknown:  # still refused when Batch lacks it too
        update(synced, sim_server, token, {"trigger.delai": 5}, force=True)
    assert str(unknown.value).startswith(
        "trigger.delai: not a field in-app campaigns are known to have there, nor one this "
        "campaign as Batch holds it now has"
    )


def test_an_update_batch_took_is_audited_when_storing_its_copy_fails(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """A database error while storing Batch's copy after the update (a deadlock in the
    review; here a trigger of the database's own) lost the audit row, and the message
    never said Batch had taken the update."""
    token = api_made(simulator)
    with _installed(synced, [
        "create function refuse_updates() returns trigger language plpgsql as "
        "$$ begin raise exception 'campaigns are frozen today'; end $$",
        "create trigger frozen before update on campaigns for each row "
        "execute function refuse_updates()",
    ], ["drop trigger frozen on campaigns", "drop function refuse_updates()"]):  # fmt: skip
        outcome = update(synced, sim_server, token, {"name": "Taken by Batch"})
    assert outcome.ok
    assert outcome.message == (
        f"updated in-app campaign {token} of app 'default': name; storing Batch's copy failed "
        "(database problem: campaigns are frozen today): run campaign-sync sync before "
        "changing it again"
    )
    batch_copy = simulator.store(IN_APP).detail(token)
    assert batch_copy is not None and batch_copy["name"] == "Taken by Batch"
    [row] = audit_rows(synced)
    assert (row["outcome"], row["message"]) == ("succeeded", outcome.message)


def test_an_audit_refused_after_the_send_says_how_the_update_ended(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    from campaign_sync.writeback import UpdateNotRecorded

    token = api_made(simulator)
    with _installed(synced, *_AUDITS_REFUSED), pytest.raises(UpdateNotRecorded) as raised:
        update(synced, sim_server, token, {"name": "Taken by Batch"})
    assert str(raised.value) == (
        f"updated in-app campaign {token} of app 'default': name; but its campaign_updates "
        "row could not be written (database problem: the audit table is full)"
    )
    batch_copy = simulator.store(IN_APP).detail(token)
    assert batch_copy is not None and batch_copy["name"] == "Taken by Batch"


@pytest.mark.parametrize(
    "stop", ["SIGINT", "SIGTERM", "SIGINT, stderr's reader gone", "SIGHUP twice"]
)
def test_a_stop_after_the_send_waits_until_the_attempt_is_audited(
    synced: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer, stop: str
) -> None:
    """A Ctrl-C or SIGTERM while Batch answered the update lost its audit row and left the
    stored copy stale (a review's find): the first signal now waits until the attempt is
    recorded and said, then ends the command by that signal. With `2>&1 | tee log` the
    same Ctrl-C ends tee: writing the notice raised BrokenPipeError inside the signal
    handler, which unwound the update (no audit row, exit 1: another review's find). A
    closed terminal's SIGHUP, which an interactive shell sends its job twice, killed it
    before its audit row (a review's find): it is held the same way, the second not taken
    for a stop at once."""

    from tests.test_cli import cli_env, start_cli

    token = api_made(simulator)
    released = threading.Event()  # Batch answers once the signals are sent
    arrived = _slow_updates(simulator, released)
    process = start_cli(
        "update-in-app", token, "--name", "Sent then stopped", env=cli_env(pg_url, sim_server)
    )
    assert arrived.wait(60)
    signum = getattr(signal, stop.split(maxsplit=1)[0].rstrip(","))
    if stop == "SIGHUP twice":
        process.send_signal(signum)
        time.sleep(0.2)
        process.send_signal(signum)
        released.set()
        _, err = process.communicate(timeout=60)
        assert "the update is being sent to Batch: stopping once its outcome is recorded" in err
    elif stop.endswith("reader gone"):
        assert process.stderr is not None
        process.stderr.close()  # the reader of stderr is gone, as tee is
        process.send_signal(signum)
        released.set()
        process.wait(timeout=60)
    else:
        process.send_signal(signum)
        released.set()
        _, err = process.communicate(timeout=60)
        assert "the update is being sent to Batch: stopping once its outcome is recorded" in err
        # The outcome is said, then the stop takes effect (a held SIGTERM ended the process
        # silently, the outcome or UpdateNotRecorded unsaid: a review's find). The read-back
        # is skipped: it only spares a sync, and could hang a read timeout past a SIGKILL.
        assert (
            f"updated in-app campaign {token} of app 'default': name; reading it back failed "
            "(skipped: a stop was asked): run campaign-sync sync before changing it again"
        ) in err
        assert "aborted" not in err
    # Ended by the signal itself, as a shell expects of a program that cleaned up first
    # (130 or 143 there): a SIGINT used to exit 1 "aborted", read as a failed update.
    assert process.returncode == -signum
    [row] = audit_rows(synced)
    assert (row["outcome"], row["changed_fields"]) == ("succeeded", ["name"])
    batch_copy = simulator.store(IN_APP).detail(token)
    assert batch_copy is not None and batch_copy["name"] == "Sent then stopped"


@pytest.mark.parametrize(
    ("when", "stop"),
    [
        ("before the send", "SIGINT"),
        ("before the send, stderr's reader gone", "SIGINT"),
        ("a second one after it", "SIGINT"),
        ("a second one after it", "SIGTERM"),
    ],
)
def test_a_stop_that_cuts_an_update_short_ends_the_command_by_that_signal(
    synced: Engine,
    pg_url: str,
    simulator: Simulator,
    sim_server: SimulatorServer,
    when: str,
    stop: str,
) -> None:
    """A Ctrl-C before the send, or a second one while the attempt was being recorded,
    exited 1 "aborted": a shell loop over updates went on to the next (a review's find).
    Now "aborted", then the command ends by SIGINT (a shell's 130); with stderr's reader
    gone (`| tee`, ended by the same Ctrl-C) click's own write before its Abort raised
    BrokenPipeError, which exited 1; two SIGTERMs ended it by SIGINT (both later finds)."""
    from tests.test_cli import cli_env, start_cli

    token = api_made(simulator)
    arrived = threading.Event()
    before_the_send = when.startswith("before the send")

    async def slow(route: str, _request: Any) -> None:
        if route == ("view in-app" if before_the_send else "update in-app"):
            arrived.set()
            await asyncio.sleep(1.5)

    simulator.hooks.append(slow)
    process = start_cli(
        "update-in-app", token, "--name", "Never asked", env=cli_env(pg_url, sim_server)
    )
    assert arrived.wait(60)
    signum = getattr(signal, stop)
    if when.endswith("reader gone"):
        assert process.stderr is not None
        process.stderr.close()
        process.send_signal(signum)
        assert process.wait(timeout=60) == -signum
    else:
        process.send_signal(signum)
        if not before_the_send:
            time.sleep(0.3)
            process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        assert process.returncode == -signum, err
        assert err.endswith("campaign-sync: aborted\n") == (stop == "SIGINT"), err
    if before_the_send:
        assert simulator.store(IN_APP).detail(token)["name"] != "Never asked"  # type: ignore[index]


def test_a_copy_the_database_leaves_out_after_the_send_is_said(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """A campaign the database refuses is left out of a page with a warning, not raised:
    after an update Batch took, the stored copy stayed the one before and the message said
    plain success (a review's find: a check constraint; concurrent --force updates)."""
    token = api_made(simulator)
    with _installed(
        synced,
        ["alter table campaigns add constraint no_forbidden check (name <> 'Forbidden name')"
         " not valid"],
        ["alter table campaigns drop constraint no_forbidden"],
    ):  # fmt: skip
        outcome = update(synced, sim_server, token, {"name": "Forbidden name"})
    assert outcome.ok
    assert outcome.message.endswith(
        "; storing Batch's copy failed (the stored copy is not Batch's answer: the database "
        "left it out (a warning is logged), or another update or a sync stored another one "
        "meanwhile): run campaign-sync sync before changing it again"
    )
    [row] = audit_rows(synced)
    assert row["message"] == outcome.message


def test_after_the_send_a_statement_timeout_of_the_database_does_not_cut_the_wait(
    synced: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """Only lock_timeout was lifted: a statement_timeout of the role's or the database's
    still cut the wait for the audit after the send (UpdateNotRecorded; a review's find)."""
    from campaign_sync.db.session import make_engine

    token = api_made(simulator)
    timed = make_engine(pg_url, connect_args={"options": "-c statement_timeout=300"})
    try:
        outcome = _update_while_held(
            timed, sim_server, token, {"name": "Held"}, pg_url,
            "lock table campaign_updates in share mode",
        )  # fmt: skip
    finally:
        timed.dispose()
    assert outcome.ok, outcome.message
    assert [row["outcome"] for row in audit_rows(synced)] == ["succeeded"]


def test_a_database_refusing_a_dry_runs_audit_is_one_line(
    synced: Engine,
    pg_url: str,
    simulator: Simulator,
    sim_server: SimulatorServer,
    restore_logging: None,
) -> None:
    """An IntegrityError of the database's own printed SQLAlchemy's text, the SQL and the
    payload with it, as an unexpected error (a review's find)."""
    from tests.helpers import run

    token = api_made(simulator)
    with _installed(
        synced,
        ["alter table campaign_updates add constraint no_dry_runs check (outcome <> 'dry_run')"
         " not valid"],
        ["alter table campaign_updates drop constraint no_dry_runs"],
    ):  # fmt: skip
        result = run("update-in-app", token, "--name", "Dry", "--dry-run",
                     env=_run_env(pg_url, sim_server))  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith("campaign-sync: database problem (")
    assert 'violates check constraint "no_dry_runs"' in result.stderr
    assert "[SQL" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_dry_run_waits_a_bounded_time_for_a_lock_on_the_audit(
    synced: Engine,
    pg_url: str,
    simulator: Simulator,
    sim_server: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every audit waited without limit, so a dry run (nothing sent) hung while another
    session held campaign_updates (a review's find); only what Batch may have taken waits
    so."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    from campaign_sync.db import session

    monkeypatch.setattr(session, "LOCK_TIMEOUT_SECONDS", 0.3)
    token = api_made(simulator)
    bounded = session.make_engine(pg_url, lock_timeout=True)
    dsn = libpq_url(pg_url)
    try:
        with psycopg.connect(dsn) as admin:
            admin.execute("lock table campaign_updates in access exclusive mode")
            with pytest.raises(OperationalError) as raised:
                update(bounded, sim_server, token, {"name": "Dry run"}, dry_run=True)
            admin.rollback()
    finally:
        bounded.dispose()
    assert "lock timeout" in str(raised.value)
    assert simulator.count() == 0


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ({"name": "Spring\u0000sale"}, "name: contains U+0000 (NUL), which PostgreSQL cannot "
         "store (a value campaign-sync cannot store as given: change it)"),
        ({"custom_payload": {"a": float("nan")}}, "custom_payload.a: the number NaN fits no "
         "64-bit float or integer (a value campaign-sync cannot store as given: change it)"),
        ({"trigger": {}, "trigger.capping": 3}, "changes gives both trigger and "
         "trigger.capping: keep one, or give trigger.capping inside the value for trigger"),
        ({"trigger..capping": 3}, "changes 'trigger..capping': a field path with an empty "
         "part or spaces around one"),
        ({"trigerr.capping": 3}, "trigerr: not a field of an in-app campaign; known fields: "
         "capping, custom_payload, end_date, labels, landing, live, local_end_date, "
         "local_start_date, name, priority, query, start_date, targeting, trigger "
         "(--allow-unknown-field sends it anyway)"),
        ({}, "nothing to change: give at least one field path and its value"),
        ({"trigger": {1: "x"}}, "changes: the key 1 in trigger is not text (JSON keys are "
         "text)"),
        ({"custom_payload": {"a": [{2: "y"}]}}, "changes: the key 2 in custom_payload.a is "
         "not text (JSON keys are text)"),
    ],
)  # fmt: skip
def test_the_python_api_checks_changes_as_the_command_does(
    changes: dict[str, Any], refused: str
) -> None:
    """update_in_app_sync sent what the command refuses: a NUL (sent, then stored
    repaired), NaN (a bare ValueError), a path inside another (a review's find)."""
    with pytest.raises(UsageError) as raised:
        check_changes(changes)
    assert str(raised.value) == refused


@pytest.mark.parametrize(
    ("key", "named"), [("", '""'), ("a\nb", '"a\\nb"'), ("a\tb", '"a\\tb"'), (" c", '" c"')]
)
def test_an_unprintable_empty_or_spaced_key_inside_an_object_is_named_quoted(
    key: str, named: str
) -> None:
    """A newline in a key split the one-line message in two (a review's find)."""
    with pytest.raises(UsageError) as raised:
        check_nested_fields(_HELD, {"trigger": {key: 1}})
    assert str(raised.value).startswith(f"{named} in trigger: not a field")
    assert "\n" not in str(raised.value)


def test_a_key_holding_a_dot_is_named_as_one_key() -> None:
    with pytest.raises(UsageError) as raised:
        check_nested_fields(_HELD, {"trigger": {"grace_period.every": 3}})
    assert str(raised.value).startswith(
        '"grace_period.every" in trigger: not a field in-app campaigns are known to have there'
    )


def test_an_unknown_key_inside_trigger_is_refused_before_batch_is_asked(
    synced: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    from tests.helpers import run

    token = api_made(simulator)
    env = _run_env(pg_url, sim_server)
    refused = run("update-in-app", token, "--set", "trigger.capacity=5", env=env)
    assert refused.exit_code == 2
    assert refused.stderr.startswith("campaign-sync: trigger.capacity: not a field in-app")
    with pytest.raises(UsageError) as raised:
        update(synced, sim_server, token, {"trigger.capacity": 5})
    assert str(raised.value) == (
        "trigger.capacity: not a field in-app campaigns are known to have there, nor one the "
        "stored copy of this campaign has; known fields: trigger: capping, event, "
        "grace_period, label, when (Batch keeps a field once an update added it; "
        "--allow-unknown-field sends it anyway)"
    )
    assert simulator.count() == 0 and audit_rows(synced) == []
    allowed = update(
        synced, sim_server, token, {"trigger.capacity": 5}, dry_run=True, allow_unknown_field=True
    )
    assert allowed.ok, allowed.message
    assert allowed.payload is not None and allowed.payload["trigger"]["capacity"] == 5


def test_a_push_token_is_told_batch_only_updates_in_app_campaigns(
    db: Engine,
    pg_url: str,
    simulator: Simulator,
    sim_server: SimulatorServer,
    restore_logging: None,
) -> None:
    from tests.helpers import run

    run_sync(pg_url, sim_server, [CampaignType.PUSH])
    simulator.reset_stats()
    push_token = next(iter(simulator.store(CampaignType.PUSH).details()))
    env = _run_env(pg_url, sim_server)
    refused = run("update-in-app", push_token, "--name", "Nope", env=env)
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"campaign-sync: {push_token} is a push campaign: Batch only updates in-app campaigns\n"
    )
    assert simulator.count() == 0
    assert [row["outcome"] for row in audit_rows(db)] == ["refused"]
    unknown = run("update-in-app", push_token, "--set", "colour=1", env=env)
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("campaign-sync: colour: not a field of an in-app campaign")


def test_a_database_that_cannot_record_the_update_stops_it_before_batch_gets_it(
    fresh_pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """A read-only database (a replica's URL): Batch took the change, then the audit row
    and the fresh detail could not be written, and the next update took our own change
    for one made elsewhere."""
    from campaign_sync.config import ConfigError
    from campaign_sync.db import migrate
    from campaign_sync.db.session import make_engine

    migrate.upgrade(fresh_pg_url)
    run_sync(fresh_pg_url, sim_server, [IN_APP])
    token = api_made(simulator)
    before = simulator.store(IN_APP).detail(token)
    engine = make_engine(fresh_pg_url)
    with engine.connect() as conn:
        conn.execute(
            text(f'alter database "{engine.url.database}" set default_transaction_read_only = on')
        )
        conn.commit()
    engine.dispose()
    engine = make_engine(fresh_pg_url)
    simulator.reset_stats()
    with pytest.raises(ConfigError, match=r"nothing was sent: .* accepts no writes"):
        update(engine, sim_server, token, {"name": "Not recorded"})
    engine.dispose()
    assert simulator.count("update in-app") == 0
    assert simulator.store(IN_APP).detail(token) == before


@pytest.mark.parametrize(
    ("changes", "file", "refused"),
    [
        # Broken JSON was taken as text, then refused for its type ("labels must be list").
        ({"assignments": ['labels=["a",']}, None,
         "--set labels: not valid JSON (Expecting value: line 1 column 6 (char 5)); a value "
         "starting with [, { or \" must be JSON"),
        ({"assignments": ['name="Spring']}, None, "--set name: not valid JSON (Unterminated"),
        # A field given twice: the last silently won.
        ({"name": "Hello", "assignments": ["name=Other"]}, None,
         "--set name and --name: both change name; keep one"),
        ({"assignments": ["name=One", "name=Two"]}, None,
         "--set name is given twice: both change name; keep one"),
        ({"live": "true"}, '{"live": false}', "--live: both change live; keep one"),
        ({}, '{"capping": 1e999}', ": 1e999 is a number no 64-bit float holds"),
        # Overlapping paths: the object given last dropped the capping given first.
        ({"assignments": ["trigger.capping=5", 'trigger={"when": "NOW"}']}, None,
         "--set trigger.capping and --set trigger both change trigger.capping: keep one, or "
         "give trigger.capping inside the value for trigger"),
        ({"assignments": ["trigger.capping=9"]}, '{"trigger": {"when": "NOW"}}',
         "both change trigger.capping"),
        # A part with spaces sent a key " capping"; an empty one in a file built a "" key.
        ({"assignments": ["trigger. capping=3"]}, None,
         "--set 'trigger. capping': a field path with an empty part or spaces around one"),
        ({}, '{"trigger..capping": 3}', "a field path with an empty part or spaces around one"),
        # A key twice in one object: json kept the last silently.
        ({"assignments": ['trigger={"capping": 1, "capping": 2}']}, None,
         "--set trigger: the key 'capping' is given twice in one object"),
        ({}, '{"name": "abcd", "name": "efgh"}', "the key 'name' is given twice in one object"),
        ({}, '{"trigger": {"when": "NOW"}, "trigger.capping": 2}',
         "changes.json gives both trigger and trigger.capping: keep one"),
        # 1e-400 was sent as 0.0; 4,301 digits fell to plain text and were sent as a string.
        ({"assignments": ["custom_payload={\"x\": 1e-400}"]}, None,
         "--set custom_payload: 1e-400 is a number no 64-bit float holds"),
        ({"assignments": ["custom_payload={\"n\": " + "9" * 4301 + "}"]}, None,
         "--set custom_payload: a number of 4301 digits is too long"),
    ],
)  # fmt: skip
def test_a_change_given_twice_or_as_broken_json_is_refused_in_words(
    changes: dict[str, Any], file: str | None, refused: str, tmp_path: Path
) -> None:
    if file is not None:
        path = tmp_path / "changes.json"
        path.write_text(file)
        changes = {**changes, "from_file": str(path)}
    with pytest.raises(UsageError) as error:
        parse_changes(**changes)
    assert refused in str(error.value)
    assert parse_changes(assignments=["name=3rd wave", "trigger.capping=2"]) == {
        "name": "3rd wave",
        "trigger.capping": 2,
    }  # text that is no JSON and does not look like it is still taken as is


def test_a_changes_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Some editors write UTF-8 with a byte-order mark: it was refused as no JSON."""
    path = tmp_path / "changes.json"
    path.write_bytes(b'\xef\xbb\xbf{"name": "Spring sale"}')
    assert parse_changes(from_file=str(path)) == {"name": "Spring sale"}


@pytest.mark.parametrize(
    ("kind", "refused"),
    [
        ("endless device", "holds more than 10485760 bytes: no campaign's changes are that long"),
        ("silent pipe", "nothing came within 10 s (a pipe no one writes to?)"),
        ("directory", "is a directory: name a JSON file"),
        ("missing", "cannot be read: No such file or directory"),
        ("too large", "holds more than 10485760 bytes"),
    ],
)
def test_a_changes_file_that_never_ends_or_never_comes_is_refused(
    kind: str, refused: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--from-file /dev/zero` was read until the machine's memory ran out (7 GB in 8 s),
    and a FIFO no one writes to waited forever (a newcomer's find); the REST key's file
    had these bounds already (config.read_at_most), now shared."""
    import campaign_sync.config as config

    monkeypatch.setattr(config, "KEY_PIPE_WAIT_SECONDS", 0.2)
    named = {
        "endless device": "/dev/zero",
        "silent pipe": str(tmp_path / "fifo"),
        "directory": str(tmp_path),
        "missing": str(tmp_path / "none.json"),
        "too large": str(tmp_path / "big.json"),
    }[kind]
    if kind == "silent pipe":
        os.mkfifo(named)
        writer = os.open(named, os.O_RDWR)  # held open, never written: the pipe stays silent
    if kind == "too large":
        Path(named).write_text('{"name": "' + "x" * (10 * 1024 * 1024) + '"}')
    try:
        with pytest.raises(UsageError) as error:
            parse_changes(from_file=named)
    finally:
        if kind == "silent pipe":
            os.close(writer)
    assert refused.replace("10 s", "0.2 s") in str(error.value)
    # a pipe that does give its document is read, as /dev/stdin or <(jq ...) would be
    read, write = os.pipe()
    os.write(write, b'{"name": "From a pipe"}')
    os.close(write)
    try:
        assert parse_changes(from_file=f"/dev/fd/{read}") == {"name": "From a pipe"}
    finally:
        os.close(read)


def test_a_changes_file_from_a_terminal_waits_and_a_stalled_pipe_says_what_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--from-file /dev/stdin` typed at a terminal was refused after 10 s of silence, what
    was typed dropped, as "nothing came" (a review's find): a terminal is waited for;
    a pipe that gave part of its content and then nothing says how much came."""
    import pty

    import campaign_sync.config as config

    monkeypatch.setattr(config, "KEY_PIPE_WAIT_SECONDS", 0.2)
    leader, follower = pty.openpty()

    def typing() -> None:
        os.write(leader, b'{"name":\n')
        time.sleep(0.6)  # a person's pause, longer than a pipe's wait
        os.write(leader, b'"typed"}\n\x04')  # Ctrl-D at the start of a line: the end

    typist = threading.Thread(target=typing)
    typist.start()
    try:
        assert parse_changes(from_file=os.ttyname(follower)) == {"name": "typed"}
    finally:
        typist.join()
        os.close(leader)
        os.close(follower)
    # a terminal no one types into (`docker run -t`) is given up on too, after longer
    monkeypatch.setattr(config, "TERMINAL_WAIT_SECONDS", 0.3)
    leader, follower = pty.openpty()
    try:
        with pytest.raises(UsageError) as silent:
            parse_changes(from_file=os.ttyname(follower))
    finally:
        os.close(leader)
        os.close(follower)
    assert str(silent.value).endswith(": nothing came within 0.3 s (end the input with Ctrl-D)")
    read, write = os.pipe()
    os.write(write, b'{"name":')  # and the writer keeps the pipe open
    try:
        with pytest.raises(UsageError) as stalled:
            parse_changes(from_file=f"/dev/fd/{read}")
    finally:
        os.close(read)
        os.close(write)
    assert str(stalled.value) == (
        f"--from-file /dev/fd/{read}: 8 bytes came, then nothing for 0.2 s (a writer that stopped?)"
    )


def test_a_change_of_type_alone_is_a_change() -> None:
    """custom_payload.flag=1 over a stored true was reported as no field changed (true == 1
    in Python), though Batch then held 1 (a review's find)."""
    stored = {"name": "Sale", "custom_payload": {"flag": True}, "capping": 2}
    _, changed = apply_changes(stored, {"custom_payload.flag": 1, "capping": 2.0})
    assert changed == ["capping", "custom_payload.flag"]
    _, same = apply_changes(stored, {"custom_payload.flag": True, "capping": 2})
    assert same == []


def test_a_stop_held_after_the_send_is_handed_back_and_cuts_the_retries_short(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    """In-process (the Python API's way): a Ctrl-C while Batch answers the update is held,
    handed back in `stopped_by` (update_in_app_sync raised it before returning, so a
    script never saw the outcome), and cuts what may wait short: the send's retries'
    backoffs, and the read-back, skipped (a held SIGTERM waited 63 s of its retries, then
    30 s of its read timeout, past an orchestrator's SIGKILL: two reviews' finds)."""

    token = api_made(simulator)
    simulator.script("view in-app", [200, 500, 500, 500, 500])  # current, then read-backs

    simulator.hooks.append(_ctrl_c_at_the_update)
    outcome = update(synced, sim_server, token, {"name": "Held stop"})
    assert outcome.ok and outcome.stopped_by == signal.SIGINT
    assert outcome.message.endswith(
        "reading it back failed (skipped: a stop was asked): run campaign-sync sync before "
        "changing it again"
    )
    assert simulator.count("view in-app") == 1  # the view before the update, no read-back
    assert [row["outcome"] for row in audit_rows(synced)] == ["succeeded"]


def test_a_stop_held_during_the_sends_retries_ends_them_and_is_audited(
    synced: Engine, simulator: Simulator, sim_server: SimulatorServer
) -> None:

    token = api_made(simulator)
    simulator.script("update in-app", [500, 500, 500])

    simulator.hooks.append(_ctrl_c_at_the_update)
    outcome = update(synced, sim_server, token, {"name": "Held stop"})
    assert not outcome.ok and outcome.stopped_by == signal.SIGINT
    assert outcome.message == (
        "stopped while the update was being tried again after a failure: Batch may or may "
        "not have taken it; run campaign-sync sync, then look at the campaign"
    )
    assert simulator.count("update in-app") == 1  # the backoff ended at once, no retry
    assert [row["outcome"] for row in audit_rows(synced)] == ["failed"]


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_held_when_the_audit_is_refused_acts_after_saying_so(
    synced: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer, stop: str
) -> None:
    """A held SIGTERM was lost when the audit was refused (exit 1 instead of the stop); a
    held SIGINT exited 1 "aborted" instead of ending the command by the signal."""

    from tests.test_cli import cli_env, start_cli

    token = api_made(simulator)
    arrived = _slow_updates(simulator)
    with _installed(synced, *_AUDITS_REFUSED):
        process = start_cli("update-in-app", token, "--name", "Unrecorded",
                            env=cli_env(pg_url, sim_server))  # fmt: skip
        assert arrived.wait(60)
        process.send_signal(getattr(signal, stop))
        _, err = process.communicate(timeout=60)
    assert "campaign_updates row could not be written (database problem: the audit table" in err
    assert process.returncode == -getattr(signal, stop)
    assert "aborted" not in err


def test_a_signal_the_process_ignores_stays_ignored_while_held() -> None:
    """held_until_recorded replaced an ignored SIGINT (`trap '' INT`, a background job) with
    its own: a second one then raised KeyboardInterrupt before the audit (a review's
    find)."""

    from campaign_sync.signals import held_until_recorded

    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        held: list[int] = []
        with held_until_recorded("notice", held):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # held instead
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and held == []
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_dry_runs_body_shows_batchs_reordering_and_c1_characters_as_json_escapes(
    pg_url: str,
    db: Engine,
    simulator: Simulator,
    sim_server: SimulatorServer,
    restore_logging: None,
) -> None:
    """The body was printed with ensure_ascii=False: a name holding U+202E (which reorders
    what follows on a terminal) or U+009B (a one-character CSI) reached stdout raw (a
    review's find). JSON escapes keep the body's value."""
    from tests.helpers import run

    token = api_made(simulator)
    detail = simulator.store(IN_APP).detail(token)
    assert detail is not None
    detail["name"] = "Sale \u202eevil\u009b2J \x1b[31m"
    simulator.store(IN_APP).replace(token, detail)
    run_sync(pg_url, sim_server, [IN_APP])
    result = run("update-in-app", token, "--set", "capping=3", "--dry-run",
                 env=_run_env(pg_url, sim_server))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert not any(c in result.stdout for c in "\u202e\u009b\x1b")
    assert '"name": "Sale \\u202eevil\\u009b2J \\u001b[31m"' in result.stdout
    body = json.loads(result.stdout[result.stdout.index("{") : result.stdout.rindex("}") + 1])
    assert body["name"] == "Sale \u202eevil\u009b2J \x1b[31m"
