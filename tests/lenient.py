"""The lenient test platform: a ``people`` site that reads URLs the way lenient real servers do.

:class:`LenientPeople` is an app for :class:`~consentcrawl_demo.server.LocalServer`. It serves the platform
``people`` at ``people.example`` and ``www.people.example`` (and, with ``any_host=True``, at whatever host it is
asked for, IP literals included). Before routing it does what real servers in front of real sites do:

- ``\\`` becomes ``/``; ``;`` path parameters are dropped from every segment (``/u/104;jsessionid=1``, ``..;/``);
- percent-escapes are decoded once, ``%2F`` included (``/u%2F110`` is ``/u/110``);
- ``.`` and ``..`` segments are resolved *after* decoding, repeated slashes merged, a trailing slash ignored;
- ids are read with a Unicode-aware digit parser (NFKC, then ``int()``): fullwidth ``105`` is 105, so is
  ``/u/+105``;
- handles are case-insensitive (``/@ALICE`` is ``alice``), compared fully case-folded, or with ``str.lower`` in
  :meth:`LenientPeople.lowering` (``/@straße`` and ``/@strasse`` are then two accounts); handles and numeric ids
  share one namespace;
- a format suffix is ignored (``/u/107.json`` is 107, as in Rails);
- ``/index.php/<path>`` is ``/<path>``: a PHP front controller routes the path after it (``PATH_INFO``), as
  WordPress, Laravel and Symfony do;
- ``/profile.php`` reads ``id`` from the query and from a form body, the body winning (PHP's ``$_REQUEST``),
  leading spaces in parameter names dropped and a name cut at its first NUL (as PHP does);
- a ``POST`` to the listing ``/people`` whose form or JSON body has an ``id`` answers with that person's profile,
  the id read as PHP's ``(int)`` and MySQL's string-to-number comparison read it (:func:`leading_number`:
  ``107abc``, `` 107``, ``+107``, ``107.0`` and ``1.07e2`` are 107).

Routes: ``/robots.txt`` (per host: body, status, redirect, Crawl-delay), ``/people?page=N`` (listing pages with
profile links), ``/u/<id>`` and ``/u/<id>/anything``, ``/@<handle>``, ``/profile.php?id=<id>`` (the *last* ``id``
wins, as in PHP), ``/redirect?to=URL`` (302 to anything) and pages a test composes with :meth:`LenientPeople.page`.

The app keeps its own **served log** (:attr:`LenientPeople.served`): for each request, the person whose profile it
actually served after its lenient decoding, or None. Tests judge fetching by this log, never by our audit log.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
import scrapy
from scrapy import signals
from scrapy.utils.test import get_crawler

from consentcrawl import ConsentSpider
from consentcrawl.audit.log import read_decisions
from consentcrawl_demo.server import LoggedRequest, Response
from tests.conftest import consent_settings, crawl_within_limit

HOST = "people.example"
HOSTS = (HOST, f"www.{HOST}")
#: the people the site has a profile for
PEOPLE = (*(str(i) for i in range(101, 121)), "alice", "bob")


def secret_name(person: str) -> str:
    """The personal data on a profile page: a string that must never leak anywhere."""
    return f"SECRET-NAME-{person}"


# --------------------------------------------------------------------------- lenient URL reading

_FORMAT_SUFFIX = re.compile(r"\.(?:json|html|xml)$", re.IGNORECASE)


def lenient_path(raw_path: str) -> str:
    """How a lenient server routes a raw request path (see the module docstring)."""
    raw_path = raw_path.replace("\\", "/")
    segments = [segment.split(";", 1)[0] for segment in raw_path.split("/")]  # Tomcat: path parameters go first
    decoded = unquote("/".join(segments)).replace("\\", "/")  # once, %2F and %5C included
    out: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return "/" + "/".join(out)


def person_of(token: str, fold: Callable[[str], str] = str.casefold,
              people: Iterable[str] = PEOPLE) -> str | None:
    """The person an id or handle names: NFKC, then ``int()`` for ids (fullwidth digits, ``+``, ``_``, spaces),
    else a case-insensitive handle, compared by ``fold`` (full case folding by default; ``str.lower`` as many
    real servers compare, where ``straße`` and ``strasse`` are two accounts). None when it names nobody the site
    knows (of ``people``)."""
    text = _FORMAT_SUFFIX.sub("", unicodedata.normalize("NFKC", token).strip())
    try:
        number = int(text)
    except ValueError:
        person = fold(text)
    else:
        person = str(number) if number >= 0 else ""
    return person if person in people else None


_LEADING_NUMBER = re.compile(r"[ \t\n\r\v\f]*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")


def leading_number(value: str) -> str | None:
    """The id PHP's ``(int)`` cast and MySQL's comparison of a string with a number read in ``value``: the number
    it starts with (after white space), its exponent applied and its fraction cut off; None if it starts with none."""
    found = _LEADING_NUMBER.match(value)
    if found is None:
        return None
    number = float(found.group(1))
    return str(int(number)) if number >= 0 and number != float("inf") else None


def _body_id(body: bytes) -> str | None:
    """The last ``id`` of a form body, or a JSON object's ``id`` (as text), or None."""
    try:
        document = json.loads(body)
    except ValueError:
        ids = parse_qs(body.decode("latin-1")).get("id")
        return ids[-1] if ids else None
    value = document.get("id") if isinstance(document, dict) else None
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def person_of_url(path_and_query: str, body: bytes = b"") -> str | None:
    """The person the lenient site serves for ``/path?query`` (and a form ``body``; None: no profile)."""
    raw_path, _, query = path_and_query.partition("?")
    return _route(lenient_path(raw_path), query, body)[1]


