"""The bundled local server (origin + plain-http forward proxy) and the demo microblog platform, over real sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from protego import Protego

from consentcrawl_demo.microblog import LINK_STYLES, MicroblogSite
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.routing import Router

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def proxied(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(proxy=server.proxy, trust_env=False, timeout=10) as client:
        yield client


@pytest.fixture
def direct() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def _raw(server: LocalServer, head: bytes) -> bytes:
    """Send one request exactly as written (plus ``Connection: close``) and return the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + b"Connection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("LocalServer")]


# --------------------------------------------------------------------------- the server


def test_absolute_form_requests_are_logged_raw(server: LocalServer, proxied: httpx.Client, site: MicroblogSite) -> None:
    response = proxied.get("http://microblog.example/u/1001")
    assert response.status_code == 200
    assert site.profile(1001)["name"] in response.text
    [request] = server.requests
    assert request.method == "GET"
    assert request.target == "http://microblog.example/u/1001"
    assert request.absolute_form
    assert (request.host, request.path, request.query, request.port) == ("microblog.example", "/u/1001", "", None)
    assert request.host_header == "microblog.example"
    assert request.header("user-agent", "").startswith("python-httpx")
    assert abs(request.time - time.time()) < 60
    assert server.requested_urls() == ["http://microblog.example/u/1001"]


def test_percent_escapes_and_case_are_kept_in_the_log(server: LocalServer, proxied: httpx.Client) -> None:
    response = proxied.get("http://microblog.example/u/%31%30%30%34?x=1")
    assert response.status_code == 200
    request = server.requests[-1]
    assert request.target == "http://microblog.example/u/%31%30%30%34?x=1"
    assert request.host == "microblog.example"
    assert request.path == "/u/%31%30%30%34" and request.decoded_path == "/u/1004"
    assert server.requested_urls() == ["http://microblog.example/u/%31%30%30%34?x=1"]
    status = _raw(server, b"GET http://MicroBlog.Example./U/%31%30%30%34 HTTP/1.1\r\nHost: MicroBlog.Example.\r\n")
    assert status.startswith(b"HTTP/1.1 200 ")
    request = server.requests[-1]
    assert request.target == "http://MicroBlog.Example./U/%31%30%30%34"
    assert (request.host, request.host_header) == ("microblog.example", "MicroBlog.Example.")


def test_origin_form_uses_the_host_header(server: LocalServer, direct: httpx.Client) -> None:
    response = direct.get(f"{server.url}/u/1002/", headers={"Host": "Microblog.Example:8080"})
    assert response.status_code == 200
    request = server.requests[-1]
    assert request.target == "/u/1002/"
    assert not request.absolute_form
    assert (request.host, request.port, request.host_header) == ("microblog.example", 8080, "Microblog.Example:8080")
    assert server.requested_urls() == ["http://microblog.example:8080/u/1002/"]


def test_raw_target_with_double_slash_is_not_collapsed(server: LocalServer) -> None:
    assert _raw(server, b"GET //u//1003 HTTP/1.1\r\nHost: microblog.example\r\n").startswith(b"HTTP/1.1 200 ")
    assert server.requests[-1].target == "//u//1003"
    assert server.requests[-1].path == "//u//1003"


def test_connect_is_logged_and_refused(server: LocalServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"CONNECT microblog.example:443 HTTP/1.1\r\nHost: microblog.example:443\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 405 ")
    request = server.requests[-1]
    assert (request.method, request.host, request.port, request.target) == (
        "CONNECT",
        "microblog.example",
        443,
        "microblog.example:443",
    )


def test_post_body_head_and_content_length(server: LocalServer, proxied: httpx.Client) -> None:
    head = proxied.head("http://microblog.example/robots.txt")
    get = proxied.get("http://microblog.example/robots.txt")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(get.content) == int(get.headers["content-length"])
    proxied.post("http://microblog.example/search", content=b"q=ada")
    assert server.requests[-1].body == b"q=ada"


def test_keep_alive_reuses_one_connection(server: LocalServer, proxied: httpx.Client) -> None:
    for _ in range(5):
        assert proxied.get("http://microblog.example/").status_code == 200
    assert len(server.requests) == 5
    assert len(server_threads()) == 2  # the accept loop and one connection


def test_clear(server: LocalServer, proxied: httpx.Client) -> None:
    proxied.get("http://microblog.example/")
    server.clear()
    assert server.requests == [] and server.requested_urls() == []


