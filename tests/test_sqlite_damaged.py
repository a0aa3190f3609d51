"""A damaged SQLite store never answers with part of a person's records: a lost row denies, recorded with its cause.

The store is built by the real importer (``consentcrawl authorizations import``), then damaged on disk below SQLite
(:mod:`tests.sqlite_damage`: a withdrawal's row lost from its leaf page, which SQLite reads as valid). The truth
is what the local server was asked for and what the audit log recorded.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.consent.sqlite import SQLiteStore
from consentcrawl.errors import StoreUnavailable
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import AUTHORIZATIONS, PLATFORMS, consent_settings, run_crawl
from tests.sqlite_damage import drop_row
from tests.test_crawl_e2e import live_research_subjects, requested_subjects

WITHDRAWN = "1005"  #: live for research in the demo file, until the withdrawal below


def demo_with_a_withdrawal(tmp_path: Path) -> Path:
    """The demo records as JSON Lines, and a withdrawal of their own for WITHDRAWN (a row beside the grant)."""
    rows = yaml.safe_load(AUTHORIZATIONS.read_text())["authorizations"]
    rows.append({"platform": "microblog", "subject": WITHDRAWN, "purposes": ["research"],
                 "granted_at": "2026-03-05T20:00:00Z", "revoked_at": "2026-06-01T00:00:00Z",
                 "evidence": "withdrawn by e-mail", "record_id": "withdrawal-1005"})
    path = tmp_path / "authorizations.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in row.items() if v is not None}, default=str) + "\n"
                            for row in rows), encoding="utf-8")
    return path


def imported_store(tmp_path: Path) -> Path:
    dest = tmp_path / "store.db"
    assert main(["authorizations", "import", str(demo_with_a_withdrawal(tmp_path)), f"sqlite:///{dest}",
                 "--platforms", str(PLATFORMS)]) == 0
    assert not Path(f"{dest}-wal").exists()  # the damage below is to the file SQLite reads
    return dest


def withdrawal_row(dest: Path) -> int:
    conn = sqlite3.connect(dest)
    try:
        rows = conn.execute("SELECT id, revoked_at FROM records WHERE subject = ?", (WITHDRAWN,)).fetchall()
    finally:
        conn.close()
    assert len(rows) == 2 and sum(1 for _, revoked in rows if revoked) == 1
    return next(rowid for rowid, revoked in rows if revoked)


@deferred_f_from_coro_f
async def test_a_lost_withdrawal_row_denies_and_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    dest = imported_store(tmp_path)
    drop_row(dest, withdrawal_row(dest))
    settings = consent_settings(tmp_path, CONSENTCRAWL_AUTHORIZATIONS=f"sqlite:///{dest}", LOG_LEVEL="INFO")
    with caplog.at_level(logging.ERROR), LocalServer(MicroblogSite(n_profiles=12)) as server:
        result = await run_crawl(MicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        fetched = requested_subjects(server)
    assert WITHDRAWN not in fetched  # the server was never asked for the withdrawn person's profile
    assert fetched <= live_research_subjects() - {WITHDRAWN}
    assert not any(item.get("subject") == WITHDRAWN for item in result.items)
    damaged = [e for e in result.audit if e["reason"] == "error.store-unavailable"]
    assert damaged and all(e["verdict"] == "deny" for e in damaged)
    assert any("is damaged" in e["evidence"][-1]["message"] for e in damaged), damaged[0]["evidence"]
    assert result.stats["consentcrawl/authorizations/damaged"] == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"sqlite:///{dest}" in m and "is damaged" in m for m in errors), errors


def test_a_lost_row_fails_the_store_until_the_file_changes(tmp_path: Path) -> None:
    dest = imported_store(tmp_path)
    drop_row(dest, withdrawal_row(dest))
    store = SQLiteStore(f"sqlite:///{dest}")
    with pytest.raises(StoreUnavailable, match="is damaged: 1 record of a person where the store wrote 2"):
        store.lookup("microblog", WITHDRAWN)
    with pytest.raises(StoreUnavailable, match="is damaged"):
        store.lookup("microblog", "1001")  # every answer of a damaged file is suspect


def test_an_intact_store_answers_every_record(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{imported_store(tmp_path)}")
    records: Any = store.lookup("microblog", WITHDRAWN)
    assert sorted(r.revoked_at is not None for r in records) == [False, True]
