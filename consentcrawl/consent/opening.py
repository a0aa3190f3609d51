"""Opening the authorization store ``CONSENTCRAWL_AUTHORIZATIONS`` names: by URL scheme for the built-in stores,
by import path for a store of the user's.

Kept apart from the settings reader so that the CLI's store commands and the purge open a store exactly the way a
crawl does, without reading the rest of the configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..settings import as_settings, read
from .store import AuthorizationStore, SyncAuthorizationStore

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from ..terms.platforms import PlatformRegistry


#: an import path (``mypackage.stores.ConsentAPIStore``): a store class of the user's
_IMPORT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_FILE_SUFFIXES = (".yaml", ".yml", ".csv", ".jsonl")


#: the schemes of the built-in stores: one written without ``//`` is a misspelt URL, not a file's name
_STORE_SCHEMES = frozenset({"sqlite", "http", "https", "redis", "rediss"})


def open_store(source: str, platforms: PlatformRegistry, crawler: Crawler | None = None,
               settings: Any = None) -> AuthorizationStore | SyncAuthorizationStore:
    """Open the authorization store named by ``CONSENTCRAWL_AUTHORIZATIONS``: a YAML, CSV or JSONL file, an
    ``sqlite:///`` URL, a consent API's ``http(s)://`` base URL, a ``redis://`` URL (their settings read from
    ``settings``), or the import path of a store class (built with ``from_crawler(crawler)`` when it has
    one and a crawler exists, else called with no arguments; its ``lookup`` may be ``async def`` or plain ``def``:
    see ``docs/stores.md``, "Write your own store")."""
    if (_IMPORT_PATH.fullmatch(source) and not source.lower().endswith(_FILE_SUFFIXES)
            and not Path(source).exists()):
        return _store_by_import_path(source, crawler)
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return _closed_with(SQLiteStore(source, platforms.platforms), crawler)
    if scheme in ("http", "https"):
        from .httpapi import open_http_store

        return open_http_store(source, platforms, as_settings(settings or {}), crawler)
    if scheme in ("redis", "rediss"):
        try:
            import redis  # noqa: F401
        except ImportError:
            raise ConfigError("redis:// stores need the redis package: pip install 'consentcrawl[redis]'",
                              source="CONSENTCRAWL_AUTHORIZATIONS") from None
        from .redisstore import open_redis_store

        return open_redis_store(source, platforms, as_settings(settings or {}), crawler)
    head, colon, _ = source.partition(":")
    if not scheme and colon and head.lower() in _STORE_SCHEMES and not Path(source).exists():
        raise ConfigError(f"{source!r} is not a store URL: write it with '://' (sqlite:///PATH, http(s)://BASE, "
                          "redis://HOST:PORT/DB)", source="CONSENTCRAWL_AUTHORIZATIONS")  # sqlite:/x.db, sqlite:x.db
    if scheme and not Path(source).exists():  # ftp://..., a misspelt sqlite:// (no file is named like that)
        raise ConfigError(f"{source!r}: no store for the scheme {scheme + '://'!r} (use a .yaml, .csv or .jsonl "
                          "file, sqlite:///PATH, http(s)://BASE, redis://HOST:PORT/DB or a store's import path)",
                          source="CONSENTCRAWL_AUTHORIZATIONS")
    from .load import load_authorizations

    threshold = read(as_settings(settings or {}), "CONSENTCRAWL_AUTHORIZATIONS_CACHE_THRESHOLD")
    return _closed_with(load_authorizations(source, platforms, threshold=threshold), crawler)


def _closed_with(store: Any, crawler: Crawler | None) -> Any:
    """Close ``store`` (its SQLite connections: the store's file, a large file's cache) when the crawler's engine
    stops, after everything that may ask it (the purge on close runs at ``spider_closed``), rather than when the
    garbage collector gets to it: until then the files stay open."""
    if crawler is not None:
        from scrapy import signals

        crawler.signals.connect(store.close, signal=signals.engine_stopped, weak=False)
    return store


def _store_by_import_path(path: str, crawler: Crawler | None) -> AuthorizationStore | SyncAuthorizationStore:
    from scrapy.utils.misc import load_object

    try:
        cls = load_object(path)
    except (ImportError, NameError, ValueError, AttributeError) as exc:
        raise ConfigError(f"cannot import the store {path!r}: {exc}", source="CONSENTCRAWL_AUTHORIZATIONS") from None
    try:
        store = cls.from_crawler(crawler) if crawler is not None and hasattr(cls, "from_crawler") else cls()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a store that cannot be built stops the crawl, with its cause
        raise ConfigError(f"cannot build the store {path!r}: {type(exc).__name__}: {exc}",
                          source="CONSENTCRAWL_AUTHORIZATIONS") from None
    if not callable(getattr(store, "lookup", None)):
        raise ConfigError(f"{path!r} is not an authorization store (no lookup method)",
                          source="CONSENTCRAWL_AUTHORIZATIONS")
    return store  # type: ignore[no-any-return]
