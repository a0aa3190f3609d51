"""Scrapy's filesystem HTTP cache (``scrapy.extensions.httpcache.FilesystemCacheStorage``): the entries of the
selected people removed.

**Layout** (Scrapy 2.19): ``HTTPCACHE_DIR/<spider>/<fp[:2]>/<fp>/`` per request fingerprint ``fp``, holding
``meta`` (``repr()`` of a dict with ``url``, ``method``, ``status``, ``response_url``, ``timestamp``),
``pickled_meta`` (the same, pickled), ``response_headers``, ``response_body``, ``response_data``,
``request_headers`` and ``request_body``; each file gzip-compressed when ``HTTPCACHE_GZIP`` is on. An entry is a
directory with a ``meta`` file. Only ``meta`` is read (with :func:`ast.literal_eval`: a pickle from disk is never
loaded), and the bodies as bytes.

**Whose entry it is.** An entry goes when its request URL or response URL is a selected person's page (read by the
platform's profile templates, every way a server could read it: :meth:`Selection.url`), when its request came
from such a page (``Referer``) or names one in its body or headers, or when its response body links to such a
page (``href``/``src``/``action`` attributes and absolute URLs in the text, resolved against the response URL): a
page that links a person shows them (a listing names them beside the link). A cache is a copy of the site,
so an entry removed for a link is only fetched again, subject to the checks, by the next crawl.

**Atomically**: an entry directory is renamed to a hidden name in its parent (one rename: the cache sees it whole
or not at all), then deleted. **The receipt's hash** is over each removed entry's files, in entry path order and
file name order, as the bytes on disk.
"""

from __future__ import annotations

import ast
import gzip
import os
import re
import secrets
import shutil
from pathlib import Path
from urllib.parse import urljoin

from ..robots.body import page_body
from .common import PurgeFailed, Selection, TargetResult, sync_directory

__all__ = ["is_cache_dir", "purge_httpcache"]

_GZIP = b"\x1f\x8b"
_ATTRIBUTE = re.compile(rb"""(?:href|src|action)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_ABSOLUTE = re.compile(rb"""https?:(?://|\\\\)[^\s"'<>]+""", re.IGNORECASE)
_ENTITY = re.compile(rb"&(amp|#38|#x26);", re.IGNORECASE)


def is_cache_dir(path: Path) -> bool:
    return path.is_dir()


def entries(root: Path) -> list[Path]:
    """Every cache entry under ``root``: a directory holding a ``meta`` file (sorted by path)."""
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".purge-"))
        if "meta" in files or "pickled_meta" in files:
            found.append(Path(directory))
    return sorted(found)


def _read(path: Path, gzipped: bool) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if gzipped else data


def _whose(entry: Path, selection: Selection) -> str | None:
    """The selected person this entry is about or shows, or None. Raises PurgeFailed when it cannot be read."""
    meta_file = entry / "meta"
    try:
        raw = meta_file.read_bytes()
    except OSError as exc:
        raise PurgeFailed(f"its meta file cannot be read ({exc.strerror or exc})") from None
    gzipped = raw[:2] == _GZIP
    try:
        meta = ast.literal_eval((gzip.decompress(raw) if gzipped else raw).decode("utf-8"))
    except (ValueError, SyntaxError, UnicodeDecodeError, OSError, EOFError, MemoryError, RecursionError):
        raise PurgeFailed("its meta file is not a cache entry's (unreadable)") from None
    if not isinstance(meta, dict):
        raise PurgeFailed("its meta file is not a cache entry's (not a dict)")
    base = str(meta.get("response_url") or meta.get("url") or "")
    for url in (meta.get("url"), meta.get("response_url")):
        if isinstance(url, str):
            who = selection.url(url) or selection.sources.get(url)  # their page, or what a removed item names
            if who is not None:
                return who
    try:
        body, headers, request_headers, request_body = (
            _read(entry / name, gzipped) if (entry / name).exists() else b""
            for name in ("response_body", "response_headers", "request_headers", "request_body"))
    except (OSError, EOFError) as exc:
        raise PurgeFailed(f"it cannot be read ({exc})") from None
    # the request: a Referer (the person's page the link was on), a URL in its body
    for link in _header_urls(request_headers) + _links(request_body) + _header_urls(headers):
        who = selection.url(urljoin(base, link))
        if who is not None:
            return who
    # every header's codings, as HttpCompressionMiddleware undoes them, then the gzip bytes of a .gz page, as a
    # spider that gunzips it reads it: a body still compressed would read as a page that names no one
    codings = re.findall(rb"(?im)^content-encoding:\s*(.+?)\s*$", headers)
    try:
        body = page_body(body, b",".join(codings) or None)
    except Exception:  # noqa: BLE001 - a body we cannot decode cannot be shown to be no one's
        raise PurgeFailed("its response body cannot be decoded: not checked") from None
    for link in _links(body):
        try:
            who = selection.url(urljoin(base, link))
        except ValueError:
            continue
        if who is not None:
            return who
    return None


def _header_urls(headers: bytes) -> list[str]:
    """The values of the headers that hold a URL (Referer, Location, Content-Location, Link), and any absolute
    URL in the others."""
    found = [m.group(1) for m in re.finditer(rb"(?im)^(?:referer|location|content-location):\s*(.+?)\s*$", headers)]
    found += [m.group(0) for m in _ABSOLUTE.finditer(headers)]
    return [link.decode("latin-1").strip() for link in found]


def _links(body: bytes) -> list[str]:
    found = [next(g for g in m.groups() if g is not None) for m in _ATTRIBUTE.finditer(body)]
    found += [m.group(0) for m in _ABSOLUTE.finditer(body)]
    return [_ENTITY.sub(b"&", link).decode("utf-8", "replace").strip() for link in found]


def _entry_bytes(entry: Path) -> list[bytes]:
    return [f.read_bytes() for f in sorted(entry.iterdir()) if f.is_file()]


def purge_httpcache(root: Path, selection: Selection, *, dry_run: bool = False) -> TargetResult:
    result = TargetResult(str(root), "httpcache")
    if not root.is_dir():
        raise PurgeFailed("not a directory")
    for entry in entries(root):
        name = str(entry.relative_to(root))
        try:
            who = _whose(entry, selection)
        except PurgeFailed as exc:
            result.failures.append(f"entry {name}: {exc}")
            continue
        if who is None:
            result.kept += 1
            continue
        try:
            data = _entry_bytes(entry)
        except OSError as exc:
            result.failures.append(f"entry {name}: cannot be read ({exc.strerror or exc})")
            continue
        if not dry_run:
            hidden = entry.with_name(f".purge-{entry.name}-{secrets.token_hex(4)}")
            try:
                os.rename(entry, hidden)
            except OSError as exc:
                result.failures.append(f"entry {name}: cannot be removed ({exc.strerror or exc})")
                continue
            sync_directory(entry.parent)
            shutil.rmtree(hidden, ignore_errors=True)
            if hidden.exists():
                result.failures.append(f"entry {name}: moved aside to {hidden.name} but not deleted")
        result.remove(who, name, b"".join(data))
    return result
