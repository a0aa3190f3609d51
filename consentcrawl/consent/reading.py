"""Reading an authorization file as a stream: its bytes are hashed and counted as the parsers read them.

A file of millions of records must not be held in memory, nor read twice to learn whether it changed: the parsers
of :mod:`consentcrawl.consent.formats` read through a :class:`HashingReader`, which hashes the bytes they read (so
the digest is exactly of what was parsed, whatever happens to the file meanwhile) and counts them (for a progress
bar). :func:`file_digest` hashes a file without parsing it, to tell whether a changed file holds new bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["CHUNK", "DIGEST", "HashingReader", "Look", "Signature", "file_digest", "look_at", "open_hashed",
           "settles_at", "signature"]

CHUNK = 1 << 20  #: bytes read at a time
HEAD = 1 << 16  #: bytes of a file's start that :func:`look_at` keeps


#: the file digest: SHA-256, which CPUs with SHA extensions hash about twice as fast as BLAKE2b (a changed file
#: of 1.5 GB is hashed on every change, while lookups wait)
DIGEST = "sha256"


def _hasher() -> Any:
    return hashlib.new(DIGEST)


class HashingReader(io.RawIOBase):
    """A raw binary stream over a file that hashes and counts every byte read through it."""

    def __init__(self, f: Any) -> None:
        super().__init__()
        self._f = f
        self._hash = _hasher()
        self.position = 0  #: bytes read so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self._f.readinto(buffer)
        if n:
            view = memoryview(buffer)[:n]
            self._hash.update(view)
            self.position += n
        return n

    def drain(self) -> None:
        """Read (and hash) the rest of the file: the digest then covers it all, even when parsing stopped early."""
        buffer = bytearray(CHUNK)
        while self.readinto(buffer):
            pass

    def digest(self) -> bytes:
        return self._hash.digest()

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            super().close()


def open_hashed(path: str) -> tuple[HashingReader, io.BufferedReader]:
    """The file's raw hashing reader and a buffered reader over it (what the parsers read)."""
    raw = HashingReader(open(path, "rb", buffering=0))
    return raw, io.BufferedReader(raw, CHUNK)


def file_digest(path: str | os.PathLike[str]) -> bytes:
    """The digest :class:`HashingReader` gives for the whole file."""
    hasher = _hasher()
    with open(path, "rb", buffering=0) as f:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while n := f.readinto(buffer):
            hasher.update(view[:n])
    return hasher.digest()


@dataclass(frozen=True)
class Look:
    """A file as :func:`look_at` read it: the digest of all its bytes, and of its first ``prefix`` bytes."""

    digest: bytes
    length: int  #: bytes hashed
    prefix_digest: bytes | None  #: None when the file is shorter than the prefix
    prefix_lines: int  #: newlines in the prefix
    prefix_ends_line: bool  #: the prefix ends with a newline
    tail: bytes | None  #: the bytes after the prefix, when there are at most ``keep`` of them
    head: bytes = b""  #: the file's first bytes (up to :data:`HEAD`), as they were hashed: a CSV file's header


def look_at(path: str | os.PathLike[str], prefix: int, keep: int) -> Look:
    """Hash the file as :func:`file_digest` does, in the same pass hashing its first ``prefix`` bytes and
    counting their lines, and keep the bytes after them when there are at most ``keep``: whether the file grew by
    an append (its old bytes unchanged), and exactly the bytes appended, as they were hashed."""
    hasher = _hasher()
    prefix_digest: bytes | None = None
    lines, last, length = 0, b"", 0
    tail: list[bytes] | None = []
    start = b""
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            if not length:
                start = chunk[:HEAD]
            if prefix_digest is None:
                head = chunk[:prefix - length]
                lines += head.count(b"\n")
                last = head[-1:] or last
                hasher.update(head)
                length += len(head)
                if length < prefix:
                    continue
                prefix_digest = hasher.copy().digest()
                chunk = chunk[len(head):]
            hasher.update(chunk)
            length += len(chunk)
            if tail is not None:
                tail.append(chunk)
                if length - prefix > keep:
                    tail = None
    if prefix_digest is None or (tail is not None and length - prefix > keep):
        tail = None
    return Look(hasher.digest(), length, prefix_digest, lines, last == b"\n" or prefix == 0,
                None if tail is None else b"".join(tail), start)


# -- whether a file changed ---------------------------------------------------------------------------------------

Signature = tuple[int, int, int, int, int]

#: a file's times have this granularity at most when they are not whole seconds (Linux takes them from a clock
#: that ticks every 1-10 ms, APFS and NTFS are finer), with room for a file server's clock running behind ours
FINE_TICK_NS = 500_000_000
#: and this when they are whole seconds (FAT keeps the modification time to 2 s, HFS+ and ext3 to 1 s)
COARSE_TICK_NS = 2_000_000_000


def signature(st: os.stat_result) -> Signature:
    """What changes when a file is written in place or another file is renamed over it, unless the write comes
    within the same tick of the file's clock as the one before (see :func:`settles_at`)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def settles_at(st: os.stat_result, started_ns: int) -> int | None:
    """Until when (wall-clock ns) the file may still change without its :func:`signature` changing, as far as a
    read of its bytes started at ``started_ns`` can tell; None when that read covers every such change.

    A write sets the file's times to the current tick of the file system's clock, so a write in the same tick as
    the last one leaves size and times alone when the size does not change. Once the clock has moved a tick past
    the file's times, any later write changes them: a digest of the bytes read from then on is good until the
    signature changes. A file whose times are whole seconds is taken to keep them to 2 s (FAT); any other to well
    under :data:`FINE_TICK_NS`."""
    tick = COARSE_TICK_NS if st.st_mtime_ns % 1_000_000_000 == 0 else FINE_TICK_NS
    until = max(st.st_mtime_ns, st.st_ctime_ns) + tick
    return None if started_ns >= until else until
