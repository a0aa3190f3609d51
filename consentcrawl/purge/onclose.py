"""``CONSENTCRAWL_PURGE_ON_CLOSE``: a crawl erases, from its own outputs, the people who withdrew or refused while
it ran.

Who: every person a decision of this crawl found withdrawn (``subject.revoked``), and every person whose data it
let through (an allow naming them) that the store says, when the spider closes, has withdrawn since. The second
look is made in ``spider_closed``, while the store is still open (remote stores close at ``engine_stopped``), a
store that looks at its file or database every so often (``refresh_now``: the file and SQLite stores) made to
look then: a withdrawal written since its last look would not be seen. And
the people whose own say denies them (:mod:`consentcrawl.purge.denied`): a refusal found on a page (their posts
were collected before their profile said ``#nobot``, or they added it while the crawl ran), by this worker or
another worker of a distributed crawl, or an actor that could not be read.

What and when: the files the crawl's feeds wrote (as ``feed_slot_closed`` reports their URIs; local files
only), the targets ``CONSENTCRAWL_PURGE_TARGETS`` names (an SQLite database a pipeline writes, say), its HTTP
cache (``HTTPCACHE_DIR/<spider>`` when ``HTTPCACHE_ENABLED`` with Scrapy's filesystem storage), the requests its
scheduler left in ``JOBDIR``'s disk queues (:mod:`consentcrawl.purge.jobdir`) or in a distributed crawl's shared
queue kept in Redis (:mod:`consentcrawl.purge.sharedqueue`), the files its media
pipelines stored locally that the removed items (and the items of the purged people it scraped, whatever output
they went to) name and no kept item does (:mod:`consentcrawl.purge.media`), purged at
``engine_stopped``: Scrapy's ``FeedExporter`` finishes and closes its files in ``spider_closed``, and the engine
stops only after every ``spider_closed`` handler is done, so nothing is still writing them. The receipts go into
the crawl's audit log (``CONSENTCRAWL_AUDIT_LOG``), reopened for them after the crawl closed it; each says what
selected its person (``withdrawn-during-crawl``, ``refused-during-crawl`` with the refusals' events,
``unread-during-crawl``).

Without the setting nothing is purged, but a crawl that collected items of people before their refusal was found
says so at its end: a WARNING with how many (no id: the ids are at DEBUG and in the audit log's ``refusal-found``
events) and ``consentcrawl/refusals/after_collection``, so that the operator can erase them.

At INFO the log says how many people and records; their ids only at DEBUG. A target that could not be purged is
an ERROR naming it, and ``consentcrawl/purge/failed`` counts it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Collection
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from .._scrapy_internals import item_pipelines
from ..decision import Decision
from ..reasons import ERROR_STORE_UNAVAILABLE
from ..refusals.book import REASON as REFUSED_ON_PAGE
from ..runtime import get_runtime
from ..settings import read
from .common import Selection
from .denied import NEVER_READ, WITHDRAWN, Cause, denied_people
from .media import MediaStore, stores_from_settings
from .run import purge, receipts, write_receipts
from .seen import SEEN, notice
from .sharedseen import DUPEFILTER

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from typing_extensions import Self

__all__ = ["PurgeOnClose"]

logger = logging.getLogger("consentcrawl")

FILESYSTEM_STORAGE = "scrapy.extensions.httpcache.FilesystemCacheStorage"


class PurgeOnClose:
    def __init__(self, crawler: Crawler, enabled: bool = True) -> None:
        self.crawler = crawler
        self.runtime = get_runtime(crawler)
        self.enabled = enabled  #: CONSENTCRAWL_PURGE_ON_CLOSE; without it, the refused are counted, not purged
        self.withdrawn: dict[tuple[str, str], None] = {}
        self.refused: dict[tuple[str, str], None] = {}  #: denied subject.refused-on-page by a decision
        self.collected: dict[tuple[str, str], None] = {}  #: allowed (only with the purge: the store is asked)
        self.itemised: dict[tuple[str, str], None] = {}  #: an item of theirs allowed (reached the outputs)
        #: a page (response phase) or an item of theirs allowed: their data reached the spider, cache or outputs
        self.delivered: dict[tuple[str, str], None] = {}
        #: their profile page, or a page showing their profile, was read for refusals by this worker (its gate)
        self.profile_read: dict[tuple[str, str], None] = {}
        self.feeds: list[Path] = []
        self.remote_feeds: list[str] = []  #: feeds on another scheme (S3, FTP, stdout): not purged
        self.spider_name: str | None = None
        self.media: list[MediaStore] = []  #: the media pipelines' stores (with the purge only)
        #: the fields of each item that names stored files, as the purge reads them (with a media store only)
        self.media_items: list[dict[str, Any]] = []
        #: JOBDIR's requests.seen held fingerprints of earlier runs when this crawl was set up (a resumed job)
        self.resumed = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        runtime = get_runtime(crawler)
        if runtime is None:  # a configuration error (reported once, by the runtime): no crawl
            raise NotConfigured
        ext = cls(crawler, bool(read(crawler.settings, "CONSENTCRAWL_PURGE_ON_CLOSE")))
        runtime.watch = ext.seen
        runtime.first_pages.watch = ext.read
        if runtime.distributed is not None:  # whose profile another worker read: asked at the close
            runtime.distributed.unread_here = ext.unread_here
        if ext.enabled:
            ext.resumed = _resumed(crawler.settings)
            ext.media = stores_from_settings(crawler.settings)
            if ext.media:
                crawler.signals.connect(ext.item_scraped, signal=signals.item_scraped)
            crawler.signals.connect(ext.feed_slot_closed, signal=signals.feed_slot_closed)
            crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(ext.engine_stopped, signal=signals.engine_stopped)
        return ext

    def seen(self, decision: Decision, phase: str) -> None:
        """Every decision the crawl records (``DecisionRecording.watch``), and each person an item mentions (phase
        ``mention``: their profile URL reached the outputs, so they are asked about at the close; it is not a page
        or an item of theirs, so it does not make their profile one the crawl had to read)."""
        if decision.subject is None or decision.platform is None:
            return
        key = (decision.platform, decision.subject)
        reason = decision.reason
        if reason == "subject.revoked":
            self.withdrawn[key] = None
        elif reason == REFUSED_ON_PAGE:
            self.refused[key] = None
        elif decision.allowed:
            if phase == "item":
                self.itemised[key] = None
            if phase in ("item", "response"):
                self.delivered[key] = None
            if self.enabled:
                self.collected[key] = None

    def read(self, person: tuple[str, str]) -> None:
        """``person``'s profile was read for refusals (``FirstPageGate.watch``); the other workers
        of a distributed crawl are told (they may have collected the person's posts)."""
        if person not in self.profile_read:
            self.profile_read[person] = None
            if self.runtime is not None and self.runtime.distributed is not None:
                self.runtime.distributed.publish_profile_read(*person)

    def unread_here(self) -> list[tuple[str, str]]:
        """The people whose data reached this worker's spider, cache or outputs and whose profile it never read."""
        return [p for p in dict.fromkeys([*self.delivered, *self.itemised]) if p not in self.profile_read]

    def item_scraped(self, item: Any) -> None:
        """An item that names stored files: the fields that say whose it is and which files, so that the purge
        erases a purged person's files (and keeps a kept person's) whatever output the item went to."""
        config = self.runtime.config if self.runtime is not None else None
        if config is None:
            return
        adapter = ItemAdapter(item)
        fields = {store.field for store in self.media if store.field}
        if not any(adapter.get(name) for name in fields):
            return
        names = ("platform", config.subject_field, config.provenance_field, *fields)
        self.media_items.append({name: copy.copy(adapter.get(name)) for name in names if name and name in adapter})

    def feed_slot_closed(self, slot: Any) -> None:
        uri = str(getattr(slot, "uri", "") or "")
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            self.feeds.append(Path(unquote(parsed.path)))
        elif parsed.scheme == "" or len(parsed.scheme) == 1:  # a path (a Windows drive letter is no scheme)
            self.feeds.append(Path(uri))
        else:  # said in each receipt (and counted) when people are purged: it may hold theirs
            logger.warning("consentcrawl: purge on close: the feed at a %s:// URI is not a local file and is not "
                           "purged", parsed.scheme)
            where = f"{parsed.scheme}://{parsed.hostname or ''}{parsed.path}" if parsed.netloc else f"{parsed.scheme}:"
            self.remote_feeds.append(where)  # no user name, password or query: a receipt holds no credential

    async def spider_closed(self, spider: Any = None, reason: str = "") -> None:
        self.spider_name = getattr(spider, "name", None) or getattr(self.crawler.spider, "name", None)
        runtime = self.runtime
        assert runtime is not None
        store = runtime.decider.store
        target = store.store if store is not None else None
        fresh = getattr(target, "refresh_now", None)
        if callable(fresh):  # the store as it is now, not as it was at its last look (a file store's is 0.25 s old)
            reading = getattr(target, "wait_read", None)

            def look_again() -> None:
                fresh()
                if callable(reading):  # a big file read again in a thread of its own: waited for here
                    reading()

            try:  # off the event loop: a look hashes a changed file, or loads a store's Bloom filter, whole
                await maybe_deferred_to_future(deferToThread(look_again))
            except Exception as exc:  # noqa: BLE001 - its answers may be a look old: said so, counted
                logger.error("consentcrawl: purge on close: could not look at the authorization store again "
                             "(%s); a withdrawal written since its last look is not purged", type(exc).__name__)
                self.crawler.stats.inc_value("consentcrawl/purge/failed")  # type: ignore[union-attr]
        now = runtime.config.now()
        for platform, subject in [k for k in self.collected if k not in self.withdrawn]:
            try:
                decision = await runtime.decider.decide_subject(platform, subject, runtime.config.purpose, now)
            except Exception as exc:  # noqa: BLE001 - cannot tell: not purged, and said so (ids only at DEBUG)
                logger.error("consentcrawl: purge on close: could not ask the store whether a person withdrew "
                             "(%s); their data is not purged", type(exc).__name__)
                logger.debug("consentcrawl: purge on close: not asked about %s:%s", platform, subject)
                self.crawler.stats.inc_value("consentcrawl/purge/failed")  # type: ignore[union-attr]
                continue
            if decision.reason == "subject.revoked":
                self.withdrawn[(platform, subject)] = None
            elif decision.reason == ERROR_STORE_UNAVAILABLE:  # cannot tell, as above
                logger.error("consentcrawl: purge on close: the authorization store could not say whether a person "
                             "withdrew; their data is not purged")
                logger.debug("consentcrawl: purge on close: not answered about %s:%s", platform, subject)
                self.crawler.stats.inc_value("consentcrawl/purge/failed")  # type: ignore[union-attr]

    def denied(self) -> dict[tuple[str, str], Cause]:
        """The people whose own say denies them (:func:`~consentcrawl.purge.denied.denied_people`): the refusal
        book, and in a distributed crawl what the workers published (read at the close)."""
        runtime = self.runtime
        assert runtime is not None
        cluster = None
        if runtime.distributed is not None:
            cluster = runtime.distributed.refusals.settled
            if cluster is None and self.enabled:
                logger.error("consentcrawl: purge on close: the cluster's refusals could not be read at the close; "
                             "what this worker collected of people another worker found refusing is not purged")
                self.crawler.stats.inc_value("consentcrawl/purge/failed")  # type: ignore[union-attr]
        engine = runtime.engine
        return denied_people(engine.refusals, engine.refused_purposes(runtime.config.purpose),
                             refused_decided=self.refused, collected=[*self.collected, *self.itemised],
                             logged=frozenset(runtime.config.refusals), cluster=cluster,
                             profile_read=self._read_or_undelivered())

    def _read_or_undelivered(self) -> Collection[tuple[str, str]] | None:
        """The people not to purge for a profile never read: those it was read of (by any worker), and those
        nothing of whom reached the spider, cache or outputs (a link allowed and never fetched: nothing to erase).
        None when another worker may have read it and the cluster could not say (the rule is then not applied)."""
        read = {*self.profile_read, *(p for p in self.collected if p not in self.delivered)}
        distributed = self.runtime.distributed if self.runtime is not None else None
        if distributed is not None:
            if distributed.read_elsewhere is None:
                if self.enabled and self.unread_here():
                    logger.error("consentcrawl: purge on close: whose profile another worker read could not be "
                                 "asked at the close; people whose profile this worker never read are not purged "
                                 "for it")
                    self.crawler.stats.inc_value("consentcrawl/purge/failed")  # type: ignore[union-attr]
                return None
            read |= distributed.read_elsewhere
        return read

    def _jobdirs(self) -> list[Path]:
        """The crawl's JOBDIR when its scheduler keeps disk queues there: Scrapy's scheduler wrote the requests
        still pending in its ``close``, before ``spider_closed``, so they are on disk by ``engine_stopped``."""
        from scrapy.utils.job import job_dir

        from .jobdir import QUEUE_DIR

        directory = job_dir(self.crawler.settings)
        return [Path(directory)] if directory and Path(directory, QUEUE_DIR).is_dir() else []

    def _shared_queues(self) -> list[str]:
        """The distributed crawl's queue in Redis when it outlives the crawl (``SCHEDULER_PERSIST``: scrapy-redis
        empties it at the close otherwise), as ``REDIS_URL#KEY`` (:mod:`.sharedqueue`): the requests still queued
        there, and those a worker stopped early put back, are data at rest as a ``JOBDIR``'s are."""
        from scrapy.utils.misc import load_object

        settings = self.crawler.settings
        scheduler = load_object(settings["SCHEDULER"])
        url = settings.get("REDIS_URL")  # the queue's Redis (a crawl without it did not start)
        if not url or not settings.getbool("SCHEDULER_PERSIST") or not _subclass(scheduler, "ConsentRedisScheduler"):
            return []
        from scrapy_redis import defaults  # type: ignore[import-untyped]

        key = settings.get("SCHEDULER_QUEUE_KEY", defaults.SCHEDULER_QUEUE_KEY) % {"spider": self.spider_name}
        return [f"{url}#{key}"]

    def engine_stopped(self) -> None:
        runtime = self.runtime
        stats = self.crawler.stats
        assert runtime is not None and stats is not None
        denied = self.denied()
        late = [person for person in denied if person in self.itemised]
        if late:
            stats.set_value("consentcrawl/refusals/after_collection", len(late))
        never = sum(1 for person in late if NEVER_READ in denied[person].because)
        if never:
            stats.set_value("consentcrawl/refusals/profile_never_read", never)
        if not self.enabled:
            if late:
                logger.warning("consentcrawl: %d person(s) have items in this crawl's outputs from before their "
                               "refusal (or an unreadable say) was found, %d of them because their profile was never "
                               "read; they are not purged without CONSENTCRAWL_PURGE_ON_CLOSE: "
                               "erase them with `consentcrawl purge --subject` (their ids are in the audit log's "
                               "refusal-found events, and at DEBUG)", len(late), never)
                logger.debug("consentcrawl: items from before their refusal: %s",
                             ", ".join(f"{p}:{s}" for p, s in late))
            return
        causes = {**dict.fromkeys(self.withdrawn, Cause(WITHDRAWN)), **denied}  # their own say comes first
        if not causes:
            return
        targets = list(dict.fromkeys([*self.feeds, *map(Path, read(self.crawler.settings,
                                                                   "CONSENTCRAWL_PURGE_TARGETS"))]))
        settings = self.crawler.settings
        unreadable = [(feed, "a feed that is not a local file: not purged") for feed in self.remote_feeds]
        unfindable = sum(runtime.item_pages.unfindable.get(person, 0) for person in causes)
        if unfindable:  # kept by the guard as the page's person's, written out naming no one (itempages.py)
            unreadable.append(("items", f"{unfindable} item(s) of the purged people name no one in the outputs (no "
                               f"{runtime.config.subject_field!r} field, no provenance field): no purge can find "
                               "them there; erase them by what they hold"))
        if settings.getbool("HTTPCACHE_ENABLED"):
            from scrapy.utils.project import data_path

            storage = settings.get("HTTPCACHE_STORAGE")
            storage = storage if isinstance(storage, str) else f"{storage.__module__}.{storage.__qualname__}"
            if storage == FILESYSTEM_STORAGE:
                cache = Path(data_path(settings["HTTPCACHE_DIR"]), self.spider_name or "")
                if cache.is_dir():
                    targets.append(cache)
            else:  # in each receipt, as the media stores: the run must not say the cache was purged
                unreadable.append((data_path(settings["HTTPCACHE_DIR"]), f"HTTPCACHE_STORAGE {storage} is not the "
                                   "filesystem storage: its entries are not purged"))
        pipelines = item_pipelines(self.crawler)  # the crawl's own pipeline names its thumbnails (media_thumbs.py)
        for thumbs in [store.thumbs for store in self.media if store.thumbs is not None]:
            for pipeline in pipelines:
                thumbs.use(pipeline)
        config = runtime.config
        selection = Selection(config.platforms, subject_field=config.subject_field,
                              provenance_field=config.provenance_field)
        fields: dict[str | None, dict[str, Any]] = {selection.add_person(*person): cause.receipt_fields()
                                                     for person, cause in causes.items()}
        people = list(fields)
        # the requests.seen of a job that started with this crawl holds only what this crawl's lines name: the log
        # is read from this crawl's own chain-start; a resumed job's holds earlier runs' too: read whole
        logs = [(Path(config.audit_log), 0 if self.resumed else runtime.audit.start)] if config.audit_log else []
        run = purge(targets, selection, keep=[Path(config.audit_log)] if config.audit_log else [],
                    media=self.media, items=self.media_items, jobdirs=self._jobdirs(),
                    fingerprint=self.crawler.request_fingerprinter.fingerprint, audit_logs=logs,
                    keep_seen=bool(read(settings, "CONSENTCRAWL_PURGE_KEEP_SEEN")),
                    shared_queues=self._shared_queues(), own_queues=True,
                    seeds_key=read(settings, "CONSENTCRAWL_REDIS_START_KEY"),
                    dupefilter_key=settings.get("SCHEDULER_DUPEFILTER_KEY"))
        run.failed += unreadable
        removed = sum(r.count for r in run.results)
        stats.inc_value("consentcrawl/purge/removed", removed)
        stats.inc_value("consentcrawl/purge/people", len(people))
        if run.mentioning:
            stats.inc_value("consentcrawl/purge/mentions_withheld", run.mentioning)
        withdrew = sum(1 for cause in causes.values() if cause.selection == WITHDRAWN)
        logger.info("consentcrawl: purge on close: %d record(s) of %d person(s) removed from %d output(s) (%d "
                    "withdrew, %d refused or could not be read during the crawl); %d kept record(s) lost their "
                    "mentions", removed, len(people), len(run.results), withdrew, len(people) - withdrew,
                    run.mentioning)
        logger.debug("consentcrawl: purge on close: %s", ", ".join(map(str, people)))
        for said in [notice(r, escape="CONSENTCRAWL_PURGE_KEEP_SEEN") for r in run.results
                     if r.kind in (SEEN, DUPEFILTER)]:
            if said:
                logger.warning("consentcrawl: purge on close: %s", said)
        for path, why in run.problems():
            logger.error("consentcrawl: purge on close: %s could not be purged: %s", path, why)
            stats.inc_value("consentcrawl/purge/failed")
        if not config.audit_log:
            return
        from ..audit.log import AuditLog

        try:
            log = AuditLog(config.audit_log, sync=config.audit_sync,
                           header={"writer": "consentcrawl purge on close"})
            now = datetime.now(timezone.utc)
            write_receipts(log, receipts(run, WITHDRAWN, people, fields), now)
            log.close()
        except Exception as exc:  # noqa: BLE001 - ConfigError, AuditUnavailable: the data is gone, the proof is not
            logger.error("consentcrawl: purge on close: the receipts could not be written to the audit log: %s", exc)
            stats.inc_value("consentcrawl/purge/failed")



def _resumed(settings: Any) -> bool:
    """Whether ``JOBDIR/requests.seen`` holds fingerprints already (read as the crawl is set up, before its
    dupefilter opens it): earlier runs' requests, which only the log's earlier lines name."""
    directory = settings.get("JOBDIR")
    if not directory:
        return False
    try:
        return Path(directory, SEEN).stat().st_size > 0
    except OSError:  # no such file: a new job
        return False


def _subclass(cls: Any, name: str) -> bool:
    """Whether ``cls`` is consentcrawl's distributed scheduler class ``name`` or a subclass (without importing
    scrapy-redis into a crawl that does not use it)."""
    return isinstance(cls, type) and any(c.__module__ == "consentcrawl.distributed.scheduler" and c.__name__ == name
                                         for c in cls.__mro__)
