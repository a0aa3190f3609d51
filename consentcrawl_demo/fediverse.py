"""A small Mastodon-style server for the fediverse example spider, served by :class:`LocalServer`.

Host ``fedi.example``. Like Mastodon 4.2+, a person's pages answer HTML or ActivityPub by the ``Accept`` header:

- ``/robots.txt``: Mastodon's (``/media_proxy/`` and ``/interact/`` disallowed).
- ``/directory``: the profile directory, one ``<a class="profile" href="/@NAME">`` per person.
- ``/@NAME``: the profile. HTML: an ``h-card`` (``u-url``, ``p-name``, ``p-note``, the profile fields as
  ``p-x-field``), a pinned post as an ``h-entry`` (a post may quote someone's ``#nobot``: not the person's own say),
  ``<link rel="alternate" type="application/activity+json">``, and ``<meta name="robots" content="noindex,
  noarchive">`` for people who opted out of search engines. ``Accept: application/activity+json``: the actor.
- ``/users/NAME``: the actor (ActivityPub), or a 302 to ``/@NAME`` for a browser.
- ``/@NAME/posts``: their posts (HTML ``h-entry``s); ``/users/NAME/followers`` and ``/users/NAME/outbox``:
  ActivityPub collections.

The actor documents are what Mastodon serves: ``indexable`` and ``discoverable`` (opt-in), ``memorial``,
``suspended`` and ``movedTo`` when they apply, profile fields as ``PropertyValue`` attachments, bio hashtags in
``tag``. The people (:data:`PEOPLE`) cover every refusal form the server can show, and look-alikes that are none.

    python -m consentcrawl_demo.fediverse [--port 8766]   # serve it, as an HTTP proxy, until Ctrl-C
"""

from __future__ import annotations

import argparse
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

from consentcrawl_demo.server import LocalServer, LoggedRequest, Response, serve_until_interrupted

__all__ = ["HOST", "PEOPLE", "FediverseSite", "Person", "serve"]

HOST = "fedi.example"
BASE = f"http://{HOST}"
AP = "application/activity+json"

ROBOTS_TXT = """\
# See http://www.robotstxt.org/robotstxt.html for documentation on how to use the robots.txt file

User-agent: *
Disallow: /media_proxy/
Disallow: /interact/
"""


@dataclass(frozen=True)
class Person:
    name: str  #: the username: ``/@name``
    display: str
    bio: str  #: HTML, as Mastodon stores it
    fields: tuple[tuple[str, str], ...] = ()
    indexable: bool | None = True  #: None: the actor has no ``indexable`` (an older server)
    discoverable: bool = True
    noindex: bool = False  #: "opt out of search engine indexing": meta robots on the profile page
    suspended: bool = False
    memorial: bool = False
    moved_to: str | None = None
    pinned: str = ""  #: the text of a pinned post (may quote someone else)
    refuses_research: bool = False  #: for the tests and the README: whether the page refuses ``research``
    extra: dict[str, Any] = field(default_factory=dict)


def _tag(name: str) -> str:
    return (f'<a href="{BASE}/tags/{name}" class="mention hashtag" rel="tag">#<span>{name}</span></a>')


PEOPLE: tuple[Person, ...] = (
    Person("alice", "Alice Moreau", "<p>Marine biologist. Tide pools, mostly.</p>",
           (("Pronouns", "she/her"),)),
    Person("bob", "Bob Okafor", f"<p>Bus driver, board games. {_tag('nobot')}</p>", refuses_research=True),
    Person("carol", "Carol Xu", "<p>Translator. Please keep my posts out of search.</p>", indexable=False,
           refuses_research=True),
    Person("dave", "Dave Santos", "<p>Jazz pianist.</p>", noindex=True),  # noindex: search, not research
    Person("erin", "Erin Laine", "<p>Potter.</p>", suspended=True, refuses_research=True),
    Person("frank", "Frank Berg", "<p>Moved!</p>", moved_to="http://other.example/users/frank",
           refuses_research=True),
    Person("grace", "Grace Tanaka", "<p>Volunteer at #nobotanicalgardens.</p>"),  # a look-alike
    Person("heidi", "Heidi Varga", "<p>Librarian.</p>",
           pinned=f"Sam wrote: \u201cI put {_tag('nobot')} in my bio\u201d. Good idea, Sam!"),  # someone else's
    Person("ivan", "Ivan Rossi", "<p>Cyclist.</p>", (("Bots", "#noconsentcrawl"),), refuses_research=True),
    Person("judy", "Judy Haddad", "<p>Nurse.</p>", indexable=None, refuses_research=True),  # no indexable
    Person("kim", "Kim Weber", "<p>Chess coach. My site: https://kim.example/#nobot</p>"),  # a URL, no hashtag
)


