"""A complete pass over one of Batch's newest-first, offset-paginated lists.

Offsets shift while we page: a campaign created meanwhile pushes every later entry down
(we would see one twice), a campaign deleted above our position pulls them up (we could
miss one). So consecutive pages overlap and the overlap is checked: a new page must
contain a token we already yielded, proving it continues where the last one ended. When
it does not (deletions pulled the list up past us), the sweep steps back until it does.
Tokens are yielded once per sweep. A sweep can resume from a saved `SweepPosition`.

A short page never ends a sweep by itself: a server may give fewer entries than `limit`
asks (Batch's NOTES: "confirm the end with one more request"). The end is confirmed by an
empty page right after a short one, which costs one list call per sweep, or by a page
there holding only entries already yielded (campaigns created meanwhile pushed the tail
down); when that page brings new entries, the server's own page size is learned and the
sweep goes on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
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
    # A resumed sweep that found none of its anchors and started over at the list's top:
    # it may be another list (another app's key), so its end decides no deletion.
    unproven: bool = False


def entry_token(entry: object) -> str | None:
    """The campaign token of a list entry, or None when the entry is not a campaign."""
    if isinstance(entry, dict):
        token = entry.get("campaign_token")
        if isinstance(token, str) and token:
            return token
    return None


@dataclass
class _Short:
    """A page shorter than a full one: an empty page at `offset + length` ends the sweep,
    and so does a page there of entries all yielded (`_Sweep.pushed_past_end`)."""

    offset: int
    length: int
    tokens: tuple[str | None, ...] = ()


class TokenSet:
    """The campaign tokens a sweep has yielded, kept as 128-bit BLAKE2b digests: a Python
    int of 128 bits and its set slot take about 90 bytes where the token's own string took
    about 140 (a 32-character token; 9.0 MB against 13.8 MB per 100,000, measured), and
    this set is what a pass's memory grows with (docs/performance.md, target 6). Two
    tokens share a digest with probability about n^2 / 2^129: 1e-29 for 100,000.

    Tokens are any text (lone surrogates included, by `surrogatepass`)."""

    __slots__ = ("_digests",)

    def __init__(self, tokens: Iterable[object] = ()) -> None:
        # A resumed sweep's anchors come from the database: what is not text (a hand-edited
        # or corrupt row) anchors nothing, and the sweep steps back as for any mismatch.
        self._digests = {self._digest(token) for token in tokens if isinstance(token, str)}

    @staticmethod
    def _digest(token: str) -> int:
        data = token.encode("utf-8", "surrogatepass")
        return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "little")

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self._digest(token) in self._digests

    def add(self, token: str) -> None:
        self._digests.add(self._digest(token))

    def __len__(self) -> int:
        return len(self._digests)


class _Sweep:
    """The state of one sweep between list calls; `sweep_pages` drives it."""

    def __init__(self, start: SweepPosition, page_size: int, overlap: int) -> None:
        self.offset = start.offset
        self.anchors = start.anchor_tokens
        self.yielded = TokenSet(start.anchor_tokens)
        self.full = page_size  # a page this long is not the last; less if the server gives less
        self.overlap = overlap
        self.short: _Short | None = None
        self.reported_until = start.offset  # entries before this offset were reported
        self.failed_at: set[int] = set()  # offsets that did not continue, since the last news
        self.backsteps = self.rereads = self.idle = 0
        self.first_page: tuple[str | None, ...] | None = None  # `saw`
        self.varied = False
        self.honoured = False  # a page as long as asked came: the server gives what is asked
        self.unanchored = False  # the last page's overlap held no campaign: see `_step`
        self.resumed = start.offset > 0  # from a saved position: see `continues`
        # See `SweepPage.unproven`; a position saved with no anchor (after a page of
        # entries that are no campaign) can prove nothing from the start.
        self.unproven = self.resumed and not start.anchor_tokens
        self.taken = 0  # pages taken by this sweep in this process
        self.junk_signature: int | None = None  # the last page of no campaign: `_new_junk`

    def continues(self, entries: list[Any], tokens: list[str | None]) -> bool:
        """The page holds a token already yielded, or nothing could prove it (the sweep's
        first page, or one after a page that gave no anchor: `_step`): no gap before it.
        A page of entries that are no campaign proves nothing either way, so it is read
        again from further back: deletions may have pulled campaigns up past it."""
        unanchored, self.unanchored = self.unanchored, False
        if not entries:
            return False
        if not self.yielded or unanchored:
            return True
        known = any(t in self.yielded for t in tokens if t)
        if self.offset == 0:
            # The top of the list: nothing lies before it, so no campaign can be missed.
            # A resumed sweep that has not met its anchors yet starts over here (many
            # creations at the head, its anchor page deleted), but its top showing none
            # of them may be another list (a key of another app): taken as the same, the
            # campaigns it never showed were asked with that key, answered 404 and marked
            # deleted. So it goes on, unproven: its end decides no deletion.
            if not known and self.resumed and self.taken == 0:
                self.unproven = True
            return True
        return known

    def pushed_past_end(self, tokens: list[str | None]) -> bool:
        """Right after a short page, entries all yielded already: campaigns created
        meanwhile pushed the list's tail past its end, or the server answers any offset
        past the end with its last page. Nothing lies beyond: the end. Unless the server
        gives fewer than asked (a cap): then the short page may be no tail, and only a
        page shorter than it counts (as many creations as a capped page holds would show
        the same). The very same page again, when every page so far was that page, proves
        nothing (a server ignoring `from` gives that), so it does not count: a whole list
        on one page, on a server answering past the end with that page, stays an error,
        as it cannot be told from one ignoring `from`. Without
        this, a list gaining a campaign between two calls never showed the empty page, and
        every pass failed at its tail."""
        short = self.short
        return (
            short is not None
            and bool(tokens)
            and all(token is not None and token in self.yielded for token in tokens)
            and (tuple(tokens) != short.tokens or self.varied)
            and (self.honoured or len(tokens) < short.length)
        )

    def saw(self, tokens: list[str | None]) -> None:
        """Note a fetched page: whether the pages so far were not all one and the same."""
        if self.first_page is None:
            self.first_page = tuple(tokens)
        elif tuple(tokens) != self.first_page:
            self.varied = True

    def learn_page_size(self, entries: list[Any]) -> bool:
        """Entries right after a short page, none seen before, no more than it held: this
        server gives at most that many per call. Read on from there, overlapping as usual."""
        short = self.short
        if short is None or not 2 <= len(entries) <= short.length:
            return False
        self.full = short.length
        self.honoured = True  # at its own page size
        # At most half the page overlaps: a server capping pages at 5 was paged by 1
        # (overlap 4), 249 calls for 250 campaigns; deletions past the overlap step back.
        self.overlap = min(self.overlap, max(1, self.full // 2))
        self.offset = short.offset + max(1, short.length - self.overlap)
        self.short = None
        log.info("the list gives at most %d entries per call; paging by that", self.full)
        return True

    def step_back(self, entries: list[Any]) -> None:
        """Entries we already hold are all above this page: campaigns deleted meanwhile
        pulled the list up past us. Step back until the pages meet again."""
        self.rereads += self.offset in self.failed_at
        self.failed_at.add(self.offset)
        self.backsteps += 1
        what = "was empty" if not entries else "did not overlap the page before"
        if self.rereads > MAX_REREADS or self.backsteps > MAX_BACKSTEPS:
            raise SweepError(
                f"the list page at offset {self.offset} {what}, and re-reading did not help "
                f"({self.backsteps} step-backs); the list looks inconsistent"
            )
        back = max(0, self.offset - max(1, self.full - self.overlap))
        log.info("list page at offset %d %s; stepping back to %d", self.offset, what, back)
        self.offset = back

    def take(self, entries: list[Any], tokens: list[str | None], calls: int) -> SweepPage:
        """The page of a continuing read, and where the sweep goes next."""
        offset = self.offset
        fresh: list[dict[str, Any]] = []
        unidentified: list[Any] = []
        for index, (entry, token) in enumerate(zip(entries, tokens, strict=True)):
            if token is None:
                if offset + index >= self.reported_until:
                    unidentified.append(entry)
            elif token not in self.yielded:
                self.yielded.add(token)
                fresh.append(entry)
        self._count_news(bool(fresh) or self._new_junk(entries, tokens))
        self.taken += 1
        self.honoured = self.honoured or len(entries) >= self.full
        self.reported_until = max(self.reported_until, offset + len(entries))
        self.anchors = tuple(t for t in tokens if t)
        self.short = (
            _Short(offset, len(entries), tuple(tokens)) if len(entries) < self.full else None
        )
        step = len(entries) if self.short else self._step(tokens)
        self.offset = offset + step
        return SweepPage(offset, fresh, self.position(), False, unidentified, calls, self.unproven)

    def position(self) -> SweepPosition:
        """Where the sweep goes on, as the cursor saves it. An unproven sweep's carries no
        anchor: resumed from a position without any, a sweep is unproven from its start,
        so that state outlives the process (stopped again, the next pass resumed from the
        other list's anchors as proven, and marked our campaigns deleted)."""
        return SweepPosition(self.offset, () if self.unproven else self.anchors)

    def _step(self, tokens: list[str | None]) -> int:
        """How far the next page starts past this full one: `overlap` entries before its
        end, so that the next page re-reads them, or earlier, at the page's last campaign,
        when those entries are all no campaigns (five junk entries at a page's end made
        every next page unprovable, and the sweep failed every pass). When the page's
        only campaign is its first entry, the next page starts where it normally would
        and is taken without proof (`unanchored`): nothing could prove it, and a missed
        campaign would only be asked before a tombstone (deletions are confirmed one by
        one)."""
        step = max(1, len(tokens) - self.overlap)
        if any(tokens[step:]):
            return step
        last = max((index for index, token in enumerate(tokens) if token), default=0)
        if last >= 1:
            return last
        self.unanchored = True
        return step

    def _new_junk(self, entries: list[Any], tokens: list[str | None]) -> bool:
        """A page of entries that are no campaign, other than the last such page: the
        sweep is moving through them (a run of 2,100 failed every pass as 'the list seems
        to ignore the requested offset'); the very same page again is no progress."""
        if any(tokens):
            return False
        signature = hash(repr(entries))
        moved, self.junk_signature = signature != self.junk_signature, signature
        return moved

    def _count_news(self, news: bool) -> None:
        if news:
            self.failed_at.clear()
            self.rereads = self.idle = 0
            return
        self.idle += 1
        if self.idle > MAX_IDLE_PAGES:
            raise SweepError(
                f"{self.idle} list pages in a row brought no campaign not seen before (up to "
                f"offset {self.offset}); the list seems to ignore the requested offset"
            )


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
    between (an empty page in the middle of the list), `MAX_BACKSTEPS` step-backs, or
    `MAX_IDLE_PAGES` pages in a row with nothing new (a list that ignores `from`).
    """
    if not 0 <= overlap < page_size:
        raise ValueError("overlap must be smaller than the page size")
    sweep = _Sweep(start or SweepPosition(), page_size, overlap)
    calls = 0
    while True:
        entries = await fetch_page(sweep.offset, page_size)
        calls += 1
        # An empty page ends the sweep right after a short one, or as the very first page
        # (an empty list); at offset 0 in a sweep that holds campaigns it is an empty page
        # mid-list, re-read then an error (it ended the sweep, and every campaign not yet
        # shown became a deletion candidate).
        if not entries and (sweep.short is not None or (sweep.offset == 0 and not sweep.yielded)):
            yield SweepPage(sweep.offset, [], sweep.position(), True, [], calls, sweep.unproven)
            return
        tokens = [entry_token(entry) for entry in entries]
        sweep.saw(tokens)
        if sweep.pushed_past_end(tokens):
            yield SweepPage(sweep.offset, [], sweep.position(), True, [], calls, sweep.unproven)
            return
        if sweep.continues(entries, tokens):
            yield sweep.take(entries, tokens, calls)
            calls = 0
        elif not sweep.learn_page_size(entries):
            sweep.short = None
            sweep.step_back(entries)
