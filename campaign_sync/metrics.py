"""Prometheus metrics and the health verdict of `serve`, on one small HTTP endpoint."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from campaign_sync.batch.client import ClientEvent, Responded
from campaign_sync.domain import CampaignType
from campaign_sync.logs import library_level
from campaign_sync.outcome import PassResult, PassStatus, RunCounts

FAILURES_BEFORE_UNHEALTHY = 3  # an app failing more passes in a row than this is unhealthy
# campaign_sync_campaigns_total's `change` label: the run counters of campaigns written.
CAMPAIGN_CHANGES = tuple(
    name.removeprefix("campaigns_")
    for name in RunCounts.names("campaigns")
    if name.startswith("campaigns_") and name != "campaigns_unchanged"
)


class _RateCollector(Collector):
    """The adaptive request rate of each app, as its client last reported it."""

    def __init__(self) -> None:
        self.rates: dict[str, float | None] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "campaign_sync_request_rate",
            "Learned requests per second per app (0: unlimited, no 429 seen yet)",
            labels=["app"],
        )
        for app, rate in sorted(self.rates.items()):
            family.add_metric([app], rate or 0.0)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["app", "campaign_type"]
        self.runs = Counter(
            "campaign_sync_runs", "Passes by outcome", [*labels, "status"], registry=self.registry
        )
        self.campaigns = Counter(
            "campaign_sync_campaigns",
            "Campaigns inserted, updated or deleted",
            [*labels, "change"],
            registry=self.registry,
        )
        self.requests = Counter(
            "campaign_sync_api_requests",
            "Batch API requests by route and HTTP status (0: no answer)",
            ["app", "route", "status"],
            registry=self.registry,
        )
        self.stats_calls = Counter(
            "campaign_sync_stats_calls",
            "Requests to Batch's push stats route",
            ["app"],
            registry=self.registry,
        )
        self.stats_rows = Counter(
            "campaign_sync_stats_rows_written",
            "Rows of campaign_stats_daily written (inserted or updated)",
            ["app"],
            registry=self.registry,
        )
        self.retries = Counter(
            "campaign_sync_retries", "Retried Batch requests", labels, registry=self.registry
        )
        self.throttled = Counter(
            "campaign_sync_rate_limited", "429 answers from Batch", ["app"], registry=self.registry
        )
        self.duration = Histogram(
            "campaign_sync_pass_duration_seconds",
            "Duration of a pass",
            labels,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )
        self.last_success = Gauge(
            "campaign_sync_last_success_timestamp_seconds",
            "Unix time of the last successful pass",
            labels,
            registry=self.registry,
        )
        self.rates = _RateCollector()
        self.registry.register(self.rates)
        # The standard process_* (start time, CPU, memory, file descriptors), python_info
        # and python_gc_* series every Prometheus client exports by default; this registry
        # of our own left them out (a review's find).
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def prepare(self, apps: list[str]) -> None:
        """Every counter series of `apps` at 0 before the first pass: a series that appears
        at 1 on its first event is no increase to Prometheus (`increase()` and `rate()`
        start from a series' first sample), so a failure went unseen by an alert on
        `campaign_sync_runs_total{status="failed"}` until the series existed (a review's
        find). One in the first pass of a new process, seconds after its start, is still 1
        at the first scrape (docs/deploy.md). The request counters keep their own labels
        (route and status are only known from a request)."""
        for app in apps:
            self.throttled.labels(app)
            self.stats_calls.labels(app)
            self.stats_rows.labels(app)
            for campaign_type in CampaignType:
                labels = (app, campaign_type.value)
                for status in PassStatus:
                    if status is not PassStatus.RUNNING:
                        self.runs.labels(*labels, status.value)
                for change in CAMPAIGN_CHANGES:
                    self.campaigns.labels(*labels, change)
                self.retries.labels(*labels)

    def on_client_event(self, event: ClientEvent) -> None:
        """A `ClientHook`: requests by route and status, 429s, and the learned rate."""
        if isinstance(event, Responded):
            self.requests.labels(event.app, event.route, str(event.status)).inc()
            if event.status == 429:
                self.throttled.labels(event.app).inc()
            self.rates.rates[event.app] = event.rate

    def record_pass(self, result: PassResult) -> None:
        if result.status is PassStatus.SKIPPED:
            self.runs.labels(result.app, result.campaign_type.value, "skipped").inc()
            return
        labels = (result.app, result.campaign_type.value)
        self.runs.labels(*labels, result.status).inc()
        counts = result.counts
        for change in CAMPAIGN_CHANGES:
            self.campaigns.labels(*labels, change).inc(getattr(counts, f"campaigns_{change}"))
        self.retries.labels(*labels).inc(counts.retries)
        if result.campaign_type is CampaignType.PUSH:
            self.stats_calls.labels(result.app).inc(counts.stats_calls)
            self.stats_rows.labels(result.app).inc(counts.stats_rows_written)
        self.duration.labels(*labels).observe(result.seconds)
        if result.status is PassStatus.SUCCEEDED:
            self.last_success.labels(*labels).set(time.time())

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class AppHealth:
    consecutive_failures: int = 0
    last_error: str | None = None


@dataclass
class Health:
    scheduler_running: bool = False
    apps: dict[str, AppHealth] = field(default_factory=dict)

    def record(self, app: str, results: list[PassResult]) -> None:
        health = self.apps.setdefault(app, AppHealth())
        failed = [r for r in results if r.status == "failed"]
        if failed:
            health.consecutive_failures += 1
            health.last_error = failed[0].error
        elif results:
            health.consecutive_failures = 0
            health.last_error = None

    def liveness(self) -> tuple[int, dict[str, object]]:
        """`/livez`: (HTTP status, body). 200 while the scheduler runs, whatever Batch or
        the database do; 503 once it stopped. For an orchestrator's liveness probe: a
        restart cures a stopped scheduler, never a revoked key or an outage, which
        `/healthz` reports (a Deployment probing /healthz for liveness restarted the
        pod every few minutes while one app's key was revoked, cutting the other apps'
        passes and resetting every counter: a review's find)."""
        if not self.scheduler_running:
            return 503, {"status": "stopped", "reason": "the scheduler is not running"}
        return 200, {"status": "alive"}

    def verdict(self) -> tuple[int, dict[str, object]]:
        failing = {
            name: {"consecutive_failures": h.consecutive_failures, "last_error": h.last_error}
            for name, h in sorted(self.apps.items())
            if h.consecutive_failures > FAILURES_BEFORE_UNHEALTHY
        }
        if not self.scheduler_running:
            return 503, {"status": "unhealthy", "reason": "the scheduler is not running"}
        if failing:
            return 503, {"status": "unhealthy", "failing_apps": failing}
        return 200, {"status": "ok", "apps": sorted(self.apps)}


def metrics_app(metrics: Metrics, health: Health) -> Starlette:
    async def render_metrics(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def healthz(request: Request) -> Response:
        status, body = health.verdict()
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    async def livez(request: Request) -> Response:
        status, body = health.liveness()
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    return Starlette(
        routes=[
            Route("/metrics", render_metrics),
            Route("/healthz", healthz),
            Route("/livez", livez),
        ]
    )


class _QuietServer(uvicorn.Server):
    """Leaves SIGTERM/SIGINT to `serve`, which stops the whole service cleanly."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def metrics_server(
    metrics: Metrics, health: Health, port: int, host: str = "127.0.0.1"
) -> uvicorn.Server:
    config = uvicorn.Config(
        metrics_app(metrics, health),
        host=host,
        port=port,
        log_level=library_level(),  # uvicorn sets its loggers' levels to it
        # uvicorn's own handlers wrote plain text ("WARNING:  Invalid HTTP request
        # received.", at any TLS probe or port scan) into serve's JSON log lines (a
        # review's find): without a log config of its own, its loggers go to ours.
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    return _QuietServer(config)
