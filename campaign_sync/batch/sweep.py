"""A complete pass over one of Batch's newest-first, offset-paginated lists.

Offsets shift while we page: a campaign created meanwhile pushes every later entry down
(we would see one twice), a campaign deleted above our position pulls them up (we could
miss one). So consecutive pages overlap and the overlap is checked: a new page must
contain a token we already yielded, proving it continues where the last one ended. When
it does not (deletions pulled the list up past us), the sweep steps back until it does.
Tokens are yielded once per sweep. A sweep can resume from a saved `SweepPosition`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from campaign_sync.batch.endpoints import PAGE_LIMIT

log = logging.getLogger(__name__)

OVERLAP = 5
MAX_BACKSTEPS = 1_000

FetchPage = Callable[[int, int], Awaitable[list[dict[str, Any]]]]


class SweepError(Exception):
    """The list could not be swept with its continuity proven."""


@dataclass(frozen=True)
class SweepPosition:
    """Where the next page starts, and the tokens of the page before it (the overlap check)."""

    offset: int = 0
    anchor_tokens: tuple[str, ...] = ()


@dataclass
class SweepPage:
    offset: int
    entries: list[dict[str, Any]]  # list entries not yielded before in this sweep
    next_position: SweepPosition
    last: bool
    skipped_entries: int = 0  # entries without a usable campaign_token
    list_calls: int = 1  # calls this page cost, step-backs included


def entry_token(entry: object) -> str | None:
    if isinstance(entry, dict):
        token = entry.get("campaign_token")
        if isinstance(token, str) and token:
            return token
    return None


async def sweep_pages(
    fetch_page: FetchPage,
    start: SweepPosition | None = None,
    *,
    page_size: int = PAGE_LIMIT,
    overlap: int = OVERLAP,
) -> AsyncIterator[SweepPage]:
    """Yield the list page by page until a short page that continues the previous one."""
    if not 0 <= overlap < page_size:
        raise ValueError("overlap must be smaller than the page size")
    step = page_size - overlap
    position = start or SweepPosition()
    offset = position.offset
    yielded: set[str] = set(position.anchor_tokens)
    backsteps = 0
    calls = 0
    while True:
        entries = await fetch_page(offset, page_size)
        calls += 1
        tokens = [entry_token(entry) for entry in entries]
        checkable = any(tokens) or not entries  # a page of tokenless junk proves nothing
        continues = (
            offset == 0 or not yielded or not checkable or any(t in yielded for t in tokens if t)
        )
        if not continues:
            # Entries we already hold are all above this page: campaigns deleted meanwhile
            # pulled the list up past our position. Step back until the pages meet again.
            backsteps += 1
            if backsteps > MAX_BACKSTEPS:
                raise SweepError(f"no overlap found after {MAX_BACKSTEPS} step-backs")
            new_offset = max(0, offset - step)
            log.info(
                "list page at offset %d does not overlap the last one; stepping back to %d",
                offset,
                new_offset,
            )
            offset = new_offset
            continue
        fresh: list[dict[str, Any]] = []
        skipped = 0
        for entry, token in zip(entries, tokens, strict=True):
            if token is None:
                skipped += 1
            elif token not in yielded:
                yielded.add(token)
                fresh.append(entry)
        last = len(entries) < page_size
        page_tokens = tuple(t for t in tokens if t)
        next_position = SweepPosition(offset + step, page_tokens)
        yield SweepPage(
            offset=offset,
            entries=fresh,
            next_position=next_position,
            last=last,
            skipped_entries=skipped,
            list_calls=calls,
        )
        if last:
            return
        calls = 0
        offset += step