def _route(path: str, query: str, body: bytes = b"", fold: Callable[[str], str] = str.casefold,
           people: Iterable[str] = PEOPLE) -> tuple[str, str | None]:
    """(kind, person) of a lenient path (handles compared by ``fold``, among ``people``)."""
    parts = path.split("/")
    if path == "/robots.txt":
        return "robots", None
    if len(parts) >= 3 and parts[1].casefold() == "index.php" and parts[2:] != [""]:
        # a front controller (WordPress, Laravel, Symfony) routes the path after it (PATH_INFO) as the site's own
        return _route("/" + "/".join(parts[2:]), query, body, fold, people)
    if len(parts) >= 3 and parts[1].casefold() == "u":
        person = person_of(parts[2], fold, people)
        return ("profile", person) if person else ("missing", None)
    if len(parts) >= 2 and parts[1].startswith("@"):
        person = person_of(parts[1][1:], fold, people)
        return ("profile", person) if person else ("missing", None)
    if path.casefold() == "/people" and body:  # a search, a "load more": the person the body's id reads as
        ident = _body_id(body)
        person = leading_number(ident) if ident is not None else None
        if person is not None:
            return ("profile", person) if person in people else ("missing", None)
    if path.casefold() == "/profile.php":
        params = _php_names(parse_qs(query))
        params.update(_php_names(parse_qs(body.decode("latin-1"))))  # $_REQUEST: POST over GET
        ids = params.get("id") or [""]
        person = person_of(ids[-1], fold, people)  # PHP: the last of repeated parameters wins
        return ("profile", person) if person else ("missing", None)
    return "other", None


def _php_names(params: dict[str, list[str]]) -> dict[str, list[str]]:
    """Parameter names as PHP registers them: leading spaces dropped (``?%20id=107`` and ``?+id=107`` are ``id``),
    and a name ends at its first NUL (PHP reads it as a C string: ``?id%00=107`` and ``?id%00x=107`` are ``id``,
    as PHP 8.2 reads them); ``id[]`` and ``id[0]`` are the array ``id``, whose one element the site reads as the
    id (``(string) $id[0]``, Express's ``String(["107"])``)."""
    out: dict[str, list[str]] = {}
    for name, values in params.items():
        name = name.partition("\x00")[0].lstrip(" ")
        out.setdefault(name.partition("[")[0] if name.endswith("]") else name, []).extend(values)
    return out


# --------------------------------------------------------------------------- the app


@dataclass
class Robots:
    """What ``/robots.txt`` answers on one host."""

    body: str = "User-agent: *\nAllow: /\n"
    status: int = 200
    location: str | None = None  #: answer with this redirect instead (``status`` 301 unless set otherwise)
    crawl_delay: float | None = None  #: appended as ``Crawl-delay:`` to the body

    def response(self) -> Response:
        if self.location is not None:
            status = self.status if 300 <= self.status < 400 else 301
            return Response.redirect(self.location, status)
        body = self.body
        if self.crawl_delay is not None:
            body = body.rstrip("\n") + f"\nCrawl-delay: {self.crawl_delay:g}\n"
        return Response.text(body, self.status)


