"""``JOBDIR/requests.seen``: the fingerprints of the purged people's requests taken out.

Scrapy's ``RFPDupeFilter`` keeps there the fingerprint of every request it let into the queue (Scrapy 2.19: each a
2-byte big-endian length, then the fingerprint). No URL can be read back from a fingerprint, but one can be
*tested*: whoever holds the directory fingerprints a guessed URL (``/u/1005``) and looks it up, and learns that the
crawl asked for that person. So the fingerprints of a purged person's requests go, and the whole file when the purge
cannot show it found them all (below); a resumed crawl that meets one of those requests again schedules it anew, and
it is decided at send time like any other.

**Which fingerprints** are a person's, computed with the crawl's own fingerprinter (``REQUEST_FINGERPRINTER_CLASS``
with the crawl's settings; in a purge on close the crawler's own), so they match what the file holds:

- the queued requests the purge removed as theirs (or as unsure), each as it was stored (method, URL, body,
  headers, meta);
- every request the audit logs given name them in (a decision line's ``platform`` and ``subject``): its ``url``,
  as a GET, also as the target of a redirect (a fingerprinter may tell those apart);
- every URL a removed item held (its provenance ``url``, its files' URLs): the page it was made from;
- their profile URLs: every template of their platform with their id as given, with and without a trailing
  slash, over ``http`` and ``https``, on each of the platform's registered domains and on every host of that
  platform the audit logs, their removed queued requests and their removed items name: the first guesses anyone
  would test.

**Fail closed** (see docs/purge.md): a fingerprint that none of these computes may still be theirs (a POST whose
body no log line holds, a spelling of their URL nothing recorded, a profile on a subdomain nothing names, a request
another worker's log holds, a fingerprinter that reads headers or cookies). So every record of the file must be
*explained*: its fingerprint is one of the selected people's, or that of a request known to be someone else's (a
request any other decision line of the logs names, or a request still queued). When any is not, the purge cannot prove
that none of the purged people's stays: the whole file goes (it is rewritten empty), so a resumed crawl may
fetch pages it had fetched before (each decided at send time again), and never keeps a purged person's trace.
``keep_unattributed`` (``--keep-seen``, ``CONSENTCRAWL_PURGE_KEEP_SEEN``) keeps the other records instead. Every
receipt of the file lists the unexplained records (``unexplained``) and those that went without being the
selected people's (``dropped``), as record numbers and ranges (``3-9``). With no one selected and nothing removed
from the queues there is no one to protect, and nothing is dropped.

**How**: the file is read whole, its records split by their lengths (a record cut short fails the file: nothing is
changed), and the kept records are written, as the bytes they were and in their order, to a new file that
replaces it (:func:`~.common.atomic_replace`). The receipt names a removed fingerprint by its record's number in
the file, counted from 1; its hash is over the removed records' bytes (length prefix included) in file order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlsplit

from ..audit.chain import CHAIN_START
from .common import PurgeFailed, Selection, TargetResult, atomic_replace

__all__ = ["SEEN", "AuditSpan", "fingerprinter_for", "fingerprints", "notice", "purge_seen", "ranges"]

SEEN = "requests.seen"
_SIZE = 2  #: bytes of a record's length prefix
Fingerprint = Callable[[Any], bytes]
#: an audit log and the byte offset its reading starts at (a purge on close reads what its crawl wrote: from the
#: ``chain-start`` line of its own segment)
AuditSpan = tuple[Path, int]
UNEXPLAINED, DROPPED = "unexplained", "dropped"


def fingerprinter_for(settings: Any, platforms: Any) -> Fingerprint:
    """The fingerprint function of ``REQUEST_FINGERPRINTER_CLASS`` as ``settings`` configure it (Scrapy's default
    when unset). Raises ConfigError naming the setting when it cannot be built."""
    from scrapy.utils.misc import build_from_crawler, load_object

    from ..distributed.fingerprint import CanonicalRequestFingerprinter
    from ..errors import ConfigError

    name = settings.get("REQUEST_FINGERPRINTER_CLASS") or "scrapy.utils.request.RequestFingerprinter"
    try:
        cls = load_object(name)
        if isinstance(cls, type) and issubclass(cls, CanonicalRequestFingerprinter):
            return cls(platforms=platforms).fingerprint  # its platforms come from a crawl's runtime otherwise
        # no crawl runs here: a fingerprinter gets the settings (what Scrapy's own and most others read); one that
        # needs more of a crawler fails, and the purge stops before touching anything
        crawler: Any = SimpleNamespace(settings=settings, spider=None, stats=None)
        fingerprinter: Any = build_from_crawler(cls, crawler)
        return fingerprinter.fingerprint  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - any failure: the fingerprints cannot be computed as the crawl did
        raise ConfigError(f"cannot build the request fingerprinter {name!r} ({type(exc).__name__}: {exc}): "
                          "requests.seen cannot be purged", source="REQUEST_FINGERPRINTER_CLASS") from None


def purge_seen(jobdir: Path, selection: Selection, fingerprint: Fingerprint, *,
               queued: Iterable[tuple[str | None, Mapping[str, Any]]] = (),
               kept: Iterable[Mapping[str, Any]] = (), audit_logs: Iterable[Path | AuditSpan] = (),
               keep_unattributed: bool = False, dry_run: bool = False) -> TargetResult | None:
    """Remove from ``jobdir/requests.seen`` the fingerprints of the selected people's requests, or the whole file
    when some fingerprint is explained by nothing (module doc). ``queued``: (whose, stored request) of the queued
    requests the purge removed; ``kept``: the stored requests it left queued; ``audit_logs``: a log, or a log and
    the offset to read it from. None when there is no such file. Raises :class:`PurgeFailed` (the file untouched)
    when it cannot be read."""
    path = jobdir / SEEN
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PurgeFailed(f"{path} cannot be read ({exc.strerror or exc})") from None
    spans = _records(data, path)
    result = TargetResult(str(path), SEEN)
    queued = list(queued)
    wanted, known = fingerprints(selection, fingerprint, result, {data[start + _SIZE:end] for start, end in spans},
                                 queued=queued, kept=kept, audit_logs=audit_logs)
    others: list[tuple[int, bytes]] = []
    unexplained: list[int] = []
    for number, (start, end) in enumerate(spans, 1):
        record = data[start:end]
        fp = record[_SIZE:]
        if fp in wanted:
            result.remove(wanted[fp], number, record)
            continue
        others.append((number, record))
        if fp not in known:
            unexplained.append(number)
    drop = bool(unexplained) and bool(selection.people or queued) and not keep_unattributed
    everyone = [None, *selection.people.values()]
    result.lists[UNEXPLAINED] = dict.fromkeys(everyone, ranges(unexplained))
    result.lists[DROPPED] = dict.fromkeys(everyone, ranges([n for n, _ in others] if drop else []))
    result.kept = 0 if drop else len(others)
    if (result.removed or drop) and not dry_run:
        atomic_replace(path, [] if drop else [record for _, record in others])
    return result


def fingerprints(selection: Selection, fingerprint: Fingerprint, result: TargetResult, records: set[bytes], *,
                 queued: Iterable[tuple[str | None, Mapping[str, Any]]] = (), kept: Iterable[Mapping[str, Any]] = (),
                 audit_logs: Iterable[Path | AuditSpan] = ()) -> tuple[dict[bytes, str | None], set[bytes]]:
    """The selected people's fingerprints (fingerprint -> whose) and those of requests known to be someone else's,
    computed as the module doc says; ``records``: the fingerprints the dupefilter holds (someone else's requests
    are fingerprinted only until each of them is explained). Shared by ``requests.seen`` and a distributed crawl's
    dupefilter in Redis (:mod:`.sharedseen`); a log that cannot be read is noted in ``result``."""
    wanted: dict[bytes, str | None] = {}
    known: dict[bytes, str | None] = {}  #: fingerprints of requests no selected person's
    hosts: dict[str, set[str]] = {}
    for who, request in queued:
        _add(wanted, who, fingerprint, _request(request))
        _host_of(hosts, who, request.get("url"))
    for request in kept:
        _add(known, None, fingerprint, _request(request))
    for url, who in selection.sources.items():
        _host_of(hosts, who, url)
    logged: dict[str, str | None] = {}  #: each URL the logs name once (a request's lines repeat it), theirs first
    for who, url in _from_logs(audit_logs, selection, hosts, result):
        if logged.get(url) is None:
            logged[url] = who
    for url, who in [*[(u, w) for u, w in logged.items() if w is not None], *selection.sources.items(),
                     *_profile_urls(selection, hosts)]:
        for redirected in (False, True):
            _add(wanted, who, fingerprint, _get(url, redirected))
    # someone else's requests: fingerprinted only until every record left is explained (a log is long)
    pending = records - wanted.keys() - known.keys()
    for url in (u for u, w in logged.items() if w is None):
        if not pending:
            break
        for redirected in (False, True):
            pending.discard(_add(known, None, fingerprint, _get(url, redirected)))
    return wanted, set(known)


def notice(result: TargetResult, *, escape: str, dry_run: bool = False) -> str | None:
    """What a purge says of a ``requests.seen`` with fingerprints nothing explains (``escape``: how to keep them)."""
    unexplained = result.lists.get(UNEXPLAINED, {}).get(None)
    if not unexplained:
        return None
    count = sum(_span_size(part) for part in unexplained)
    what = (f"{result.path}: {count} fingerprint(s) that no audit line or queued request explains (a POST body, "
            "another spelling, another worker's log, a fingerprinter that reads headers or cookies): the purge "
            "cannot prove that none of them is the purged people's, ")
    if result.lists.get(DROPPED, {}).get(None):
        return what + (f"so the whole {'set' if result.kind != SEEN else 'file'} {'would be' if dry_run else 'was'} "
                       f"dropped (a resumed crawl may fetch pages it had fetched before; {escape} keeps the others)")
    return what + f"and they were kept ({escape})"


def ranges(numbers: list[int]) -> list[str]:
    """Ascending record numbers as ``"7"`` and ``"3-9"``."""
    out: list[str] = []
    first = last = None
    for n in [*numbers, None]:
        if n is not None and last is not None and n == last + 1:
            last = n
            continue
        if first is not None:
            out.append(str(first) if first == last else f"{first}-{last}")
        first = last = n
    return out


def _span_size(part: str) -> int:
    first, _, last = part.partition("-")
    return int(last or first) - int(first) + 1


def _host_of(hosts: dict[str, set[str]], who: str | None, url: Any) -> None:
    """``url``'s host as a host of ``who``'s platform (their profile may be there too)."""
    if who is None or not isinstance(url, str):
        return
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return
    if host:
        hosts.setdefault(who.partition(":")[0], set()).add(host)


def _records(data: bytes, path: Path) -> list[tuple[int, int]]:
    spans, at = [], 0
    while at < len(data):
        end = at + _SIZE + int.from_bytes(data[at:at + _SIZE], "big")
        if at + _SIZE > len(data) or end > len(data):
            raise PurgeFailed(f"{path}: its last fingerprint is cut short (at byte {at}): not the file Scrapy's "
                              "dupefilter writes, or written by a crash; nothing in it was changed")
        spans.append((at, end))
        at = end
    return spans


def _add(wanted: dict[bytes, str | None], who: str | None, fingerprint: Fingerprint, request: Any) -> bytes:
    """``request``'s fingerprint, added as ``who``'s. One the fingerprinter cannot compute is not added (``b""``): a
    record it would have explained is then unexplained, and the file goes (module doc)."""
    if request is None:
        return b""
    try:
        fp = fingerprint(request)
    except Exception:  # noqa: BLE001 - a fingerprinter of the project's own may fail on any request
        return b""
    wanted.setdefault(fp, who)
    return fp


def _request(stored: Mapping[str, Any]) -> Any:
    """A Request as the queue stored it (its callback aside: no fingerprinter reads that)."""
    from scrapy import Request

    meta = stored.get("meta")
    headers = stored.get("headers")
    try:
        return Request(stored["url"], method=str(stored.get("method") or "GET"), body=stored.get("body"),
                       headers=headers if isinstance(headers, dict) else None,
                       meta=meta if isinstance(meta, dict) else None)
    except Exception:  # noqa: BLE001 - a URL or body Scrapy cannot make a request of was never fingerprinted
        return None


def _get(url: str, redirected: bool) -> Any:
    from scrapy import Request

    try:
        return Request(url, meta={"redirect_times": 1} if redirected else None)
    except Exception:  # noqa: BLE001 - likewise
        return None


def _from_logs(logs: Iterable[Path | AuditSpan], selection: Selection, hosts: dict[str, set[str]],
               result: TargetResult) -> Iterator[tuple[str | None, str]]:
    """(whose, url) of every decision line of ``logs`` (whose: the selected person it names, or None); ``hosts``
    gets every host of a platform the lines name. A log given with an offset is read from there when a line
    starts there (else whole)."""
    spans = [(log, 0) if isinstance(log, Path) else log for log in logs]
    for log, offset in dict.fromkeys(spans):
        unread = 0
        try:
            with open(log, "rb") as f:
                if offset and not _line_starts(f, offset):
                    f.seek(0)
                for line in f:
                    try:
                        entry = json.loads(line)
                    except (ValueError, RecursionError):
                        unread += 1
                        continue
                    if not isinstance(entry, dict) or "event" in entry or not isinstance(entry.get("url"), str):
                        continue
                    platform = entry.get("platform")
                    if isinstance(platform, str):
                        host = urlsplit(entry["url"]).hostname
                        if host:
                            hosts.setdefault(platform, set()).add(host)
                    yield selection.person(platform, entry.get("subject")), entry["url"]
        except FileNotFoundError:
            continue
        except OSError as exc:
            result.failures.append(f"the audit log {log} cannot be read ({exc.strerror or exc}): the requests it "
                                   "names are not known")
            continue
        if unread:
            result.failures.append(f"the audit log {log} has {unread} line(s) that are not JSON: the requests they "
                                   "name are not known")


def _line_starts(f: Any, offset: int) -> bool:
    """Whether a ``chain-start`` line of ``f`` starts at ``offset`` (where a writer's segment began); ``f`` is left
    there. Not (the file was cut or replaced since): the caller reads it whole."""
    f.seek(offset - 1)
    if f.read(1) != b"\n":
        return False
    try:
        first = json.loads(f.readline())
    except (ValueError, RecursionError):
        return False
    f.seek(offset)
    return isinstance(first, dict) and first.get("event") == CHAIN_START


def _profile_urls(selection: Selection, hosts: Mapping[str, set[str]]) -> Iterator[tuple[str, str]]:
    """(url, whose) of each selected person's profile URLs (module doc)."""
    for (name, _), who in selection.people.items():
        platform = selection.platforms.get(name)
        if platform is None:
            continue
        subject = quote(who.partition(":")[2], safe="@!$&'()*+,;=:~")
        for template in platform.profiles:
            path = template.template.replace("{subject}", subject)
            spellings = [path] if "?" in path else [path, path + "/"]
            for host in sorted({*platform.domains, *hosts.get(name, ())}):
                for scheme in ("http", "https"):
                    for spelling in spellings:
                        yield f"{scheme}://{host}{spelling}", who
