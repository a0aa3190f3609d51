"""Whether a response holds all of its document: a part (a ``206``, a body Scrapy cut short or cannot tell
whole) is never read as the whole, since the rest may hold a refusal, a meta tag or the robots.txt rule that
applies. Shared by a crawl (Scrapy's flags) and the CLI (httpx, which flags nothing: :func:`unknown_length`).

Pure: no Scrapy, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["CUT_SHORT", "is_partial", "partial_cause", "partial_page_error", "partial_what", "unknown_length",
           "unknown_length_of"]

#: the flags Scrapy puts on a response whose body it cut short, or cannot tell whole: ``dataloss`` (with
#: ``DOWNLOAD_FAIL_ON_DATALOSS = False``, or its meta key), ``download_stopped`` (a ``bytes_received`` or
#: ``headers_received`` handler, the spider's own, raised ``StopDownload``: the body is what came before it),
#: ``partial`` (a body sent with no length nor chunks ends where the connection does, RFC 9112 6.3: Twisted's
#: ``PotentialDataLoss`` gives a connection dropped mid-body the same flag as one closed at its end)
CUT_SHORT = frozenset({"dataloss", "download_stopped", "partial"})


def is_partial(status: int, flags: Iterable[str], body_size: int) -> bool:
    """Whether a response with a body of ``body_size`` bytes holds only part of its document: a ``206`` (a range
    request; a project's ``DEFAULT_REQUEST_HEADERS`` may put ``Range`` on every request, consentcrawl's own
    included), or a body Scrapy flags as cut short (:data:`CUT_SHORT`). What the missing part says (a refusal, a
    robots.txt rule) is not known, so the part is never read as the whole. A body whose end is not known
    (``partial``) is a part too, but for an empty one of an answer that is not a 2xx (a redirect, an error with no
    page, as HTTP/1.0 servers send them): nothing of it is read, and a redirect's target is decided as any URL."""
    flags = frozenset(flags)
    if status == 206 or not (CUT_SHORT - {"partial"}).isdisjoint(flags):
        return True
    return "partial" in flags and (body_size > 0 or 200 <= status < 300)


def partial_cause(status: int, flags: Iterable[str]) -> str | None:
    """Why a side request's file (robots.txt, a signal file) holds only part of what was sent (:func:`is_partial`),
    as its cause; None when it is whole. A body whose end is not known counts only where it is read (2xx): a
    redirect's or a 404's body says nothing, and a server that sends them without a length loses no rule."""
    flags = frozenset(flags)
    if status == 206:
        return "only part of the file was sent (206)"
    if "partial" in flags and 200 <= status < 300:
        return "the body's end is not known (sent with no length, it ends where the connection did)"
    if not (CUT_SHORT - {"partial"}).isdisjoint(flags):
        return "the body was cut short (data loss)"
    return None


def partial_what(status: int, flags: Iterable[str]) -> str:
    """What made a response a part (:func:`is_partial`), for the error that denies it."""
    flags = frozenset(flags)
    return ("HTTP 206" if status == 206 else "data loss" if "dataloss" in flags
            else "download stopped" if "download_stopped" in flags
            else "sent with no length (no Content-Length nor chunks), ended by the connection")


def partial_page_error(status: int, flags: Iterable[str], body_size: int) -> ValueError | None:
    """The error an HTML page of which only a part came back (:func:`is_partial`) is denied with, by a crawl's
    response phase and by ``consentcrawl check --fetch``: what its meta tags say in the rest is not known."""
    if not is_partial(status, flags, body_size):
        return None
    return ValueError(f"only part of the page was received ({partial_what(status, flags)}): what its meta tags say "
                      "is not known")


def unknown_length(http_version: str, status: int, method: str, content_length: str | None,
                   transfer_encoding: str | None) -> bool:
    """Whether an HTTP/1 response's body ends where the connection does (RFC 9112 6.3, item 8): no
    ``Content-Length``, no chunks, a status and method that have a body. Then no client can tell a body cut by a
    dropped connection from a whole one: Scrapy flags it ``partial``, httpx says nothing."""
    if not http_version.upper().startswith("HTTP/1") or method.upper() == "HEAD":
        return False
    if status < 200 or status in (204, 304) or content_length is not None:
        return False
    return transfer_encoding is None or not transfer_encoding.lower().rstrip().endswith("chunked")


def unknown_length_of(method: str, response: Any) -> bool:
    """:func:`unknown_length` of a Scrapy ``response`` to a ``method`` request, read from its ``protocol`` and its
    framing headers, as a handler that keeps them hands it on (aiohttp's, httpx's: not Twisted's, which keeps
    neither and flags ``partial`` itself). A response that names no protocol (a browser's) is not judged."""
    headers = response.headers

    def text(name: bytes) -> str | None:
        value = headers.get(name)
        return None if value is None else bytes(value).decode("latin-1")

    return unknown_length(str(response.protocol or ""), response.status, method, text(b"Content-Length"),
                          text(b"Transfer-Encoding"))
