"""The checks a decision runs, in order: the built-ins, and what a check of your own implements.

``DEFAULT_CHECKS`` is the one place the stage order is written: robots, then what the site publishes (operator
signals), then the platform's terms, then the person. ``CONSENTCRAWL_CHECKS`` takes a list of import paths like
it (``docs/checks.md``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Check, CheckContext, Outcome

__all__ = ["DEFAULT_CHECKS", "Check", "CheckContext", "Outcome", "default_checks", "load_check"]

#: the built-in checks, in the order they run: the default of ``CONSENTCRAWL_CHECKS``
DEFAULT_CHECKS: tuple[str, ...] = (
    "consentcrawl.checks.robots.RobotsCheck",           # site check: robots.*
    "consentcrawl.checks.signals.SiteSignalsCheck",     # site check: terms.signal.*, terms.signal-unavailable.*
    "consentcrawl.checks.terms.IpHostCheck",            # terms.ip-host
    "consentcrawl.checks.terms.OffPlatformCheck",       # terms.off-platform (allow, concludes)
    "consentcrawl.checks.terms.PlatformTermsCheck",     # terms.not-authorized, .purpose, .not-yet-valid, .expired
    "consentcrawl.checks.subject.MismatchCheck",        # subject.mismatch
    "consentcrawl.checks.subject.AmbiguousUrlCheck",    # subject.ambiguous-url
    "consentcrawl.checks.subject.NotAProfileCheck",     # subject.not-a-profile (allow, concludes)
    "consentcrawl.checks.subject.SubjectRecordsCheck",  # subject.authorized or subject.* (concludes)
)


def load_check(path: Any) -> Any:
    """The class (or object) an import path ``package.module.Name`` names; anything else is returned as it is.

    Raises ImportError or AttributeError (as ``ValueError`` for a path with no dot)."""
    if not isinstance(path, str):
        return path
    module, dot, name = path.rpartition(".")
    if not dot or not module:
        raise ValueError(f"{path!r} is not an import path (package.module.Name)")
    return getattr(importlib.import_module(module), name)


def default_checks() -> list[Any]:
    """The built-in checks, built plainly, in their order."""
    return [load_check(path)() for path in DEFAULT_CHECKS]
