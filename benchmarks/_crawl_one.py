"""One benchmark crawl in this process, for ``crawl.py``: prints its measurements as one JSON line.

``python benchmarks/_crawl_one.py CONFIG --pages N --workdir DIR [--concurrent-items K] [--mode report]
[--calibrate-us B]``, with ``http_proxy`` pointing at ``platform_server.py``. CONFIG is ``a`` (plain Scrapy),
``b`` (``ROBOTSTXT_OBEY=True``) or ``c`` (consentcrawl, every stage on, an SQLite store ``DIR/store.db`` and the
audit log ``DIR/audit-*.jsonl``).

In ``c`` it also measures the CPU spent in consentcrawl's own code, two independent ways:

- *instrumented*: every entry point the add-on installs (the ``request_scheduled`` guard, both downloader
  middleware methods, the spider middleware, the guard pipeline, and the end-of-turn callback that writes the
  grouped audit lines and stats) is wrapped so that the time between entering our
  code and leaving it is charged to consentcrawl. Async methods are driven step by step, so time spent waiting
  (a robots.txt fetch) is not charged; in the spider middleware, time spent inside the spider's callback and the
  middlewares below is charged to them, not to us. Wall clock (``perf_counter``) between the switches: precise,
  but a preemption inside our code is charged to us.
- *sampled*: a ``SIGPROF`` timer on the process's CPU time (4 kHz) counts whose code is running. CPU, so
  preemption-proof, with sampling error (about ±1/sqrt(samples)).

``--calibrate-us B`` adds a downloader middleware that burns exactly B µs of thread CPU per request, accounted
like our code under its own name: both measurements must find B again (that validates them).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import scrapy  # noqa: E402
from platform_server import HOST  # noqa: E402
from scrapy import signals  # noqa: E402
from scrapy.crawler import CrawlerProcess  # noqa: E402
from scrapy.http import Response  # noqa: E402
from synthetic import NOW  # noqa: E402


class ProfilesSpider(scrapy.Spider):
    """The same spider for every configuration: listings -> profiles -> related profiles."""

    name = "bench-profiles"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield scrapy.Request(f"http://{HOST}/people?page=1", callback=self.parse)

    def parse(self, response: Response) -> Any:
        for href in response.css("li.person a.profile-link::attr(href)").getall():
            yield response.follow(href, callback=self.parse_profile)
        next_page = response.css('a[rel="next"]::attr(href)').get()
        if next_page:
            yield response.follow(next_page, callback=self.parse)

    def parse_profile(self, response: Response) -> Any:
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


# -- accounting: who is running right now --------------------------------------------------------------------


class Accounting:
    """Charges wall time between owner switches to the owner, and counts SIGPROF samples per owner."""

    def __init__(self) -> None:
        self.owner = "other"
        self.since = time.perf_counter_ns()
        self.wall_ns: dict[str, int] = {}
        self.samples: dict[str, int] = {}
        self.requests = 0
        self.calibration_requests = 0

    def switch(self, owner: str) -> str:
        now = time.perf_counter_ns()
        previous = self.owner
        self.wall_ns[previous] = self.wall_ns.get(previous, 0) + now - self.since
        self.owner, self.since = owner, now
        return previous

    def sample(self, signum: int, frame: Any) -> None:
        self.samples[self.owner] = self.samples.get(self.owner, 0) + 1

    def start_sampling(self, hz: int) -> None:
        signal.signal(signal.SIGPROF, self.sample)
        signal.setitimer(signal.ITIMER_PROF, 1 / hz, 1 / hz)

    def stop_sampling(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
        self.switch(self.owner)


ACCOUNTING = Accounting()


class GCTime:
    """Wall time CPython spends in cyclic garbage collection, per generation (``gc.callbacks``).

    A collection runs inside whichever code allocated the object that crossed the threshold, and collects
    everyone's garbage: it is charged to its own owner, "gc", not to the code it interrupted (which is noted in
    ``landed_ns``). What consentcrawl adds to the collections shows as the GC difference between (c) and (a).
    """

    def __init__(self) -> None:
        self.ns = [0, 0, 0]
        self.count = [0, 0, 0]
        self.landed_ns: dict[str, int] = {}
        self._start = 0
        self._interrupted = "other"

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
            self._interrupted = ACCOUNTING.switch("gc")
        else:
            generation = info["generation"]
            elapsed = time.perf_counter_ns() - self._start
            self.ns[generation] += elapsed
            self.count[generation] += 1
            owner = self._interrupted.partition("/")[0]
            self.landed_ns[owner] = self.landed_ns.get(owner, 0) + elapsed
            ACCOUNTING.switch(self._interrupted)


GC_TIME = GCTime()


class _Steps:
    """Await a coroutine (or async generator step) charging each of its steps to ``owner``; waits are not."""

    def __init__(self, owner: str, awaitable: Any) -> None:
        self.owner = owner
        self.awaitable = awaitable

    def __await__(self) -> Generator[Any, Any, Any]:
        inner, owner, switch = self.awaitable, self.owner, ACCOUNTING.switch
        if not hasattr(inner, "send"):
            inner = inner.__await__()
        value: Any = None
        error: BaseException | None = None
        while True:
            previous = switch(owner)
            try:
                if error is not None:
                    yielded = inner.throw(error)
                else:
                    yielded = inner.send(value)
            except StopIteration as stop:
                switch(previous)
                return stop.value
            except BaseException:
                switch(previous)
                raise
            switch(previous)
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # noqa: BLE001 - passed on into the coroutine, like a plain await
                value, error = None, exc


class _Others:
    """The ``result`` iterator given to a spider middleware: time inside it belongs to whoever produces it."""

    def __init__(self, result: AsyncIterator[Any]) -> None:
        self.result = result

    def __aiter__(self) -> _Others:
        return self

    async def __anext__(self) -> Any:
        return await _Steps("other", self.result.__anext__())


def _charged(owner: str, call: Callable[[], Any]) -> Any:
    previous = ACCOUNTING.switch(owner)
    try:
        return call()
    finally:
        ACCOUNTING.switch(previous)


def instrument(floor: bool = False) -> None:
    """Wrap every entry point of the consentcrawl add-on (before the crawler builds them).

    With ``floor``, the stand-ins of :mod:`_floor` are wrapped instead, in the same places and the same way.
    """
    if floor:
        import _floor as middlewares

        pipelines = middlewares
    else:
        from consentcrawl import middlewares, pipelines, runtime

        # the audit lines and counts written once per event-loop turn
        consent_runtime = runtime.ConsentRuntime
        end_of_turn = consent_runtime.end_of_turn

        def timed_end_of_turn(self: Any) -> None:
            _charged("consentcrawl/end_of_turn", lambda: end_of_turn(self))

        consent_runtime.end_of_turn = timed_end_of_turn  # type: ignore[method-assign]

    guard = middlewares.ConsentScheduleGuard
    request_scheduled = guard.request_scheduled

    def timed_scheduled(self: Any, request: scrapy.Request, **kwargs: Any) -> None:
        # the same signature: Scrapy's signal dispatch passes only the arguments a handler names
        _charged("consentcrawl/schedule", lambda: request_scheduled(self, request, **kwargs))

    guard.request_scheduled = timed_scheduled  # type: ignore[method-assign]

    downloader = middlewares.ConsentDownloaderMiddleware
    process_request = downloader.process_request

    async def timed_request(self: Any, request: scrapy.Request) -> Any:
        if not request.meta.get("consentcrawl_robots"):
            ACCOUNTING.requests += 1
        return await _Steps("consentcrawl/request", process_request(self, request))

    downloader.process_request = timed_request  # type: ignore[method-assign]

    responses = middlewares.ConsentResponseMiddleware
    process_response = responses.process_response

    async def timed_response(self: Any, request: scrapy.Request, response: Response) -> Any:
        return await _Steps("consentcrawl/response", process_response(self, request, response))

    responses.process_response = timed_response  # type: ignore[method-assign]

    spider_mw = middlewares.ConsentSpiderMiddleware
    process_spider_output = spider_mw.process_spider_output

    async def timed_output(self: Any, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        generator = process_spider_output(self, response, _Others(result))
        while True:
            try:
                item = await _Steps("consentcrawl/spider", generator.__anext__())
            except StopAsyncIteration:
                return
            yield item

    spider_mw.process_spider_output = timed_output  # type: ignore[method-assign]

    pipeline = pipelines.ConsentGuardPipeline
    process_item = pipeline.process_item

    async def timed_item(self: Any, item: Any) -> Any:
        return await _Steps("consentcrawl/item", process_item(self, item))

    pipeline.process_item = timed_item  # type: ignore[method-assign]


class CalibrationMiddleware:
    """Burns exactly ``BURN_NS`` of thread CPU per request, charged to "calibration"."""

    BURN_NS = 0

    def process_request(self, request: scrapy.Request) -> None:
        previous = ACCOUNTING.switch("calibration")
        ACCOUNTING.calibration_requests += 1
        end = time.thread_time_ns() + self.BURN_NS
        while time.thread_time_ns() < end:
            pass
        ACCOUNTING.switch(previous)


# -- the crawl ----------------------------------------------------------------------------------------------------


def settings_for(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
        "CONCURRENT_ITEMS": args.concurrent_items,
        "ROBOTSTXT_OBEY": args.config == "b",
        "HTTPCACHE_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "INFO",
        "LOG_FILE": str(Path(args.workdir) / f"crawl-{args.config}-{os.getpid()}.log"),
        "LOGSTATS_INTERVAL": 0,
        "DOWNLOADER_MIDDLEWARES": {},
    }
    if args.config == "c" and args.floor:
        settings["ADDONS"] = {"_floor.Addon": 0}
    elif args.config == "c":
        workdir = Path(args.workdir)
        settings.update({
            "ADDONS": {"consentcrawl.Addon": 0},
            "CONSENTCRAWL_PURPOSE": "research",
            "CONSENTCRAWL_PLATFORMS": str(workdir / "platforms.yaml"),
            "CONSENTCRAWL_AUTHORIZATIONS": f"sqlite:///{workdir / 'store.db'}",
            "CONSENTCRAWL_AUDIT_LOG": str(workdir / f"audit-{os.getpid()}.jsonl"),
            "CONSENTCRAWL_MODE": args.mode,
            "CONSENTCRAWL_NOW": NOW,
            "CONSENTCRAWL_LOGSTATS_INTERVAL": 0,
        })
    if args.calibrate_us:
        CalibrationMiddleware.BURN_NS = int(args.calibrate_us * 1000)
        settings["DOWNLOADER_MIDDLEWARES"] = {f"{__name__}.CalibrationMiddleware": 5}
    return settings


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM): unlike ``ru_maxrss`` it does not include the parent's RSS at fork time."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.config == "c" and args.instrument:
        instrument(floor=args.floor)
    if args.floor:
        import _floor

        _floor.switch = ACCOUNTING.switch
    process = CrawlerProcess(settings_for(args))
    crawler = process.create_crawler(ProfilesSpider)
    marks: dict[str, Any] = {}
    items = [0]

    def opened(spider: Any) -> None:
        marks["cpu0"] = time.process_time()
        marks["wall0"] = time.perf_counter()
        ACCOUNTING.switch("other")
        ACCOUNTING.wall_ns.clear()
        ACCOUNTING.samples.clear()
        ACCOUNTING.start_sampling(args.sample_hz)
        gc.callbacks.append(GC_TIME)

    def closed(spider: Any, reason: str) -> None:
        ACCOUNTING.stop_sampling()
        gc.callbacks.remove(GC_TIME)
        marks["gc_objects"] = len(gc.get_objects())
        marks["cpu1"] = time.process_time()
        marks["wall1"] = time.perf_counter()
        marks["reason"] = reason

    def scraped(item: Any) -> None:
        items[0] += 1

    crawler.signals.connect(opened, signal=signals.spider_opened)
    crawler.signals.connect(closed, signal=signals.spider_closed)
    crawler.signals.connect(scraped, signal=signals.item_scraped)
    process.crawl(crawler)
    process.start()
    assert crawler.stats is not None
    stats = crawler.stats.get_stats()
    wall = marks["wall1"] - marks["wall0"]
    cpu = marks["cpu1"] - marks["cpu0"]
    responses = int(stats.get("response_received_count", 0))
    samples = ACCOUNTING.samples
    total_samples = sum(samples.values())
    out: dict[str, Any] = {
        "config": args.config, "concurrent_items": args.concurrent_items,
        "mode": args.mode if args.config == "c" else None,
        "pages": args.pages, "finish_reason": marks["reason"], "items": items[0], "responses": responses,
        "requests": int(stats.get("downloader/request_count", 0)), "wall_s": wall, "cpu_s": cpu,
        "items_per_s": items[0] / wall, "responses_per_s": responses / wall,
        "cpu_us_per_response": cpu / max(1, responses) * 1e6,
        "peak_rss_mb": peak_rss_mb(),
        "samples_total": total_samples,
        "gc": {"collections": GC_TIME.count, "us_per_response": sum(GC_TIME.ns) / 1000 / max(1, responses),
               "ms_by_generation": [round(ns / 1e6, 1) for ns in GC_TIME.ns],
               "tracked_objects_at_close": marks["gc_objects"],
               "landed_us_per_response": {k: round(v / 1000 / max(1, responses), 1)
                                          for k, v in GC_TIME.landed_ns.items()}},
        "consent": {k: v for k, v in stats.items() if isinstance(k, str) and k.startswith("consentcrawl/")
                    and isinstance(v, int)},
        "errors": {k: v for k, v in stats.items() if isinstance(k, str) and ("exception" in k or "error" in k)},
    }
    for owner in ("consentcrawl", "calibration"):
        count = ACCOUNTING.requests if owner == "consentcrawl" else ACCOUNTING.calibration_requests
        if not count:
            continue
        mine = [k for k in set(samples) | set(ACCOUNTING.wall_ns) if k == owner or k.startswith(owner + "/")]
        owner_samples = sum(samples.get(k, 0) for k in mine)
        share = owner_samples / max(1, total_samples)
        out[owner] = {
            "requests": count,
            "instrumented_us_per_request": sum(ACCOUNTING.wall_ns.get(k, 0) for k in mine) / 1000 / count,
            "sampled_us_per_request": share * cpu * 1e6 / count,
            "samples": owner_samples,
            "share_of_cpu": share,
            "by_entry_point_us_per_request": {k.partition("/")[2]: round(ACCOUNTING.wall_ns.get(k, 0) / 1000 / count, 1)
                                              for k in sorted(mine) if "/" in k},
        }
    if args.floor:
        import _floor

        out["floor"] = True
        out["probe"] = {which: statistics.median(ns) / 1000 for which, ns in _floor.PROBE.items() if ns}
        out["probe"]["count"] = len(_floor.PROBE["cold"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=["a", "b", "c"])
    parser.add_argument("--pages", type=int, required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--concurrent-items", type=int, default=100)
    parser.add_argument("--mode", choices=["report", "enforce"], default="report")
    parser.add_argument("--calibrate-us", type=float, default=0.0)
    parser.add_argument("--sample-hz", type=int, default=4000)
    parser.add_argument("--floor", action="store_true",
                        help="(c) with stand-ins that do one dict lookup in each of the add-on's places (_floor.py)")
    parser.add_argument("--no-instrument", dest="instrument", action="store_false",
                        help="(c) without the accounting wrappers (to see what they cost)")
    args = parser.parse_args(argv)
    if not os.environ.get("http_proxy"):
        parser.error("http_proxy must point at the platform server")
    result = run(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
