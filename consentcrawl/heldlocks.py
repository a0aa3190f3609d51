"""The ``flock``s this process holds for its crawls (``JOBDIR``'s, the audit log's), and taking one over from a
crawl that can no longer use it.

A crawl takes its locks as Scrapy builds it (the add-on's ``update_settings``, the runtime made by the first
component) and lets them go at its close. A crawl whose ``Crawler.crawl`` raises before it has an engine (a
project component raising as Scrapy builds it: Scrapy 2.19 then closes nothing, and neither ``spider_closed`` nor
``engine_stopped`` comes) gets no close: its locks would stay held for the rest of its process, and a retry there
(a service that runs crawls, the same crawl after the fix) would be refused as if a crawl were running. Scrapy
gives no hook for that failure. So each lock is registered here with a check of whether its crawl can still use
it (:func:`crawl_alive`), and a later lock of the same file in this process that finds it held asks the holder:
one whose crawl cannot is released (its own way: the audit log ends its chain) and the lock taken. The add-on
also lets such a crawl's locks go as its start fails (``Addon._released_on_failed_start``), so that another
process (a purge, the same crawl started again) can take them while this one lives on; this take-over remains for
a crawl that failed in a way neither check sees. The kernel drops a ``flock`` when its process ends, however it
ends.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["crawl_alive", "file_key", "forget", "hold", "lock_or_take_over"]

Key = tuple[int, int]
#: the locks this process holds for crawls, by file (device, inode): (holder, its release, whether its crawl can
#: still use the file)
_HELD: dict[Key, tuple[object, Callable[[], None], Callable[[], bool]]] = {}


def file_key(fd: int) -> Key:
    stat = os.fstat(fd)
    return stat.st_dev, stat.st_ino


def hold(key: Key, holder: object, release: Callable[[], None], alive: Callable[[], bool]) -> None:
    """Register ``holder``'s lock of ``key``: ``release`` lets it go, ``alive`` says whether its crawl can still
    use the file."""
    _HELD[key] = (holder, release, alive)


def forget(key: Key | None, holder: object) -> None:
    """``holder`` let its lock go (called by its release)."""
    if key is not None and _HELD.get(key, (None,))[0] is holder:
        del _HELD[key]


def lock_or_take_over(fd: int, key: Key) -> None:
    """An exclusive ``flock`` on ``fd`` without waiting; once more after releasing this process's own holder of the
    file if its crawl can no longer use it. Raises ``BlockingIOError`` when it is held by someone who can."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _HELD.get(key)
        if holder is None or _still_used(holder[2]):
            raise
        _HELD.pop(key, None)
        with contextlib.suppress(Exception):  # e.g. an audit log's last lines not written: still closed; if the
            holder[1]()  # lock is somehow still held, the flock below says so
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _still_used(alive: Callable[[], bool]) -> bool:
    try:
        return alive()
    except Exception:  # noqa: BLE001 - a holder that cannot be asked is taken to be using it
        return True


def crawl_alive(crawler: Any) -> Callable[[], bool]:
    """Whether ``crawler`` can still use what it locked: it is gone, or its ``crawl`` raised before it had an
    engine (``crawling`` is then off and no close comes), and it cannot."""
    ref = weakref.ref(crawler)

    def alive() -> bool:
        held = ref()
        if held is None:
            return False
        if held.crawling:
            return True
        try:
            held.engine  # noqa: B018 - Scrapy raises RuntimeError for a crawler that never had one
        except RuntimeError:
            return False
        return True

    return alive
