"""`serve` opens /metrics and /healthz on the interface CAMPAIGN_SYNC_METRICS_HOST names."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from campaign_sync.db.session import make_engine
from campaign_sync.service import Service
from campaign_sync.simulator import SimulatorServer
from tests.conftest import make_app, make_settings
from tests.pg import free_port
from tests.test_service import run_service


def test_the_metrics_endpoint_listens_only_where_it_is_told(
    db: Engine, pg_url: str, sim_server: SimulatorServer
) -> None:
    port = free_port()
    settings = make_settings(sim_server.url, pg_url, metrics_port=port, metrics_host="127.0.0.2")
    service = Service(make_engine(pg_url), settings, [make_app()])
    answers: dict[str, object] = {}

    def probe() -> bool:
        try:
            answers["told"] = httpx.get(f"http://127.0.0.2:{port}/healthz").status_code
        except httpx.TransportError:
            return False
        try:
            answers["other"] = httpx.get(f"http://127.0.0.1:{port}/healthz").status_code
        except httpx.ConnectError:
            answers["other"] = "refused"
        return True

    run_service(service, until=probe)
    service.engine.dispose()
    assert answers == {"told": 200, "other": "refused"}
