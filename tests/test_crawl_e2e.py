"""End to end: real crawls of the demo microblog through Scrapy, judged by what the server actually received."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import scrapy
import yaml
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import AUTHORIZATIONS, consent_settings, jsonl, run_crawl
from tests.routing import Router

PROFILE = re.compile(r"^/(?:u|profile)/([^/]+)")


def live_research_subjects(path: Path = AUTHORIZATIONS, now: datetime | None = None) -> set[str]:
    """Who may be collected for research, computed straight from the YAML (independently of consentcrawl)."""
    now = now or datetime.now(timezone.utc)
    live = set()
    for r in yaml.safe_load(path.read_text())["authorizations"]:
        if "research" not in r["purposes"]:
            continue
        if r["granted_at"] > now or (r.get("expires_at") and r["expires_at"] <= now):
            continue
        if r.get("revoked_at") and r["revoked_at"] <= now:
            continue
        live.add(str(r["subject"]))
    return live


def requested_subjects(server: LocalServer) -> set[str]:
    """Subjects whose profile (or anything under it) the server was asked for, however it was spelt."""
    subjects = set()
    for request in server.requests:
        path = re.sub("/{2,}", "/", request.decoded_path).lower()
        match = PROFILE.match(path)
        if match:
            subjects.add(match.group(1))
    return subjects


class PlainMicroblogSpider(scrapy.Spider):
    """An existing crawler that only adds the ADDONS line."""

    name = "plain-microblog"
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}}
    start_url = MicroblogSpider.start_url
    allowed_domains = MicroblogSpider.allowed_domains
    start = MicroblogSpider.start
    parse = MicroblogSpider.parse
    parse_profile = MicroblogSpider.parse_profile
    parse_followers = MicroblogSpider.parse_followers


class RedirectSpider(MicroblogSpider):
    """Also asks for denied people through an open redirect and through the mobile host."""

    name = "redirecting"
    denied: tuple[str, ...] = ()

    async def start(self) -> Any:
        async for request in super().start():
            yield request
        for subject in self.denied:
            yield scrapy.Request(f"http://microblog.example/go?to=http://m.microblog.example/u/{subject}",
                                 callback=self.parse_profile)
            yield scrapy.Request(f"http://M.MICROBLOG.EXAMPLE:80/./u//{subject}/?tab=x#top",
                                 callback=self.parse_profile)
            yield scrapy.Request(f"http://www.microblog.example/U/%3{subject[0]}{subject[1:]}",
                                 callback=self.parse_profile)


@pytest.mark.parametrize("spidercls", [RedirectSpider, PlainMicroblogSpider], ids=["ConsentSpider", "ADDONS-line"])
@deferred_f_from_coro_f
async def test_only_authorized_people_are_fetched_and_collected(
    spidercls: type[scrapy.Spider], server: LocalServer, site: MicroblogSite, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed = live_research_subjects()
    denied = sorted(set(site.subject_ids) - allowed)
    assert len(allowed) > 50 and len(denied) > 100
    if spidercls is RedirectSpider:
        monkeypatch.setattr(RedirectSpider, "denied", tuple(denied[:5]))
    settings = consent_settings(tmp_path, FEEDS={str(tmp_path / "items.jsonl"): {"format": "jsonlines"}})
    if spidercls is PlainMicroblogSpider:
        settings["CONSENTCRAWL_PURPOSE"] = "research"
    result = await run_crawl(spidercls, settings, proxy=server.proxy, monkeypatch=monkeypatch)

    # the server never saw a denied person's profile, in any spelling, on any host, via any redirect
    fetched = requested_subjects(server)
    assert fetched == allowed
    hosts = {r.host for r in server.requests}
    assert "m.microblog.example" in hosts  # the mobile host really was crawled
    if spidercls is RedirectSpider:
        # an open redirect that embeds a denied person's URL is that person's page: denied before /go is fetched
        assert any("/go?" in (e["url"] or "") and e["verdict"] == "deny" for e in result.audit)
    # robots.txt: fetched once per origin, and its disallowed paths never requested
    robots = [r for r in server.requests if r.path == "/robots.txt"]
    assert len(robots) == len({r.host for r in server.requests})
    assert not any("/followers" in r.path for r in server.requests)

    # the items are exactly the authorized people, with only the fields the platform agreement allows, but for the
    # two people who hold a live record and wrote #nobot in their bio: their profile page is fetched (that is where
    # the refusal is read), and then neither collected nor fetched again (issue #14, "Refusals on the page")
    refused = set(site.nobot_subjects) & allowed
    assert len(refused) == 2
    refusals = [e for e in result.events if e["event"] == "refusal-found"]
    assert {e["subject"] for e in refusals} == refused
    assert all(e["form"] == "hashtag.nobot" and "#nobot" in e["raw"] for e in refusals)
    refused_lines = [e for e in result.audit if e["reason"] == "subject.refused-on-page"]
    assert {e["subject"] for e in refused_lines if e["phase"] == "response"} == refused
    found_at = {e["subject"]: e["time"] for e in refusals}
    for entry in result.audit:  # nothing of theirs was let go out after their refusal was found
        if entry["subject"] in refused and entry["verdict"] == "allow":
            assert entry["time"] <= found_at[entry["subject"]], entry
    assert all(e["because"] in {r["event_id"] for r in refusals} for e in refused_lines)
    allowed -= refused
    assert {item["subject"] for item in result.items} == allowed
    for item in result.items:
        assert set(item) == {"subject", "name", "bio", "followers", "consentcrawl"}
        expected = site.profile(item["subject"])
        assert (item["name"], item["followers"]) == (expected["name"], expected["followers"])
        assert item["consentcrawl"]["reason"] == "subject.authorized"
    assert {i["subject"] for i in jsonl(tmp_path / "items.jsonl")} == allowed

    # stats and audit log agree with each other and with the server
    stats = result.consent_stats()
    requests = [e for e in result.audit if e["phase"] in ("schedule", "request", "response")]
    assert stats["consentcrawl/allowed"] == sum(e["verdict"] == "allow" for e in requests)
    denied_entries = [e for e in requests if e["verdict"] == "deny"]
    assert stats["consentcrawl/denied"] == len(denied_entries)
    for entry in denied_entries:
        stage, _, code = entry["reason"].partition(".")
        assert stats[f"consentcrawl/denied/{stage}/{code}"] >= 1
    by_reason: dict[str, int] = {}
    for entry in denied_entries:
        by_reason[entry["reason"]] = by_reason.get(entry["reason"], 0) + 1
    for reason, count in by_reason.items():
        stage, _, code = reason.partition(".")
        assert stats[f"consentcrawl/denied/{stage}/{code}"] == count
    assert {"subject.no-authorization", "subject.revoked", "subject.expired", "subject.purpose",
            "robots.disallowed", "subject.refused-on-page"} <= set(by_reason)
    audited_allowed = {e["subject"] for e in requests if e["verdict"] == "allow" and e["subject"]}
    assert audited_allowed == allowed | refused  # their profile page was sent for: the refusal is read on it
    for entry in result.audit:
        assert entry["decision_id"] and entry["time"] and entry["purpose"] == "research"
        assert set(entry) >= {"url", "canonical_url", "platform", "subject", "verdict", "stage", "reason", "evidence"}
        assert "location" not in str(entry) and "bio" not in entry


@deferred_f_from_coro_f
async def test_report_mode_drops_nothing_but_counts_what_it_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = MicroblogSite(n_profiles=50)
    settings = consent_settings(tmp_path, CONSENTCRAWL_MODE="report", LOG_LEVEL="INFO")
    with LocalServer(site) as server:
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert requested_subjects(server) == set(site.subject_ids)
    assert {i["subject"] for i in result.items} == set(site.subject_ids)
    denied = set(site.subject_ids) - live_research_subjects()
    assert result.stats["consentcrawl/denied/subject/no-authorization"] >= len(denied) - 3
    assert result.stats["consentcrawl/items/dropped"] >= len(denied)
    assert all(e["mode"] == "report" for e in result.audit)


@deferred_f_from_coro_f
async def test_nothing_of_a_denied_person_in_cache_feeds_or_info_logs(
    server: LocalServer, site: MicroblogSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    allowed = live_research_subjects()
    denied = set(site.subject_ids) - allowed
    cache_dir = tmp_path / "httpcache"
    settings = consent_settings(tmp_path, HTTPCACHE_ENABLED=True, HTTPCACHE_DIR=str(cache_dir), LOG_LEVEL="DEBUG",
                                FEEDS={str(tmp_path / "items.jsonl"): {"format": "jsonlines"}})
    with caplog.at_level(logging.DEBUG):
        await run_crawl(PlainMicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    cached_urls = [p.read_text() for p in cache_dir.rglob("meta")]
    assert cached_urls, "the HTTP cache was used"
    cached_subjects = {m.group(1) for text in cached_urls for m in re.finditer(r"/u/(\d+)", text)}
    assert cached_subjects and not cached_subjects & denied
    info_text = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    for subject in denied:
        profile = site.profile(subject)
        assert str(profile["name"]) not in info_text
        assert f"/u/{subject}" not in info_text
    feed = (tmp_path / "items.jsonl").read_text()
    assert not any(str(site.profile(s)["name"]) in feed for s in denied)


@deferred_f_from_coro_f
async def test_unreachable_robots_denies_the_whole_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = MicroblogSite(n_profiles=30)
    app = Router(fallback=site).static(None, "/robots.txt", 503, "User-agent: *\nAllow: /\n")
    with LocalServer(app) as server:
        result = await run_crawl(MicroblogSpider, consent_settings(tmp_path), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        assert [r.path for r in server.requests] == ["/robots.txt"]
    assert result.items == []
    assert result.stats["consentcrawl/denied/robots/unreachable"] >= 1
    entry = next(e for e in result.audit if e["reason"] == "robots.unreachable")
    assert entry["evidence"][0]["http_status"] == 503


@deferred_f_from_coro_f
async def test_robots_404_allows_the_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = MicroblogSite(n_profiles=30)
    app = Router(fallback=site).static(None, "/robots.txt", 404, "User-agent: *\nDisallow: /\n")
    with LocalServer(app) as server:
        result = await run_crawl(MicroblogSpider, consent_settings(tmp_path), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
    assert {i["subject"] for i in result.items} == live_research_subjects() & set(site.subject_ids)
    assert result.stats.get("consentcrawl/denied/robots/disallowed", 0) == 0


@deferred_f_from_coro_f
async def test_a_crawl_without_purpose_refuses_to_start(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    settings = consent_settings(tmp_path)
    del settings["CONSENTCRAWL_PURPOSE"]
    result = await run_crawl(PlainMicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "consentcrawl_config_error"
    assert server.requests == [] and result.items == []
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and "no purpose" in critical[0]
    assert not any(r.exc_info for r in caplog.records), "a clear line, not a traceback"


@deferred_f_from_coro_f
async def test_bad_config_refuses_to_start_naming_file_and_line(
    server: LocalServer, config_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    bad = config_dir / "authorizations.yaml"
    lines = bad.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if "purposes:" in line)
    lines[index] = "    purposes: [reserch]"
    bad.write_text("\n".join(lines) + "\n")
    settings = consent_settings(config_dir, CONSENTCRAWL_AUTHORIZATIONS=str(bad))
    result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "consentcrawl_config_error"
    assert server.requests == [] and result.items == []
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and f"authorizations.yaml, line {index + 1}" in critical[0]
    # the record's values are not quoted in the crawl's log (a subject id, an evidence note may be a person's
    # data): the misspelt value is left out as the import command leaves it out; the known words stay
    assert "unknown purpose '…' in 'purposes' (did you mean 'research'?)" in critical[0]


class FullDiskSpider(MicroblogSpider):
    """The disk fills up once the crawl has started: from then on every write of the audit log fails (ENOSPC)."""

    opened: Any = None

    async def start(self) -> Any:
        from consentcrawl.runtime import get_runtime

        runtime = get_runtime(self.crawler)
        assert runtime is not None
        type(self).opened = runtime.audit._file  # the real file, with the chain-start line in it
        runtime.audit._file = open("/dev/full", "wb", buffering=0)  # closed by the log's close
        async for request in super().start():
            yield request


@deferred_f_from_coro_f
async def test_an_audit_log_that_cannot_be_written_denies_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    site = MicroblogSite(n_profiles=30)
    # not even the chain-start line can be written: the crawl does not start
    settings = consent_settings(tmp_path, CONSENTCRAWL_AUDIT_LOG="/dev/full")  # every write fails: ENOSPC
    with LocalServer(site) as server:
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert result.stats["finish_reason"] == "consentcrawl_config_error" and server.requests == []
    assert any("/dev/full: cannot start the audit log: cannot write the audit log /dev/full: No space left"
               in r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL)

    # the disk fills up after the start: everything is denied
    caplog.clear()
    settings = consent_settings(tmp_path)
    with LocalServer(site) as server:
        result = await run_crawl(FullDiskSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        # only the site's terms are read (robots.txt and the signal files): no page
        assert {r.path for r in server.requests} <= {"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"}
    FullDiskSpider.opened.close()
    assert result.items == []
    assert result.stats["consentcrawl/denied/error/audit-unavailable"] >= 1
    assert result.stats.get("consentcrawl/allowed", 0) == 0
    assert any("cannot write the audit log" in r.getMessage() for r in caplog.records)


@deferred_f_from_coro_f
async def test_an_audit_log_that_cannot_be_opened_refuses_to_start(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "taken").write_text("a file where a folder should be")
    settings = consent_settings(tmp_path, CONSENTCRAWL_AUDIT_LOG=str(tmp_path / "taken" / "audit.jsonl"))
    result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "consentcrawl_config_error" and server.requests == []
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and "taken/audit.jsonl" in critical[0] and "cannot open the audit log" in critical[0]


class ProfileItem(scrapy.Item):
    """A declared Item with a field for the provenance stamp."""

    subject = scrapy.Field()
    name = scrapy.Field()
    bio = scrapy.Field()
    followers = scrapy.Field()
    location = scrapy.Field()
    url = scrapy.Field()
    consentcrawl = scrapy.Field()


class BareProfileItem(scrapy.Item):
    """A declared Item without a provenance field or a platform field: nothing says which platform it is from."""

    subject = scrapy.Field()
    name = scrapy.Field()
    location = scrapy.Field()


class ItemClassSpider(MicroblogSpider):
    """The microblog spider yielding Item objects instead of dicts."""

    name = "item-classes"
    item_class: type[scrapy.Item] = ProfileItem

    def parse_profile(self, response: Any) -> Any:
        for output in super().parse_profile(response):
            if isinstance(output, dict):
                fields = self.item_class.fields
                output = self.item_class({k: v for k, v in output.items() if k in fields})
            yield output


@pytest.mark.parametrize("item_class", [ProfileItem, BareProfileItem])
@deferred_f_from_coro_f
async def test_item_objects_are_guarded_like_dicts(
    item_class: type[scrapy.Item], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Items that are not plain dicts go through itemadapter: stamped, guarded and trimmed the same way; one that
    cannot say its platform is dropped (subject.unknown-platform), not kept."""
    site = MicroblogSite(n_profiles=50)
    monkeypatch.setattr(ItemClassSpider, "item_class", item_class)
    with LocalServer(site) as server:
        result = await run_crawl(ItemClassSpider, consent_settings(tmp_path), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
    allowed = live_research_subjects() & set(site.subject_ids)
    assert allowed and requested_subjects(server) == allowed
    allowed -= set(site.nobot_subjects)  # fetched, and refused on their page (#nobot): no item
    items = [e for e in result.audit if e["phase"] == "item"]
    if item_class is ProfileItem:
        assert {item["subject"] for item in result.items} == allowed
        for item in result.items:  # trimmed to the fields the platform agreement allows, stamped
            assert set(item) == {"subject", "name", "bio", "followers", "consentcrawl"}
            assert item["consentcrawl"]["reason"] == "subject.authorized"
        assert {e["subject"] for e in items if e["verdict"] == "allow"} == allowed
    else:
        assert result.items == []
        assert result.dropped_items and all(d == {} for d in result.dropped_items)  # emptied before the drop
        assert {e["subject"] for e in items} == allowed  # whose they were: in the audit log
        assert {e["reason"] for e in items} == {"subject.unknown-platform"}
        # a person's profile may be fetched under several URLs (hosts, spellings): one item and one line each
        assert result.stats["consentcrawl/items/dropped"] == len(result.dropped_items) == len(items)


@deferred_f_from_coro_f
async def test_seeds_from_a_redis_key_without_a_redis_refuse_to_start(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A seed key set with no Redis to read it from: the crawl ended empty and 'finished', its one CRITICAL line
    never written (the check ran once a runtime existed, when refusing to start does nothing). It refuses to
    start, naming the setting, and fetches nothing."""
    settings = consent_settings(tmp_path, CONSENTCRAWL_REDIS_START_KEY="%(name)s:start_urls")
    result = await run_crawl(PlainMicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "consentcrawl_config_error"
    assert server.requests == [] and result.items == []
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and "CONSENTCRAWL_REDIS_START_KEY" in critical[0], critical


# scrapy-redis's client through REDIS_HOST passes redis-py >= 6 a deprecated argument of its own defaults
# (retry_on_timeout, scrapy_redis.defaults.REDIS_PARAMS), before consentcrawl refuses the crawl: docs/distributed.md
@pytest.mark.filterwarnings("ignore:Call to '__init__' function with deprecated usage:DeprecationWarning")
@deferred_f_from_coro_f
async def test_the_shared_queue_without_the_shared_state_refuses_to_start(
    server: LocalServer, redis_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """scrapy-redis's queue reached through its own ``REDIS_HOST``/``REDIS_PORT`` (no ``REDIS_URL``): consentcrawl
    saw no Redis and ran as one process (the Crawl-delay, refusals and robots.txt fetches of this worker only, while
    the others work the same queue), fetching the site. It refuses to start, naming the settings, and fetches
    nothing."""
    settings = consent_settings(
        tmp_path, SCHEDULER="consentcrawl.distributed.scheduler.ConsentRedisScheduler",
        DUPEFILTER_CLASS="consentcrawl.distributed.scheduler.ConsentRedisDupeFilter",
        REDIS_HOST="127.0.0.1", REDIS_PORT=redis_server.port, REDIS_PARAMS={"socket_timeout": 1})
    result = await run_crawl(PlainMicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert server.requests == [] and result.items == []
    assert result.stats["finish_reason"] == "consentcrawl_config_error"
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and "REDIS_URL" in critical[0], critical
