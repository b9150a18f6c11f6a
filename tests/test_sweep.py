"""The sweep: never skip a campaign that existed throughout, never yield a token twice,
even while campaigns are created and deleted between page requests."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from campaign_sync.batch.sweep import SweepError, SweepPosition, sweep_pages


class ShiftingList:
    """A newest-first list that changes between page fetches, as Batch's may."""

    def __init__(
        self, size: int, churn: list[tuple[int, int]] | None = None, junk: tuple[int, int] = (0, 0)
    ) -> None:
        """`junk`: (position, length) of a run of entries that are no campaign."""
        self._next = size
        self.items = [f"t{i:05d}" for i in reversed(range(size))]  # newest first
        position, length = junk
        self.items[position:position] = [f"junk{i}" for i in range(length)]
        self.churn = list(churn or [])
        self.ever_deleted: set[str] = set()
        self.created: set[str] = set()
        self.calls: list[tuple[int, int]] = []
        self.rng = random.Random(5)

    def create(self, count: int) -> None:
        for _ in range(count):
            token = f"t{self._next:05d}"
            self._next += 1
            self.items.insert(0, token)
            self.created.add(token)

    def delete_random(self, count: int) -> None:
        for _ in range(min(count, len(self.items))):
            token = self.items.pop(self.rng.randrange(len(self.items)))
            self.ever_deleted.add(token)

    async def fetch(self, offset: int, limit: int) -> list[dict[str, Any]]:
        if self.calls and self.churn:
            creates, deletes = self.churn.pop(0)
            self.create(creates)
            self.delete_random(deletes)
        self.calls.append((offset, limit))
        page = self.items[offset : offset + limit]
        return [{"name": t} if t.startswith("junk") else {"campaign_token": t} for t in page]


async def collect(
    source: ShiftingList, start: SweepPosition | None = None, page_size: int = 100
) -> list[str]:
    tokens: list[str] = []
    async for page in sweep_pages(source.fetch, start, page_size=page_size, overlap=5):
        tokens += [e["campaign_token"] for e in page.entries]
    return tokens


def survivors_of(source: ShiftingList, original: list[str]) -> set[str]:
    """The original campaigns the list never lost."""
    return {t for t in original if not t.startswith("junk") and t not in source.ever_deleted}


def sweep_or_emptied(source: ShiftingList, original: list[str], page_size: int) -> list[str]:
    """The tokens a sweep yields, or none when it failed because the list lost every
    campaign midway (an empty page where campaigns were is an error, never the end, so
    that no campaign becomes a deletion candidate for it): a survivor makes that
    impossible."""
    try:
        return asyncio.run(collect(source, page_size=page_size))
    except SweepError:
        assert not survivors_of(source, original), "the sweep failed while campaigns survived"
        return []


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=700),
    page_size=st.sampled_from([10, 20, 100]),
    churn=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=0, max_size=40),
)
def test_sweep_never_skips_a_survivor_nor_repeats_a_token(
    size: int, page_size: int, churn: list[tuple[int, int]]
) -> None:
    source = ShiftingList(size, churn)
    original = list(source.items)
    tokens = sweep_or_emptied(source, original, page_size)
    survivors = survivors_of(source, original)
    assert len(tokens) == len(set(tokens)), "a token was yielded twice"
    assert survivors <= set(tokens), f"missed {sorted(survivors - set(tokens))[:5]}"
    assert set(tokens) <= set(original) | source.created


def test_unchanged_list_costs_n_over_95_plus_two_calls() -> None:
    source = ShiftingList(1000)
    tokens = asyncio.run(collect(source))
    assert len(tokens) == 1000
    # 11 pages (the last one short, at 950), then the empty page that confirms the end.
    assert [offset for offset, _ in source.calls] == [*range(0, 951, 95), 1000]
    assert all(limit == 100 for _, limit in source.calls)


