"""The simulator's HTTP behaviour: Batch's routes (push stats included), validation,
errors and update rules, plus knobs (latency, a server-side rate limit, faults, churn)
and request counters."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from campaign_sync.batch.endpoints import READ_ONLY_FIELDS
from campaign_sync.domain import CampaignType
from campaign_sync.jsondoc import UnreadableJSON, decode, encode
from campaign_sync.simulator.data import CampaignStore, current_time, generate_store, push_stats

ERRORS: dict[str, tuple[int, int]] = {
    "AUTHENTICATION_INVALID": (401, 10),
    "API_MISUSE": (403, 12),
    "ROUTE_NOT_FOUND": (404, 20),
    "MISSING_PARAMETER": (400, 30),
    "MALFORMED_PARAMETER": (400, 31),
    "MALFORMED_JSON_BODY": (400, 32),
    "SERVER_ERROR": (500, 0),
    "MAINTENANCE_ERROR": (503, 2),
    "TOO_MANY_REQUESTS": (429, 60),
}


SCRIPTABLE = {
    "400": "MALFORMED_PARAMETER",
    "401": "AUTHENTICATION_INVALID",
    "403": "API_MISUSE",
    "404": "ROUTE_NOT_FOUND",
    "500": "SERVER_ERROR",
    "503": "MAINTENANCE_ERROR",
}


Handler = Callable[["SimulatedApp"], Awaitable[Response]]  # what a route does for an app


@dataclass
class SimulatorKnobs:
    """What tests and benchmarks turn. Rates are probabilities per request (0..1)."""

    latency_seconds: float = 0.0
    rate_limit_per_second: float | None = None  # token bucket; None: no server-side limit
    rate_limit_burst: int = 10
    fault_429: float = 0.0
    fault_500: float = 0.0
    fault_503: float = 0.0
    fault_truncated: float = 0.0  # a 200 whose JSON is cut in half
    fault_hang: float = 0.0  # answer only after hang_seconds
    hang_seconds: float = 60.0
    retry_after: str | None = None  # sent with every 429 when set
    churn_every_seconds: float | None = None  # one random change per interval
    broken_tokens: set[str] = field(default_factory=set)  # their detail is always cut JSON


def error_response(
    error_type: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    status, code = ERRORS[error_type]
    body = json.dumps({"code": code, "type": error_type, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class _BatchError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass
class SimulatedApp:
    api_key: str
    stores: dict[CampaignType, CampaignStore]


@dataclass
class RequestRecord:
    at: float  # time.monotonic() when the request arrived
    route: str
    status: int


class Simulator:
    """The in-process stand-in: data per API key, knobs, counters, and the ASGI app."""

    def __init__(
        self,
        *,
        api_key: str = "SIMULATOR_API_KEY",
        rest_api_key: str = "SIMULATOR_REST_KEY",
        push: int = 50,
        in_app: int = 30,
        seed: int = 1,
        knobs: SimulatorKnobs | None = None,
        now: datetime | None = None,
    ) -> None:
        self.rest_api_key = rest_api_key
        self.now = now or current_time()  # the data's "now" (naive UTC): dates around it
        self.knobs = knobs or SimulatorKnobs()
        self.seed = seed
        # The stats route's "now" (naive UTC, like Batch's dates); tests may set a fixed one.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None)
        self.apps: dict[str, SimulatedApp] = {}
        self.add_app(api_key, push=push, in_app=in_app, seed=seed)
        self.default_api_key = api_key
        self._rng = random.Random(seed)
        self._stats_lock = threading.Lock()
        self.stats: Counter[tuple[str, int]] = Counter()
        self.requests: deque[RequestRecord] = deque(maxlen=200_000)
        self._scripted: dict[str, deque[int]] = {}
        self._bucket_tokens = float(self.knobs.rate_limit_burst)
        self._bucket_at = time.monotonic()
        self._cache: dict[tuple[Any, ...], bytes] = {}
        self.hooks: list[Callable[[str, Request], Awaitable[None] | None]] = []
        self.app = self._build_app()

    # -- data ---------------------------------------------------------------------------

    def add_app(self, api_key: str, *, push: int, in_app: int, seed: int) -> SimulatedApp:
        app = SimulatedApp(
            api_key,
            {
                CampaignType.PUSH: generate_store(CampaignType.PUSH, push, seed, self.now),
                CampaignType.IN_APP: generate_store(CampaignType.IN_APP, in_app, seed, self.now),
            },
        )
        self.apps[api_key] = app
        return app

    def store(self, campaign_type: CampaignType, api_key: str | None = None) -> CampaignStore:
        return self.apps[api_key or self.default_api_key].stores[campaign_type]

    # -- counters and scripted faults -----------------------------------------------------

    def script(self, route: str, statuses: list[int]) -> None:
        """The next requests on `route` (e.g. "view push") answer these, in order: an HTTP
        status (200 is a normal answer), -1 for truncated JSON, -2 for a hang."""
        self._scripted.setdefault(route, deque()).extend(statuses)

    def count(self, route: str | None = None, status: int | None = None) -> int:
        with self._stats_lock:
            return sum(
                n
                for (r, s), n in self.stats.items()
                if (route is None or r == route) and (status is None or s == status)
            )

    def reset_stats(self) -> None:
        with self._stats_lock:
            self.stats.clear()
            self.requests.clear()

    def stats_json(self) -> dict[str, Any]:
        with self._stats_lock:
            by_route: dict[str, dict[str, int]] = {}
            for (route, status), n in sorted(self.stats.items()):
                by_route.setdefault(route, {})[str(status)] = n
            return {"total": sum(self.stats.values()), "by_route": by_route}

    def _record(self, route: str, status: int, arrived: float) -> None:
        with self._stats_lock:
            self.stats[(route, status)] += 1
            self.requests.append(RequestRecord(arrived, route, status))

    # -- the pipeline every Batch route goes through --------------------------------------

    def _take_bucket_token(self) -> bool:
        rate = self.knobs.rate_limit_per_second
        if rate is None:
            return True
        now = time.monotonic()
        burst = float(self.knobs.rate_limit_burst)
        self._bucket_tokens = min(burst, self._bucket_tokens + (now - self._bucket_at) * rate)
        self._bucket_at = now
        if self._bucket_tokens >= 1.0:
            self._bucket_tokens -= 1.0
            return True
        return False

    def _fault(self, route: str) -> str | None:
        scripted = self._scripted.get(route)
        if scripted:
            status = scripted.popleft()
            return {200: None, -1: "truncated", -2: "hang"}.get(status, str(status))
        knobs = self.knobs
        roll = self._rng.random()
        for name, probability in (
            ("429", knobs.fault_429),
            ("500", knobs.fault_500),
            ("503", knobs.fault_503),
            ("truncated", knobs.fault_truncated),
            ("hang", knobs.fault_hang),
        ):
            if roll < probability:
                return name
            roll -= probability
        return None

    async def _serve(self, route: str, request: Request, handler: Handler) -> Response:
        arrived = time.monotonic()
        for hook in list(self.hooks):
            maybe = hook(route, request)
            if maybe is not None:
                await maybe
        if self.knobs.latency_seconds:
            await asyncio.sleep(self.knobs.latency_seconds)
        response = await self._answer(route, request, handler)
        self._record(route, response.status_code, arrived)
        return response

    async def _answer(self, route: str, request: Request, handler: Handler) -> Response:
        if not self._take_bucket_token():
            return self._too_many()
        fault = self._fault(route)
        if fault == "429":
            return self._too_many()
        if fault in SCRIPTABLE:
            return error_response(SCRIPTABLE[fault], "Injected by the simulator")
        if fault == "hang":
            await asyncio.sleep(self.knobs.hang_seconds)
        if request.headers.get("x-authorization") != self.rest_api_key:
            return error_response("AUTHENTICATION_INVALID", "Invalid REST API key")
        app = self.apps.get(request.path_params.get("api_key", ""))
        if app is None:
            return error_response("AUTHENTICATION_INVALID", "Invalid API key")
        try:
            response = await handler(app)
        except _BatchError as error:
            return error_response(error.error_type, error.message)
        if fault == "truncated" and response.status_code == 200:
            body = bytes(response.body)
            return Response(body[: len(body) // 2], media_type="application/json")
        return response

    def _too_many(self) -> Response:
        headers = {"Retry-After": self.knobs.retry_after} if self.knobs.retry_after else None
        return error_response("TOO_MANY_REQUESTS", "Too many requests", headers)

    # -- the routes ---------------------------------------------------------------------

    def _list(self, campaign_type: CampaignType) -> Callable[[Request], Awaitable[Response]]:
        route = f"list {campaign_type.label}"

        async def endpoint(request: Request) -> Response:
            async def handle(app: SimulatedApp) -> Response:
                params = request.query_params
                offset = _int_param(params.get("from"), "from", default=0, low=0)
                limit = _int_param(params.get("limit"), "limit", default=10, low=1, high=100)
                live = _bool_param(params.get("live"), "live")
                from_api = _bool_param(params.get("from_api"), "from_api")
                store = app.stores[campaign_type]
                key = (app.api_key, campaign_type, store.version, offset, limit, live, from_api)
                body = self._cache.get(key)
                if body is None:
                    if live is None and from_api is None:
                        entries = store.page(offset, limit)
                    else:
                        entries = [
                            e
                            for e in store.page(0, len(store))
                            if (live is None or e.get("live") is live)
                            and (from_api is None or e.get("from_api") is from_api)
                        ][offset : offset + limit]
                    body = json.dumps(entries, ensure_ascii=False).encode()
                    if len(self._cache) > 4096:
                        self._cache.clear()
                    self._cache[key] = body
                return Response(body, media_type="application/json")

            return await self._serve(route, request, handle)

        return endpoint

    def _view(self, campaign_type: CampaignType) -> Callable[[Request], Awaitable[Response]]:
        route = f"view {campaign_type.label}"

        async def endpoint(request: Request) -> Response:
            async def handle(app: SimulatedApp) -> Response:
                token = _token(request)
                detail = app.stores[campaign_type].detail(token)
                if detail is None:
                    raise _BatchError("ROUTE_NOT_FOUND", "Campaign not found")
                # Batch's own numbers as it holds them: a store's UnrepresentableNumber
                # (`1e400`, NaN) is written as the number, not as a string.
                body = encode(detail, ensure_ascii=False)
                if token in self.knobs.broken_tokens:
                    body = body[: len(body) // 2]
                return Response(body, media_type="application/json")

            return await self._serve(route, request, handle)

        return endpoint

    async def _push_stats(self, request: Request) -> Response:
        async def handle(app: SimulatedApp) -> Response:
            detail = app.stores[CampaignType.PUSH].detail(_token(request))
            if detail is None:
                raise _BatchError("ROUTE_NOT_FOUND", "Campaign not found")
            stats = push_stats(detail, self.clock())
            if stats is None:
                raise _BatchError("ROUTE_NOT_FOUND", "No statistics for this campaign yet")
            return Response(json.dumps(stats), media_type="application/json")

        return await self._serve("stats push", request, handle)

    async def _update(self, request: Request) -> Response:
        async def handle(app: SimulatedApp) -> Response:
            store = app.stores[CampaignType.IN_APP]
            token = _token(request)
            stored = store.detail(token)
            if stored is None:
                raise _BatchError("ROUTE_NOT_FOUND", "Campaign not found")
            try:
                payload = decode(await request.body())
            except UnreadableJSON:
                raise _BatchError("MALFORMED_JSON_BODY", "The body is not valid JSON") from None
            if not isinstance(payload, dict):
                raise _BatchError("MALFORMED_JSON_BODY", "The body must be a JSON object")
            if stored.get("from_api") is not True:
                raise _BatchError(
                    "API_MISUSE", "Only campaigns created from the API can be updated"
                )
            read_only = sorted(set(payload) & set(READ_ONLY_FIELDS))
            if read_only:
                raise _BatchError("MALFORMED_PARAMETER", f"Read-only parameter: {read_only[0]}")
            missing = sorted(set(stored) - set(READ_ONLY_FIELDS) - set(payload))
            if missing:
                raise _BatchError("MISSING_PARAMETER", f"Missing parameter: {missing[0]}")
            name = payload.get("name")
            if not isinstance(name, str) or len(name) < 3:
                raise _BatchError("MALFORMED_PARAMETER", "name must be a string of 3+ characters")
            if "live" in payload and not isinstance(payload["live"], bool):
                raise _BatchError("MALFORMED_PARAMETER", "live must be a boolean")
            updated = {key: stored[key] for key in READ_ONLY_FIELDS if key in stored}
            updated.update(payload)
            store.replace(token, updated)
            return Response(json.dumps({"campaign_token": token}), media_type="application/json")

        return await self._serve("update in-app", request, handle)

    async def _stats(self, request: Request) -> Response:
        return Response(json.dumps(self.stats_json()), media_type="application/json")

    def _build_app(self) -> Starlette:
        async def not_found(request: Request, exc: Exception) -> Response:
            response = error_response("ROUTE_NOT_FOUND", "Route not found")
            self._record("unknown", response.status_code, time.monotonic())
            return response

        routes = [
            Route("/_sim/stats", self._stats),
            Route("/1.1/{api_key}/campaigns/list", self._list(CampaignType.PUSH)),
            Route("/1.1/{api_key}/in-app-campaigns/list", self._list(CampaignType.IN_APP)),
            Route(
                "/1.1/{api_key}/in-app-campaigns/update/{token:path}",
                self._update,
                methods=["POST"],
            ),
            Route("/1.1/{api_key}/campaigns/stats/{token:path}", self._push_stats),
            Route("/1.1/{api_key}/campaigns/{token:path}", self._view(CampaignType.PUSH)),
            Route("/1.1/{api_key}/in-app-campaigns/{token:path}", self._view(CampaignType.IN_APP)),
        ]
        return Starlette(
            routes=routes,
            exception_handlers={404: not_found, 405: not_found, HTTPException: not_found},
        )

    # -- churn ----------------------------------------------------------------------------

    async def churn_forever(self) -> None:
        """One random change per `churn_every_seconds`, alternating types."""
        turn = 0
        while self.knobs.churn_every_seconds:
            await asyncio.sleep(self.knobs.churn_every_seconds)
            campaign_type = list(CampaignType)[turn % 2]
            self.store(campaign_type).random_change()
            turn += 1


def _int_param(
    text: str | None, name: str, *, default: int, low: int, high: int | None = None
) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BatchError("MALFORMED_PARAMETER", f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _BatchError("MALFORMED_PARAMETER", f"{name} must be {bounds}")
    return value


def _bool_param(text: str | None, name: str) -> bool | None:
    if text is None:
        return None
    if text == "true":
        return True
    if text == "false":
        return False
    raise _BatchError("MALFORMED_PARAMETER", f"{name} must be true or false")


__all__ = ["Simulator", "SimulatorKnobs", "error_response"]


def _token(request: Request) -> str:
    """The campaign token as sent: the last segment of the raw path, percent-decoded (the
    decoded path would turn an encoded `/` into a separator)."""
    raw_path = request.scope.get("raw_path")
    if not raw_path:
        return str(request.path_params["token"])
    return unquote(raw_path.decode("latin-1").rsplit("/", 1)[-1])
