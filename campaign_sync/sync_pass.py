"""One pass for one app and one campaign type: sweep, diff, fetch, load, record (and, for
push with stats on, the stats step of `stats_sync` once the campaigns are committed).

Three stages run as a pipeline joined by small queues, so the next list page and the
details of this one are in flight while the page before is written:

    sweep (list pages) -> details (only new or changed campaigns) -> load (one transaction)

Each committed page carries the sweep cursor, so a pass that stops for any reason resumes
where it was. Deletions are decided only after a complete sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from campaign_sync.batch.client import GONE, BatchClient, ClientEvent, ClientHook, Paused, Retrying
from campaign_sync.batch.errors import AuthenticationInvalid, BatchError, StopRequested
from campaign_sync.batch.sweep import SweepError, SweepPage
from campaign_sync.db.loader import stored_campaigns, write_page
from campaign_sync.db.locks import (
    DEFAULT_LEASE_SECONDS,
    Guard,
    LockLost,
    SchemaChanged,
    pass_lock,
)
from campaign_sync.db.session import database_problem, read_with_reconnect, refused_privilege
from campaign_sync.db.sightings import mark_seen
from campaign_sync.db.state import (
    MassDeleteRefused,
    SweepStart,
    begin_run,
    deletion_candidates,
    details_to_refresh,
    end_sweep,
    fail_abandoned_runs,
    finish_run,
    key_refusal,
    pair_label,
    record_key,
    record_unbegun_run,
    refuse_mass_delete,
    start_or_resume_sweep,
    tombstone_unseen,
)
from campaign_sync.db.types import utcnow
from campaign_sync.domain import CampaignType, shown_token
from campaign_sync.logs import log_context
from campaign_sync.outcome import PassResult, PassStatus, RunCounts
from campaign_sync.plan import (
    PageLoad,
    StoredCampaign,
    campaigns_by_token,
    plan_page,
)
from campaign_sync.push_stats import StatsPolicy
from campaign_sync.stats_sync import sync_push_stats

log = logging.getLogger(__name__)

CONFIRM_BATCH = 100  # deletion candidates asked at once: memory bounded, a stop heard between
CONFIRMING_STOPPED = "stopped while confirming deletions with Batch; nothing was marked"


@dataclass(frozen=True)
class PassOptions:
    full_refresh: bool = False
    allow_mass_delete: bool = False
    detail_max_age_seconds: float = 86400.0
    lock_lease_seconds: float = DEFAULT_LEASE_SECONDS
    # Old details refetched per pass (the oldest first); None: all of them at once.
    refresh_budget: int | None = None
    stats: StatsPolicy | None = None  # None: no stats step (CAMPAIGN_SYNC_STATS off)


class ProgressSink(Protocol):
    """What a live display hears about (`progress.LiveProgress`); `NoProgressSink` hears
    nothing."""

    def page_swept(
        self, app: str, campaign_type: CampaignType, entries: int, needed: int
    ) -> None: ...

    def detail_fetched(self, app: str, campaign_type: CampaignType) -> None: ...

    def rate_limited(self, app: str, seconds: float) -> None: ...

    def retried(self, app: str, campaign_type: CampaignType) -> None: ...

    def pass_finished(self, result: PassResult) -> None: ...


class NoProgressSink:
    def page_swept(self, app: str, campaign_type: CampaignType, entries: int, needed: int) -> None:
        pass

    def detail_fetched(self, app: str, campaign_type: CampaignType) -> None:
        pass

    def rate_limited(self, app: str, seconds: float) -> None:
        pass

    def retried(self, app: str, campaign_type: CampaignType) -> None:
        pass

    def pass_finished(self, result: PassResult) -> None:
        pass


def needs_detail(
    known: StoredCampaign | None,
    list_hash: str | None,
    *,
    now: datetime,
    max_age: timedelta,
    full_refresh: bool,
    refresh_allowed: bool = True,
) -> bool:
    """New, changed in the list, tombstoned, never fetched, or fetched too long ago (when
    this pass's refresh budget allows it: `refresh_allowed`)."""
    if full_refresh or known is None or known.detail_fetched_at is None:
        return True
    if known.deleted_at is not None or known.list_hash != list_hash:
        return True
    return refresh_allowed and known.detail_fetched_at <= now - max_age


class SyncPass:
    """A single pass; `run()` takes the lock, journals the run and drives the pipeline."""

    def __init__(
        self,
        engine: Engine,
        client: BatchClient,
        campaign_type: CampaignType,
        options: PassOptions,
        *,
        stop: asyncio.Event | None = None,
        progress: ProgressSink | None = None,
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.app = client.app
        self.campaign_type = campaign_type
        self.options = options
        self.stop = stop or asyncio.Event()
        self.progress: ProgressSink = progress or NoProgressSink()
        self.write_lock = write_lock
        self.counts = RunCounts()  # the run's counters, as sync_runs records them
        self.reached_end = False
        self.unproven = False  # the sweep started over without its anchors: no deletions
        self.guard: Guard | None = None
        self.refreshable: set[str] | None = None  # None: every old detail may be refreshed
        self.listed_gone: set[str] = set()  # listed, yet Batch answered 404 to their detail
        self.key_recorded = False  # sync_state holds this key's fingerprint (`key_refusal`)
        self.run_id: int | None = None  # the run's sync_runs row, once begun

    async def run(self) -> PassResult:
        started = time.monotonic()
        began = utcnow()
        try:
            async with pass_lock(
                self.engine,
                self.app,
                self.campaign_type,
                lease_seconds=self.options.lock_lease_seconds,
            ) as lease:
                if isinstance(lease, str):
                    log.info(
                        "skipping %s campaigns of app '%s': another process is syncing them (%s)",
                        self.campaign_type.label,
                        self.app,
                        lease,
                    )
                    result = PassResult(
                        self.app, self.campaign_type, PassStatus.SKIPPED, error=lease
                    )
                else:
                    self.guard = lease.renew
                    result = await self._run_locked()
        except DBAPIError as error:  # the database went away before or after the pass
            message = f"database problem: {database_problem(error)}"
            log.error("%s pass of app '%s' failed: %s", self.campaign_type.label, self.app, message)
            run_id = self.run_id
            if run_id is None:  # before its run began (the lease, or the run's first row)
                run_id = await asyncio.to_thread(self._record_unbegun, message, began)
            result = PassResult(
                self.app,
                self.campaign_type,
                PassStatus.FAILED,
                run_id,
                error=message,
                misconfigured=refused_privilege(error),
            )
        result.seconds = time.monotonic() - started
        self.progress.pass_finished(result)
        return result

    def _record_unbegun(self, message: str, began: datetime) -> int | None:
        """`state.record_unbegun_run`'s id, or None (logged) when the database refuses
        that too."""
        try:
            return record_unbegun_run(
                self.engine,
                self.app,
                self.campaign_type,
                full_refresh=self.options.full_refresh,
                error=message,
                started_at=began,
            )
        except DBAPIError as error:
            log.warning(
                "the failed %s pass of app '%s' is not in sync_runs: %s",
                self.campaign_type.label,
                self.app,
                database_problem(error),
            )
            return None

    async def _run_locked(self) -> PassResult:
        def begin() -> tuple[int, int, SweepStart | str]:
            with self.engine.begin() as conn:
                abandoned = fail_abandoned_runs(conn, self.app, self.campaign_type)
                run_id = begin_run(
                    conn, self.app, self.campaign_type, full_refresh=self.options.full_refresh
                )
                refused, self.key_recorded = key_refusal(
                    conn, self.app, self.campaign_type, self.client.key_fingerprint
                )
                if refused is not None:
                    return abandoned, run_id, refused
                start = start_or_resume_sweep(
                    conn,
                    self.app,
                    self.campaign_type,
                    run_id=run_id,
                    full_refresh=self.options.full_refresh,
                )
                self.refreshable = details_to_refresh(
                    conn,
                    self.app,
                    self.campaign_type,
                    now=utcnow(),
                    max_age_seconds=self.options.detail_max_age_seconds,
                    budget=self.options.refresh_budget,
                )
            return abandoned, run_id, start

        # Every database call of a pass runs in a thread, so that the event loop stays
        # free to hear a stop: a call waiting on a lock another session holds, made on
        # the loop's thread, left SIGTERM and SIGINT unheard until the lock went.
        abandoned, run_id, start = await asyncio.to_thread(begin)
        self.run_id = run_id  # committed: from here on, the run's row says how it ends
        with log_context(self.app, self.campaign_type.value, run_id):
            if abandoned:
                log.warning("marked %d abandoned run(s) as failed", abandoned)
            if isinstance(start, str):  # another key than the campaigns were synced with
                log.error("pass refused: %s", start)
                await asyncio.to_thread(
                    self._finish, run_id, PassStatus.FAILED, replace(self.counts), 0, False, start
                )
                return PassResult(
                    self.app, self.campaign_type, PassStatus.FAILED, run_id, self.counts, start
                )
            if start.resumed and start.position is not None:
                log.info("resuming sweep %d at offset %d", start.sweep_id, start.position.offset)
            return await self._drive(run_id, start)

    async def _drive(self, run_id: int, start: SweepStart) -> PassResult:
        status: PassStatus = PassStatus.FAILED
        error: str | None = None
        complete = misconfigured = False
        try:
            await self._pipeline(run_id, start)
            if self.reached_end and self.unproven:
                # Every campaign it showed is stored; whether the others are gone is for a
                # sweep that can vouch for the list: the next pass starts a fresh one.
                log.warning(
                    "the resumed sweep met none of the campaigns it stopped at and started "
                    "over from the list's top (many created meanwhile, or an API key of "
                    "another app?): it marks no deletion, and the next pass sweeps afresh"
                )
                await asyncio.to_thread(self._end_sweep, guarded=True)
                status = PassStatus.SUCCEEDED
            elif self.reached_end:
                await self._decide_deletions(start.sweep_id)

                def tombstones() -> int:
                    with self.engine.begin() as conn:
                        if self.guard is not None:  # still ours, after the confirmation calls
                            self.guard(conn)
                        now = utcnow()
                        marked = tombstone_unseen(
                            conn,
                            self.app,
                            self.campaign_type,
                            sweep_id=start.sweep_id,
                            now=now,
                            run_id=run_id,
                        )
                        end_sweep(conn, self.app, self.campaign_type, complete=True, now=now)
                    return marked

                self.counts.campaigns_deleted += await asyncio.to_thread(tombstones)
                complete = True
                status = await self._push_stats(run_id)
            else:
                status = PassStatus.INTERRUPTED
                log.info("pass interrupted; the next pass resumes from the saved cursor")
        except StopRequested as stopped:
            status = PassStatus.INTERRUPTED
            if str(stopped) == CONFIRMING_STOPPED:
                log.info("pass interrupted: %s; the next pass asks again", stopped)
            else:
                log.info(
                    "pass interrupted while waiting for Batch (a 429 pause or a retry); the "
                    "next pass resumes from the saved cursor"
                )
        except MassDeleteRefused as refused:
            error = str(refused)
            await asyncio.to_thread(self._end_sweep)
            log.error("%s", error)
        except SweepError as failure:
            # The list could not be swept from where the cursor stands (a resumed tail
            # that new campaigns keep pushing down, a page empty in the middle): the next
            # pass starts a fresh sweep from the top rather than failing there again.
            error = str(failure)
            await asyncio.to_thread(self._end_sweep)
            log.error("pass failed: %s", error)
        except (BatchError, LockLost) as failure:
            error = str(failure)
            misconfigured = isinstance(failure, SchemaChanged)  # sync exits 2, as at a start
            log.error("pass failed: %s", error)
        except DBAPIError as failure:
            error = f"database problem: {database_problem(failure)}"
            misconfigured = refused_privilege(failure)
            log.error("pass failed: %s", error)
        except asyncio.CancelledError:
            status, error = PassStatus.INTERRUPTED, "cancelled"
            raise
        except Exception as failure:  # a bug: record it, never hide it
            error = f"{type(failure).__name__}: {failure}"
            log.exception("pass failed unexpectedly")
        finally:
            counts = replace(self.counts)
            finish = (run_id, status, counts, start.sweep_id, complete, error)
            await asyncio.to_thread(self._finish, *finish)
        result = PassResult(
            self.app,
            self.campaign_type,
            status,
            run_id,
            counts,
            error,
            sweep_complete=complete,
            misconfigured=misconfigured,
        )
        log.info("pass %s: %s", status, counts.summary())
        return result

    async def _push_stats(self, run_id: int) -> PassStatus:
        """The stats step, when asked for and this is the push pass: `succeeded`, or
        `interrupted` when a stop came before every due campaign was fetched."""
        if self.options.stats is None or self.campaign_type is not CampaignType.PUSH:
            return PassStatus.SUCCEEDED
        finished = await sync_push_stats(
            self.engine,
            self.client,
            run_id=run_id,
            policy=self.options.stats,
            counts=self.counts,
            stop=self.stop,
            guard=self.guard,
            write_lock=self.write_lock,
        )
        return PassStatus.SUCCEEDED if finished else PassStatus.INTERRUPTED

    def _end_sweep(self, *, guarded: bool = False) -> None:
        """End the sweep incomplete: the next pass starts a fresh one. `guarded`: only
        while the lease is still ours."""
        with self.engine.begin() as conn:
            if guarded and self.guard is not None:
                self.guard(conn)
            end_sweep(conn, self.app, self.campaign_type, complete=False, now=utcnow())

    def _finish(
        self,
        run_id: int,
        status: PassStatus,
        counts: RunCounts,
        sweep_id: int,
        complete: bool,
        error: str | None,
    ) -> None:
        """Journal the run; when the database cannot take it, the run stays `running` and
        the next pass marks it failed (`fail_abandoned_runs`)."""
        try:
            with self.engine.begin() as conn:
                finish_run(
                    conn,
                    run_id,
                    status=status,
                    counts=counts,
                    sweep_id=sweep_id,
                    sweep_complete=complete,
                    error=error,
                )
        except DBAPIError as failure:
            log.error("could not record the run's end: %s", database_problem(failure))

    # -- the pipeline -------------------------------------------------------------------

    async def _pipeline(self, run_id: int, start: SweepStart) -> None:
        pages: asyncio.Queue[SweepPage | None] = asyncio.Queue(maxsize=1)
        # Each page's details are fetched by a task of its own, so the next page's requests
        # fill the concurrency slots while this page's last ones finish (at most 3 pages).
        loads: asyncio.Queue[tuple[asyncio.Task[PageLoad], bool] | None] = asyncio.Queue(maxsize=1)
        full_refresh = self.options.full_refresh or start.full_refresh

        # A stage that fails records why and ends its stream: what is already fetched
        # further down the pipeline is still committed before the failure is raised.
        failures: list[Exception] = []

        async def sweep_stage() -> None:
            try:
                async for page in self.client.sweep(
                    self.campaign_type, start.position, counts=self.counts
                ):
                    self.unproven = self.unproven or page.unproven
                    await pages.put(page)
                    if self.stop.is_set() or failures:
                        break
            except Exception as error:
                failures.append(error)
            await pages.put(None)

        async def detail_stage() -> None:
            while (page := await pages.get()) is not None and not self.stop.is_set():
                fetch = asyncio.create_task(
                    self._fetch_details(page, run_id, start.sweep_id, full_refresh)
                )
                try:
                    await loads.put((fetch, page.last))
                except asyncio.CancelledError:
                    fetch.cancel()
                    raise
            await loads.put(None)

        try:
            async with asyncio.TaskGroup() as group:
                sweeper = group.create_task(sweep_stage())
                fetcher = group.create_task(detail_stage())
                ahead = []  # pages fetched ahead of a stop or a failure: not committed
                try:
                    while (item := await loads.get()) is not None:
                        fetch, last = item
                        try:
                            load = await fetch
                        except Exception as error:
                            failures.append(error)
                            break
                        self.counts.add(await self._apply(load))
                        if not self.key_recorded:  # Batch answered the list with this key
                            await asyncio.to_thread(self._record_key)
                            self.key_recorded = True
                        if last:
                            self.reached_end = True
                        if self.stop.is_set():
                            break
                finally:
                    # Also when the pass itself is cancelled (a second signal): a page's
                    # fetch waiting in the queue went on sending after the run's counts
                    # were written (a review's find: 360 requests sent, 349 recorded).
                    sweeper.cancel()
                    fetcher.cancel()
                    while not loads.empty():
                        queued = loads.get_nowait()
                        if queued is not None:
                            queued[0].cancel()
                            ahead.append(queued[0])
                await asyncio.gather(*ahead, return_exceptions=True)
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None
        if failures:
            raise failures[0]

    def _record_key(self) -> None:
        with self.engine.begin() as conn:
            record_key(conn, self.app, self.campaign_type, self.client.key_fingerprint)

    async def _fetch_details(
        self, page: SweepPage, run_id: int, sweep_id: int, full_refresh: bool
    ) -> PageLoad:
        """The page's details, for the tokens that need one. Once started, a page's fetches
        run to their end even when the pass is asked to stop: that page is committed."""
        if page.unidentified:
            log.warning(
                "%d list entries near offset %d are no campaign (no text campaign_token); "
                "skipped, and this sweep marks deleted only what Batch confirms gone",
                len(page.unidentified),
                page.offset,
            )
        entries, unsendable = campaigns_by_token(page.entries)
        for token, why in unsendable.items():
            log.warning("campaign %r skipped: %s", shown_token(token), why)
        stored = await asyncio.to_thread(self._stored, list(entries))
        now = utcnow()
        load = PageLoad(
            app=self.app,
            campaign_type=self.campaign_type,
            run_id=run_id,
            sweep_id=sweep_id,
            now=now,
            list_entries=entries,
            unsendable=unsendable,
            unidentified=page.unidentified,
            offset=page.offset,
            position=page.next_position,
            stored=stored,
        )
        max_age = timedelta(seconds=self.options.detail_max_age_seconds)
        needed = [
            token
            for token in entries
            if needs_detail(
                stored.get(token),
                load.list_hash(token),
                now=now,
                max_age=max_age,
                full_refresh=full_refresh,
                refresh_allowed=self.refreshable is None or token in self.refreshable,
            )
        ]
        self.progress.page_swept(self.app, self.campaign_type, len(entries), len(needed))
        if not needed:
            return load
        outcomes = await asyncio.gather(
            *(self._view(token) for token in needed), return_exceptions=True
        )
        abandoned = 0
        for token, outcome in zip(needed, outcomes, strict=True):
            if outcome is GONE:
                load.gone.append(token)
                self.listed_gone.add(token)
            elif isinstance(outcome, AuthenticationInvalid):
                raise outcome
            elif isinstance(outcome, BatchError):
                log.warning("detail of campaign %s not loaded: %s", shown_token(token), outcome)
                load.failed[token] = str(outcome)
            elif isinstance(outcome, StopRequested):
                # Not sent because a stop came while it waited (a 429 pause, its pace): the
                # page is still committed with what arrived, and these are asked next pass.
                load.failed[token] = "not asked: the pass was stopped while it waited"
                abandoned += 1
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                load.details[token] = outcome
        if abandoned:
            log.info("stopping: %d detail(s) of this page left for the next pass", abandoned)
        return load

    async def _view(self, token: str) -> Any:
        detail = await self.client.view_campaign(self.campaign_type, token, counts=self.counts)
        self.progress.detail_fetched(self.app, self.campaign_type)
        return detail

    def _stored(self, tokens: list[str]) -> dict[str, StoredCampaign]:
        return read_with_reconnect(
            self.engine, lambda conn: stored_campaigns(conn, self.app, self.campaign_type, tokens)
        )

    async def _apply(self, load: PageLoad) -> RunCounts:
        def write() -> RunCounts:
            load.now = utcnow()
            return write_page(self.engine, plan_page(load), self.guard)

        if self.write_lock is None:
            return await asyncio.to_thread(write)
        async with self.write_lock:
            return await asyncio.to_thread(write)

    async def _decide_deletions(self, sweep_id: int) -> None:
        """After a complete sweep, the stored campaigns it did not show (left out of the list,
        or answering 404 to a detail asked during the pass) are deletion candidates, decided
        here at once, never page by page. A sweep that showed none of the baseline's
        campaigns (those alive when the last complete sweep ended:
        `state.DeletionCandidates`), or left more of them unseen than the mass-delete limit
        (`state.is_mass_delete`), is refused (`MassDeleteRefused`) unless
        `--allow-mass-delete`; candidates stored since that sweep are not weighed. Then each
        candidate's detail is asked, 100 at a time: only Batch's 404 confirms it (a list
        whose order shifts between calls can leave a live campaign out, and marking it wrote
        false `deleted` and `restored` versions); one that answers, or whose request fails,
        is marked seen by this sweep and kept, for a later sweep to decide. A stop while
        asking raises `StopRequested`: nothing is marked, the next pass resumes and asks
        again. Cost: one detail call per candidate; an unchanged pass has none."""
        found = await asyncio.to_thread(
            read_with_reconnect,
            self.engine,
            lambda conn: deletion_candidates(conn, self.app, self.campaign_type, sweep_id=sweep_id),
        )
        candidates, stored = found.tokens, found.baseline
        if not candidates:
            return
        label = pair_label(self.app, self.campaign_type)
        unlisted_all = (
            stored > 0
            and found.baseline_unseen == stored
            and not self.listed_gone.intersection(candidates)
        )
        if unlisted_all and not self.options.allow_mass_delete:
            raise MassDeleteRefused(
                f"refusing to mark all {stored} stored {label} as deleted: the list showed "
                "none of them. If that is right, run campaign-sync sync --allow-mass-delete"
            )
        refuse_mass_delete(
            found.baseline_unseen, stored, label,
            why="the list no longer shows them, or their details answer 404",
            allow_mass_delete=self.options.allow_mass_delete,
        )  # fmt: skip
        kept: list[str] = []
        present: list[str] = []  # kept because Batch answered with their detail
        for start in range(0, len(candidates), CONFIRM_BATCH):
            if self.stop.is_set():
                raise StopRequested(CONFIRMING_STOPPED)
            batch = candidates[start : start + CONFIRM_BATCH]
            outcomes = await asyncio.gather(
                *(self._view(token) for token in batch), return_exceptions=True
            )
            for token, outcome in zip(batch, outcomes, strict=True):
                if outcome is GONE:
                    continue
                if isinstance(outcome, AuthenticationInvalid | StopRequested):
                    raise outcome
                if isinstance(outcome, BatchError):
                    log.warning(
                        "campaign %s is missing from the list, but its deletion could not "
                        "be confirmed (%s): kept until a later sweep",
                        shown_token(token),
                        outcome,
                    )
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    present.append(token)
                kept.append(token)
        if present:
            log.info(
                "%d campaign(s) the sweep did not show (left out of the list, or answering 404 "
                "during the pass) are still in Batch: not marked deleted (%s)",
                len(present),
                ", ".join(present[:5]) + (", ..." if len(present) > 5 else ""),
            )
        if kept:

            def seen() -> None:
                with self.engine.begin() as conn:
                    if self.guard is not None:  # the lease may have run out meanwhile
                        self.guard(conn)
                    now = utcnow()
                    mark_seen(conn, self.app, self.campaign_type, kept, sweep_id=sweep_id, now=now)

            await asyncio.to_thread(seen)


def _first_error(group: BaseExceptionGroup) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_error(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]


async def run_pass(
    engine: Engine,
    client: BatchClient,
    campaign_type: CampaignType,
    options: PassOptions | None = None,
    **kwargs: Any,
) -> PassResult:
    return await SyncPass(engine, client, campaign_type, options or PassOptions(), **kwargs).run()


def progress_hook(sink: ProgressSink) -> ClientHook:
    """The client events a progress sink hears: retries and 429 pauses (once per client,
    however many passes share it)."""

    def hear(event: ClientEvent) -> None:
        if isinstance(event, Paused):
            sink.rate_limited(event.app, event.seconds)
        elif isinstance(event, Retrying):
            sink.retried(event.app, event.campaign_type)

    return hear


__all__ = [
    "NoProgressSink",
    "PassOptions",
    "PassResult",
    "PassStatus",
    "ProgressSink",
    "SyncPass",
    "progress_hook",
    "run_pass",
]
