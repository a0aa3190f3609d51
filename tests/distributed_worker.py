"""One worker of a distributed crawl, run as its own process by tests/test_distributed.py:
``python -m tests.distributed_worker CONFIG.json``.

The configuration names the spider kind (``ConsentSpider``, or a plain spider with ``ADDONS``), the settings, and
the file each scraped item is appended to (one JSON line, flushed at once, so a killed worker's items are kept).
The platform is reached through the test's local server as the HTTP proxy (``http_proxy`` in the environment).
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import sys
import threading
from pathlib import Path
from typing import Any

import scrapy
from scrapy import signals
from scrapy.crawler import CrawlerProcess

from consentcrawl import ConsentSpider


class SeedLogic:
    """Profiles become items (``url``, ``name``); listing and profile links are followed."""

    name = "seedworker"

    def parse(self, response: scrapy.http.Response) -> Any:
        name = response.css(".name::text").get()
        if name:
            yield {"url": response.url, "name": name}
        if isinstance(response, scrapy.http.TextResponse):
            for href in response.css("a.link::attr(href), a.profile-link::attr(href), a.related::attr(href)").getall():
                yield response.follow(href, callback=self.parse)


class ConsentSeedWorker(SeedLogic, ConsentSpider):
    purpose = "research"


class DetailSeedWorker(ConsentSeedWorker):
    """A newer deploy of the spider: it has a callback the older one lacks."""

    def parse_detail(self, response: scrapy.http.Response) -> Any:
        yield from self.parse(response)


class PlainSeedWorker(SeedLogic, scrapy.Spider):
    custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}}


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    spidercls = {"ConsentSpider": ConsentSeedWorker, "Detail": DetailSeedWorker}.get(config["kind"], PlainSeedWorker)
    process = CrawlerProcess(config["settings"])
    crawler = process.create_crawler(spidercls)
    out = open(config["items"], "a", encoding="utf-8")

    def scraped(item: Any) -> None:
        out.write(json.dumps(dict(item)) + "\n")
        out.flush()

    crawler.signals.connect(scraped, signal=signals.item_scraped, weak=False)

    def closed() -> None:
        # a worker that has closed its spider but does not exit (seen once under a loaded full suite): after
        # 25 s its threads' stacks, asyncio tasks and reactor timers go to stderr, which the test shows
        loop = asyncio.get_running_loop()

        def dump() -> None:
            faulthandler.dump_traceback()
            for task in asyncio.all_tasks(loop):
                task.print_stack(file=sys.stderr)
            from twisted.internet import reactor

            for call in reactor.getDelayedCalls():  # type: ignore[attr-defined]
                print("pending reactor call:", call, file=sys.stderr)

        timer = threading.Timer(25, lambda: loop.call_soon_threadsafe(dump))
        timer.daemon = True
        timer.start()
        faulthandler.dump_traceback_later(30, exit=False)  # the threads' stacks even if the loop is stuck

    crawler.signals.connect(closed, signal=signals.spider_closed, weak=False)
    process.crawl(crawler)
    process.start()
    out.close()
    sys.exit(1 if crawler.stats and crawler.stats.get_value("finish_reason") != "finished" else 0)


if __name__ == "__main__":
    main(sys.argv[1])
