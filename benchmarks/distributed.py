"""Distributed crawls: throughput with 1, 2 and 4 worker processes on one Redis, and what the shared state costs.

``python benchmarks/distributed.py [--pages 1000] [--workers 1,2,4] [--rounds 3]``

Against the synthetic platform (``platform_server.py``, no ``Crawl-delay``), with consentcrawl on in every worker
(robots, platform terms, an SQLite store of ``--pages`` records covering half of the profiles, the audit log):

- ``local``: one worker, no Redis at all (Scrapy's own scheduler, every state in the process): the baseline;
- ``N workers``: ``N`` processes on scrapy-redis's queue (``ConsentRedisScheduler``) and the shared state
  (one robots.txt fetch for the cluster, the per-origin schedule, the refusals feed), seeds from a Redis key.

Each run starts the workers, waits until every one is open, pushes the listing pages as seeds and measures from
then to the last response any worker received. It reports pages (responses) per second, the workers' CPU per
response (from the spider's opening to the process's end), and the shared state's cost per response: Redis
commands (``INFO commandstats``) and the Redis server's CPU. Medians of ``--rounds`` runs. The machine has two
cores: more than two workers compete for them with each other, the platform server and Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from platform_server import HOST, PAGE_SIZE, start_server, stop_server  # noqa: E402
from synthetic import NOW, PLATFORMS_YAML, row_at  # noqa: E402

REDIS_SERVER = "/usr/bin/redis-server"


# -- one worker ----------------------------------------------------------------------------------------------------


def run_worker(config_path: str) -> None:
    import scrapy
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess
    from scrapy.http import Response

    config = json.loads(Path(config_path).read_text())

    class BenchWorker(scrapy.Spider):
        name = "bench-distributed"
        custom_settings = {"ADDONS": {"consentcrawl.Addon": 0}}
        start_urls = config.get("start_urls", [])

        def parse(self, response: Response) -> Any:
            for href in response.css("li.person a.profile-link::attr(href)").getall():
                yield response.follow(href, callback=self.parse_profile)

        def parse_profile(self, response: Response) -> Any:
            card = response.css("[data-subject]")
            yield {"subject": card.attrib["data-subject"], "name": card.css(".name::text").get(),
                   "url": response.url}
            for href in response.css("a.related::attr(href)").getall():
                yield response.follow(href, callback=self.parse_profile)

    process = CrawlerProcess(config["settings"])
    crawler = process.create_crawler(BenchWorker)
    seen = {"responses": 0, "last": 0.0, "items": 0, "cpu_at_open": 0.0}

    def received(**kw: Any) -> None:
        seen["responses"] += 1
        seen["last"] = time.time()

    def scraped(**kw: Any) -> None:
        seen["items"] += 1

    def opened(**kw: Any) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        seen["cpu_at_open"] = usage.ru_utime + usage.ru_stime  # imports and start-up are not the crawl's
        Path(config["ready"]).write_text("ready")

    crawler.signals.connect(received, signal=signals.response_received, weak=False)
    crawler.signals.connect(scraped, signal=signals.item_scraped, weak=False)
    crawler.signals.connect(opened, signal=signals.spider_opened, weak=False)
    process.crawl(crawler)
    process.start()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seen["cpu_s"] = usage.ru_utime + usage.ru_stime - seen["cpu_at_open"]
    Path(config["result"]).write_text(json.dumps(seen))


# -- the driver ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import redis

    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def redis_usage(url: str) -> tuple[int, float]:
    """Commands served so far (all kinds) and the server's CPU seconds."""
    import redis

    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    cpu = client.info("cpu")
    client.close()
    calls = sum(int(v["calls"]) for v in stats.values())
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def one_run(workers: int, args: argparse.Namespace, workdir: Path, proxy: str, store: str) -> dict[str, Any]:
    import redis

    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    listing = [f"http://{HOST}/people?page={k}" for k in range(1, args.pages // PAGE_SIZE + 1)]
    settings: dict[str, Any] = {
        "CONSENTCRAWL_PURPOSE": "research", "CONSENTCRAWL_PLATFORMS": str(workdir / "platforms.yaml"),
        "CONSENTCRAWL_AUTHORIZATIONS": store, "CONSENTCRAWL_NOW": NOW,
        "CONSENTCRAWL_AUDIT_LOG": str(run_dir / "audit-{pid}.jsonl"), "CONSENTCRAWL_LOGSTATS_INTERVAL": 0,
        "LOG_LEVEL": "ERROR", "TELNETCONSOLE_ENABLED": False, "RETRY_ENABLED": False,
        "CONCURRENT_REQUESTS": 16, "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
    }
    redis_proc, url = (None, "")
    if workers:
        redis_proc, url = start_redis(run_dir)
        settings.update({
            "SCHEDULER": "consentcrawl.distributed.scheduler.ConsentRedisScheduler",
            "DUPEFILTER_CLASS": "consentcrawl.distributed.scheduler.ConsentRedisDupeFilter",
            "SCHEDULER_PERSIST": True, "REDIS_URL": url, "CONSENTCRAWL_REDIS_START_KEY": "%(name)s:start_urls",
            "CONSENTCRAWL_REDIS_IDLE_CLOSE": 1.5})
    env = {**os.environ, "http_proxy": proxy}
    procs, results, readies = [], [], []
    try:
        for n in range(max(workers, 1)):
            config = run_dir / f"worker-{n}.json"
            ready, result = run_dir / f"ready-{n}", run_dir / f"result-{n}.json"
            worker_settings = dict(settings)
            if not workers:
                worker_settings["CONSENTCRAWL_REDIS_URL"] = None
            config.write_text(json.dumps({"settings": worker_settings, "ready": str(ready), "result": str(result),
                                          "start_urls": [] if workers else listing}))
            procs.append(subprocess.Popen([sys.executable, __file__, "--worker", str(config)], env=env))
            readies.append(ready)
            results.append(result)
        if workers:
            while not all(r.exists() for r in readies):
                time.sleep(0.02)
            before = redis_usage(url)
            started = time.time()
            client = redis.Redis.from_url(url)
            client.rpush("bench-distributed:start_urls", *listing)
            client.close()
        else:
            while not readies[0].exists():
                time.sleep(0.01)
            started = time.time()
        for proc in procs:
            proc.wait(600)
        after = redis_usage(url) if workers else (0, 0.0)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
    seen = [json.loads(r.read_text()) for r in results]
    responses = sum(s["responses"] for s in seen)
    wall = max(s["last"] for s in seen) - started
    out = {"workers": workers, "responses": responses, "items": sum(s["items"] for s in seen),
           "pages_per_s": responses / wall, "worker_cpu_us": 1e6 * sum(s["cpu_s"] for s in seen) / responses,
           "share": [s["responses"] for s in seen]}
    denied: dict[str, int] = {}
    out_causes: dict[str, str] = {}
    for audit in run_dir.glob("audit-*.jsonl"):
        for line in audit.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("verdict") == "deny" and entry.get("phase") == "request":
                denied[entry["reason"]] = denied.get(entry["reason"], 0) + 1
                if entry["reason"].startswith("error.") and "cause" not in out_causes:
                    out_causes["cause"] = json.dumps(entry.get("evidence"))[:400]
    out["denied"] = denied
    out.update(out_causes)  # the same in every run but for errors: a shared state too slow to answer denies
    if workers:
        out["redis_commands"] = (after[0] - before[0]) / responses
        out["redis_cpu_us"] = 1e6 * (after[1] - before[1]) / responses
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000, help="profiles on the platform (default 1000)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4; 0 is the local baseline)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args.worker)
        return 0
    from consentcrawl.consent.sqlite import bulk_build

    counts = [0, *(int(n) for n in args.workers.split(",") if n.strip())]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "platforms.yaml").write_text(PLATFORMS_YAML)
        bulk_build(str(workdir / "store.db"), args.pages // 2, row_at)
        store = f"sqlite:///{workdir / 'store.db'}"
        server, port = start_server(args.pages)
        try:
            runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
            for _ in range(args.rounds):
                for n in counts:
                    runs[n].append(one_run(n, args, workdir, f"http://127.0.0.1:{port}", store))
        finally:
            stop_server(server)
    print(f"{args.pages} profiles, {args.rounds} rounds, medians; machine {os.uname().machine}, "
          f"{os.cpu_count()} cores\n")
    print("| workers | responses | pages/s | worker CPU µs/response | Redis commands/response "
          "| Redis CPU µs/response |")
    print("|---|---|---|---|---|---|")
    for n in counts:
        rs = runs[n]

        def med(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(r.get(key, 0) for r in rs)

        label = "local (no Redis)" if n == 0 else str(n)
        print(f"| {label} | {med('responses'):.0f} | {med('pages_per_s'):.0f} | {med('worker_cpu_us'):.0f} | "
              f"{med('redis_commands'):.1f} | {med('redis_cpu_us'):.0f} |")
    print("\nper-run detail:", json.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
