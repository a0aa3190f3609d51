"""Progress of a long read or import: a bar on stderr when it is a terminal, a log line every few seconds when not
(a crawl's log, a CI job). Nothing of the records is shown: only counts, bytes and time."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]

logger = logging.getLogger(__name__)

LOG_EVERY = 5.0  #: seconds between two log lines when stderr is not a terminal
DRAW_EVERY = 0.2  #: seconds between two redraws of the bar


class Progress:
    """``update(done_bytes, records)`` as the file is read; ``finish(records)`` once. Silent for work that ends
    before ``quiet`` seconds (a small file shows nothing)."""

    def __init__(self, what: str, total_bytes: int, *, stream: TextIO | None = None, quiet: float = 1.0,
                 clock: Any = time.monotonic) -> None:
        self.what = what
        self.total = max(total_bytes, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.started = clock()
        self.quiet = quiet
        self._next = self.started + quiet
        self._drawn = False

    def update(self, done_bytes: int, records: int) -> None:
        now = self.clock()
        if now < self._next:
            return
        self._next = now + (DRAW_EVERY if self.tty else LOG_EVERY)
        share = min(done_bytes / self.total, 1.0)
        elapsed = now - self.started
        if self.tty:
            width = 30
            filled = int(share * width)
            eta = f", {elapsed / share - elapsed:.0f} s left" if share > 0.01 else ""
            self.stream.write(f"\r{self.what}: [{'#' * filled}{'.' * (width - filled)}] {share:6.1%} "
                              f"{records:,} records, {elapsed:.0f} s{eta}   ")
            self.stream.flush()
            self._drawn = True
        else:
            logger.info("%s: %.0f%% (%d records, %.0f s)", self.what, share * 100, records, elapsed)

    def finish(self, records: int) -> None:
        elapsed = self.clock() - self.started
        if self._drawn:
            self.stream.write(f"\r{self.what}: done, {records:,} records in {elapsed:.1f} s" + " " * 30 + "\n")
            self.stream.flush()
        elif elapsed >= self.quiet:
            logger.info("%s: done, %d records in %.1f s", self.what, records, elapsed)