@dataclass(frozen=True)
class Served:
    """One request as the lenient site understood it."""

    time: float  #: arrival, ``time.time()``
    host: str
    target: str  #: the raw request target
    path: str  #: the path after lenient decoding
    query: str
    kind: str  #: robots, profile, listing, redirect, page, missing, other, unknown-host
    person: str | None  #: whose profile was served, or None
    status: int


@dataclass
class LenientPeople:
    """The lenient ``people`` site (see the module docstring)."""

    hosts: tuple[str, ...] = HOSTS
    any_host: bool = False
    robots: dict[str, Robots] = field(default_factory=dict)  #: per host; others get :attr:`default_robots`
    default_robots: Robots = field(default_factory=Robots)
    listing: dict[int, list[str]] = field(default_factory=lambda: {1: [f"/u/{i}" for i in range(101, 111)]})
    pages: dict[str, Callable[[LoggedRequest], Response] | str] = field(default_factory=dict)
    refusing: set[str] = field(default_factory=set)  #: people whose profile's h-card bio says #nobot
    #: how handles are compared: full case folding (the default), or ``str.lower`` as many real servers do
    #: (:meth:`lowering`)
    fold: Callable[[str], str] = str.casefold
    people: tuple[str, ...] = PEOPLE  #: the people the site has a profile for
    served: list[Served] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- composing

    @classmethod
    def lowering(cls, *people: str, **options: Any) -> LenientPeople:
        """The site as a server that compares handles by ``str.lower`` serves it: ``straße`` and ``strasse`` are
        two accounts (``people``, added to :data:`PEOPLE`), where full case folding reads one."""
        return cls(fold=str.lower, people=(*PEOPLE, *people), **options)

    def page(self, path: str, html_body: str) -> LenientPeople:
        """Serve ``html_body`` at ``path`` (on every host of the site)."""
        self.pages[path] = html_body
        return self

    def links_page(self, path: str, hrefs: Iterable[str]) -> LenientPeople:
        """A page whose ``a.link`` anchors carry ``hrefs`` exactly as written."""
        anchors = "\n".join(f'<a class="link" href="{html.escape(h, quote=True)}">{i}</a>' for i, h in enumerate(hrefs))
        return self.page(path, f"<html><body>{anchors}</body></html>")

    # -- the served log

    def people_served(self) -> list[str]:
        return [s.person for s in self.served if s.person is not None]

    def times_served(self, person: str) -> list[float]:
        return [s.time for s in self.served if s.person == person]

    def robots_fetches(self) -> list[Served]:
        return [s for s in self.served if s.kind == "robots"]

    def describe(self) -> str:
        """The served log, for failure messages."""
        return "\n".join(f"  {s.time:.2f} {s.host} {s.target} -> {s.kind} {s.person or ''}" for s in self.served)

    # -- answering

    def read_path(self, raw_path: str, query: str) -> tuple[str, str]:
        """The path and query this server routes, from the raw ones (another server's reading: a subclass)."""
        return lenient_path(raw_path), query

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        path, query = self.read_path(request.path, request.query)
        if self.any_host or request.host in self.hosts or request.host in self.robots:
            kind, person = _route(path, query, request.body, self.fold, self.people)
            kind, response = self._answer(request, path, kind, person)
        else:
            kind, person, response = "unknown-host", None, Response.text(f"no site at {request.host}\n", 502)
        with self._lock:
            self.served.append(Served(request.time, request.host, request.target, path, request.query, kind,
                                      person, response.status))
        return response

    def _answer(self, request: LoggedRequest, path: str, kind: str, person: str | None) -> tuple[str, Response]:
        if kind == "robots":
            return kind, self.robots.get(request.host, self.default_robots).response()
        if kind == "profile" and person is not None:
            return kind, Response.html(_profile_html(person, refusing=person in self.refusing))
        if kind == "missing":
            return kind, Response.html("<html><body>no such person</body></html>", 404)
        if path in self.pages:
            page = self.pages[path]
            return "page", Response.html(page) if isinstance(page, str) else page(request)
        if path.casefold() == "/people":
            number = (parse_qs(request.query).get("page") or ["1"])[-1]
            hrefs = self.listing.get(int(number) if number.isdigit() else 0)
            if hrefs is None:
                return "listing", Response.html("<html><body>no such page</body></html>", 404)
            items = "\n".join(f'<li><a class="profile-link" href="{html.escape(h, quote=True)}">{html.escape(h)}</a>'
                              "</li>" for h in hrefs)
            return "listing", Response.html(f"<html><body><ul>{items}</ul></body></html>")
        if path.casefold() == "/redirect":
            return "redirect", Response.redirect((parse_qs(request.query).get("to") or ["/"])[-1], 302)
        return "other", Response.html("<html><body>not found</body></html>", 404)


