"""The Batch campaign endpoints we call, described as data."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from campaign_sync.domain import CampaignType


@dataclass(frozen=True)
class Endpoint:
    """One route: its name (for logs and metrics), method and path template."""

    name: str
    method: str
    template: str  # `{api_key}`, `{segment}` and `{token}` are filled in

    def path(self, api_key: str, campaign_type: CampaignType, token: str = "") -> str:
        """The request path, the API key and the token each one percent-encoded segment.

        Raises `UnsendableToken` for a token `token_problem` refuses."""
        problem = token_problem(token) if token else None
        if problem is not None:
            raise UnsendableToken(problem)
        return self.template.format(
            api_key=path_segment(api_key),
            segment=campaign_type.path_segment,
            token=path_segment(token) if token else "",
        )

    def route(self, campaign_type: CampaignType) -> str:
        """The route as logged and counted: no key, no token."""
        return f"{self.method} {campaign_type.path_segment}/{self.name}"


class UnsendableToken(ValueError):
    """A campaign token no request can carry (see `token_problem`)."""


# httpx refuses to build a URL longer than 65,536 characters (httpx/_urlparse.py,
# MAX_URL_LENGTH): an encoded token this long leaves room for the base URL, the API key
# and the route. One character encodes to at most 12 (4 UTF-8 bytes, each `%XX`), so a
# token of at most MAX_ENCODED_TOKEN // 12 characters is never measured.
MAX_ENCODED_TOKEN = 60_000


def token_problem(token: str) -> str | None:
    """Why `token` cannot be sent as a URL path segment, or None when it can.

    Any text can be percent-encoded (RFC 3986, section 2.1) except what is not Unicode
    (lone surrogates have no UTF-8 form) and control characters (Unicode category Cc:
    U+0000-U+001F, U+007F-U+009F), which servers and proxies refuse or cut at; and no
    client sends a URL of any length (`MAX_ENCODED_TOKEN`). A server may still refuse a
    long one (414): that is the campaign's own failed detail.
    """
    if not token:
        return "the campaign token is empty"
    if token.isascii() and token.isprintable():  # ASCII's only non-printables are its Cc
        return _length_problem(token)
    if any(unicodedata.category(ch) == "Cc" for ch in token):
        return "the campaign token contains control characters"
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return "the campaign token is not valid Unicode"
    return _length_problem(token)


def _length_problem(token: str) -> str | None:
    if len(token) <= MAX_ENCODED_TOKEN // 12:
        return None
    encoded = len(path_segment(token))
    if encoded <= MAX_ENCODED_TOKEN:
        return None
    return (
        f"the campaign token is {encoded:,} characters long once percent-encoded, "
        f"longer than any request can carry ({MAX_ENCODED_TOKEN:,})"
    )


def path_segment(text: str) -> str:
    """`text` as exactly one path segment: every character outside RFC 3986's unreserved
    set percent-encoded (so `#`, `?`, `/` and `%` stay inside it), and the dot segments
    `.` and `..` encoded too, so that no client or server resolves them (section 5.2.4)."""
    if text in (".", ".."):
        return "%2E" * len(text)
    return quote(text, safe="")


LIST = Endpoint("list", "GET", "/1.1/{api_key}/{segment}/list")
VIEW = Endpoint("view", "GET", "/1.1/{api_key}/{segment}/{token}")
UPDATE = Endpoint("update", "POST", "/1.1/{api_key}/{segment}/update/{token}")
STATS = Endpoint("stats", "GET", "/1.1/{api_key}/{segment}/stats/{token}")  # push campaigns only

PAGE_LIMIT = 100  # Batch's documented maximum for `limit`
READ_ONLY_FIELDS = ("campaign_token", "from_api", "dev_only", "created_date")
