"""Run a crawl (or ``consentcrawl check``) in a fresh interpreter and report what it imported.

    python tests/import_probe.py crawl SETTINGS_JSON
    python tests/import_probe.py check URL ARGS...

Prints one JSON object: the ``consentcrawl_demo`` modules loaded, and every HTTP server class a non-standard-library
module defines. Scrapy itself loads ``http.server`` (through ``xmlrpc.server``), so "no server" means no server
class of anyone's own, not an absent stdlib module. Imports only the standard library at module level, so that
what it reports is what the crawl loaded.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def demo_modules() -> list[str]:
    return sorted(name for name in sys.modules if name == "consentcrawl_demo" or name.startswith("consentcrawl_demo."))


def server_classes() -> list[str]:
    """``module.Class`` of every class outside the standard library based on a socketserver or http.server class."""
    import socketserver
    from http.server import BaseHTTPRequestHandler

    bases = (socketserver.BaseServer, socketserver.BaseRequestHandler, BaseHTTPRequestHandler)
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] in sys.stdlib_module_names:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and issubclass(value, bases) and value.__module__ == name:
                found.append(f"{name}.{value.__qualname__}")
    return sorted(found)


def crawl(settings: dict[str, Any]) -> dict[str, Any]:
    from scrapy.crawler import CrawlerProcess

    import consentcrawl  # noqa: F401 - what a crawl imports first
    from spiders.microblog import MicroblogSpider

    process = CrawlerProcess(settings)
    process.crawl(MicroblogSpider)
    (crawler,) = process.crawlers
    process.start()
    assert crawler.stats is not None
    return {"allowed": crawler.stats.get_value("consentcrawl/allowed", 0)}


def check(argv: list[str]) -> dict[str, Any]:
    from consentcrawl.cli import main

    return {"exit": main(["check", *argv])}


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    result = crawl(json.loads(rest[0])) if mode == "crawl" else check(rest)
    result.update(demo_modules=demo_modules(), server_classes=server_classes())
    print("PROBE " + json.dumps(result))
