"""No log line carries the canary REST key or an API key.

Every test uses the same canary REST key and live API key, and conftest's collector keeps
every log line of the session: its session hook fails the run if any line of the whole
suite carried a key, whatever the order. The tests here make lines of their own, so each
proves something when run alone.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from campaign_sync.logs import ContextFilter, JsonFormatter, register_secret
from tests.conftest import API_KEY, CANARY_REST_KEY, LOG_COLLECTOR, leaked_secret_lines
from tests.helpers import batch_error, mock_client


def test_the_collector_hears_every_log_line() -> None:
    before = len(LOG_COLLECTOR.lines)
    logging.getLogger("campaign_sync.batch.retry").warning("a line for the collector")
    assert LOG_COLLECTOR.lines[before:] == ["a line for the collector"]


def test_a_request_that_fails_and_is_retried_logs_no_key() -> None:
    before = len(LOG_COLLECTOR.lines)
    answers = [
        httpx.Response(503, text=f"echo {CANARY_REST_KEY} {API_KEY}"),
        httpx.Response(200, json=[]),
    ]

    async def call() -> None:
        async with mock_client(lambda request: answers.pop(0)) as client:
            await client.list_push()

    asyncio.run(call())
    made = LOG_COLLECTOR.lines[before:]
    assert any("retrying GET campaigns/list" in line for line in made), made
    assert leaked_secret_lines() == []


def test_errors_and_retry_logs_never_show_the_keys(caplog: pytest.LogCaptureFixture) -> None:
    answers = [httpx.Response(500, text=f"echo {CANARY_REST_KEY}"), batch_error(401, "X", 10)]

    async def call() -> None:
        async with mock_client(lambda r: answers.pop(0)) as client:
            await client.list_push()

    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as raised:
        asyncio.run(call())
    assert API_KEY not in str(raised.value) and CANARY_REST_KEY not in str(raised.value)
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


def test_registered_secrets_are_masked_in_formatted_lines() -> None:
    register_secret(CANARY_REST_KEY)
    register_secret(API_KEY, keep_last=4)
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "url /1.1/%s/list key %s", (API_KEY, CANARY_REST_KEY), None
    )
    ContextFilter().filter(record)
    line = JsonFormatter().format(record)
    assert CANARY_REST_KEY not in line and API_KEY not in line
    assert f"****{API_KEY[-4:]}" in line
