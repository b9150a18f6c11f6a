"""The diff of one swept page against what the database holds, decided in one place.

Pure: a `PageLoad` (the page's list entries, the details fetched for it, what the
database held for its tokens) becomes a `PagePlan` (campaigns to insert or update with
all their rows, details to mark fresh, tombstones, seen tokens, warnings). `db.loader`
applies the plan; nothing here touches the database, so the diff is tested without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from campaign_sync.batch.endpoints import token_problem
from campaign_sync.batch.sweep import entry_token
from campaign_sync.domain import CampaignType, SweepPosition
from campaign_sync.outcome import RunCounts
from campaign_sync.storable import (
    FieldWarning,
    JSONText,
    StorableDocument,
    merge_warnings,
    raw_text,
    storable_document,
)
from campaign_sync.transform import (
    CampaignRows,
    document_hash,
    transform_campaign,
    transform_storable,
)


@dataclass(frozen=True)
class StoredCampaign:
    """What the database holds about one campaign token, as far as the diff needs."""

    id: int
    list_hash: str | None
    content_hash: str | None
    detail_fetched_at: datetime | None
    deleted_at: datetime | None
    version: int | None = None  # its newest `campaign_versions.version`; None: no history yet


@dataclass
class PageLoad:
    """What one page brought: its entries, the details fetched, and what went wrong.

    `sweep_id` is None outside a sweep (a write-back): the plan then leaves the sweep's
    bookkeeping (`list_entry`, `list_hash`, `last_seen_at`, `campaign_sightings`) alone.
    """

    app: str
    campaign_type: CampaignType
    run_id: int | None  # None outside a sync pass (a write-back)
    sweep_id: int | None
    now: datetime
    list_entries: dict[str, dict[str, Any]]  # token -> list entry, every fresh entry
    details: dict[str, Any] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # token -> why its detail failed
    unsendable: dict[str, str] = field(default_factory=dict)  # token -> why it is skipped
    unidentified: list[Any] = field(default_factory=list)  # list entries that are no campaign
    offset: int = 0  # the page's list offset, for messages
    position: SweepPosition | None = None  # the cursor to save with this page
    stored: dict[str, StoredCampaign] = field(default_factory=dict)  # what the DB held
    _prepared_entries: dict[str, tuple[StorableDocument, str]] = field(
        default_factory=dict, repr=False
    )

    def list_hash(self, token: str) -> str | None:
        """The stable hash of a token's list entry, computed once per page."""
        prepared = self.prepared_entry(token)
        return None if prepared is None else prepared[1]

    def prepared_entry(self, token: str) -> tuple[StorableDocument, str] | None:
        """A token's list entry through `storable_document`, and its stable hash: both
        from one serialisation, once per page."""
        if token not in self._prepared_entries:
            entry = self.list_entries.get(token)
            if entry is None:
                return None
            prepared = storable_document(entry)
            self._prepared_entries[token] = (prepared, document_hash(prepared))
        return self._prepared_entries[token]


@dataclass(frozen=True)
class PageWarning:
    """A `sync_warnings` row to be: about a campaign token, stored or not."""

    campaign_token: str | None
    campaign_id: int | None
    warning: FieldWarning


@dataclass
class CampaignWrite:
    """One campaign's content to store: a new row (`campaign_id` None) or a rewrite.

    `values` holds every `campaigns` column to set; `rows` the child rows and warnings;
    `version` the `campaign_versions` row (without `campaign_id` for a new campaign), when
    there is content; `texts` the `JSONText` of some JSON values (column -> text), for a
    loader that can store the text as it is.
    """

    campaign_token: str
    campaign_id: int | None
    values: dict[str, Any]
    rows: CampaignRows
    version: dict[str, Any] | None
    texts: dict[str, JSONText] = field(default_factory=dict)


