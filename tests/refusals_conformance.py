"""The conformance table of the refusals a person can publish on their own profile (issue #14), near-misses
included.

Each row is one profile page as a server serves it (status, content type, body; whether the crawler asked for
ActivityPub), the crawl's purpose, and the refusal forms expected to be found for that purpose (empty: the page
refuses nothing). ``tests/test_refusals_conformance.py`` runs every row through the pure reader, and all of them
at once through a real crawl of a local server, where a refused row must never become an item.

Sources: FEP-5feb (``indexable``, ``discoverable``: opt-in, missing is false); Mastodon's ActivityPub
documentation (``toot:suspended``, ``toot:memorial``, ``movedTo``, authorized fetch); Mastodon's profile HTML
(``<meta name="robots" content="noindex, noarchive">``, hashtags rendered as links); microformats2 h-card and the
representative h-card; the Bluesky lexicon ``com.atproto.label.defs#selfLabels`` and ``app.bsky.actor.defs``
(labels with ``src``); ``shared/reference/consent.md`` for the hashtags and word boundaries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

HOST = "social.example"
AP = "application/activity+json"
LD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
HTML = "text/html; charset=utf-8"
JSON = "application/json"


@dataclass(frozen=True)
class Row:
    id: str  #: also the person's id: the page is http://social.example/users/<id>
    kind: str  #: where the row comes from (a specification, a convention)
    body: str
    content_type: str = HTML
    encoding: str = "utf-8"  #: how the body is encoded on the wire (the content type names it)
    status: int = 200
    activitypub: bool = False  #: the crawler asked for ActivityPub (Accept)
    purpose: str = "research"
    expect: tuple[str, ...] = ()  #: refusal forms found that refuse ``purpose``, in order
    source: str = ""  #: what the row shows

    @property
    def url(self) -> str:
        return f"http://{HOST}/users/{self.id}"


def card(note: str, name: str = "Robin Example", extra: str = "", url: str | None = "self", head: str = "",
         rest: str = "") -> str:
    """A profile page whose representative h-card holds ``name`` and ``note`` (``url="self"``: its u-url)."""
    link = "" if url is None else f'<a class="u-url" href="{url}">@robin</a>'
    return (f"<!doctype html><html><head><title>Robin</title>{head}</head><body>"
            f'<div class="h-card">{link}<h1 class="p-name">{name}</h1><div class="p-note">{note}</div>{extra}</div>'
            f"{rest}</body></html>")


def actor(pid: str, **fields: Any) -> str:
    doc: dict[str, Any] = {"@context": ["https://www.w3.org/ns/activitystreams", {"toot": "http://joinmastodon.org/ns#",
                                                                                  "indexable": "toot:indexable"}],
                           "id": f"http://{HOST}/users/{pid}", "type": "Person", "preferredUsername": pid,
                           "name": "Robin", "summary": "<p>Gardener.</p>", "indexable": True, "discoverable": True}
    for key, value in fields.items():
        key = key.replace("__", ":")
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc)


def selfpage(rid: str, note: str, **kw: Any) -> Row:
    """A row whose h-card u-url is its own URL."""
    url = f"http://{HOST}/users/{rid}"
    return Row(rid, "h-card", card(note, url=url, **{k: kw.pop(k) for k in
                                                                   ("name", "extra", "head", "rest") if k in kw}),
               **kw)


DID = "did:plc:robin7xq"
OTHER_DID = "did:plc:moderator1"

ROWS: tuple[Row, ...] = (
    # -- hashtags in the profile's own fields ------------------------------------------------------------------
    selfpage("tag-bio", "Gardener. #nobot", expect=("hashtag.nobot",)),
    selfpage("tag-name", "Gardener.", name="Robin #nobot", expect=("hashtag.nobot",)),
    selfpage("tag-field", "Gardener.", extra='<dl><dt>Bots</dt><dd class="p-x-bots">#noindex</dd></dl>',
             expect=("hashtag.noindex",), source="h-card: any p-* property is a profile field"),
    selfpage("tag-nobridge", "no bridging please #nobridge", expect=("hashtag.nobridge",)),
    selfpage("tag-noarchive", "#noarchive", expect=("hashtag.noarchive",)),
    selfpage("tag-noarchive-search", "#noarchive", purpose="search-indexing",
             source="#noarchive does not refuse serving a search result"),
    selfpage("tag-token", "#noconsentcrawl thanks", expect=("hashtag.no-token",),
             source="#no<our product token>"),
    selfpage("tag-other-token", "#nogptbot", source="another crawler's token is not ours"),
    selfpage("tag-case", "Hello #NoBot", expect=("hashtag.nobot",), source="case does not matter"),
    selfpage("tag-link", 'Hi <a href="http://social.example/tags/nobot" class="mention hashtag" rel="tag">'
             "#<span>nobot</span></a>", expect=("hashtag.nobot",), source="Mastodon renders a bio hashtag as a link"),
    selfpage("tag-entity", "Gardener &#35;nobot", expect=("hashtag.nobot",),
             source="an HTML entity is the character the reader sees"),
    selfpage("tag-fullwidth", "Gardener \uff03\uff4e\uff4f\uff42\uff4f\uff54", expect=("hashtag.nobot",),
             source="NFKC"),
    selfpage("tag-shy", "Gardener #no\u00adbot", expect=("hashtag.nobot",),
             source="a soft hyphen is invisible: what is read is what is seen"),
    selfpage("tag-punct", "(#nobot).", expect=("hashtag.nobot",), source="punctuation ends a hashtag"),
    selfpage("tag-block", "<p>Gardener</p><p>#nobot</p>", expect=("hashtag.nobot",),
             source="paragraphs are apart: 'Gardener#nobot' would not be a hashtag"),
    # near-misses
    selfpage("miss-botany", "volunteer at #nobotanicalgardens, #nobotany fan", source="word boundary"),
    selfpage("miss-underscore", "#nobot_please", source="_ continues a hashtag"),
    selfpage("miss-word", "nobot and #bot and no#nobot", source="not a hashtag: after a letter"),
    selfpage("miss-url", "see https://example.org/faq#nobot and www.example.org/#noindex",
             source="a URL is not a hashtag"),
    selfpage("miss-link-text", 'my site: <a href="https://example.org/#nobot">https://example.org/#nobot</a>',
             source="a URL as link text"),
    selfpage("miss-href", '<a href="https://example.org/tags/nobot">my tags</a>', source="an href is not text"),
    selfpage("miss-double-entity", "Gardener &amp;#35;nobot",
             source="a double-escaped entity shows as '&#35;nobot', which is no hashtag"),
    Row("miss-quoted", "h-entry",
        card("Gardener.", url=f"http://{HOST}/users/miss-quoted",
             rest='<article class="h-entry"><div class="p-author h-card"><span class="p-name">Sam</span>'
                  '<p class="p-note">#nobot</p></div><div class="e-content">Sam wrote: #nobot</div></article>'),
        source="a #nobot quoted in someone else's post on the page is not this person's"),
    Row("miss-nested", "h-card", card("Gardener.", url=f"http://{HOST}/users/miss-nested",
                                      extra='<div class="p-author h-card"><p class="p-note">#nobot</p></div>'),
        source="a microformat nested in the card is someone else's"),
    Row("miss-other-card", "representative h-card",
        "<html><body>"
        '<div class="h-card"><a class="u-url" href="http://social.example/users/sam">Sam</a>'
        '<p class="p-note">#nobot</p></div>'
        f'<div class="h-card"><a class="u-url" href="http://{HOST}/users/miss-other-card">Robin</a>'
        '<p class="p-note">Gardener.</p></div></body></html>',
        source="a 'who to follow' card of another person on the page"),
    Row("miss-only-other-card", "representative h-card",
        '<html><body><div class="h-card"><a class="u-url" href="http://social.example/users/sam">Sam</a>'
        '<p class="p-note">#nobot</p></div></body></html>',
        source="the page's only card names another URL: it is not the page's person"),
    Row("tag-card-no-url", "representative h-card", card("#nobot", url=None), expect=("hashtag.nobot",),
        source="the page's only top-level card, naming no URL, is the page's person"),
    # several cards, none naming the page: whose is which cannot be told, so a refusal in any denies
    Row("tag-two-cards-no-url", "representative h-card: ambiguous",
        '<html><body><div class="h-card"><h1 class="p-name">Robin</h1><p class="p-note">#nobot</p></div>'
        '<div class="h-card"><span class="p-name">Sam</span><p class="p-note">Gardener.</p></div></body></html>',
        expect=("hashtag.nobot",), source="two top-level cards, no URL: the refusal may be the person's"),
    Row("tag-two-cards-second", "representative h-card: ambiguous",
        '<html><body><div class="h-card"><span class="p-name">Sam</span><p class="p-note">Gardener.</p></div>'
        '<div class="h-card"><h1 class="p-name">Robin</h1><p class="p-note">#nobot</p></div></body></html>',
        expect=("hashtag.nobot",), source="the second of two: read as the first"),
    Row("tag-card-no-url-beside-other", "representative h-card: ambiguous",
        '<html><body><div class="h-card"><a class="u-url" href="http://social.example/users/sam">Sam</a>'
        '<p class="p-note">Gardener.</p></div>'
        '<div class="h-card"><h1 class="p-name">Robin</h1><p class="p-note">#nobot</p></div></body></html>',
        expect=("hashtag.nobot",), source="a card naming no URL beside another person's: it may be this person's"),
    Row("miss-two-cards-other-urls", "representative h-card",
        '<html><body><div class="h-card"><a class="u-url" href="http://social.example/users/sam">Sam</a>'
        '<p class="p-note">#nobot</p></div>'
        '<div class="h-card"><a class="u-url" href="http://social.example/users/kim">Kim</a>'
        '<p class="p-note">#nobot</p></div></body></html>',
        source="cards naming other people's URLs are theirs"),
    Row("tag-card-in-feed", "h-feed", '<html><body><div class="h-feed"><div class="h-card"><h1 class="p-name">'
        'Robin</h1><p class="p-note">#nobot</p></div><article class="h-entry"><div class="p-author h-card">'
        '<span class="p-name">Robin</span></div><div class="e-content">Hello</div></article></div></body></html>',
        expect=("hashtag.nobot",), source="a feed wrapping the page does not make the profile card a nested one"),
    Row("miss-card-in-feed-entry", "h-feed", card("Gardener.", url=None, rest='<div class="h-feed">'
        '<article class="h-entry"><div class="p-author h-card"><p class="p-note">#nobot</p></div></article></div>'),
        source="a post's author card inside a feed is still inside its post"),
    # -- microformats1 vcard, read as h-card (microformats2's backward compatibility) ----------------------------
    Row("vcard-note", "microformats1 vcard",
        '<html><body><div class="vcard"><a class="url" href="http://social.example/users/vcard-note">@robin</a>'
        '<span class="fn">Robin</span><p class="note">Gardener. #nobot</p></div></body></html>',
        expect=("hashtag.nobot",), source="vcard note is h-card p-note"),
    Row("vcard-fn", "microformats1 vcard",
        '<html><body><div class="vcard"><span class="fn">Robin #noindex</span></div></body></html>',
        purpose="search-indexing", expect=("hashtag.noindex",), source="vcard fn is h-card p-name; no URL, one card"),
    Row("miss-vcard-in-hentry", "microformats1 vcard",
        '<html><body><div class="vcard"><a class="url" href="http://social.example/users/miss-vcard-in-hentry">'
        'Robin</a><p class="note">Gardener.</p></div><div class="hentry"><span class="author vcard">'
        '<span class="fn">Sam #nobot</span></span><div class="entry-content">#nobot</div></div></body></html>',
        source="an author vcard inside someone's hentry is not a top-level card"),
    Row("miss-vcard-other-url", "microformats1 vcard",
        '<html><body><div class="vcard"><a class="url" href="http://social.example/users/sam">Sam</a>'
        '<p class="note">#nobot</p></div></body></html>', source="a vcard naming another URL is that person's"),
    # -- a card nested in another microformat: the person's when it says so or nothing else can be theirs ---------
    Row("tag-resume-contact", "h-resume", '<html><body><div class="h-resume"><p class="p-summary">Gardener</p>'
        '<div class="p-contact h-card"><span class="p-name">Robin</span><p class="p-note">#nobot</p></div></div>'
        "</body></html>", expect=("hashtag.nobot",), source="a resume's p-contact is the person it is of"),
    Row("tag-lone-author", "h-entry", '<html><body><article class="h-entry"><div class="p-author h-card">'
        '<span class="p-name">Robin</span><p class="p-note">#nobot</p></div><div class="e-content">Hello</div>'
        "</article></body></html>", expect=("hashtag.nobot",),
        source="no card of the page's own: its posts' author card, naming no URL, may be the person's"),
    Row("tag-lone-author-beside-other", "h-entry", '<html><body><div class="h-card"><a class="u-url" '
        'href="http://social.example/users/sam">Sam</a></div><article class="h-entry"><div class="p-author h-card">'
        '<span class="p-name">Robin</span><p class="p-note">#nobot</p></div></article></body></html>',
        expect=("hashtag.nobot",), source="the only top-level card is another person's: as with none"),
    Row("tag-author-names-page", "h-entry", card("Gardener.", url=None, rest='<article class="h-entry">'
        f'<div class="p-author h-card"><a class="u-url" href="http://{HOST}/users/tag-author-names-page">me</a>'
        '<p class="p-note">#nobot</p></div></article>'), expect=("hashtag.nobot",),
        source="a nested card naming the page is the person's"),
    Row("tag-hcard-in-vcard", "microformats1 vcard", '<html><body><div class="vcard"><a class="url" '
        f'href="http://{HOST}/users/tag-hcard-in-vcard">@robin</a><span class="fn">Robin</span>'
        '<div class="h-card"><p class="p-note">#nobot</p></div></div></body></html>', expect=("hashtag.nobot",),
        source="an h-card with no property class inside the vcard is the same card written again"),
    Row("tag-vcard-adr", "microformats1 vcard", '<html><body><div class="vcard"><span class="fn">Robin</span>'
        '<span class="adr"><span class="locality">#nobot</span></span></div></body></html>',
        expect=("hashtag.nobot",), source="a vcard's adr is a text field (h-card p-adr)"),
    Row("tag-h-adr", "h-card", card("Gardener.", url=None, extra='<p class="p-adr h-adr">'
        '<span class="p-locality">#nobot</span></p>'), expect=("hashtag.nobot",),
        source="an h-adr is the card's own address, not another thing"),
    Row("miss-lone-author-other-url", "h-entry", '<html><body><article class="h-entry"><div class="p-author h-card">'
        '<a class="u-url" href="http://social.example/users/sam">Sam</a><p class="p-note">#nobot</p></div>'
        "</article></body></html>", source="a post's author card naming another URL is that person's"),
    Row("tag-utf16", "a UTF-16 page", card("Gardener #nobot", url=None), "text/html; charset=utf-16",
        encoding="utf-16", expect=("hashtag.nobot",)),
    Row("tag-og", "Mastodon 4 profile HTML (no h-card)",
        '<html><head><meta content="profile" property="og:type">'
        '<meta property="og:title" content="Robin (@robin@social.example)">'
        '<meta property="og:description" content="Gardener. #nobot"></head><body><div id="mastodon"></div>'
        "</body></html>", expect=("hashtag.nobot",)),
    Row("tag-og-and-card", "an og:type profile page with an h-card: both are the person's",
        card("Gardener.", url=None, head='<meta content="profile" property="og:type">'
             '<meta property="og:description" content="Gardener. #nobot">'), expect=("hashtag.nobot",)),
    Row("tag-og-and-card-naming-page", "an og:type profile page with a card naming the page",
        card("Gardener.", url="http://social.example/users/tag-og-and-card-naming-page",
             head='<meta content="profile" property="og:type"><meta property="og:title" content="Robin #noindex">'),
        purpose="search-indexing", expect=("hashtag.noindex",)),
    Row("miss-og-article-and-card", "a post's page: its card is read, its og:description (the post) is not",
        card("Gardener.", url=None, head='<meta content="article" property="og:type">'
             '<meta property="og:description" content="Sam says: #nobot">')),
    Row("miss-og-article", "Mastodon 4 post HTML: og:description is a post, not the bio",
        '<html><head><meta content="article" property="og:type">'
        '<meta property="og:description" content="Sam says: #nobot"></head><body></body></html>'),
    Row("miss-og-comment", "HTML comments are not text",
        card("Gardener. <!-- #nobot -->", url="http://social.example/users/miss-og-comment")),
    # -- meta robots on the profile page -----------------------------------------------------------------------
    Row("meta-noindex", "Mastodon noindex", card("Gardener.", url=None,
                                                 head='<meta name="robots" content="noindex, noarchive">'),
        purpose="search-indexing", expect=("meta-robots.noindex",)),
    Row("meta-noindex-research", "robots noindex does not speak about research",
        card("Gardener.", url=None, head='<meta name="robots" content="noindex">')),
    Row("meta-token", "<meta name=TOKEN>", card("Gardener.", url=None,
                                                head='<meta name="consentcrawl" content="noarchive">'),
        purpose="archiving", expect=("meta-robots.noarchive",)),
    Row("meta-body", "a meta tag in the body: a spider's .css('meta[name=robots]') finds it there too",
        card('Gardener. <meta name="robots" content="noindex">', url=None), purpose="search-indexing",
        expect=("meta-robots.noindex",)),
    Row("miss-meta-body-escaped", "a meta tag written as text in the bio is not a tag",
        card('Gardener. &lt;meta name="robots" content="noindex"&gt;', url=None), purpose="search-indexing"),
    Row("miss-meta-body-comment", "a meta tag in a comment of the body is not a tag",
        card('Gardener. <!-- <meta name="robots" content="noindex"> -->', url=None), purpose="search-indexing"),
    # -- ActivityPub actors --------------------------------------------------------------------------------------
    Row("ap-open", "FEP-5feb", actor("ap-open"), AP, activitypub=True),
    Row("ap-indexable-false", "FEP-5feb", actor("ap-indexable-false", indexable=False), AP, activitypub=True,
        expect=("activitypub.indexable",)),
    Row("ap-indexable-missing", "FEP-5feb: missing is false", actor("ap-indexable-missing", indexable=...), LD,
        activitypub=True, expect=("activitypub.indexable",)),
    Row("ap-indexable-string", "only a JSON true opts in", actor("ap-indexable-string", indexable="true"), AP,
        activitypub=True, expect=("activitypub.indexable",)),
    Row("ap-indexable-archiving", "indexable speaks about search and TDM, not archiving",
        actor("ap-indexable-archiving", indexable=False), AP, activitypub=True, purpose="archiving"),
    Row("ap-discoverable", "Mastodon discoverable", actor("ap-discoverable", discoverable=False), AP,
        activitypub=True, purpose="search-indexing", expect=("activitypub.discoverable",)),
    Row("ap-discoverable-research", "discoverable does not speak about research",
        actor("ap-discoverable-research", discoverable=False), AP, activitypub=True),
    Row("ap-suspended", "toot:suspended", actor("ap-suspended", suspended=True), AP, activitypub=True,
        purpose="archiving", expect=("activitypub.suspended",)),
    Row("ap-memorial", "toot:memorial", actor("ap-memorial", toot__memorial=True), AP, activitypub=True,
        purpose="archiving", expect=("activitypub.memorial",)),
    Row("ap-moved", "movedTo", actor("ap-moved", movedTo="http://other.example/users/robin"), AP,
        activitypub=True, purpose="archiving", expect=("activitypub.moved",)),
    Row("ap-summary-tag", "a hashtag in the actor's summary",
        actor("ap-summary-tag", summary='<p>Gardener <a href="http://social.example/tags/nobot" rel="tag">'
                                        "#<span>nobot</span></a></p>"), AP, activitypub=True,
        expect=("hashtag.nobot",)),
    Row("ap-field-tag", "a hashtag in a profile field (PropertyValue)",
        actor("ap-field-tag", attachment=[{"type": "PropertyValue", "name": "bots", "value": "#noindex"}]), AP,
        activitypub=True, expect=("hashtag.noindex",)),
    Row("miss-ap-embedded", "indexable on another actor does not count",
        actor("miss-ap-embedded", indexable=True,
              attachment=[{"type": "Person", "id": "http://social.example/users/sam", "indexable": False,
                           "summary": "#nobot"}]), AP, activitypub=True),
    Row("miss-ap-note", "not an actor: nothing to read", json.dumps(
        {"@context": "https://www.w3.org/ns/activitystreams", "type": "Note", "id": "http://social.example/n/1",
         "content": "#nobot"}), AP, activitypub=True),
    Row("ap-401", "authorized fetch: not public", '{"error":"Request not signed"}', JSON, status=401,
        activitypub=True, purpose="archiving", expect=("activitypub.not-public",)),
    Row("miss-401-html", "a 401 to an HTML request is no ActivityPub statement", "Unauthorized", "text/plain",
        status=401),
    # -- Bluesky ---------------------------------------------------------------------------------------------------
    Row("bsky-view", "app.bsky.actor.defs#profileViewDetailed", json.dumps(
        {"did": DID, "handle": "robin.example", "labels": [
            {"src": DID, "uri": f"at://{DID}/app.bsky.actor.profile/self", "val": "!no-unauthenticated",
             "cts": "2026-01-01T00:00:00Z"}]}), JSON, expect=("bluesky.no-unauthenticated",)),
    Row("miss-bsky-other-src", "a label from a labeler is not the person's say", json.dumps(
        {"did": DID, "handle": "robin.example", "labels": [
            {"src": OTHER_DID, "uri": f"at://{DID}/app.bsky.actor.profile/self", "val": "!no-unauthenticated",
             "cts": "2026-01-01T00:00:00Z"}]}), JSON),
    Row("bsky-record", "com.atproto.repo.getRecord of app.bsky.actor.profile", json.dumps(
        {"uri": f"at://{DID}/app.bsky.actor.profile/self", "value": {
            "$type": "app.bsky.actor.profile", "displayName": "Robin",
            "labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "!no-unauthenticated"}]}}}),
        JSON, expect=("bluesky.no-unauthenticated",)),
    Row("bsky-description", "a hashtag in the Bluesky description", json.dumps(
        {"did": DID, "handle": "robin.example", "description": "Gardener #nobot"}), JSON, expect=("hashtag.nobot",)),
)
