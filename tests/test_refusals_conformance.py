"""Every row of the refusal conformance table (tests/refusals_conformance.py): through the pure reader, then all
of them through real crawls of a local server (one crawl per purpose), judged by the audit log and the items."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import scrapy
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.refusals.page import read_page
from consentcrawl.refusals.purposes import REFUSAL_PURPOSES
from consentcrawl.robots.meta import parse_meta_robots
from consentcrawl_demo.server import LocalServer, LoggedRequest, Response
from tests.conftest import consent_settings, run_crawl

from .refusals_conformance import AP, HOST, ROWS, Row

TOKEN = "consentcrawl"


def read(row: Row) -> list[str]:
    body = row.body.encode(row.encoding)
    directives = parse_meta_robots(body, TOKEN, row.encoding) if "html" in row.content_type else []
    reading = read_page(row.url, row.status, row.content_type, body, TOKEN, meta_directives=directives,
                        activitypub_requested=row.activitypub, encoding=row.encoding)
    return [f.form for f in reading.found if row.purpose in f.purposes]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_row_through_the_reader(row: Row) -> None:
    assert read(row) == list(row.expect), row.source


def test_the_table_covers_every_form_and_the_near_misses() -> None:
    found = {form for row in ROWS for form in row.expect}
    assert found >= {f for f in REFUSAL_PURPOSES if not f.startswith("meta-robots.")} | {
        "meta-robots.noindex", "meta-robots.noarchive"}
    assert sum(1 for row in ROWS if not row.expect and row.id.startswith("miss-")) >= 15


def test_the_table_rows_are_distinct_people() -> None:
    assert len({row.id for row in ROWS}) == len(ROWS)


# -- the same rows in real crawls ---------------------------------------------------------------------------------


class Served:
    """Serves each row at its URL; logs every request."""

    def __init__(self) -> None:
        self.rows = {f"/users/{row.id}": row for row in ROWS}

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        if request.path == "/robots.txt":
            return Response.text("User-agent: *\nAllow: /\n")
        row = self.rows.get(request.path)
        if row is None:
            return Response.text("not found\n", 404)
        return Response(row.status, {"Content-Type": row.content_type}, row.body.encode(row.encoding))


class RowSpider(scrapy.Spider):
    name = "refusal-rows"
    rows: ClassVar[tuple[Row, ...]] = ()
    custom_settings: ClassVar[dict[str, Any]] = {"ADDONS": {"consentcrawl.Addon": 0}, "HTTPERROR_ALLOW_ALL": True}

    async def start(self) -> Any:
        for row in self.rows:
            headers = {"Accept": AP} if row.activitypub else {}
            yield scrapy.Request(row.url, headers=headers, callback=self.parse, dont_filter=True)

    def parse(self, response: scrapy.http.Response) -> Iterator[dict[str, Any]]:
        yield {"platform": "social", "subject": response.url.rsplit("/", 1)[1]}


PLATFORMS = f"""
platforms:
  social:
    domains: [{HOST}]
    authorization:
      purposes: [research, search-indexing, archiving]
      reference: "test agreement"
    profiles: ["/users/{{subject}}"]
    subject: "[a-z0-9-]+"
"""


def write_config(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "platforms.yaml").write_text(PLATFORMS)
    with (tmp_path / "authorizations.jsonl").open("w") as f:
        for row in ROWS:  # every person holds a live record for every purpose: only their page can refuse
            f.write(json.dumps({"platform": "social", "subject": row.id, "evidence": "form",
                                "purposes": ["research", "search-indexing", "archiving"],
                                "granted_at": "2026-01-01T00:00:00Z"}) + "\n")
    return {"CONSENTCRAWL_PLATFORMS": str(tmp_path / "platforms.yaml"),
            "CONSENTCRAWL_AUTHORIZATIONS": str(tmp_path / "authorizations.jsonl")}


@pytest.mark.parametrize("purpose", sorted({row.purpose for row in ROWS}))
@deferred_f_from_coro_f
async def test_rows_in_a_crawl(purpose: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = tuple(row for row in ROWS if row.purpose == purpose)
    monkeypatch.setattr(RowSpider, "rows", rows)
    settings = consent_settings(tmp_path, CONSENTCRAWL_PURPOSE=purpose, **write_config(tmp_path))
    app = Served()
    with LocalServer(app) as server:
        result = await run_crawl(RowSpider, settings, proxy=server.proxy, monkeypatch=monkeypatch)
        assert not server.errors, server.errors
    served = {r.path for r in server.requests}
    assert {f"/users/{row.id}" for row in rows} <= served  # control: every page was fetched once
    found: dict[str, list[str]] = {}
    for event in result.events:
        if event["event"] == "refusal-found":
            found.setdefault(event["subject"], []).append(event["form"])
    items = {item["subject"] for item in result.items}
    for row in rows:
        assert found.get(row.id, []) == list(row.expect), (row.id, row.source)
        if row.expect:
            assert row.id not in items, row.id
            lines = [e for e in result.audit if e["subject"] == row.id and e["phase"] == "response"]
            assert [e["reason"] for e in lines] == ["subject.refused-on-page"], row.id
        elif row.status == 200:
            assert row.id in items, (row.id, row.source)


def test_the_documented_table_is_the_code_table() -> None:
    """docs/refusals.md's table says what REFUSAL_PURPOSES does, row by row."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "refusals.md").read_text(encoding="utf-8")
    section = doc.partition("## The table")[2].partition("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    purposes = header[2:]
    documented: dict[str, frozenset[str]] = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        denied = frozenset(p for p, cell in zip(purposes, cells[2:], strict=True) if cell == "deny")
        for form in re.findall(r"`([a-z-]+\.[a-z-]+)`", cells[0]):
            documented[form] = denied
    assert documented == dict(REFUSAL_PURPOSES)
