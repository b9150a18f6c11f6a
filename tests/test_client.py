"""The Batch client: routes and headers, typed errors, retries, budgets, key masking."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import time
from typing import Any

import httpx
import pytest

from campaign_sync.batch import errors
from campaign_sync.batch.client import GONE
from campaign_sync.batch.endpoints import CampaignType
from campaign_sync.outcome import RunCounts
from tests.conftest import API_KEY, CANARY_REST_KEY
from tests.helpers import AlwaysError, batch_error, mock_client, ok


def run(coro):
    return asyncio.run(coro)


def test_each_endpoint_uses_its_documented_route_and_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/list"):
            return ok([])
        return ok({"campaign_token": "t1"})

    async def calls() -> None:
        async with mock_client(handler) as client:
            await client.list_push(offset=200, limit=100)
            await client.list_in_app()
            await client.view_push("t1")
            await client.view_in_app("t1")
            await client.update_in_app("t1", {"name": "New name"})

    run(calls())
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", f"/1.1/{API_KEY}/campaigns/list"),
        ("GET", f"/1.1/{API_KEY}/in-app-campaigns/list"),
        ("GET", f"/1.1/{API_KEY}/campaigns/t1"),
        ("GET", f"/1.1/{API_KEY}/in-app-campaigns/t1"),
        ("POST", f"/1.1/{API_KEY}/in-app-campaigns/update/t1"),
    ]
    assert seen[0].url.params["from"] == "200" and seen[0].url.params["limit"] == "100"
    assert all(r.headers["X-Authorization"] == CANARY_REST_KEY for r in seen)
    assert all(r.headers["Content-Type"] == "application/json" for r in seen)
    assert seen[4].content == b'{"name":"New name"}'


@pytest.mark.parametrize(
    ("payload", "sent"),
    [
        ({"name": "x\ud800y"}, b'{"name":"x\\ud800y"}'),  # as Batch sent it: an escape
        ({"name": "a\u0000b"}, b'{"name":"a\\u0000b"}'),
        ({"name": "\u00e9t\u00e9 \U0001f600"}, b'{"name":"\\u00e9t\\u00e9 \\ud83d\\ude00"}'),
    ],
)
def test_an_update_sends_ascii_json_whatever_text_the_campaign_holds(
    payload: dict[str, Any], sent: bytes
) -> None:
    """httpx's UTF-8 JSON raised UnicodeEncodeError on a lone surrogate read from Batch's
    own campaign: the update crashed, unaudited."""
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return ok({})

    async def call() -> None:
        async with mock_client(handler) as client:
            await client.update_in_app("t1", payload)

    run(call())
    assert seen == [sent]


@pytest.mark.parametrize(
    ("status", "error_type", "code", "expected", "retriable"),
    [
        (400, "MISSING_PARAMETER", 30, errors.BadRequest, False),
        (400, "MALFORMED_PARAMETER", 31, errors.BadRequest, False),
        (400, "MALFORMED_JSON_BODY", 32, errors.BadRequest, False),
        (401, "AUTHENTICATION_INVALID", 10, errors.AuthenticationInvalid, False),
        (403, "API_MISUSE", 12, errors.ApiMisuse, False),
        (404, "ROUTE_NOT_FOUND", 20, errors.RouteNotFound, False),
        (500, "SERVER_ERROR", 0, errors.ServerError, True),
        (503, "MAINTENANCE_ERROR", 2, errors.MaintenanceError, True),
        (429, "TOO_MANY_REQUESTS", 60, errors.TooManyRequests, True),
    ],
)
def test_every_documented_error_becomes_its_typed_exception(
    status: int, error_type: str, code: int, expected: type[errors.BatchError], retriable: bool
) -> None:
    handler = AlwaysError(status, error_type, code)

    async def call() -> None:
        async with mock_client(handler, attempts=3) as client:
            await client.list_push()

    with pytest.raises(errors.BatchError) as raised:
        run(call())
    error = raised.value
    if retriable:
        assert isinstance(error, errors.RetryBudgetExhausted)
        assert isinstance(error.last_error, expected)
        assert handler.calls == 3
    else:
        assert type(error) is expected
        assert handler.calls == 1, "a fatal error must not be retried"
    assert (error.status, error.code, error.error_type) == (status, code, error_type)
    assert expected.retriable is retriable
    assert error_type in str(error)


def test_a_401_names_the_app_and_the_settings_to_fix() -> None:
    async def call() -> None:
        async with mock_client(lambda r: batch_error(401, "AUTHENTICATION_INVALID", 10)) as c:
            await c.list_in_app()

    with pytest.raises(errors.AuthenticationInvalid) as raised:
        run(call())
    message = str(raised.value)
    assert "app 'ios'" in message and "BATCH_REST_API_KEY" in message
    assert CANARY_REST_KEY not in message and API_KEY not in message


@pytest.mark.parametrize(
    "answer",
    [
        lambda: batch_error(404, "ROUTE_NOT_FOUND", 20),
        lambda: httpx.Response(404, json={"code": 20, "message": "Campaign not found"}),
        lambda: httpx.Response(404, json={"type": "ROUTE_NOT_FOUND"}),
    ],
    ids=["batch", "code-only", "type-only"],
)
def test_batchs_404_on_a_view_means_the_campaign_is_gone(answer: Any) -> None:
    async def call() -> object:
        async with mock_client(lambda r: answer()) as client:
            return await client.view_push("gone-token")

    assert run(call()) is GONE


@pytest.mark.parametrize(
    "answer",
    [
        lambda: httpx.Response(404, text="<html><h1>404 Not Found</h1>nginx</html>"),
        lambda: httpx.Response(404, content=b""),
        lambda: httpx.Response(404, json={"code": 21, "type": "OTHER", "message": "?"}),
        lambda: httpx.Response(404, json=["ROUTE_NOT_FOUND"]),
    ],
    ids=["html", "empty", "other-code", "not-an-object"],
)
def test_a_404_that_is_not_batchs_on_a_view_is_a_failed_request(answer: Any) -> None:
    """A proxy's or load balancer's 404 page said nothing about the campaign, yet it was
    taken for 'campaign gone' and marked the campaign deleted."""

    async def call() -> object:
        async with mock_client(lambda r: answer()) as client:
            return await client.view_push("still-there")

    with pytest.raises(errors.RouteNotFound) as raised:
        run(call())
    assert not isinstance(raised.value, errors.CampaignGone)
    assert "not Batch's ROUTE_NOT_FOUND answer: taken for a failed request" in str(raised.value)


@pytest.mark.parametrize(
    "failure",
    [
        lambda: httpx.Response(500, text="<html>oops</html>"),
        lambda: batch_error(503, "MAINTENANCE_ERROR", 2),
        lambda: httpx.Response(200, content=b'[{"campaign_token": "a", "na'),
        lambda: httpx.Response(200, content=b'{"not": "a list"}'),
        lambda: httpx.Response(502, text="bad gateway"),
    ],
    ids=["500-html", "503", "truncated-json", "wrong-shape", "502"],
)
def test_transient_failures_are_retried_until_success(failure) -> None:
    answers = [failure(), failure(), ok([{"campaign_token": "a"}])]
    stats = RunCounts()

    async def call() -> list:
        async with mock_client(lambda r: answers.pop(0)) as client:
            return await client.list_campaigns(CampaignType.PUSH, counts=stats)

    assert run(call()) == [{"campaign_token": "a"}]
    assert stats.retries == 2 and stats.list_calls == 1


def test_timeouts_and_connection_errors_are_retried() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ReadTimeout("slow", request=request)
        if attempts == 2:
            raise httpx.ConnectError("refused", request=request)
        return ok({"campaign_token": "t"})

    async def call() -> object:
        async with mock_client(handler) as client:
            return await client.view_push("t")

    assert run(call()) == {"campaign_token": "t"}
    assert attempts == 3


def test_the_budget_in_attempts_surfaces_the_last_error_clearly() -> None:
    async def call() -> None:
        async with mock_client(lambda r: batch_error(503, "MAINTENANCE_ERROR", 2), attempts=4) as c:
            await c.view_in_app("t")

    with pytest.raises(errors.RetryBudgetExhausted) as raised:
        run(call())
    assert raised.value.attempts == 4
    assert "after 4 attempts" in str(raised.value) and "MAINTENANCE_ERROR" in str(raised.value)


def test_a_budget_of_one_attempt_gives_up_after_the_first_failure_without_retrying() -> None:
    handler = AlwaysError(503, "MAINTENANCE_ERROR", 2)
    stats = RunCounts()

    async def call() -> None:
        async with mock_client(handler, attempts=1) as client:
            await client.list_campaigns(CampaignType.PUSH, counts=stats)

    with pytest.raises(errors.RetryBudgetExhausted) as gave_up:
        run(call())
    assert (handler.calls, gave_up.value.attempts, stats.retries) == (1, 1, 0)
    assert isinstance(gave_up.value.last_error, errors.MaintenanceError)


def test_the_budget_in_seconds_stops_retrying() -> None:
    handler = AlwaysError(429, "TOO_MANY_REQUESTS", 60)

    async def call() -> None:
        async with mock_client(handler, floor=0.2, attempts=100, seconds=0.5) as client:
            await client.list_push()

    with pytest.raises(errors.RetryBudgetExhausted) as gave_up:
        run(call())
    # 100 attempts were allowed: stopping after a handful is the seconds budget's doing.
    assert handler.calls <= 4 and gave_up.value.attempts == handler.calls


def test_a_429_waits_at_least_the_floor() -> None:
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        if len(times) == 1:
            return batch_error(429, "TOO_MANY_REQUESTS", 60)
        return ok([])

    async def call() -> None:
        async with mock_client(handler, floor=0.3) as client:
            await client.list_push()

    run(call())
    assert times[1] - times[0] >= 0.3


def test_retry_after_is_honoured_when_longer_than_the_floor() -> None:
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        if len(times) == 1:
            return batch_error(429, "TOO_MANY_REQUESTS", 60, **{"Retry-After": "1"})
        return ok([])

    async def call() -> None:
        # floor 0.2 s: the longest wait (8 x the floor here) leaves room for Retry-After's 1 s
        async with mock_client(handler, floor=0.2) as client:
            await client.list_push()

    run(call())
    assert times[1] - times[0] >= 1.0


def test_retry_after_as_an_http_date_is_understood() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (errors.parse_retry_after(when) or 0) <= 30.5
    assert errors.parse_retry_after("7") == 7.0
    assert errors.parse_retry_after("soon") is None
    # RFC 9110 delay-seconds are ASCII digits only: what float() would also take is not.
    for odd in ("1e999", "inf", "nan", "-5", "5_0", "\u0661\u0662", "1.5", "+7"):
        assert errors.parse_retry_after(odd) is None, odd
    assert errors.parse_retry_after("9" * 400) == math.inf  # the gate caps what it waits


def test_each_retry_is_logged_with_route_status_attempt_and_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = [batch_error(500, "SERVER_ERROR", 0), ok([])]

    async def call() -> None:
        async with mock_client(lambda r: answers.pop(0)) as client:
            await client.list_in_app()

    with caplog.at_level(logging.WARNING):
        run(call())
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 1
    record = retries[0]
    assert record.levelno == logging.WARNING
    assert record.route == "GET in-app-campaigns/list"  # type: ignore[attr-defined]
    assert record.status == 500  # type: ignore[attr-defined]
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert record.wait_seconds >= 0  # type: ignore[attr-defined]
    assert API_KEY not in record.getMessage()


def _raise(error: Exception) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


def _chained(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (_raise(httpx.ReadTimeout("slow")), "after ReadTimeout (attempt 1 of"),
        (_raise(httpx.ConnectTimeout("slow")), "after ConnectTimeout (attempt 1 of"),
        (
            _raise(_chained(httpx.ConnectError("x"), ConnectionRefusedError(111, "refused"))),
            "after ConnectError: Connection refused (attempt 1 of",
        ),
        (
            _raise(httpx.RemoteProtocolError(f"peer closed /1.1/{API_KEY}/x")),
            "after RemoteProtocolError (attempt 1 of",
        ),
        (lambda request: batch_error(503, "MAINTENANCE", 2), "after 503 MAINTENANCE (code 2)"),
    ],
)  # fmt: skip
def test_a_retry_says_what_failed_in_httpxs_or_batchs_words(
    caplog: pytest.LogCaptureFixture, failure: Any, said: str
) -> None:
    """A read timeout and a refused connection both read "after NetworkError" (a review's
    find): a retry names what went wrong, never with httpx's own text (the URL, the key)."""
    answers = [failure, lambda request: ok([])]

    async def call() -> None:
        async with mock_client(lambda request: answers.pop(0)(request)) as client:
            await client.list_in_app()

    with caplog.at_level(logging.WARNING):
        run(call())
    (retry,) = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert said in retry, retry
    assert API_KEY not in retry


