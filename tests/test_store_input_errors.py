"""Authorization files and their caches on odd input: each error names its real cause and the path it concerns."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consentcrawl.consent import filecache
from consentcrawl.consent.load import load_authorizations
from consentcrawl.consent.records import AuthorizationRecord
from consentcrawl.errors import ConfigError
from consentcrawl.terms.platforms import PlatformRegistry
from tests.test_file_stores import FILLER, THRESHOLD, people_file, platforms  # noqa: F401 - a fixture


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
