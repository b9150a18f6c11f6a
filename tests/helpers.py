"""Small builders shared by tests."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import httpx
from click.testing import CliRunner, Result

from campaign_sync.batch.client import BatchClient, ClientOptions
from campaign_sync.batch.ratelimit import RatePolicy
from campaign_sync.batch.retry import RetryBudget
from campaign_sync.cli import main
from tests.conftest import API_KEY, CANARY_REST_KEY


def batch_error(status: int, error_type: str, code: int, **headers: str) -> httpx.Response:
    body = {"code": code, "type": error_type, "message": f"{error_type} from the test"}
    return httpx.Response(status, json=body, headers=headers)


class AlwaysError:
    """A MockTransport handler answering every request with the same Batch error (see
    `batch_error`); `calls` counts the requests it answered."""

    def __init__(self, status: int, error_type: str, code: int) -> None:
        self.status, self.error_type, self.code = status, error_type, code
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return batch_error(self.status, self.error_type, self.code)


def ok(body: Any) -> httpx.Response:
    return httpx.Response(200, content=json.dumps(body).encode())


def mock_client(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    floor: float = 0.02,
    attempts: int = 5,
    seconds: float = 30.0,
    concurrency: int = 4,
    backoff: float = 0.01,
) -> BatchClient:
    return BatchClient(
        app="ios",
        api_key=API_KEY,
        rest_api_key=CANARY_REST_KEY,
        options=ClientOptions(
            base_url="http://batch.test",
            concurrency=concurrency,
            rate=RatePolicy(
                backoff_min_seconds=floor, backoff_max_seconds=floor * 8, slow_start_rate=200
            ),
            retry=RetryBudget(
                max_attempts=attempts,
                max_seconds=seconds,
                backoff_initial_seconds=backoff,
                backoff_max_seconds=max(0.05, backoff),
            ),
        ),
        transport=httpx.MockTransport(handler),
    )


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """`campaign-sync ARGS` in-process (use the `restore_logging` fixture alongside). The
    test process's SIGTERM, SIGINT and SIGHUP handlers are put back after it: `sync` ends
    by ignoring them (signals.run_until_signalled), and a child started later by the
    same test process inherited that (its SIGTERM ignored, the set-up tests failed; its
    SIGHUP ignored, taken for `nohup`)."""
    stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in stops}
    try:
        return CliRunner().invoke(main, list(args), env=env, input=stdin)
    finally:
        for sig, handler in before.items():
            if handler is not None:  # None: not set from Python, nothing to put back
                signal.signal(sig, handler)
