"""The ``CONSENTCRAWL_*`` settings: one table in code, documented in docs/settings.md, every bad value a
ConfigError naming the setting; in a crawl, one line and no traceback, and ``scrapy crawl`` exits non-zero."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from scrapy.settings import Settings
from scrapy.utils.defer import deferred_f_from_coro_f

from consentcrawl.config import KNOWN_SETTINGS, ConsentConfig
from consentcrawl.errors import ConfigError
from consentcrawl.settings import MISSING, SETTINGS
from consentcrawl_demo.server import LocalServer
from tests.conftest import PLATFORMS, ROOT, consent_settings, run_crawl
from tests.test_crawl_e2e import PlainMicroblogSpider

DOCS = ROOT / "docs" / "settings.md"

#: for every setting, values it cannot take, and a fragment the error must hold (besides the setting's name)
BAD: dict[str, list[tuple[Any, str]]] = {
    "CONSENTCRAWL_PURPOSE": [("reserch", "unknown purpose 'reserch'"), (5, "5 is not a string")],
    "CONSENTCRAWL_PLATFORMS": [(5, "5 is not a path"), ("", "no platform configured"), ([1], "[1] is not a path")],
    "CONSENTCRAWL_AUTHORIZATIONS": [(["a.yaml"], "['a.yaml'] is not a path"), (5, "5 is not a path"),
                                    ("ftp://consent.example/list", "no store for the scheme 'ftp://'"),
                                    ("sqlit:///a.db", "no store for the scheme 'sqlit://'")],
    "CONSENTCRAWL_AUTHORIZATIONS_TOKEN_ENV": [(5, "5 is not a string"), ("$MY_TOKEN", "write the name without '$'"),
                                             ("MY TOKEN", "is not an environment variable's name"),
                                             ("1TOKEN", "is not an environment variable's name")],
    "CONSENTCRAWL_AUTHORIZATIONS_POLL": [("soon", "'soon' is not a number of seconds"), (-1, "must not be negative")],
    "CONSENTCRAWL_AUTHORIZATIONS_TIMEOUT": [([1], "[1] is not a number of seconds")],
    "CONSENTCRAWL_AUTHORIZATIONS_CACHE_THRESHOLD": [("many", "'many' is not a whole number, 0 or more"),
                                                    (-1, "-1 is not a whole number"), (2.5, "2.5 is not a whole")],
    "CONSENTCRAWL_USER_AGENT_TOKEN": [("My Bot", "'My Bot' is not a product token"), (5, "5 is not a string")],
    "CONSENTCRAWL_MODE": [("dry", "unknown mode 'dry'"), (["report"], "['report'] is not a string")],
    "CONSENTCRAWL_ITEM_MENTIONS": [("keep", "unknown value 'keep' (use 'withhold' or 'drop')"),
                                   (["drop"], "['drop'] is not a string")],
    "CONSENTCRAWL_AUDIT_LOG": [(5, "5 is not a path")],
    "CONSENTCRAWL_AUDIT_FSYNC": [("maybe", "'maybe' is not true or false"), ([], "[] is not true or false")],
    "CONSENTCRAWL_REFUSALS_LOG": [(5, "5 is not a path")],
    "CONSENTCRAWL_SUBJECT_FIELD": [(5, "5 is not a string")],
    "CONSENTCRAWL_PROVENANCE_FIELD": [(["x"], "['x'] is not a string")],
    "CONSENTCRAWL_ROBOTS_TTL": [("abc", "'abc' is not a number of seconds"), (-1, "-1 must not be negative")],
    "CONSENTCRAWL_ROBOTS_RETRY": [("nan", "'nan' is not a number of seconds"), (True, "True is not a number")],
    "CONSENTCRAWL_ROBOTS_RETRY_MAX": [([60], "[60] is not a number of seconds")],
    "CONSENTCRAWL_ROBOTS_STALE": [("-5", "'-5' must not be negative")],
    "CONSENTCRAWL_MAX_CRAWL_DELAY": [("1e999x", "'1e999x' is not a number of seconds")],
    "CONSENTCRAWL_NOW": [("yesterday", "'yesterday' is not an ISO-8601 time"), (5, "5 is not an ISO-8601 time")],
    "CONSENTCRAWL_LOGSTATS_INTERVAL": [("x", "'x' is not a number of seconds"), (float("nan"), "nan is not")],
    "CONSENTCRAWL_HTTP_HANDLER": [("no.such.Handler", "cannot import 'no.such.Handler'"), (5, "5 is not an import")],
    "CONSENTCRAWL_LOG_FORMATTER": [("no.such.Formatter", "cannot import 'no.such.Formatter'")],
    "CONSENTCRAWL_HTTPS_HANDLER": [("scrapy.NoSuchHandler", "cannot import 'scrapy.NoSuchHandler'")],
    "CONSENTCRAWL_CHECKS": [(5, "5 is not a list of import paths"), ("x.Y", "cannot load check 'x.Y'"),
                            ("", "no checks")],
    "CONSENTCRAWL_PURGE_ON_CLOSE": [("later", "'later' is not true or false")],
    "CONSENTCRAWL_PURGE_TARGETS": [(5, "5 is not a path"), ([1], "[1] is not a path")],
    "CONSENTCRAWL_PURGE_KEEP_SEEN": [("x", "'x' is not true or false")],
    "CONSENTCRAWL_CONSERVATIVE": [("maybe", "'maybe' is not true or false")],
    "CONSENTCRAWL_STORES_ITEMS": [([1], "[1] is not true or false")],
    "CONSENTCRAWL_PURPOSE_DEFAULTS": [(5, "5 is not a mapping"), ("{not json", "is not a mapping"),
                                      ({"reserch": "allow"}, "unknown purpose 'reserch'"),
                                      ({"ai-input": "yes"}, "use 'allow' or 'deny'")],
    "CONSENTCRAWL_RESEARCH_EXCEPTION": [({"statement": "art. 3"}, "give both 'statement' and 'reference'"),
                                        ({"statement": "s", "reference": "r", "x": 1}, "unknown key(s): x"),
                                        ([1], "is not a mapping")],
    "CONSENTCRAWL_REDIS_URL": [("http://127.0.0.1:6379", "is not a redis://"), (5, "5 is not a string")],
    "CONSENTCRAWL_REDIS_PREFIX": [("two words", "is not a key prefix")],
    "CONSENTCRAWL_REDIS_START_KEY": [(["a"], "is not a string")],
    "CONSENTCRAWL_REDIS_IDLE_CLOSE": [("x", "'x' is not a number of seconds"), (-1, "must not be negative")],
    "CONSENTCRAWL_REDIS_TIMEOUT": [("soon", "'soon' is not a number of seconds")],
    "CONSENTCRAWL_SHARED_LOCK_TIMEOUT": [("x", "'x' is not a number of seconds")],
    "CONSENTCRAWL_WORKER_ALIVE_TTL": [("x", "'x' is not a number of seconds"), (1.5, "1.5 is less than 2 seconds")],
    "CONSENTCRAWL_SIGNAL_LICENCES": [({"https://a.example/": "L1"}, "is not a host name"),
                                     ({"news example": "L1"}, "is not a host name"),
                                     ({"*.news.example": "L1"}, "is not a host name"),
                                     ({"a..example": "L1"}, "is not a host name"),
                                     ({"a.example": ""}, "is not a host name and a licence reference")],
    "CONSENTCRAWL_CUSTOM_PURPOSES": [({"research": ["archiving"]}, "is a built-in purpose"),
                                     ({"price-monitoring": ["pricing"]}, "unknown purposes: pricing"),
                                     ({"price-monitoring": []}, "must count as at least one"), (5, "not a mapping")],
    "CONSENTCRAWL_ROBOTS_TAG_OPTIONS": [("noindex", "unknown option(s) noindex"), (5, "5 is not a name")],
}
CASES = [pytest.param(name, value, fragment, id=f"{name.removeprefix('CONSENTCRAWL_')}={value!r}")
         for name, values in BAD.items() for value, fragment in values]


def base(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"CONSENTCRAWL_PURPOSE": "research", "CONSENTCRAWL_PLATFORMS": str(PLATFORMS),
                                "CONSENTCRAWL_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    settings.update(overrides)
    return settings


# --------------------------------------------------------------------------- the table and the docs


def documented() -> dict[str, tuple[str, str, str]]:
    """setting -> (type, default, empty) from the quick reference of docs/settings.md."""
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"\| \[`(CONSENTCRAWL_\w+)`\]\(#[\w-]+\) \| (.+?) \| (.+?) \| (.+?) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return rows


#: the word the type column uses for each kind
KIND_WORDS = {"text": "str", "path": "path", "paths": "paths", "store": "store", "bool": "bool",
              "seconds": "seconds", "count": "count", "time": "ISO-8601", "import path": "import path",
              "import paths": "import paths", "mapping": "mapping",
              "names": "names"}


def test_every_setting_in_the_table_is_documented_and_every_documented_setting_exists() -> None:
    rows = documented()
    assert set(rows) == set(SETTINGS) == KNOWN_SETTINGS
    text = DOCS.read_text(encoding="utf-8")
    for name, setting in SETTINGS.items():
        kind, default, empty = rows[name]
        assert kind.startswith(KIND_WORDS[setting.kind]), (name, kind)
        if setting.maximum is not None:
            assert f"max {setting.maximum}" in kind, (name, kind)
        if isinstance(setting.default, (str, int, float)):
            assert default.startswith(f"`{setting.default}`"), (name, default)
        assert (empty == "—") == (setting.empty is MISSING), (name, empty)
        assert re.search(rf"^### .*`{name}`", text, re.MULTILINE), f"{name} has no section of its own"


def test_the_defaults_are_the_tables(tmp_path: Path) -> None:
    config = ConsentConfig.from_settings({"CONSENTCRAWL_PURPOSE": "research", "CONSENTCRAWL_PLATFORMS": []})
    assert (config.token, config.mode, config.audit_log) == ("consentcrawl", "enforce", "consentcrawl-audit.jsonl")
    assert (config.subject_field, config.provenance_field, config.fixed_now) == ("subject", "consentcrawl", None)
    assert config.robots_ttl == timedelta(days=1) and config.robots_retry == timedelta(seconds=60)
    assert config.robots_retry_max == timedelta(hours=1) and config.robots_stale == timedelta(days=7)
    assert (config.max_crawl_delay, config.logstats_interval, config.audit_sync) == (30, 60, True)


# --------------------------------------------------------------------------- reading values


def test_every_setting_has_bad_values_tested() -> None:
    assert set(BAD) == set(SETTINGS)


@pytest.mark.parametrize(("name", "value", "fragment"), CASES)
def test_a_bad_value_is_a_config_error_naming_the_setting(name: str, value: Any, fragment: str,
                                                          tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        ConsentConfig.from_settings(base(tmp_path, **{name: value}))
    assert info.value.source == name
    assert fragment in info.value.message
    assert str(info.value).startswith(f"{name}: ")


@pytest.mark.parametrize("wrap", [dict, Settings], ids=["dict", "Settings"])
def test_values_read_as_scrapy_reads_them_from_a_dict_or_from_settings(wrap: Any, tmp_path: Path) -> None:
    values = base(
        tmp_path,
        CONSENTCRAWL_AUDIT_FSYNC="0", CONSENTCRAWL_ROBOTS_TTL="120", CONSENTCRAWL_MAX_CRAWL_DELAY=2,
        CONSENTCRAWL_LOGSTATS_INTERVAL="", CONSENTCRAWL_ROBOTS_STALE="inf", CONSENTCRAWL_MODE=" Report ",
        CONSENTCRAWL_PROVENANCE_FIELD=None, CONSENTCRAWL_NOW="2026-11-27T12:00:00", CONSENTCRAWL_AUDIT_LOG="",
        CONSENTCRAWL_PLATFORMS=f" {PLATFORMS} , ", CONSENTCRAWL_USER_AGENT_TOKEN="MyBot",
        CONSENTCRAWL_CHECKS="consentcrawl.checks.robots.RobotsCheck, consentcrawl.checks.subject.SubjectRecordsCheck",
        CONSENTCRAWL_HTTP_HANDLER="scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
    )
    config = ConsentConfig.from_settings(wrap(values))
    assert config.audit_sync is False and config.robots_ttl == timedelta(seconds=120)
    assert config.max_crawl_delay == 2.0 and config.logstats_interval == 0
    assert config.robots_stale == timedelta(days=30)  # above the maximum: lowered to it
    assert (config.mode, config.provenance_field, config.audit_log, config.token) == ("report", None, None, "mybot")
    assert config.fixed_now == datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
    assert config.platform_files == (str(PLATFORMS),)
    assert [c.__name__ for c in config.checks] == ["RobotsCheck", "SubjectRecordsCheck"]


@pytest.mark.parametrize(("text", "value"), [("1", True), ("True", True), ("true", True), ("YES", True),
                                             ("on", True), ("0", False), ("false", False), ("Off", False),
                                             ("no", False), ("", False), (True, True), (0, False)])
def test_booleans_take_scrapys_spellings_and_the_ones_documented_before(text: Any, value: bool,
                                                                      tmp_path: Path) -> None:
    config = ConsentConfig.from_settings(base(tmp_path, CONSENTCRAWL_AUDIT_FSYNC=text))
    assert config.audit_sync is value


# --------------------------------------------------------------------------- in a crawl


@pytest.mark.parametrize(("name", "value", "fragment"), [
    pytest.param(*case.values, id=case.id) for case in CASES if case.values[0] != "CONSENTCRAWL_PLATFORMS"
    or case.values[1] != ""])
@deferred_f_from_coro_f
async def test_a_bad_value_stops_a_crawl_with_one_line_naming_it(
    name: str, value: Any, fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    served: list[Any] = []
    with LocalServer(lambda request, headers: served.append(request)) as server:  # type: ignore[func-returns-value]
        result = await run_crawl(PlainMicroblogSpider, consent_settings(tmp_path, **{name: value}),
                                 proxy=server.proxy, monkeypatch=monkeypatch)
    assert result.stats["finish_reason"] == "consentcrawl_config_error"
    assert served == [] and result.items == []
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and f"{name}: " in critical[0] and fragment in critical[0], critical
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.ERROR), "a line, not a traceback"


@pytest.mark.parametrize("option", ["CONSENTCRAWL_LOGSTATS_INTERVAL=x", "CONSENTCRAWL_AUDIT_FSYNC=maybe",
                                    "CONSENTCRAWL_HTTPS_HANDLER=no.such.Handler"])
def test_scrapy_crawl_with_a_bad_value_exits_non_zero_with_one_line_naming_it(option: str, tmp_path: Path) -> None:
    name = option.split("=")[0]
    served: list[Any] = []
    with LocalServer(lambda request, headers: served.append(request)) as server:  # type: ignore[func-returns-value]
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("SCRAPY_")}
        env.update(http_proxy=server.proxy, PYTHONPATH=str(ROOT))
        proc = subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "microblog", "-s", option, "-s", "LOG_LEVEL=INFO",
             "-s", f"CONSENTCRAWL_AUDIT_LOG={tmp_path / 'audit.jsonl'}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert served == []
    assert "Traceback" not in output, output
    naming = [line for line in output.splitlines() if name in line]
    assert len(naming) == 1 and "configuration error" in naming[0], naming
