"""Subject keys: the form of a subject id that every store indexes a person by.

The engine looks a person up as ``store.lookup(platform.name, platform.subject_key(subject_as_written))``:
NFKC-normalised, then case-folded unless the platform is ``case_sensitive``
(:meth:`~consentcrawl.terms.platforms.Platform.subject_key`). So ``Alice``, ``alice`` and ``alice`` in
full-width letters are one person on a case-insensitive platform, and a withdrawal written with another case
than the grant still finds the grant. Records keep the subject as written, for evidence and because the key is
not all a server goes by: a grant written ``straße`` is found under the key ``strasse`` but grants nothing there
(:meth:`~consentcrawl.terms.platforms.Platform.subject_conflict`), which only the spelling tells.

Stores apply the key function again to what they are given, at load and at lookup time. A key is its own key
(the function is idempotent), so a store finds the same records whether it is given the key or the id as written.
A store that knows only a platform's name uses the rule it recorded for it, or the default (case-insensitive):
the same functions the platform's own ``subject_key`` uses.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from ..terms.readings import caseless

__all__ = ["CASEFOLD", "EXACT", "KeyFunction", "casefold_key", "exact_key", "key_function", "platform_names",
           "platform_objects", "rule_of"]

KeyFunction = Callable[[str], str]

CASEFOLD = "nfkc-casefold"  #: the default rule: NFKC, then case folding
EXACT = "nfkc"  #: a ``case_sensitive`` platform: NFKC only

#: the key on a case-insensitive platform (the default): what ``Platform.subject_key`` gives there
casefold_key: KeyFunction = caseless


def exact_key(subject: str) -> str:
    """The key on a ``case_sensitive`` platform: NFKC only."""
    return subject if subject.isascii() else unicodedata.normalize("NFKC", subject)


def rule_of(platform: Any) -> str:
    """The key rule a platform configures (stores record it, so that a changed configuration is noticed)."""
    return EXACT if getattr(platform, "case_sensitive", False) else CASEFOLD


def key_function(platform: Any = None, rule: str | None = None) -> KeyFunction:
    """The key function of one platform: its own ``subject_key`` when it has one, else the function of ``rule``
    (if given) or of the rule the platform configures (:data:`CASEFOLD` when there is no platform)."""
    method = getattr(platform, "subject_key", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    chosen = rule if rule is not None else rule_of(platform)
    return exact_key if chosen == EXACT else casefold_key


def platform_objects(platforms: Any) -> dict[str, Any]:
    """Platform objects by name from a ``PlatformRegistry`` or a mapping of name to platform; an iterable of names
    gives none (the store then uses the rule it recorded, or the default)."""
    if platforms is None:
        return {}
    inner = getattr(platforms, "platforms", None)
    if isinstance(inner, Mapping):
        return dict(inner)
    if isinstance(platforms, Mapping):
        return dict(platforms)
    return {}


def platform_names(platforms: Any) -> frozenset[str] | None:
    """The configured platform names (from a registry, a mapping or names), or None when nothing was given."""
    if platforms is None:
        return None
    if isinstance(platforms, Mapping) or hasattr(platforms, "platforms"):
        return frozenset(platform_objects(platforms))
    return frozenset(platforms)