def test_many_deletions_between_pages_make_the_sweep_step_back() -> None:
    source = ShiftingList(500, churn=[(0, 0)])
    original = list(source.items)

    async def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
        if len(source.calls) == 1:
            # Delete 120 campaigns from the first page: everything shifts up past us.
            for token in original[:120]:
                source.items.remove(token)
                source.ever_deleted.add(token)
        return await source.fetch(offset, limit)

    async def run() -> list[str]:
        tokens: list[str] = []
        async for page in sweep_pages(fetch):
            tokens += [e["campaign_token"] for e in page.entries]
        return tokens

    tokens = asyncio.run(run())
    assert set(original[120:]) <= set(tokens)
    offsets = [offset for offset, _ in source.calls]
    assert offsets[:3] == [0, 95, 0], "expected a step back after the non-overlapping page"


def test_a_resumed_sweep_continues_after_its_anchors() -> None:
    source = ShiftingList(300)
    first_page = source.items[:100]
    start = SweepPosition(95, tuple(first_page))
    tokens = asyncio.run(collect(source, start))
    assert set(tokens) == set(source.items[100:])
    assert source.calls[0] == (95, 100)


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=400),
    page_size=st.sampled_from([10, 20, 100]),
    junk=st.tuples(st.integers(0, 400), st.integers(1, 98)),
    churn=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=0, max_size=30),
)
# Six deletions leave the page at 15 holding only the junk entry: taken as continuing,
# the campaign pulled up before it was missed (a page of junk must be read from further back).
@example(size=21, page_size=20, junk=(21, 1), churn=[(0, 6)])
def test_a_run_of_entries_that_are_no_campaign_anywhere_skips_no_survivor(
    size: int, page_size: int, junk: tuple[int, int], churn: list[tuple[int, int]]
) -> None:
    """Entries with no token where the next page must overlap (five at a page's end) made
    every next page unprovable: the sweep failed every pass. A run of them anywhere, up to
    a page less two, and the list still changing between calls."""
    position, length = junk[0], min(junk[1], page_size - 2)
    source = ShiftingList(size, churn, junk=(min(position, size), length))
    original = [t for t in source.items if not t.startswith("junk")]
    tokens = sweep_or_emptied(source, original, page_size)
    survivors = survivors_of(source, original)
    assert len(tokens) == len(set(tokens)), "a token was yielded twice"
    assert survivors <= set(tokens), f"missed {sorted(survivors - set(tokens))[:5]}"


@pytest.mark.parametrize(
    ("size", "junk"),
    [
        (200, (95, 5)),  # exactly the overlap of the second page
        (200, (88, 24)),  # across the boundary
        (102, (95, 5)),
        (300, (96, 4)),
        (300, (1, 99)),  # the first page's only campaign is its first entry
        (300, (101, 150)),  # more than a page of them
        (300, (200, 100)),  # the list ends with them
        (200, (100, 2100)),  # 21 pages of them: 'the list seems to ignore the offset'
        (200, (0, 2500)),  # from the top
    ],
)
def test_entries_that_are_no_campaign_at_a_page_boundary_end_the_sweep(
    size: int, junk: tuple[int, int]
) -> None:
    source = ShiftingList(size, junk=junk)
    original = [t for t in source.items if not t.startswith("junk")]
    tokens = asyncio.run(collect(source))
    assert sorted(tokens) == sorted(original)
    assert len(source.calls) <= (size + junk[1]) // 95 + 4


