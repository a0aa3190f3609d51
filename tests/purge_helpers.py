"""Helpers for the purge tests: a small SQLite item pipeline, and a crawl of the demo platform into every kind of
output a purge handles (three feed formats, an SQLite database, Scrapy's filesystem HTTP cache)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from itemadapter import ItemAdapter


class SQLiteItemsPipeline:
    """Writes each item as a row of ``people`` (subject, platform, name, bio, followers, consentcrawl as JSON)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> SQLiteItemsPipeline:
        return cls(crawler.settings.get("TEST_ITEMS_DB"))

    def open_spider(self, spider: Any = None) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path)
        self.conn.execute("CREATE TABLE IF NOT EXISTS people (subject TEXT, platform TEXT, name TEXT, bio TEXT, "
                          "followers INTEGER, consentcrawl TEXT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS crawl_notes (note TEXT)")
        self.conn.execute("INSERT INTO crawl_notes VALUES ('started')")
        self.conn.commit()

    def close_spider(self, spider: Any = None) -> None:
        assert self.conn is not None
        self.conn.commit()
        self.conn.close()

    def process_item(self, item: Any) -> Any:
        assert self.conn is not None
        a = ItemAdapter(item)
        self.conn.execute("INSERT INTO people VALUES (?,?,?,?,?,?)",
                          (a.get("subject"), a.get("platform"), a.get("name"), a.get("bio"), a.get("followers"),
                           json.dumps(a.get("consentcrawl"))))
        self.conn.commit()
        return item


def output_settings(out: Path) -> dict[str, Any]:
    """Settings that make a crawl write every kind of output into ``out``."""
    return {
        "FEEDS": {str(out / "items.jsonl"): {"format": "jsonlines"},
                  str(out / "items.json"): {"format": "json"},
                  str(out / "items.csv"): {"format": "csv"}},
        "ITEM_PIPELINES": {"tests.purge_helpers.SQLiteItemsPipeline": 500},
        "TEST_ITEMS_DB": str(out / "items.db"),
        "HTTPCACHE_ENABLED": True,
        "HTTPCACHE_DIR": str(out / "httpcache"),
    }
