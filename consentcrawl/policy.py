"""The policy core, as it was imported before the checks moved to :mod:`consentcrawl.checks` and the engine to
:mod:`consentcrawl.engine`: kept so existing imports work."""

from __future__ import annotations

from .checks.robots import crawl_delay
from .engine import PolicyEngine
from .facts import RequestFacts

__all__ = ["PolicyEngine", "RequestFacts", "crawl_delay"]
