"""The per-origin signal files as the adapters fetched them, and the RSL licences robots.txt names (what a
site-level fetcher fetches next). Pure: nothing here fetches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..robots.fetch import RobotsFile, RobotsStatus
from .fetch import SignalFile
from .rsl import RslLink, site_rsl_links

__all__ = ["SiteFiles", "licence_links"]


@dataclass(frozen=True)
class SiteFiles:
    """The per-origin files, as fetched (``None``: not fetched; a 404 is a :class:`SignalFile` that is absent)."""

    robots: RobotsFile | None = None
    tdmrep: SignalFile | None = None
    ai_txt: SignalFile | None = None
    licences: Mapping[str, SignalFile] = field(default_factory=dict)  #: RSL licence URL -> its fetch
    #: TDMRep ``tdm-policy`` URL -> its fetch (evidence only: a policy never changes a verdict)
    policies: Mapping[str, SignalFile] = field(default_factory=dict)


def licence_links(files: SiteFiles) -> list[RslLink]:
    """The RSL licences robots.txt names (what a site-level fetcher fetches next)."""
    robots = files.robots
    if robots is None or robots.status is not RobotsStatus.OK:
        return []
    return site_rsl_links(robots.url, robots.rules.global_lines("license"))
