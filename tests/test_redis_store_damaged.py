"""A Redis store's person who lost a record (a withdrawal's field removed from their hash by something else than the
import: a script, an operator's ``HDEL``) is denied, named as damage, and counted, as an SQLite store's lost row is.

Each person's hash counts its records (``#rows``), written by the import's script with the record. A real
``redis-server``, the real importer, a real crawl of the lenient ``people`` site (its served log is the judge).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import redis
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.consent.redisstore import ROWS_FIELD, list_records
from consentcrawl.errors import ConfigError
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings
from tests.redis_server import RedisServer
from tests.test_leaks_hunt13 import _record

BASE = f"http://{HOST}"
PREFIX = "consentcrawl:authorizations"
#: 101 and 103 granted; 102 granted, then withdrew (a record of its own, beside the grant)
RECORDS = _record("101", "crm-1") + _record("102", "crm-2") + _record("102", "crm-3", revoked=True) + \
    _record("103", "crm-4")


def imported(redis_server: RedisServer, tmp_path: Path, records: str = RECORDS) -> tuple[dict[str, Any], str]:
    """:func:`people_settings` reading the Redis store, ``records`` imported into it; the settings, the store's URL."""
    settings = people_settings(tmp_path)
    source = tmp_path / f"records-{len(list(tmp_path.glob('records-*')))}.jsonl"
    source.write_text(records, encoding="utf-8")
    url = redis_server.url
    assert main(["authorizations", "import", str(source), url, "--platforms", settings["CONSENTCRAWL_PLATFORMS"]]) == 0
    return {**settings, "CONSENTCRAWL_AUTHORIZATIONS": url}, url


def hash_of(redis_server: RedisServer, subject: str) -> dict[str, str]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        return dict(client.hgetall(f"{PREFIX}:records:people:{subject}"))
    finally:
        client.close()


def drop_withdrawal(redis_server: RedisServer, subject: str = "102") -> None:
    """Remove the person's withdrawal from their hash, as a script or an operator's ``HDEL`` would."""
    fields = hash_of(redis_server, subject)
    withdrawal = next(name for name, value in fields.items() if name != ROWS_FIELD and "revoked_at" in value)
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.hdel(f"{PREFIX}:records:people:{subject}", withdrawal) == 1
    finally:
        client.close()


People = type("People", (ListLogic,), {"urls": [f"{BASE}/u/101", f"{BASE}/u/102", f"{BASE}/u/103"],
                                       "follow_links": False})


@deferred_f_from_coro_f
async def test_a_withdrawal_removed_from_a_persons_hash_denies_and_is_named(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    settings, url = imported(redis_server, tmp_path)
    drop_withdrawal(redis_server)
    app = LenientPeople()
    with caplog.at_level(logging.ERROR), LocalServer(app) as server:
        result = await crawl(make_spider("ADDONS", People), settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert sorted(app.people_served()) == ["101", "103"], app.describe()  # 102 never asked for; the others are
    denies = result.audit_for("/u/102")
    assert denies and {(e["verdict"], e["reason"]) for e in denies} == {("deny", "error.store-unavailable")}, denies
    message = denies[0]["evidence"][-1]["message"]
    assert "is damaged: 1 record(s) of a person where the store wrote 2" in message, denies[0]["evidence"]
    assert result.stats.get("consentcrawl/authorizations/damaged", 0) >= 1, result.stats
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [m for m in errors if "is damaged" in m and url in m], errors
    assert not [m for m in errors if "102" in m], errors  # the line names the store, not the person


def test_the_import_counts_each_persons_records_and_a_file_imported_again_changes_no_count(
        redis_server: RedisServer, tmp_path: Path) -> None:
    imported(redis_server, tmp_path)
    assert hash_of(redis_server, "102")[ROWS_FIELD] == "2"
    imported(redis_server, tmp_path)  # the same records: skipped, not counted again
    assert hash_of(redis_server, "102")[ROWS_FIELD] == "2"
    imported(redis_server, tmp_path, _record("102", "crm-5"))
    assert hash_of(redis_server, "102")[ROWS_FIELD] == "3"
    assert hash_of(redis_server, "101")[ROWS_FIELD] == "1"


def test_a_hash_written_before_the_count_is_read_unchecked_and_counted_by_the_next_import(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings, url = imported(redis_server, tmp_path)
    platforms = load_platforms([settings["CONSENTCRAWL_PLATFORMS"]])
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.hdel(f"{PREFIX}:records:people:102", ROWS_FIELD)  # as an import before the count left it
    finally:
        client.close()
    assert len([r for r in list_records(url, platforms) if r.subject == "102"]) == 2  # read, unchecked
    imported(redis_server, tmp_path, _record("102", "crm-5"))
    assert hash_of(redis_server, "102")[ROWS_FIELD] == "3"  # the whole hash counted
    drop_withdrawal(redis_server)
    with pytest.raises(ConfigError, match="is damaged: 2 record"):  # what `purge --withdrawn` reads
        list_records(url, platforms)
    # an import that adds a record to a damaged person keeps the damage seen (the count is not made up again)
    imported(redis_server, tmp_path, _record("102", "crm-6"))
    with pytest.raises(ConfigError, match="is damaged: 3 record"):
        list_records(url, platforms)
    capsys.readouterr()
    assert main(["purge", "--withdrawn", "--authorizations", url, "--platforms",
                 settings["CONSENTCRAWL_PLATFORMS"], str(tmp_path / "nothing.jsonl")]) != 0
    assert "is damaged" in json.dumps(capsys.readouterr().err)
