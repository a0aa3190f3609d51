"""Full decisions asked again and again never come out differently with the caches on (consentcrawl/cache.py: the
consent memos, the site signals' memo, the robots.txt check's per-file memo): a cached engine decides exactly what
an engine with the cache off decides, over random sequences of full decisions about URLs in odd spellings, at times
on either side of every threshold, with records granted and withdrawn, robots.txt refetched (with the same text or
another), the site's signal files refetched and people refusing on their page.

The full decisions are asked about the same few URLs again and again, so every memo is full of entries to be
(wrongly) reused; explicit examples meet each part of the validity rule at least once, whatever Hypothesis draws.
``test_cache.py`` is the same property with the link check, the item guard and the in-place stores in the mix."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.refusals.book import Refusal
from consentcrawl.signals.evaluate import SiteFiles
from consentcrawl.signals.fetch import from_response as signal_response
from consentcrawl.terms.platforms import PlatformRegistry
from tests.deciding import Engine
from tests.test_cache import PEOPLE, SETTINGS, STORES, TIMES, _checks, _fields, _robots, records
from tests.test_policy import NOW, RECORDS, make_platform, t

SITE = "http://microblog.example"
URLS = [f"{SITE}/u/1001", "HTTP://MicroBlog.EXAMPLE/u/1001", f"{SITE}/u/1001/", f"{SITE}/u/%31001",
        "http://microblog.example:80/u/1001", f"{SITE}/u/1001?", f"{SITE}/u/1001#top", f"{SITE}/U/1001",
        f"{SITE}//u/1001", f"{SITE}/u/./1001", f"{SITE}/u/1001?ref=x", f"{SITE}/u/1001/..%2F1002",
        f"{SITE}/u/1002", f"{SITE}/u/1003/", f"{SITE}/u/1007", f"{SITE}/u/1008", "http://m.microblog.example/profile/1001",
        f"{SITE}/people?page=2", f"{SITE}/search?q=x", f"{SITE}/private/", f"{SITE}/private", "http://other.example/u/1001",
        "http://127.0.0.1/u/1001"]
#: tdmrep.json bodies (None: a 503, the file unavailable; 404: the site has none)
TDMREP: list[Any] = [404, b'[{"location": "/", "tdm-reservation": 1}]',
                     b'[{"location": "/u/1001", "tdm-reservation": 1}]',
                     b'[{"location": "/people", "tdm-reservation": 0}]', None]

times = st.sampled_from(TIMES)
#: a person asked about again and again withdraws (or is granted again) while their decision is remembered
withdrawals = st.builds(
    AuthorizationRecord, platform=st.just("microblog"), subject=st.sampled_from(["1001", "1002"]),
    purposes=st.sampled_from([frozenset({"research"}), frozenset({"research"}), frozenset({"ai-training"})]),
    granted_at=st.just(t("2026-02-02")),
    revoked_at=st.none() | st.sampled_from([t("2026-02-15"), t("2026-05-01")]), evidence=st.just("e-mail"),
    source=st.just("withdrawn"))
purposes = st.sampled_from(["research", "ai-training"])
#: a few URLs asked about again and again, so that a remembered decision is there to be reused
REPEATED = [URLS[0], URLS[2], f"{SITE}/u/1002", f"{SITE}/people?page=2"]
decide = st.tuples(st.just("decide"), st.sampled_from(URLS), times, st.sampled_from([None, "microblog:1001", "1003"]),
                   purposes)
again = st.tuples(st.just("decide"), st.sampled_from(REPEATED),
                  times | st.sampled_from([t("2026-05-02"), t("2026-05-03")]),  # after the withdrawals below
                  st.sampled_from([None, None, None, "1003"]), st.sampled_from(["research", "research", "ai-training"]))
actions = st.one_of(
    decide, *[again] * 8,  # (one_of picks each branch alike: mostly decisions, changes now and then)
    st.tuples(st.just("link"), st.sampled_from(URLS), times, purposes),
    st.tuples(st.just("add"), records),
    st.tuples(st.just("add"), withdrawals), st.tuples(st.just("add"), withdrawals),
    st.tuples(st.just("robots"), st.integers(0, 6), times),
    st.tuples(st.just("signals"), st.integers(0, len(TDMREP) - 1), times),
    st.tuples(st.just("refuse"), st.sampled_from(PEOPLE), purposes),
)


def _robots_file(index: int, now: datetime) -> Any:
    """The robots.txt bodies of test_cache, and one whose signal lines reserve AI training for the whole site."""
    if index == 6:
        from consentcrawl.robots.fetch import from_response
        return from_response(f"{SITE}/robots.txt", 200, b"User-agent: *\nContent-Usage: train-ai=n\nAllow: /\n", now)
    return _robots(index, now)


def _signals(index: int, robots: Any, now: datetime) -> SiteFiles:
    body, url = TDMREP[index], f"{SITE}/.well-known/tdmrep.json"
    if body is None:
        return SiteFiles(robots, signal_response("tdmrep", url, 503, b"", now))
    if body == 404:
        return SiteFiles(robots, signal_response("tdmrep", url, 404, b"", now))
    return SiteFiles(robots, signal_response("tdmrep", url, 200, body, now))


_WITHDRAWN = AuthorizationRecord("microblog", "1001", frozenset({"research"}), granted_at=t("2026-02-02"),
                                 revoked_at=t("2026-05-01"), evidence="e-mail", source="withdrawn")
_AGAIN = ("decide", URLS[0], t("2026-05-02"), None, "research")


@SETTINGS
@given(st.sampled_from(sorted(STORES)), st.sampled_from(["default", "robots-after-terms"]),
       st.lists(actions, min_size=20, max_size=80))
# each part of the validity rule, at least once whatever Hypothesis draws: a withdrawal (the store's version), an
# expiry crossed (the time span), robots.txt and the signal files fetched again with another text, meta naming
# another person
@example("memory", "default", [_AGAIN, ("add", _WITHDRAWN), _AGAIN])
@example("in-place", "robots-after-terms", [_AGAIN, ("add", _WITHDRAWN), _AGAIN])
@example("memory", "default", [("decide", f"{SITE}/u/1002", t("2026-05-31"), None, "research"),
                               ("decide", f"{SITE}/u/1002", t("2026-06-01"), None, "research")])
@example("memory", "robots-after-terms", [_AGAIN, ("robots", 1, NOW), _AGAIN])
@example("memory", "default", [("decide", URLS[0], NOW, None, "ai-training"), ("signals", 2, NOW),
                               ("decide", URLS[0], NOW, None, "ai-training")])
@example("memory", "default", [_AGAIN, ("decide", URLS[0], t("2026-05-02"), "1003", "research")])
# a trailing slash: the same canonical URL, another path for robots.txt ("Disallow: /private/")
@example("memory", "default", [("decide", f"{SITE}/private", NOW, None, "research"),
                               ("decide", f"{SITE}/private/", NOW, None, "research")])
def test_remembered_full_decisions_decide_what_an_uncached_engine_decides(kind: str, order: str,
                                                                          steps: list[tuple[Any, ...]]) -> None:
    registry = PlatformRegistry({"microblog": make_platform(valid_until=t("2026-12-01"),
                                                            purposes={"research", "ai-training"})})
    store: Any = STORES[kind](RECORDS)
    cached = Engine(registry, store, "consentcrawl", max_crawl_delay=30.0, checks=_checks(order))
    uncached = Engine(registry, store, "consentcrawl", max_crawl_delay=30.0, checks=_checks(order), cache=False)
    robots = _robots_file(0, NOW)
    signals = _signals(0, robots, NOW)
    for step in steps:
        action = step[0]
        if action == "add":  # a grant, or a withdrawal (a record with revoked_at)
            store.add(step[1])
        elif action == "robots":  # a refetch: a new file object, even with the same text; the signal files keep
            robots = _robots_file(step[1], step[2])  # the robots.txt they were fetched with, as a crawl's may
        elif action == "signals":
            signals = _signals(step[1], robots, step[2])
        elif action == "refuse":
            for engine in (cached, uncached):
                engine.engine.refusals.add(Refusal("microblog", step[1], f"{SITE}/u/{step[1]}", "hashtag.nobot",
                                                   "h-card p-note", "#nobot", frozenset({step[2]}), NOW, "e" * 32))
        elif action == "link":  # fills the consent memo the way a crawl's link check does
            _, url, now, purpose = step
            assert _fields(cached.decide_link(url, purpose, now)[0]) == \
                _fields(uncached.decide_link(url, purpose, now)[0])
        else:
            _, url, now, subject, purpose = step
            mine = cached.decide(cached.facts(url, purpose, now, subject), robots, signals)
            theirs = uncached.decide(uncached.facts(url, purpose, now, subject), robots, signals)
            assert _fields(mine) == _fields(theirs), (url, now, subject, purpose)

