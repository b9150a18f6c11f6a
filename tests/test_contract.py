"""The outside contract (shared/CONTRACT.md): every table and column it names exists, spelled
the same, after `campaign-sync migrate`. Renaming one must fail here first."""

from __future__ import annotations

from sqlalchemy import inspect

from campaign_sync.db.session import make_engine

CONTRACT_COLUMNS = {
    "campaigns": """id app campaign_type campaign_token name live from_api dev_only created_date
        push_time start_date end_date local_push_time local_start_date local_end_date deeplink
        custom_payload capping priority time_to_live labels recurrence_repeat_unit
        recurrence_repeat_frequency recurrence_end_date theme detail first_seen_at
        last_seen_at detail_fetched_at updated_at deleted_at""",
    "messages": "campaign_id position language header title body image",
    "message_actions": "campaign_id message_position position action label args",
    "triggers": """campaign_id trigger_when event label capping grace_period_every
        grace_period_unit""",
    "targeting": "campaign_id segments query",
    "sync_state": "app campaign_type",
    "sync_runs": """id app campaign_type started_at finished_at status list_calls detail_calls
        retries campaigns_inserted campaigns_updated campaigns_unchanged campaigns_deleted
        warnings error""",
    "sync_warnings": "run_id campaign_id field raw_value message",
}


def test_every_contract_column_exists(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    inspector = inspect(engine)
    for table, names in CONTRACT_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(table)}
        missing = set(names.split()) - present
        assert not missing, f"{table} lacks {sorted(missing)}"
    unique = inspector.get_unique_constraints("campaigns")
    assert any(c["column_names"] == ["app", "campaign_type", "campaign_token"] for c in unique)
    engine.dispose()


def test_timestamps_have_the_contracts_time_zone_rules(pg_url: str) -> None:
    engine = make_engine(pg_url)
    columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("campaigns")}
    engine.dispose()
    for name in ("created_date", "push_time", "start_date", "end_date", "recurrence_end_date"):
        assert columns[name].timezone is True, name  # type: ignore[attr-defined]
    for name in ("local_push_time", "local_start_date", "local_end_date"):
        assert columns[name].timezone is False, name  # type: ignore[attr-defined]
    for name in ("custom_payload", "labels", "detail"):
        assert type(columns[name]).__name__ == "JSONB", name
