"""Whether a command shows a live display: only on a terminal, so that `sync` run by cron
or a container never imports rich (see `progress` for the display itself)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, TextIO, cast

from campaign_sync.logs import READER_GONE
from campaign_sync.sync_pass import NoProgressSink, ProgressSink


class UntilHungUp:
    """A terminal's text stream (`sys.stderr`, say) whose writes are dropped once the
    terminal is gone: a closed terminal (an ended ssh session) answers every write with
    EIO (POSIX `write`: "a hangup occurred"), and a pipe whose reader ended with EPIPE.
    The live display writes from its own refresh thread, from a pass's 429 notice and as
    it stops: on a terminal closed under `sync`, that last write raised EIO out of the
    pass's work, and the command ended "unexpected error", exit 1 (a review's find). A
    display is for a person; when none can see it, the work goes on unseen. Everything
    else (`isatty`, `fileno`, `encoding`) is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._stream.write(text)
            except OSError as error:
                self._hung_up(error)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except OSError as error:
                self._hung_up(error)

    def _hung_up(self, error: OSError) -> None:
        if error.errno not in READER_GONE:
            raise error
        self.gone = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def progress_for_terminal() -> Iterator[ProgressSink]:
    """The live display when stderr is a terminal, else a sink that hears nothing. The
    display never fails the work for want of a terminal (`UntilHungUp`)."""
    if not sys.stderr.isatty():
        yield NoProgressSink()
        return
    from rich.console import Console

    from campaign_sync.progress import RichProgress

    stream = cast(TextIO, UntilHungUp(sys.stderr))
    with RichProgress(Console(file=stream, stderr=True)) as progress:
        yield progress
