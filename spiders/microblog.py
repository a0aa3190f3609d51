"""The example spider: collect the profiles of the demo microblog's people, for research.

It is written like any Scrapy spider; being a ``ConsentSpider`` with ``purpose = "research"`` is all it takes for
every request to be checked against robots.txt, the platform's terms and each person's authorization.
Run it with ``consentcrawl demo``, or ``scrapy crawl microblog`` while ``consentcrawl demo --serve`` runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from scrapy import Request
from scrapy.http import Response

from consentcrawl import ConsentSpider


class MicroblogSpider(ConsentSpider):
    name = "microblog"
    purpose = "research"
    allowed_domains = ["microblog.example"]
    start_url = "http://microblog.example/people?page=1"

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.start_url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Request]:
        """A listing page: follow every profile link (whatever its spelling) and the next page."""
        for href in response.css("li.person a.profile-link::attr(href)").getall():
            yield response.follow(href, callback=self.parse_profile)
        next_page = response.css('a[rel="next"]::attr(href)').get()
        if next_page:
            yield response.follow(next_page, callback=self.parse)

    def parse_profile(self, response: Response) -> Iterator[Any]:
        """A profile: one item, then the people it links to and its followers page."""
        card = response.css("[data-subject]")
        yield {
            "subject": card.attrib["data-subject"],
            "name": card.css(".name::text").get(),
            "bio": card.css(".bio::text").get(),
            "followers": int(card.css(".followers::text").get("0")),
            "location": card.css(".location::text").get(),
            "url": response.url,
        }
        for href in response.css("a.related::attr(href)").getall():
            yield response.follow(href, callback=self.parse_profile)
        for href in response.css("a.followers-link::attr(href)").getall():
            yield response.follow(href, callback=self.parse_followers)

    def parse_followers(self, response: Response) -> Iterator[Request]:
        for href in response.css("li a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_profile)
