"""A Redis store's import is all or nothing: a failure half-way leaves the store as it was (a real ``redis-server``,
the real CLI, the store read back as a crawl reads it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from consentcrawl.cli import main
from consentcrawl.consent.redisstore import list_records
from consentcrawl.terms.load import load_platforms
from tests.lenient import write_config
from tests.redis_server import RedisServer


def _line(subject: str, **fields: object) -> str:
    record = {"platform": "people", "subject": subject, "purposes": ["research"],
              "granted_at": "2026-01-01T00:00:00Z", "evidence": "consent form 17", **fields}
    return json.dumps(record) + "\n"


def test_an_import_that_fails_half_way_writes_nothing(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The store holds 101's grant. An export whose first lines are fine (102, 103, and 101's withdrawal) and whose
    fourth is not (a purpose that does not exist) is read as it is written: before, the first three were in the
    store when the import failed (exit 2), 101 withdrawn by half an import the operator was told had failed. Now
    nothing of it is written: the records, the counter and the change stream are those before."""
    platforms, _ = write_config(tmp_path)
    url = f"{redis_server.url}?prefix=atomic"
    first, second = tmp_path / "export-1.jsonl", tmp_path / "export-2.jsonl"
    first.write_text(_line("101", record_id="crm-1"), encoding="utf-8")
    second.write_text(_line("102") + _line("103") + _line("101", revoked_at="2026-06-01T00:00:00Z",
                                                          evidence="withdrawn")
                      + _line("104", purposes=["no-such-purpose"]), encoding="utf-8")
    args = ["--platforms", str(platforms)]
    assert main(["authorizations", "import", str(first), url, *args]) == 0
    client = redis.Redis.from_url(redis_server.url)
    try:
        before = (client.get("atomic:seq"), client.xlen("atomic:changes"))
        capsys.readouterr()
        code = main(["authorizations", "import", str(second), url, *args])
        out, err = capsys.readouterr()
        after = (client.get("atomic:seq"), client.xlen("atomic:changes"))
    finally:
        client.close()
    assert code == 2, out + err
    assert f"{second}, line 4" in err, err
    stored = list_records(url, load_platforms([str(platforms)]))
    assert [(r.subject, r.revoked_at) for r in stored] == [("101", None)], stored
    assert after == before
    # the same export, corrected, goes in whole
    second.write_text("".join(second.read_text().splitlines(keepends=True)[:3]), encoding="utf-8")
    assert main(["authorizations", "import", str(second), url, *args]) == 0
    stored = list_records(url, load_platforms([str(platforms)]))
    assert sorted((r.subject, r.revoked_at is not None) for r in stored) == [
        ("101", False), ("101", True), ("102", False), ("103", False)], stored