def test_concurrency_is_bounded_per_app() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return ok({"campaign_token": request.url.path.rsplit("/", 1)[1]})

    async def call() -> None:
        client = mock_client(lambda r: ok({}), concurrency=3)
        client._http._transport = httpx.MockTransport(handler)  # async handler
        async with client:
            await asyncio.gather(*(client.view_push(f"t{i}") for i in range(20)))

    run(call())
    assert peak == 3


def test_one_failing_detail_does_not_fail_the_others() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/bad"):
            return batch_error(403, "API_MISUSE", 12)
        return ok({"campaign_token": request.url.path.rsplit("/", 1)[1]})

    async def call() -> list:
        async with mock_client(handler) as client:
            return await asyncio.gather(
                *(client.view_push(t) for t in ("a", "bad", "c")), return_exceptions=True
            )

    outcomes = run(call())
    assert outcomes[0] == {"campaign_token": "a"} and outcomes[2] == {"campaign_token": "c"}
    assert isinstance(outcomes[1], errors.ApiMisuse)


def test_a_body_that_cannot_be_decoded_is_an_unreadable_answer_and_retried() -> None:
    answers = [
        httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip")
        ),
        ok([{"campaign_token": "a"}]),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    async def call() -> tuple[list[dict[str, object]], int]:
        stats = RunCounts()
        async with mock_client(handler) as client:
            page = await client.list_campaigns(CampaignType.PUSH, counts=stats)
        return page, stats.retries

    assert run(call()) == ([{"campaign_token": "a"}], 1)