@dataclass
class PagePlan:
    """Everything one page changes, ready for `db.loader.write_page`."""

    load: PageLoad
    writes: list[CampaignWrite] = field(default_factory=list)
    refreshes: list[dict[str, Any]] = field(default_factory=list)  # id, list_hash, ...
    restored: int = 0  # refreshed campaigns that were tombstoned
    tombstones: list[int] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    warnings: list[PageWarning] = field(default_factory=list)

    versions: list[dict[str, Any]] = field(default_factory=list)  # history rows of the above
    refetch: list[int] = field(default_factory=list)  # stored ids whose detail is due again
    rejected: int = 0  # campaigns the database refused, skipped with a warning

    def without(self, rejected: dict[str, str]) -> PagePlan:
        """The same plan minus the writes the database refused (token -> its error): each
        becomes a warning, and a stored campaign's detail is fetched again next pass."""
        kept, warnings, refetch = [], list(self.warnings), list(self.refetch)
        for write in self.writes:
            error = rejected.get(write.campaign_token)
            if error is None:
                kept.append(write)
                continue
            message = f"the database refused this campaign ({error}); skipped, retried next pass"
            warnings.append(
                PageWarning(
                    write.campaign_token, write.campaign_id, FieldWarning("campaign", None, message)
                )
            )
            if write.campaign_id is not None:
                refetch.append(write.campaign_id)
        return replace(
            self,
            writes=kept,
            warnings=warnings,
            refetch=refetch,
            rejected=self.rejected + len(self.writes) - len(kept),
        )

    def counts(self) -> RunCounts:
        """What applying this plan does, by the contract's counters."""
        inserted = sum(write.campaign_id is None for write in self.writes)
        updated = len(self.writes) - inserted + self.restored
        warnings = len(self.warnings) + sum(len(write.rows.warnings) for write in self.writes)
        deleted = len(self.tombstones)
        unchanged = len(self.seen) - inserted - updated - self.rejected
        return RunCounts(
            campaigns_inserted=inserted,
            campaigns_updated=updated,
            campaigns_unchanged=max(0, unchanged),
            campaigns_deleted=deleted,
            warnings=warnings,
        )


class ChangeKind(StrEnum):
    """Why a `campaign_versions` row begins: the campaign's history, decided here only."""

    CREATED = "created"
    CHANGED = "changed"
    DELETED = "deleted"
    RESTORED = "restored"


def version_row(
    previous: int | None,
    kind: ChangeKind,
    now: datetime,
    run_id: int | None,
    content_hash: str | None,
) -> dict[str, Any]:
    """The next `campaign_versions` row of a campaign (without `campaign_id`): valid from
    `now` until a later row closes it (`db.history.append_versions`). `previous` is the
    campaign's newest version number, None when it has no history yet. Its `detail` is
    NULL: the current version's content is `campaigns.detail`, copied to the row when a
    later one closes it (`db.history`)."""
    return {
        "version": (previous or 0) + 1,
        "change_kind": kind.value,
        "valid_from": now,
        "valid_to": None,
        "recorded_at": now,
        "run_id": run_id,
        "content_hash": content_hash,
        "detail": None,
    }


