"""Configuration loading: every mistake in platforms.yaml or an authorization file is a ConfigError that names
the file and the line, because a config error a user cannot locate gets "fixed" by deleting the check."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from consentcrawl.consent.load import load_authorizations
from consentcrawl.errors import ConfigError
from consentcrawl.terms.load import load_platforms
from consentcrawl.terms.platforms import PlatformRegistry
from consentcrawl.yamlsource import parse_yaml

UTC = timezone.utc


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def config_error(path: Path, line: int | None, *fragments: str, call: Any) -> ConfigError:
    """Run ``call``; assert it raises a ConfigError located at ``path`` (and ``line``) mentioning ``fragments``."""
    with pytest.raises(ConfigError) as info:
        call()
    err = info.value
    text = str(err)
    where = f"{path}, line {line}: " if line is not None else f"{path}: "
    assert text.startswith(where), text
    assert err.source == str(path) and err.line == line
    for fragment in fragments:
        assert fragment in text, text
    return err


# -- platforms.yaml ------------------------------------------------------------------------------------------------

GOOD_PLATFORMS = """
# demo platforms
platforms:
  microblog:
    domains: [MicroBlog.Example, bücher.example]
    authorization:
      purposes: [research, archiving]
      reference: "Data access agreement MB-2026-17"
      valid_from: 2026-01-01
      valid_until: 2027-01-01T12:00:00+02:00
      fields: [name, bio]
    profiles:
      - "/u/{subject}"
      - "/profile/{subject}/"
    subject: "[0-9]+"
  forum:
    domains:
      - forum.example
