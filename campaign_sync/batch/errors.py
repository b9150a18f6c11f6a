"""Every way a Batch call can fail, decided in one place.

Retriable or fatal is a property of the error class; the retry policy only asks.
"""

from __future__ import annotations

import json
import os
import re
import ssl
from typing import Any, ClassVar

import httpx

from campaign_sync.logs import mask_cut


class StopRequested(Exception):
    """A stop (SIGTERM/SIGINT) came while a request waited out a 429 pause or a retry's
    backoff: the request is abandoned unsent, so that a stop is obeyed in about a second
    whatever `Retry-After` says. Not a `BatchError`: Batch did nothing wrong, and the pass
    that meets it is `interrupted`, not `failed`."""


class BatchError(Exception):
    """A Batch call that did not give a usable answer. A subclass declares whether the same
    call is worth trying again: `class ServerError(BatchError, retriable=True)`."""

    retriable: ClassVar[bool] = False

    def __init_subclass__(cls, *, retriable: bool | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if retriable is not None:
            cls.retriable = retriable

    status: int | None
    code: int | None
    error_type: str | None
    batch_message: str

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        error_type: str | None = None,
        batch_message: str = "",
        route: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.error_type = error_type
        self.batch_message = batch_message
        self.route = route

    @property
    def summary(self) -> str:
        """`401 AUTHENTICATION_INVALID (code 10)` or the best we know."""
        parts = [str(self.status) if self.status is not None else "", self.error_type or ""]
        if not self.error_type:
            parts.append(type(self).__name__)
        text = " ".join(p for p in parts if p)
        if self.code is not None:
            text += f" (code {self.code})"
        return text


class AuthenticationInvalid(BatchError):
    """401: the REST key or the app's API key is wrong."""


class ApiMisuse(BatchError):
    """403: for example an update of a campaign not created from the API."""


class RouteNotFound(BatchError):
    """404: unknown route, or (on a view) a campaign that no longer exists."""


class CampaignGone(RouteNotFound):
    """404 on a campaign's view or stats: the campaign (or its stats) is not there. Not an
    error for the caller: the client answers `GONE`."""


class BadRequest(BatchError):
    """400: MISSING_PARAMETER, MALFORMED_PARAMETER or MALFORMED_JSON_BODY."""


class ServerError(BatchError, retriable=True):
    """500 and any other 5xx."""


class MaintenanceError(BatchError, retriable=True):
    """503: Batch is in maintenance."""


class TooManyRequests(BatchError, retriable=True):
    """429: wait at least the floor (5 s against Batch) and longer when asked."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object):
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class MalformedResponse(BatchError, retriable=True):
    """A 200 whose body is not the JSON we expect (truncated, HTML, wrong shape)."""


class DocumentTooDeep(MalformedResponse, retriable=False):
    """A 200 whose JSON nests too deeply to decode: the same answer would come again."""


class WrongShape(MalformedResponse, retriable=False):
    """A detail (or push statistics) answered 200 with JSON that is no object: the
    same answer would come again, and retrying cost 8 attempts and about a minute per
    such campaign at every pass. (A list answering an object stays `MalformedResponse`,
    retried: a gateway's passing error looks like that, and it would fail the sweep.)"""


class WrongCampaign(MalformedResponse, retriable=False):
    """A 200 answering for another `campaign_token` than the one asked: asking again would
    get the same (a cache or a proxy mixing answers up)."""


class NetworkError(BatchError, retriable=True):
    """Timeouts and connection errors: nothing usable came back. `reason` is what went
    wrong in httpx's words, `ReadTimeout` or `ConnectError: Connection refused`
    (`transport_reason`), and is the error's `summary`: a retry's log line said only
    "after NetworkError" for a read timeout and a refused connection alike (a review's
    find)."""

    def __init__(self, message: str, *, reason: str = "", route: str = "") -> None:
        super().__init__(message, route=route)
        self.reason = reason

    @property
    def summary(self) -> str:
        return self.reason or super().summary


def transport_reason(error: BaseException) -> str:
    """Why a request got no answer, in words an operator can act on, from the exception
    httpx raised and its causes: `ConnectError` alone said nothing of a name that does not
    resolve, a refused port or an https:// URL naming a plain-http server (a review's
    find). Only the exception's type, the OS's error text and OpenSSL's reason are used,
    never the exception's own text, which may hold the request's URL (and in it the API
    key). Examples: "ConnectError: Connection refused", "ConnectError: TLS handshake
    failed (WRONG_VERSION_NUMBER): the server does not speak HTTPS there; an http:// URL?"
    """
    name = type(error).__name__
    reason = _reason(error, set())
    return f"{name}: {reason}" if reason else name


def _reason(error: BaseException, seen: set[int]) -> str | None:
    """The first reason `transport_reason` can word along `error`'s causes; within a group
    (anyio's attempts at each address of a name: ::1 and 127.0.0.1 for localhost), each
    different reason once, joined by "; "."""
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, BaseExceptionGroup):
            reasons = [_reason(inner, seen) for inner in cause.exceptions]
            said = dict.fromkeys(reason for reason in reasons if reason)
            if said:
                return "; ".join(said)
        elif isinstance(cause, ssl.SSLCertVerificationError):
            why = cause.verify_message or cause.reason or "not trusted"
            return (
                f"the server's TLS certificate is not trusted ({why}); "
                "SSL_CERT_FILE or SSL_CERT_DIR names the CA bundle to trust"
            )
        elif isinstance(cause, ssl.SSLError):
            reason = cause.reason or "unknown reason"
            if reason == "WRONG_VERSION_NUMBER":
                return (
                    f"TLS handshake failed ({reason}): the server does not speak HTTPS there; "
                    "an http:// URL?"
                )
            return f"TLS handshake failed ({reason})"
        elif isinstance(cause, OSError) and (cause.strerror or cause.errno):
            # asyncio words a refused connection "Connect call failed ('127.0.0.1', 9)",
            # with the errno of "Connection refused"; a name lookup's errno is negative
            # (getaddrinfo's own codes), its strerror says it.
            number = cause.errno
            said_by_os = os.strerror(number) if isinstance(number, int) and number > 0 else None
            return said_by_os or cause.strerror
        cause = cause.__cause__ or cause.__context__
    return None


class UnexpectedStatus(BatchError):
    """A status Batch does not document for this route."""


class RetryBudgetExhausted(BatchError):
    """The retry policy gave up; `last_error` says what kept failing."""

    def __init__(self, message: str, *, last_error: BatchError, attempts: int, seconds: float):
        super().__init__(
            message,
            status=last_error.status,
            code=last_error.code,
            error_type=last_error.error_type,
            batch_message=last_error.batch_message,
            route=last_error.route,
        )
        self.last_error = last_error
        self.attempts = attempts
        self.seconds = seconds


_BY_STATUS: dict[int, type[BatchError]] = {
    400: BadRequest,
    401: AuthenticationInvalid,
    403: ApiMisuse,
    404: RouteNotFound,
    429: TooManyRequests,
    500: ServerError,
    503: MaintenanceError,
}


# Where an endpoint gives a status its own meaning (Batch's docs: 404 on a view means the
# campaign is gone; on stats, that it has none yet).
_BY_ENDPOINT_STATUS: dict[tuple[str, int], type[BatchError]] = {
    ("view", 404): CampaignGone,
    ("stats", 404): CampaignGone,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header: delay-seconds (RFC 9110, section 10.2.3:
    ASCII digits only, so not `1e999`, `inf`, `-5`, `5_0` or other scripts' digits, which
    Python's float() would take) or an HTTP date; None for anything else. The caller caps
    what it waits (`RatePolicy.backoff_max_seconds`)."""
    if not value:
        return None
    value = value.strip(" \t")  # RFC 9110's optional whitespace: spaces and tabs only
    if value.isascii() and value.isdigit():
        return float(value)  # inf for a number too long for a float: the cap applies
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


ANSWER_TEXT_LIMIT = 200  # characters of an answer's words kept in a message
# C0 and C1 controls (line breaks, terminal escapes) and Unicode's bidirectional controls
# (U+202E reverses how the rest of a line reads).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def answer_text(text: str) -> str:
    """Words from Batch's answer (or a proxy's) as our messages may carry them to the
    terminal, logs, `sync_runs`, `sync_warnings` and `status`: one line (control characters,
    terminal escapes, bidirectional controls and line breaks as spaces), at most
    `ANSWER_TEXT_LIMIT` characters, and no registered secret, not even the start of one at
    the cut (`logs.mask_cut`): an answer may quote the request it refuses (a message naming
    the key, a proxy's page listing the request's headers)."""
    head = _CONTROL.sub(" ", text[: ANSWER_TEXT_LIMIT * 20])
    return mask_cut(" ".join(head.split()), ANSWER_TEXT_LIMIT)


def _error_body(response: httpx.Response) -> tuple[int | None, str | None, str]:
    """Batch's `{code, type, message}` if the body has it, else the start of the body as
    text, each through `answer_text`; never raises."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None, None, answer_text(response.text)
    if not isinstance(body, dict):
        return None, None, ""
    code = body.get("code")
    error_type = body.get("type")
    message = body.get("message")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        answer_text(error_type) if isinstance(error_type, str) else None,
        answer_text(message) if isinstance(message, str) else "",
    )


def _batch_not_found(code: int | None, error_type: str | None) -> bool:
    """Whether a 404's body is Batch's `ROUTE_NOT_FOUND` (error code 20, Batch's error
    table: ../shared/batch-api/NOTES.md), the only answer that says a campaign is gone."""
    return code == 20 or error_type == "ROUTE_NOT_FOUND"


def error_from_response(
    response: httpx.Response, *, route: str, app: str, endpoint: str = ""
) -> BatchError:
    """The typed error for a non-2xx answer of `endpoint` (its name: `list`, `view`, …).
    Acts on the status; the body only informs."""
    status = response.status_code
    code, error_type, batch_message = _error_body(response)
    cls = _BY_ENDPOINT_STATUS.get((endpoint, status)) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else UnexpectedStatus
    detail = f"{status} {error_type}" if error_type else str(status)
    if code is not None:
        detail += f" code {code}"
    if batch_message:
        detail += f": {batch_message}"
    if cls is CampaignGone and not _batch_not_found(code, error_type):
        # A 404 that is not Batch's own (a proxy's or a load balancer's page): no proof
        # that the campaign is gone, so it is a failed request, never a deletion.
        cls = RouteNotFound
        detail += " (not Batch's ROUTE_NOT_FOUND answer: taken for a failed request)"
    if cls is AuthenticationInvalid:
        text = (
            f"Batch refused the credentials of app '{app}' ({detail}); check BATCH_REST_API_KEY "
            f"(the company REST key) and the app's live API key (BATCH_API_KEY or api_key)"
        )
    else:
        text = f"{route} for app '{app}' failed: {detail}"
    kwargs = {
        "status": status,
        "code": code,
        "error_type": error_type,
        "batch_message": batch_message,
        "route": route,
    }
    if cls is TooManyRequests:
        return TooManyRequests(
            text, retry_after=parse_retry_after(response.headers.get("Retry-After")), **kwargs
        )
    return cls(text, **kwargs)  # type: ignore[arg-type]
