"""An example spider for a Mastodon-style server: each person's actor (ActivityPub), profile, posts and followers.

Every person of the demo server holds a live authorization record; what stops some of them is what they say on
their own profile: ``#nobot`` in a bio, ``"indexable": false`` (or missing) in their actor, a suspended or moved
account (docs/refusals.md). consentcrawl reads that in the response phase; the spider needs no code for it.

The spider schedules all of a person's pages at once, the actor first (a higher priority), as a crawler that
fetches in bulk does: when the actor refuses, the person's other requests are already waiting in the scheduler, in
the download slot or at send time behind their first page, and consentcrawl's send-time decision stops them. With
``CONSENTCRAWL_REFUSALS_LOG`` set, the next crawl does not fetch a person who refused at all.

Run it against the local server (``python -m consentcrawl_demo.fediverse``) from the repository root::

    http_proxy=http://127.0.0.1:8766 scrapy crawl fediverse -O output/fediverse.jsonl \\
        -s CONSENTCRAWL_REFUSALS_LOG=output/refusals.jsonl
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

from scrapy import Request
from scrapy.http import Response

from consentcrawl import ConsentSpider

SETTINGS = Path(__file__).resolve().parent.parent / "settings"
ACTIVITYPUB = "application/activity+json"


class FediverseSpider(ConsentSpider):
    name = "fediverse"
    purpose = "research"
    allowed_domains = ["fedi.example"]
    start_url = "http://fedi.example/directory"
    custom_settings: ClassVar[dict[str, Any]] = {
        "CONSENTCRAWL_PLATFORMS": [str(SETTINGS / "fediverse.yaml")],
        "CONSENTCRAWL_AUTHORIZATIONS": str(SETTINGS / "fediverse-authorizations.jsonl"),
        # polite when requests trickle in; Scrapy 2.19 (asyncio reactor) starts a burst queued in one slot at once
        # whatever this says. A person's other requests are held behind their actor by consentcrawl's first-page
        # gate at send time (docs/refusals.md), not by the slot.
        "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
    }

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.start_url, callback=self.parse_directory)

    def parse_directory(self, response: Response) -> Iterator[Request]:
        for href in response.css("a.profile::attr(href)").getall():
            name = href.rstrip("/").rpartition("@")[2]
            base = f"http://fedi.example/users/{name}"
            yield Request(base, headers={"Accept": ACTIVITYPUB}, callback=self.parse_actor, priority=10)
            yield response.follow(href, callback=self.parse_profile)
            yield response.follow(f"{href}/posts", callback=self.parse_posts)
            yield Request(f"{base}/followers", headers={"Accept": ACTIVITYPUB}, callback=self.parse_collection)

    def parse_actor(self, response: Response) -> Iterator[dict[str, Any]]:
        actor = json.loads(response.text)
        yield {"subject": actor["preferredUsername"], "platform": "fediverse", "kind": "actor",
               "name": actor.get("name"), "summary": actor.get("summary"),
               "fields": {f.get("name"): f.get("value") for f in actor.get("attachment", [])}}

    def parse_profile(self, response: Response) -> Iterator[dict[str, Any]]:
        card = response.css(".h-card.account")
        yield {"subject": response.url.rpartition("@")[2], "platform": "fediverse", "kind": "profile",
               "name": card.css(".p-name::text").get(), "note": " ".join(card.css(".p-note ::text").getall())}

    def parse_posts(self, response: Response) -> Iterator[dict[str, Any]]:
        subject = response.url.rsplit("/", 2)[1].lstrip("@")
        for post in response.css(".h-entry .e-content"):
            yield {"subject": subject, "platform": "fediverse", "kind": "post",
                   "text": " ".join(post.css("::text").getall())}

    def parse_collection(self, response: Response) -> Iterator[dict[str, Any]]:
        collection = json.loads(response.text)
        yield {"subject": response.url.rsplit("/", 2)[1], "platform": "fediverse", "kind": "followers",
               "total": collection.get("totalItems")}
