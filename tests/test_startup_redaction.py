"""A broken authorizations file stops the crawl with one CRITICAL line naming the file and the line, and not the
values of the record it quotes: a subject written as a name, an evidence note, which are a person's data in a log
kept and shipped more widely than the file. The CLI, where the operator reads their own file, still quotes them."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.cli import main
from consentcrawl_demo.server import LocalServer
from tests.lenient import AUTHORIZED, HOST, LenientPeople, ListLogic, crawl, make_spider, people_settings, record_yaml

BAD = record_yaml("Jane Roe (107)", evidence="by email from jane.roe@mail.example")
#: a record whose 'purposes' holds a single string (a shifted column: here the person's name), which the error's
#: hint repeated unquoted, out of the redaction's reach
SHIFTED = record_yaml("107", purposes='"Jane Roe"')
#: a subject written unquoted that YAML reads as a number (a phone number): the hint repeated the number
NUMBER = BAD.replace('subject: "Jane Roe (107)"', "subject: +4915112345678").replace("jane.roe@mail.example", "sms")


async def _refused_start(settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                         caplog: pytest.LogCaptureFixture, kind: str = "ConsentSpider") -> tuple[str, str]:
    """Crawl with ``settings``, which do not start: nothing is fetched. The one CRITICAL line, and every line at
    INFO or above."""
    app = LenientPeople()
    with LocalServer(app) as server, caplog.at_level(logging.INFO):
        await crawl(make_spider(kind, ListLogic), settings, proxy=server.proxy, monkeypatch=monkeypatch,
                    urls=[f"http://{HOST}/u/101"])
    assert not app.served, app.describe()
    critical = [r.getMessage() for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert len(critical) == 1, critical
    return critical[0], "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)


def _check_error(settings: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> str:
    """What ``consentcrawl check`` prints for the broken file (it exits 2)."""
    code = main(["check", f"http://{HOST}/u/101", "--platforms", settings["CONSENTCRAWL_PLATFORMS"],
                 "--authorizations", settings["CONSENTCRAWL_AUTHORIZATIONS"], "--purpose", "research"])
    assert code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("kind", ["ConsentSpider", "ADDONS"])
@deferred_f_from_coro_f
async def test_a_bad_record_stops_the_crawl_naming_file_and_line_but_not_its_values(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    settings = people_settings(tmp_path, [record_yaml(s) for s in AUTHORIZED] + [BAD])
    critical, shown = await _refused_start(settings, monkeypatch, caplog, kind)
    assert "authorizations.yaml, line 23: subject '…' does not look like a subject id of platform 'people'" \
        in critical, critical
    assert "Jane Roe" not in shown and "jane.roe@" not in shown, shown


def test_the_cli_still_quotes_the_value_to_the_operator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "subject 'Jane Roe (107)' does not look like" in _check_error(people_settings(tmp_path, [BAD]), capsys)


@deferred_f_from_coro_f
async def test_a_list_written_as_a_string_is_not_repeated_in_the_critical_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    settings = people_settings(tmp_path, [record_yaml(s) for s in AUTHORIZED] + [SHIFTED])
    critical, shown = await _refused_start(settings, monkeypatch, caplog)
    assert "'purposes' must be a list, got a string" in critical, critical
    assert "Jane Roe" not in shown, shown


def test_the_cli_still_shows_the_operator_how_to_write_the_list(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "[Jane Roe]" in _check_error(people_settings(tmp_path, [SHIFTED]), capsys)


@deferred_f_from_coro_f
async def test_a_bad_line_in_the_refusal_log_is_named_without_its_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The refusal log holds the people who refused; a line that does not read (a shifted field, a hand edit)
    stops the crawl naming file and line, not what the line holds."""
    log = tmp_path / "refusals.jsonl"
    entry = {"platform": "people", "subject": "107", "url": f"http://{HOST}/u/107", "form": "meta", "field": "f",
             "raw": "noai", "purposes": ["research"], "seen_at": "Jane Roe", "event": "refused"}
    log.write_text(json.dumps(entry) + "\n")
    critical, shown = await _refused_start(people_settings(tmp_path, CONSENTCRAWL_REFUSALS_LOG=str(log)),
                                           monkeypatch, caplog)
    assert "refusals.jsonl, line 1: not a refusal" in critical, critical
    assert "Jane Roe" not in shown, shown


@deferred_f_from_coro_f
async def test_a_subject_yaml_reads_as_a_number_is_not_repeated_in_the_critical_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert "+4915112345678" in NUMBER
    settings = people_settings(tmp_path, [record_yaml(s) for s in AUTHORIZED] + [NUMBER])
    critical, shown = await _refused_start(settings, monkeypatch, caplog)
    assert "is read by YAML as the number '…'; quote it" in critical, critical
    assert "4915112345678" not in shown, shown