"""


def test_platforms_happy_path(tmp_path: Path) -> None:
    path = write(tmp_path, "platforms.yaml", GOOD_PLATFORMS)
    registry = load_platforms(path)
    assert set(registry.platforms) == {"microblog", "forum"}
    mb = registry.get("microblog")
    assert mb is not None and mb.authorization is not None
    assert mb.domains == frozenset({"microblog.example", "xn--bcher-kva.example"})  # lower-case IDNA
    assert registry.by_domain("xn--bcher-kva.example") is mb
    assert mb.authorization.purposes == frozenset({"research", "archiving"})
    assert mb.authorization.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert mb.authorization.valid_until == datetime(2027, 1, 1, 10, 0, tzinfo=UTC)
    assert mb.authorization.valid_until.tzinfo == UTC
    assert mb.authorization.fields == frozenset({"name", "bio"})
    assert mb.subject_regex == "[0-9]+"
    assert mb.subject_of("/u/1001/followers") == "1001"
    assert mb.subject_of("/profile/42") == "42"
    assert mb.subject_of("/u/alice") is None
    assert mb.source == f"{path}:3"
    forum = registry.get("forum")
    assert forum is not None and forum.authorization is None and forum.profiles == ()
    assert forum.source == f"{path}:15"


def test_platforms_several_files_and_sequence_argument(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "platforms:\n  one:\n    domains: [one.example]\n")
    b = write(tmp_path, "b.yaml", "platforms:\n  two:\n    domains: [two.example]\n")
    registry = load_platforms([a, str(b)])
    assert set(registry.platforms) == {"one", "two"}
    assert registry.get("two").source == f"{b}:2"  # type: ignore[union-attr]
    assert len(load_platforms([])) == 0


def test_platforms_naive_datetime_is_utc(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """
        platforms:
          mb:
            domains: [mb.example]
            authorization: {purposes: [research], reference: x, valid_from: "2026-03-01T08:30:00"}
        """,
    )
    auth = load_platforms(path).get("mb").authorization  # type: ignore[union-attr]
    assert auth is not None and auth.valid_from == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def _platform(body: str) -> str:
    """A platforms file whose first platform 'mb' starts on line 2 with ``body`` from line 3 on."""
    return "platforms:\n  mb:\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


AUTH = "authorization:\n  purposes: [research]\n  reference: MB-1\n"

PLATFORM_ERRORS = [
    # (id, file text, line, fragments)
    ("unknown-top-key", "platforms: {}\nplatfroms: {}\n", 2, ["unknown key 'platfroms'", "did you mean 'platforms'"]),
    ("missing-platforms", "other: 1\n", 1, ["unknown key 'other'"]),
    ("no-platforms-key", "{}\n", 1, ["missing the required key 'platforms'"]),
    ("top-not-mapping", "- platforms\n", 1, ["must be a mapping"]),
    ("platforms-not-mapping", "platforms:\n  - mb\n", 2, ["'platforms' must be a mapping"]),
    ("empty-file", "# nothing\n", 1, ["file is empty"]),
    ("unknown-platform-key", _platform("domains: [mb.example]\ndomian: x\n"), 4, ["unknown key 'domian'"]),
    (
        "unknown-authorization-key",
        _platform("domains: [mb.example]\n" + AUTH + "  valid_untill: 2027-01-01\n"),
        7,
        ["unknown key 'valid_untill'", "did you mean 'valid_until'"],
    ),
    ("domains-not-list", _platform("domains: mb.example\n"), 3, ["'domains' of platform 'mb' must be a list"]),
    ("domains-empty", _platform("domains: []\n"), 3, ["must not be empty"]),
    ("domain-not-string", _platform("domains: [1]\n"), 3, ["must be a string", "got a number"]),
    ("platform-not-mapping", "platforms:\n  mb: [mb.example]\n", 2, ["platform 'mb' must be a mapping"]),
    ("missing-domains", _platform("profiles: ['/u/{subject}']\n"), 2, ["missing the required key 'domains'"]),
    (
        "missing-purposes",
        _platform("domains: [mb.example]\nauthorization:\n  reference: MB-1\n"),
        4,
        ["missing the required key 'purposes'"],
    ),
    (
        "missing-reference",
        _platform("domains: [mb.example]\nauthorization:\n  purposes: [research]\n"),
        4,
        ["missing the required key 'reference'"],
    ),
    ("authorization-null", _platform("domains: [mb.example]\nauthorization:\n"), 4, ["is empty"]),
    (
        "authorization-wrong-type",
        _platform("domains: [mb.example]\nauthorization: [research]\n"),
        4,
        ["must be a mapping", "got a list"],
    ),
    (
        "reference-wrong-type",
        _platform("domains: [mb.example]\nauthorization:\n  purposes: [research]\n  reference: 17\n"),
        6,
        ["'reference'", "must be a string", "quote it"],
    ),
    (
        "purposes-not-list",
        _platform("domains: [mb.example]\nauthorization:\n  purposes: research\n  reference: x\n"),
        5,
        ["must be a list"],
    ),
    (
        "unknown-purpose",
        _platform("domains: [mb.example]\nauthorization:\n  purposes: [research, reserch2]\n  reference: x\n"),
        5,
        ["unknown purpose 'reserch2'", "known purposes:"],
    ),
    (
        "bad-date",
        _platform("domains: [mb.example]\n" + AUTH + "  valid_from: 2026-02-30\n"),
        7,
        ["'2026-02-30'", "day is out of range"],
    ),
    (
        "bad-date-string",
        _platform("domains: [mb.example]\n" + AUTH + "  valid_from: next tuesday\n"),
        7,
        ["'valid_from'", "not an ISO-8601 date"],
    ),
    (
        "date-wrong-type",
        _platform("domains: [mb.example]\n" + AUTH + "  valid_until: 2027\n"),
        7,
        ["'valid_until'", "expected a date"],
    ),
    (
        "valid-until-before-from",
        _platform("domains: [mb.example]\n" + AUTH + "  valid_from: 2027-01-01\n  valid_until: 2026-01-01\n"),
        8,
        ["'valid_until'", "must be after 'valid_from'"],
    ),
    (
        "valid-until-equals-from",
        _platform("domains: [mb.example]\n" + AUTH + "  valid_from: 2027-01-01\n  valid_until: 2027-01-01T00:00:00Z\n"),
        8,
        ["must be after"],
    ),
    ("invalid-regex", _platform("domains: [mb.example]\nsubject: '[0-9'\n"), 4, ["not a valid regular expression"]),
    ("regex-matches-empty", _platform("domains: [mb.example]\nsubject: '[0-9]*'\n"), 4, ["empty subject id"]),
    (  # the subject regex is compiled on its own now, so a group named 'subject' in it is no error
        "template-not-canonical",
        _platform("domains: [mb.example]\nsubject: '[0-9]+'\nprofiles: ['/u//{subject}']\n"),
        5,
        ["'profiles' of platform 'mb'", "canonical form", "'/u/{subject}'"],
    ),
    (
        "template-without-subject",
        _platform("domains: [mb.example]\nprofiles:\n  - /u/{subject}\n  - /users/{id}\n"),
        6,
        ["'/users/{id}'", "exactly once"],
    ),
    (
        "template-two-subjects",
        _platform("domains: [mb.example]\nprofiles: ['/u/{subject}/{subject}']\n"),
        4,
        ["exactly once"],
    ),
    (
        "template-not-absolute",
        _platform("domains: [mb.example]\nprofiles: ['u/{subject}']\n"),
        4,
        ["must start with '/'"],
    ),
    ("profiles-not-list", _platform("domains: [mb.example]\nprofiles: '/u/{subject}'\n"), 4, ["must be a list"]),
    (
        "subdomain",
        _platform("domains:\n  - microblog.example\n  - m.microblog.example\n"),
        5,
        ["'m.microblog.example' is not a registered domain", "give 'microblog.example' instead"],
    ),
    ("public-suffix", _platform("domains: [co.uk]\n"), 3, ["not a registered domain"]),
    ("domain-is-url", _platform("domains: ['https://mb.example/']\n"), 3, ["is a URL"]),
    ("domain-with-port", _platform("domains: ['mb.example:8080']\n"), 3, ["no ports"]),
    ("domain-invalid", _platform("domains: ['mb..example']\n"), 3, ["not a valid domain name"]),
    ("domain-twice", _platform("domains: [mb.example, MB.example.]\n"), 3, ["listed twice"]),
    (
        "same-domain-two-platforms",
        "platforms:\n  mb:\n    domains: [mb.example]\n  other:\n    domains:\n      - x.example\n      - Mb.Example\n",
        7,
        ["'mb.example'", "already belongs to platform 'mb'", ":3)"],
    ),
    ("platform-name-colon", "platforms:\n  'mb:x':\n    domains: [mb.example]\n", 2, ["platform name 'mb:x'"]),
    ("platform-name-not-string", "platforms:\n  no:\n    domains: [mb.example]\n", 2, ["must be a string"]),
    (
        "duplicate-platform-key",
        "platforms:\n  mb: {domains: [a.example]}\n  mb: {domains: [b.example]}\n",
        3,
        ["duplicate key 'mb'", "line 2"],
    ),
    ("duplicate-nested-key", _platform("domains: [a.example]\ndomains: [b.example]\n"), 4, ["duplicate key 'domains'"]),
    ("yaml-syntax-error", "platforms:\n  mb:\n    domains: [mb.example\n    subject: x\n", 4, ["YAML syntax error"]),
    ("yaml-tab", "platforms:\n\tmb: {}\n", 2, ["YAML syntax error"]),
    ("yaml-unsafe-tag", "platforms: !!python/object/apply:os.system ['true']\n", 1, ["python/object/apply"]),
    ("yaml-two-documents", "platforms: {}\n---\nplatforms: {}\n", 2, ["single document"]),
]


@pytest.mark.parametrize(
    ("text", "line", "fragments"), [c[1:] for c in PLATFORM_ERRORS], ids=[c[0] for c in PLATFORM_ERRORS]
)
def test_platforms_errors(tmp_path: Path, text: str, line: int, fragments: list[str]) -> None:
    path = tmp_path / "platforms.yaml"
    path.write_text(text, encoding="utf-8")
    config_error(path, line, *fragments, call=lambda: load_platforms(path))


def test_platforms_same_domain_in_two_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "platforms:\n  one:\n    domains: [shared.example]\n")
    b = write(tmp_path, "b.yaml", "# second file\nplatforms:\n  two:\n    domains:\n      - shared.example\n")
    config_error(b, 5, "already belongs to platform 'one'", f"{a}:3", call=lambda: load_platforms([a, b]))


def test_platforms_same_name_in_two_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "platforms:\n  mb:\n    domains: [one.example]\n")
    b = write(
        tmp_path, "b.yaml", "platforms:\n  other:\n    domains: [two.example]\n  mb:\n    domains: [three.example]\n"
    )
    config_error(b, 4, "platform 'mb' is already defined", f"{a}:2", call=lambda: load_platforms([a, b]))


def test_platforms_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    config_error(missing, None, "cannot read file", call=lambda: load_platforms(missing))
    directory = tmp_path / "dir.yaml"
    directory.mkdir()
    config_error(directory, None, "cannot read file", call=lambda: load_platforms(directory))


def test_platforms_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"platforms:\n  mb:\n    domains: [b\xfccher.example]\n")
    config_error(path, 3, "not valid UTF-8", call=lambda: load_platforms(path))


def test_yaml_merge_keys_and_aliases_keep_lines() -> None:
    root = parse_yaml("base: &b\n  x: 1\n  y: 2\nuse:\n  <<: *b\n  y: 3\n", "t.yaml")
    assert root is not None
    use = root.value["use"]
    assert {k: v.value for k, v in use.value.items()} == {"x": 1, "y": 3}
    assert use.key_lines == {"y": 6, "x": 2}


def test_yaml_recursive_alias_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"t\.yaml, line 1: recursive"):
        parse_yaml("a: &a [*a]\n", "t.yaml")


def test_yaml_billion_laughs_is_cheap() -> None:
    text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 30):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    root = parse_yaml(text, "t.yaml")  # shared nodes are built once, not 10**30 times
    assert root is not None and len(root.value) == 30


# -- authorizations ------------------------------------------------------------------------------------------------

PLATFORMS_FOR_AUTH = """
platforms:
  microblog:
    domains: [microblog.example]
    authorization: {purposes: [research], reference: MB-1}
    profiles: ["/u/{subject}"]
    subject: "[0-9]+"
  forum:
    domains: [forum.example]
