"""`campaign-sync serve`: a pass per app every interval (APScheduler), metrics and health,
and a clean stop on SIGTERM/SIGINT (the page in flight is committed, the run is recorded
as interrupted, the next pass resumes from the cursor)."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, update
from sqlalchemy.exc import DBAPIError

from campaign_sync.check import metrics_address_problem
from campaign_sync.config import ConfigError, ResolvedApp, Settings
from campaign_sync.db.models import sync_state
from campaign_sync.db.revisions import SchemaNotCurrent, ensure_current
from campaign_sync.db.session import database_problem
from campaign_sync.domain import CampaignType
from campaign_sync.logs import log_context
from campaign_sync.metrics import Health, Metrics, metrics_server
from campaign_sync.outcome import PassResult, PassStatus
from campaign_sync.runner import pass_options, sync_app
from campaign_sync.signals import STOP_GRACE_SECONDS, run_until_signalled

log = logging.getLogger(__name__)

T = TypeVar("T")


class Service:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        apps: list[ResolvedApp],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.apps = apps
        self.transport = transport  # tests: a fake Batch at the HTTP level
        self.metrics = Metrics()
        self.health = Health()
        self.stop = asyncio.Event()
        self.running: set[asyncio.Task[Any]] = set()
        self.passes: dict[str, int] = {}
        self.scheduler: AsyncIOScheduler | None = None
        # Why serve stopped on its own: the database's schema is no longer this version's.
        self.refused: SchemaNotCurrent | None = None
        self._next_passes: dict[str, datetime] = {}  # what this replica told `status`
        self._grace_ran_out = False  # passes cancelled for outlasting the stop's grace

    async def run(self, stop: asyncio.Event | None = None) -> None:
        if stop is not None:
            self.stop = stop
        scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler = scheduler
        now = datetime.now(UTC)
        for app in self.apps:
            interval = app.interval_seconds
            scheduler.add_job(
                self._run_app,
                IntervalTrigger(seconds=interval, jitter=min(30.0, interval * 0.1)),
                args=[app],
                id=app.name,
                name=f"sync {app.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
                # First pass right away, apps spread over a couple of seconds.
                next_run_time=now + timedelta(seconds=random.uniform(0, min(2.0, interval / 10))),
            )
        self.metrics.prepare([app.name for app in self.apps])
        scheduler.start()
        self.health.scheduler_running = True
        server = None
        server_task = None
        if self.settings.metrics_port:
            server = metrics_server(
                self.metrics, self.health, self.settings.metrics_port, self.settings.metrics_host
            )
            server_task = asyncio.create_task(server.serve())
        log.info(
            "serving %d app(s): %s",
            len(self.apps),
            ", ".join(f"{a.name} every {a.interval_seconds:g}s" for a in self.apps),
        )
        try:
            await self.stop.wait()
        finally:
            log.info("stopping: no new passes; letting passes in flight commit their page")
            # Pause, not shut down, while passes finish: APScheduler's asyncio executor
            # cancels the jobs still running when it shuts down.
            scheduler.pause()
            if self.running:
                _, late = await asyncio.wait(set(self.running), timeout=STOP_GRACE_SECONDS)
                self._grace_ran_out = bool(late)
                for task in late:
                    task.cancel()
                if late:  # cancelled: their runs are recorded, within the hard stop's 28 s
                    await asyncio.wait(late, timeout=1.5)
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a callback of the loop
            self.health.scheduler_running = False
            await asyncio.to_thread(self._forget_next_passes)
            if server is not None and server_task is not None:
                server.should_exit = True
                await asyncio.wait({server_task}, timeout=5)
        log.info("stopped")

    async def _run_app(self, app: ResolvedApp) -> list[PassResult]:
        if self.stop.is_set():
            return []
        task = asyncio.current_task()
        assert task is not None
        self.running.add(task)
        try:
            if not await self._schema_still_ours():
                return []
            with log_context(app=app.name):
                results = await sync_app(
                    self.engine,
                    self.settings,
                    app,
                    list(CampaignType),
                    pass_options(self.settings),
                    stop=self.stop,
                    hooks=[self.metrics.on_client_event],
                    transport=self.transport,
                )
        except asyncio.CancelledError:  # the grace period ran out, or a second signal came
            why = "the stop's grace period ran out" if self._grace_ran_out else "stopped at once"
            log.warning("pass of app '%s' cut short: %s", app.name, why)
            return []
        except Exception:
            log.exception("pass of app '%s' failed unexpectedly", app.name)
            results = []
            self.health.record(
                app.name,
                [PassResult(app.name, CampaignType.PUSH, PassStatus.FAILED, error="crashed")],
            )
        else:
            for result in results:
                self.metrics.record_pass(result)
            self.health.record(app.name, results)
            if any(result.status == PassStatus.FAILED for result in results):
                # A migration while the pass ran stops it at its next page (the lease's
                # renewal reads the revision): serve stops now, not at the next interval.
                await self._schema_still_ours()
        finally:
            self.running.discard(task)
        self.passes[app.name] = self.passes.get(app.name, 0) + 1
        if self.stop.is_set():  # no next pass to plan: serve is stopping (a review's find:
            return results  # planned after the stop, it outlived serve in `status`)
        await self._record_next_pass(app)
        return results

    async def _schema_still_ours(self) -> bool:
        """Whether the database still holds this version's schema, read before each pass:
        a newer campaign-sync may have migrated it since serve started (a rolling upgrade),
        and a replica left running wrote into the new schema while every new process
        refused it (a review's find). If not, serve stops (`refused`: exit 2, the message
        of a refused start). A database that cannot be read says so in the pass."""
        try:
            await asyncio.to_thread(ensure_current, self.engine)
        except SchemaNotCurrent as refused:
            if self.refused is None:
                self.refused = refused
                log.error("stopping: %s", refused)
            self.stop.set()
            return False
        except Exception as error:  # DBAPIError, or a migration's tables read midway
            log.debug("could not read the schema's revision: %s", error)
        return True

    def _forget_next_passes(self) -> None:
        """No pass is planned once serve stops: `status` must not say one is due. Only the
        times this replica recorded are cleared: another replica still running keeps its
        own (clearing every app's made `status` say serve had stopped: a review's find)."""
        try:
            with self.engine.begin() as conn:
                for name, planned in self._next_passes.items():
                    conn.execute(
                        update(sync_state)
                        .where(sync_state.c.app == name, sync_state.c.next_pass_at == planned)
                        .values(next_pass_at=None)
                    )
        except DBAPIError as error:
            log.warning("could not clear the planned passes: %s", database_problem(error))

    async def _record_next_pass(self, app: ResolvedApp) -> None:
        """For `status`: when the app's next pass is planned. A database that cannot take
        it is one warning line (the pass itself already said why it failed): it was an
        APScheduler job traceback of ~100 lines at every pass while the database was away.
        The update runs in a thread: on the event loop, a row lock another session held
        on sync_state left SIGTERM unheard (and the stop's watchdog unarmed) for minutes."""
        job = self.scheduler.get_job(app.name) if self.scheduler else None
        next_run = getattr(job, "next_run_time", None)
        if next_run is None:
            return

        def record() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    update(sync_state)
                    .where(sync_state.c.app == app.name)
                    .values(next_pass_at=next_run)
                )

        try:
            await asyncio.to_thread(record)
        except DBAPIError as error:
            log.warning("could not record the next pass: %s", database_problem(error))
        else:
            self._next_passes[app.name] = next_run


def serve(engine: Engine, settings: Settings, apps: list[ResolvedApp]) -> None:
    """`campaign-sync serve`. Raises `ConfigError` when the metrics port cannot be had, and
    `SchemaNotCurrent` when it stopped because the database's schema changed under it."""
    if settings.metrics_port:
        _check_port(settings)
    service = Service(engine, settings, apps)
    run_until_signalled(service.run)
    if service.refused is not None:
        raise service.refused


def _check_port(settings: Settings) -> None:
    """Fail before starting anything when the metrics port is taken (not halfway, later).
    Raises `ConfigError` naming the setting at fault where its value came from (flag,
    variable, config file key): `check.metrics_address_problem`'s message."""
    problem = metrics_address_problem(settings)
    if problem is not None:
        raise ConfigError(problem[0])