def test_a_body_that_trickles_in_is_cut_at_the_requests_deadline() -> None:
    async def trickle() -> object:
        for _ in range(100):
            await asyncio.sleep(0.05)
            yield b" "

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle())  # type: ignore[arg-type]

    async def call() -> None:
        async with mock_client(handler, seconds=0.5) as client:
            await client.list_push()

    started = time.monotonic()
    with pytest.raises(errors.NetworkError) as cut:
        run(call())
    assert time.monotonic() - started < 3.0  # not the 5 s the body would take
    assert str(cut.value) == (
        "GET campaigns/list for app 'ios' got no complete answer within 0.5s "
        "(CAMPAIGN_SYNC_RETRY_MAX_SECONDS)"
    )


@pytest.mark.parametrize(
    ("between", "status"),
    [
        (batch_error(404, "ROUTE_NOT_FOUND", 20), "a 404"),
        (batch_error(500, "SERVER_ERROR", 0), "a 500"),
    ],
)
def test_an_answer_between_two_429s_makes_the_second_no_repeat(
    between: httpx.Response, status: str
) -> None:
    """The client told the gate of 2xx answers only: after a 404 (deletion confirmations
    are hundreds of them) every 429 counted as a repeat of the last."""
    answers = iter([batch_error(429, "TOO_MANY_REQUESTS", 60), between])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, ok({"campaign_token": "t"}))

    async def call() -> int:
        async with mock_client(handler, attempts=2) as client:  # the 429, then that answer
            with contextlib.suppress(errors.BatchError):
                await client.view_push("t")
            return client.gate._consecutive_429

    assert run(call()) == 0, status


