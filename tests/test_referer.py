"""A person's profile URL is not handed to other origins in ``Referer``.

Scrapy's default referrer policy sends the full URL of the page a link was found on to any origin: a request made
from a person's profile tells another site (a CDN, a link shortener, another host of the platform) whose profile
the crawler read, and keeps doing so after that person withdraws. The add-on sets ``strict-origin``: every request
gets the referring origin only; a project that sets ``REFERRER_POLICY`` itself keeps its own. Judged by the
``Referer`` the server received.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.messages import Response
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings


class FromTheProfile(ListLogic):
    """From 101's profile, a page on another origin and one on the same origin."""

    urls = [f"http://{HOST}/u/101"]

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        if response.url.endswith("/u/101"):
            yield scrapy.Request(f"http://www.{HOST}/about", callback=self.parse)
            yield scrapy.Request(f"http://{HOST}/about", callback=self.parse)


def _referers(server: LocalServer, target: str) -> list[str | None]:
    return [dict((k.lower(), v) for k, v in r.headers).get("referer") for r in server.requests if r.url == target]


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_another_origin_gets_the_referring_origin_only(kind: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople().page("/about", "<html><body>about</body></html>")
    with LocalServer(app) as server:
        await crawl(make_spider(kind, FromTheProfile), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
        assert _referers(server, f"http://www.{HOST}/about") == [f"http://{HOST}/"], server.requested_urls()
        # the platform itself gets the origin too: it need not be told which page a link was on
        assert _referers(server, f"http://{HOST}/about") == [f"http://{HOST}/"], server.requested_urls()


@deferred_f_from_coro_f
async def test_a_projects_own_referrer_policy_stands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = LenientPeople().page("/about", "<html><body>about</body></html>")
    settings = people_settings(tmp_path, REFERRER_POLICY="unsafe-url")
    with LocalServer(app) as server:
        await crawl(make_spider("ADDONS", FromTheProfile), settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert _referers(server, f"http://www.{HOST}/about") == [f"http://{HOST}/u/101"], server.requested_urls()


class ToTheRedirect(ListLogic):
    urls = [f"http://{HOST}/u/101"]

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        if response.url.endswith("/u/101"):
            yield scrapy.Request(f"http://{HOST}/go", callback=self.parse)


@deferred_f_from_coro_f
async def test_a_redirect_to_another_origin_gets_the_referring_origin_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A same-origin link from a profile that the platform redirects to another origin: the redirected request
    is sent with the referring origin only (Scrapy's RefererMiddleware applies the policy again on a redirect)."""
    app = LenientPeople().page("/about", "<html><body>about</body></html>")
    app.pages["/go"] = lambda request: Response(302, {"Location": f"http://www.{HOST}/about"}, "")
    with LocalServer(app) as server:
        await crawl(make_spider("ConsentSpider", ToTheRedirect), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
        assert _referers(server, f"http://{HOST}/go") == [f"http://{HOST}/"], server.requested_urls()
        assert _referers(server, f"http://www.{HOST}/about") == [f"http://{HOST}/"], server.requested_urls()


class LooseProfiles(LenientPeople):
    """The people site; its profile pages ask for the full URL to be sent anywhere (``Referrer-Policy``)."""

    policy = "unsafe-url"

    def __call__(self, request: Any, headers: dict[str, str]) -> Response | None:
        response = super().__call__(request, headers)
        if response is not None and request.path.startswith("/u/"):
            response.headers = {**dict(response.headers), "Referrer-Policy": self.policy}
        return response


@pytest.mark.parametrize("policy", ["unsafe-url", "no-referrer-when-downgrade", "origin-when-cross-origin, unsafe-url"])
@deferred_f_from_coro_f
async def test_a_profile_pages_own_referrer_policy_does_not_hand_its_url_to_another_origin(
        policy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scrapy's RefererMiddleware obeys a response's ``Referrer-Policy`` over the setting: a page could send its
    person's profile URL to any origin its links point to."""
    app = type("Loose", (LooseProfiles,), {"policy": policy})().page("/about", "<html><body>about</body></html>")
    with LocalServer(app) as server:
        await crawl(make_spider("ConsentSpider", FromTheProfile), people_settings(tmp_path), proxy=server.proxy,
                    monkeypatch=monkeypatch)
        assert _referers(server, f"http://www.{HOST}/about") == [f"http://{HOST}/"], server.requested_urls()
