"""The simulator speaks the documented API: routes, validation, errors, data, updates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.simulator import Simulator, SimulatorServer
from campaign_sync.simulator.data import IMPOSSIBLE_DATE
from tests.conftest import API_KEY, CANARY_REST_KEY

NOW = datetime(2026, 11, 29, 10, 0, 0)

AUTH = {"X-Authorization": CANARY_REST_KEY}


@pytest.fixture
def http(sim_server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim_server.url, headers=AUTH) as client:
        yield client


def error_of(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    return response.status_code, body["code"], body["type"]


def test_list_is_newest_first_and_paged(http: httpx.Client, simulator: Simulator) -> None:
    first = http.get(f"/1.1/{API_KEY}/campaigns/list", params={"limit": 100}).json()
    assert len(first) == 60
    dates = [entry["created_date"] for entry in first]
    assert dates == sorted(dates, reverse=True)
    page = http.get(f"/1.1/{API_KEY}/campaigns/list", params={"from": 10, "limit": 5}).json()
    assert [e["campaign_token"] for e in page] == [e["campaign_token"] for e in first[10:15]]
    default = http.get(f"/1.1/{API_KEY}/in-app-campaigns/list").json()
    assert len(default) == 10  # Batch's default limit


def test_list_entries_carry_basic_information_only(http: httpx.Client) -> None:
    for segment in ("campaigns", "in-app-campaigns"):
        entries = http.get(f"/1.1/{API_KEY}/{segment}/list", params={"limit": 100}).json()
        for entry in entries:
            assert {"campaign_token", "created_date", "name", "live"} <= set(entry)
            assert not {"messages", "landing", "targeting"} & set(entry)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"from": -1},
        {"live": "yes"},
        {"from_api": "1"},
    ],
)
def test_bad_list_parameters_are_malformed_parameter(
    http: httpx.Client, params: dict[str, Any]
) -> None:
    response = http.get(f"/1.1/{API_KEY}/campaigns/list", params=params)
    assert error_of(response) == (400, 31, "MALFORMED_PARAMETER")


def test_list_filters_on_live_and_from_api(http: httpx.Client) -> None:
    live = http.get(f"/1.1/{API_KEY}/campaigns/list", params={"limit": 100, "live": "true"})
    assert live.json() and all(e["live"] is True for e in live.json())
    dashboard = http.get(
        f"/1.1/{API_KEY}/campaigns/list", params={"limit": 100, "from_api": "false"}
    )
    assert dashboard.json() and all(e["from_api"] is False for e in dashboard.json())


def test_wrong_keys_and_unknown_routes(sim_server: SimulatorServer) -> None:
    with httpx.Client(base_url=sim_server.url) as client:
        wrong_rest = client.get(f"/1.1/{API_KEY}/campaigns/list", headers={"X-Authorization": "x"})
        assert error_of(wrong_rest) == (401, 10, "AUTHENTICATION_INVALID")
        wrong_api = client.get("/1.1/not-a-key/campaigns/list", headers=AUTH)
        assert error_of(wrong_api) == (401, 10, "AUTHENTICATION_INVALID")
        unknown = client.get(f"/1.1/{API_KEY}/nothing/here", headers=AUTH)
        assert error_of(unknown) == (404, 20, "ROUTE_NOT_FOUND")
        wrong_method = client.post(f"/1.1/{API_KEY}/campaigns/list", headers=AUTH)
        assert error_of(wrong_method) == (404, 20, "ROUTE_NOT_FOUND")
        missing = client.get(f"/1.1/{API_KEY}/campaigns/0000", headers=AUTH)
        assert error_of(missing) == (404, 20, "ROUTE_NOT_FOUND")


def all_details(simulator: Simulator, campaign_type: CampaignType) -> list[dict[str, Any]]:
    return list(simulator.store(campaign_type).details().values())


def test_details_cover_every_documented_field(simulator: Simulator) -> None:
    push = all_details(simulator, CampaignType.PUSH)
    keys = set().union(*(d.keys() for d in push))
    assert {
        "push_time", "local_push_time", "recurrence", "targeting", "messages", "deeplink",
        "custom_payload", "gcm_collapse_key", "capping", "priority", "time_to_live", "labels",
        "trigger",
    } <= keys  # fmt: skip
    assert {type(d["gcm_collapse_key"]) for d in push if "gcm_collapse_key" in d} == {str, dict}
    assert any("query" in d.get("targeting", {}) for d in push)
    in_app = all_details(simulator, CampaignType.IN_APP)
    keys = set().union(*(d.keys() for d in in_app))
    assert {"start_date", "end_date", "trigger", "targeting", "landing", "capping"} <= keys
    whens = {d["trigger"]["when"] for d in in_app if "trigger" in d}
    assert {"next_session", "NEXT_SESSION", "now", "event"} <= whens
    actions = [
        a for d in in_app for c in d.get("landing", {}).get("contents", []) for a in c["actions"]
    ]
    assert any("args" in a for a in actions)


def test_the_documentations_traps_are_in_the_data(simulator: Simulator) -> None:
    for campaign_type in CampaignType:
        details = all_details(simulator, campaign_type)
        assert any(d.get("end_date") == IMPOSSIBLE_DATE for d in details)
        payloads = [d["custom_payload"] for d in details if "custom_payload" in d]
        assert "{not valid json" in payloads and '{"foo" : "bar"}' in payloads
        assert any("🎉" in d["name"] for d in details)
        assert any(len(json.dumps(d)) > 20_000 for d in details)
        assert any("x_new_list_field" in d for d in details)


def test_the_data_is_deterministic_for_a_seed_and_a_now() -> None:
    def details(seed: int, now: datetime) -> dict[str, Any]:
        return Simulator(push=20, in_app=20, seed=seed, now=now).store(CampaignType.PUSH).details()

    one, two = details(3, NOW), details(3, NOW)
    assert one == two
    assert one != details(4, NOW)
    later = details(3, NOW + timedelta(days=7))
    assert [d["name"] for d in later.values()] == [d["name"] for d in one.values()]
    assert [d["created_date"] for d in later.values()] != [d["created_date"] for d in one.values()]


def test_the_data_is_dated_around_now_with_the_traps_kept() -> None:
    simulator = Simulator(push=400, in_app=250, seed=1, now=NOW)
    push = simulator.store(CampaignType.PUSH).details().values()
    created = sorted(d["created_date"] for d in push)
    assert created[-1] == "2026-11-29T09:00:00"  # the newest: an hour before now
    assert created[0] == "2026-09-05T09:38:00"  # the oldest: months ago
    pushes = [d.get("push_time") or d.get("local_push_time") for d in push]
    next_week = [p for p in pushes if p and "2026-11-30" <= p < "2026-12-07"]
    assert len(next_week) == 24
    assert sum(isinstance(d.get("recurrence"), dict) for d in push) == 111
    in_app = simulator.store(CampaignType.IN_APP).details().values()
    ends = [d.get("end_date") or d.get("local_end_date") for d in in_app]
    assert len([e for e in ends if e and "2026-11-29T10:00:00" <= e < "2026-12-06"]) == 13
    assert sum(d.get("end_date") == IMPOSSIBLE_DATE for d in in_app) == 1


def test_update_follows_batchs_rules(http: httpx.Client, simulator: Simulator) -> None:
    store = simulator.store(CampaignType.IN_APP)
    details = store.details()
    api_made = next(t for t, d in details.items() if d["from_api"] and "trigger" in d)
    dashboard_made = next(t for t, d in details.items() if not d["from_api"])
    route = f"/1.1/{API_KEY}/in-app-campaigns/update"

    refused = http.post(f"{route}/{dashboard_made}", json={"name": "New name"})
    assert error_of(refused) == (403, 12, "API_MISUSE")

    stored = details[api_made]
    payload = {
        k: v
        for k, v in stored.items()
        if k not in ("campaign_token", "from_api", "dev_only", "created_date")
    }
    partial = dict(payload)
    partial.pop("trigger")
    assert error_of(http.post(f"{route}/{api_made}", json=partial)) == (
        400, 30, "MISSING_PARAMETER",
    )  # fmt: skip
    read_only = {**payload, "created_date": "2020-01-01T00:00:00"}
    assert error_of(http.post(f"{route}/{api_made}", json=read_only))[2] == "MALFORMED_PARAMETER"
    bad_json = http.post(
        f"{route}/{api_made}", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert error_of(bad_json) == (400, 32, "MALFORMED_JSON_BODY")

    accepted = http.post(f"{route}/{api_made}", json={**payload, "name": "Renamed by API"})
    assert accepted.status_code == 200
    after = store.detail(api_made)
    assert after is not None and after["name"] == "Renamed by API"
    assert after["created_date"] == stored["created_date"]


def test_counters_are_exact_and_served(http: httpx.Client, simulator: Simulator) -> None:
    http.get(f"/1.1/{API_KEY}/campaigns/list")
    http.get(f"/1.1/{API_KEY}/campaigns/list", params={"limit": 500})
    http.get(f"/1.1/{API_KEY}/in-app-campaigns/nope")
    assert simulator.count("list push", 200) == 1
    assert simulator.count("list push", 400) == 1
    assert simulator.count("view in-app", 404) == 1
    stats = http.get("/_sim/stats").json()
    assert stats["by_route"]["list push"] == {"200": 1, "400": 1}
    assert stats["total"] == 3


def test_fault_knobs(http: httpx.Client, simulator: Simulator) -> None:
    simulator.knobs.fault_503 = 1.0
    assert error_of(http.get(f"/1.1/{API_KEY}/campaigns/list")) == (503, 2, "MAINTENANCE_ERROR")
    simulator.knobs.fault_503 = 0.0
    simulator.knobs.fault_truncated = 1.0
    response = http.get(f"/1.1/{API_KEY}/campaigns/list")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.content)
    simulator.knobs.fault_truncated = 0.0
    simulator.knobs.retry_after = "3"
    simulator.script("list push", [429])
    throttled = http.get(f"/1.1/{API_KEY}/campaigns/list")
    assert error_of(throttled) == (429, 60, "TOO_MANY_REQUESTS")
    assert throttled.headers["Retry-After"] == "3"


def test_churn_changes_the_data(simulator: Simulator) -> None:
    store = simulator.store(CampaignType.PUSH)
    before = store.details()
    for _ in range(20):
        store.random_change()
    assert store.details() != before


def test_simulate_takes_the_now_its_data_is_dated_around() -> None:
    from campaign_sync.cli import main

    command = main.commands["simulate"]
    context = command.make_context("simulate", ["--now", "2026-11-29T10:00:00", "--seed", "3"])
    assert context.params["now"] == NOW


def test_churn_dates_the_campaigns_it_creates_by_the_stores_clock() -> None:
    """Each campaign churn created stepped 5-600 minutes past the newest: after a few
    minutes of `--churn-every 2`, campaigns created days ahead (a review's find)."""
    from campaign_sync.simulator.data import generate_store

    store = generate_store(CampaignType.PUSH, 30, seed=3, now=datetime(2026, 11, 29, 10, 0, 0))
    made = [store.random_change() for _ in range(200)]
    created = [store.detail(token)["created_date"] for token in store.tokens()]  # type: ignore[index]
    assert sum(change.startswith("created ") for change in made) > 20
    assert max(created) <= "2026-11-29T10:01:00"  # the store's now, plus the test's run
    assert created == sorted(created, reverse=True)  # newest first