def _actor(p: Person) -> dict[str, Any]:
    uri = f"{BASE}/users/{p.name}"
    doc: dict[str, Any] = {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1",
                     {"manuallyApprovesFollowers": "as:manuallyApprovesFollowers", "toot": "http://joinmastodon.org/ns#",
                      "featured": {"@id": "toot:featured", "@type": "@id"}, "movedTo": {"@id": "as:movedTo",
                                                                                        "@type": "@id"},
                      "discoverable": "toot:discoverable", "indexable": "toot:indexable",
                      "memorial": "toot:memorial", "suspended": "toot:suspended",
                      "PropertyValue": "schema:PropertyValue", "value": "schema:value",
                      "schema": "http://schema.org#"}],
        "id": uri, "type": "Person", "following": f"{uri}/following", "followers": f"{uri}/followers",
        "inbox": f"{uri}/inbox", "outbox": f"{uri}/outbox", "featured": f"{uri}/collections/featured",
        "preferredUsername": p.name, "name": p.display, "summary": p.bio, "url": f"{BASE}/@{p.name}",
        "manuallyApprovesFollowers": False, "discoverable": p.discoverable, "published": "2023-04-01T00:00:00Z",
        "memorial": p.memorial,
        "publicKey": {"id": f"{uri}#main-key", "owner": uri,
                      "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nMIIBIjAN...\n-----END PUBLIC KEY-----\n"},
        "tag": [{"type": "Hashtag", "href": f"{BASE}/tags/{t}", "name": f"#{t}"}
                for t in re.findall(r"/tags/(\w+)", p.bio)],
        "attachment": [{"type": "PropertyValue", "name": k, "value": v} for k, v in p.fields],
        "endpoints": {"sharedInbox": f"{BASE}/inbox"},
    }
    if p.indexable is not None:
        doc["indexable"] = p.indexable
    if p.suspended:
        doc["suspended"] = True
        doc["name"], doc["summary"], doc["attachment"] = "", "", []  # Mastodon empties a suspended profile
    if p.moved_to:
        doc["movedTo"] = p.moved_to
    return doc


class FediverseSite:
    """The server as an app for :class:`~consentcrawl_demo.server.LocalServer`."""

    def __init__(self, people: tuple[Person, ...] = PEOPLE) -> None:
        self.people = {p.name: p for p in people}

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.host != HOST:
            return Response.text(f"502 Bad Gateway: unknown host {request.host!r}\n", 502)
        wants_ap = AP in headers.get("accept", "") or "activitystreams" in headers.get("accept", "")
        path = request.decoded_path
        if path == "/robots.txt":
            return Response.text(ROBOTS_TXT)
        if path == "/directory":
            return self._directory()
        m = re.fullmatch(r"/@([a-z0-9_]+)(/posts)?", path) or re.fullmatch(r"/users/([a-z0-9_]+)(/followers|/outbox)?",
                                                                          path)
        person = self.people.get(m.group(1)) if m else None
        if m is None or person is None:
            return Response.html("<h1>The page you are looking for isn't here.</h1>", 404)
        part = m.group(2)
        if part is None:
            if wants_ap:
                return Response(200, {"Content-Type": "application/activity+json; charset=utf-8"},
                                json.dumps(_actor(person)))
            if path.startswith("/users/"):
                return Response.redirect(f"{BASE}/@{person.name}", 302)
            return self._profile(person)
        if part == "/posts":
            return self._posts(person)
        kind = part[1:]
        return Response(200, {"Content-Type": "application/activity+json; charset=utf-8"}, json.dumps({
            "@context": "https://www.w3.org/ns/activitystreams", "id": f"{BASE}/users/{person.name}/{kind}",
            "type": "OrderedCollection", "totalItems": 3, "first": f"{BASE}/users/{person.name}/{kind}?page=1"}))

    def _page(self, title: str, body: str, head: str = "") -> Response:
        return Response.html(
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"{head}</head>\n<body>{body}</body></html>\n")

    def _directory(self) -> Response:
        items = "\n".join(f'<li><a class="profile" href="/@{p.name}">{html.escape(p.display)}</a></li>'
                          for p in self.people.values())
        return self._page("Profile directory", f"<h1>Profile directory</h1>\n<ul>\n{items}\n</ul>")

    def _profile(self, p: Person) -> Response:
        head = (f'<link href="{BASE}/users/{p.name}" rel="alternate" type="application/activity+json">'
                f'<meta content="profile" property="og:type">'
                f'<meta content="{html.escape(p.display)} (@{p.name}@{HOST})" property="og:title">')
        if p.noindex:
            head += '<meta name="robots" content="noindex, noarchive">'
        fields = "".join(f'<dt>{html.escape(k)}</dt><dd class="p-x-field">{html.escape(v)}</dd>' for k, v in p.fields)
        pinned = (f'<article class="h-entry"><div class="p-author h-card"><span class="p-name">{p.display}</span>'
                  f'</div><div class="e-content">{p.pinned}</div></article>') if p.pinned else ""
        body = (f'<div class="h-card account"><a class="u-url u-uid" href="{BASE}/@{p.name}">@{p.name}</a>'
                f'<h1 class="p-name">{html.escape(p.display)}</h1><div class="p-note">{p.bio}</div>'
                f'<dl>{fields}</dl></div>\n<h2>Pinned</h2>{pinned}\n'
                f'<p><a class="posts" href="/@{p.name}/posts">Posts</a> '
                f'<a class="followers" href="/users/{p.name}/followers">Followers</a></p>')
        return self._page(f"{p.display} (@{p.name}@{HOST})", body, head)

    def _posts(self, p: Person) -> Response:
        posts = "".join(f'<article class="h-entry"><div class="e-content"><p>Post {n} by {html.escape(p.display)}'
                        f"</p></div></article>" for n in range(1, 4))
        return self._page(f"Posts by {p.display}", f"<h1>Posts</h1>{posts}")


def serve(port: int = 0) -> LocalServer:
    """Start a :class:`LocalServer` for the fediverse demo (the caller stops it)."""
    return LocalServer(FediverseSite(), port=port).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consentcrawl_demo.fediverse", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args(argv)
    server = serve(args.port)
    print(f"fediverse demo on {server.proxy}; in another terminal, from the repository root:\n"
          f"  http_proxy={server.proxy} scrapy crawl fediverse -O output/fediverse.jsonl\nCtrl-C stops it.")
    return serve_until_interrupted(server)


if __name__ == "__main__":
    raise SystemExit(main())
