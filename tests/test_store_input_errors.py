"""Authorization files and their caches on odd input: each error names its real cause and the path it concerns."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consentcrawl.cli import main
from consentcrawl.consent import filecache
from consentcrawl.consent.load import FileStore, load_authorizations
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.consent.sqlite import SQLiteStore
from consentcrawl.errors import ConfigError, StoreDamaged, StoreUnavailable
from consentcrawl.terms.load import load_platforms
from consentcrawl.terms.platforms import PlatformRegistry
from tests.conftest import PLATFORMS
from tests.sqlite_damage import drop_row
from tests.test_file_stores import (  # noqa: F401 - platforms: a fixture
    FILLER,
    THRESHOLD,
    outcome,
    people_file,
    platforms,
    record,
    text_of,
    wait_for,
)


def test_a_cache_directory_that_cannot_be_written_is_named_not_the_file(
        tmp_path: Path, platforms: PlatformRegistry, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    path = people_file(tmp_path, "jsonl", FILLER)
    (tmp_path / "not-a-directory").write_text("")
    monkeypatch.setattr(filecache, "_writable", lambda d: False)  # the file's own directory: not writable
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-directory"))
    with pytest.raises(ConfigError) as caught:
        load_authorizations(path, platforms, threshold=THRESHOLD)
    message = str(caught.value)
    assert "cannot write the cache of this file at " + str(tmp_path / "not-a-directory") in message, message
    assert "NotADirectoryError" in message or "FileExistsError" in message, message
    assert "cannot read file" not in message


def test_a_read_error_of_the_file_while_its_cache_is_built_is_the_files(tmp_path: Path,
                                                                      platforms: PlatformRegistry) -> None:  # noqa: F811
    path = people_file(tmp_path, "jsonl", FILLER)
    good = list(load_authorizations(path, platforms, threshold=None))

    def records() -> Iterator[AuthorizationRecord]:
        yield from good[:3]
        raise OSError(errno.EIO, "Input/output error", str(path))

    digest: Any = bytes
    with pytest.raises(OSError) as caught:
        filecache.build_cache(str(path), os.stat(path), records(), platforms, digest)
    assert caught.value.errno == errno.EIO and caught.value.filename == str(path)
    assert not filecache.cache_paths(str(path))[0].exists()


# -- an empty file ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,content", [("a.jsonl", ""), ("b.jsonl", "\n  \n"), ("c.yaml", ""), ("d.csv", "")])
def test_an_empty_file_of_any_format_is_an_error_naming_it(tmp_path: Path, name: str, content: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert main(["authorizations", "validate", str(path), "--platforms", str(PLATFORMS)]) == 1
    assert f"{path}:1: file is empty" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="file is empty") as caught:
        load_authorizations(path, load_platforms([str(PLATFORMS)]))
    assert caught.value.source == str(path) and caught.value.line == 1


def test_a_jsonl_file_emptied_while_followed_is_unavailable_not_everyone_withdrawn(tmp_path: Path) -> None:
    """A file caught empty (rewritten in place) is a store that cannot answer, not a list of no one: the latter
    would read as every person withdrawn (``subject.no-authorization``)."""
    path = tmp_path / "authorizations.jsonl"
    path.write_text('{"platform": "microblog", "subject": "1001", "purposes": ["research"], '
                    '"granted_at": "2026-01-01T00:00:00Z", "evidence": "form"}\n')
    now = [0.0]
    store = FileStore(path, load_platforms([str(PLATFORMS)]), clock=lambda: now[0])
    assert len(store.lookup("microblog", "1001")) == 1
    path.write_text("")
    now[0] += 10
    with pytest.raises(StoreUnavailable, match="file is empty"):
        store.lookup("microblog", "1001")


def test_the_advice_for_a_database_without_meta_is_one_the_importer_follows(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError) as caught:
        SQLiteStore(f"sqlite:///{other}")
    advice = str(caught.value)
    assert "has no meta table" in advice and "into a new file" in advice, advice
    source = tmp_path / "a.yaml"
    source.write_text("authorizations: []\n")
    assert main(["authorizations", "import", str(source), f"sqlite:///{other}", "--platforms", str(PLATFORMS)]) == 2
    assert "not a consentcrawl authorization store" in capsys.readouterr().err  # importing into it: refused
    assert main(["authorizations", "import", str(source), f"sqlite:///{tmp_path / 'new.db'}",
                 "--platforms", str(PLATFORMS)]) == 0  # the advice: a new file
    SQLiteStore(f"sqlite:///{tmp_path / 'new.db'}").close()


def test_a_file_cache_that_lost_a_withdrawal_denies_then_is_built_again(
        tmp_path: Path, platforms: PlatformRegistry) -> None:  # noqa: F811
    """The cache of a big file is an SQLite store like any other: a withdrawal lost from it is found on lookup, the
    lookup denies, and the cache is built again from the file (the truth), which has the withdrawal."""
    path = tmp_path / "records.jsonl"
    withdrawal = record("p7", revoked_at="2026-02-01T00:00:00Z")
    path.write_text(text_of("jsonl", [*(record(s) for s in FILLER), withdrawal]), encoding="utf-8")
    store = load_authorizations(path, platforms, threshold=THRESHOLD)
    assert store.cached is not None
    cache = Path(store.cached.path)
    store.close()
    conn = sqlite3.connect(cache)
    (rowid,) = conn.execute("SELECT id FROM records WHERE revoked_at IS NOT NULL").fetchone()
    conn.close()
    drop_row(cache, rowid)
    store = load_authorizations(path, platforms, threshold=THRESHOLD)  # the damaged cache is reused (same file)
    assert store.cache_builds == 0
    with pytest.raises(StoreDamaged, match="is damaged"):
        store.lookup("people", "p7")
    wait_for(lambda: not isinstance(outcome(store, "p7"), StoreUnavailable), 5.0)
    assert sorted(r.revoked_at is not None for r in store.lookup("people", "p7")) == [False, True]
    store.close()