def test_a_call_counts_once_its_first_request_is_sent() -> None:
    """view_campaign counted its call before waiting for a slot and the pace: details
    still waiting when a pass stopped were in sync_runs.detail_calls though never asked.
    A call counts when its first request goes out; its retries count as retries."""
    release, sent = asyncio.Event(), []
    answers = {
        "first": [ok({"campaign_token": "first"})],
        "again": [batch_error(500, "SERVER_ERROR", 1), ok({"campaign_token": "again"})],
    }

    async def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.path.rsplit("/", 1)[-1]
        sent.append(token)
        if token == "first":
            await release.wait()
        return answers[token].pop(0)

    async def scenario() -> RunCounts:
        counts = RunCounts()
        client = mock_client(handler, concurrency=1)  # type: ignore[arg-type]
        async with client:
            first = asyncio.create_task(
                client.view_campaign(CampaignType.PUSH, "first", counts=counts)
            )
            await asyncio.sleep(0.05)
            waiting = asyncio.create_task(
                client.view_campaign(CampaignType.PUSH, "never", counts=counts)
            )
            await asyncio.sleep(0.05)
            waiting.cancel()  # as a stopping pass cancels what it has not sent
            release.set()
            await first
            await client.view_campaign(CampaignType.PUSH, "again", counts=counts)
        return counts

    counts = asyncio.run(scenario())
    assert sent == ["first", "again", "again"]
    assert (counts.detail_calls, counts.retries) == (2, 1)