def test_entries_without_a_token_are_reported_not_yielded() -> None:
    async def fetch(offset: int, limit: int) -> list[Any]:
        if offset > 0:
            return []
        return [{"campaign_token": "a"}, {"name": "no token"}, "junk", {"campaign_token": "b"}]

    async def run() -> tuple[list[str], list[Any]]:
        pages = [page async for page in sweep_pages(fetch)]
        return [e["campaign_token"] for e in pages[0].entries], pages[0].unidentified

    tokens, unidentified = asyncio.run(run())
    assert tokens == ["a", "b"]
    assert unidentified == [{"name": "no token"}, "junk"]


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=500),
    stop_after=st.integers(min_value=1, max_value=6),
    churn=st.lists(st.tuples(st.integers(0, 25), st.integers(0, 25)), max_size=30),
    between=st.tuples(st.integers(0, 40), st.integers(0, 40)),
    junk=st.tuples(st.integers(0, 500), st.integers(0, 18)),  # entries that are no campaign
)
def test_a_sweep_stopped_and_resumed_still_sees_every_survivor(
    size: int,
    stop_after: int,
    churn: list[tuple[int, int]],
    between: tuple[int, int],
    junk: tuple[int, int],
) -> None:
    source = ShiftingList(size, churn, junk=(min(junk[0], size), junk[1]))
    original = [t for t in source.items if not t.startswith("junk")]

    async def run() -> tuple[list[str], list[str]]:
        first: list[str] = []
        position = None
        pages = 0
        try:
            async for page in sweep_pages(source.fetch, page_size=20, overlap=5):
                first += [e["campaign_token"] for e in page.entries]
                position = None if page.last else page.next_position
                pages += 1
                if pages == stop_after:
                    break
        except SweepError:  # the list lost every campaign midway
            assert not survivors_of(source, original), "the sweep failed while campaigns survived"
            return first, []
        if position is None:
            return first, []
        source.create(between[0])  # the list changes while no pass runs
        source.delete_random(between[1])
        rest: list[str] = []
        try:
            async for page in sweep_pages(source.fetch, position, page_size=20, overlap=5):
                rest += [e["campaign_token"] for e in page.entries]
        except SweepError:  # only a list that lost every campaign may fail it
            assert not survivors_of(source, original), "the sweep failed while campaigns survived"
        return first, rest

    first, rest = asyncio.run(run())
    survivors = survivors_of(source, original)
    assert len(first) == len(set(first)) and len(rest) == len(set(rest))
    assert survivors <= set(first) | set(rest)


def test_a_short_page_is_confirmed_by_an_empty_one_and_a_capped_server_is_followed() -> None:
    source = ShiftingList(120)

    async def capped(offset: int, limit: int) -> list[dict[str, Any]]:
        return await source.fetch(offset, min(limit, 50))

    async def run() -> list[str]:
        tokens: list[str] = []
        async for page in sweep_pages(capped):
            tokens += [e["campaign_token"] for e in page.entries]
        return tokens

    tokens = asyncio.run(run())
    assert sorted(tokens) == sorted(source.items)
    # 0 (50: short?), 50 (not empty: the server caps at 50), 45, 90 (30: short), 120 (empty)
    assert [offset for offset, _ in source.calls] == [0, 50, 45, 90, 120]


def test_a_list_that_ignores_the_offset_is_an_error_not_an_endless_sweep() -> None:
    async def same_page(offset: int, limit: int) -> list[dict[str, Any]]:
        return [{"campaign_token": f"t{i}"} for i in range(limit)]

    async def run() -> None:
        async for _ in sweep_pages(same_page):
            pass

    with pytest.raises(SweepError, match="seems to ignore the requested offset"):
        asyncio.run(run())


def test_an_empty_page_mid_list_is_reread_a_few_times_then_an_error() -> None:
    source = ShiftingList(300)

    async def hole(offset: int, limit: int) -> list[dict[str, Any]]:
        return [] if offset == 95 else await source.fetch(offset, limit)

    async def run() -> None:
        async for _ in sweep_pages(hole):
            pass

    with pytest.raises(SweepError, match="offset 95 was empty"):
        asyncio.run(run())
    assert [offset for offset, _ in source.calls] == [0, 0, 0, 0, 0]  # between the re-reads


def test_short_pages_that_ignore_the_offset_never_end_a_sweep() -> None:
    async def same_short_page(offset: int, limit: int) -> list[dict[str, Any]]:
        return [{"campaign_token": f"t{i}"} for i in range(50)]

    async def run() -> None:
        async for page in sweep_pages(same_short_page):
            assert not page.last, "the sweep claimed an end it never saw"

    with pytest.raises(SweepError, match="seems to ignore the requested offset"):
        asyncio.run(run())


