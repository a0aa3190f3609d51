"""Erasure: a person's data removed from what a crawl wrote (feeds, SQLite item databases, the HTTP cache), with a
receipt in the audit log (``docs/purge.md``)."""

from .common import PurgeFailed, Selection, TargetResult
from .run import PurgeRun, kind_of, purge, receipts, write_receipts

__all__ = ["PurgeFailed", "PurgeRun", "Selection", "TargetResult", "kind_of", "purge", "receipts", "write_receipts"]