@contextmanager
def once_served(app: LenientPeople, person: str, action: Callable[[], None], after: float = 0.5) -> Iterator[None]:
    """Call ``action`` from another thread ``after`` seconds after the server first served ``person``: mid-crawl,
    however long the crawl took to start on a busy machine (a fixed timer fires before it on a loaded one)."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if app.times_served(person):
                if not stop.wait(after):
                    action()
                return
            stop.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def _profile_html(person: str, *, refusing: bool = False) -> str:
    if refusing:  # the person's own card (microformats h-card) says, in their bio, that they refuse
        return (f'<html><body><div class="h-card profile" data-subject="{person}"><h1 class="name p-name">'
                f'{secret_name(person)}</h1><p class="p-note">Please do not scrape me. #nobot</p>'
                f'<a class="related" href="/u/102">a friend</a></div></body></html>')
    return (f'<html><body><div class="profile" data-subject="{person}"><h1 class="name">{secret_name(person)}</h1>'
            f'<a class="related" href="/u/102">a friend</a></div></body></html>')


# --------------------------------------------------------------------------- configuration

PLATFORMS_YAML = f"""\
platforms:
  people:
    domains: [{HOST}]
    authorization: {{purposes: [research], reference: "test agreement", valid_from: 2026-01-01,
                    valid_until: 2030-01-01}}
    profiles: ["/u/{{subject}}", "/@{{subject}}", "/profile.php?id={{subject}}"]
    subject: "[A-Za-z0-9_]+"