@pytest.mark.parametrize(
    ("size", "cap", "most_calls"), [(20, 3, 15), (250, 5, 90), (250, 10, 55), (250, 2, 260)]
)
def test_a_server_capping_pages_low_is_swept_by_half_its_page_at_least(
    size: int, cap: int, most_calls: int
) -> None:
    """A server giving at most 5 entries per call was paged by 1 (overlap 4 of 5): 249
    list calls for 250 campaigns."""
    source = ShiftingList(size)

    async def capped(offset: int, limit: int) -> list[dict[str, Any]]:
        return await source.fetch(offset, min(limit, cap))

    async def run() -> list[str]:
        tokens: list[str] = []
        async for page in sweep_pages(capped):
            tokens += [e["campaign_token"] for e in page.entries]
        return tokens

    assert sorted(asyncio.run(run())) == sorted(source.items)
    assert len(source.calls) <= most_calls


def test_the_set_of_yielded_tokens_tells_every_token_apart() -> None:
    from campaign_sync.batch.sweep import TokenSet

    odd = ["a", "A", "a ", "é", "e\u0301", "\ud800", "\udc80x", "🎉", "x" * 10_000, "0" * 31]
    near = [f"{n:032x}" for n in range(2_000)]  # tokens a bit apart, as Batch's hex ones
    yielded = TokenSet(odd[:5])
    for token in odd[5:] + near:
        assert token not in yielded, repr(token)
        yielded.add(token)
        assert token in yielded, repr(token)
    assert len(yielded) == len(odd) + len(near)
    assert all(token in yielded for token in odd)
    assert None not in yielded and 3 not in yielded  # not a token: never held
    assert not TokenSet()


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=300),
    page_size=st.sampled_from([10, 20, 100]),
    creations=st.integers(min_value=1, max_value=30),
    deletions=st.integers(min_value=0, max_value=3),
)
def test_a_list_gaining_campaigns_before_every_call_is_still_swept_to_its_end(
    size: int, page_size: int, creations: int, deletions: int
) -> None:
    """Campaigns created between every two list calls pushed the tail past its end: the
    empty page never came, and after 20 pages of already-seen entries every pass failed
    ('the list seems to ignore the requested offset'), storing none of the new ones.
    (Fewer creations per call than a page advances: with more, no offset paging can reach
    the end, and the sweep's error says so.)"""
    assume(creations < page_size - 5)
    # A list shorter than a page never shows the server giving what is asked; its short
    # page may be a cap, and a page after it as long (as many creations as it holds) looks
    # the same as a capped server's next page. That case stays an error; fewer creations
    # than the short page holds end the sweep (the test below).
    assume(size >= page_size)
    source = ShiftingList(size, churn=[(creations, deletions)] * 100_000)
    original = list(source.items)
    tokens = asyncio.run(collect(source, page_size=page_size))
    survivors = {t for t in original if t not in source.ever_deleted}
    assert len(tokens) == len(set(tokens)), "a token was yielded twice"
    assert survivors <= set(tokens), f"missed {sorted(survivors - set(tokens))[:5]}"


def test_a_list_gaining_one_campaign_per_call_ends_after_its_tail() -> None:
    source = ShiftingList(1000, churn=[(1, 0)] * 100_000)
    tokens = asyncio.run(collect(source))
    assert len(tokens) == len(set(tokens)) >= 1000
    # 11 pages (the tail short at 950 + the pushes), then one page of 11 already-seen
    # entries pushed past the end instead of the empty page.
    assert len(source.calls) == 12


def test_a_server_answering_past_the_end_with_its_last_page_ends_the_sweep() -> None:
    """It answered every offset past the end with its last page: never empty."""
    source = ShiftingList(250)

    async def clamped(offset: int, limit: int) -> list[dict[str, Any]]:
        if offset >= len(source.items):  # past the end: the last page (50 of 250)
            offset = len(source.items) - (len(source.items) % limit or limit)
        return await source.fetch(offset, limit)

    async def run() -> list[str]:
        tokens: list[str] = []
        async for page in sweep_pages(clamped):
            tokens += [e["campaign_token"] for e in page.entries]
            last = page.last
        assert last
        return tokens

    assert sorted(asyncio.run(run())) == sorted(source.items)


def test_a_list_shorter_than_a_page_gaining_fewer_campaigns_than_it_holds_is_swept() -> None:
    source = ShiftingList(40, churn=[(3, 0)] * 100_000)
    original = list(source.items)
    tokens = asyncio.run(collect(source))
    assert set(original) <= set(tokens) and len(tokens) == len(set(tokens))