def test_a_retry_a_stop_abandoned_during_its_backoff_is_not_counted() -> None:
    """sync_runs.retries counted a retry when its backoff began: a stop during the wait
    left 84 retries recorded and none sent (a review's find). A retry counts when it is
    sent."""
    first_sent = asyncio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        first_sent.set()
        return batch_error(503, "SERVICE_UNAVAILABLE", 1)

    async def scenario() -> RunCounts:
        counts = RunCounts()
        async with mock_client(handler, backoff=5.0) as client:
            call = asyncio.create_task(
                client.view_campaign(CampaignType.PUSH, "flaky", counts=counts)
            )
            await first_sent.wait()
            await asyncio.sleep(0.05)  # in the 5 s backoff now
            call.cancel()  # as a stopping pass cancels it
            with contextlib.suppress(asyncio.CancelledError):
                await call
        return counts

    counts = asyncio.run(scenario())
    assert (counts.detail_calls, counts.retries) == (1, 0)


@pytest.mark.parametrize(
    ("handler", "fault"),
    [
        # the server or the network failed: counted against what the pass may learn
        (lambda request: batch_error(500, "SERVER_ERROR", 1), True),
        (lambda request: batch_error(503, "MAINTENANCE", 2), True),
        (lambda request: httpx.Response(502, content=b"<html>bad gateway</html>"), True),
        (lambda request: httpx.Response(200, content=b'{"campaign_token": "t'), True),
        (_raise(httpx.ReadTimeout("slow")), True),
        (_raise(httpx.ConnectError("refused")), True),
        (_raise(httpx.RemoteProtocolError("peer closed")), True),
        # an answer about the request, or a 429 (the pace's own business)
        (lambda request: batch_error(429, "TOO_MANY_REQUESTS", 3), False),
        (lambda request: batch_error(404, "NOT_FOUND", 4), False),
        (lambda request: batch_error(400, "BAD_REQUEST", 5), False),
        (lambda request: batch_error(401, "AUTHENTICATION_INVALID", 10), False),
        (lambda request: ok([1, 2]), False),  # a detail that is no object: WrongShape
        (lambda request: ok({"campaign_token": "t1"}), False),
    ],
)
def test_which_failures_count_as_faults_of_the_server_or_network(handler: Any, fault: bool) -> None:
    """A 429 amid such failures leaves the rate alone (ratelimit.RateGate.amid_failures);
    429s, 404s and answers about the request are no fault."""

    async def call() -> tuple[int, int]:
        async with mock_client(handler, attempts=1) as client:
            with contextlib.suppress(errors.BatchError):
                await client.view_push("t1")
            return len(client.gate._recent_sends), len(client.gate._recent_faults)

    assert run(call()) == (1, 1 if fault else 0)


def _ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] something (_ssl.c:1006)")
    error.reason = reason
    return error


