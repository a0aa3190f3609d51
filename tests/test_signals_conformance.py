"""Every row of the operator-signal conformance table (tests/signals_conformance.py), through the pure modules.

The runner plays the adapters of phase 2: it serves each row's files as fetches would classify them, checks
robots.txt first, decides the site-level signals before the "fetch", and reads the response-level ones after it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone

import pytest

from consentcrawl import reasons
from consentcrawl.robots.fetch import RobotsFile
from consentcrawl.robots.fetch import from_response as robots_response
from consentcrawl.signals import PlatformGrant, SignalDecision, combine
from consentcrawl.signals.evaluate import SignalOptions, SiteFiles, response_results, site_results
from consentcrawl.signals.fetch import SignalFile
from consentcrawl.signals.fetch import from_response as file_response
from consentcrawl.signals.purposes import CustomPurpose
from consentcrawl.signals.tdmrep import ResearchException

from .signals_conformance import CASES, SITE, Case

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


class _Served(Mapping[str, SignalFile]):
    """Licence (or tdm-policy) URLs -> their fetch: what the row's site serves, a 404 for anything else on it; a
    URL elsewhere was not fetched (the adapters decide it first; tests/test_signals_check_cli.py shows that)."""

    def __init__(self, case: Case, signal: str = "rsl") -> None:
        self.case = case
        self.signal = signal

    def __getitem__(self, url: str) -> SignalFile:
        if not url.startswith(SITE + "/"):
            raise KeyError(url)
        status, body = self.case.files.get(url[len(SITE):], (404, ""))
        return file_response(self.signal, url, status, body.encode(), NOW)

    def __iter__(self) -> Iterator[str]:
        return iter(SITE + p for p in self.case.files)

    def __len__(self) -> int:
        return len(self.case.files)


def _file(case: Case, signal: str, path: str) -> SignalFile:
    status, body = case.files.get(path, (404, ""))
    return file_response(signal, SITE + path, status, body.encode(), NOW)


def _robots(case: Case) -> RobotsFile:
    status, body = case.files.get("/robots.txt", (404, ""))
    return robots_response(SITE + "/robots.txt", status, body.encode(), NOW)


def run(case: Case) -> tuple[str, str | None, SignalDecision | None, SignalDecision | None]:
    """(verdict, reason, site-level decision, final decision) for one row, as a crawl would decide it."""
    robots = _robots(case)
    match = robots.rules.match(case.path, case.token)
    if not match.allowed:
        return "deny", reasons.ROBOTS_DISALLOWED, None, None
    files = SiteFiles(robots, _file(case, "tdmrep", "/.well-known/tdmrep.json"), _file(case, "ai-txt", "/ai.txt"),
                      _Served(case), _Served(case, "tdm-policy"))
    exception = ResearchException(*case.research_exception) if case.research_exception else None
    if case.platform is not None and case.platform.get("research_exception"):
        exception = ResearchException(*case.platform["research_exception"])  # the platform's before the setting's
    licence = case.licence_held
    if case.platform is not None and case.platform.get("signal_licence"):
        licence = case.platform["signal_licence"]  # the platform's before the setting's
    options = SignalOptions(case.token, case.conservative, case.stores_items, exception, licence)
    platform = None
    if case.platform is not None:
        platform = PlatformGrant("example", frozenset(case.platform.get("purposes", ())),
                                 case.platform.get("reference"), bool(case.platform.get("overrides_signals")))
    custom = [CustomPurpose(name, frozenset(counts)) for name, counts in case.custom.items()]
    site = site_results(case.url, files, options)
    before = combine(case.purpose, site, platform=platform, custom=custom, before_fetch=True)
    if not before.allowed:
        return "deny", before.reason, before, before
    headers = [(k, v) for k, v in case.headers]
    response = response_results(case.url, headers, case.html, files, options, fetched_at=NOW)
    after = combine(case.purpose, [*site, *response], platform=platform, custom=custom)
    return after.verdict.value, after.reason, before, after


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance_row(case: Case) -> None:
    verdict, reason, before, after = run(case)
    assert (verdict, reason) == (case.expect, case.reason), case.source
    assert reason is None or reason in reasons.ALL
    if reason and reason.startswith("response."):
        assert before is not None and before.allowed, "a response-level deny must not be decidable before the fetch"
    if after is None:
        return
    entries = [e.to_dict() for e in after.evidence]
    json.dumps(entries)  # what check --json prints
    for key, value in case.evidence.items():
        assert any(entry.get(key) == value for entry in entries), (key, value, entries)
    kinds = {e["kind"] for e in entries}
    assert ("signal-conflict" in kinds) == case.conflict, entries
    if after.reason and after.reason.startswith(("terms.signal.", "response.signal.")):
        assert any(e["kind"].startswith("signal.") and e.get("verdict") == "deny" for e in entries)
        denying = next(e for e in entries if e["kind"].startswith("signal.") and e.get("verdict") == "deny")
        assert denying["where"] and denying["raw"] is not None and denying["fetched_at"] == NOW.isoformat()


def test_the_table_covers_every_specification() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    per_spec = Counter(c.spec for c in CASES)
    assert per_spec.keys() == {"tdmrep", "aipref", "content-signal", "rsl", "ai-txt", "combine"}
    assert min(per_spec.values()) >= 7, per_spec
    codes = {c.reason for c in CASES if c.reason}
    # every signal deny code that can arise is exercised by at least one row
    signal_codes = {r for r in reasons.ALL if r.startswith(("terms.signal", "response.signal"))}
    assert signal_codes - codes == set(), signal_codes - codes
    assert "terms.default-deny" in codes
