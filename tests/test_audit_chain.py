"""The audit log's hash chain on the logs of real crawls: `consentcrawl audit verify` finds an edit, a removed line,
swapped lines, a log cut short and a line torn by `kill -9`, and says where; `audit merge` joins the chains of two
crawl processes into one that verifies and proves them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.audit.chain import line_hash, seal, unseal, verify
from consentcrawl.audit.log import AuditLog, read_audit_log
from consentcrawl.cli import main
from consentcrawl.errors import ConfigError
from consentcrawl_demo.microblog import MicroblogSite
from consentcrawl_demo.server import LocalServer
from spiders.microblog import MicroblogSpider
from tests.conftest import ROOT, consent_settings, run_crawl


@pytest.fixture
def small_server() -> Iterator[LocalServer]:
    """The demo platform with 40 people: a crawl of it is a few hundred lines, in a few seconds."""
    with LocalServer(MicroblogSite(n_profiles=40)) as server:
        yield server


def audit_verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["audit", "verify", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out + captured.err


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


@deferred_f_from_coro_f
async def test_verify_says_which_line_was_edited_removed_swapped_repeated_or_cut(
    small_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    server = small_server
    log = tmp_path / "audit.jsonl"
    result = await run_crawl(MicroblogSpider, consent_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    lines = log.read_bytes().splitlines(keepends=True)
    # every decision and every event (the chain-start and -end lines, refusals found on pages) is a line
    assert len(lines) > 50 and len(result.audit) + len(result.events) == len(lines)
    assert [e["event"] for e in result.events][::len(result.events) - 1] == ["chain-start", "chain-end"]
    anchor = result.stats["consentcrawl/audit_chain_end"]
    assert anchor == line_hash(lines[-1])
    code, out = audit_verify(capsys, str(log))
    assert code == 0 and f"intact: {len(lines)} lines" in out and anchor in out
    assert audit_verify(capsys, str(log), "--end", anchor)[0] == 0

    # an allow's verdict flipped (line 20): the chain breaks at line 21, and line 20 is named
    k = next(n for n in range(20, len(lines)) if b'"verdict":"deny"' in lines[n - 1])
    edited = [*lines]
    edited[k - 1] = lines[k - 1].replace(b'"verdict":"deny"', b'"verdict":"allow"')
    code, out = audit_verify(capsys, str(write_lines(tmp_path / "edited.jsonl", edited)))
    assert code == 1 and f"line {k}: edited" in out and f"lines 1-{k - 1} verify" in out

    removed = lines[:29] + lines[30:]  # line 30 removed
    code, out = audit_verify(capsys, str(write_lines(tmp_path / "removed.jsonl", removed)))
    assert code == 1 and "line 30: removed" in out and "1 line removed before it" in out

    swapped = [*lines]
    swapped[39], swapped[40] = lines[40], lines[39]  # lines 40 and 41
    code, out = audit_verify(capsys, str(write_lines(tmp_path / "swapped.jsonl", swapped)))
    assert code == 1 and "line 40: reordered" in out and "seq 40 is at line 41" in out

    repeated = [*lines[:45], lines[44], *lines[45:]]
    code, out = audit_verify(capsys, str(write_lines(tmp_path / "repeated.jsonl", repeated)))
    assert code == 1 and "line 46: duplicated" in out

    code, out = audit_verify(capsys, str(write_lines(tmp_path / "head.jsonl", lines[3:])))
    assert code == 1 and "line 1: removed" in out

    # whole lines cut from the end: the chain alone cannot know, but the segment has lost its chain-end line, and
    # against the published end hash it fails
    cut = write_lines(tmp_path / "cut.jsonl", lines[:-10])
    code, out = audit_verify(capsys, str(cut))
    assert code == 0 and "no chain-end line" in out
    code, out = audit_verify(capsys, str(cut), "--end", anchor)
    assert code == 1 and "anchor" in out and "cut short or edited" in out

    # cut inside a line: torn
    torn = write_lines(tmp_path / "torn.jsonl", [*lines[:-10], lines[-10][:50]])
    code, out = audit_verify(capsys, str(torn))
    last = len(lines) - 10
    assert code == 1 and f"line {last + 1}: torn" in out
    assert f"verifies up to line {last}, its last complete line" in out

    # a line rewritten into another key order (same JSON, other bytes) is an edit too
    body = json.loads(lines[5])
    reordered = [*lines]
    reordered[5] = json.dumps(dict(reversed(body.items())), separators=(",", ":")).encode() + b"\n"
    code, out = audit_verify(capsys, str(write_lines(tmp_path / "keys.jsonl", reordered)))
    assert code == 1 and "line 6:" in out

    code, out = audit_verify(capsys, str(write_lines(tmp_path / "empty.jsonl", [])))
    assert code == 1 and "line 1: removed: the file is empty" in out

    code, out = audit_verify(capsys, str(tmp_path / "missing.jsonl"))
    assert code == 2 and "No such file" in out
    assert audit_verify(capsys, str(log), "--end", "not-a-hash")[0] == 2


@deferred_f_from_coro_f
async def test_a_second_crawl_on_the_same_log_continues_its_chain_in_a_new_segment(
    small_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    server = small_server
    log = tmp_path / "audit.jsonl"
    first = await run_crawl(MicroblogSpider, consent_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    size = len(log.read_bytes().splitlines())
    changed = consent_settings(tmp_path, CONSENTCRAWL_CONSERVATIVE=False,
                               CONSENTCRAWL_CUSTOM_PURPOSES={"price-watch": ["research"]})
    second = await run_crawl(MicroblogSpider, changed, proxy=server.proxy, monkeypatch=monkeypatch)
    result = verify(log)
    assert result.ok and len(result.segments) == 2 and len(result.chains) == 1
    assert [s.first for s in result.segments] == [1, size + 1] and all(s.closed for s in result.segments)
    entries = read_audit_log(log)
    start = entries[size]
    assert start["event"] == "chain-start" and start["seq"] == size + 1
    assert start["prev"] == first.stats["consentcrawl/audit_chain_end"]  # linked to the first crawl's end
    assert start["chain"] == entries[0]["chain"]
    # the settings that decide are in the header, and its hash changes with them
    assert entries[0]["config"]["signals"]["conservative"] is True
    assert start["config"]["signals"]["conservative"] is False
    assert entries[0]["config"]["signals"]["custom_purposes"] == {}
    assert start["config"]["signals"]["custom_purposes"] == {"price-watch": ["research"]}
    assert entries[0]["config_sha256"] != start["config_sha256"]
    assert entries[0]["config"]["platforms"][0]["sha256"] == line_hash(Path(entries[0]["config"]["platforms"][0]
                                                                              ["path"]).read_bytes())
    # the first crawl's published end hash is still a line of the log: what follows was added later
    code, out = audit_verify(capsys, str(log), "--end", first.stats["consentcrawl/audit_chain_end"])
    assert code == 0 and f"line {size}'s" in out
    assert second.stats["consentcrawl/audit_chain_end"] == result.end


def test_the_verifier_in_the_docs_agrees_with_audit_verify(tmp_path: Path) -> None:
    """docs/audit-log.md gives a 20-line verifier for third parties: run it, as it is printed there."""
    text = (ROOT / "docs" / "audit-log.md").read_text()
    code = text.split("A verifier in 20 lines", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 20
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, header={"config": {}})
    for n in range(5):
        log.event("note", {"n": n, "text": "é\u2028"}, time=datetime.now(timezone.utc), durable=n % 2 == 0)
    log.close()
    AuditLog(path).close()

    def run(target: Path) -> str:
        proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=30)
        return proc.stdout.strip()

    assert run(path) == f"intact: 9 lines, end hash {verify(path).end}"
    lines = path.read_bytes().splitlines(keepends=True)
    assert run(write_lines(tmp_path / "swapped.jsonl", [lines[0], lines[2], lines[1], *lines[3:]])) == (
        "line 2: does not follow line 1")
    assert run(write_lines(tmp_path / "torn.jsonl", [*lines[:4], lines[4][:10]])).startswith(
        f"line 5: torn; verifies up to line 4, end hash {line_hash(lines[3])}")


def test_a_log_is_written_by_one_writer_and_a_log_without_a_chain_is_not_continued(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    with pytest.raises(ConfigError, match=r"another crawl .* is writing it"):
        AuditLog(path)
    log.close()
    AuditLog(path).close()  # once closed, the next one continues
    assert verify(path).ok and len(verify(path).segments) == 2

    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text('{"decision_id":"x","verdict":"allow"}\n')
    with pytest.raises(ConfigError, match=r"legacy.jsonl: line 1 is not the chain-start line"):
        AuditLog(legacy)
    assert legacy.read_text() == '{"decision_id":"x","verdict":"allow"}\n'  # left as it was
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(path.read_bytes() + b'{"appended":"by hand"}\n')
    with pytest.raises(ConfigError, match="last complete line does not end with its seq and prev"):
        AuditLog(edited)


@deferred_f_from_coro_f
async def test_a_crawl_refuses_to_start_on_a_log_it_cannot_continue(
    small_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    server = small_server
    (tmp_path / "audit.jsonl").write_text('{"decision_id":"x","verdict":"allow"}\n')
    result = await run_crawl(MicroblogSpider, consent_settings(tmp_path), proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "consentcrawl_config_error" and not result.items
    assert not [r for r in server.requests if not r.path.startswith("/robots.txt")]
    assert any("audit.jsonl: line 1 is not the chain-start line" in r.getMessage() for r in caplog.records)


#: a crawl in its own process whose audit file takes each write in two parts with a pause between, so that a
#: SIGKILL lands inside a line (a real torn line, as a crash in the middle of a write leaves)
KILLED_CRAWL = r"""
import sys, time
from consentcrawl.audit import log as audit_log

