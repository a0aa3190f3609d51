"""A log line naming a person by a URL written without its scheme (``people.example/u/108``), as a project writes a
link it is about to follow: at INFO and above it is read as the URL with its scheme is (``http://people.example/
u/108``: the stand-in with ``undecided`` while whether 108 allows is not known; an allowed person's URL is left),
on a platform's host only (any subdomain, any case, a port, an internationalized host as people write it), so that
other text with a slash (``docs.python.org/3/``, ``and/or``) is left as written.

It was read only as a path on each platform's host (``http://people.example/people.example/u/108``, ambiguous
as it embeds a platform URL: the reason said so, and 101's own URL went too), and a platform's internationalized
host written in Unicode (``bücher.example/u/5``) was not read as a platform's at all: the line named the person.
Real crawls against the lenient people site, judged by the log records at INFO and above."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, PLATFORMS_YAML, LenientPeople, crawl, make_spider, people_settings
from tests.test_person_lines import _WRITTEN, _loud

BASE = f"http://{HOST}"
#: 108's profile, never asked for, as a project spells it in a line
SPELT = [f"{HOST}/u/108", f"{HOST.upper()}/U/108", f"www.{HOST}/u/108?tab=posts", f"{HOST}:80/u/108",
         f"bob@{HOST}/u/108", "b\u00fccher.example/u/5", "B\u00dcCHER.example/u/5", "b\u00fccher\u3002example/u/5"]
#: a second platform, with an internationalized domain (5 is one of its people, never asked for)
BOOKS_YAML = """\
  books:
    domains: [b\u00fccher.example]
    authorization: {purposes: [research], reference: "test agreement", valid_from: 2026-01-01,
                    valid_until: 2030-01-01}
    profiles: ["/u/{subject}"]
    subject: "[0-9]+"
"""
#: left as written: 101's own URL (allowed), text with a slash on no platform's host
KEPT = f"kept: {HOST}/u/101 docs.python.org/3/library/ and/or 1/2 example.org/t/108"
STAND = "<a URL consentcrawl did not allow (undecided); at DEBUG>"


class NamesTheNext:
    """Reads 101's profile and logs the next link it means to follow, 108's, written without a scheme."""

    seen: list[str]

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.profile)

    def profile(self, response: Any) -> None:
        self.seen.append(response.url)
        self.logger.info("next: %s, then %s", ", ".join(SPELT), KEPT)  # type: ignore[attr-defined]
        self.logger.warning("the same with its scheme: %s/u/108", BASE)  # type: ignore[attr-defined]
        logging.getLogger("somelib.queue").error("queued %s", SPELT[0])  # another library's line


@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
@deferred_f_from_coro_f
async def test_a_url_written_without_its_scheme_is_read_as_with_it(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = LenientPeople()
    settings = people_settings(tmp_path)
    (tmp_path / "platforms.yaml").write_text(PLATFORMS_YAML + BOOKS_YAML, encoding="utf-8")
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider(kind, NamesTheNext), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()
    loud = _loud(caplog)
    assert [line for line in loud if re.search(r"/u/(?:108|5)\b", line, re.IGNORECASE)] == [], loud
    lines = {line.split(": ", 1)[1] for line in loud if "namesthenext" in line or "somelib" in line}
    assert lines == {f"next: {', '.join([STAND] * len(SPELT))}, then {KEPT}",  # as the control with its scheme:
                     f"the same with its scheme: {STAND}", f"queued {STAND}"}, loud
    debug = [_WRITTEN.format(r) for r in caplog.records if r.levelno == logging.DEBUG]
    assert [line for line in debug if f"next: {SPELT[0]}" in line], "nothing lost: at DEBUG"


async def _loud_lines_of(logic: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         caplog: pytest.LogCaptureFixture) -> list[str]:
    """Crawl 101 with ``logic`` as a ``ConsentSpider``; the messages its spider logged at INFO and above."""
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.DEBUG):
        await crawl(make_spider("ConsentSpider", logic), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()
    return [line.split(": ", 1)[1] for line in _loud(caplog) if logic.__name__.lower() in line]


#: 108's profile written without its scheme as a server reads it, with its slashes doubled or written as
#: backslashes (as a browser and many servers take them); each is scrubbed with its scheme
SLASHED = [f"{HOST}//u/108", f"{HOST}\\u\\108", f"{HOST}\\\\u\\108", f"{HOST}/u//108"]


class NamesTheNextSlashed(NamesTheNext):
    def profile(self, response: Any) -> None:
        self.seen.append(response.url)
        for spelt in SLASHED:
            self.logger.info("next: %s", spelt)  # type: ignore[attr-defined]
            self.logger.info("with its scheme: %s", f"http://{spelt}")  # type: ignore[attr-defined]


@deferred_f_from_coro_f
async def test_a_url_without_its_scheme_with_doubled_slashes_or_backslashes_is_read_as_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """``people.example//u/108`` and ``people.example\\u\\108`` were not read as URLs at all (the path reading needs a
    single ``/`` after the host, and a line without a ``/`` was not read for paths): the line named 108, undecided,
    at INFO, where the same URL with its scheme said the stand-in."""
    loud = await _loud_lines_of(NamesTheNextSlashed, tmp_path, monkeypatch, caplog)
    assert loud == [line for _ in SLASHED for line in (f"next: {STAND}", f"with its scheme: {STAND}")], loud


#: 108's profile by its path, quoted as people quote in text and Markdown (the path reading began a word only after
#: a space, a bracket or a straight quote)
QUOTED = ["`/u/108`", "*/u/108*", "\u00ab/u/108\u00bb", "\u201c/u/108\u201d", "\u2018u/108\u2019", "|/u/108|",
          f"`{HOST}//u/108`"]


class NamesTheNextQuoted(NamesTheNext):
    def profile(self, response: Any) -> None:
        self.seen.append(response.url)
        for spelt in QUOTED:
            self.logger.info("next: %s", spelt)  # type: ignore[attr-defined]
        self.logger.info("kept: `and/or` *1/2* `/u/101`")  # type: ignore[attr-defined]


@deferred_f_from_coro_f
async def test_a_path_in_backticks_or_typographic_quotes_is_read_as_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A relative link written in backticks, asterisks or typographic quotes (``next: `/u/108` ``) was not read as
    a path at all: the line named 108, undecided, at INFO. Each is read as the same path unquoted is; an allowed
    person's (101) and text that is no one's page stay as written."""
    loud = await _loud_lines_of(NamesTheNextQuoted, tmp_path, monkeypatch, caplog)
    assert [line for line in loud if "108" in line] == [], loud
    assert "kept: `and/or` *1/2* `/u/101`" in loud, loud
