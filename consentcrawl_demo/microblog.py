"""The bundled demo platform: a small, deterministic "microblog" served by :class:`LocalServer`.

Hosts ``microblog.example``, ``www.microblog.example`` and ``m.microblog.example`` (the mobile site: same data,
slightly different HTML). Pages:

- ``/robots.txt``: disallows ``/search``, ``/u/*/followers`` and ``/private/`` for everyone, plus a sitemap line.
- ``/``: links to the listing pages; ``/people?page=N``: 25 people per page, ``rel="next"``/``rel="prev"`` links.
  Each entry is ``<li class="person" data-subject="ID"><a class="profile-link" href="...">NAME</a></li>``; the
  hrefs cycle through five spellings on purpose: absolute ``http://microblog.example/u/ID``, relative
  ``/u/ID/``, protocol-relative ``//m.microblog.example/u/ID``, percent-escaped ``/u/%31%30...`` and
  ``/profile/ID`` (a 301 to ``http://microblog.example/u/ID``).
- ``/u/ID``: the profile, ``data-subject`` on the wrapper and the fields in elements of class ``name``, ``bio``,
  ``followers`` and ``location``; the wrapper is the page's microformats ``h-card`` (``p-name``, ``p-note``,
  ``p-locality``), which is where a person's refusal in their bio is read; five ``a.related`` links to other
  people (mixed spellings) and an ``a.followers-link`` to ``/u/ID/followers`` (robots-disallowed, but served).
- ``/profile/ID`` 301 → ``http://microblog.example/u/ID``; ``/go?to=URL`` 302 → URL (an open redirect);
  ``/search?q=``, ``/private/``, ``/about``, ``/sitemap.xml``; anything else 404; other hosts 502.

A few bios carry ``#nobot`` (a person's refusal); one carries the look-alike ``#nobotanicalgardens``, which is not.
Paths are routed percent-decoded, case-insensitively, with repeated slashes merged, as many real servers do.
"""

from __future__ import annotations

import html
import random
import re
from itertools import product
from urllib.parse import parse_qs, quote

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response

__all__ = ["MicroblogSite", "serve"]

MAIN_HOST = "microblog.example"
MOBILE_HOST = "m.microblog.example"
HOSTS = (MAIN_HOST, "www.microblog.example", MOBILE_HOST)
PAGE_SIZE = 25
#: The five link spellings, in the order listing pages cycle through them.
LINK_STYLES = ("absolute", "relative", "mobile", "escaped", "legacy")

ROBOTS_TXT = f"""\
# robots.txt for {MAIN_HOST}
User-agent: *
Disallow: /search
Disallow: /u/*/followers
Disallow: /private/
Allow: /

User-agent: GPTBot
Disallow: /

Sitemap: http://{MAIN_HOST}/sitemap.xml
"""

_FIRST = (
    "Ada Alan Amara Anders Aiko Beatriz Bruno Chen Chiara Dario Dmitri Elif Emeka Farah Felix Greta Hana Hugo Ines "
    "Ivan Jonas Kaito Lena Luca Maja Malik Marta Nadia Niko Omar Oskar Priya Rafael Rosa Sami Sofia Tariq Ulla Yara "
    "Zoe"
).split()
_LAST = (
    "Abara Berg Castillo Dubois Eriksen Ferreira Gallo Haddad Ishikawa Jansen Kowalski Lindqvist Moreau Novak "
    "Okafor Petrov Quinn Rossi Santos Tanaka Uysal Varga Weber Xu Yilmaz Zhang Andersen Bauer Costa Dimitrov Egger "
    "Fischer Garcia Horvat Ivanova Kaur Laine Meyer Nilsen Ortiz"
).split()
_CITIES = (
    "Lisbon",
    "Ghent",
    "Tallinn",
    "Lyon",
    "Bologna",
    "Kraków",
    "Porto",
    "Aarhus",
    "Graz",
    "Valencia",
    "Utrecht",
    "Tampere",
    "Bergen",
    "Leipzig",
    "Ljubljana",
    "Nantes",
)
_ROLES = (
    "Birdwatcher",
    "Amateur astronomer",
    "Baker",
    "Cyclist",
    "Retired teacher",
    "Software tester",
    "Urban gardener",
    "Jazz pianist",
    "Nurse",
    "Chess coach",
    "Librarian",
    "Potter",
    "Marine biologist",
    "Translator",
    "Bus driver",
    "PhD student",
)
_TOPICS = (
    "sourdough",
    "trail running",
    "old maps",
    "rare moths",
    "film cameras",
    "tide pools",
    "board games",
    "street food",
    "folk music",
    "bicycle repair",
    "houseplants",
    "local history",
)
_NOBOT_BIOS = (
    "{role} who posts about {topic}. Please do not scrape me. #nobot",
    "#nobot {role}, {topic} enthusiast, opinions my own.",
    "{role} in {city}. Into {topic} and tea. #NoAI #nobot",
)
_DECOY_BIO = "{role} in {city}; volunteer at #nobotanicalgardens and a fan of {topic}."


