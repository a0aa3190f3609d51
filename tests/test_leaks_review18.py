"""Review 18: leaks found attacking the session's head scan, compressed signal files, store checks and add-on."""

from __future__ import annotations

import pytest
from scrapy.http.headers import Headers

from consentcrawl.pagehead import head_tags
from consentcrawl.signals.base import SignalVerdict
from consentcrawl.signals.tdmrep import response_tdmrep

RESERVED = '<meta name="tdm-reservation" content="1">'


@pytest.mark.parametrize("doc", [
    "<script></script\v><!--</script>" + RESERVED,   # a vertical tab ends no script: the <!-- is script text
    "<style></style\v><!--</style>" + RESERVED,
    "<title></title\v><!--</title>" + RESERVED,
    "<textarea></textarea\v><!--</textarea>" + RESERVED,
    "<script><!--<script></script\v></script><!--</script>" + RESERVED,  # double escaped: ends the inner
])
def test_a_vertical_tab_is_not_white_space_to_the_head_scan(doc: str) -> None:
    """The HTML tokenizer (and libxml2, the parser of Scrapy's selectors) has four white space characters and
    space; ``re``'s ``\\s`` has the vertical tab too. Read as white space, ``</script\\v>`` ended the script for
    the scan, and the ``<!--`` in the script's text hid the page's TDM reservation the spider's ``.css()`` reads."""
    from scrapy import Selector

    assert Selector(text=doc).xpath("//meta[@name='tdm-reservation']/@content").getall() == ["1"]
    assert [dict(t.attrs) for t in head_tags(doc.encode())] == [{"name": "tdm-reservation", "content": "1"}]


@pytest.mark.parametrize("meta", ['<meta name="tdm-reservation"\vcontent="0">',
                                  "<meta name=tdm-reservation\vcontent=0>",
                                  '<meta\vname="tdm-reservation" content="0">'])
def test_a_meta_with_a_vertical_tab_does_not_lift_the_reservation(meta: str) -> None:
    """``<meta name="tdm-reservation"\\vcontent="0">`` has no ``content`` to an HTML parser (the attribute is named
    ``\\vcontent``): read as 0, the page's meta (which takes precedence) lifted the header's reservation."""
    result = response_tdmrep("https://s.example/a", Headers({"TDM-Reservation": "1"}), f"<head>{meta}</head>".encode())
    assert result.verdict("research") is SignalVerdict.DENY
