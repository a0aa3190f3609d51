"""A queued request whose ``consentcrawl_subject`` is a list of lists (``[["1005"]]``, as a project's ``ItemLoader``
output passed on in meta can be) names no one person: the crawl reads it as several values (``onevalue``), denies it
as ambiguous at send time, and until then it is at rest in the job directory. The purge reads it as the crawl does
and, unsure whose it is, erases it; before, each inner list was read by its text (``"['1005']"``), which is no
one's id, and a request whose ``Host`` header differs from its URL's host (the crawl's mismatch, read before the
meta) stayed queued, naming the person."""

from __future__ import annotations

from pathlib import Path

import pytest

from consentcrawl import META_SUBJECT
from tests.test_purge_jobdir import PERSON, mkdir, purge, read_queue
from tests.test_purge_jobdir_leftovers import OTHER, lifo_job, record


@pytest.mark.parametrize("named", [[[PERSON]], [[f"microblog:{PERSON}"]], [[PERSON], [PERSON]], [[int(PERSON)]]],
                         ids=["id", "platform-id", "twice", "number"])
def test_a_queued_request_naming_the_person_in_a_nested_list_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], named: list[list[str]],
) -> None:
    theirs = [record("http://microblog.example/about", headers={"Host": "example.org"}, meta={META_SUBJECT: named}),
              record("http://example.org/about", headers={"Host": "microblog.example"}, meta={META_SUBJECT: named}),
              record("http://example.org/about", meta={META_SUBJECT: named})]
    others = [record(OTHER), record("http://microblog.example/about", headers={"Host": "example.org"},
                                    meta={META_SUBJECT: "1007"})]
    job = tmp_path / "job"
    root = lifo_job(job, [*others, *theirs])

    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(tmp_path / "audit.jsonl"),
                 "--jobdir", str(job)) == 0, capsys.readouterr()
    assert read_queue(root / "0", mkdir(tmp_path / "s")) == others
    assert "removed 3 request(s) of unsure whose" in capsys.readouterr().out


def test_a_queued_request_carrying_an_item_that_mentions_the_person_by_a_path_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A callback passes a friend's item on in meta; it names the person by a page's path (``/u/1005``) or by a URL
    without its scheme, as a kept record in a feed can (the purge withholds those there): the request carries the
    person's data, and goes, as one with an absolute URL of theirs does."""
    theirs = [record(OTHER, meta={"item": {"subject": "1007", "friends": [f"/u/{PERSON}"]}}),
              record(OTHER, cb_kwargs={"bio": f"see microblog.example/u/{PERSON}."})]
    others = [record(OTHER, meta={"item": {"subject": "1007", "friends": ["/u/1008", "/about"]}})]
    job = tmp_path / "job"
    root = lifo_job(job, [*others, *theirs])

    assert purge("--subject", f"microblog:{PERSON}", "--audit-log", str(tmp_path / "audit.jsonl"),
                 "--jobdir", str(job)) == 0, capsys.readouterr()
    assert read_queue(root / "0", mkdir(tmp_path / "s")) == others
    assert f"removed 2 request(s) of microblog:{PERSON}" in capsys.readouterr().out
