"""The purposes a crawl can declare.

A purpose is what the collected data will be used for. Every authorization (the platform's and each person's)
is given for named purposes, so a crawl without one cannot be judged and refuses to start.
"""

from __future__ import annotations

#: Purposes understood by the policy core and by the signal mappings in ``reference/signals.md``.
KNOWN_PURPOSES: frozenset[str] = frozenset(
    {
        "research",
        "search-indexing",
        "ai-training",
        "ai-input",
        "commercial-profiling",
        "archiving",
    }
)


def check_purpose(purpose: object) -> str:
    """Return ``purpose`` if it is a known purpose, else raise ``ValueError`` naming the known ones."""
    if not isinstance(purpose, str) or purpose not in KNOWN_PURPOSES:
        known = ", ".join(sorted(KNOWN_PURPOSES))
        raise ValueError(f"unknown purpose {purpose!r} (known purposes: {known})")
    return purpose
