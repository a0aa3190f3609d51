"""Distributed crawls (issue #16): workers on scrapy-redis's shared queue that share one consent state and one
politeness budget through Redis (``CONSENTCRAWL_REDIS_URL``, default ``REDIS_URL``). See docs/distributed.md.

Every part is an adapter around the in-process machinery: the pure core does not know it runs on many machines.

- :mod:`.shared`: the connection, the worker's identity and the fail-closed rule for Redis errors;
- :mod:`.fetches`: one robots.txt / signal-file fetch per URL for the whole cluster (single flight, cached);
- :mod:`.spacing`: ``Crawl-delay`` / ``Request-rate`` kept across workers (a per-origin schedule in Redis);
- :mod:`.refusals`: on-page refusals seen by one worker, known to all within a second;
- :mod:`.seeds`: seeds read from a Redis key, idling while more may come;
- :mod:`.scheduler`, :mod:`.fingerprint`: scrapy-redis's scheduler and dupefilter, and canonical duplicates;
- :mod:`.heldqueue`, :mod:`.serializer`, :mod:`.callbacks`: the shared queue's entries (held while in flight, JSON,
  and the callbacks an entry may name).
"""

from __future__ import annotations

from .refusals import publish_refusal
from .shared import SharedStateUnavailable, shared_redis_url

__all__ = ["SharedStateUnavailable", "publish_refusal", "shared_redis_url"]
