"""The one table from each refusal form a person can publish on their own profile to the purposes it refuses.

Every reader in :mod:`consentcrawl.refusals.forms` names its finding by a form below and reads its purposes from
here, so what ``#noarchive`` or ``"indexable": false`` means for a purpose is written once (and in
``docs/refusals.md``). A form refuses each purpose listed for it; a purpose not listed is not refused by it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..purposes import KNOWN_PURPOSES
from ..robots.tags import PURPOSE_DENIALS
from ..signals.purposes import PROFILING, SEARCH, TDM_PURPOSES

__all__ = ["ALL_PURPOSES", "HASHTAGS", "REFUSAL_PURPOSES", "purposes_of"]

ALL_PURPOSES: frozenset[str] = KNOWN_PURPOSES

#: the hashtags a person writes in a bio, a display name or a profile field (``#no<token>`` is added per crawl)
HASHTAGS: tuple[str, ...] = ("nobot", "noindex", "nobridge", "noarchive")

#: form -> the purposes it refuses
REFUSAL_PURPOSES: Mapping[str, frozenset[str]] = {
    # hashtags (fediverse conventions, coined against crawlers, search engines and bridges)
    "hashtag.nobot": ALL_PURPOSES,            # no automated access to me at all
    "hashtag.no-token": ALL_PURPOSES,         # #no<our product token>: this crawler by name
    "hashtag.noindex": ALL_PURPOSES,          # do not index or collect me: every purpose we have is a collection
    "hashtag.nobridge": ALL_PURPOSES,         # do not carry my account into another service
    "hashtag.noarchive": ALL_PURPOSES - {SEARCH},  # no kept copies: every purpose but serving a search result
    # ActivityPub actor (Mastodon 4.2+, FEP-5feb: opt-in, a missing flag is false)
    "activitypub.indexable": frozenset({SEARCH}) | TDM_PURPOSES,   # "indexable": false or missing
    "activitypub.discoverable": frozenset({SEARCH, PROFILING}),     # "discoverable": false or missing
    "activitypub.suspended": ALL_PURPOSES,    # the server took the account down: nothing of it is public
    "activitypub.memorial": ALL_PURPOSES,     # the person died: nobody can give or confirm consent any more
    "activitypub.moved": ALL_PURPOSES,        # "movedTo": the person left this account; a record for it is stale
    "activitypub.not-public": ALL_PURPOSES,   # 401 to an unsigned fetch (authorized-fetch mode): not public
    # Bluesky self-label on the person's own profile record
    "bluesky.no-unauthenticated": ALL_PURPOSES,  # not to be shown to logged-out viewers; a crawler is one
    # <meta name="robots"> on the person's profile page: what the directive denies for a page (robots/tags.py)
    **{f"meta-robots.{rule}": frozenset(p for p, rules in PURPOSE_DENIALS.items() if rule in rules)
       for rule in sorted(frozenset().union(*PURPOSE_DENIALS.values())) if rule != "unavailable_after"},
}


def purposes_of(form: str) -> frozenset[str]:
    """The purposes ``form`` refuses (empty for a form not in the table)."""
    return REFUSAL_PURPOSES.get(form, frozenset())
