"""Platforms: who they are (registered domains), what they granted us, and which URLs fetch one person.

Pure data and lookups. Loading and validating ``platforms.yaml`` lives in :mod:`consentcrawl.terms.load`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class PlatformAuthorization:
    """Leg 2: the platform's grant to us (an agreement, API terms, a licence)."""

    purposes: frozenset[str]
    reference: str
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    fields: frozenset[str] | None = None  #: None = the agreement does not restrict fields


@dataclass(frozen=True)
class ProfileTemplate:
    """A URL path template such as ``/u/{subject}`` that fetches one person's data.

    The literal parts match case-insensitively and the template matches the path itself or anything below it
    (``/u/1001/followers`` is still about 1001): when in doubt, a URL counts as a profile.
    """

    template: str
    pattern: re.Pattern[str]

    @classmethod
    def compile(cls, template: str, subject_regex: str = "[^/]+") -> ProfileTemplate:
        if template.count("{subject}") != 1:
            raise ValueError(f"profile template {template!r} must contain {{subject}} exactly once")
        if not template.startswith("/"):
            raise ValueError(f"profile template {template!r} must start with '/'")
        before, after = template.split("{subject}")
        body = re.escape(before) + f"(?P<subject>{subject_regex})" + re.escape(after.rstrip("/"))
        return cls(template, re.compile(f"^{body}(?:/.*)?$", re.IGNORECASE | re.DOTALL))

    def subject_of(self, path: str) -> str | None:
        m = self.pattern.match(path)
        return m.group("subject") if m else None


@dataclass(frozen=True)
class Platform:
    name: str
    domains: frozenset[str]  #: registered domains, lower-case, IDNA
    authorization: PlatformAuthorization | None
    profiles: tuple[ProfileTemplate, ...] = ()
    subject_regex: str | None = None
    source: str = ""  #: file and line it was defined at, for evidence

    def subject_of(self, path: str) -> str | None:
        """The subject id a canonical path fetches, or None if it is not a profile URL."""
        for template in self.profiles:
            subject = template.subject_of(path)
            if subject is not None:
                return subject
        return None


@dataclass
class PlatformRegistry:
    """All configured platforms, looked up by registered domain."""

    platforms: dict[str, Platform] = field(default_factory=dict)
    _by_domain: dict[str, Platform] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for platform in self.platforms.values():
            for domain in platform.domains:
                self._by_domain[domain] = platform

    def by_domain(self, registered_domain: str) -> Platform | None:
        return self._by_domain.get(registered_domain)

    def get(self, name: str) -> Platform | None:
        return self.platforms.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.platforms

    def __len__(self) -> int:
        return len(self.platforms)
