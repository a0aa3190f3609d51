"""``consentcrawl purge``: who has withdrawn, as a Redis store and a consent API say, and a receipt that cannot be
written, before and after the data went (issue 15, "Erasure"). Real stores, real files, a real second process.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from consentcrawl.audit.chain import verify
from consentcrawl.audit.log import AuditLog, read_audit_log
from consentcrawl.cli import main
from consentcrawl.consent.apiserver import AuthorizationServer
from consentcrawl.consent.load import load_authorizations
from consentcrawl.consent.redisimport import import_records
from consentcrawl.terms.load import load_platforms
from tests.conftest import PLATFORMS
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
FEED = '{"subject": "1001", "platform": "microblog"}\n{"subject": "1002", "platform": "microblog"}\n'


def purge(*args: str) -> int:
    return main(["purge", "--platforms", str(PLATFORMS), *args])


def receipts_in(log: Path) -> list[dict[str, object]]:
    return [e for e in read_audit_log(log) if e.get("event") == "purge-receipt"]


def test_withdrawn_from_a_redis_store(redis_server: RedisServer, tmp_path: Path, config_dir: Path) -> None:
    platforms = load_platforms(PLATFORMS)
    store = redis_server.url + "?prefix=crm"
    import_records(store, load_authorizations(config_dir / "authorizations.yaml", platforms),
                   platforms=platforms.platforms)
    feed = tmp_path / "items.jsonl"
    feed.write_text(FEED)
    log = tmp_path / "audit.jsonl"
    assert purge("--withdrawn", "--authorizations", store, "--audit-log", str(log), str(feed)) == 0
    assert feed.read_text() == '{"subject": "1001", "platform": "microblog"}\n'  # 1002 withdrew in the demo data
    assert [r["subject"] for r in receipts_in(log)] == ["microblog:1002"]
    # the same people as the file it was imported from says
    file_log = tmp_path / "file-audit.jsonl"
    feed.write_text(FEED)
    assert purge("--withdrawn", "--authorizations", str(config_dir / "authorizations.yaml"), "--audit-log",
                 str(file_log), str(feed)) == 0
    assert [r["subject"] for r in receipts_in(file_log)] == ["microblog:1002"]


def test_withdrawn_from_a_redis_store_that_is_down_or_holds_garbage_is_a_usage_error(
        redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import redis

    feed = tmp_path / "items.jsonl"
    feed.write_text(FEED)
    store = redis_server.url + "?prefix=crm"
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.hset("crm:records:microblog:1002", "id:x", "not json")
    finally:
        client.close()
    assert purge("--withdrawn", "--authorizations", store, "--audit-log", str(tmp_path / "a.jsonl"), str(feed)) == 2
    assert "holds a record that cannot be read" in capsys.readouterr().err
    redis_server.stop()
    assert purge("--withdrawn", "--authorizations", store, "--audit-log", str(tmp_path / "a.jsonl"), str(feed)) == 2
    assert f"cannot read redis://127.0.0.1:{redis_server.port}/0?prefix=crm" in capsys.readouterr().err
    assert feed.read_text() == FEED and not (tmp_path / "a.jsonl").exists()


def test_withdrawn_from_a_consent_api_is_a_usage_error_naming_it(
        tmp_path: Path, config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    platforms = load_platforms(PLATFORMS)
    feed = tmp_path / "items.jsonl"
    feed.write_text(FEED)
    source = load_authorizations(config_dir / "authorizations.yaml", platforms)
    with AuthorizationServer(source, platforms) as server:
        url = server.url
        assert purge("--withdrawn", "--authorizations", url, "--audit-log", str(tmp_path / "a.jsonl"),
                     str(feed)) == 2
    err = capsys.readouterr().err
    assert f"the consent API at {url} cannot list who has withdrawn" in err and "--subject" in err
    assert feed.read_text() == FEED and not (tmp_path / "a.jsonl").exists()


def test_a_log_another_crawl_is_writing_stops_the_purge_before_anything_is_removed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = tmp_path / "items.jsonl"
    feed.write_text(FEED)
    log = tmp_path / "audit.jsonl"
    crawl = AuditLog(log, sync=False)  # a running crawl holds its log's lock
    try:
        assert purge("--subject", "microblog:1002", "--audit-log", str(log), str(feed)) == 2
    finally:
        crawl.close()
    assert "another crawl (in this process or another) is writing it" in capsys.readouterr().err
    assert feed.read_text() == FEED
    assert verify(log).problem is None and not receipts_in(log)
    # once the crawl is done, the same purge goes through, its receipt after the crawl's segment
    assert purge("--subject", "microblog:1002", "--audit-log", str(log), str(feed)) == 0
    assert verify(log).problem is None and len(receipts_in(log)) == 1


def test_a_receipt_that_cannot_be_written_after_the_data_went_is_said_and_printed(tmp_path: Path) -> None:
    """The log takes its opening line, then the file-size limit (a full disk, a quota) stops the receipt half way:
    the person's data is gone (it was removed first), the run exits 1 saying so, and prints the receipt in full."""
    feed = tmp_path / "items.jsonl"
    person = [json.dumps({"subject": "1002", "platform": "microblog", "n": n}) + "\n" for n in range(600)]
    feed.write_text(FEED.splitlines(keepends=True)[0] + "".join(person))
    log = tmp_path / "audit.jsonl"
    AuditLog(log, sync=False).close()  # a crawl's segment before: the limit is set from where the log ends
    limit = log.stat().st_size + 1500  # the purge's chain-start fits; a receipt of 600 line numbers does not
    code = ("import resource, sys\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "from consentcrawl.cli import main\n"
            f"sys.exit(main(['purge', '--platforms', {str(PLATFORMS)!r}, '--subject', 'microblog:1002', "
            f"'--audit-log', {str(log)!r}, {str(feed)!r}]))\n")
    assert resource.RLIMIT_FSIZE  # Linux and the BSDs; Python ignores SIGXFSZ, so a write past it fails (EFBIG)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 1, done.stderr
    assert feed.read_text() == FEED.splitlines(keepends=True)[0]  # what is left: only the other person
    assert "removed 600 record(s) of microblog:1002" in done.stdout
    assert "the data above was removed, but its receipt could not be written" in done.stderr
    [printed] = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert printed["event"] == "purge-receipt" and printed["subject"] == "microblog:1002"
    assert printed["removed"] == 600 and len(printed["targets"][0]["where"]) == 600  # type: ignore[index]
    # the log: intact up to the purge's opening line, then the receipt's torn start
    checked = verify(log)
    assert checked.problem is not None and "torn" in str(checked.problem), checked.problem
    text = log.read_text()
    assert not text.endswith("\n") and text.rsplit("\n", 1)[1].startswith('{"event":"purge-receipt"')
    # its next writer cuts the torn line off and records it; the chain verifies again
    AuditLog(log, sync=False).close()
    assert verify(log).problem is None and not receipts_in(log)