def _untrusted(why: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    error.reason, error.verify_message = "CERTIFICATE_VERIFY_FAILED", why
    return error


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            _chained(
                httpx.ConnectError("[Errno 111] Connection refused"),
                ConnectionRefusedError(111, "Connection refused"),
            ),
            "ConnectError: Connection refused",
        ),
        (  # anyio's attempts at each address of localhost (::1, 127.0.0.1), alike
            _chained(
                httpx.ConnectError("All connection attempts failed"),
                _chained(
                    OSError("All connection attempts failed"),
                    ExceptionGroup(
                        "multiple connection attempts failed",
                        [
                            OSError(111, "Connect call failed ('::1', 9, 0, 0)"),
                            OSError(111, "Connect call failed ('127.0.0.1', 9)"),
                        ],
                    ),
                ),
            ),
            "ConnectError: Connection refused",
        ),
        (  # ... or not
            _chained(
                httpx.ConnectError("x"),
                ExceptionGroup(
                    "multiple connection attempts failed",
                    [OSError(101, "Connect call failed"), OSError(111, "Connect call failed")],
                ),
            ),
            "ConnectError: Network is unreachable; Connection refused",
        ),
        (  # asyncio's words for a refused connection, with its errno
            _chained(httpx.ConnectError("x"), OSError(111, "Connect call failed ('127.0.0.1', 9)")),
            "ConnectError: Connection refused",
        ),
        (
            _chained(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            "ConnectError: Name or service not known",
        ),
        (
            _chained(httpx.ConnectError("x"), _ssl_error("WRONG_VERSION_NUMBER")),
            "ConnectError: TLS handshake failed (WRONG_VERSION_NUMBER): the server does not "
            "speak HTTPS there; an http:// URL?",
        ),
        (
            _chained(httpx.ConnectError("x"), _ssl_error("TLSV1_ALERT_PROTOCOL_VERSION")),
            "ConnectError: TLS handshake failed (TLSV1_ALERT_PROTOCOL_VERSION)",
        ),
        (
            _chained(httpx.ConnectError("x"), _untrusted("self-signed certificate")),
            "ConnectError: the server's TLS certificate is not trusted (self-signed "
            "certificate); SSL_CERT_FILE or SSL_CERT_DIR names the CA bundle to trust",
        ),
        # httpx's own text is never used: it may hold the URL, and the API key in it
        (
            httpx.RemoteProtocolError(f"bad answer from /1.1/{API_KEY}/campaigns/list"),
            "RemoteProtocolError",
        ),
        (httpx.ConnectError(f"http://batch.test/1.1/{API_KEY}/x"), "ConnectError"),
    ],
)
def test_a_request_that_got_no_answer_says_why_in_words(error: Exception, said: str) -> None:
    """'could not reach … (ConnectError)' said nothing of a refused port, a name that does
    not resolve or an https:// URL naming a plain-http server (a review's find)."""
    from campaign_sync.batch.errors import transport_reason

    assert transport_reason(error) == said


def test_an_https_url_naming_a_plain_http_server_is_named_as_such() -> None:
    """End to end, over a real loopback socket: the client's TLS handshake meets an HTTP
    server's answer."""
    import http.server
    import threading

    from campaign_sync.batch.client import BatchClient, ClientOptions
    from campaign_sync.batch.retry import RetryBudget

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    async def call() -> None:
        client = BatchClient(
            app="ios",
            api_key=API_KEY,
            rest_api_key=CANARY_REST_KEY,
            options=ClientOptions(
                base_url=f"https://127.0.0.1:{port}",
                retry=RetryBudget(max_attempts=1, max_seconds=5),
            ),
        )
        async with client:
            await client.view_push("t1")

    try:
        with pytest.raises(errors.RetryBudgetExhausted) as raised:
            run(call())
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(raised.value.last_error, errors.NetworkError)
    assert str(raised.value.last_error) == (
        f"GET campaigns/view for app 'ios' could not reach https://127.0.0.1:{port} "
        "(ConnectError: TLS handshake failed (WRONG_VERSION_NUMBER): the server does not "
        "speak HTTPS there; an http:// URL?)"
    )
    assert API_KEY not in str(raised.value)


def test_a_port_with_nothing_listening_is_named_as_refused() -> None:
    """Over a real loopback socket: asyncio said "Connect call failed ('127.0.0.1', N)"."""
    from campaign_sync.batch.client import BatchClient, ClientOptions
    from campaign_sync.batch.retry import RetryBudget

    with socket.socket() as probe:  # a port that was free a moment ago, now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def call() -> None:
        options = ClientOptions(
            base_url=f"http://127.0.0.1:{port}", retry=RetryBudget(max_attempts=1, max_seconds=5)
        )
        async with BatchClient(
            app="ios", api_key=API_KEY, rest_api_key=CANARY_REST_KEY, options=options
        ) as client:
            await client.view_push("t1")

    with pytest.raises(errors.RetryBudgetExhausted) as raised:
        run(call())
    assert str(raised.value.last_error) == (
        f"GET campaigns/view for app 'ios' could not reach http://127.0.0.1:{port} "
        "(ConnectError: Connection refused)"
    )


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("tok", "'tok'"),
        ("tok ", "'tok '"),
        ("tok\x00", "'tok\\x00'"),
        ("\x1b[2J", "'\\x1b[2J'"),
        ("tok\u202e", "'tok\\u202e'"),
        ("t" * 100, "'" + "t" * 80 + "'"),
    ],
)
def test_a_token_in_a_message_is_quoted_escaped_and_cut(token: str, shown: str) -> None:
    """A trailing space, U+0000 or an escape sequence read as nothing in "answered for
    campaign X when asked for Y" (a review's find: 'm1' and 'm1' for two different
    tokens)."""
    from campaign_sync.batch.client import _shown_token

    assert _shown_token(token) == shown
