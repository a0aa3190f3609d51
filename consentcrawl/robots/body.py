"""A response body as the page it is: the response phase reads meta robots before HttpCompressionMiddleware has
decompressed anything (it must run before the HTTP cache stores the response), so it decompresses for itself.

Pure: no Scrapy, no I/O. A body that cannot be decoded raises ``ValueError``, and the caller denies: a tag we
could not read is not a tag that is absent.

How much is decompressed is the caller's ``limit``, read as Scrapy reads ``DOWNLOAD_MAXSIZE`` when it decompresses
for the spider (``HttpCompressionMiddleware``, ``SitemapSpider``): at most that many bytes, ``0`` for no limit, a
negative limit for nothing at all. A body Scrapy would decompress is read whole, so a sitemap of 40 MB is followed;
one it would drop for its size is denied, as a page we could not read.
"""

from __future__ import annotations

import codecs
import functools
import importlib
import io
import re
import sys
import zlib
from typing import Any

from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom

from ..cache import ObjectMemo

__all__ = ["GZIP_MAGIC", "SCRAPY_MAXSIZE", "ZSTD_MAGIC", "charset", "content_encoding", "decoded_body", "file_start",
           "is_gzip", "is_zstd", "page_body", "page_encoding", "reading_encodings", "reads_as_html"]

#: Scrapy's default ``DOWNLOAD_MAXSIZE``: a page's limit where no crawl's is known (a body decompressing to more is
#: denied: Scrapy would drop it, a decompression bomb)
SCRAPY_MAXSIZE = 1024 * 1024 * 1024
#: a request body (which the spider wrote) is read for its form fields up to this, decompressed
MAX_DECODED = 32 * 1024 * 1024
#: the first bytes of a gzip stream (RFC 1952), what Scrapy's sitemap spider and ``gzip.decompress`` look for
GZIP_MAGIC = b"\x1f\x8b"
#: the first bytes of a zstd frame (RFC 8878, 0xFD2FB528 little-endian), what ``zstd.decompress`` looks for
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: layers (gzip or zstd) undone by magic alone; a body still compressed after these is not read (and denied)
MAX_GZIP_LAYERS = 4


def content_encoding(headers: Any) -> bytes | None:
    """The codings of every ``Content-Encoding`` header of ``headers`` (Scrapy's ``Headers``), in order, as one
    list; None for none. A server (or a proxy compressing an answer again) may name each coding in a header of its
    own, and Scrapy's HttpCompressionMiddleware undoes them all (``getlist``): the last header alone (``get``)
    would read a body still compressed, and find none of its tags."""
    return b",".join(headers.getlist(b"Content-Encoding")) or None


def decoded_body(body: bytes, content_encoding: bytes | None, limit: int = MAX_DECODED) -> bytes:
    """``body`` with its ``Content-Encoding`` (a comma-separated list, applied in order) undone."""
    if not content_encoding:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(b",") if c.strip()]
    for coding in reversed(codings):
        if coding == b"identity":
            continue
        if coding in (b"gzip", b"x-gzip"):
            body = _gunzip_members(body, limit, coded=True)
        elif coding == b"deflate":
            try:
                body = _zlib(body, zlib.MAX_WBITS, limit)
            except _TooLarge:
                raise  # zlib-format bytes over the limit: retried as raw deflate they would fail with another cause
            except ValueError:  # servers send raw deflate as often as the zlib format the RFC names
                body = _zlib(body, -zlib.MAX_WBITS, limit)
        elif coding == b"br":
            body = _other("brotli", body, limit)
        elif coding == b"zstd":
            body = _other("zstd", body, limit)
        else:
            raise ValueError(f"unknown Content-Encoding {coding.decode('latin-1')!r}")
    return body


def is_gzip(body: bytes) -> bool:
    """Whether ``body`` starts as a gzip stream does."""
    return body[:2] == GZIP_MAGIC


def is_zstd(body: bytes) -> bool:
    """Whether ``body`` starts as a zstd frame does, or a skippable frame (magic ``5? 2A 4D 18``), which
    ``zstd.decompress`` skips to read the frame after it."""
    return body[:4] == ZSTD_MAGIC or (body[1:4] == b"\x2a\x4d\x18" and 0x50 <= body[0] <= 0x5F)


class _TooLarge(ValueError):
    """A body that decompresses to more than the limit (a ``ValueError``: the caller denies as for any body it
    cannot read), with what was decompressed before the limit was passed (at most one byte over it)."""

    def __init__(self, message: str, start: bytes = b"") -> None:
        super().__init__(message)
        self.start = start


