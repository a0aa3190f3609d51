"""Leg 2, the platform's terms: is this host a platform, and does its grant cover this purpose now?

Three checks, in this order in the default list:

- :class:`IpHostCheck` denies ``terms.ip-host``: an IP address (or ``localhost``) no platform lists could be any
  platform's server.
- :class:`OffPlatformCheck` concludes ``terms.off-platform`` (allow) for a URL on no configured platform that names
  no person; a person named off-platform (or a mismatch, an ambiguous reading) goes on to the subject checks.
- :class:`PlatformTermsCheck` denies ``terms.not-authorized``, ``terms.purpose``, ``terms.not-yet-valid`` and
  ``terms.expired`` from the platform's grant, citing it.
"""

from __future__ import annotations

from ..cache import ObjectMemo
from ..decision import Evidence
from ..terms.platforms import Platform
from .base import CheckContext, Outcome

__all__ = ["IpHostCheck", "OffPlatformCheck", "PlatformTermsCheck"]


class IpHostCheck:
    """A URL whose host is an IP address that no platform lists."""

    cacheable = True

    def check(self, ctx: CheckContext) -> Outcome | None:
        if ctx.facts is None or not ctx.facts.ip_host:
            return None
        ctx.cite(Evidence("platform", "platforms", {
            "platform": None, "host": ctx.facts.canonical.host,
            "cause": "an IP address, or a name with no registrable domain, that no platform lists"}))
        return Outcome.deny("terms.ip-host")


class OffPlatformCheck:
    """A URL on no configured platform, naming no person: only robots rules (and site signals) apply to it."""

    cacheable = True

    def check(self, ctx: CheckContext) -> Outcome | None:
        facts = ctx.facts
        if ctx.platform is not None or ctx.subject is not None or facts is None:
            return None
        if facts.mismatch is not None or facts.ambiguous is not None:
            return None  # the subject checks deny it: nothing that names a person some other way is waved through
        ctx.cite(Evidence("platform", "platforms", {"platform": None, "host": facts.canonical.host}))
        return Outcome.allow("terms.off-platform")


class PlatformTermsCheck:
    """The platform's grant to us: present, for this purpose, valid at the decision time."""

    cacheable = True

    def __init__(self) -> None:
        self._grants: ObjectMemo[Platform, Evidence] = ObjectMemo(1024)

    def check(self, ctx: CheckContext) -> Outcome | None:
        platform = ctx.platform
        if platform is None:
            return None
        grant = platform.authorization
        if grant is None:
            ctx.cite(Evidence("platform-authorization", platform.source, {"platform": platform.name,
                                                                          "authorization": None}))
            return Outcome.deny("terms.not-authorized")
        ctx.cite(self._grants.get(platform, _grant_evidence))
        if ctx.purpose not in grant.purposes:
            bases = ctx.base_purposes()  # a custom purpose: the grant must cover every built-in one it counts as
            if not bases or not bases <= grant.purposes:
                return Outcome.deny("terms.purpose")
        if grant.valid_from is not None and ctx.now < grant.valid_from:
            return Outcome.deny("terms.not-yet-valid")
        if grant.valid_until is not None and ctx.now >= grant.valid_until:
            return Outcome.deny("terms.expired")
        return None


def _grant_evidence(platform: Platform) -> Evidence:
    grant = platform.authorization
    assert grant is not None
    return Evidence("platform-authorization", platform.source, {
        "platform": platform.name,
        "reference": grant.reference,
        "purposes": tuple(sorted(grant.purposes)),
        "valid_from": grant.valid_from.isoformat() if grant.valid_from else None,
        "valid_until": grant.valid_until.isoformat() if grant.valid_until else None,
    })