def campaigns_by_token(
    entries: list[dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """A page's list entries by campaign token, and the tokens no request can carry
    (`token_problem`) with why: those campaigns are skipped with a warning."""
    by_token: dict[str, dict[str, Any]] = {}
    unsendable: dict[str, str] = {}
    for entry in entries:
        token = entry_token(entry)
        if token is None:
            continue
        problem = token_problem(token)
        if problem is None:
            by_token[token] = entry
        else:
            unsendable[token] = f"{problem}: no request can carry it; campaign skipped"
    return by_token, unsendable


def plan_page(load: PageLoad) -> PagePlan:
    """Decide what one page changes. Never raises on data: a hostile value becomes a
    warning (see `storable` and `transform_campaign`)."""
    plan = PagePlan(load)
    for token, detail in load.details.items():
        _plan_detail(plan, token, detail)
    for token, why in load.failed.items():
        _plan_failed_detail(plan, token, why)
    for token, why in load.unsendable.items():
        plan.warnings.append(PageWarning(token, None, FieldWarning("campaign_token", token, why)))
    for entry in load.unidentified:
        plan.warnings.append(
            PageWarning(None, None, FieldWarning(
                # `null` as its JSON text, which db.warnings folds by (as it would the text "null")
                "list_entry", "null" if entry is None else raw_text(entry),
                f"a list entry near offset {load.offset} is not a campaign (no text "
                "campaign_token); skipped, and this sweep marks deleted only what Batch "
                "confirms gone",
            ))
        )  # fmt: skip
    for token in load.gone:
        known = load.stored.get(token)
        if known is not None and known.deleted_at is None and load.sweep_id is None:
            plan.tombstones.append(known.id)
            _add_version(plan, known, ChangeKind.DELETED, None)
        # In a sweep, a stored campaign answering 404 is only left unseen: the end of the
        # complete sweep confirms and marks every deletion at once, under the mass-delete
        # rule (`SyncPass._decide_deletions`), never page by page.
        elif known is None:  # nothing to mark: say why the listed campaign is not stored
            plan.warnings.append(PageWarning(token, None, FieldWarning(
                "detail", None,
                "the list shows this campaign but its detail answers 404 (campaign not "
                "found): not stored; asked again next pass",
            )))  # fmt: skip
    if load.sweep_id is not None:
        plan.seen = [token for token in load.list_entries if token not in load.gone]
    return plan


def _add_version(
    plan: PagePlan, known: StoredCampaign, kind: ChangeKind, content_hash: str | None
) -> None:
    """A history row for a stored campaign whose content is not rewritten (deleted, or
    back with the same content)."""
    row = version_row(known.version, kind, plan.load.now, plan.load.run_id, content_hash)
    plan.versions.append({**row, "campaign_id": known.id})


def _bookkeeping(
    load: PageLoad, token: str
) -> tuple[dict[str, Any], list[FieldWarning], dict[str, JSONText]]:
    """The sweep's columns for a written campaign, the list entry's repairs, and its
    `JSONText` when it has one (see `CampaignWrite.texts`)."""
    found = load.prepared_entry(token) if load.sweep_id is not None else None
    if found is None:
        return {}, [], {}
    prepared, list_hash = found
    values = {"list_entry": prepared.value, "list_hash": list_hash, "last_seen_at": load.now}
    texts = {} if prepared.text is None else {"list_entry": prepared.text}
    return values, prepared.warnings, texts


def _plan_detail(plan: PagePlan, token: str, detail: Any) -> None:
    load = plan.load
    known = load.stored.get(token)
    prepared = storable_document(detail)
    content_hash = document_hash(prepared)
    if known is not None and known.content_hash == content_hash:
        if load.sweep_id is not None:
            found = load.prepared_entry(token)
            if found is not None and found[1] != known.list_hash:
                # A new list entry over unchanged content: its repairs are its own news.
                warned = [PageWarning(token, known.id, w) for w in found[0].warnings]
                plan.warnings.extend(warned)
            plan.refreshes.append(
                {
                    "id": known.id,
                    "list_hash": found[1] if found else None,
                    "list_entry": found[0].value if found else None,
                    "last_seen_at": load.now,  # the row is written anyway
                }
            )
        else:
            plan.refreshes.append({"id": known.id})
        if known.deleted_at is not None:
            plan.restored += 1
            _add_version(plan, known, ChangeKind.RESTORED, content_hash)
        return
    rows = transform_storable(load.campaign_type, token, prepared)
    sweep_values, repairs, texts = _bookkeeping(load, token)
    rows.warnings = merge_warnings(rows.warnings, repairs)
    if prepared.text is not None and rows.campaign["detail"] is prepared.value:
        texts["detail"] = prepared.text  # not when the transform stored {} for a non-object
    values = {
        **rows.campaign,
        **sweep_values,
        "content_hash": content_hash,
        "detail_fetched_at": load.now,
        "deleted_at": None,
        "updated_at": load.now,
    }
    kind = (
        ChangeKind.CREATED
        if known is None or known.version is None
        else ChangeKind.RESTORED
        if known.deleted_at is not None
        else ChangeKind.CHANGED
    )
    previous = known.version if known else None
    version = version_row(previous, kind, load.now, load.run_id, content_hash)
    plan.writes.append(
        CampaignWrite(token, known.id if known else None, values, rows, version, texts)
    )


def _plan_failed_detail(plan: PagePlan, token: str, why: str) -> None:
    load = plan.load
    known = load.stored.get(token)
    entry = load.list_entries.get(token)
    problem = FieldWarning("detail", None, why)
    if known is not None or entry is None:
        plan.warnings.append(PageWarning(token, known.id if known else None, problem))
        return
    # Keep the campaign visible from its list entry; its detail is retried next pass.
    rows = transform_campaign(load.campaign_type, token, entry)
    rows.campaign["detail"] = None
    sweep_values, _, texts = _bookkeeping(load, token)
    rows.warnings.insert(0, problem)
    values = {
        **rows.campaign,
        **sweep_values,
        "list_hash": None,  # so that the next pass asks for the detail again
        "content_hash": None,
        "detail_fetched_at": None,
        "deleted_at": None,
        "updated_at": load.now,
    }
    plan.writes.append(CampaignWrite(token, None, values, rows, None, texts))
