"""Room on disk for a job directory's purge, checked before it starts.

The purge reads each queue from a copy in a work directory beside it, writes the requests it keeps into a new
queue, and only then lets the old one go; ``requests.seen`` is rewritten the same way. Run out of space part-way
and some queues are purged and others not, or the copy fails with an error that says nothing of space. So the
room is checked first, conservatively: twice the bytes of every queue (a copy and a new queue, as if all were held
at once) plus the size of ``requests.seen``, against what ``shutil.disk_usage`` says is free to this user on the
file system of ``requests.queue``. Less free: :class:`~.common.PurgeFailed`, nothing touched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .common import PurgeFailed

__all__ = ["check_room", "room_needed"]


def room_needed(queues: Path, seen: Path) -> int:
    """Bytes the purge of the queues under ``queues`` and of ``seen`` may need at once (module doc)."""
    total = 0
    for directory, _, files in os.walk(queues):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue  # gone, or unreadable: the purge itself says so
    try:
        extra = os.lstat(seen).st_size
    except OSError:
        extra = 0
    return 2 * total + extra


def check_room(queues: Path, seen: Path) -> None:
    """Raise :class:`PurgeFailed` when the file system of ``queues`` has less free than the purge may need."""
    need = room_needed(queues, seen)
    try:
        free = shutil.disk_usage(queues).free
    except OSError as exc:
        raise PurgeFailed(f"{queues}: the free space cannot be read ({exc.strerror or exc}); nothing in the job "
                          "directory was changed") from None
    if free < need:
        raise PurgeFailed(f"not enough free space to purge it: it needs up to {need} bytes (twice its queues, and "
                          f"requests.seen) and {free} are free on {queues}; nothing in the job directory was "
                          "changed")
