"""What the store answered, as the pure core sees it: the store's version and the records the adapters looked up.

The core never calls a store. A check reads a person's records through
:meth:`~consentcrawl.checks.base.CheckContext.records`, which reads them from a :class:`StoreAnswers` the adapters
filled in. When the records a decision needs are not there (nor remembered by :mod:`consentcrawl.cache` at the
store's version), the engine raises :class:`RecordsNeeded`; the adapter (:class:`~consentcrawl.deciding.Decider`)
then awaits the store's lookup and asks the engine again. So a decision the cache can answer, or one a site check
(robots.txt) denies first, costs no lookup, and a lookup is always an ``await`` in an adapter, never a call in the
core.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING

from ..errors import StoreUnavailable

if TYPE_CHECKING:
    from .records import AuthorizationRecord

__all__ = ["NO_STORE", "RecordsNeeded", "StoreAnswers"]


class RecordsNeeded(BaseException):
    """The decision needs the records of ``(platform, subject)``, which the adapters have not looked up yet.

    A ``BaseException``, like ``GeneratorExit``: a check that wraps its work in ``except Exception`` must not turn
    "not looked up yet" into a pass (or an allow). The engine lets it through to the adapter, which looks the person
    up and asks again; nothing is remembered from the attempt that raised it.
    """

    def __init__(self, platform: str, subject: str) -> None:
        super().__init__(platform, subject)
        self.platform = platform
        self.subject = subject
        #: what the engine worked out for this question before it found the records missing (a link's facts):
        #: the adapter hands it back with the records (:attr:`StoreAnswers.carried`), so asking again does not
        #: work it out again. Opaque to the adapter; the engine checks it belongs to the question asked.
        self.carried: object = None


class StoreAnswers:
    """The store as one decision sees it: its ``version``, read before any of the lookups below, its ``source``
    (named in evidence), and its answer for each person looked up so far.

    ``source`` is None when no store is configured: every person then has no records. A remembered decision that
    used records is reused only while the store's version is this ``version`` (:mod:`consentcrawl.cache`).
    """

    __slots__ = ("answers", "carried", "final", "source", "version")

    def __init__(self, version: Hashable, source: str | None,
                 answers: Mapping[tuple[str, str], tuple[AuthorizationRecord, ...] | StoreUnavailable] | None = None,
                 final: bool = False, carried: object = None) -> None:
        self.version = version
        self.source = source
        self.answers = answers or {}
        #: no more lookups will be made for this decision: a person not looked up is a store failure
        self.final = final
        #: what the engine carried over from the ask that raised :class:`RecordsNeeded` (its ``carried``)
        self.carried = carried

    @property
    def configured(self) -> bool:
        """Whether there is a store at all."""
        return self.source is not None

    def records(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        """The records of one person; raises :class:`RecordsNeeded` when they have not been looked up, and
        :class:`~consentcrawl.errors.StoreUnavailable` when the store could not give them."""
        if self.source is None:
            return ()
        answer = self.answers.get((platform, subject))
        if answer is None:
            if self.final:
                raise StoreUnavailable(f"authorization store {self.source}: a decision asked for the records of "
                                       f"more people than one decision may look up")
            raise RecordsNeeded(platform, subject)
        if isinstance(answer, StoreUnavailable):
            raise answer
        return answer

    def with_answer(self, platform: str, subject: str, answer: tuple[AuthorizationRecord, ...] | StoreUnavailable,
                    version: Hashable, carried: object = None) -> StoreAnswers:
        """These answers plus one more, as of ``version`` (what the caller read before this lookup, or a version
        of its own when the store changed in between: see :meth:`consentcrawl.deciding.Decider.look_up`), carrying
        ``carried`` to the next ask."""
        return StoreAnswers(version, self.source, {**self.answers, (platform, subject): answer}, carried=carried)

    def finished(self) -> StoreAnswers:
        """The same answers, with no more to come (see :attr:`final`)."""
        return StoreAnswers(self.version, self.source, self.answers, final=True, carried=self.carried)


#: the answers when no store is configured: nobody has records
NO_STORE = StoreAnswers(None, None)
