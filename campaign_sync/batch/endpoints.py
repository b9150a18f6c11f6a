"""The five Batch campaign endpoints, described as data."""

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
class Endpoint:
    """One route: its name (for logs and metrics), method and path template."""

    name: str
    method: str
    template: str  # `{api_key}`, `{segment}` and `{token}` are filled in

    def path(self, api_key: str, campaign_type: CampaignType, token: str = "") -> str:
        return self.template.format(
            api_key=api_key, segment=campaign_type.path_segment, token=token
        )

    def route(self, campaign_type: CampaignType) -> str:
        """The route as logged and counted: no key, no token."""
        return f"{self.method} {campaign_type.path_segment}/{self.name}"


LIST = Endpoint("list", "GET", "/1.1/{api_key}/{segment}/list")
VIEW = Endpoint("view", "GET", "/1.1/{api_key}/{segment}/{token}")
UPDATE = Endpoint("update", "POST", "/1.1/{api_key}/{segment}/update/{token}")

PAGE_LIMIT = 100  # Batch's documented maximum for `limit`
READ_ONLY_FIELDS = ("campaign_token", "from_api", "dev_only", "created_date")
