"""consentcrawl: consent-aware web scraping for Scrapy.

Robots rules, platform terms and each person's authorization are checked before a request is sent; what fails
is dropped, nothing of it reaches a pipeline, and every decision is written to an audit log.
"""

from .addon import Addon
from .config import ConsentConfig
from .consent.records import AuthorizationRecord
from .consent.store import AuthorizationStore, MemoryStore
from .decision import Decision, Evidence, Stage, Verdict
from .errors import ConfigError, ConsentError, StoreUnavailable
from .middlewares import (
    ConsentDenied,
    ConsentDownloaderMiddleware,
    ConsentResponseMiddleware,
    ConsentScheduleGuard,
    ConsentSpiderMiddleware,
)
from .pipelines import ConsentDropItem, ConsentGuardPipeline
from .policy import PolicyEngine, RequestFacts
from .purposes import KNOWN_PURPOSES
from .spider import ConsentSpider

__version__ = "0.1.0"

__all__ = [
    "KNOWN_PURPOSES",
    "Addon",
    "AuthorizationRecord",
    "AuthorizationStore",
    "ConfigError",
    "ConsentConfig",
    "ConsentDenied",
    "ConsentDownloaderMiddleware",
    "ConsentDropItem",
    "ConsentError",
    "ConsentGuardPipeline",
    "ConsentResponseMiddleware",
    "ConsentScheduleGuard",
    "ConsentSpider",
    "ConsentSpiderMiddleware",
    "Decision",
    "Evidence",
    "MemoryStore",
    "PolicyEngine",
    "RequestFacts",
    "Stage",
    "StoreUnavailable",
    "Verdict",
]
