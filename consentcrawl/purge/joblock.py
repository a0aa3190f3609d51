"""Who is using a ``JOBDIR``: a crawl and a purge never work on one at the same time.

A running crawl holds its pending requests in memory and in the disk queues it opened, its dupefilter appends to
``requests.seen``, and at its close its scheduler writes every queue, ``info.json`` and ``active.json`` back, by
path: a purge that ran meanwhile would be undone, or worse, a FIFO queue's ``info.json`` would be written over the
new queue the purge put in its place. Scrapy does not lock the directory, so consentcrawl does.

The lock is an advisory ``fcntl.flock`` on the ``JOBDIR`` directory itself, exclusive and never waited for (no
lock file: the purge adds nothing to a directory it finds nothing to change in): the
add-on takes it as the crawl is set up (before Scrapy's scheduler or dupefilter opens anything there) and lets it
go when the engine has stopped (after the purge on close); ``consentcrawl purge --jobdir`` takes it before it
touches anything and keeps it until it is done. Whoever finds it held refuses, naming the directory: the crawl
does not start (a configuration error, and the scheduler is kept off the directory), the purge exits 2. The
kernel releases a ``flock`` when its process ends however it ends (``kill -9`` included), so a stale lock
cannot block anyone.

A crawl that fails to start after the add-on took the lock (a project component raising as Scrapy builds it: no
engine, so neither ``spider_closed`` nor ``engine_stopped`` comes) would keep it for the rest of its process: the
add-on hands :meth:`JobdirLock.take` a check of whether its crawl can still use the directory, and a later
``take`` in the same process takes over a lock whose crawl cannot (:mod:`consentcrawl.heldlocks`, as for the audit
log). Another process, a purge, still finds it held until that process ends.

Only crawls run with this add-on take the lock (a ``ConsentSpider`` installs it itself, with no ``ADDONS`` entry):
a plain Scrapy crawl without it (or an older consentcrawl) on the directory is not seen. Systems without ``fcntl``
(Windows) cannot take it: a purge there refuses, a crawl there runs unlocked with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ..heldlocks import file_key, forget, hold, lock_or_take_over

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["JobdirBusy", "JobdirLock", "can_lock"]


class JobdirBusy(ConfigError):
    """The job directory's lock is held by a crawl or a purge."""


def can_lock() -> bool:
    return fcntl is not None


class JobdirLock:
    """The held lock of one job directory; :meth:`release` (or the process's end) lets it go."""

    def __init__(self, directory: Path, fd: int | None) -> None:
        self.directory = directory
        self._fd: int | None = fd
        self._key: tuple[int, int] | None = None

    @classmethod
    def take(cls, directory: Path, source: str, *, create: bool = True,
             alive: Callable[[], bool] | None = None) -> JobdirLock:
        """Lock ``directory`` (made if missing, as Scrapy makes a ``JOBDIR``; without ``create`` a missing one is
        not locked: no crawl runs there, and the purge says it is no job directory). Raises :class:`JobdirBusy`
        when someone holds it and :class:`ConfigError` (``source``: the setting or option that named it) when it
        cannot be locked at all. ``alive``: whether the holder (a crawl) can still use the directory; a lock
        this process holds for a holder that cannot is taken over (module doc)."""
        if not create and not directory.is_dir():
            return cls(directory, None)
        if fcntl is None:
            raise ConfigError(f"{directory}: this system has no fcntl.flock; whether a crawl is using the job "
                              "directory cannot be told", source=source)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfigError(f"cannot open the job directory {directory} to lock it: {exc.strerror or exc}",
                              source=source) from None
        try:
            key = file_key(fd)
            lock_or_take_over(fd, key)
        except OSError as exc:
            os.close(fd)
            if isinstance(exc, BlockingIOError):
                raise JobdirBusy(f"the job directory {directory} is in use: a running crawl (or a purge) holds "
                                 "its lock; wait for it to end (a crawl stops at its close or with one Ctrl-C), "
                                 "then try again", source=source) from None
            raise ConfigError(f"cannot lock the job directory {directory}: {exc.strerror or exc}",
                              source=source) from None
        lock = cls(directory, fd)
        if alive is not None:
            lock._key = key
            hold(key, lock, lock.release, alive)
        return lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Close the directory's descriptor (which unlocks it); once only."""
        fd, self._fd = self._fd, None
        forget(self._key, self)
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> JobdirLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