def test_log_is_thread_safe_and_fast(server: LocalServer) -> None:
    def fetch(worker: int) -> None:
        with httpx.Client(proxy=server.proxy, trust_env=False, timeout=10) as client:
            for i in range(50):
                assert client.get(f"http://microblog.example/u/{1001 + (worker * 50 + i) % 300}").status_code == 200

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fetch, range(8)))
    elapsed = time.monotonic() - started
    assert len(server.requests) == 400
    assert len(set(server.requested_urls())) == 300
    assert elapsed < 4, f"400 requests took {elapsed:.1f}s"  # at least 100 requests/s even on a slow runner


def test_delay_makes_a_client_time_out() -> None:
    app = Router.static("slow.example", "/", 200, b"late", delay=0.6)
    with LocalServer(app) as server, httpx.Client(proxy=server.proxy, trust_env=False) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("http://slow.example/", timeout=0.1)
        started = time.monotonic()
        response = client.get("http://slow.example/", timeout=5)
        assert response.content == b"late" and time.monotonic() - started >= 0.55
    assert len(server.requests) == 2


def test_app_returning_none_closes_the_connection() -> None:
    app = Router().drop("down.example", "/", prefix=True).static(None, "/ok", 200, "fine")
    with LocalServer(app) as server, httpx.Client(proxy=server.proxy, trust_env=False, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("http://down.example/robots.txt")
        assert client.get("http://up.example/ok").text == "fine"  # the server lives on
    assert server.requested_urls() == ["http://down.example/robots.txt", "http://up.example/ok"]


def test_app_exception_is_a_500_and_recorded() -> None:
    def broken(request: LoggedRequest, headers: dict[str, str]) -> Response:
        raise RuntimeError("boom")

    with LocalServer(broken) as server, httpx.Client(proxy=server.proxy, trust_env=False, timeout=5) as client:
        assert client.get("http://x.example/").status_code == 500
        [(request, trace)] = server.errors
        assert request.host == "x.example" and "boom" in trace


def test_router_overlays_a_site(site: MicroblogSite) -> None:
    app = Router(fallback=site).static("microblog.example", "/robots.txt", 503, b"down for maintenance")
    app.add("*.other.example", "/api/", lambda r, h: Response(201, [("X-A", "1"), ("X-A", "2")], b"{}"), prefix=True)
    with LocalServer(app) as server, httpx.Client(proxy=server.proxy, trust_env=False, timeout=5) as client:
        assert client.get("http://microblog.example/robots.txt").status_code == 503
        assert client.get("http://m.microblog.example/robots.txt").status_code == 200  # other host: the site
        response = client.get("http://api.other.example/api/v1")
        assert response.status_code == 201 and response.headers.get_list("x-a") == ["1", "2"]
        assert client.get("http://other.example/api/v1").status_code == 502  # pattern needs a subdomain
        assert client.get("http://api.other.example/nope").status_code == 502


def test_unmatched_router_is_404() -> None:
    with LocalServer(Router()) as server, httpx.Client(proxy=server.proxy, trust_env=False, timeout=5) as client:
        assert client.get("http://a.example/").status_code == 404


def test_stop_leaves_no_thread_running(site: MicroblogSite) -> None:
    before = set(threading.enumerate())
    server = LocalServer(site).start()
    port = server.port
    idle = httpx.Client(proxy=server.proxy, trust_env=False, timeout=5)
    idle.get("http://microblog.example/")  # a keep-alive connection left open
    slow = LocalServer(Router.static(None, None, 200, b"x", delay=30)).start()

    def wait_for_slow() -> None:
        with pytest.raises(httpx.HTTPError):
            httpx.get(slow.url, trust_env=False, timeout=60)

    waiter = threading.Thread(target=wait_for_slow)
    waiter.start()
    deadline = time.monotonic() + 5
    while not slow.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    slow.stop()  # a handler sleeping in a delay is woken, not waited for
    assert time.monotonic() - started < 3
    waiter.join(5)
    idle.close()
    assert server_threads() == []
    assert set(threading.enumerate()) <= before
    assert not server.running
    with pytest.raises(ConnectionError):
        _connect(port)
    server.stop()  # idempotent


def test_given_port_and_restart(site: MicroblogSite) -> None:
    with LocalServer(site) as first:
        port = first.port
    with LocalServer(site, port=port) as second:
        assert second.url == second.proxy == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{second.url}/", headers={"Host": "microblog.example"}, trust_env=False).status_code == 200
    with pytest.raises(ConnectionError):
        _connect(port)


def _connect(port: int) -> None:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_loopback_only(site: MicroblogSite) -> None:
    with pytest.raises(ValueError):
        LocalServer(site, host="0.0.0.0")
    with pytest.raises(RuntimeError):
        _ = LocalServer(site).url


def test_scrapy_crawls_through_the_proxy(tmp_path: Path) -> None:
    script = tmp_path / "crawl.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, sys
            import scrapy
            from scrapy.crawler import CrawlerProcess
            from consentcrawl_demo.microblog import MicroblogSite
            from consentcrawl_demo.server import LocalServer

            class People(scrapy.Spider):
                name = "people"
                start_urls = ["http://microblog.example/people?page=1"]

                def parse(self, response):
                    for href in response.css("a.profile-link::attr(href)").getall():
                        yield response.follow(href, self.profile)

                def profile(self, response):
                    yield {"subject": response.css("[data-subject]::attr(data-subject)").get(),
                           "name": response.css(".name::text").get()}

            items = []
            with LocalServer(MicroblogSite()) as server:
                os.environ["http_proxy"] = server.proxy
                process = CrawlerProcess({"LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": True, "TELNETCONSOLE_ENABLED": False})
                crawler = process.create_crawler(People)
                def collect(item):
                    items.append(item)

                crawler.signals.connect(collect, scrapy.signals.item_scraped)
                process.crawl(crawler)
                process.start()
                print(json.dumps({"items": items, "urls": server.requested_urls()}))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    site = MicroblogSite()
    assert sorted(item["subject"] for item in result["items"]) == site.subject_ids[:25]
    assert all(item["name"] == site.profile(item["subject"])["name"] for item in result["items"])
    assert "http://microblog.example/robots.txt" in result["urls"]
    assert "http://m.microblog.example/u/1003" in result["urls"]
    assert "http://microblog.example/u/%31%30%30%34" in result["urls"]
    assert "http://microblog.example/profile/1005" in result["urls"]


# --------------------------------------------------------------------------- the microblog platform


def test_site_is_deterministic(site: MicroblogSite) -> None:
    again = MicroblogSite()
    assert again.subject_ids == site.subject_ids == [str(i) for i in range(1001, 1301)]
    assert [again.profile(s) for s in again.subject_ids] == [site.profile(s) for s in site.subject_ids]
    other = MicroblogSite(seed=7)
    assert [other.profile(s) for s in other.subject_ids] != [site.profile(s) for s in site.subject_ids]
    assert set(site.profile("1001")) == {"name", "bio", "followers", "location"}
    assert site.profile(1001) == site.profile("1001")
    assert len({site.profile(s)["name"] for s in site.subject_ids}) == 300


def test_nobot_bios(site: MicroblogSite) -> None:
    assert 3 <= len(site.nobot_subjects) <= 10
    for subject in site.subject_ids:
        bio = str(site.profile(subject)["bio"])
        assert ("#nobot" in bio.split()) == (subject in site.nobot_subjects)
    assert "#nobotanicalgardens" in str(site.profile(site.decoy_subject)["bio"])


def test_robots_txt_is_the_same_on_every_host(proxied: httpx.Client) -> None:
    bodies = {
        proxied.get(f"http://{host}/robots.txt").text
        for host in ("microblog.example", "www.microblog.example", "m.microblog.example")
    }
    assert len(bodies) == 1
    robots = Protego.parse(bodies.pop())
    assert robots.can_fetch("http://microblog.example/u/1001", "consentcrawl")
    assert robots.can_fetch("http://microblog.example/people?page=2", "consentcrawl")
    assert not robots.can_fetch("http://microblog.example/u/1001/followers", "consentcrawl")
    assert not robots.can_fetch("http://microblog.example/search?q=ada", "consentcrawl")
    assert not robots.can_fetch("http://microblog.example/private/x", "consentcrawl")
    assert list(robots.sitemaps) == ["http://microblog.example/sitemap.xml"]


def test_listing_pages(proxied: httpx.Client, site: MicroblogSite) -> None:
    first = proxied.get("http://microblog.example/people?page=1").text
    assert first.count('class="person"') == 25
    for subject in site.subject_ids[:25]:
        assert f'data-subject="{subject}"' in first and str(site.profile(subject)["name"]) in first
    for href in (
        '"http://microblog.example/u/1001"',
        '"/u/1002/"',
        '"//m.microblog.example/u/1003"',
        '"/u/%31%30%30%34"',
        '"/profile/1005"',
    ):
        assert f"href={href}" in first
    assert 'rel="next" href="/people?page=2"' in first and 'rel="prev"' not in first
    assert proxied.get("http://microblog.example/people").text == first
    last = proxied.get("http://microblog.example/people?page=12").text
    assert last.count('class="person"') == 25 and 'rel="next"' not in last and 'rel="prev"' in last
    for bad in ("0", "13", "x"):
        assert proxied.get(f"http://microblog.example/people?page={bad}").status_code == 404
    home = proxied.get("http://microblog.example/").text
    assert all(f"/people?page={n}" in home for n in range(1, 13))
    assert LINK_STYLES == ("absolute", "relative", "mobile", "escaped", "legacy")


def test_profile_page(proxied: httpx.Client, site: MicroblogSite) -> None:
    data = site.profile(1042)
    page = proxied.get("http://microblog.example/u/1042").text
    for value in data.values():
        assert str(value) in page
    assert 'href="/u/1042/followers"' in page
    assert page.count('class="related"') == 5 + 1  # five links and their list
    for other in site.related(1042):
        assert str(site.profile(other)["name"]) in page
    followers = proxied.get("http://microblog.example/u/1042/followers")
    assert followers.status_code == 200 and "Followers of" in followers.text


def test_mobile_and_www_hosts_serve_the_same_people(proxied: httpx.Client, site: MicroblogSite) -> None:
    desktop = proxied.get("http://microblog.example/u/1003").text
    mobile = proxied.get("http://m.microblog.example/u/1003").text
    www = proxied.get("http://www.microblog.example/u/1003").text
    assert mobile != desktop and www == desktop
    assert 'class="m-profile h-card"' in mobile and 'name="viewport"' in mobile  # h-card: where refusals are read
    for value in site.profile(1003).values():
        assert str(value) in mobile


def test_redirects(server: LocalServer, proxied: httpx.Client) -> None:
    legacy = proxied.get("http://m.microblog.example/profile/1005")
    assert legacy.status_code == 301 and legacy.headers["location"] == "http://microblog.example/u/1005"
    into = "http://microblog.example/u/1002"
    hop = proxied.get("http://microblog.example/go", params={"to": into})
    assert hop.status_code == 302 and hop.headers["location"] == into
    followed = proxied.get("http://microblog.example/go", params={"to": into}, follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url) == into
    assert server.requested_urls()[-2:] == [
        "http://microblog.example/go?to=http%3A%2F%2Fmicroblog.example%2Fu%2F1002",
        into,
    ]
    assert proxied.get("http://microblog.example/go").status_code == 400


def test_not_found_and_unknown_hosts(proxied: httpx.Client) -> None:
    for path in ("/u/999", "/u/1301", "/u/abc", "/profile/42", "/u/1001/likes", "/nothing"):
        assert proxied.get(f"http://microblog.example{path}").status_code == 404, path
    assert proxied.get("http://elsewhere.example/").status_code == 502
    assert proxied.get("http://microblog.example/sitemap.xml").headers["content-type"] == "application/xml"


def test_demo_config_files_are_current_and_consistent(site: MicroblogSite) -> None:
    from consentcrawl_demo import make_config

    for name, text in make_config.render().items():
        assert (ROOT / "settings" / name).read_text(encoding="utf-8") == text, f"regenerate settings/{name}"
    platforms = yaml.safe_load((ROOT / "settings" / "platforms.yaml").read_text())["platforms"]
    assert platforms["microblog"]["authorization"]["fields"] == ["name", "bio", "followers"]
    records = yaml.safe_load((ROOT / "settings" / "authorizations.yaml").read_text())["authorizations"]
    assert 90 <= len(records) <= 110
    assert {r["subject"] for r in records} <= set(site.subject_ids)
    kinds = {r.subject: r.kind for r in make_config.build_records(site)}
    assert sorted(kinds.values()).count("live") == len(records) - 3
    assert {k for k in kinds.values() if k != "live"} == {"expired", "revoked", "ai-only"}
    live_nobot = [s for s in site.nobot_subjects if kinds.get(s) == "live"]
    assert len(live_nobot) == 2 and kinds.get(site.decoy_subject) == "live"
