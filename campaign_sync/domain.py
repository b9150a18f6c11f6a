"""The words every layer shares: the campaign types and the sweep's cursor position.

A leaf module: the Batch client (`batch/`) and the database side (`db/`) both import it,
so neither depends on the other for them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CampaignType(enum.StrEnum):
    """A Batch campaign type; the value is what the `campaign_type` column holds."""

    PUSH = "push"
    IN_APP = "in_app"

    @classmethod
    def parse(cls, text: str) -> CampaignType:
        """Accept the command-line spelling (`in-app`) as well as the stored one."""
        normalized = text.strip().lower().replace("-", "_")
        try:
            return cls(normalized)
        except ValueError:
            raise ValueError(f"unknown campaign type {text!r} (use push or in-app)") from None

    @property
    def label(self) -> str:
        return "in-app" if self is CampaignType.IN_APP else "push"

    @property
    def path_segment(self) -> str:
        return "in-app-campaigns" if self is CampaignType.IN_APP else "campaigns"


# What may surround a boolean written as text ("true", " FALSE\n"): the ASCII whitespace,
# as both campaigns' typed columns (`transform`) and the views (`db.views`) read it, so
# that the two always agree (Python's `str.strip()` also takes Unicode spaces, which SQL's
# trim functions spell differently on each database).
BOOLEAN_TEXT_SPACE = " \t\n\r\x0b\x0c"


@dataclass(frozen=True)
class SweepPosition:
    """Where the next page starts, and the tokens of the page before it (the overlap check)."""

    offset: int = 0
    anchor_tokens: tuple[str, ...] = ()


TOKEN_SHOWN_LIMIT = 80  # characters of a campaign token a log line or a message shows


def shown_token(token: str) -> str:
    """A campaign token as a log line or a message shows it: whole up to
    `TOKEN_SHOWN_LIMIT` characters, else its start and its length. Batch's tokens are 32
    hexadecimal characters; a list may still carry a 6,000-character one, which the
    database refuses at every pass, and each of its log lines was 6,000 characters."""
    if len(token) <= TOKEN_SHOWN_LIMIT:
        return token
    return f"{token[: TOKEN_SHOWN_LIMIT - 20]}… ({len(token):,} characters)"
