"""A crawl closes its SQLite store, and the SQLite cache of a large file store, when its engine stops: the file is
not held open until the garbage collector gets to it (another process may replace it, and a process that runs
crawl after crawl would gather open files). Judged by the process's own open files (``/proc/self/fd``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.consent.load import load_authorizations
from consentcrawl.consent.sqlite_write import import_records
from consentcrawl.terms.load import load_platforms
from consentcrawl_demo.server import LocalServer
from tests.lenient import HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings, record_yaml

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")


def _open_under(directory: Path) -> list[str]:
    opened = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            opened.append(target)
    return opened


class TwoPeople(ListLogic):
    urls = [f"http://{HOST}/u/101", f"http://{HOST}/u/102"]


@pytest.mark.parametrize("kind", ["sqlite", "file-cache"])
@deferred_f_from_coro_f
async def test_a_crawl_closes_its_store_when_it_ends(kind: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = people_settings(tmp_path, [record_yaml("101")])
    stores = tmp_path / "stores"
    stores.mkdir()
    platforms = load_platforms([settings["CONSENTCRAWL_PLATFORMS"]])
    if kind == "sqlite":
        source = f"sqlite:///{stores / 'store.db'}"
        import_records(source, load_authorizations(settings["CONSENTCRAWL_AUTHORIZATIONS"], platforms),
                       platforms=platforms.platforms)
    else:
        source = str(stores / "authorizations.yaml")
        Path(source).write_text(Path(settings["CONSENTCRAWL_AUTHORIZATIONS"]).read_text(), encoding="utf-8")
        settings["CONSENTCRAWL_AUTHORIZATIONS_CACHE_THRESHOLD"] = 0  # read into an SQLite cache beside it
    settings["CONSENTCRAWL_AUTHORIZATIONS"] = source
    app = LenientPeople()
    with LocalServer(app) as server:
        result = await crawl(make_spider("ConsentSpider", TwoPeople), settings, proxy=server.proxy,
                             monkeypatch=monkeypatch)
    assert app.people_served() == ["101"], app.describe()  # control: the store answered
    assert result.crawler is not None  # the crawl's objects are alive: only a close lets the files go
    assert _open_under(stores) == []
