"""The HTTP client for Batch's campaign endpoints (list, view, update, push stats), one
pooled connection set per app.

Each call goes: concurrency slot -> rate gate (shared 429 pause, learned rate) -> HTTP ->
typed error or parsed JSON, all under the retry policy. Only routes are logged, never a
URL with the API key in it, and never the REST key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

import httpx

from campaign_sync.batch.endpoints import (
    LIST,
    PAGE_LIMIT,
    STATS,
    UPDATE,
    VIEW,
    CampaignType,
    Endpoint,
)
from campaign_sync.batch.errors import (
    BatchError,
    CampaignGone,
    DocumentTooDeep,
    MalformedResponse,
    NetworkError,
    TooManyRequests,
    WrongCampaign,
    WrongShape,
    error_from_response,
    transport_reason,
)
from campaign_sync.batch.proxies import proxy_for, ssl_context
from campaign_sync.batch.ratelimit import LearnedRate, RateGate, RatePolicy
from campaign_sync.batch.retry import RetryBudget, RetryPolicy
from campaign_sync.batch.sweep import SweepPage, SweepPosition, sweep_pages
from campaign_sync.jsondoc import NestedTooDeeply, UnreadableJSON, decode, decode_array, encode
from campaign_sync.logs import mask_cut, printable, register_secret


def import_transport() -> None:
    """Import now what a client's first request would: httpcore (with h11, and socksio
    where installed), which httpx 0.28 imports when a transport is made, and anyio's
    asyncio back end, which httpcore's first lock asks for. For the commands' set-up
    window (`startup`), where the collector is off: imported mid-pass, after the window,
    they ran with the collector on, which walked their new objects again and again. A
    `sync` of an empty app: 2.543 G -> 2.524 G instructions (cachegrind, two runs each,
    2026-11-30; issue 14, target 3). Loads nothing that a pass would not; an anyio
    without that back end (its module is private) is left to load it its own way."""
    import httpcore  # noqa: F401

    with contextlib.suppress(ImportError):  # anyio moved its back end: it loads it itself
        import anyio._backends._asyncio  # noqa: F401


def _shown_token(token: str) -> str:
    """A campaign token as a message shows it: quoted, escaped as `logs.printable` escapes
    (a trailing space, U+0000, an escape sequence stay visible: `answer_text` made them
    spaces and collapsed them, so a detail answered for 'tok ' read "answered for campaign
    'tok' when asked for 'tok'"), masked, at most 80 characters of it."""
    return f"'{printable(mask_cut(token, 80))}'"


def _json_kind(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words (RFC 8259, section 3): 'a JSON array'."""
    if value is None:
        return "JSON null"
    kinds = {bool: "boolean", str: "string", list: "array", dict: "object"}
    kind = next((name for cls, name in kinds.items() if isinstance(value, cls)), "number")
    return f"a JSON {kind}"


_MISSING = object()  # a key the answer does not have


class _Gone:
    def __repr__(self) -> str:
        return "GONE"


if TYPE_CHECKING:  # the client only adds to a pass's counters
    from campaign_sync.outcome import RunCounts

# httpx logs every request URL at INFO, and our URLs carry the app's API key.
logging.getLogger("httpx").setLevel(logging.WARNING)

GONE: Final = _Gone()
"""What a view returns when Batch answers 404: the campaign no longer exists. The stats
route answers it too when a campaign has no stats (yet)."""


@dataclass(frozen=True)
class Responded:
    """An answer came (`status` 0: none did: a timeout or a connection error); `rate` is
    the app's learned request rate after it, in requests/s (None: no limit seen yet)."""

    app: str
    route: str
    status: int
    rate: float | None


@dataclass(frozen=True)
class Retrying:
    """A request for `campaign_type` failed in a way worth another attempt."""

    app: str
    campaign_type: CampaignType
    route: str


@dataclass(frozen=True)
class Paused:
    """A 429 paused every request of the app for `seconds`."""

    app: str
    seconds: float


ClientEvent = Responded | Retrying | Paused
ClientHook = Callable[[ClientEvent], None]
"""What listens to a client (progress, metrics): one list of these, `BatchClient.hooks`."""


@dataclass(frozen=True)
class ClientOptions:
    base_url: str = "https://api.batch.com"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    concurrency: int = 8
    rate: RatePolicy = field(default_factory=RatePolicy)
    learned_rate: LearnedRate | None = None  # where the rate gate starts (db.pacing's)
    retry: RetryBudget = field(default_factory=RetryBudget)
    allow_insecure_http: bool = False  # plain http through a proxy on another host


def key_fingerprint(api_key: str) -> str:
    """What `sync_state.api_key_fingerprint` keeps of a live API key, never the key itself:
    32 hex digits of keyed BLAKE2b (128 bits), the same for the same key in every process
    (a pass records it, the next pass and `check` compare with it)."""
    return hashlib.blake2b(
        api_key.encode("utf-8", "surrogatepass"), digest_size=16, key=b"campaign-sync"
    ).hexdigest()


class BatchClient:
    """One app's view of the Batch API."""

    def __init__(
        self,
        *,
        app: str,
        api_key: str,
        rest_api_key: str,
        options: ClientOptions | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        hooks: Sequence[ClientHook] = (),
    ) -> None:
        self.app = app
        self.options = options or ClientOptions()
        self._api_key = api_key
        # What sync_state keeps of the key (`db.state.key_refusal`), never the key.
        self.key_fingerprint = key_fingerprint(api_key)
        # Masked wherever they could show: log lines, and what Batch's answers say
        # (`error_from_response`), which may quote the request it refuses.
        register_secret(rest_api_key)  # first: its full mask wins if both keys are one
        register_secret(api_key, keep_last=4)
        self.hooks: list[ClientHook] = list(hooks)
        self.gate = RateGate(
            self.options.rate, learned=self.options.learned_rate, on_pause=self._paused
        )
        self.policy = RetryPolicy(self.options.retry, self.gate, app=app)
        self._slots = asyncio.Semaphore(self.options.concurrency)
        limits = httpx.Limits(
            max_connections=self.options.concurrency,
            max_keepalive_connections=self.options.concurrency,
        )
        self.proxy = (
            proxy_for(self.options.base_url, allow_insecure_http=self.options.allow_insecure_http)
            if transport is None
            else None
        )
        if transport is None:  # CA bundles from SSL_CERT_FILE/SSL_CERT_DIR (trust_env)
            proxy = self.proxy.url if self.proxy else None
            transport = httpx.AsyncHTTPTransport(limits=limits, verify=ssl_context(), proxy=proxy)
        self._http = httpx.AsyncClient(
            base_url=self.options.base_url,
            headers={"X-Authorization": rest_api_key, "Content-Type": "application/json"},
            timeout=httpx.Timeout(self.options.read_timeout, connect=self.options.connect_timeout),
            limits=limits,
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> BatchClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the endpoints -------------------------------------------------------------------

    async def list_push(self, offset: int = 0, limit: int = PAGE_LIMIT) -> list[dict[str, Any]]:
        return await self.list_campaigns(CampaignType.PUSH, offset=offset, limit=limit)

    async def list_in_app(self, offset: int = 0, limit: int = PAGE_LIMIT) -> list[dict[str, Any]]:
        return await self.list_campaigns(CampaignType.IN_APP, offset=offset, limit=limit)

    async def view_push(self, token: str) -> dict[str, Any] | _Gone:
        return await self.view_campaign(CampaignType.PUSH, token)

    async def view_in_app(self, token: str) -> dict[str, Any] | _Gone:
        return await self.view_campaign(CampaignType.IN_APP, token)

    async def update_in_app(self, token: str, payload: dict[str, Any]) -> Any:
        """POST the full payload; returns Batch's (undocumented) answer body, or None."""
        return await self._call(
            UPDATE, CampaignType.IN_APP, token=token, json_body=payload, expect=None
        )

    async def push_stats(
        self, token: str, *, counts: RunCounts | None = None
    ) -> dict[str, Any] | _Gone:
        """The daily statistics of a push campaign (`campaign_token`, `detail`), or `GONE`
        when Batch answers 404 (no stats for it, or no such campaign). Same gate, retry
        policy and 429 pause as every other call of the app."""
        body = await self._call(
            STATS, CampaignType.PUSH, token=token, counts=counts, counted="stats_calls",
            expect=dict,
        )  # fmt: skip
        return cast(dict[str, Any] | _Gone, body)

    # -- generic forms ------------------------------------------------------------------

    async def list_campaigns(
        self,
        campaign_type: CampaignType,
        *,
        offset: int = 0,
        limit: int = PAGE_LIMIT,
        counts: RunCounts | None = None,
    ) -> list[dict[str, Any]]:
        body = await self._call(
            LIST,
            campaign_type,
            params={"from": offset, "limit": limit},
            counts=counts,
            counted="list_calls",
            expect=list,
        )
        return cast(list[dict[str, Any]], body)

    async def view_campaign(
        self, campaign_type: CampaignType, token: str, *, counts: RunCounts | None = None
    ) -> dict[str, Any] | _Gone:
        """A campaign's detail, or `GONE` when Batch answers 404 (see `errors.CampaignGone`)."""
        body = await self._call(
            VIEW, campaign_type, token=token, counts=counts, counted="detail_calls", expect=dict
        )
        return cast(dict[str, Any] | _Gone, body)

    def sweep(
        self,
        campaign_type: CampaignType,
        start: SweepPosition | None = None,
        *,
        counts: RunCounts | None = None,
    ) -> AsyncIterator[SweepPage]:
        async def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
            return await self.list_campaigns(
                campaign_type, offset=offset, limit=limit, counts=counts
            )

        return sweep_pages(fetch, start)

    # -- the request loop ---------------------------------------------------------------

    async def _call(
        self,
        endpoint: Endpoint,
        campaign_type: CampaignType,
        *,
        token: str = "",
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        counts: RunCounts | None = None,
        counted: str | None = None,
        expect: type | None,
    ) -> Any:
        """One call (its retries included): the answer's body, parsed as `expect`. `counted`
        names the counter of `counts` this call adds one to, once its first request is
        sent (a call still waiting for a slot or the pace when the pass stops was counted,
        and sync_runs showed detail calls that were never made); each later request adds
        one to `counts.retries`, as it is sent."""
        route = endpoint.route(campaign_type)
        sent = False
        path = endpoint.path(self._api_key, campaign_type, token)
        body, headers = None, None
        if json_body is not None:
            # ASCII JSON, not httpx's UTF-8 (ensure_ascii=False): a lone surrogate read from
            # Batch's own campaign (`"\ud800"`) goes back as the escape it came as, where
            # encoding it to UTF-8 raised UnicodeEncodeError; a number no Python type holds
            # (`1e400`) goes back as the number it came as (`jsondoc.encode`).
            body = encode(json_body).encode()
            headers = {"Content-Type": "application/json"}

        async def attempt() -> Any:
            try:
                return await exchange()
            except BatchError as error:
                # The server or the network failed (not a 429, not an answer about the
                # request): a 429 amid such failures is spared the cut (ratelimit).
                if error.retriable and not isinstance(error, TooManyRequests):
                    self.gate.on_fault()
                raise

        async def exchange() -> Any:
            nonlocal sent
            async with self._slots:
                sent_at = await self.gate.acquire()
                if counts is not None:
                    # Counted as they go out: a retry a stop abandoned during its backoff
                    # was counted (84 recorded, none sent).
                    if sent:
                        counts.retries += 1
                    elif counted is not None:
                        setattr(counts, counted, getattr(counts, counted) + 1)
                sent = True
                try:
                    response = await self._http.request(
                        endpoint.method, path, params=params, content=body, headers=headers
                    )
                except httpx.DecodingError as error:  # a body that cannot be decompressed
                    self._record(route, 0)
                    raise MalformedResponse(
                        f"{route} for app '{self.app}' answered with a body that cannot be "
                        f"decoded ({type(error).__name__})",
                        route=route,
                    ) from None
                except httpx.TimeoutException as error:
                    self._record(route, 0)
                    raise NetworkError(
                        f"{route} for app '{self.app}' timed out ({type(error).__name__})",
                        reason=type(error).__name__,
                        route=route,
                    ) from None
                except httpx.RequestError as error:  # transport, protocol and framing errors
                    self._record(route, 0)
                    through = f" through {self.proxy.describe()}" if self.proxy else ""
                    reason = transport_reason(error)
                    raise NetworkError(
                        f"{route} for app '{self.app}' could not reach "
                        f"{self.options.base_url}{through} ({reason})",
                        reason=reason,
                        route=route,
                    ) from None
            self._record(route, response.status_code)
            if not response.is_success:
                failure = error_from_response(
                    response, route=route, app=self.app, endpoint=endpoint.name
                )
                if isinstance(failure, TooManyRequests):
                    self.gate.on_too_many_requests(sent_at, failure.retry_after)
                else:  # answered under the limit: a 429 after it starts a new streak
                    self.gate.on_answer()
                if isinstance(failure, CampaignGone):
                    return GONE
                raise failure
            self.gate.on_success()
            return self._parse(response, route, expect, token, endpoint is VIEW)

        def retried() -> None:
            self._emit(Retrying(self.app, campaign_type, route))

        deadline, named_by = self.options.retry.max_seconds, self.options.retry.named_by
        try:
            # A hard deadline, waits and slow bodies included: httpx's timeouts apply per
            # read, so a body that trickles in could otherwise hold a request far longer.
            async with asyncio.timeout(deadline):
                return await self.policy.call(attempt, retried)
        except TimeoutError:
            raise NetworkError(
                f"{route} for app '{self.app}' got no complete answer within {deadline:g}s "
                f"({named_by})",
                route=route,
            ) from None

    def _parse(
        self,
        response: httpx.Response,
        route: str,
        expect: type | None,
        token: str = "",
        detail: bool = False,
    ) -> Any:
        """The answer's JSON (see `jsondoc.decode`); raises `MalformedResponse` (retried)
        for a body that is not JSON (cut short, a proxy's page) or a list that is no array,
        `WrongShape` (not retried) for a detail that is no object, `DocumentTooDeep` (not
        retried) for JSON nested too deeply to decode, `WrongCampaign` for an answer about
        another campaign than `token` (and, for a `detail`, one that does not name one)."""
        try:
            read = decode_array if expect is list else decode
            body = read(response.content) if response.content or expect else None
        except UnreadableJSON as unreadable:
            if expect is None:  # the update's answer body is undocumented: only informative
                return None
            error: type[MalformedResponse] = MalformedResponse
            what = "a body that is not JSON"
            if isinstance(unreadable, NestedTooDeeply):
                error, what = DocumentTooDeep, "JSON nested too deeply to read"
            raise error(
                f"{route} for app '{self.app}' answered 200 with {what} "
                f"({len(response.content)} bytes)",
                status=response.status_code,
                route=route,
            ) from None
        if expect is not None and not isinstance(body, expect):
            # A detail that is no object is not asked again (`WrongShape`); a list answering
            # an object is retried: that is how a gateway's passing error looks.
            error_type = WrongShape if expect is dict else MalformedResponse
            raise error_type(
                f"{route} for app '{self.app}' answered 200 with {_json_kind(body)}, "
                f"expected {_json_kind(expect())}",
                status=response.status_code,
                route=route,
            )
        answered_for = body.get("campaign_token", _MISSING) if isinstance(body, dict) else None
        told = answered_for is not _MISSING and answered_for is not None
        if token and expect is dict and answered_for != token and (told or detail):
            # Never store one campaign's detail under another's token (a cache, a proxy),
            # nor a detail that does not say whose it is: Batch's view adds campaign_token
            # to every detail (push-campaigns-view, in-app-campaigns-view), and `{}` stored
            # as a campaign's detail erased its name, messages and state in one version.
            # (A push stats answer without one is taken: it replaces days, not a campaign.)
            if answered_for is _MISSING:
                whose = "without the campaign_token every detail carries"
            elif not isinstance(answered_for, str):
                whose = f"with a campaign_token that is {_json_kind(answered_for)}"
            else:
                whose = f"for campaign {_shown_token(answered_for)}"
            raise WrongCampaign(
                f"{route} for app '{self.app}' answered {whose} "
                f"when asked for {_shown_token(token)}",
                status=response.status_code,
                route=route,
            )
        return body

    def _record(self, route: str, status: int) -> None:
        self._emit(Responded(self.app, route, status, self.gate.rate))

    def _paused(self, seconds: float) -> None:
        self._emit(Paused(self.app, seconds))

    def _emit(self, event: ClientEvent) -> None:
        for hook in list(self.hooks):
            hook(event)


__all__ = [
    "GONE",
    "BatchClient",
    "BatchError",
    "ClientEvent",
    "ClientHook",
    "ClientOptions",
    "Paused",
    "Responded",
    "Retrying",
    "key_fingerprint",
]
