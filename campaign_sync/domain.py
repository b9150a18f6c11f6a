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


@dataclass(frozen=True)
class SweepPosition:
    """Where the next page starts, and the tokens of the page before it (the overlap check)."""

    offset: int = 0
    anchor_tokens: tuple[str, ...] = ()
