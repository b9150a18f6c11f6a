"""Deployment files (compose profiles, Kubernetes manifests, Grafana dashboard), parsed and
checked against the code: Docker, Kubernetes and Grafana do not run here."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml

from campaign_sync.batch.client import Responded
from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.metrics import Health, Metrics, metrics_app
from campaign_sync.outcome import RunCounts
from campaign_sync.sync_pass import PassResult
from tests.test_containers import compose, known_variables, parses

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"


def active_services(*profiles: str) -> set[str]:
    """The services `docker compose --profile P up` starts (no profile: always)."""
    return {
        name
        for name, service in compose()["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


def test_the_demo_profile_runs_only_the_database_simulator_and_demo_sync() -> None:
    assert active_services("demo") == {"db", "simulator", "demo-sync"}
    assert active_services("sync") == {"db", "sync"}
    assert active_services() == {"db"}


def test_every_profile_can_build_the_image_it_runs() -> None:
    services = compose()["services"]
    for profile in ("demo", "sync"):
        ours = [services[n] for n in active_services(profile) if n != "db"]
        assert all(s["image"] == "campaign-sync:latest" for s in ours)
        assert any("build" in s for s in ours), profile


def manifest(name: str) -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / name).read_text())


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    if document["kind"] == "CronJob":
        return document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return document["spec"]["template"]["spec"]


def check_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Each container: a valid command line, the Secret, real settings and resources."""
    containers = spec.get("initContainers", []) + spec["containers"]
    for container in containers:
        parses(container["args"])
        assert {"secretRef": {"name": "campaign-sync"}} in container["envFrom"], container["name"]
        for variable in container.get("env", []):
            assert variable["name"] in known_variables(), variable["name"]
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
    assert [c["args"] for c in spec["initContainers"]] == [["migrate"]]
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"]["runAsUser"] == 10001
    return containers


def test_the_cronjob_runs_sync_after_migrate_and_never_overlaps() -> None:
    cronjob = manifest("cronjob.yaml")
    assert cronjob["apiVersion"] == "batch/v1" and cronjob["kind"] == "CronJob"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0
    spec = pod_spec(cronjob)
    assert spec["restartPolicy"] == "Never"
    check_containers(spec)
    assert [c["args"] for c in spec["containers"]] == [["sync"]]


def test_the_deployment_serves_with_probes_on_livez() -> None:
    deployment = manifest("deployment.yaml")
    assert deployment["apiVersion"] == "apps/v1" and deployment["kind"] == "Deployment"
    spec = pod_spec(deployment)
    check_containers(spec)
    [serve] = spec["containers"]
    assert serve["args"] == ["serve"]
    env = {v["name"]: v["value"] for v in serve["env"]}
    assert env["CAMPAIGN_SYNC_METRICS_HOST"] == "0.0.0.0"
    port = int(env["CAMPAIGN_SYNC_METRICS_PORT"])
    assert serve["ports"] == [{"name": "metrics", "containerPort": port}]
    for probe in ("livenessProbe", "readinessProbe"):  # not /healthz: no restart cures a 401
        assert serve[probe]["httpGet"] == {"path": "/livez", "port": "metrics"}, probe


def test_the_secret_example_holds_the_settings_the_workloads_need() -> None:
    secret = manifest("secret.example.yaml")
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "campaign-sync"
    assert set(secret["stringData"]) == {"DATABASE_URL", "BATCH_API_KEY", "BATCH_REST_API_KEY"}


def test_the_deploy_docs_point_to_the_manifests_and_the_dashboard() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for path in (
        "deploy/kubernetes/cronjob.yaml",
        "deploy/kubernetes/deployment.yaml",
        "deploy/kubernetes/secret.example.yaml",
        "deploy/grafana/campaign-sync.json",
    ):
        assert path in docs and (ROOT / path).is_file(), path
    assert "kind: CronJob" not in docs  # the YAML lives in the files, not inlined


async def scrape(metrics: Metrics) -> str:
    transport = httpx.ASGITransport(app=metrics_app(metrics, Health()))
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        return (await client.get("/metrics")).text


def exported_metric_names() -> set[str]:
    """What /metrics shows once a pass, a 429 and a learned rate have been recorded."""
    metrics = Metrics()
    for status in ("succeeded", "failed"):
        metrics.record_pass(
            PassResult("ios", CampaignType.PUSH, status, counts=RunCounts(retries=1), seconds=2)
        )
    metrics.on_client_event(Responded("ios", "GET campaigns/list", 429, 2.5))
    body = asyncio.run(scrape(metrics))
    return {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line[:1] != "#"}


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "campaign-sync.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queried = {name for expr in expressions for name in re.findall(r"campaign_sync_\w+", expr)}
    queried |= set(re.findall(r"campaign_sync_\w+", json.dumps(dashboard["templating"])))
    assert queried - exported_metric_names() == set()
    for needed in (
        "campaign_sync_runs_total",
        "campaign_sync_pass_duration_seconds_bucket",
        "campaign_sync_rate_limited_total",
        "campaign_sync_request_rate",
        "campaign_sync_last_success_timestamp_seconds",
    ):
        assert needed in queried, needed
