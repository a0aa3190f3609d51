"""``consentcrawl demo``: serve the demo microblog on loopback and crawl it with the example spider.

The crawl is an ordinary ``scrapy crawl microblog`` run through Scrapy's own machinery (project settings from
``scrapy.cfg``, the spider from ``spiders/``), reaching ``microblog.example`` through the local server as its
HTTP proxy. Nothing keeps running afterwards: the server stops when the crawl ends.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from consentcrawl.audit.log import read_audit_log
from consentcrawl.errors import ConfigError
from consentcrawl.logstats import report_command

from .microblog import serve as serve_microblog
from .server import serve_until_interrupted

SPIDER = "microblog"
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY")


def project_root() -> Path:
    """The example project: scrapy.cfg in or above the cwd, else the checkout this package was installed from.
    A scrapy.cfg of another project (the user's own, run from inside it) is not the example's: it has no
    ``settings`` module and no ``microblog`` spider."""
    from scrapy.utils.conf import closest_scrapy_cfg

    cfg = closest_scrapy_cfg()
    for root in ([Path(cfg).parent] if cfg else []) + [Path(__file__).resolve().parents[1]]:
        if (root / "scrapy.cfg").exists() and (root / "spiders" / f"{SPIDER}.py").is_file() \
                and (root / "settings" / "__init__.py").is_file():
            return root
    raise ConfigError("the demo needs the example project (scrapy.cfg, spiders/, settings/): run it from the "
                      "consentcrawl repository", source="consentcrawl demo")


def run_demo(output: Path) -> int:
    root = project_root()
    output = output if output.is_absolute() else Path.cwd() / output
    items_path, audit_path = output / "items.jsonl", output / "audit.jsonl"
    try:
        output.mkdir(parents=True, exist_ok=True)
        for path in (items_path, audit_path):
            path.unlink(missing_ok=True)
    except OSError as exc:  # a file where the directory should be, no permission
        raise ConfigError(f"cannot use {str(output)!r} for the demo's output: {exc.strerror or exc}",
                          source="--output") from None

    os.chdir(root)
    sys.path.insert(0, str(root))
    os.environ["SCRAPY_SETTINGS_MODULE"] = "settings"
    from scrapy.crawler import AsyncCrawlerProcess
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    settings.set("CONSENTCRAWL_AUDIT_LOG", str(audit_path), priority="cmdline")
    settings.set("FEEDS", {str(items_path): {"format": "jsonlines", "overwrite": True}}, priority="cmdline")
    settings.set("LOG_LEVEL", "WARNING", priority="cmdline")
    settings.set("CONSENTCRAWL_LOGSTATS_INTERVAL", 0, priority="cmdline")

    saved = {name: os.environ.pop(name, None) for name in PROXY_VARS}
    server = serve_microblog()
    started = time.monotonic()
    try:
        os.environ["http_proxy"] = server.proxy
        print(f"demo platform: microblog.example and m.microblog.example served on {server.proxy} (as a proxy)")
        process = AsyncCrawlerProcess(settings)
        process.crawl(SPIDER)
        (crawler,) = process.crawlers
        process.start()
    finally:
        server.stop()
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
    stats: dict[str, Any] = dict(crawler.stats.get_stats()) if crawler.stats else {}
    print(summary(stats, items_path, audit_path, len(server.requests), time.monotonic() - started))
    return 0 if stats.get("finish_reason") == "finished" else 1


def summary(stats: dict[str, Any], items_path: Path, audit_path: Path, served: int, seconds: float) -> str:
    rows = read_audit_log(items_path) if items_path.exists() else []
    people = {row.get("subject") for row in rows}
    lines_ = read_audit_log(audit_path) if audit_path.exists() else []
    audit = [e for e in lines_ if "event" not in e]  # decisions; the rest are events (refusal-found, ...)
    refusals = {(e.get("platform"), e.get("subject")) for e in lines_ if e.get("event") == "refusal-found"}
    denied = Counter((e["stage"], e["reason"]) for e in audit if e["verdict"] == "deny" and e["phase"] != "item")
    lines = [
        "",
        f"consentcrawl demo: crawl {stats.get('finish_reason', 'did not finish')} in {seconds:.1f} s, "
        f"purpose {stats.get('consentcrawl/purpose')!r}, mode {stats.get('consentcrawl/mode')}",
        f"  requests the platform received: {served}",
        f"  requests allowed:               {stats.get('consentcrawl/allowed', 0)}",
        f"  requests dropped before fetch:  {sum(denied.values())}",
    ]
    for (stage, reason), count in sorted(denied.items(), key=lambda kv: (kv[0][0], -kv[1])):
        lines.append(f"      {stage:<8} {reason:<28} {count}")
    repeated = stats.get("consentcrawl/schedule/repeated", 0)
    if repeated:
        lines.append(f"      and {repeated} more links to the same pages, dropped by the same decisions")
    lines += [
        f"  items collected:                {len(rows)}, of {len(people)} people, each of whom authorized "
        f"{stats.get('consentcrawl/purpose')!r}",
        f"  items dropped by the guard:     {stats.get('consentcrawl/items/dropped', 0)}",
        f"  people who refused on their page: {len(refusals)} (not collected, whatever their records say)",
        f"  items written to:               {items_path}",
        f"  {f'audit log ({len(audit)} decisions):':<32}{audit_path}",
        f"  its chain ends with:            {stats.get('consentcrawl/audit_chain_end')} "
        f"(consentcrawl audit verify {audit_path})",
        f"  its report, with charts:        {report_command(str(audit_path))}",
        *[f"  why an item was collected:      consentcrawl audit explain {decision_id} --log {audit_path}"
          for decision_id in _first_provenance(rows)],
        "  explain one decision:           consentcrawl demo --serve, then in another terminal, from the "
        "repository root",
        "                                  http_proxy=http://127.0.0.1:8765 consentcrawl check "
        f"http://microblog.example/u/1002 --purpose {stats.get('consentcrawl/purpose')}",
    ]
    return "\n".join(lines)


def _first_provenance(items: list[dict[str, Any]]) -> list[str]:
    """The decision id the first item's provenance names (none when items carry no provenance)."""
    for item in items[:1]:
        provenance = item.get("consentcrawl")
        if isinstance(provenance, dict) and isinstance(provenance.get("decision_id"), str):
            return [provenance["decision_id"]]
    return []


def serve(port: int) -> int:
    """Serve the demo platform until interrupted, for ``scrapy crawl microblog``."""
    try:
        server = serve_microblog(port=port)
    except (OSError, OverflowError) as exc:  # the port is taken, or out of range: one line, not a traceback
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc}", source="--port") from None
    print(f"demo platform on {server.proxy}; in another terminal, from the repository root:\n"
          f"  http_proxy={server.proxy} scrapy crawl microblog -O output/items.jsonl\n"
          f"Ctrl-C stops it.")
    return serve_until_interrupted(server)
