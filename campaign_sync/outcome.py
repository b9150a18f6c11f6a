"""What a pass reports, defined once: its outcome (`PassStatus`), its counters
(`RunCounts`) and the two together (`PassResult`).

`RunCounts` is the one list of a run's counters: `sync_runs` has a column per field, and
the CLI summary, `status`, the demo and `/metrics` read the fields (and their labels) from
here. A new counter is a field here plus a `sync_runs` column and its migration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

from campaign_sync.domain import CampaignType


class PassStatus(enum.StrEnum):
    """A pass's outcome, as `sync_runs.status` holds it (`skipped` passes write no run)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # a signal stopped it after a committed page
    SKIPPED = "skipped"  # another process held the pass lock

    @property
    def ok(self) -> bool:
        """Not a failure: `sync` exits 0 when every pass is ok (the contract's exit rule)."""
        return self in (PassStatus.SUCCEEDED, PassStatus.SKIPPED, PassStatus.INTERRUPTED)


def _counter(label: str, kind: str) -> Any:
    return field(default=0, metadata={"label": label, "kind": kind})


@dataclass
class RunCounts:
    """A run's counters (`kind` "campaigns": what the pass did to the tables; "calls":
    what it cost at Batch; "stats": the push stats step, see `stats_sync`)."""

    campaigns_inserted: int = _counter("inserted", "campaigns")
    campaigns_updated: int = _counter("updated", "campaigns")
    campaigns_unchanged: int = _counter("unchanged", "campaigns")
    campaigns_deleted: int = _counter("deleted", "campaigns")
    warnings: int = _counter("warnings", "campaigns")
    list_calls: int = _counter("list calls", "calls")
    detail_calls: int = _counter("detail calls", "calls")
    retries: int = _counter("retries", "calls")
    stats_calls: int = _counter("calls", "stats")
    stats_rows_written: int = _counter("rows written", "stats")
    stats_failures: int = _counter("failed", "stats")

    @classmethod
    def names(cls, kind: str | None = None) -> tuple[str, ...]:
        """The counters' names (the `sync_runs` columns), of one kind or all."""
        return tuple(f.name for f in fields(cls) if kind is None or f.metadata["kind"] == kind)

    @classmethod
    def label(cls, name: str) -> str:
        """How a counter is shown: `inserted`, `list calls`, `stats calls`."""
        meta = next(f.metadata for f in fields(cls) if f.name == name)
        return f"stats {meta['label']}" if meta["kind"] == "stats" else str(meta["label"])

    def add(self, other: RunCounts) -> None:
        for name in self.names():
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.names()}

    def summary(self, seconds: float | None = None) -> str:
        """`3 inserted, 0 updated, …, 1 warnings (11 list calls, 0 detail calls, 0 retries)`,
        ` in 2.5s` when `seconds` is given, then `; stats: 4 calls, 9 rows written, 0
        failed` when the stats step ran."""
        labels = {f.name: f.metadata["label"] for f in fields(self)}

        def part(kind: str) -> str:
            return ", ".join(f"{getattr(self, n)} {labels[n]}" for n in self.names(kind))

        stats = f"; stats: {part('stats')}" if self.stats_calls else ""
        took = f" in {seconds:.1f}s" if seconds is not None else ""
        return f"{part('campaigns')} ({part('calls')}){took}{stats}"


@dataclass
class PassResult:
    """One pass of one app and campaign type, as the CLI, the service and metrics see it."""

    app: str
    campaign_type: CampaignType
    status: PassStatus | str  # a PassStatus; a plain "succeeded" is taken as one
    run_id: int | None = None
    counts: RunCounts = field(default_factory=RunCounts)
    error: str | None = None
    sweep_complete: bool = False
    seconds: float = 0.0
    # Failed for the configuration, not in passing (a role without the privileges the
    # pass needs): `sync` exits 2, as for any bad configuration.
    misconfigured: bool = False

    def __post_init__(self) -> None:
        self.status = PassStatus(self.status)

    @property
    def ok(self) -> bool:
        return PassStatus(self.status).ok