def page_body(body: bytes, content_encoding: bytes | None, limit: int = SCRAPY_MAXSIZE) -> bytes:
    """A response body as a spider can read it: its ``Content-Encoding`` undone, then, while it starts with the
    gzip magic bytes, gunzipped, and while it starts with zstd's (``28 B5 2F FD``, or a skippable frame's),
    decompressed as zstd. A ``.gz`` or ``.zst`` page served as ``application/x-gzip`` or ``application/zstd``, or by
    a server that forgot the header, reaches the callback as compressed bytes (``HttpCompressionMiddleware``
    reads the header only), and a spider that decompresses it itself (as Scrapy's sitemap spider gunzips by these
    bytes, or with ``zstd.decompress``) reads a person's page whose refusal the compressed bytes hide. Every gzip
    member and every zstd frame is read (``gzip.decompress``, Scrapy's ``gunzip`` and ``zstd.decompress`` read
    them all), at most ``limit`` bytes in all; bytes found by their magic that are cut short, and any body that
    is corrupt or larger, raise ``ValueError`` (the caller denies: a page we could not read is not a page that
    says nothing). A ``Content-Encoding: gzip`` body is read as Scrapy hands it on (:func:`_gunzip_members`).

    Brotli has no magic bytes: brotli bytes sent without ``Content-Encoding: br`` are read as the bytes they are,
    and a spider that decompresses such a body by its URL or its type reads what was not read (a limit
    ``docs/refusals.md`` states).

    The last bodies decoded are remembered by the identity of the body as sent (an immutable ``bytes``): the
    response phase reads one response's page three times (refusals, meta robots, signals), and a large sitemap
    is decompressed once. A plain body is remembered as itself, so that the memo moves on with every response:
    holding compressed pages only, it kept the last large one decoded alive while plain pages followed, to the
    crawl's end."""
    if not content_encoding and not is_gzip(body) and not is_zstd(body):
        return _pages.get(body, _itself, (None, limit))
    return _pages.get(body, lambda b: _page_body(b, content_encoding, limit), (content_encoding, limit))


def _itself(body: bytes) -> bytes:
    return body


#: the last pages read, by their body's identity (two: a person's page and the actor read beside it)
_pages: ObjectMemo[bytes, bytes] = ObjectMemo(2)


def _page_body(body: bytes, content_encoding: bytes | None, limit: int) -> bytes:
    body = decoded_body(body, content_encoding, limit)
    for _ in range(MAX_GZIP_LAYERS):
        if is_gzip(body):
            body = _gunzip_members(body, limit)
        elif is_zstd(body):
            body = _other("zstd", body, limit)
        else:
            return body
    if is_gzip(body) or is_zstd(body):
        raise ValueError(f"the body is still compressed after {MAX_GZIP_LAYERS} layers")
    return body


def file_start(body: bytes, keep: int) -> bytes:
    """The start of a site-level file (robots.txt, ``tdmrep.json``, ``ai.txt``, an RSL licence) as its reader
    takes it: gzip or zstd bytes sent without a ``Content-Encoding`` (a ``robots.txt.gz`` served as the file, or a
    project with ``COMPRESSION_ENABLED = False``) decompressed by their magic bytes, as :func:`page_body` does;
    read as they are, they are no statement (allow). Only what the reader parses is decompressed: the first
    ``keep`` bytes and one more, which says the file goes on (its reader then parses the part, as it does a plain
    file that long), so a small file that decompresses to gigabytes costs ``keep`` bytes. Anything else is
    returned as it is.

    Raises ``ValueError`` for bytes that cannot be decompressed, and for a file whose first ``keep`` bytes cannot
    be told (a layer cut at the bound, whose inner layer then stops short): the caller denies, as for a file it
    could not read."""
    cut = False
    for _ in range(MAX_GZIP_LAYERS):
        if not is_gzip(body) and not is_zstd(body):
            break
        try:  # a layer whose outer one was cut is read up to the cut (gzip; a cut zstd frame is not read)
            body = _gunzip_members(body, keep, coded=cut) if is_gzip(body) else _other("zstd", body, keep)
        except _TooLarge as exc:
            body, cut = exc.start, True
    else:
        if is_gzip(body) or is_zstd(body):
            raise ValueError(f"the body is still compressed after {MAX_GZIP_LAYERS} layers")
    if cut and len(body) <= keep:
        raise ValueError(f"the compressed body's first {keep} bytes cannot be read apart from the rest")
    return body


