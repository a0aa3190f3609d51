"""Bad input as a user gives it: one clear line naming the setting (or the file and line), never a traceback and
never a crawl that goes on. One table for the crawl, one for the command line; each case was a traceback, a line
naming nothing, or a crawl that ran before its fix."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl_demo.server import LocalServer
from tests.conftest import AUTHORIZATIONS, PLATFORMS, ROOT, consent_settings, run_crawl
from tests.test_crawl_e2e import PlainMicroblogSpider

#: JSON nested deeper than Python's parser recurses: json.loads raises RecursionError, not ValueError
DEEP = "[" * 100_000 + "]" * 100_000 + "\n"


class Unbuildable:
    """A class a project might name as its download handler or log formatter, whose constructor fails."""

    def __init__(self, crawler: Any = None) -> None:
        raise RuntimeError("needs a licence key")

    @classmethod
    def from_crawler(cls, crawler: Any) -> Unbuildable:
        return cls(crawler)


def _latin1_authorizations(tmp: Path) -> str:
    text = AUTHORIZATIONS.read_bytes().replace(b"consent form MB-CF-0002", b"consent form caf\xe9")
    line = text[:text.index(b"caf\xe9")].count(b"\n") + 1
    (tmp / "auth.yaml").write_bytes(text)
    return f"line {line}: file is not valid UTF-8"


def _file(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


#: setting, a value (or a function of the test's directory giving one), and what the one CRITICAL line must say
CRAWL_CASES: list[tuple[str, Any, Any]] = [
    ("CONSENTCRAWL_HTTP_HANDLER", "os.path", "CONSENTCRAWL_HTTP_HANDLER: 'os.path' is not a class"),
    ("CONSENTCRAWL_HTTP_HANDLER", "json.JSONDecoder",
     "CONSENTCRAWL_HTTP_HANDLER: 'json.decoder.JSONDecoder' is not a download handler"),
    ("CONSENTCRAWL_HTTPS_HANDLER", "tests.test_bad_input.Unbuildable",
     "CONSENTCRAWL_HTTPS_HANDLER: cannot build 'tests.test_bad_input.Unbuildable': RuntimeError: needs a licence"),
    ("CONSENTCRAWL_HTTP_HANDLER", "consentcrawl.handler.ConsentHTTPDownloadHandler",
     "names a consentcrawl handler, not one that downloads"),
    ("CONSENTCRAWL_LOG_FORMATTER", "json.dumps", "CONSENTCRAWL_LOG_FORMATTER: 'json.dumps' is not a class"),
    ("CONSENTCRAWL_LOG_FORMATTER", "json.JSONDecoder",
     "CONSENTCRAWL_LOG_FORMATTER: 'json.decoder.JSONDecoder' is not a log formatter"),
    ("CONSENTCRAWL_LOG_FORMATTER", "tests.test_bad_input.Unbuildable",
     "CONSENTCRAWL_LOG_FORMATTER: cannot build 'tests.test_bad_input.Unbuildable': RuntimeError"),
    # a path with a NUL in it (a settings module's string built from bytes): Python's ValueError traceback before
    ("CONSENTCRAWL_PLATFORMS", "platforms\x00.yaml", "cannot read file: embedded null byte"),
    ("CONSENTCRAWL_REFUSALS_LOG", "refusals\x00.jsonl", "cannot read the refusal log: embedded null byte"),
    # Scrapy's own settings the add-on hands to the wrapper (an AttributeError traceback in the add-on before)
    ("LOG_FORMATTER", 5, "does not start: LOG_FORMATTER: 5 is not an import path"),
    ("LOG_FORMATTER", "json.dumps", "does not start: LOG_FORMATTER: 'json.dumps' is not a class"),
    ("LOG_FORMATTER", "tests.test_bad_input.Unbuildable",
     "does not start: LOG_FORMATTER: cannot build 'tests.test_bad_input.Unbuildable': RuntimeError"),
    ("DOWNLOAD_HANDLERS", {"https": {"x": 1}},
     "does not start: DOWNLOAD_HANDLERS['https']: {'x': 1} is not an import path"),
    ("CONSENTCRAWL_AUTHORIZATIONS", lambda tmp: str(tmp / "auth.yaml"), _latin1_authorizations),
    ("CONSENTCRAWL_AUTHORIZATIONS", lambda tmp: _file(tmp, "deep.jsonl", DEEP),
     "deep.jsonl, line 1: invalid JSON: nested too deeply"),
    ("CONSENTCRAWL_REFUSALS_LOG", lambda tmp: _file(tmp, "deep.jsonl", DEEP), "deep.jsonl, line 1: not a refusal"),
    ("CONSENTCRAWL_PLATFORMS", lambda tmp: _file(tmp, "deep.yaml", "platforms:\n  mb:\n    domains: " + DEEP),
     "deep.yaml, line 3: YAML syntax error: lists or mappings nested too deeply"),
    ("CONSENTCRAWL_AUDIT_LOG", lambda tmp: _file(tmp, "deep.jsonl", DEEP),
     "deep.jsonl: line 1 is not the chain-start line"),
    # a new user's mistakes: YAML's own tokens were redacted as if they were a person's data ('…' or '…')
    ("CONSENTCRAWL_AUTHORIZATIONS", lambda tmp: _file(tmp, "auth.yaml", AUTHORIZATIONS.read_text().replace(
        "purposes: [research]", "purposes: [research", 1)), "did not find expected ',' or ']'"),
    # `scrapy crawl` from a folder below scrapy.cfg: a relative path is the working directory's, and the line said
    # only "No such file or directory"
    ("CONSENTCRAWL_PLATFORMS", "no-such-platforms.yaml",
     "no-such-platforms.yaml: cannot read file: No such file or directory (relative to the working directory, "),
    ("CONSENTCRAWL_AUTHORIZATIONS", "no-such-authorizations.yaml",
     "no-such-authorizations.yaml: cannot read file: No such file or directory (relative to the working directory, "),
    # a store URL short of its slashes was read as a file name with an unknown suffix ('.db')
    ("CONSENTCRAWL_AUTHORIZATIONS", "sqlite:/consent.db",
     "CONSENTCRAWL_AUTHORIZATIONS: 'sqlite:/consent.db' is not a store URL: write it with '://'"),
    # SQLAlchemy's convention: three slashes and a relative path; the line said only "no such file"
    ("CONSENTCRAWL_AUTHORIZATIONS", "sqlite:///no/such/consent.db",
     "no such file 'no/such/consent.db' (relative to the working directory; an absolute path takes four slashes"),
]


@pytest.mark.parametrize(("name", "value", "message"), CRAWL_CASES,
                         ids=[f"{n}={v if isinstance(v, str) else i}" for i, (n, v, _) in enumerate(CRAWL_CASES)])
@deferred_f_from_coro_f
async def test_a_crawl_with_bad_input_does_not_start_and_says_why_in_one_line(
    name: str, value: Any, message: str | Callable[[Path], str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    expected = message(tmp_path) if callable(message) else message
    value = value(tmp_path) if callable(value) else value
    settings = consent_settings(tmp_path, **{name: value})
    if name == "CONSENTCRAWL_AUDIT_LOG":  # the helper reads the crawl's audit log back: this one is no audit log
        monkeypatch.setattr("tests.conftest.read_audit_log", lambda path: [])
    served: list[Any] = []
    with LocalServer(lambda request, headers: served.append(request)) as server:  # type: ignore[func-returns-value]
        result = await run_crawl(PlainMicroblogSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "consentcrawl_config_error"
    assert served == [] and result.items == []
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and expected in critical[0], critical
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.ERROR), "a line, not a traceback"


@deferred_f_from_coro_f
async def test_a_bad_purpose_the_spider_gives_is_named_as_the_spiders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """`purpose = "Research"` on the spider (or `-a purpose=Research`) was reported as CONSENTCRAWL_PURPOSE's (here
    set, and valid)."""
    class MisspeltPurposeSpider(PlainMicroblogSpider):
        purpose = "Research"

    served: list[Any] = []
    with LocalServer(lambda request, headers: served.append(request)) as server:  # type: ignore[func-returns-value]
        result = await run_crawl(MisspeltPurposeSpider, consent_settings(tmp_path), proxy=server.proxy,
                                 monkeypatch=monkeypatch)
    assert served == []
    assert result.stats["finish_reason"] == "consentcrawl_config_error"
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and "the spider's purpose attribute: unknown purpose 'Research'" in critical[0]


def test_scrapy_crawl_with_a_handler_that_does_not_download_exits_1_with_one_line(tmp_path: Path) -> None:
    """As the user sees it: `scrapy crawl` (the handler is built after the runtime, so the spider closes as it
    opens; before, Scrapy's traceback, then a crawl that ran with no handler and exited 0)."""
    served: list[Any] = []
    with LocalServer(lambda request, headers: served.append(request)) as server:  # type: ignore[func-returns-value]
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
        env.update(http_proxy=server.proxy, PYTHONPATH=str(ROOT))
        proc = subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "microblog", "-s", "CONSENTCRAWL_HTTP_HANDLER=json.JSONDecoder",
             "-s", "LOG_LEVEL=INFO", "-s", f"CONSENTCRAWL_AUDIT_LOG={tmp_path / 'audit.jsonl'}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and served == [], output
    assert "Traceback" not in output, output
    naming = [line for line in output.splitlines() if "CONSENTCRAWL_HTTP_HANDLER:" in line]
    assert len(naming) == 1 and "configuration error" in naming[0] and "not a download handler" in naming[0]


# --------------------------------------------------------------------------- the command line


def _cli_cases() -> list[tuple[str, list[str], int, str]]:
    platforms = ["--platforms", str(PLATFORMS)]
    return [
        ("auth.yaml", ["authorizations", "validate", "{file}", *platforms], 1,
         "{file}:{line}: file is not valid UTF-8"),
        ("deep.jsonl", ["authorizations", "validate", "{file}", *platforms], 1,
         "{file}:1: invalid JSON: nested too deeply"),
        ("auth.yaml", ["check", "http://microblog.example/u/1001", "--purpose", "research", *platforms,
                       "--authorizations", "{file}"], 2, "{file}, line {line}: file is not valid UTF-8"),
        ("deep.yaml", ["authorizations", "validate", "{file}", *platforms], 1,
         "{file}:2: YAML syntax error: lists or mappings nested too deeply"),
        ("deep.jsonl", ["audit", "verify", "{file}"], 1, "{file}: no line verifies"),
        ("deep.jsonl", ["audit", "report", "{file}"], 0, "{file}:1: not JSON"),
        ("deep.jsonl", ["audit", "merge", "{file}", "-o", "{dir}/merged.jsonl"], 1,
         "{file}: line 1: malformed: line 1 is not a JSON object"),
        ("deep.jsonl", ["purge", "--subject", "microblog:1001", *platforms, "--audit-log", "{dir}/purge.jsonl",
                        "{file}"], 1, "{file}: line 1 is not JSON: not checked, kept"),
        ("deep.json", ["purge", "--subject", "microblog:1001", *platforms, "--audit-log", "{dir}/purge.jsonl",
                       "{file}"], 1, "{file}: invalid JSON at character 1"),
        # a store is built beside DEST and renamed over it: over a FIFO (or /dev/null) it took the device's place
        ("fifo", ["authorizations", "import", str(AUTHORIZATIONS), "sqlite:///{file}", *platforms], 2,
         "sqlite:///{file}: is not a regular file"),
        ("afile", ["authorizations", "import", str(AUTHORIZATIONS), "sqlite:///{file}/store.db", *platforms], 2,
         "sqlite:///{file}/store.db: cannot write into it (FileExistsError"),
        # another program's database: our tables were added to it (and its journal switched to WAL)
        ("other.db", ["authorizations", "import", str(AUTHORIZATIONS), "sqlite:///{file}", *platforms], 2,
         "sqlite:///{file}: not a consentcrawl authorization store: it holds other tables (orders)"),
        # one with an empty table named `records`: it was taken for an empty store of ours and replaced by one
        ("records.db", ["authorizations", "import", str(AUTHORIZATIONS), "sqlite:///{file}", *platforms], 2,
         "sqlite:///{file}: not a consentcrawl authorization store: it holds other tables (orders)"),
        ("store.db", ["authorizations", "stats", "sqlite:///{file}", *platforms], 2,
         "sqlite:///{file}: authorization store cannot be read: DatabaseError"),
        # a settings module or scrapy.cfg that does not load: Python's or configparser's traceback before
        ("brokensettings.py", ["check", "http://microblog.example/u/1", "--purpose", "research", "--settings",
                               "brokensettings"], 2, "{file}, line 2: cannot import settings module: '(' was never"),
        ("raisingsettings.py", ["check", "http://microblog.example/u/1", "--purpose", "research", "--settings",
                                "raisingsettings"], 2, "raisingsettings: cannot import settings module: RuntimeError"),
        ("scrapy.cfg", ["purge", "--withdrawn", "items.jsonl"], 2,
         "{file}, line 1: cannot read it: File contains no section headers"),
        # run from inside the user's own Scrapy project: its scrapy.cfg was taken for the example's (no `settings`)
        ("own-project", ["demo", "--output", "{dir}/out"], 0, "consentcrawl demo: crawl finished"),
        ("afile", ["demo", "--output", "{file}"], 2, "--output: cannot use '{file}' for the demo's output"),
        ("afile", ["demo", "--serve", "--port", "99999"], 2, "--port: cannot listen on 127.0.0.1:99999"),
    ]


def _corrupt_store(tmp: Path) -> None:
    """A store that opens as a crawl opens it (its first page is whole) but whose other pages do not read."""
    from consentcrawl.cli import main

    assert main(["authorizations", "import", str(AUTHORIZATIONS), f"sqlite:///{tmp / 'store.db'}",
                 "--platforms", str(PLATFORMS)]) == 0
    data = bytearray((tmp / "store.db").read_bytes())
    for page in range(4096, len(data), 4096):
        data[page + 100:page + 2000] = b"\x55" * 1900
    (tmp / "store.db").write_bytes(data)


#: files a command is given: made in the test's directory before it runs
FILES: dict[str, Callable[[Path], Any]] = {
    "auth.yaml": _latin1_authorizations,
    "deep.jsonl": lambda tmp: (tmp / "deep.jsonl").write_text(DEEP),
    "deep.yaml": lambda tmp: (tmp / "deep.yaml").write_text(
        "authorizations:\n  - evidence: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n"),
    "deep.json": lambda tmp: (tmp / "deep.json").write_text(f"[{DEEP.strip()}]\n"),
    "fifo": lambda tmp: os.mkfifo(tmp / "fifo"),
    "afile": lambda tmp: (tmp / "afile").write_text("a file where a directory should be"),
    "store.db": _corrupt_store,
    "own-project": lambda tmp: (tmp / "scrapy.cfg").write_text("[settings]\ndefault = people.settings\n"),
    "brokensettings.py": lambda tmp: (tmp / "brokensettings.py").write_text("BOT_NAME = 'x'\nITEM_PIPELINES = {(\n"),
    "raisingsettings.py": lambda tmp: (tmp / "raisingsettings.py").write_text("raise RuntimeError('no key')\n"),
    "scrapy.cfg": lambda tmp: (tmp / "scrapy.cfg").write_text("[settings\ndefault = x\n"),
    "other.db": lambda tmp: sqlite3.connect(tmp / "other.db").execute("CREATE TABLE orders (id)").connection.commit(),
    "records.db": lambda tmp: sqlite3.connect(tmp / "records.db").executescript(
        "CREATE TABLE records (id); CREATE TABLE orders (id); INSERT INTO orders VALUES (1)").close(),
}


@pytest.mark.parametrize(("name", "args", "code", "message"), _cli_cases(),
                         ids=[f"{' '.join(a[:2])}-{n}" for n, a, _, _ in _cli_cases()])
def test_a_command_given_bad_input_says_which_file_and_line_without_a_traceback(
    name: str, args: list[str], code: int, message: str, tmp_path: Path,
) -> None:
    made = FILES[name](tmp_path)
    line = int(made.split()[1].rstrip(":")) if name == "auth.yaml" else 0
    path = str(tmp_path / name)
    args = [a.format(file=path, dir=tmp_path) for a in args]
    proc = subprocess.run([sys.executable, "-m", "consentcrawl.cli", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60,
                          env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()
                               and k != "SCRAPY_SETTINGS_MODULE"})
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode == code, output
    assert message.format(file=path, line=line) in output, output
    if name in ("other.db", "records.db"):
        with contextlib.closing(sqlite3.connect(path)) as conn:
            tables = [("orders",)] if name == "other.db" else [("records",), ("orders",)]
            assert conn.execute("SELECT name FROM sqlite_master").fetchall() == tables
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    if name == "fifo":
        assert stat.S_ISFIFO(os.stat(path).st_mode), "the FIFO is still there"


# --------------------------------------------------------------------------- files this user may not read


def _as_another_user() -> list[str] | None:
    """The prefix that runs a command without root's right to read every file; None where that cannot be done."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return None if setpriv is None else [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.parametrize(("args", "code", "message"), [
    # the file cannot be read: one line naming it (was a traceback from the cache lookup, then from the read)
    (["check", "http://microblog.example/u/1001", "--purpose", "research", "--authorizations", "locked.yaml"], 2,
     "configuration error: locked.yaml: cannot read file: Permission denied"),
    # a readable file, with a cache directory (XDG_CACHE_HOME) this user may not look in: read as if it had none
    (["authorizations", "show", "microblog:1001", "--authorizations", "authorizations.yaml"], 0,
     "authorizations.yaml:"),
], ids=["unreadable-file", "unreadable-cache-directory"])
def test_a_file_or_cache_the_user_may_not_read_is_one_line_not_a_traceback(
    args: list[str], code: int, message: str,
) -> None:
    prefix = _as_another_user()
    if prefix is None:
        pytest.skip("running as root without setpriv: every file is readable")
    work = Path(tempfile.mkdtemp(prefix="consentcrawl-perm-"))  # not pytest's tmp_path: its parent is root's only
    try:
        work.chmod(0o777)
        shutil.copy(PLATFORMS, work / "platforms.yaml")
        for name in ("authorizations.yaml", "locked.yaml"):
            shutil.copy(AUTHORIZATIONS, work / name)
            (work / name).chmod(0o644)
        (work / "platforms.yaml").chmod(0o644)
        (work / "locked.yaml").chmod(0)
        (work / "cache").mkdir(mode=0)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(HOME=str(work), XDG_CACHE_HOME=str(work / "cache"), PYTHONPATH=str(ROOT))
        proc = subprocess.run([*prefix, sys.executable, "-m", "consentcrawl.cli", *args, "--platforms",
                               "platforms.yaml"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    finally:
        (work / "cache").chmod(0o700)
        shutil.rmtree(work)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode == code and message in output, output


def test_the_empty_list_the_no_platform_error_suggests_can_be_given_on_the_command_line(tmp_path: Path) -> None:
    """`-s CONSENTCRAWL_PLATFORMS=[]` was read as a file named `[]` (`[]: cannot read file`), though the error for
    no platform says to set it to `[]`: the text is the empty list a settings module writes."""
    from consentcrawl.config import ConsentConfig

    config = ConsentConfig.from_settings({"CONSENTCRAWL_PURPOSE": "research", "CONSENTCRAWL_PLATFORMS": " [] ",
                                          "CONSENTCRAWL_AUDIT_LOG": str(tmp_path / "audit.jsonl")})
    assert len(config.platforms) == 0


# --------------------------------------------------------------------------- the refusal log, read back


class GrantingStore:
    """A store of the project's own that grants each id it is asked about as it is asked (its service keeps ids as
    written: `" bob"` is not `bob` to it)."""

    source = "tests.test_bad_input.GrantingStore"
    version = 1

    def lookup(self, platform: str, subject: str) -> tuple[Any, ...]:
        from datetime import datetime, timezone

        from consentcrawl import AuthorizationRecord

        return (AuthorizationRecord(platform, subject, frozenset({"research"}),
                                    datetime(2026, 1, 1, tzinfo=timezone.utc), evidence="api"),)


@deferred_f_from_coro_f
async def test_a_refusal_the_crawl_logged_for_an_id_with_spaces_still_denies_that_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spaces around an id the operator wrote by hand are no part of it (`" bob"` denies bob); but where a
    platform's ids may hold a space, the crawl itself logs a refusal for the key `" bob"` (its page, `/u/%20bob`),
    and the next crawl must deny that key as written too. Reading it only as `bob` sent `/u/%20bob` again.
    Judged by the server's log."""
    import json

    from tests.lenient import HOST, PLATFORMS_YAML, LenientPeople, ListLogic, crawl, make_spider

    platforms = tmp_path / "platforms.yaml"
    platforms.write_text(PLATFORMS_YAML.replace('    subject: "[A-Za-z0-9_]+"\n', ""))  # ids: anything but a /
    log = tmp_path / "refusals.jsonl"
    log.write_text(json.dumps({"platform": "people", "subject": " bob", "url": f"http://{HOST}/u/%20bob",
                               "form": "hashtag.nobot", "field": "bio", "raw": "#nobot", "purposes": ["research"],
                               "seen_at": "2026-11-30T10:00:00+00:00", "event": "refused"}) + "\n")
    settings = consent_settings(tmp_path, CONSENTCRAWL_PLATFORMS=str(platforms), CONSENTCRAWL_REFUSALS_LOG=str(log),
                                CONSENTCRAWL_AUTHORIZATIONS=f"{__name__}.GrantingStore", DOWNLOAD_TIMEOUT=5)
    app = LenientPeople()
    urls = [f"http://{HOST}/u/%20bob", f"http://{HOST}/u/bob", f"http://{HOST}/u/alice"]
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", ListLogic), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch, urls=urls, follow_links=False)
    sent = [s.target.split(HOST, 1)[-1] for s in app.served if s.kind != "robots"]
    assert "/u/alice" in sent, app.describe()  # control: the crawl ran, and fetched the one who did not refuse
    assert not [t for t in sent if "bob" in t], app.describe()  # neither " bob" (the key logged) nor bob
    reasons = {e["url"].split(HOST, 1)[-1]: e.get("reason") for e in result.audit if "bob" in e.get("url", "")}
    # the key " bob" denies as refused wherever it is read; its page, /u/%20bob, is no one person's (bob's, trimmed)
    assert reasons == {"/u/%20bob": "subject.ambiguous-url", "/u/bob": "subject.refused-on-page"}, reasons
