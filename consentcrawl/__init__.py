"""consentcrawl: consent-aware web scraping for Scrapy.

Robots rules, platform terms and each person's authorization are checked before a request is sent; what fails
is dropped, nothing of it reaches a pipeline, and every decision is written to an audit log.

Plug in with ``ADDONS = {"consentcrawl.Addon": 0}`` or subclass :class:`ConsentSpider`; the reference is in
``docs/``. Everything a user needs is here; the modules behind it are internals. Each name is imported when it is
first used: Scrapy imports this package for every ``scrapy`` command (the ``scrapy.commands`` entry point), and a
command that does not crawl must not load the crawl's machinery.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: each public name, and the module (under this package) it comes from
_PUBLIC = {
    "reasons": "reasons", "Addon": "addon", "as_async_store": "consent.adapt", "HTTPConsentStore": "consent.httpapi",
    "FileStore": "consent.load", "AuthorizationRecord": "consent.records", "RedisStore": "consent.redisstore",
    "SQLiteStore": "consent.sqlite", "AuthorizationStore": "consent.store", "MemoryStore": "consent.store",
    "SyncAuthorizationStore": "consent.store", "Decision": "decision", "Evidence": "decision", "Stage": "decision",
    "Verdict": "decision", "AuditUnavailable": "errors", "ConfigError": "errors", "ConsentError": "errors",
    "StoreUnavailable": "errors", "META_DECISION": "meta_keys", "META_NOFOLLOW": "meta_keys",
    "META_SUBJECT": "meta_keys", "ConsentDenied": "middlewares", "ConsentDropItem": "pipelines",
    "ConsentSpider": "spider",
}
__all__ = [
    "META_DECISION", "META_NOFOLLOW", "META_SUBJECT", "Addon", "AuditUnavailable", "AuthorizationRecord",
    "AuthorizationStore", "ConfigError", "ConsentDenied", "ConsentDropItem", "ConsentError", "ConsentSpider",
    "Decision", "Evidence", "FileStore", "HTTPConsentStore", "MemoryStore", "RedisStore", "SQLiteStore", "Stage",
    "StoreUnavailable", "SyncAuthorizationStore", "Verdict", "__version__", "as_async_store", "reasons",
]

if TYPE_CHECKING:
    from . import reasons
    from .addon import Addon
    from .consent.adapt import as_async_store
    from .consent.httpapi import HTTPConsentStore
    from .consent.load import FileStore
    from .consent.records import AuthorizationRecord
    from .consent.redisstore import RedisStore
    from .consent.sqlite import SQLiteStore
    from .consent.store import AuthorizationStore, MemoryStore, SyncAuthorizationStore
    from .decision import Decision, Evidence, Stage, Verdict
    from .errors import AuditUnavailable, ConfigError, ConsentError, StoreUnavailable
    from .meta_keys import META_DECISION, META_NOFOLLOW, META_SUBJECT
    from .middlewares import ConsentDenied
    from .pipelines import ConsentDropItem
    from .spider import ConsentSpider


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(f"{__name__}.{_PUBLIC[name]}")
    value = module if name == "reasons" else getattr(module, name)
    globals()[name] = value
    return value