def reading_encodings(primary: str, content_type: bytes | None) -> tuple[str, ...]:
    """The encodings a page is read in for its person's say: ``primary`` (how Scrapy reads it), then the
    ``Content-Type`` charset and UTF-8 where they read ASCII otherwise than every one before them.

    A spider may decode the body itself (``response.body.decode()``, UTF-8; or, for gzip bytes it gunzips, in the
    header's charset): a page that is ASCII after a UTF-16 byte order mark reads as nothing in UTF-16, Scrapy's
    reading, and as its text, a refusal included, in UTF-8. Its refusals are looked for in each reading. Pages
    whose encodings all read ASCII as ASCII (UTF-8, Latin-1, windows-1252) are read once."""
    header = http_content_type_encoding(content_type.decode("latin-1")) if content_type else None
    return _reading_encodings(primary, header)


@functools.lru_cache(maxsize=64)
def _reading_encodings(primary: str, header: str | None) -> tuple[str, ...]:
    chosen: list[tuple[str, str, bool]] = []  # (name, codec, reads ASCII as ASCII)
    for name in (primary, header, "utf-8"):
        if not name:
            continue
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            continue
        ascii_alike = _reads_ascii(codec)
        if any(c == codec or (ascii_alike and a) for _, c, a in chosen):
            continue
        chosen.append((name, codec, ascii_alike))
    return tuple(name for name, _, _ in chosen) or ("utf-8",)


#: markup a refusal is read from; an encoding that writes it as ASCII does reads ASCII as ASCII
_PROBE = '<meta name="robots" content="noai"><p class="p-note">#nobot</p>'


def _reads_ascii(codec: str) -> bool:
    try:
        return _PROBE.encode(codec) == _PROBE.encode("ascii")
    except (LookupError, UnicodeError):
        return False


def _room(limit: int, size: int) -> int:
    """The most to decompress next (zlib's ``max_length``: 0 is no bound) after ``size`` bytes, one more than the
    limit allows so that a body over it is seen to be; a negative limit allows nothing."""
    if limit < 0:
        raise _TooLarge(f"the body is compressed and the decompression limit is {limit} bytes")
    return limit + 1 - size if limit else 0


def _over(limit: int, size: int) -> bool:
    return bool(limit) and size > limit


def _gunzip_members(body: bytes, limit: int, coded: bool = False) -> bytes:
    """Every member of a gzip stream, as Scrapy's ``gunzip`` reads them (a page compressed in parts and joined
    reaches the callback whole). A body gunzipped by its magic bytes (``coded`` false) that is cut short or has
    trailing bytes is not read; one whose ``Content-Encoding`` is gzip is read as ``HttpCompressionMiddleware``
    hands it to the spider: up to the cut, and up to the bytes that are not gzip."""
    out: list[bytes] = []
    size = 0
    rest = body
    while rest or not out:
        if not is_gzip(rest):
            if coded and (out or not rest):
                break
            raise ValueError("the gzip body has trailing bytes that are not gzip")
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            part = decompressor.decompress(rest, _room(limit, size))
        except zlib.error as exc:
            raise ValueError(f"cannot decompress the gzip body: {exc}") from None
        size += len(part)
        if _over(limit, size) or decompressor.unconsumed_tail:
            raise _TooLarge(f"the gzip body decompresses to more than {limit} bytes", b"".join(out) + part)
        out.append(part)
        if not decompressor.eof:
            if coded:
                break
            raise ValueError("the gzip body ends before its end-of-stream marker")
        rest = decompressor.unused_data.lstrip(b"\0")  # zero padding between members, as GzipFile skips it
    return b"".join(out)


