"""The sync pass, against the simulator and a real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.db.models import campaigns, metadata, sync_runs, sync_state
from campaign_sync.db.session import make_engine
from campaign_sync.simulator import Simulator, SimulatorServer
from tests.syncing import by_type, content_snapshot, count, run_sync

PUSH, IN_APP = CampaignType.PUSH, CampaignType.IN_APP


def gmt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


def stored_rows(engine: Engine, table_name: str, token: str) -> list[dict[str, Any]]:
    table = metadata.tables[table_name]
    order = [c for c in table.primary_key.columns]
    with engine.connect() as conn:
        rows = conn.execute(
            select(table)
            .join(campaigns, campaigns.c.id == table.c.campaign_id)
            .where(campaigns.c.campaign_token == token)
            .order_by(*order)
        )
        return [dict(row) for row in rows.mappings()]


def campaign_row(engine: Engine, token: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(campaigns).where(campaigns.c.campaign_token == token))
        return dict(row.mappings().one())


def test_first_pass_stores_every_campaign_field_by_field(
    any_db_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    results = by_type(run_sync(any_db_url, sim_server))
    assert {r.status for r in results.values()} == {"succeeded"}
    assert results[PUSH].counts.campaigns_inserted == 60
    assert results[IN_APP].counts.campaigns_inserted == 40
    engine = make_engine(any_db_url)
    for token, detail in simulator.store(PUSH).details().items():
        row = campaign_row(engine, token)
        assert row["app"] == "default" and row["campaign_type"] == "push"
        assert row["detail"] == detail
        assert row["name"] == detail["name"]
        assert row["live"] is detail["live"] and row["from_api"] is detail["from_api"]
        assert row["dev_only"] is detail["dev_only"]
        assert row["created_date"] == gmt(detail["created_date"])
        assert row["push_time"] == gmt(detail.get("push_time"))
        local = detail.get("local_push_time")
        assert row["local_push_time"] == (datetime.fromisoformat(local) if local else None)
        assert row["deeplink"] == detail.get("deeplink")
        payload = detail.get("custom_payload")
        if payload is not None:
            try:
                expected_payload = json.loads(payload)
            except ValueError:
                expected_payload = payload
            assert row["custom_payload"] == expected_payload
        assert row["capping"] == detail.get("capping")
        assert row["time_to_live"] == detail.get("time_to_live")
        assert row["labels"] == detail.get("labels")
        assert row["gcm_collapse_key"] == detail.get("gcm_collapse_key")
        recurrence = detail.get("recurrence") or {}
        assert row["recurrence_repeat_unit"] == recurrence.get("repeat_unit")
        assert row["recurrence_repeat_frequency"] == recurrence.get("repeat_frequency")
        assert row["recurrence_end_date"] == gmt(recurrence.get("end_date"))
        assert row["deleted_at"] is None and row["detail_fetched_at"] is not None
        stored_messages = stored_rows(engine, "messages", token)
        assert [(m["language"], m["title"], m["body"]) for m in stored_messages] == [
            (m["language"], m["title"], m["body"]) for m in detail.get("messages", [])
        ]
        stored_targeting = stored_rows(engine, "targeting", token)
        if "targeting" in detail:
            assert stored_targeting[0]["segments"] == detail["targeting"]["segments"]
            assert stored_targeting[0]["query"] == detail["targeting"].get("query")
        else:
            assert stored_targeting == []
        assert len(stored_rows(engine, "triggers", token)) == (1 if "trigger" in detail else 0)
    for token, detail in simulator.store(IN_APP).details().items():
        row = campaign_row(engine, token)
        assert row["campaign_type"] == "in_app" and row["detail"] == detail
        if detail.get("end_date") != "2018-02-29T17:30:00":
            assert row["end_date"] == gmt(detail.get("end_date"))
        assert row["start_date"] == gmt(detail.get("start_date"))
        landing = detail.get("landing") or {}
        assert row["theme"] == landing.get("theme")
        contents = landing.get("contents", [])
        stored_messages = stored_rows(engine, "messages", token)
        assert [(m["position"], m["header"], m["title"], m["body"]) for m in stored_messages] == [
            (i, c.get("header"), c.get("title"), c.get("body")) for i, c in enumerate(contents)
        ]
        stored_actions = stored_rows(engine, "message_actions", token)
        assert [(a["action"], a["label"], a["args"]) for a in stored_actions] == [
            (a["action"], a["label"], a.get("args")) for c in contents for a in c["actions"]
        ]
        trigger = detail.get("trigger")
        if trigger:
            stored_trigger = stored_rows(engine, "triggers", token)[0]
            assert stored_trigger["trigger_when"] == trigger["when"].lower()
            assert stored_trigger["event"] == trigger.get("event")
            assert stored_trigger["capping"] == trigger.get("capping")
            grace = trigger.get("grace_period") or {}
            assert stored_trigger["grace_period_every"] == grace.get("every")
    engine.dispose()


def test_impossible_dates_leave_null_and_a_warning(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "select c.end_date, c.detail->>'end_date', w.field, w.raw_value, w.run_id "
                "from sync_warnings w join campaigns c on c.id = w.campaign_id "
                "where w.field = 'end_date'"
            )
        ).all()
    assert len(rows) == 2  # one per campaign type
    for end_date, raw_in_detail, _field, raw_value, run_id in rows:
        assert end_date is None
        assert raw_in_detail == raw_value == "2018-02-29T17:30:00"
        assert run_id is not None


@pytest.fixture
def bigger_simulator() -> Simulator:
    from tests.conftest import API_KEY, CANARY_REST_KEY

    return Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=250, in_app=120, seed=3)


def test_unchanged_second_pass_makes_only_list_calls_and_rewrites_nothing(
    any_db_url: str, bigger_simulator: Simulator
) -> None:
    with SimulatorServer(bigger_simulator) as server:
        run_sync(any_db_url, server)
        engine = make_engine(any_db_url)
        before = content_snapshot(engine)
        with engine.connect() as conn:
            updated_before = conn.execute(
                select(campaigns.c.id, campaigns.c.updated_at).order_by(campaigns.c.id)
            ).all()
            children_xmin = (
                conn.execute(text("select xmin::text from messages order by 1")).all()
                if engine.dialect.name == "postgresql"
                else None
            )
        runs_before = count(engine, "select count(*) from sync_runs")
        warnings_before = count(engine, "select count(*) from sync_warnings")
        versions_before = count(engine, "select count(*) from campaign_versions")
        assert versions_before == 370
        bigger_simulator.reset_stats()

        results = by_type(run_sync(any_db_url, server))

        assert bigger_simulator.count("view push") == 0
        assert bigger_simulator.count("view in-app") == 0
        # Pages at 0, 95, 190 (short), then the empty page at 250 that confirms the end.
        assert bigger_simulator.count("list push") == 4
        assert bigger_simulator.count("list in-app") == 3  # 0, 95 (short), 120 (empty)
        assert results[PUSH].counts.campaigns_unchanged == 250
        assert results[PUSH].counts.detail_calls == 0
        assert content_snapshot(engine) == before
        with engine.connect() as conn:
            assert conn.execute(
                select(campaigns.c.id, campaigns.c.updated_at).order_by(campaigns.c.id)
            ).all() == (updated_before)
            if children_xmin is not None:
                after = conn.execute(text("select xmin::text from messages order by 1")).all()
                assert after == children_xmin, "child rows were rewritten"
        assert count(engine, "select count(*) from sync_runs") == runs_before + 2
        assert count(engine, "select count(*) from sync_warnings") == warnings_before
        assert count(engine, "select count(*) from campaign_versions") == versions_before
        engine.dispose()


def test_a_rename_costs_exactly_one_detail_call(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    token = simulator.store(PUSH).tokens()[17]
    before = campaign_row(db, token)
    simulator.store(PUSH).rename(token, "Renamed for the test")
    simulator.reset_stats()
    results = by_type(run_sync(pg_url, sim_server))
    assert simulator.count("view push") == 1
    assert simulator.count("view in-app") == 0
    assert results[PUSH].counts.campaigns_updated == 1
    after = campaign_row(db, token)
    assert after["name"] == "Renamed for the test"
    assert after["updated_at"] > before["updated_at"]
    with db.connect() as conn:
        history = conn.execute(
            text(
                "select v.detail->>'name' from v_campaign_versions v "
                "where v.campaign_token = :t order by v.version"
            ),
            {"t": token},
        ).all()
    assert [name for (name,) in history] == [before["name"], "Renamed for the test"]
    assert count(db, "select count(*) from campaign_versions") == 101


def test_a_change_inside_the_detail_is_caught_once_the_detail_is_old(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    token = simulator.store(IN_APP).tokens()[4]
    simulator.store(IN_APP).change_inside_detail(token)
    simulator.reset_stats()
    run_sync(pg_url, sim_server, [IN_APP])
    assert simulator.count("view in-app") == 0, "the list did not change: no detail yet"
    body_before = stored_rows(db, "messages", token)[0]["body"]
    assert not body_before.startswith("Edited")

    results = by_type(run_sync(pg_url, sim_server, [IN_APP], max_age=0))
    assert simulator.count("view in-app") == 40
    assert results[IN_APP].counts.campaigns_updated == 1
    assert results[IN_APP].counts.campaigns_unchanged == 39
    assert stored_rows(db, "messages", token)[0]["body"].startswith("Edited")


def test_a_deletion_sets_deleted_at_and_a_return_clears_it(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    store = simulator.store(PUSH)
    token = store.tokens()[30]
    detail = store.detail(token)
    store.delete(token)
    results = by_type(run_sync(pg_url, sim_server))
    assert results[PUSH].counts.campaigns_deleted == 1
    assert campaign_row(db, token)["deleted_at"] is not None
    assert count(db, "select count(*) from campaigns where deleted_at is not null") == 1

    assert detail is not None
    store.create(detail)
    results = by_type(run_sync(pg_url, sim_server))
    assert campaign_row(db, token)["deleted_at"] is None
    assert results[PUSH].counts.detail_calls == 1


def test_a_404_on_a_detail_marks_the_campaign_deleted(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    store = simulator.store(PUSH)
    token = store.tokens()[8]
    store.rename(token)

    def vanish_on_view(route: str, request: Any) -> None:
        asked = route == "view push" and request.path_params.get("token") == token
        if asked and token in store.tokens():  # asked again to confirm: already gone
            store.delete(token)

    simulator.hooks.append(vanish_on_view)
    results = by_type(run_sync(pg_url, sim_server, [PUSH]))
    assert results[PUSH].status == "succeeded"
    assert results[PUSH].counts.campaigns_deleted == 1
    assert results[PUSH].counts.detail_calls == 2  # the rename's, then the confirmation's
    assert campaign_row(db, token)["deleted_at"] is not None


def test_the_mass_deletion_guard_refuses_then_allows(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    store = simulator.store(PUSH)
    for token in store.tokens()[:40]:
        store.delete(token)
    results = by_type(run_sync(pg_url, sim_server))
    refused = results[PUSH]
    assert refused.status == "failed"
    assert refused.error and "refusing to mark 40 of 60" in refused.error
    assert "--allow-mass-delete" in refused.error
    assert results[IN_APP].status == "succeeded"
    assert count(db, "select count(*) from campaigns where deleted_at is not null") == 0
    with db.connect() as conn:
        runs = conn.execute(
            select(sync_runs.c.campaign_type, sync_runs.c.status, sync_runs.c.error)
            .where(sync_runs.c.campaign_type == "push")
            .order_by(sync_runs.c.id)
        ).all()
    assert [tuple(r) for r in runs] == [
        ("push", "succeeded", None),
        ("push", "failed", refused.error),
    ]

    results = by_type(run_sync(pg_url, sim_server, allow_mass_delete=True))
    assert results[PUSH].status == "succeeded"
    assert results[PUSH].counts.campaigns_deleted == 40


def test_never_tombstone_after_a_failed_sweep(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    simulator.store(PUSH).delete(simulator.store(PUSH).tokens()[50])
    simulator.knobs.fault_503 = 1.0
    results = by_type(run_sync(pg_url, sim_server, [PUSH], retry_max_attempts=2))
    assert results[PUSH].status == "failed"
    assert "MAINTENANCE_ERROR" in (results[PUSH].error or "")
    assert count(db, "select count(*) from campaigns where deleted_at is not null") == 0


def test_a_401_stops_the_pass_with_a_clear_message_and_deletes_nothing(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    simulator.rest_api_key = "rotated-key"
    results = run_sync(pg_url, sim_server)
    assert {r.status for r in results} == {"failed"}
    for result in results:
        assert result.error and "app 'default'" in result.error
        assert "BATCH_REST_API_KEY" in result.error
        assert result.counts.list_calls == 1
    assert count(db, "select count(*) from campaigns where deleted_at is not null") == 0


def test_a_detail_that_stays_malformed_becomes_a_warning_and_the_rest_goes_on(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    broken = simulator.store(PUSH).tokens()[5]
    simulator.knobs.broken_tokens.add(broken)
    results = by_type(run_sync(pg_url, sim_server, [PUSH], retry_max_attempts=2))
    assert results[PUSH].status == "succeeded"
    assert count(db, "select count(*) from campaigns where detail is not null") == 59
    row = campaign_row(db, broken)
    assert row["detail"] is None and row["detail_fetched_at"] is None
    assert row["name"] == simulator.store(PUSH).detail(broken)["name"]  # type: ignore[index]
    with db.connect() as conn:
        warning = conn.execute(
            text("select field, message from sync_warnings where campaign_token = :t"),
            {"t": broken},
        ).one()
    assert warning.field == "detail" and "not JSON" in warning.message

    simulator.knobs.broken_tokens.clear()
    simulator.reset_stats()
    run_sync(pg_url, sim_server, [PUSH])
    assert simulator.count("view push") == 1
    assert campaign_row(db, broken)["detail"] is not None


def test_storms_of_429_5xx_and_timeouts_still_end_in_a_complete_pass(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    simulator.knobs.fault_429 = 0.05
    simulator.knobs.fault_500 = 0.1
    simulator.knobs.fault_503 = 0.05
    simulator.knobs.fault_truncated = 0.05
    simulator.knobs.fault_hang = 0.02
    simulator.knobs.hang_seconds = 2
    results = run_sync(
        pg_url,
        sim_server,
        read_timeout_seconds=0.5,
        backoff_min_seconds=0.02,
        backoff_max_seconds=0.1,
        retry_max_attempts=12,
        retry_max_seconds=120,
        rate_increase_per_second=50,
    )
    assert {r.status for r in results} == {"succeeded"}
    assert sum(r.counts.retries for r in results) > 0
    assert count(db, "select count(*) from campaigns where detail is not null") == 100


def test_a_run_left_running_by_a_dead_process_is_marked_failed(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    with db.begin() as conn:
        conn.execute(
            sync_runs.insert().values(
                app="default",
                campaign_type="push",
                started_at=datetime(2026, 1, 1, tzinfo=UTC),
                status="running",
            )
        )
    run_sync(pg_url, sim_server, [PUSH])
    with db.connect() as conn:
        runs = conn.execute(select(sync_runs).order_by(sync_runs.c.id)).mappings().all()
    assert [run["status"] for run in runs] == ["failed", "succeeded"]
    assert "abandoned" in runs[0]["error"]


def test_full_refresh_fetches_every_detail_but_rewrites_nothing_unchanged(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    before = content_snapshot(db)
    simulator.reset_stats()
    results = by_type(run_sync(pg_url, sim_server, full_refresh=True))
    assert simulator.count("view push") == 60 and simulator.count("view in-app") == 40
    assert results[PUSH].counts.campaigns_updated == 0
    assert content_snapshot(db) == before


def test_a_pass_stopped_midway_resumes_and_ends_like_an_uninterrupted_one(
    pg_server: Any, bigger_simulator: Simulator
) -> None:
    from tests.conftest import API_KEY, CANARY_REST_KEY

    resumed_url = pg_server.create_database()
    reference_url = pg_server.create_database()
    try:
        from campaign_sync.db import migrate

        migrate.upgrade(resumed_url)
        migrate.upgrade(reference_url)
        with SimulatorServer(bigger_simulator) as server:
            # The third list call fails for good: the pass stops with two pages committed.
            bigger_simulator.script("list push", [200, 200, 400])
            first = by_type(run_sync(resumed_url, server, [PUSH]))
            assert first[PUSH].status == "failed"
            engine = make_engine(resumed_url)
            with engine.connect() as conn:
                state = conn.execute(select(sync_state)).mappings().one()
            # Pages at offsets 0 and 95 were fetched before the failure and are kept.
            assert state["sweep_in_progress"] and state["sweep_offset"] == 190
            assert count(engine, "select count(*) from campaigns") == 195
            bigger_simulator.reset_stats()

            second = by_type(run_sync(resumed_url, server, [PUSH]))
            assert second[PUSH].status == "succeeded"
            # Resumed, not restarted: at offset 190 (the last, short page), then the empty
            # page at 250 that confirms the end.
            assert bigger_simulator.count("list push") == 2
            assert second[PUSH].counts.campaigns_inserted == 55
            fresh = Simulator(  # the same data: the same seed, dated around the same now
                api_key=API_KEY,
                rest_api_key=CANARY_REST_KEY,
                push=250,
                in_app=120,
                seed=3,
                now=bigger_simulator.now,
            )
            with SimulatorServer(fresh) as reference_server:
                run_sync(reference_url, reference_server, [PUSH])
            reference = make_engine(reference_url)
            assert content_snapshot(engine) == content_snapshot(reference)
            engine.dispose()
            reference.dispose()
    finally:
        pg_server.drop_database(resumed_url)
        pg_server.drop_database(reference_url)


def test_the_seen_marking_is_one_statement_per_page(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    from sqlalchemy import event

    run_sync(pg_url, sim_server)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = " ".join(statement.split()[:3]).upper()
        if verb in ("UPDATE CAMPAIGNS SET", "INSERT INTO CAMPAIGN_SIGHTINGS"):
            statements.append(verb)

    from sqlalchemy.engine import Engine as EngineClass

    event.listen(EngineClass, "before_cursor_execute", record)
    try:
        run_sync(pg_url, sim_server, [PUSH])
    finally:
        event.remove(EngineClass, "before_cursor_execute", record)
    # 60 campaigns: one page, one seen-marking statement, and no campaigns row rewritten
    assert statements == ["INSERT INTO CAMPAIGN_SIGHTINGS"]


def test_sweep_state_records_complete_sweeps(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server)
    with db.connect() as conn:
        states = conn.execute(select(sync_state)).mappings().all()
    assert {s["campaign_type"] for s in states} == {"push", "in_app"}
    for state in states:
        assert state["sweep_in_progress"] is False
        assert state["last_complete_sweep_at"] is not None
    with db.begin() as conn:
        conn.execute(update(sync_state).values(sweep_id=41))
    run_sync(pg_url, sim_server)
    with db.connect() as conn:
        assert {s for (s,) in conn.execute(select(sync_state.c.sweep_id))} == {42}


def test_a_pass_streams_holding_only_a_few_pages_at_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import weakref

    import campaign_sync.sync_pass as sync_pass
    from campaign_sync.plan import PageLoad
    from campaign_sync.sync_pass import SyncPass

    made: list[weakref.ref[PageLoad]] = []  # every page load made, dead once let go

    def tracked(*args: Any, **kwargs: Any) -> PageLoad:
        load = PageLoad(*args, **kwargs)
        made.append(weakref.ref(load))
        return load

    alive: list[int] = []
    original = SyncPass._apply

    async def counting_apply(self: SyncPass, load: PageLoad) -> Any:
        gc.collect()  # cycles only: the weak set forgets the rest by itself
        alive.append(sum(ref() is not None for ref in made))
        return await original(self, load)

    monkeypatch.setattr(sync_pass, "PageLoad", tracked)
    monkeypatch.setattr(SyncPass, "_apply", counting_apply)
    from tests.conftest import API_KEY, CANARY_REST_KEY

    many = Simulator(api_key=API_KEY, rest_api_key=CANARY_REST_KEY, push=800, in_app=0, seed=2)
    with SimulatorServer(many) as server:
        results = by_type(run_sync(pg_url, server, [PUSH]))
    assert results[PUSH].counts.campaigns_inserted == 800
    assert len(alive) == 10  # pages at offsets 0, 95, ..., 760, and the empty one at 800
    assert max(alive) <= 4, f"pages are kept after they are written: {alive}"


def test_many_apps_at_once_do_not_exhaust_the_connection_pool(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    import asyncio

    from campaign_sync.runner import sync_apps
    from campaign_sync.sync_pass import PassOptions
    from tests.conftest import make_app, make_settings

    names = [f"app{i}" for i in range(9)]
    for index, name in enumerate(names):
        simulator.add_app(f"KEY-{name}", push=3, in_app=3, seed=index)
    engine = make_engine(pg_url, pool_timeout=5)
    results = asyncio.run(
        sync_apps(
            engine,
            make_settings(sim_server.url, pg_url),
            [make_app(name, api_key=f"KEY-{name}") for name in names],
            options=PassOptions(),
        )
    )
    engine.dispose()
    assert [r.status for r in results] == ["succeeded"] * 18


def test_the_live_display_hears_about_pages_details_retries_and_waits(
    pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    import asyncio

    from campaign_sync.runner import sync_apps
    from campaign_sync.sync_pass import NoProgressSink, PassOptions
    from tests.conftest import make_app, make_settings

    class Recorder(NoProgressSink):
        def __init__(self) -> None:
            self.events: list[str] = []

        def page_swept(self, app: str, campaign_type: Any, entries: int, needed: int) -> None:
            self.events.append(f"page {entries} {needed}")

        def detail_fetched(self, app: str, campaign_type: Any) -> None:
            self.events.append("detail")

        def retried(self, app: str, campaign_type: Any) -> None:
            self.events.append("retry")

        def rate_limited(self, app: str, seconds: float) -> None:
            self.events.append("wait")

    simulator.script("view push", [500, 429])
    recorder = Recorder()
    engine = make_engine(pg_url)
    asyncio.run(
        sync_apps(
            engine,
            make_settings(sim_server.url, pg_url),
            [make_app()],
            [PUSH],
            PassOptions(),
            progress=recorder,
        )
    )
    engine.dispose()
    assert recorder.events.count("page 60 60") == 1
    assert recorder.events.count("detail") == 60
    assert recorder.events.count("retry") == 2
    assert recorder.events.count("wait") == 1


def test_the_refresh_of_old_details_is_spread_over_passes(
    db: Engine, pg_url: str, simulator: Simulator, sim_server: SimulatorServer
) -> None:
    run_sync(pg_url, sim_server, [PUSH])
    tokens = simulator.store(PUSH).tokens()
    with db.begin() as conn:  # every detail two days old, the first tokens oldest
        for age, token in enumerate(tokens):
            conn.execute(
                update(campaigns)
                .where(campaigns.c.campaign_token == token)
                .values(detail_fetched_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=age))
            )
    fetched: list[list[str]] = []
    for _ in range(2):
        simulator.reset_stats()
        [result] = run_sync(pg_url, sim_server, [PUSH], detail_refresh_per_pass=25)
        assert result.status == "succeeded" and result.counts.detail_calls == 25
        with db.connect() as conn:
            fresh = conn.execute(
                select(campaigns.c.campaign_token).where(
                    campaigns.c.detail_fetched_at > datetime(2026, 6, 1, tzinfo=UTC)
                )
            )
            fetched.append(sorted(t for (t,) in fresh))
    assert fetched == [sorted(tokens[:25]), sorted(tokens[:50])]  # the oldest first
    [unlimited] = run_sync(pg_url, sim_server, [PUSH], detail_refresh_per_pass=0)
    assert unlimited.counts.detail_calls == 10  # the 10 still old, all at once


@pytest.mark.parametrize(
    ("said", "hinted"),
    [
        ("permission denied for table sync_state", True),
        ("permission denied for sequence sync_runs_id_seq", True),
        # migrate's (check says "migrations pending" there) and a row-level security
        # policy's (check says the database is ok): pointing at check misled (a review's)
        ("permission denied for schema public", False),
        ('new row violates row-level security policy for table "campaign_sightings"', False),
    ],
)
def test_a_refused_privilege_points_at_check_only_where_check_names_it(
    said: str, hinted: bool
) -> None:
    from campaign_sync.db.session import PRIVILEGE_HINT, database_problem, refused_privilege

    class Refused(Exception):
        sqlstate = "42501"

    error = Refused(said)
    assert refused_privilege(error)  # bad configuration (sync exits 2) in every case
    assert database_problem(error) == (f"{said}: {PRIVILEGE_HINT}" if hinted else said)


def test_a_lease_renewed_in_a_schema_migrated_since_is_refused_as_bad_configuration(
    db: Engine,
) -> None:
    """`state reset` answered "unexpected error: LockLost ... this pass" for a schema
    migrated while its prompt was open (a review's find): the renewal says what changed,
    as a refused start does (SchemaNotCurrent: exit 2)."""
    from sqlalchemy import text

    from campaign_sync.db.locks import LockLost, SchemaChanged, try_lease
    from campaign_sync.db.revisions import HEAD_REVISION, SchemaNotCurrent
    from campaign_sync.domain import CampaignType

    lease = try_lease(db, "default", CampaignType.PUSH, 60, for_a_pass=False)
    assert not isinstance(lease, str)
    try:
        with db.begin() as conn:
            conn.execute(text("update alembic_version set version_num = '0099'"))
        with pytest.raises(SchemaChanged) as refused, db.begin() as conn:
            lease.renew(conn)
        assert isinstance(refused.value, SchemaNotCurrent) and isinstance(refused.value, LockLost)
        assert str(refused.value).startswith(
            "the database is at revision 0099, which this campaign-sync does not know"
        )
    finally:
        with db.begin() as conn:
            conn.execute(
                text("update alembic_version set version_num = :head"), {"head": HEAD_REVISION}
            )
        lease.release()
