"""One value of an item field, or of ``consentcrawl_subject``, given as a list.

Scrapy's ``ItemLoader`` keeps every field as a list unless the project sets ``TakeFirst`` as its output processor:
``{"subject": ["101"], "platform": ["people"]}``. Read as text, ``['101']`` is no one's id: every authorized person's
item was denied. A list or tuple of one value (or of the same value more than once) is that value; a list of
several values is left as it is, for its reader to deny: whose it is cannot be told.
"""

from __future__ import annotations

from typing import Any

__all__ = ["one_value", "several"]


def one_value(value: Any) -> Any:
    """``value``, or the one string or number a list or tuple holds (``['101']``, ``[101]``, ``('101', '101')``);
    None for an empty one. A list of several values, or of anything else (a ``Selector``), is returned as it is."""
    if not isinstance(value, (list, tuple)):
        return value
    if not value:
        return None
    if not all(isinstance(found, (str, int)) and not isinstance(found, bool) for found in value):
        return value
    distinct = {str(found) for found in value}
    return value[0] if len(distinct) == 1 else value


def several(value: Any) -> bool:
    """Whether ``value`` (as :func:`one_value` left it) is a list or tuple: it names more than one value, or
    something that is no id."""
    return isinstance(value, (list, tuple))
