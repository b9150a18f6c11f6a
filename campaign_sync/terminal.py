"""Whether a command shows a live display: only on a terminal, so that `sync` run by cron
or a container never imports rich (see `progress` for the display itself)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from campaign_sync.sync_pass import NoProgressSink, ProgressSink


@contextlib.contextmanager
def progress_for_terminal() -> Iterator[ProgressSink]:
    """The live display when stderr is a terminal, else a sink that hears nothing."""
    if not sys.stderr.isatty():
        yield NoProgressSink()
        return
    from rich.console import Console

    from campaign_sync.progress import RichProgress

    with RichProgress(Console(stderr=True)) as progress:
        yield progress