"""

#: authorized for research, granted 2026-01-01, no expiry
AUTHORIZED = ("101", "102", "103", "alice")


def iso(t: datetime | float) -> str:
    """An ISO-8601 UTC time for the YAML files (whole seconds, rounded down)."""
    if not isinstance(t, datetime):
        t = datetime.fromtimestamp(t, timezone.utc)
    return t.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_yaml(subject: str, *, granted_at: str = "2026-01-01T00:00:00Z", expires_at: str | None = None,
                revoked_at: str | None = None, purposes: str = "[research]", evidence: str = "test consent") -> str:
    lines = ["  - platform: people", f'    subject: "{subject}"', f"    purposes: {purposes}",
             f"    granted_at: {granted_at}"]
    if expires_at:
        lines.append(f"    expires_at: {expires_at}")
    if revoked_at:
        lines.append(f"    revoked_at: {revoked_at}")
    lines.append(f'    evidence: "{evidence}"')
    return "\n".join(lines) + "\n"


def write_config(directory: Path, records: Iterable[str] | None = None) -> tuple[Path, Path]:
    """Write ``platforms.yaml`` and ``authorizations.yaml`` into ``directory``; returns their paths.

    ``records`` are :func:`record_yaml` blocks; by default :data:`AUTHORIZED` for research, without expiry.
    """
    if records is None:
        records = [record_yaml(s) for s in AUTHORIZED]
    platforms = directory / "platforms.yaml"
    authorizations = directory / "authorizations.yaml"
    platforms.write_text(PLATFORMS_YAML)
    authorizations.write_text("authorizations:\n" + "".join(records))
    return platforms, authorizations


def people_settings(tmp_path: Path, records: Iterable[str] | None = None, **overrides: Any) -> dict[str, Any]:
    """:func:`tests.conftest.consent_settings` for the people platform, its config written in ``tmp_path``."""
    platforms, authorizations = write_config(tmp_path, records)
    return consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=str(platforms),
                            CONSENTCRAWL_AUTHORIZATIONS=str(authorizations), DOWNLOAD_TIMEOUT=5, **overrides)


# --------------------------------------------------------------------------- spiders and crawls

KINDS = ("ConsentSpider", "ADDONS")


def make_spider(kind: str, logic: type, name: str | None = None) -> type[scrapy.Spider]:
    """``logic`` (a mixin with ``start`` and callbacks) as a ConsentSpider subclass or a plain spider + ADDONS."""
    name = name or logic.__name__.lower()
    if kind == "ConsentSpider":
        return type(f"Consent{logic.__name__}", (logic, ConsentSpider), {"name": name, "purpose": "research"})
    if kind == "ADDONS":
        return type(f"Plain{logic.__name__}", (logic, scrapy.Spider),
                    {"name": name, "custom_settings": {"ADDONS": {"consentcrawl.Addon": 0}}})
    raise ValueError(kind)


class ListLogic:
    """Fetches ``urls`` in order (a number in the list: sleep that long), follows ``a.link`` / ``a.profile-link``.

    Every callback run is recorded in ``seen`` (``response.url``); profile pages yield
    ``{"url": ..., "name": ...}`` items (no subject field: the guard pipeline cannot hide a leak).
    """

    urls: list[Any] = []
    seen: list[str]
    follow_links: bool = True

    async def start(self) -> Any:
        for url in self.urls:
            if isinstance(url, (int, float)):
                await asyncio.sleep(url)
            elif isinstance(url, scrapy.Request):
                yield url
            else:
                yield scrapy.Request(url, callback=self.parse, dont_filter=True)

    def parse(self, response: scrapy.http.Response) -> Any:
        self.seen.append(response.url)
        name = response.css(".name::text").get()
        if name:
            yield {"url": response.url, "name": name}
        if self.follow_links and isinstance(response, scrapy.http.TextResponse):
            for href in response.css("a.link::attr(href), a.profile-link::attr(href)").getall():
                yield response.follow(href, callback=self.parse)


@dataclass
class Crawl:
    items: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    stats: dict[str, Any]
    audit: list[dict[str, Any]]
    crawler: Any
    seen: list[str]
    components: dict[str, list[str]]  #: class paths of the downloader middlewares and extensions, as the crawl ran
    started: float  #: time.time() when the spider opened

    def audit_for(self, path: str, **fields: Any) -> list[dict[str, Any]]:
        """Audit lines whose URL is on the people site and ends with ``path`` (and match ``fields``)."""
        return [e for e in self.audit if (e.get("url") or "").endswith(path)
                and all(e.get(k) == v for k, v in fields.items())]

    def denies(self) -> list[tuple[str, str, str]]:
        return [(e.get("phase"), e.get("url"), e.get("reason")) for e in self.audit if e.get("verdict") == "deny"]


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


async def crawl(spidercls: type[scrapy.Spider], settings: dict[str, Any], *, proxy: str | None,
                monkeypatch: pytest.MonkeyPatch, **spider_kwargs: Any) -> Crawl:
    """Run one real crawl in this process (like :func:`tests.conftest.run_crawl`) and keep the crawler."""
    if proxy:
        monkeypatch.setenv("http_proxy", proxy)
    crawler = get_crawler(spidercls, settings)
    items: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    components: dict[str, list[str]] = {}
    seen: list[str] = spider_kwargs.setdefault("seen", [])
    started = [0.0]

    def opened(spider: Any = None) -> None:
        started[0] = time.time()
        engine = crawler.engine
        if engine is not None:
            components["downloader_middlewares"] = [_class_path(m) for m in engine.downloader.middleware.middlewares]
        if crawler.extensions is not None:
            components["extensions"] = [_class_path(m) for m in crawler.extensions.middlewares]

    crawler.signals.connect(lambda item, **kw: items.append(dict(item)), signal=signals.item_scraped, weak=False)
    crawler.signals.connect(lambda item, **kw: dropped.append(dict(item)), signal=signals.item_dropped, weak=False)
    crawler.signals.connect(opened, signal=signals.spider_opened, weak=False)
    await crawl_within_limit(crawler, **spider_kwargs)
    audit_path = settings.get("CONSENTCRAWL_AUDIT_LOG")
    audit = read_decisions(audit_path) if audit_path and Path(audit_path).is_file() else []
    assert crawler.stats is not None
    return Crawl(items, dropped, dict(crawler.stats.get_stats()), audit, crawler, seen, components, started[0])
