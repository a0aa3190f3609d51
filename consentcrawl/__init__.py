"""consentcrawl: consent-aware web scraping for Scrapy.

Robots rules, platform terms and each person's authorization are checked before a request is sent; what fails
is dropped, nothing of it reaches a pipeline, and every decision is written to an audit log.

Plug in with ``ADDONS = {"consentcrawl.Addon": 0}`` or subclass :class:`ConsentSpider`; the reference is in
``docs/``. Everything a user needs is here; the modules behind it are internals.
"""

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

__version__ = "0.1.0"

__all__ = [
    "META_DECISION",
    "META_NOFOLLOW",
    "META_SUBJECT",
    "Addon",
    "AuditUnavailable",
    "AuthorizationRecord",
    "AuthorizationStore",
    "ConfigError",
    "ConsentDenied",
    "ConsentDropItem",
    "ConsentError",
    "ConsentSpider",
    "Decision",
    "Evidence",
    "FileStore",
    "HTTPConsentStore",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "Stage",
    "StoreUnavailable",
    "SyncAuthorizationStore",
    "Verdict",
    "__version__",
    "as_async_store",
    "reasons",
]
