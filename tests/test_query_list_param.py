"""A profile template's query parameter written as a list: ``/profile.php?id[]=107``.

PHP registers ``id[]=107`` (and ``id[0]=107``) as the array ``id``; Rails and Express's ``qs`` do the same, and an
application that reads the id as text reads its one element (``String(["107"])`` is ``"107"``, ``User.find(["107"])``
finds 107). The crawl read such a URL as no one's page (its parameter is not ``id``), so it fetched it, and the
site served 107's profile. Judged by the server's own request log: now it is ``subject.ambiguous-url``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from tests import lenient
from tests.lenient import KINDS
from tests.test_leaks_hunt import BASE
from tests.test_leaks_hunt11 import crawl_with_101

LISTS = {"/profile.php?id[]=107": "107", "/profile.php?id%5B0%5D=108": "108", "/profile.php?x=1&id[a]=109": "109"}


@pytest.mark.parametrize("kind", KINDS)
@deferred_f_from_coro_f
async def test_a_query_parameter_written_as_a_list_is_not_one_persons_page(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for href, person in LISTS.items():
        assert lenient.person_of_url(href) == person, href  # what the site reads
    app = lenient.LenientPeople().links_page("/lists", [*LISTS, "/u/101"])
    result = await crawl_with_101(kind, app, app, [f"{BASE}/lists"], set(LISTS.values()), tmp_path, monkeypatch)
    denied = {e["url"]: e["reason"] for e in result.audit
              if e.get("verdict") == "deny" and "profile.php" in e.get("url", "")}
    assert len(denied) == len(LISTS) and set(denied.values()) == {"subject.ambiguous-url"}, result.denies()