class MicroblogSite:
    """The demo platform as an app for :class:`~consentcrawl_demo.server.LocalServer`. Same seed, same site."""

    def __init__(self, n_profiles: int = 300, seed: int = 2026, first_id: int = 1001) -> None:
        if n_profiles < 6:
            raise ValueError("n_profiles must be at least 6")
        self.seed = seed
        rng = random.Random(seed)
        self.subject_ids: list[str] = [str(first_id + i) for i in range(n_profiles)]
        names = [f"{first} {last}" for first, last in product(_FIRST, _LAST)]
        rng.shuffle(names)
        special = rng.sample(self.subject_ids, k=max(2, n_profiles // 50) + 1)
        self.nobot_subjects: list[str] = sorted(special[1:], key=int)  #: bios carrying ``#nobot``
        self.decoy_subject: str = special[0]  #: bio has ``#nobotanicalgardens``, which is not a refusal
        self._profiles: dict[str, dict[str, object]] = {}
        self._related: dict[str, list[str]] = {}
        for index, subject in enumerate(self.subject_ids):
            topic, other_topic = rng.sample(_TOPICS, 2)
            words = {"role": rng.choice(_ROLES), "topic": topic, "city": rng.choice(_CITIES)}
            if subject in self.nobot_subjects:
                bio = rng.choice(_NOBOT_BIOS).format(**words)
            elif subject == self.decoy_subject:
                bio = _DECOY_BIO.format(**words)
            else:
                bio = f"{words['role']}. Mostly {topic}, sometimes {other_topic}."
            name = names[index % len(names)] + ("" if index < len(names) else f" {index // len(names) + 1}")
            self._profiles[subject] = {
                "name": name,
                "bio": bio,
                "followers": int(rng.lognormvariate(5, 1.6)),
                "location": words["city"],
            }
        for subject in self.subject_ids:
            others = [s for s in self.subject_ids if s != subject]
            self._related[subject] = rng.sample(others, 5)

    # data

    def profile(self, subject: str | int) -> dict[str, object]:
        """A copy of one person's data: ``name``, ``bio``, ``followers`` (int), ``location``. KeyError if unknown."""
        return dict(self._profiles[str(subject)])

    def related(self, subject: str | int) -> list[str]:
        """The five people linked from a profile page, in page order."""
        return list(self._related[str(subject)])

    def followers_of(self, subject: str | int) -> list[str]:
        """The people listed on ``/u/ID/followers`` (a robots-disallowed page)."""
        start = self.subject_ids.index(str(subject))
        return [self.subject_ids[(start + k * 7) % len(self.subject_ids)] for k in range(1, 11)]

    @property
    def n_pages(self) -> int:
        return (len(self.subject_ids) + PAGE_SIZE - 1) // PAGE_SIZE

    def page_of(self, subject: str | int) -> int:
        """The listing page (``/people?page=N``) a person appears on."""
        return self.subject_ids.index(str(subject)) // PAGE_SIZE + 1

    @staticmethod
    def url(subject: str | int) -> str:
        """The canonical profile URL, ``http://microblog.example/u/ID``."""
        return f"http://{MAIN_HOST}/u/{subject}"

    @staticmethod
    def link(subject: str | int, style: str) -> str:
        """The href for a profile in one of :data:`LINK_STYLES`."""
        subject = str(subject)
        if style == "absolute":
            return f"http://{MAIN_HOST}/u/{subject}"
        if style == "relative":
            return f"/u/{subject}/"
        if style == "mobile":
            return f"//{MOBILE_HOST}/u/{subject}"
        if style == "escaped":
            return "/u/" + "".join(f"%{byte:02X}" for byte in subject.encode())
        if style == "legacy":
            return f"/profile/{subject}"
        raise ValueError(f"unknown link style {style!r}")

    # the app

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        host = request.host
        if host not in HOSTS:
            return Response.text(f"502 Bad Gateway: unknown host {host!r}\n", 502)
        mobile = host == MOBILE_HOST
        path = re.sub("/{2,}", "/", request.decoded_path).lower()
        query = parse_qs(request.query)
        if path == "/robots.txt":
            return Response.text(ROBOTS_TXT)
        if path == "/":
            return self._page("Microblog", self._home(), mobile)
        if path in ("/people", "/people/"):
            return self._people(query, mobile)
        if path == "/go":
            target = query.get("to", [""])[0]
            return Response.redirect(target, 302) if target else Response.text("missing ?to=\n", 400)
        if path in ("/search", "/search/"):
            return self._search(query.get("q", [""])[0], mobile)
        if path.startswith("/private/") or path == "/private":
            return self._page("Private", "<p>Members only. Nothing to see here.</p>", mobile)
        if path == "/about":
            return self._page("About", "<p>Microblog is a demo platform for consentcrawl.</p>", mobile)
        if path == "/sitemap.xml":
            return self._sitemap()
        match = re.fullmatch(r"/profile/([^/]+)/?", path)
        if match and match.group(1) in self._profiles:
            return Response.redirect(self.url(match.group(1)), 301)
        match = re.fullmatch(r"/u/([^/]+)(/followers)?/?", path)
        if match and match.group(1) in self._profiles:
            if match.group(2):
                return self._followers(match.group(1), mobile)
            return self._profile_page(match.group(1), mobile)
        return self._page("Not found", "<p>No such page.</p>", mobile, status=404)

    # pages

    def _page(self, title: str, body: str, mobile: bool, status: int = 200) -> Response:
        if mobile:
            doc = (
                '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{html.escape(title)} · Microblog mobile</title></head>\n"
                f'<body class="mobile"><header class="m-bar"><a href="/">Microblog</a></header>\n'
                f'<main class="m-main">\n{body}\n</main>\n'
                f'<footer><a href="http://{MAIN_HOST}/">Desktop site</a></footer></body></html>\n'
            )
        else:
            doc = (
                '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
                f"<title>{html.escape(title)} · Microblog</title></head>\n"
                '<body><nav><a href="/">Home</a> <a href="/people?page=1">People</a> <a href="/search">Search</a> '
                '<a href="/about">About</a></nav>\n'
                f'<div id="content">\n{body}\n</div>\n'
                "<footer>Microblog demo platform</footer></body></html>\n"
            )
        return Response.html(doc, status)

    def _home(self) -> str:
        pages = "\n".join(
            f'<li><a class="people-page" href="/people?page={n}">People, page {n}</a></li>'
            for n in range(1, self.n_pages + 1)
        )
        featured = self.subject_ids[len(self.subject_ids) // 2]
        return (
            "<h1>Welcome to Microblog</h1>\n"
            f'<ul class="pages">\n{pages}\n</ul>\n'
            f'<p class="featured"><a href="/go?to={quote(self.url(featured), safe="")}">Featured person</a></p>'
        )

    def _people(self, query: dict[str, list[str]], mobile: bool) -> Response:
        raw = query.get("page", ["1"])[0]
        if not raw.isdigit() or not 1 <= int(raw) <= self.n_pages:
            return self._page("Not found", "<p>No such page.</p>", mobile, status=404)
        page = int(raw)
        chunk = self.subject_ids[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        items = []
        for position, subject in enumerate(chunk):
            href = self.link(subject, LINK_STYLES[position % len(LINK_STYLES)])
            name = html.escape(str(self._profiles[subject]["name"]))
            items.append(
                f'<li class="person" data-subject="{subject}">'
                f'<a class="profile-link" href="{html.escape(href)}">{name}</a></li>'
            )
        nav = []
        if page > 1:
            nav.append(f'<a rel="prev" href="/people?page={page - 1}">Previous</a>')
        if page < self.n_pages:
            nav.append(f'<a rel="next" href="/people?page={page + 1}">Next</a>')
        tag = "ol" if mobile else "ul"
        body = (
            f"<h1>People, page {page} of {self.n_pages}</h1>\n"
            f'<{tag} class="people">\n' + "\n".join(items) + f"\n</{tag}>\n"
            f'<p class="pager">{" ".join(nav)}</p>'
        )
        return self._page(f"People, page {page}", body, mobile)

    def _profile_page(self, subject: str, mobile: bool) -> Response:
        data = self._profiles[subject]
        name, bio = html.escape(str(data["name"])), html.escape(str(data["bio"]))
        links = []
        for position, other in enumerate(self._related[subject]):
            style = LINK_STYLES[(position + int(subject)) % len(LINK_STYLES)]
            other_name = html.escape(str(self._profiles[other]["name"]))
            links.append(f'<li><a class="related" href="{html.escape(self.link(other, style))}">{other_name}</a></li>')
        related = "\n".join(links)
        followers_link = f'<a class="followers-link" href="/u/{subject}/followers">Followers</a>'
        if mobile:
            body = (
                f'<div class="m-profile h-card" data-subject="{subject}">\n'
                f'<h2 class="name p-name">{name}</h2>\n<div class="bio p-note">{bio}</div>\n'
                f'<div class="stats"><b class="followers">{data["followers"]}</b> followers · '
                f'<i class="location p-locality">{html.escape(str(data["location"]))}</i> · {followers_link}</div>\n'
                f'</div>\n<h3>Also here</h3>\n<ul class="m-related">\n{related}\n</ul>'
            )
        else:
            body = (
                f'<article class="profile h-card" data-subject="{subject}">\n'
                f'<h1 class="name p-name">{name}</h1>\n<p class="bio p-note">{bio}</p>\n'
                f'<dl><dt>Followers</dt><dd><span class="followers">{data["followers"]}</span> {followers_link}</dd>\n'
                f'<dt>Location</dt><dd><span class="location p-locality">'
                f'{html.escape(str(data["location"]))}</span></dd></dl>\n'
                f'</article>\n<aside><h2>Who to follow</h2>\n<ul class="related">\n{related}\n</ul></aside>'
            )
        return self._page(str(data["name"]), body, mobile)

    def _followers(self, subject: str, mobile: bool) -> Response:
        items = "\n".join(
            f'<li><a href="/u/{other}">{html.escape(str(self._profiles[other]["name"]))}</a></li>'
            for other in self.followers_of(subject)
        )
        name = html.escape(str(self._profiles[subject]["name"]))
        return self._page(f"Followers of {name}", f"<h1>Followers of {name}</h1>\n<ul>\n{items}\n</ul>", mobile)

    def _search(self, q: str, mobile: bool) -> Response:
        q = q.strip().lower()
        hits = [s for s in self.subject_ids if q and q in str(self._profiles[s]["name"]).lower()][:PAGE_SIZE]
        items = "\n".join(f'<li><a href="/u/{s}">{html.escape(str(self._profiles[s]["name"]))}</a></li>' for s in hits)
        form = '<form action="/search"><input name="q"><button>Search</button></form>'
        return self._page("Search", f'{form}\n<ul class="results">\n{items}\n</ul>', mobile)

    def _sitemap(self) -> Response:
        urls = [f"http://{MAIN_HOST}/"]
        urls += [f"http://{MAIN_HOST}/people?page={n}" for n in range(1, self.n_pages + 1)]
        urls += [self.url(s) for s in self.subject_ids]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            + "".join(f"  <url><loc>{html.escape(u)}</loc></url>\n" for u in urls)
            + "</urlset>\n"
        )
        return Response(200, {"Content-Type": "application/xml"}, body)


def serve(port: int = 0, n_profiles: int = 300, seed: int = 2026) -> LocalServer:
    """Start a :class:`LocalServer` for a fresh :class:`MicroblogSite` (the caller stops it)."""
    return LocalServer(MicroblogSite(n_profiles, seed), port=port).start()