class TwoPartWrites:
    def __init__(self, raw):
        self.raw, self.split = raw, False
    def write(self, data):
        self.split = not self.split
        if self.split and len(data) > 1:
            written = self.raw.write(data[:len(data) // 2])
            time.sleep(0.15)
            return written
        return self.raw.write(data)
    def fileno(self):
        return self.raw.fileno()
    def close(self):
        self.raw.close()

opened = audit_log.AuditLog.__init__
def open_slowly(self, *args, **kwargs):
    opened(self, *args, **kwargs)
    if self._file is not None:
        self._file = TwoPartWrites(self._file)
audit_log.AuditLog.__init__ = open_slowly

from scrapy.crawler import CrawlerProcess
from scrapy.utils.project import get_project_settings
settings = get_project_settings()
settings.set("CONSENTCRAWL_AUDIT_LOG", sys.argv[1], priority="cmdline")
settings.set("LOG_LEVEL", "INFO", priority="cmdline")
process = CrawlerProcess(settings)
process.crawl("microblog")
process.start()
"""


def crawl_env(proxy: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(http_proxy=proxy, PYTHONWARNINGS="ignore")
    return env


@deferred_f_from_coro_f
async def test_a_crawl_killed_mid_line_leaves_a_log_that_verifies_up_to_its_last_complete_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "audit.jsonl"
    with LocalServer(MicroblogSite(n_profiles=60)) as server:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_CRAWL, str(log)], cwd=ROOT, env=crawl_env(server.proxy),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                data = log.read_bytes() if log.exists() else b""
                profiles = sum(r.path.startswith("/u/") for r in server.requests)
                if profiles >= 3 and data.count(b"\n") >= 15 and not data.endswith(b"\n"):
                    break  # in the middle of a line, with profiles fetched
                time.sleep(0.01)
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
        served = [r.url for r in server.requests if r.path.startswith("/u/")]
        data = log.read_bytes()
        complete = data.count(b"\n")
        assert not data.endswith(b"\n") and served
        code, out = audit_verify(capsys, str(log))
        assert code == 1 and f"line {complete + 1}: torn" in out
        assert f"the chain verifies up to line {complete}, its last complete line" in out
        result = verify(log)
        assert result.lines == complete and result.end == line_hash(data.splitlines(keepends=True)[complete - 1])
        # and the server's own log says the chain was ahead of it: every profile it served has its allow in a
        # complete line
        allowed = {e["url"] for e in (json.loads(line) for line in data.splitlines(keepends=True)[:complete])
                   if e.get("phase") == "request" and e.get("verdict") == "allow"}
        assert set(served) <= allowed

        # the next crawl on the same log cuts the torn line off, says so in its chain-start line, and continues
        await run_crawl(MicroblogSpider, consent_settings(tmp_path, CONSENTCRAWL_AUDIT_LOG=str(log)),
                        proxy=server.proxy, monkeypatch=monkeypatch)
    assert audit_verify(capsys, str(log))[0] == 0
    entries = read_audit_log(log)
    start = entries[complete]
    torn = data[data.rindex(b"\n") + 1:]
    assert start["event"] == "chain-start" and start["torn"]["line"] == complete + 1
    assert start["torn"]["bytes"] == len(torn) and start["torn"]["sha256"] == line_hash(torn)
    assert verify(log).segments[0].closed is False  # the killed crawl's segment never closed


def test_two_crawl_processes_write_two_chains_that_merge_into_one_that_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    logs = [tmp_path / "worker-a.jsonl", tmp_path / "worker-b.jsonl"]
    with LocalServer(MicroblogSite(n_profiles=40)) as server:
        procs = [subprocess.Popen([sys.executable, "-m", "scrapy", "crawl", "microblog", "-s", "LOG_LEVEL=INFO",
                                   "-s", f"CONSENTCRAWL_AUDIT_LOG={log}"], cwd=ROOT, env=crawl_env(server.proxy),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for log in logs]
        errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    results = [verify(log) for log in logs]
    assert all(r.ok for r in results) and results[0].chains != results[1].chains
    for result, stderr in zip(results, errors, strict=True):  # the end hash the crawl printed at its close
        assert f"with hash {result.end}" in stderr

    merged = tmp_path / "merged.jsonl"
    assert main(["audit", "merge", *map(str, logs), "-o", str(merged)]) == 0
    assert "merged into" in capsys.readouterr().err
    code, out = audit_verify(capsys, str(merged))
    assert code == 0 and f"intact: {results[0].lines + results[1].lines + 2} lines" in out
    entries = read_audit_log(merged)
    header = entries[0]
    assert [(s["chain"], s["lines"], s["end"]) for s in header["merged"]] == [
        (r.chains[0], r.lines, r.end) for r in results]
    carried = entries[1:-1]
    for result, log in zip(results, logs, strict=True):  # each source line is there, in its order, with its origin
        mine = [e for e in carried if e["origin"]["chain"] == result.chains[0]]
        assert [e["origin"]["seq"] for e in mine] == list(range(1, result.lines + 1))
        assert [e.get("decision_id") for e in mine] == [e.get("decision_id") for e in read_audit_log(log)]
    times = [datetime.fromisoformat(e["time"]) for e in carried]
    assert times == sorted(times)  # time-ordered

    # the merged log proves its sources: a source line altered inside it, even with the merged chain sealed anew,
    # is caught against the origin's chain
    lines = merged.read_bytes().splitlines(keepends=True)
    k = next(n for n, line in enumerate(lines) if b'"verdict":"deny"' in line)
    resealed, prev = [], "0" * 64
    for n, line in enumerate(lines):
        body, seq, _ = unseal(line) or (b"", 0, "")
        if n == k:
            body = body.replace(b'"verdict":"deny"', b'"verdict":"allow"')
        resealed.append(seal(body, seq, prev))
        prev = line_hash(resealed[-1])
    code, out = audit_verify(capsys, str(write_lines(tmp_path / "forged.jsonl", resealed)))
    assert code == 1 and f"line {k + 1}: source" in out

    # cut short by whole lines, it no longer proves its sources: an error, not a note
    code, out = audit_verify(capsys, str(write_lines(tmp_path / "merged-cut.jsonl", lines[:-3])))
    assert code == 1 and f"line {len(lines) - 3}: source" in out and "cut short" in out

    # a source that does not verify is refused, naming the file and the line
    bad = logs[1].read_bytes().splitlines(keepends=True)
    del bad[10]
    write_lines(logs[1], bad)
    assert main(["audit", "merge", *map(str, logs), "-o", str(tmp_path / "again.jsonl")]) == 1
    err = capsys.readouterr().err
    assert f"{logs[1]}: line 11: removed" in err and not (tmp_path / "again.jsonl").exists()
    assert main(["audit", "merge", str(logs[0]), str(logs[0])]) == 1  # one chain twice
    assert main(["audit", "merge", str(logs[0]), "-o", str(merged)]) == 2  # never over an existing file
