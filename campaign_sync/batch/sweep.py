"""A complete pass over one of Batch's newest-first, offset-paginated lists.

Offsets shift while we page: a campaign created meanwhile pushes every later entry down
(we would see one twice), a campaign deleted above our position pulls them up (we could
miss one). So consecutive pages overlap and the overlap is checked: a new page must
contain a token we already yielded, proving it continues where the last one ended. When
it does not (deletions pulled the list up past us), the sweep steps back until it does.
Tokens are yielded once per sweep. A sweep can resume from a saved `SweepPosition`.

A short page never ends a sweep by itself: a server may give fewer entries than `limit`
asks (Batch's NOTES: "confirm the end with one more request"). The end is confirmed by an
empty page right after a short one, which costs one list call per sweep; when that page
is not empty, the server's own page size is learned and the sweep goes on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from campaign_sync.batch.endpoints import PAGE_LIMIT
from campaign_sync.domain import SweepPosition

log = logging.getLogger(__name__)

OVERLAP = 5
MAX_BACKSTEPS = 1_000  # step-backs in one sweep: only a list shrinking by ~95,000 needs more
MAX_REREADS = 3  # failures at an offset that already failed, with nothing new in between

MAX_IDLE_PAGES = 20  # continuing pages in a row with nothing new: the server ignores `from`

FetchPage = Callable[[int, int], Awaitable[list[Any]]]


class SweepError(Exception):
    """The list could not be swept with its continuity proven."""


@dataclass
class SweepPage:
    """One list call's worth of a sweep.

    `entries`: list entries whose token this sweep had not yielded yet; `unidentified`:
    entries that are not campaigns (not an object, or no text `campaign_token`), each
    reported once; `last`: the end of the list is confirmed (this page is then empty).
    """

    offset: int
    entries: list[dict[str, Any]]
    next_position: SweepPosition
    last: bool
    unidentified: list[Any] = field(default_factory=list)
    list_calls: int = 1  # calls this page cost, step-backs and confirmations included


def entry_token(entry: object) -> str | None:
    """The campaign token of a list entry, or None when the entry is not a campaign."""
    if isinstance(entry, dict):
        token = entry.get("campaign_token")
        if isinstance(token, str) and token:
            return token
    return None


@dataclass
class _Short:
    """A page shorter than a full one: an empty page at `offset + length` ends the sweep."""

    offset: int
    length: int


async def sweep_pages(
    fetch_page: FetchPage,
    start: SweepPosition | None = None,
    *,
    page_size: int = PAGE_LIMIT,
    overlap: int = OVERLAP,
) -> AsyncIterator[SweepPage]:
    """Yield the list page by page until its end is confirmed by an empty page.

    `fetch_page(offset, limit)` returns the entries at that offset. Raises `SweepError`
    when pages stop continuing one another: an offset whose page neither continues the
    sweep nor is the confirmed end failed again `MAX_REREADS` times with no new entry in
    between (an empty page in the middle of the list), or `MAX_BACKSTEPS` step-backs.
    """
    if not 0 <= overlap < page_size:
        raise ValueError("overlap must be smaller than the page size")
    position = start or SweepPosition()
    offset = position.offset
    anchors = position.anchor_tokens
    yielded: set[str] = set(anchors)
    full = page_size  # a page this long is not the last; less when the server gives less
    short: _Short | None = None
    reported_until = offset  # entries before this absolute offset were already reported
    failed_at: set[int] = set()  # offsets whose page did not continue, since the last news
    backsteps = rereads = idle = calls = 0
    while True:
        entries = await fetch_page(offset, page_size)
        calls += 1
        if not entries and (short is not None or offset == 0):
            yield SweepPage(offset, [], SweepPosition(offset, anchors), True, [], calls)
            return
        tokens = [entry_token(entry) for entry in entries]
        checkable = any(tokens)  # a page of tokenless junk proves nothing
        continues = bool(entries) and (
            offset == 0 or not yielded or not checkable or any(t in yielded for t in tokens if t)
        )
        if not continues and short is not None and 2 <= len(entries) <= short.length:
            # Entries right after a short page, none seen before, no more than it held: this
            # server gives at most `short.length` per call. Read on, overlapping as usual.
            full = short.length
            overlap = min(overlap, full - 1)
            offset = short.offset + max(1, short.length - overlap)
            log.info("the list gives at most %d entries per call; paging by that", full)
            short = None
            continue
        short = None
        if not continues:
            rereads += offset in failed_at
            failed_at.add(offset)
            backsteps += 1
            if rereads > MAX_REREADS or backsteps > MAX_BACKSTEPS:
                what = "was empty" if not entries else "did not overlap the page before"
                raise SweepError(
                    f"the list page at offset {offset} {what}, and re-reading did not help "
                    f"({backsteps} step-backs); the list looks inconsistent"
                )
            # Entries we already hold are all above this page: campaigns deleted meanwhile
            # pulled the list up past our position. Step back until the pages meet again.
            new_offset = max(0, offset - max(1, full - overlap))
            log.info(
                "list page at offset %d %s; stepping back to %d",
                offset,
                "is empty" if not entries else "does not overlap the last one",
                new_offset,
            )
            offset = new_offset
            continue
        fresh: list[dict[str, Any]] = []
        unidentified: list[Any] = []
        for index, (entry, token) in enumerate(zip(entries, tokens, strict=True)):
            if token is None:
                if offset + index >= reported_until:
                    unidentified.append(entry)
            elif token not in yielded:
                yielded.add(token)
                fresh.append(entry)
        if fresh:
            failed_at.clear()
            rereads = idle = 0
        else:
            idle += 1
            if idle > MAX_IDLE_PAGES:
                raise SweepError(
                    f"{idle} list pages in a row brought no campaign not seen before (up to "
                    f"offset {offset}); the list seems to ignore the requested offset"
                )
        reported_until = max(reported_until, offset + len(entries))
        anchors = tuple(t for t in tokens if t)
        if len(entries) < full:
            short = _Short(offset, len(entries))
            next_offset = offset + len(entries)
        else:
            next_offset = offset + max(1, len(entries) - overlap)
        yield SweepPage(
            offset=offset,
            entries=fresh,
            next_position=SweepPosition(next_offset, anchors),
            last=False,
            unidentified=unidentified,
            list_calls=calls,
        )
        calls = 0
        offset = next_offset
