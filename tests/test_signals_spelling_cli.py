"""``consentcrawl signals`` and ``check`` say, for a URL written with a trailing slash, what the crawl does with it:
every spelling of the page decided (``/open/`` as requested, ``/open`` canonical), before the fetch and in the
response phase, any spelling's deny winning. A real crawl of the same URLs against the same loopback server is
the judge (its audit log and the server's request log), so the operator's table never says "allow" where the
crawl denies, nor the reverse.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer
from tests.conftest import run_crawl
from tests.test_robots_crawl import HOST, ConsentListSpider
from tests.test_signals_crawl import SignalSite, _denied_paths, _pages, _settings

#: ``/private/`` (not ``/private``) may not be indexed; ``/open`` (not ``/open/``) may be used for training
ROBOTS = ("User-agent: *\nAllow: /\nContent-Usage: / search=y\nContent-Usage: /private/ search=n\n"
          "Content-Usage: /open$ train-ai=y\n")
PATHS = ["/private", "/private/", "/open", "/open/", "/open/?q=1"]
#: the URLs whose outcome for the purpose is decided by their spelling with the trailing slash alone
NAMED = {"search-indexing": {"/private/"}, "ai-training": {"/open/"}}


def _json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = main(args)
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return code, json.loads(out)


async def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """The command in a thread of its own, so the crawl's reactor keeps running beside it."""
    return await asyncio.to_thread(_json, args, capsys)


@pytest.mark.parametrize("purpose", ["search-indexing", "ai-training"])
@deferred_f_from_coro_f
async def test_signals_and_check_report_the_outcome_the_crawl_applies_to_each_spelling(
        purpose: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    ConsentListSpider.urls = [f"http://{HOST}{p}" for p in PATHS]
    with LocalServer(SignalSite(robots=ROBOTS)) as server:
        result = await run_crawl(ConsentListSpider, _settings(tmp_path, purpose), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
        fetched = _pages(server)
    collected = {i["url"].partition(HOST)[2] for i in result.items}
    crawl = {p: ("allow", None) if p in collected else ("deny", _denied_paths(result).get(p)) for p in PATHS}
    assert all(reason for verdict, reason in crawl.values() if verdict == "deny"), (crawl, result.audit)
    platforms = tmp_path / "platforms.yaml"  # `check` needs a platform; none of them is this site
    platforms.write_text(yaml.safe_dump({"platforms": {"elsewhere": {"domains": ["elsewhere.example"]}}}))
    for path in PATHS:
        url = f"http://{HOST}{path}"
        with LocalServer(SignalSite(robots=ROBOTS)) as server:
            monkeypatch.setenv("http_proxy", server.proxy)
            _code, table = await _cli(["signals", url, "--json", "--fetch"], capsys)
            code, checked = await _cli(["check", url, "--purpose", purpose, "--json", "--fetch",
                                  "--platforms", str(platforms)], capsys)
        row = table["purposes"][purpose]
        assert (row["verdict"], row["reason"] if row["verdict"] == "deny" else None) == crawl[path], (path, row)
        assert (checked["verdict"], checked["reason"] if code else None) == crawl[path], (path, checked["reason"])
        # a row decided by a spelling other than the canonical one names it (/open allowed, /open/ not)
        assert row.get("path") == (path if path in NAMED[purpose] else None), (path, row)
    expected = {
        "search-indexing": {"/private/": ("deny", "terms.signal.content-usage")},
        # /open is for training, /open/ says nothing about it: ai-training's default refuses it, after the fetch
        "ai-training": {p: ("deny", "terms.default-deny") for p in ("/private", "/private/", "/open/", "/open/?q=1")},
    }[purpose]
    assert {p: c for p, c in crawl.items() if c[0] == "deny"} == expected
    # denied before the fetch: never requested; a default applies after the fetch: requested, and nothing kept
    assert ("/private/" in fetched) == (purpose != "search-indexing")
    assert "/open/" in fetched


def test_the_table_before_the_fetch_names_the_spelling_that_decides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Without ``--fetch``: ``/private/`` is denied for search as requested (the canonical ``/private`` is allowed),
    and ai-training on ``/open/`` is pending (left to the default after the fetch), not allowed as ``/open`` is;
    the report lists what the deciding spelling read, with its path."""
    monkeypatch.chdir(tmp_path)
    with LocalServer(SignalSite(robots=ROBOTS)) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        private, open_, bare = (_json(["signals", f"http://{HOST}{path}", "--json"], capsys)[1]
                                for path in ("/private/", "/open/", "/open"))
        assert main(["signals", f"http://{HOST}/private/"]) == 0
        text = capsys.readouterr().out
        assert _pages(server) == []  # nothing but robots.txt and the signal files
    row = private["purposes"]["search-indexing"]
    assert (row["verdict"], row["reason"], row["path"]) == ("deny", "terms.signal.content-usage", "/private/")
    spelled = [s for s in private["signals"] if s.get("path") == "/private/"]
    assert [s["verdicts"]["search-indexing"] for s in spelled] == ["deny"], private["signals"]
    assert (open_["purposes"]["ai-training"]["verdict"], open_["purposes"]["ai-training"]["path"]) == \
        ("pending", "/open/")
    assert bare["purposes"]["ai-training"]["verdict"] == "allow" and "path" not in bare["purposes"]["ai-training"]
    assert "(as /private/)" in text and "as /private/)" in text.partition("where:")[2]
