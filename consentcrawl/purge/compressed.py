"""Feeds compressed by a ``FEEDS`` ``postprocessing`` plugin: Scrapy's ``GzipPlugin``, ``Bz2Plugin`` and
``LZMAPlugin`` (its default xz format).

Told by their magic bytes, not their names (``items.jsonl.gz`` and a gzip ``items.jsonl`` alike), decompressed
whole (a feed is purged in memory either way), purged as the plain feed they hold, and written back compressed
the way they were: gzip with the original header as it was (its time, file name, flags) and the level its header
records, bzip2 at its header's block size, xz with its header's integrity check. Read as they are, their bytes are
no records: the person's items stayed, and the purge said so on every run.

A file that starts like one of these but does not decompress whole (cut short, corrupt) is not checked and fails
the purge: its records cannot be told apart. xz's legacy ``.lzma`` and raw formats have no magic bytes; such a
feed is read as plain, and fails the same way.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from .common import PurgeFailed

__all__ = ["SUFFIXES", "Compression", "opened"]

#: the name suffixes a compressed feed is given, after its format's (``items.jsonl.gz``)
SUFFIXES = frozenset({".gz", ".gzip", ".bz2", ".xz"})

_GZIP = b"\x1f\x8b\x08"  #: gzip, deflate (the only method there is)
_BZIP2_BLOCK = b"1AY&SY"  #: the first block's magic, after ``BZh`` and the block size
_XZ = b"\xfd7zXZ\x00"


@dataclass(frozen=True)
class Compression:
    """How a feed was compressed, enough to compress what it keeps the same way."""

    name: str  #: ``gzip``, ``bz2`` or ``xz``
    header: bytes = b""  #: gzip: the first member's header, kept as it was
    level: int = 9  #: gzip: from the header's XFL; bzip2: its block size
    check: int = lzma.CHECK_CRC64  #: xz: the stream's integrity check

    def compress(self, data: bytes) -> bytes:
        if self.name == "gzip":
            deflate = zlib.compressobj(self.level, zlib.DEFLATED, -zlib.MAX_WBITS)
            body = deflate.compress(data) + deflate.flush()
            return self.header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
        if self.name == "bz2":
            return bz2.compress(data, self.level)
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=self.check)


def opened(data: bytes) -> tuple[bytes, Compression | None]:
    """``data`` decompressed, and how it was compressed (None: it was not, and is returned as it is). Raises
    :class:`PurgeFailed` for a file that starts compressed and does not decompress whole."""
    if data.startswith(_GZIP):
        compression = Compression("gzip", _gzip_header(data), {2: 9, 4: 1}.get(data[8], 6))
        return _decompressed("gzip", data, _gunzip), compression
    if data[:3] == b"BZh" and data[3:4].isdigit() and data[3:4] != b"0" and data[4:10] == _BZIP2_BLOCK:
        return _decompressed("bzip2", data, bz2.decompress), Compression("bz2", level=int(data[3:4]))
    if data.startswith(_XZ):
        return _decompressed("xz", data, lzma.decompress), Compression("xz", check=data[7] & 0x0F)
    return data, None


def _gunzip(data: bytes) -> bytes:
    out = zlib.decompressobj(16 + zlib.MAX_WBITS)
    chunks = [out.decompress(data)]
    while out.eof and out.unused_data:  # members written one after another (an appended feed): each is read
        rest = out.unused_data
        out = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunks.append(out.decompress(rest))
    if not out.eof:
        raise ValueError("the last member ends short")
    return b"".join(chunks)


def _decompressed(name: str, data: bytes, decompress: Callable[[bytes], bytes]) -> bytes:
    try:
        return decompress(data)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise PurgeFailed(f"{name} that does not decompress whole ({exc}): not checked") from None


def _gzip_header(data: bytes) -> bytes:
    """The first member's header (RFC 1952 §2.3): ten bytes, then the extra field, the file name, the comment and
    the header's CRC its flags announce."""
    flags, end = data[3], 10
    try:
        if flags & 4:  # FEXTRA
            end += 2 + int.from_bytes(data[10:12], "little")
        for flag in (8, 16):  # FNAME, FCOMMENT: NUL-terminated
            if flags & flag:
                end = data.index(b"\x00", end) + 1
    except ValueError:
        raise PurgeFailed("gzip whose header ends short: not checked") from None
    if flags & 2:  # FHCRC
        end += 2
    if end > len(data):
        raise PurgeFailed("gzip whose header ends short: not checked")
    return data[:end]
