"""Large authorization files (issue 14, "Stores"): read as a stream, cached in SQLite over the threshold (lowered
here to a few dozen records), reused while unchanged, followed live; replaced SQLite stores fail closed; and the
``authorizations`` commands.

Real files, real SQLite, real crawls against the local ``people`` platform judged by its own request log.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl.consent.filecache import cache_paths
from consentcrawl.consent.filerows import csv_header
from consentcrawl.consent.load import load_authorizations
from consentcrawl.consent.progress import Progress
from consentcrawl.consent.sqlite import SQLiteStore
from consentcrawl.errors import ConfigError, StoreUnavailable
from consentcrawl.terms.load import load_platforms
from consentcrawl.terms.platforms import PlatformRegistry
from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, make_spider, once_served, people_settings, write_config
from tests.lenient import crawl as run_crawl
from tests.test_live_stores import text_of  # one writer of test authorization files in every format
from tests.test_remote_stores import _judge
from tests.test_send_time import RepeatLogic, went_on

FORMATS = ("yaml", "csv", "jsonl")
THRESHOLD = 40
GRANTED = "2026-01-01T00:00:00Z"
FILLER = [f"p{n}" for n in range(60)]  #: people beyond the threshold, so that the file goes to its cache


@pytest.fixture
def platforms(tmp_path: Path) -> PlatformRegistry:
    path, _ = write_config(tmp_path)
    return load_platforms([str(path)])


def record(subject: str, *, revoked_at: str | None = None, evidence: str = "consent form") -> dict[str, Any]:
    fields: dict[str, Any] = {"platform": "people", "subject": subject, "purposes": ["research"],
                              "granted_at": GRANTED, "evidence": evidence}
    if revoked_at:
        fields["revoked_at"] = revoked_at
    return fields


def people_file(tmp_path: Path, fmt: str, subjects: list[str], name: str = "records") -> Path:
    path = tmp_path / f"{name}.{fmt}"
    path.write_text(text_of(fmt, [record(s) for s in subjects]), encoding="utf-8")
    return path


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def wait_for(condition: Any, bound: float = 2.0) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > bound:
            pytest.fail(f"not within {bound} s")
        time.sleep(0.02)
    return time.monotonic() - start


def outcome(store: Any, subject: str) -> Any:
    try:
        return store.lookup("people", subject)
    except StoreUnavailable as exc:
        return exc


def file_id(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


# -- the cache: built once, reused while the file is unchanged ------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_over_the_threshold_is_cached_once_and_reused_while_unchanged(
        tmp_path: Path, platforms: PlatformRegistry, fmt: str) -> None:
    path = people_file(tmp_path, fmt, ["101", "Alice", *FILLER])
    path.write_text(path.read_text(encoding="utf-8") + text_of(fmt, [record("ALICE", revoked_at="2026-03-01")],
                                                               header=False), encoding="utf-8")
    in_memory = load_authorizations(path, platforms, threshold=None)
    first = load_authorizations(path, platforms, threshold=THRESHOLD)
    cache = cache_paths(str(path))[0]
    assert in_memory.cached is None and first.cached is not None and first.cache_builds == 1
    assert Path(first.cached.path) == cache and cache.exists()
    for subject in ("101", "alice", "p0", "p59", "nobody"):  # the same records, naming the same file and line
        assert tuple(first.lookup("people", subject)) == tuple(in_memory.lookup("people", subject)), subject
    assert [r.source for r in first.lookup("people", "alice")] == [r.source for r in in_memory.lookup("people",
                                                                                                       "alice")]
    assert len(first) == len(in_memory) == 63
    built = file_id(cache)
    second = load_authorizations(path, platforms, threshold=THRESHOLD)
    assert second.cache_builds == 0 and file_id(cache) == built  # reused, not rebuilt
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))  # touched: same size, same bytes
    assert load_authorizations(path, platforms, threshold=THRESHOLD).cache_builds == 0 and file_id(cache) == built
    path.write_text(text_of(fmt, [record(s) for s in ["102", *FILLER]]), encoding="utf-8")
    third = load_authorizations(path, platforms, threshold=THRESHOLD)
    assert third.cache_builds == 1 and file_id(cache) != built
    assert third.lookup("people", "102") and third.lookup("people", "101") == ()
    for store in (first, second, third):
        store.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "building" in p.name) == []  # no scratch files left


def test_a_file_under_the_threshold_stays_in_memory(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = people_file(tmp_path, "jsonl", FILLER[:THRESHOLD])
    store = load_authorizations(path, platforms, threshold=THRESHOLD)
    assert store.cached is None and not cache_paths(str(path))[0].exists() and len(store) == THRESHOLD


def test_the_cache_goes_to_the_cache_directory_when_the_files_directory_is_not_writable(
        tmp_path: Path, platforms: PlatformRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    from consentcrawl.consent import filecache

    shared = tmp_path / "shared"
    shared.mkdir()
    path = people_file(shared, "jsonl", FILLER)
    shared.chmod(0o555)
    if os.geteuid() == 0:  # root writes into read-only directories: say the directory is not writable
        writable = filecache._writable
        monkeypatch.setattr(filecache, "_writable", lambda d: d != shared and writable(d))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        store = load_authorizations(path, platforms, threshold=THRESHOLD)
        assert store.cached is not None and Path(store.cached.path) == cache_paths(str(path))[1]
        assert str(tmp_path / "cache") in store.cached.path and not cache_paths(str(path))[0].exists()
        again = load_authorizations(path, platforms, threshold=THRESHOLD)
        assert again.cache_builds == 0 and again.cached is not None  # found there next time
        store.close()
        again.close()
    finally:
        shared.chmod(0o755)


@pytest.mark.parametrize("fmt", FORMATS)
def test_errors_in_a_big_file_name_the_file_and_line_and_leave_no_cache(
        tmp_path: Path, platforms: PlatformRegistry, fmt: str) -> None:
    records = [record(s) for s in FILLER] + [record("has/slash")]
    path = tmp_path / f"bad.{fmt}"
    path.write_text(text_of(fmt, records), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_authorizations(path, platforms, threshold=THRESHOLD)
    line = {"yaml": 3 + 5 * 60, "csv": 62, "jsonl": 61}[fmt]  # YAML: the line of the subject
    assert (error.value.source, error.value.line) == (str(path), line)
    assert not cache_paths(str(path))[0].exists()
    assert [p.name for p in tmp_path.iterdir() if "building" in p.name or p.suffix == ".staging"] == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_duplicate_past_the_threshold_names_both_lines(tmp_path: Path, platforms: PlatformRegistry,
                                                         fmt: str) -> None:
    path = people_file(tmp_path, fmt, ["Alice", *FILLER, "ALICE"])  # the same person, the same grant
    with pytest.raises(ConfigError) as error:
        load_authorizations(path, platforms, threshold=THRESHOLD)
    first, second = {"yaml": (2, 2 + 5 * 61), "csv": (2, 63), "jsonl": (1, 62)}[fmt]
    assert error.value.line == second and f"lines {first} and {second}" in error.value.message
    with pytest.raises(ConfigError) as in_memory:
        load_authorizations(path, platforms, threshold=None)
    assert (in_memory.value.line, in_memory.value.message) == (error.value.line, error.value.message)


# -- live: a change is seen within 2 s -------------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["append", "rename", "rewrite", "broken"])
def test_a_cached_file_follows_its_changes(tmp_path: Path, platforms: PlatformRegistry, change: str) -> None:
    """An append (in place, or a file renamed over it that starts with the old bytes) is added to the cache; any
    other change imports the whole file again."""
    path = people_file(tmp_path, "jsonl", ["101", *FILLER])
    store = load_authorizations(path, platforms, threshold=THRESHOLD, interval=0.05)
    before = store.version
    assert store.cached is not None and store.lookup("people", "101")[0].revoked_at is None
    withdrawal = text_of("jsonl", [record("101", revoked_at="2026-03-01T00:00:00Z")])
    if change == "append":
        with path.open("a", encoding="utf-8") as f:
            f.write(withdrawal)
    elif change in ("rename", "rewrite"):
        fresh = tmp_path / "fresh.jsonl"
        old = path.read_text(encoding="utf-8")
        lines = old.splitlines(keepends=True)
        fresh.write_text(old + withdrawal if change == "rename" else lines[0] + lines[1].replace("p0", "p00")
                         + "".join(lines[2:]) + withdrawal, encoding="utf-8")
        os.replace(fresh, path)
    else:
        with path.open("a", encoding="utf-8") as f:
            f.write('{"platform": "people", "subject": \n')
    if change == "broken":
        wait_for(lambda: isinstance(outcome(store, "101"), StoreUnavailable))  # from the moment it is seen
        wait_for(lambda: "does not read cleanly, line 62: invalid JSON" in str(outcome(store, "p1")))
        assert isinstance(outcome(store, "p59"), StoreUnavailable)
        return
    took = wait_for(lambda: not isinstance(outcome(store, "101"), StoreUnavailable)
                    and len(store.lookup("people", "101")) == 2)
    assert took < 2.0 and store.version != before
    assert store.lookup("people", "101")[1].source == f"{path}:62"
    appended = change != "rewrite"
    assert (store.appends, store.reloads, store.cache_builds) == ((1, 0, 1) if appended else (0, 1, 2))
    assert store.cached is not None and store.lookup("people", "p00" if change == "rewrite" else "p0")
    store.close()
    # the cache records the file as it is now: opened again, it is reused as it stands
    assert load_authorizations(path, platforms, threshold=THRESHOLD).cache_builds == 0


@pytest.mark.parametrize("change", ["append", "rename", "bad row", "duplicate"])
def test_rows_appended_to_a_cached_csv_file_are_added_to_its_cache(tmp_path: Path, platforms: PlatformRegistry,
                                                                     change: str) -> None:
    """As for JSONL: rows appended (in place, or in a file renamed over it that starts with the old bytes) are read
    under the file's header and added to the cache, naming their lines; rows that do not read cleanly are not added,
    and the whole file is read again and says what is wrong."""
    path = people_file(tmp_path, "csv", ["101", *FILLER])
    store = load_authorizations(path, platforms, threshold=THRESHOLD, interval=0.05)
    assert store.cached is not None and len(store.lookup("people", "101")) == 1
    withdrawal = text_of("csv", [record("101", revoked_at="2026-03-01T00:00:00Z")], header=False)
    text = {"append": withdrawal, "rename": withdrawal, "bad row": "people,102\n",
            "duplicate": text_of("csv", [record("p3")], header=False)}[change]
    if change == "rename":
        fresh = tmp_path / "fresh.csv"
        fresh.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")
        os.replace(fresh, path)
    else:
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
    if change in ("bad row", "duplicate"):
        expected = {"bad row": "line 63: row has 2 cells", "duplicate": "line 63: duplicate authorization record"}
        wait_for(lambda: expected[change] in str(outcome(store, "p1")))
        assert store.appends == 0 and isinstance(outcome(store, "101"), StoreUnavailable)
        store.close()
        return
    wait_for(lambda: not isinstance(outcome(store, "101"), StoreUnavailable)
             and len(store.lookup("people", "101")) == 2)
    assert store.lookup("people", "101")[1].source == f"{path}:63" and store.lookup("people", "p59")
    assert (store.appends, store.reloads, store.cache_builds) == (1, 0, 1)
    store.close()
    assert load_authorizations(path, platforms, threshold=THRESHOLD).cache_builds == 0  # the cache is the file's


def test_a_csv_header_is_read_from_the_files_first_bytes_only_when_they_hold_it() -> None:
    assert csv_header(b"\xef\xbb\xbf\n platform ,subject\npeople,1\n") == ["platform", "subject"]
    assert csv_header(b'"platform\nx",subject\n') == ["platform\nx", "subject"]  # a quoted header over two lines
    assert csv_header(b"platform,subj") is None and csv_header(b'"platform\n') is None and csv_header(b"") is None
    assert csv_header(b"platform,subject\xc3") is None  # cut in a character


@pytest.mark.parametrize("appended", ["duplicate", "no newline", "bad record"])
def test_an_append_that_does_not_read_cleanly_fails_closed_as_the_whole_file_would(
        tmp_path: Path, platforms: PlatformRegistry, appended: str) -> None:
    """The appended part is not added to the cache when it does not read cleanly: the whole file is read again
    and says what is wrong (file and line, as for any read), and lookups deny until it reads cleanly."""
    path = people_file(tmp_path, "jsonl", ["101", *FILLER])
    store = load_authorizations(path, platforms, threshold=THRESHOLD, interval=0.05)
    text = {"duplicate": json.dumps(record("p3")) + "\n",
            "no newline": json.dumps(record("101", revoked_at="2026-03-01T00:00:00Z")),
            "bad record": json.dumps({**record("102"), "purposes": ["bogus"]}) + "\n"}[appended]
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
    if appended == "no newline":  # a last line without its newline is read with the whole file: no error
        wait_for(lambda: not isinstance(outcome(store, "101"), StoreUnavailable) and store.reloads == 1)
        assert len(store.lookup("people", "101")) == 2
        assert store.appends == 0 and store.cache_builds == 2
        return
    expected = {"duplicate": "line 62: duplicate authorization record", "bad record": "line 62: unknown purpose"}
    wait_for(lambda: expected[appended] in str(outcome(store, "p1")))
    assert store.appends == 0 and isinstance(outcome(store, "101"), StoreUnavailable)
    store.close()


class SlowRepeat(RepeatLogic):
    """Asks for 101 and 102 every 0.3 s for 7 s at most: the change comes 0.5 s after 101 was first served."""

    seconds = 7.0


@pytest.mark.parametrize(("store_kind", "change", "fmt"), [
    ("cache", "append", "jsonl"), ("cache", "rewrite", "jsonl"), ("cache", "rename", "yaml"),
    ("memory", "rename", "jsonl"), ("memory", "append", "yaml"), ("sqlite", "replaced", "jsonl")])
@deferred_f_from_coro_f
async def test_a_withdrawal_mid_crawl_stops_the_fetches_within_2_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, store_kind: str,
        change: str, fmt: str) -> None:
    """A withdrawal appended to a cached file is added to its cache: seen within 2 s, and nobody else is denied
    meanwhile (the file is big enough that importing it again would take a while); a file renamed over or
    rewritten otherwise denies until it is imported again."""
    caplog.set_level(logging.INFO, logger="consentcrawl.consent.load")
    settings = people_settings(tmp_path)
    records = tmp_path / f"records.{fmt}"
    big = [f"q{n}" for n in range(20_000)] if (store_kind, change) == ("cache", "append") else []
    records.write_text(text_of(fmt, [record(s) for s in ["101", "102", "103", *FILLER, *big]]), encoding="utf-8")
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = str(records)
    settings["CONSENTCRAWL_AUTHORIZATIONS_CACHE_THRESHOLD"] = THRESHOLD if store_kind == "cache" else None
    db = tmp_path / "store.db"
    if store_kind == "sqlite":
        assert main(["authorizations", "import", str(records), f"sqlite:///{db}", "--platforms",
                     settings["CONSENTCRAWL_PLATFORMS"]]) == 0
        settings["CONSENTCRAWL_AUTHORIZATIONS"] = f"sqlite:///{db}"
    written: list[float] = []
    began: list[float] = []

    def withdraw() -> None:
        began.append(time.time())
        withdrawal = text_of(fmt, [record("101", revoked_at=now_iso(), evidence="withdrawn")], header=False)
        if change == "append":
            with records.open("a", encoding="utf-8") as f:
                f.write(withdrawal)
        elif change in ("rename", "rewrite"):  # the withdrawal at the end, or at the start: not an append
            fresh = tmp_path / f"fresh.{fmt}"
            old = records.read_text(encoding="utf-8")
            fresh.write_text(old + withdrawal if change == "rename" else withdrawal + old, encoding="utf-8")
            os.replace(fresh, records)
        else:  # another SQLite file, not a consentcrawl store, renamed over the store
            other = tmp_path / "other.db"
            conn = sqlite3.connect(other)
            conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, x TEXT)")
            conn.commit()
            conn.close()
            os.replace(other, db)
        written.append(time.time())

    app = LenientPeople()
    with LocalServer(app) as server, once_served(app, "101", withdraw):
        result = await run_crawl(make_spider("ConsentSpider", SlowRepeat), settings, proxy=server.proxy,
                                 monkeypatch=monkeypatch, follow_links=False, enough=went_on(app, written, 2.0 + 2))
    assert written, "the change was not made during the crawl"
    if store_kind == "cache":
        assert cache_paths(str(records))[0].exists()
    if (store_kind, change) == ("cache", "append"):  # added to the cache: no lookup failed meanwhile
        assert not [e for e in result.audit if e["reason"] == "error.store-unavailable"]
        assert "1 appended record(s) added to its cache" in caplog.text
    if change != "replaced":
        _judge(app, result, written[0], bound=2.0, began=began[0])
        return
    late = [round(t - written[0], 2) for person in ("101", "102") for t in app.times_served(person)
            if t > written[0] + 2.0]
    assert any(t < written[0] for t in app.times_served("101")) and not late, late
    denied = [e for e in result.audit if e["reason"] == "error.store-unavailable"]
    assert denied and "not a consentcrawl authorization store" in json.dumps(denied[0]["evidence"])


def test_sqlite_replaced_by_a_database_of_another_schema_fails_closed_until_a_store_is_back(
        tmp_path: Path, platforms: PlatformRegistry) -> None:
    records = people_file(tmp_path, "jsonl", ["101", "102"])
    db = tmp_path / "store.db"
    platforms_file = str(tmp_path / "platforms.yaml")
    assert main(["authorizations", "import", str(records), f"sqlite:///{db}", "--platforms", platforms_file]) == 0
    store = SQLiteStore(f"sqlite:///{db}", platforms.platforms)
    assert store.lookup("people", "101")
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")  # a look-alike without our format
    conn.commit()
    conn.close()
    os.replace(other, db)
    wait_for(lambda: isinstance(outcome(store, "101"), StoreUnavailable))
    assert "not a consentcrawl authorization store" in str(outcome(store, "102"))
    assert main(["authorizations", "import", str(records), f"sqlite:///{tmp_path / 'new.db'}", "--platforms",
                 platforms_file]) == 0
    os.replace(tmp_path / "new.db", db)
    wait_for(lambda: not isinstance(outcome(store, "101"), StoreUnavailable))
    store.close()


# -- consentcrawl check reuses the cache ----------------------------------------------------------------------------


def test_check_with_a_big_file_builds_the_cache_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import PLATFORMS

    records = tmp_path / "big.jsonl"
    records.write_text("".join(json.dumps({"platform": "microblog", "subject": str(5000 + n), "purposes": ["research"],
                                           "granted_at": GRANTED, "evidence": "form"}) + "\n" for n in range(80)),
                       encoding="utf-8")
    (tmp_path / "bigsettings.py").write_text("CONSENTCRAWL_AUTHORIZATIONS_CACHE_THRESHOLD = 20\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = ["check", "http://microblog.example/u/5001", "--purpose", "research", "--settings", "bigsettings",
            "--platforms", str(PLATFORMS), "--authorizations", str(records), "--now", "2026-11-27T12:00:00Z",
            "--json"]
    cache = cache_paths(str(records))[0]
    ids = []
    for _ in range(2):
        main(args)  # robots.txt cannot be fetched here: the decision is not the point, the store is
        capsys.readouterr()
        assert cache.exists()
        ids.append(file_id(cache))
    assert ids[0] == ids[1]


# -- the commands ---------------------------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_reports_every_error_with_its_line_and_no_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    platforms_file, _ = write_config(tmp_path)
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([
        json.dumps(record("secret/person")),
        "{not json",
        json.dumps({**record("103"), "purposes": ["reserch"]}),
        json.dumps(record("104")),
        json.dumps(record("104")),
    ]) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "authorizations", "validate", str(path), "--platforms", str(platforms_file))
    assert code == 1
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{path}:{n}" for n in (1, 2, 3, 5)]
    assert "unknown purpose '…' in 'purposes' (did you mean 'research'?)" in lines[2]
    assert "duplicate authorization record" in lines[3] and "lines 4 and 5" in lines[3]
    assert "secret/person" not in out + err and "reserch" not in out + err
    assert "1 valid record(s); 4 error(s)" in err
    good = people_file(tmp_path, "yaml", ["101", "102"])
    assert run(capsys, "authorizations", "validate", str(good), "--platforms", str(platforms_file))[0] == 0
    assert run(capsys, "authorizations", "validate", str(tmp_path / "none.csv"), "--platforms",
               str(platforms_file))[0] == 2


@pytest.mark.parametrize("verb", ["validate", "stats"])
@pytest.mark.parametrize("store", ["redis://127.0.0.1:1/0", "https://crm.example/consent"])
def test_validate_and_stats_of_a_remote_store_say_what_they_read(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 verb: str, store: str) -> None:
    """A Redis store or a consent API is no file of that name: one line naming SRC, and where to look instead."""
    platforms_file, _ = write_config(tmp_path)
    code, out, err = run(capsys, "authorizations", verb, store, "--platforms", str(platforms_file))
    assert code == 2 and out == ""
    assert err.startswith(f"consentcrawl: configuration error: SRC: {verb} reads a .yaml, .csv or .jsonl file or an "
                          "sqlite:/// store, not a remote store"), err
    assert f"authorizations show --authorizations {store} PLATFORM:SUBJECT" in err and "file type" not in err


def test_validate_an_sqlite_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    platforms_file, _ = write_config(tmp_path)
    db = tmp_path / "store.db"
    records = people_file(tmp_path, "jsonl", ["101", *FILLER])
    assert run(capsys, "authorizations", "import", str(records), f"sqlite:///{db}", "--platforms",
               str(platforms_file))[0] == 0
    code, _, err = run(capsys, "authorizations", "validate", f"sqlite:///{db}", "--platforms", str(platforms_file))
    assert code == 0 and "61 record(s) of 61 people" in err
    db.write_bytes(db.read_bytes()[:4096])  # truncated
    code, out, err = run(capsys, "authorizations", "validate", f"sqlite:///{db}", "--platforms", str(platforms_file))
    assert code != 0 and ("truncated" in err + out or "malformed" in err + out)


def test_import_show_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    platforms_file, _ = write_config(tmp_path)
    db = f"sqlite:///{tmp_path / 'store.db'}"
    records = people_file(tmp_path, "jsonl", ["101", "102", *FILLER])
    code, out, _ = run(capsys, "authorizations", "import", str(records), db, "--platforms", str(platforms_file))
    assert code == 0 and "imported 62 record(s)" in out and "62 record(s) of 62 people" in out
    withdrawal = tmp_path / "withdrawal.yaml"
    withdrawal.write_text(text_of("yaml", [record("101", revoked_at="2026-03-01T00:00:00Z")]), encoding="utf-8")
    code, out, _ = run(capsys, "authorizations", "import", str(withdrawal), db, "--platforms", str(platforms_file))
    assert code == 0 and "imported 1 record(s)" in out and "63 record(s) of 62 people" in out
    code, out, err = run(capsys, "authorizations", "import", str(withdrawal), db, "--platforms", str(platforms_file))
    assert code == 2 and "withdrawal.yaml, line 2: duplicate authorization record" in err

    code, out, _ = run(capsys, "authorizations", "show", "people:101", "--authorizations", db, "--platforms",
                       str(platforms_file), "--now", "2026-06-01T00:00:00Z", "--json")
    shown = json.loads(out)
    assert code == 0 and [r["status"] for r in shown["records"]] == ["live", "revoked"]
    assert shown["purposes"]["research"] == {"allowed": False, "reason": "subject.revoked", "record": None}
    code, out, _ = run(capsys, "authorizations", "show", "people:102", "--authorizations", str(records),
                       "--platforms", str(platforms_file), "--now", "2026-06-01T00:00:00Z")
    assert code == 0 and f"{records}:2: live" in out
    assert "research               ALLOWED  subject.authorized" in out
    assert "ai-training            denied   subject.purpose" in out
    assert run(capsys, "authorizations", "show", "nope", "--authorizations", db, "--platforms",
               str(platforms_file))[0] == 2

    code, out, _ = run(capsys, "authorizations", "stats", db, "--platforms", str(platforms_file), "--now",
                       "2026-06-01T00:00:00Z", "--json")
    stats = json.loads(out)
    assert code == 0 and (stats["records"], stats["people"], stats["revoked"], stats["live"]) == (63, 62, 1, 62)
    assert stats["platforms"] == {"people": 63} and stats["purposes"] == {"research": 63}
    assert stats["version"].startswith("format 3")
    code, out, _ = run(capsys, "authorizations", "stats", str(records), "--platforms", str(platforms_file))
    assert code == 0 and "62 record(s) of 62 people" in out and "version: sha256 " in out


def test_progress_draws_a_bar_on_a_terminal_and_logs_otherwise(caplog: pytest.LogCaptureFixture) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock = iter([0.0, 2.0, 4.0, 9.0])
    screen = Terminal()
    bar = Progress("importing x.jsonl", 1000, stream=screen, clock=lambda: next(clock))
    bar.update(500, 1234)
    bar.finish(2000)
    assert "[###############...............]  50.0% 1,234 records" in screen.getvalue()
    assert "done, 2,000 records" in screen.getvalue()
    caplog.set_level("INFO")
    clock = iter([0.0, 6.0, 12.0])
    log = Progress("importing x.jsonl", 1000, stream=io.StringIO(), clock=lambda: next(clock))
    log.update(250, 10)
    log.finish(40)
    assert "importing x.jsonl: 25% (10 records, 6 s)" in caplog.text and "done, 40 records" in caplog.text


def test_a_damaged_cache_denies_and_is_built_again_from_the_file(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = people_file(tmp_path, "jsonl", ["101", *FILLER])
    store = load_authorizations(path, platforms, threshold=THRESHOLD, interval=0.05)
    assert store.cached is not None and store.lookup("people", "101")
    cache = Path(store.cached.path)
    cache.write_bytes(b"not a database at all" * 500)  # in place: the file it reads is garbage now
    wait_for(lambda: isinstance(outcome(store, "p3"), StoreUnavailable))  # denies first
    took = wait_for(lambda: not isinstance(outcome(store, "p3"), StoreUnavailable), bound=5.0)
    assert took < 5.0 and store.lookup("people", "101") and store.cache_builds == 2
    assert cache.read_bytes().startswith(b"SQLite format 3")
    store.close()
