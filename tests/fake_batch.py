"""Batch at the HTTP level, answering exactly the bytes a test gives it (httpx.MockTransport).

The simulator serializes Python values, so it cannot send `1e400`, a detail nested 5,000
levels deep or a page capped below `limit`; this fake can. It records every raw path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote

import httpx

from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.db.session import make_engine
from campaign_sync.push_stats import StatsPolicy
from campaign_sync.runner import sync_apps
from campaign_sync.sync_pass import PassOptions, PassResult
from tests.conftest import API_KEY, make_app, make_settings

PUSH, IN_APP = CampaignType.PUSH, CampaignType.IN_APP
BASE_URL = "https://batch.test"


class FakeBatch:
    def __init__(self) -> None:
        self.entries: dict[CampaignType, list[str]] = {PUSH: [], IN_APP: []}  # raw JSON
        self.details: dict[tuple[CampaignType, str], str] = {}  # raw JSON of each detail
        self.max_page: int | None = None  # a server that gives fewer than `limit`
        self.list_answer: Callable[[CampaignType, int, int], str | None] | None = None
        self.on_view: Callable[[str], None] | None = None
        self.raw_paths: list[str] = []
        self.stats: dict[str, str] = {}  # raw JSON of each push campaign's stats answer

    def add(
        self,
        campaign_type: CampaignType,
        token: str,
        detail: dict[str, Any] | str | None = None,
        *,
        entry: dict[str, Any] | str | None = None,
    ) -> None:
        """A campaign, newest last added first; `detail`/`entry` as dicts or raw JSON."""
        document = detail if detail is not None else campaign_detail(campaign_type, token)
        listed = entry if entry is not None else document
        self.entries[campaign_type].insert(0, _raw(listed))
        self.details[(campaign_type, token)] = _raw(document)

    def handler(self, request: httpx.Request) -> httpx.Response:
        raw_path = request.url.raw_path.decode("ascii").split("?")[0]
        self.raw_paths.append(raw_path)
        parts = raw_path.split("/")
        campaign_type = PUSH if parts[3] == "campaigns" else IN_APP
        if parts[4:] == ["list"]:
            offset = int(request.url.params.get("from", "0"))
            limit = int(request.url.params.get("limit", "10"))
            custom = self.list_answer(campaign_type, offset, limit) if self.list_answer else None
            if custom is not None:
                return httpx.Response(200, content=custom.encode())
            count = min(limit, self.max_page or limit)
            page = self.entries[campaign_type][offset : offset + count]
            return httpx.Response(200, content=("[" + ",".join(page) + "]").encode())
        if parts[3:5] == ["campaigns", "stats"]:
            answer = self.stats.get(unquote(parts[-1]))
            if answer is None:
                body = {"code": 20, "type": "ROUTE_NOT_FOUND", "message": "No stats"}
                return httpx.Response(404, json=body)
            return httpx.Response(200, content=answer.encode())
        token = unquote(parts[-1])
        if self.on_view is not None:
            self.on_view(token)
        detail = self.details.get((campaign_type, token))
        if detail is None:
            body = {"code": 20, "type": "ROUTE_NOT_FOUND", "message": "Campaign not found"}
            return httpx.Response(404, json=body)
        return httpx.Response(200, content=detail.encode("utf-8", "surrogatepass"))


def _raw(document: dict[str, Any] | str) -> str:
    return document if isinstance(document, str) else json.dumps(document)


def campaign_detail(campaign_type: CampaignType, token: str) -> dict[str, Any]:
    """An ordinary campaign's detail (push: with one message)."""
    detail: dict[str, Any] = {
        "campaign_token": token,
        "name": f"Campaign {token}",
        "live": True,
        "from_api": True,
        "dev_only": False,
        "created_date": "2026-11-01T10:00:00",
    }
    if campaign_type is PUSH:
        detail["messages"] = [{"language": "en", "title": "Hello", "body": "World"}]
    return detail


def sync_fake(
    url: str,
    fake: FakeBatch,
    types: Sequence[CampaignType] = (PUSH,),
    *,
    allow_mass_delete: bool = False,
    full_refresh: bool = False,
    stats: StatsPolicy | None = None,
    api_key: str = API_KEY,
    lock_timeout: bool = False,
    **settings: Any,
) -> list[PassResult]:
    return sync_through(
        url, fake.handler, types, allow_mass_delete=allow_mass_delete,
        full_refresh=full_refresh, stats=stats, api_key=api_key, lock_timeout=lock_timeout,
        **settings,
    )  # fmt: skip


def sync_through(
    url: str,
    handler: Callable[[httpx.Request], httpx.Response],
    types: Sequence[CampaignType] = (PUSH,),
    *,
    allow_mass_delete: bool = False,
    full_refresh: bool = False,
    stats: StatsPolicy | None = None,
    api_key: str = API_KEY,
    lock_timeout: bool = False,
    **settings: Any,
) -> list[PassResult]:
    """The default app's passes against Batch answered by `handler` (httpx.MockTransport),
    with `api_key` as its live API key; `lock_timeout`: the engine the commands use (every
    statement waits for another session's lock at most `session.LOCK_TIMEOUT_SECONDS`)."""
    engine = make_engine(url, lock_timeout=lock_timeout)
    try:
        return asyncio.run(
            sync_apps(
                engine,
                make_settings(BASE_URL, url, **settings),
                [make_app(api_key=api_key)],
                types,
                PassOptions(
                    allow_mass_delete=allow_mass_delete, full_refresh=full_refresh, stats=stats
                ),
                transport=httpx.MockTransport(handler),
            )
        )
    finally:
        engine.dispose()
