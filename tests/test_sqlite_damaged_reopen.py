"""Damage an SQLite store meets as it opens or reloads (its ``meta`` table or Bloom filter malformed), not on a
person's lookup: every decision that needs the store denies, and the damage is named as a lookup's is (``is
damaged`` in the evidence and the ERROR line, ``consentcrawl/authorizations/damaged`` counted).

The store is built by the real importer, opened cleanly by a real crawl of the lenient ``people`` site, and then
damaged on disk below SQLite (:func:`tests.sqlite_damage.malform_root`) between two people's pages. The truth is
the site's own served log and the audit log.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.consent.sqlite import SQLiteStore
from consentcrawl.errors import StoreDamaged, StoreUnavailable
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, KINDS, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.sqlite_damage import malform_root

BASE = f"http://{HOST}"
#: the store's tables read as it opens or reloads (``records`` is read by a lookup: tests/test_sqlite_damaged.py)
BOOKKEEPING = ["meta", "bloom"]


def people_store(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """:func:`people_settings` with its authorizations imported into an SQLite store that looks at its file every
    0.1 s; the settings and the store's file."""
    settings = people_settings(tmp_path)
    dest = tmp_path / "store.db"
    assert main(["authorizations", "import", settings["CONSENTCRAWL_AUTHORIZATIONS"], f"sqlite:///{dest}",
                 "--platforms", settings["CONSENTCRAWL_PLATFORMS"]]) == 0
    assert not Path(f"{dest}-wal").exists()  # the damage below is to the file SQLite reads
    return {**settings, "CONSENTCRAWL_AUTHORIZATIONS": f"sqlite:///{dest}?refresh=0.1"}, dest


class DamagedBetween(ListLogic):
    """Asks for 101 (authorized); once their page reached the callback, damages ``table`` in the store's file, waits
    past the store's next look at it, and asks for 102 (authorized too)."""

    store: Path = Path()
    table = ""

    async def start(self) -> Any:
        yield scrapy.Request(f"{BASE}/u/101", callback=self.parse)
        for _ in range(200):
            if self.seen:
                break
            await asyncio.sleep(0.05)
        malform_root(self.store, self.table)
        await asyncio.sleep(0.5)
        yield scrapy.Request(f"{BASE}/u/102", callback=self.parse)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("table", BOOKKEEPING)
@deferred_f_from_coro_f
async def test_damage_met_as_the_store_reopens_denies_and_is_named(
        kind: str, table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    settings, dest = people_store(tmp_path)
    logic = type("DamagedBetween", (DamagedBetween,), {"store": dest, "table": table, "follow_links": False})
    app = LenientPeople()
    with caplog.at_level(logging.ERROR), LocalServer(app) as server:
        result = await crawl(make_spider(kind, logic), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()  # 101 before the damage (control), 102 never
    denies = result.audit_for("/u/102")
    assert [(e["verdict"], e["reason"]) for e in denies] == [("deny", "error.store-unavailable")], result.audit
    message = denies[0]["evidence"][-1]["message"]
    assert "is damaged: DatabaseError: database disk image is malformed" in message, denies[0]["evidence"]
    assert result.stats.get("consentcrawl/authorizations/damaged") == 1, result.stats
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"sqlite:///{dest}" in m and "is damaged" in m for m in errors), errors


@pytest.mark.parametrize("table", BOOKKEEPING)
def test_damage_met_as_the_store_reopens_is_raised_as_damage_once(tmp_path: Path, table: str) -> None:
    """The first lookup after the store met the damage raises :class:`StoreDamaged` (the crawl counts it once);
    the next ones fail as a damaged store's do, until the file changes."""
    _settings, dest = people_store(tmp_path)
    store = SQLiteStore(f"sqlite:///{dest}?refresh=0")
    assert len(store.lookup("people", "101")) == 1  # control: it answers before the damage
    malform_root(dest, table)
    with pytest.raises(StoreDamaged, match="is damaged: DatabaseError"):
        store.lookup("people", "101")
    with pytest.raises(StoreUnavailable, match="is damaged") as later:
        store.lookup("people", "102")
    assert not isinstance(later.value, StoreDamaged)
    store.close()


@pytest.mark.parametrize("table", BOOKKEEPING)
def test_a_store_damaged_before_the_crawl_does_not_start_and_says_so(tmp_path: Path, table: str) -> None:
    """Opened already damaged: the crawl does not start, and the error names the damage."""
    from consentcrawl.errors import ConfigError

    _settings, dest = people_store(tmp_path)
    malform_root(dest, table)
    with pytest.raises(ConfigError, match="is damaged: DatabaseError"):
        SQLiteStore(f"sqlite:///{dest}")