@pytest.mark.parametrize("resumed", [False, True])
def test_a_capped_server_under_creations_is_not_taken_to_have_ended(resumed: bool) -> None:
    """A server giving 10 of the 100 asked, with 12 creations between two calls, showed a
    page of already-seen entries after a 'short' page: the sweep ended at offset 30 with 28
    of 300 campaigns (and every campaign not seen was a deletion candidate)."""
    source = ShiftingList(300, churn=[(1, 0), (1, 0), (12, 0)] + [(0, 0)] * 10_000)
    original = list(source.items)

    async def capped(offset: int, limit: int) -> list[dict[str, Any]]:
        return await source.fetch(offset, min(limit, 10))

    async def run() -> list[str]:
        start = SweepPosition(20, tuple(original[20:30])) if resumed else None
        tokens: list[str] = list(original[:30]) if resumed else []
        async for page in sweep_pages(capped, start):
            tokens += [e["campaign_token"] for e in page.entries]
        return tokens

    tokens = asyncio.run(run())
    assert set(original) <= set(tokens)


def test_a_list_emptied_midway_fails_the_sweep_instead_of_ending_it() -> None:
    """Stepping back to offset 0 and finding it empty ended the sweep as complete: every
    campaign it had not shown yet became a deletion candidate, and with views answering
    404 the pass marked them deleted and succeeded."""
    source = ShiftingList(300)

    async def emptied(offset: int, limit: int) -> list[dict[str, Any]]:
        if len(source.calls) >= 2:
            source.calls.append((offset, limit))
            return []
        return await source.fetch(offset, limit)

    async def run() -> list[str]:
        tokens: list[str] = []
        async for page in sweep_pages(emptied):
            tokens += [e["campaign_token"] for e in page.entries]
        return tokens

    with pytest.raises(SweepError, match="offset 0 was empty, and re-reading did not help"):
        asyncio.run(run())
    assert len(source.calls) <= 10


def test_a_resumed_sweep_meeting_another_list_goes_on_unproven() -> None:
    """A pass stopped at offset 475 of one app's list, resumed with another app's key:
    the other list was swept as if it continued, and the first app's campaigns it did not
    show were asked with the wrong key (404) and marked deleted. Its pages are now
    unproven, and the pass decides no deletion at its end."""
    mine = ShiftingList(600)
    anchors = tuple(mine.items[475:575])
    other = [{"campaign_token": f"other{i:02d}"} for i in range(20)]

    async def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
        return other[offset : offset + limit]

    async def run() -> list[Any]:
        return [page async for page in sweep_pages(fetch, SweepPosition(475, anchors))]

    pages = asyncio.run(run())
    assert [e["campaign_token"] for p in pages for e in p.entries] == [
        f"other{i:02d}" for i in range(20)
    ]
    assert pages[-1].last and all(page.unproven for page in pages)
    # What is saved carries no anchor, so a resume of it is unproven too (`_Sweep.unproven`).
    assert all(page.next_position.anchor_tokens == () for page in pages)


@pytest.mark.parametrize(("created", "deleted_anchors"), [(195, False), (400, False), (0, True)])
def test_a_resumed_sweep_that_lost_its_anchors_starts_over_and_sees_every_survivor(
    created: int, deleted_anchors: bool
) -> None:
    """Many campaigns created at the head while no pass ran, or the anchor page deleted:
    the resumed sweep starts over from the top (unproven) instead of failing."""
    source = ShiftingList(2000)
    original = list(source.items)
    anchors = tuple(source.items[475:575])
    source.create(created)
    if deleted_anchors:
        source.items = [t for t in source.items if t not in anchors]
        source.ever_deleted.update(anchors)

    async def run() -> list[Any]:
        return [p async for p in sweep_pages(source.fetch, SweepPosition(475, anchors))]

    pages = asyncio.run(run())
    tokens = [e["campaign_token"] for p in pages for e in p.entries]
    assert len(tokens) == len(set(tokens))
    survivors = survivors_of(source, original)
    assert survivors - set(anchors) <= set(tokens)
    assert pages[-1].last and pages[-1].unproven
