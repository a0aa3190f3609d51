"""A profile read for refusals by a worker of one purpose says nothing about another purpose (``#noai`` refuses
AI training, not research): a worker that collected a person's posts without reading their profile purges them at
its close unless a worker of its own purpose read it. Two real crawls on one real ``redis-server``."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.purge.denied import NEVER_READ
from consentcrawl_demo.fediverse import FediverseSite
from tests import test_purge_refusals
from tests.redis_server import RedisServer
from tests.test_purge_never_read import OUTPUTS, ThreePeople
from tests.test_purge_refusals import SETTINGS, TimelineSpider, crawl_site, feed_subjects, receipts_for, served_paths


class GraceWhole(TimelineSpider):
    """Grace's posts, then her profile."""

    name = "grace_whole"
    authors = ("grace",)


def _two_purposes(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fediverse platform and its people's grants, for archiving as well as research (the crawls read them
    from ``directory``)."""
    directory.mkdir()
    (directory / "fediverse.yaml").write_text((SETTINGS / "fediverse.yaml").read_text().replace(
        "purposes: [research]", "purposes: [research, archiving]"))
    (directory / "fediverse-authorizations.jsonl").write_text(
        (SETTINGS / "fediverse-authorizations.jsonl").read_text().replace(
            '"purposes": ["research"]', '"purposes": ["research", "archiving"]'))
    monkeypatch.setattr(test_purge_refusals, "SETTINGS", directory)


@deferred_f_from_coro_f
async def test_a_profile_another_purpose_read_does_not_keep_a_person_never_read_for_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer,
) -> None:
    """An archiving worker read Grace's profile (and found nothing that refuses archiving). A research worker
    collected her posts and never read her profile. It used to keep them: "another worker read it" (the set was
    one for every purpose). Now it purges them as never read (for research), as it does Kim's."""
    _two_purposes(tmp_path / "settings", monkeypatch)
    (tmp_path / "archiving").mkdir()
    (tmp_path / "research").mkdir()
    _, archiving_server, _ = await crawl_site(FediverseSite(), GraceWhole, tmp_path / "archiving", monkeypatch,
                                              CONSENTCRAWL_PURPOSE="archiving", CONSENTCRAWL_REDIS_URL=redis_server.url)
    assert [p for _, p in served_paths(archiving_server, "grace")][:2] == ["/@grace/posts", "/@grace"]  # control
    result, server, out = await crawl_site(FediverseSite(), ThreePeople, tmp_path / "research", monkeypatch,
                                           CONSENTCRAWL_PURPOSE="research", CONSENTCRAWL_PURGE_ON_CLOSE=True,
                                           CONSENTCRAWL_REDIS_URL=redis_server.url)
    for name in ("grace", "kim"):
        assert [p for _, p in served_paths(server, name)] == [f"/@{name}/posts"]
    assert feed_subjects(out) == {k: {"alice"} for k in OUTPUTS}
    for name in ("grace", "kim"):
        [receipt] = receipts_for(tmp_path / "research" / "audit.jsonl", f"fediverse:{name}")
        assert receipt["because"] == [dict(NEVER_READ)]
    assert result.stats["consentcrawl/refusals/profile_never_read"] == 2
