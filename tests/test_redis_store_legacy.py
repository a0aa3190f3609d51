"""A Redis store imported before each platform's subject key rule was recorded (``PREFIX:subject_keys``): whether
its people were keyed as the platforms file now says is unknown, and a withdrawal keyed under another rule would
not be found. Reading it fails closed until an import records the rule. A real ``redis-server``, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, write_config
from tests.redis_server import RedisServer
from tests.test_leaks_hunt13 import _record


def _check(url: str, platforms: Path, app: LenientPeople, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    with LocalServer(app) as server:
        monkeypatch.setenv("http_proxy", server.proxy)
        main(["check", f"http://{HOST}/@alice", "--json", "--purpose", "research", "--platforms", str(platforms),
              "--authorizations", url])
    out = capsys.readouterr().out
    return dict(json.loads(out))


def test_a_store_imported_before_its_key_rule_was_recorded_denies_until_an_import_records_it(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """alice's grant went in under ``alice`` and a withdrawal written ``Alice`` under ``Alice`` while the platform
    was case-sensitive, by a version that recorded no rule. The platform is case-insensitive now: ``Alice`` is
    alice, withdrawn. The store, with no rule recorded, was read under today's rule: ``alice`` alone, and her page
    allowed. Now it denies (``error.store-unavailable``, naming the platform) until it is imported into again."""
    platforms, _ = write_config(tmp_path)
    text = platforms.read_text(encoding="utf-8")
    platforms.write_text(text.replace("    subject:", "    case_sensitive: true\n    subject:"), encoding="utf-8")
    url = f"{redis_server.url}?prefix=legacy"
    records = tmp_path / "records.jsonl"
    records.write_text(_record("alice", "crm-1") + _record("Alice", "crm-2", revoked=True), encoding="utf-8")
    assert main(["authorizations", "import", str(records), url, "--platforms", str(platforms)]) == 0
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.delete("legacy:subject_keys")  # as an import before the rule was recorded left it
    finally:
        client.close()
    platforms.write_text(text, encoding="utf-8")  # handles are case-insensitive after all
    monkeypatch.chdir(tmp_path)
    decision = _check(url, platforms, LenientPeople(), monkeypatch, capsys)
    assert decision["reason"] == "error.store-unavailable", decision
    assert "imported before their subject key rule was recorded" in json.dumps(decision)
    assert "'people'" in json.dumps(decision)
    # an import into it checks how its records were keyed: ``Alice`` is not keyed as alice would be now, so it is
    # refused, nothing written, and the store still denies
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_text(_record("bob", "crm-3"), encoding="utf-8")
    capsys.readouterr()
    assert main(["authorizations", "import", str(fresh), url, "--platforms", str(platforms)]) == 2
    assert "is not keyed as the platforms file says" in capsys.readouterr().err
    decision = _check(url, platforms, LenientPeople(), monkeypatch, capsys)
    assert decision["reason"] == "error.store-unavailable", decision


def test_a_store_imported_before_its_key_rule_was_recorded_takes_the_rule_its_records_were_keyed_by(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same kind of store, keyed as the platforms file says: denied until the next import, which finds every
    record keyed by today's rule, records it, and the store is read again."""
    platforms, _ = write_config(tmp_path)
    url = f"{redis_server.url}?prefix=legacy"
    records = tmp_path / "records.jsonl"
    records.write_text(_record("alice", "crm-1"), encoding="utf-8")
    assert main(["authorizations", "import", str(records), url, "--platforms", str(platforms)]) == 0
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.delete("legacy:subject_keys")
    finally:
        client.close()
    monkeypatch.chdir(tmp_path)
    assert _check(url, platforms, LenientPeople(), monkeypatch, capsys)["reason"] == "error.store-unavailable"
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_text(_record("bob", "crm-3"), encoding="utf-8")
    assert main(["authorizations", "import", str(fresh), url, "--platforms", str(platforms)]) == 0
    assert _check(url, platforms, LenientPeople(), monkeypatch, capsys)["reason"] == "subject.authorized"