def _zlib(body: bytes, wbits: int, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(body, _room(limit, 0))
    except zlib.error as exc:
        raise ValueError(f"cannot decompress the body: {exc}") from None
    if _over(limit, len(out)) or decompressor.unconsumed_tail:
        raise _TooLarge(f"the body decompresses to more than {limit} bytes")
    return out


def _other(module: str, body: bytes, limit: int) -> bytes:
    """brotli and zstd, with the libraries Scrapy decodes them with."""
    _room(limit, 0)  # a negative limit reads nothing
    try:
        if module == "brotli":
            import brotli  # type: ignore[import-not-found,import-untyped,unused-ignore]

            out = _unbrotli(brotli.Decompressor(), body, limit)
        else:
            out = _unzstd(body, limit)
    except ImportError:
        raise ValueError(f"the body is {module}-compressed and {module} is not installed") from None
    except ValueError:  # _TooLarge among them
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to decode is a body we cannot read
        raise ValueError(f"cannot decompress the body: {type(exc).__name__}") from None
    if _over(limit, len(out)):
        raise _TooLarge(f"the body decompresses to more than {limit} bytes", out[:limit + 1])
    return out


_CHUNK = 1024 * 1024  #: output produced at a time, so a body over the limit stops there


def _unzstd(body: bytes, limit: int) -> bytes:
    """A zstd stream, a chunk at a time, with the module Scrapy decodes zstd with (``compression.zstd`` from Python
    3.14, else ``backports.zstd``, one of Scrapy's requirements). A stream cut short is not read: Scrapy hands the
    spider what came before the cut, where a refusal may be missing."""
    zstd = importlib.import_module("compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd")
    reader = zstd.ZstdFile(io.BytesIO(body))
    out: list[bytes] = []
    size = 0
    while True:
        try:  # no more than one byte over the limit: a bomb stops there
            chunk = reader.read(min(_CHUNK, limit + 1 - size) if limit else _CHUNK)
        except EOFError:
            raise ValueError("the zstd body ends before its end-of-frame") from None
        if not chunk:
            return b"".join(out)
        size += len(chunk)
        if _over(limit, size):
            raise _TooLarge(f"the body decompresses to more than {limit} bytes", b"".join(out) + chunk)
        out.append(chunk)


def _unbrotli(decompressor: Any, body: bytes, limit: int) -> bytes:
    """A brotli stream, a chunk at a time (a bomb is stopped at the limit, not after it is all in memory)."""
    out = [decompressor.process(body, output_buffer_limit=_CHUNK)]
    size = len(out[0])
    while not decompressor.is_finished() and not _over(limit, size):
        chunk = decompressor.process(b"", output_buffer_limit=_CHUNK)
        if not chunk:
            break
        out.append(chunk)
        size += len(chunk)
    if _over(limit, size):
        raise _TooLarge(f"the body decompresses to more than {limit} bytes")
    if not decompressor.is_finished():
        raise ValueError("the brotli body ends before its end")
    return b"".join(out)


def reads_as_html(content_type: bytes | str | None, body: bytes) -> bool:
    """Whether a page (``body`` decompressed) is read for its ``<meta>`` and ``<link>`` tags (meta robots, a
    refusal in a bio, its ``<link rel="license">``): any body but a JSON document, whatever its type claims.

    What the type claims does not stop a spider: Scrapy sniffs a page sent as ``text/plain``, as
    ``application/octet-stream``, as ``image/*``, with a misspelt type or with none, and hands it to the callback
    as a text response whose ``.css()`` parses it as HTML; a page sent as XML (XHTML is served so) becomes an
    ``XmlResponse`` and one sent as JSON a ``JsonResponse``, and ``.css()`` finds a profile's fields in both. So
    what the page says is read unless it is JSON (which has no tags): sent as JSON or XML and looking like it; a
    page that turns out not to be HTML finds nothing (the readers look for their markup bytes first)."""
    if content_type is None:
        return True
    ct = (content_type.decode("latin-1") if isinstance(content_type, bytes) else content_type).lower()
    return "html" in ct or not ("json" in ct or "xml" in ct) or not _JSON_DOCUMENT.match(body)


#: a body that starts like a JSON object or array (after a UTF-8 byte order mark and white space)
_JSON_DOCUMENT = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*[{\[]")


def page_encoding(content_type: bytes | None, body: bytes) -> str:
    """The encoding of a decompressed page as Scrapy will read it for the callback: a byte order mark first, then
    the ``Content-Type`` charset, then the page's own declaration (``<meta charset>``), else UTF-8.

    A compressed page is read here before Scrapy decompresses it, so it is not a text response yet and its
    encoding is not known; assuming the header's charset would read a UTF-16 page (a byte order mark its only
    sign) as UTF-8 and find none of its tags, while the callback gets it right."""
    bom, _ = read_bom(body)
    if bom:
        return str(bom)
    header = http_content_type_encoding(content_type.decode("latin-1")) if content_type else None
    return header or html_body_declared_encoding(body) or "utf-8"


def charset(content_type: bytes | None) -> str:
    """The charset a Content-Type names, else UTF-8 (meta robots tags are ASCII either way)."""
    for part in (content_type or b"").split(b";")[1:]:
        name, _, value = part.strip().partition(b"=")
        if name.strip().lower() == b"charset" and value.strip(b"\"' "):
            return value.strip(b"\"' ").decode("latin-1")
    return "utf-8"