"""


@pytest.fixture
def platforms(tmp_path: Path) -> PlatformRegistry:
    return load_platforms(write(tmp_path, "platforms.yaml", PLATFORMS_FOR_AUTH))


@dataclass(frozen=True)
class Raw:
    """A value written into the file verbatim (a YAML scalar or a JSON literal), not encoded."""

    text: str


def write_records(tmp_path: Path, fmt: str, records: list[dict[str, Any]]) -> tuple[Path, list[dict[str, int]]]:
    """Write ``records`` as a YAML, CSV or JSONL file; return the path and, per record, the line of each key."""
    lines: list[str] = []
    where: list[dict[str, int]] = []
    if fmt == "yaml":
        lines.append("# authorizations")
        lines.append("authorizations:")
        for record in records:
            keys = {}
            for i, (key, value) in enumerate(record.items()):
                text = value.text if isinstance(value, Raw) else json.dumps(value)
                lines.append(f"  {'-' if i == 0 else ' '} {key}: {text}")
                keys[key] = len(lines)
            keys["<record>"] = keys[next(iter(record))]
            where.append(keys)
    elif fmt == "csv":
        columns = list(dict.fromkeys(k for r in records for k in r))
        lines.append(",".join(columns))
        for record in records:
            cells = []
            for c in columns:
                value = record.get(c)
                if isinstance(value, Raw):
                    value = value.text
                elif isinstance(value, list):
                    value = ";".join(value)
                cells.append("" if value is None else str(value))
            lines.append(",".join(json.dumps(c) if "," in c or '"' in c else c for c in cells))
            where.append({**{k: len(lines) for k in record}, "<record>": len(lines)})
    else:
        lines.append("")  # a blank line first: JSONL line numbers are file lines
        for record in records:
            items = [f"{json.dumps(k)}: {v.text if isinstance(v, Raw) else json.dumps(v)}" for k, v in record.items()]
            lines.append("{" + ", ".join(items) + "}")
            where.append({**{k: len(lines) for k in record}, "<record>": len(lines)})
    path = tmp_path / f"authorizations.{fmt}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, where


def rec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "platform": "microblog",
        "subject": "1001",
        "purposes": ["research"],
        "granted_at": "2026-02-01T00:00:00Z",
        "evidence": "consent form 17",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()
FORMATS = ["yaml", "csv", "jsonl"]
ALL = frozenset(FORMATS)

# (id, formats, records, (record index, key or "<record>" or "<header>"), fragments)
AUTH_ERRORS: list[tuple[str, frozenset[str], list[dict[str, Any]], tuple[int, str], list[str]]] = [
    ("unknown-key", ALL, [rec(), rec(subject="1002", purpose="x")], (1, "purpose"), ["unknown key 'purpose'"]),
    ("missing-granted-at", ALL, [rec(granted_at=_DROP)], (0, "<record>"), ["required key 'granted_at'"]),
    ("missing-evidence", ALL, [rec(evidence=_DROP)], (0, "<record>"), ["required key 'evidence'"]),
    ("missing-subject", ALL, [rec(subject=_DROP)], (0, "<record>"), ["required key 'subject'"]),
    ("missing-purposes", ALL, [rec(purposes=_DROP)], (0, "<record>"), ["required key 'purposes'"]),
    ("evidence-blank", ALL, [rec(), rec(subject="1002", evidence="   ")], (1, "evidence"), ["evidence"]),
    ("evidence-null", frozenset({"yaml", "jsonl"}), [rec(evidence=None)], (0, "evidence"), ["'evidence' is required"]),
    ("bad-date", ALL, [rec(granted_at="2026-02-30T00:00:00Z")], (0, "granted_at"), ["'granted_at'", "ISO-8601"]),
    ("bad-date-text", ALL, [rec(expires_at="soon")], (0, "expires_at"), ["'expires_at'", "'soon'"]),
    ("yaml-invalid-date", frozenset({"yaml"}), [rec(granted_at=Raw("2026-13-01"))], (0, "granted_at"), ["month"]),
    (
        "date-wrong-type",
        frozenset({"yaml", "jsonl"}),
        [rec(granted_at=Raw("20260201"))],
        (0, "granted_at"),
        ["expected a date"],
    ),
    (
        "expires-before-granted",
        ALL,
        [rec(expires_at="2026-01-31T23:59:59+00:00")],
        (0, "expires_at"),
        ["'expires_at'", "must be after 'granted_at'"],
    ),
    (
        "expires-equals-granted",
        ALL,
        [rec(expires_at="2026-02-01T08:00:00+08:00")],
        (0, "expires_at"),
        ["must be after"],
    ),
    (
        "unknown-purpose",
        ALL,
        [rec(purposes=["research", "reserch"])],
        (0, "purposes"),
        ["unknown purpose 'reserch'", "did you mean 'research'"],
    ),
    ("purposes-empty", frozenset({"yaml", "jsonl"}), [rec(purposes=[])], (0, "purposes"), ["must not be empty"]),
    (
        "purposes-not-list",
        frozenset({"yaml", "jsonl"}),
        [rec(purposes="research")],
        (0, "purposes"),
        ["must be a list"],
    ),
    (
        "purpose-not-string",
        frozenset({"yaml", "jsonl"}),
        [rec(purposes=Raw("[1]"))],
        (0, "purposes"),
        ["must be a string"],
    ),
    (
        "no-platform",
        ALL,
        [rec(), rec(platform="photos")],
        (1, "platform"),
        ["a subject with no platform", "'photos'", "forum, microblog"],
    ),
    ("subject-regex", ALL, [rec(subject="alice")], (0, "subject"), ["'alice'", "'[0-9]+'"]),
    (
        "subject-wrong-type",
        frozenset({"yaml", "jsonl"}),
        [rec(subject=Raw("true"))],
        (0, "subject"),
        ["'subject' must be a string", "boolean"],
    ),
    ("subject-float", frozenset({"yaml", "jsonl"}), [rec(subject=Raw("10.5"))], (0, "subject"), ["must be a string"]),
    ("subject-yaml-octal", frozenset({"yaml"}), [rec(subject=Raw("0x1F"))], (0, "subject"), ["quote it"]),
    (
        "evidence-wrong-type",
        frozenset({"yaml", "jsonl"}),
        [rec(evidence=Raw("17"))],
        (0, "evidence"),
        ["must be a string"],
    ),
    ("fields-wrong-type", frozenset({"yaml", "jsonl"}), [rec(fields=Raw("{}"))], (0, "fields"), ["must be a list"]),
    (
        "jurisdiction-yaml-bool",
        frozenset({"yaml"}),
        [rec(jurisdiction=Raw("NO"))],
        (0, "jurisdiction"),
        ["must be a string", "quote it"],
    ),
    (
        "duplicate-record",
        ALL,
        [rec(), rec(subject="1002"), rec(purposes=["research"], evidence="another copy")],
        (2, "<record>"),
        ["duplicate authorization record"],
    ),
    (
        "duplicate-record-id",
        ALL,
        [rec(record_id="r-1"), rec(record_id="r-1", granted_at="2026-03-01T00:00:00Z")],
        (1, "<record>"),
        ["duplicate authorization record", "record_id 'r-1'"],
    ),
]


@pytest.mark.parametrize(
    ("fmt", "records", "at", "fragments"),
    [pytest.param(fmt, *c[2:], id=f"{c[0]}-{fmt}") for c in AUTH_ERRORS for fmt in FORMATS if fmt in c[1]],
)
def test_authorization_errors(
    tmp_path: Path,
    platforms: PlatformRegistry,
    fmt: str,
    records: list[dict[str, Any]],
    at: tuple[int, str],
    fragments: list[str],
) -> None:
    path, where = write_records(tmp_path, fmt, records)
    index, key = at
    line = where[index][key]
    if fmt == "csv" and (
        (key == "<record>" and "required key" in fragments[0]) or fragments[0].startswith("unknown key")
    ):
        line = 1  # a missing or unknown column is reported on the header
    err = config_error(path, line, *fragments, call=lambda: load_authorizations(path, platforms))
    if "duplicate" in err.message:  # both lines are named: the first record is the original
        assert f"line {where[0]['<record>']}" in err.message and f"line {line}" in str(err)


def test_authorizations_happy_path_same_records_in_every_format(tmp_path: Path, platforms: PlatformRegistry) -> None:
    records = [
        rec(expires_at="2027-02-01T00:00:00Z", fields=["name", "bio"], record_id="r-1", jurisdiction="CN"),
        rec(subject="1002", purposes=["research", "archiving"], granted_at="2026-02-14T09:30:00+08:00"),
        rec(subject="1002", granted_at="2026-02-14T09:30:00+08:00", revoked_at="2026-09-30T16:20:00"),  # withdrawal
        rec(platform="forum", subject="alice", granted_at="2026-03-01"),
    ]
    loaded = {}
    for fmt in FORMATS:
        path, where = write_records(tmp_path, fmt, records)
        store = load_authorizations(path, platforms)
        assert len(store) == 4
        first = store.lookup("microblog", "1001")[0]
        assert first.source == f"{path}:{where[0]['<record>']}"
        loaded[fmt] = sorted(
            (
                replace(r, source="")
                for key in [("microblog", "1001"), ("microblog", "1002"), ("forum", "alice")]
                for r in store.lookup(*key)
            ),
            key=lambda r: (r.platform, r.subject, r.revoked_at is not None),
        )
    assert loaded["yaml"] == loaded["csv"] == loaded["jsonl"]
    store = load_authorizations(write_records(tmp_path, "yaml", records)[0], platforms)
    first = store.lookup("microblog", "1001")[0]
    assert first.granted_at == datetime(2026, 2, 1, tzinfo=UTC) and first.granted_at.tzinfo == UTC
    assert first.expires_at == datetime(2027, 2, 1, tzinfo=UTC)
    assert first.fields == frozenset({"name", "bio"}) and first.record_id == "r-1" and first.jurisdiction == "CN"
    grant, withdrawal = store.lookup("microblog", "1002")  # a withdrawal is its own record: never merged
    assert grant.granted_at == datetime(2026, 2, 14, 1, 30, tzinfo=UTC) and grant.revoked_at is None
    assert grant.purposes == frozenset({"research", "archiving"})
    assert withdrawal.revoked_at == datetime(2026, 9, 30, 16, 20, tzinfo=UTC)  # naive -> UTC
    assert store.lookup("forum", "alice")[0].granted_at == datetime(2026, 3, 1, tzinfo=UTC)  # a date: midnight UTC


def test_authorizations_yaml_native_values(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = write(
        tmp_path,
        "auth.yml",
        """
        authorizations:
          - platform: microblog
            subject: 0042
            purposes: [research]
            granted_at: 2026-02-01 10:00:00
            expires_at: 2027-02-01
            revoked_at: null
            evidence: consent form 17
            record_id: 7
        """,
    )
    (record,) = load_authorizations(path, platforms).lookup("microblog", "0042")  # as written, not octal 34
    assert record.granted_at == datetime(2026, 2, 1, 10, tzinfo=UTC)
    assert record.expires_at == datetime(2027, 2, 1, tzinfo=UTC)
    assert record.revoked_at is None and record.record_id == "7"
    assert record.source == f"{path}:2"


def test_authorizations_jsonl_integer_subject(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path, _ = write_records(tmp_path, "jsonl", [rec(subject=Raw("1001"))])
    assert len(load_authorizations(path, platforms).lookup("microblog", "1001")) == 1


def test_csv_quoted_multiline_cells_keep_line_numbers(tmp_path: Path, platforms: PlatformRegistry) -> None:
    text = (
        "platform,subject,purposes,granted_at,evidence\n"  # 1
        'microblog,1001,"research;\narchiving",2026-02-01T00:00:00Z,"form 17,\nsigned\non paper"\n'  # 2-5
        "\n"  # 6: blank lines are skipped
        "microblog,1002,research archiving,2026-02-01T00:00:00Z,form 18\n"  # 7
        "microblog,1003,research,2026-13-01,form 19\n"  # 8
    )
    path = tmp_path / "auth.csv"
    path.write_text(text, encoding="utf-8")
    config_error(path, 8, "'granted_at'", call=lambda: load_authorizations(path, platforms))
    path.write_text(text.rsplit("microblog,1003", 1)[0], encoding="utf-8")
    store = load_authorizations(path, platforms)
    (first,) = store.lookup("microblog", "1001")
    assert first.purposes == frozenset({"research", "archiving"}) and first.evidence == "form 17,\nsigned\non paper"
    assert first.source == f"{path}:2"
    assert store.lookup("microblog", "1002")[0].source == f"{path}:7"


def test_csv_structure_errors(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = tmp_path / "auth.csv"
    header = "platform,subject,purposes,granted_at,evidence\n"
    cases = [
        (header + "microblog,1001,research,2026-02-01,form,extra\n", 2, "6 cells but the header has 5"),
        (header + "microblog,1001\n", 2, "2 cells"),
        ("platform,subject,subject,purposes,granted_at,evidence\n", 1, "column 'subject' appears twice"),
        ("platform,subject,purposes,granted_at\n", 1, "required key 'evidence'"),
        ("platform,subject,purposes,granted_at,evidence,note\n", 1, "unknown key 'note'"),
        ("", 1, "file is empty"),
        (header + 'microblog,1001,research,2026-02-01,"unterminated\n', 2, "CSV syntax error"),
    ]
    for text, line, fragment in cases:
        path.write_text(text, encoding="utf-8")
        config_error(path, line, fragment, call=lambda: load_authorizations(path, platforms))


def test_jsonl_structure_errors(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = tmp_path / "auth.jsonl"
    good = json.dumps(rec())
    cases = [
        (f"{good}\n\n{{'platform': 1}}\n", 3, "invalid JSON"),
        (f"{good}\n[1, 2]\n", 2, "must be a JSON object"),
        (f'{good}\n{{"subject": "1", "subject": "2"}}\n', 2, "duplicate key 'subject'"),
        (f'\n\n{good[:-1]}, "subject": 5}}\n', 3, "duplicate key"),
    ]
    for text, line, fragment in cases:
        path.write_text(text, encoding="utf-8")
        config_error(path, line, fragment, call=lambda: load_authorizations(path, platforms))


def test_authorization_yaml_structure_errors(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = tmp_path / "auth.yaml"
    cases = [
        ("authorizations:\n  platform: microblog\n", 2, "must be a list of records"),
        ("authorizations:\n  - [microblog]\n", 2, "must be a mapping"),
        ("authorisations: []\n", 1, "did you mean 'authorizations'"),
        ("", 1, "file is empty"),
        ("authorizations:\n  - platform: microblog\n    platform: forum\n", 3, "duplicate key 'platform'"),
        ("authorizations:\n  - platform: microblog\n   subject: 1\n", 3, "YAML syntax error"),
    ]
    for text, line, fragment in cases:
        path.write_text(text, encoding="utf-8")
        config_error(path, line, fragment, call=lambda: load_authorizations(path, platforms))


def test_authorization_file_type_and_unreadable(tmp_path: Path, platforms: PlatformRegistry) -> None:
    path = tmp_path / "auth.txt"
    path.write_text("x", encoding="utf-8")
    config_error(
        path, None, "unsupported authorization file type '.txt'", call=lambda: load_authorizations(path, platforms)
    )
    for name in ("missing.yaml", "missing.csv", "missing.jsonl"):
        missing = tmp_path / name
        config_error(missing, None, "cannot read file", call=lambda m=missing: load_authorizations(m, platforms))


def test_bytes_not_utf8_past_the_first_chunk_name_their_byte_and_line(tmp_path: Path,
                                                                       platforms: PlatformRegistry) -> None:
    """The authorizations YAML is decoded in 64 KiB chunks as it is read, the platforms YAML whole: both name the
    byte and line of the first bytes that are not UTF-8, counted from the start of the file."""
    padding = b"# a comment line to fill the first chunk of the file\n" * 2000  # > 64 KiB
    auth = tmp_path / "auth.yaml"
    head = b"authorizations:\n" + padding + b"  - platform: microblog\n    subject: \""
    auth.write_bytes(head + b"caf\xe9\"\n")
    byte, line = len(head) + 3, head.count(b"\n") + 1
    config_error(auth, line, f"file is not valid UTF-8 (byte {byte})",
                 call=lambda: load_authorizations(auth, platforms))
    plat = tmp_path / "p.yaml"
    head = b"platforms:\n" + padding + b"  mb:\n    domains: [b"
    plat.write_bytes(head + b"\xfccher.example]\n")
    config_error(plat, head.count(b"\n") + 1, f"file is not valid UTF-8 (byte {len(head)})",
                 call=lambda: load_platforms(plat))


def _nested(top: str, levels: int) -> str:
    """``top`` (three lines, its fourth level a list opening on line 4) with lists nested ``levels`` deep below it,
    one level a line: level k opens on line k."""
    return top + "\n".join(" " * (6 + 2 * i) + "-" for i in range(levels)) + " x\n"


def test_lists_nested_thousands_deep_name_the_line_where_they_pass_the_limit(
        tmp_path: Path, platforms: PlatformRegistry) -> None:
    """A list nested thousands deep ran PyYAML's composer out of stack: the error named the file, no line. Now the
    line where the nesting passes 100 levels of lists and mappings (the 101st opens on line 101) is named, in the
    platforms reader and in the authorizations reader (which streams its records)."""
    deep = "lists or mappings nested too deeply (more than 100 levels)"
    plat = tmp_path / "p.yaml"
    plat.write_text(_nested("platforms:\n  mb:\n    domains:\n", 3000))
    config_error(plat, 101, deep, call=lambda: load_platforms(plat))
    auth = tmp_path / "a.yaml"
    auth.write_text(_nested("authorizations:\n  - platform: microblog\n    evidence:\n", 3000))
    config_error(auth, 101, deep, call=lambda: load_authorizations(auth, platforms))
    # control: 100 levels are read (the error is the evidence's, a list, not the nesting's)
    auth.write_text(_nested("authorizations:\n  - platform: microblog\n    evidence:\n", 97))
    with pytest.raises(ConfigError) as info:
        load_authorizations(auth, platforms)
    assert "nested too deeply" not in str(info.value), info.value
