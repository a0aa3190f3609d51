"""Scrapy settings for the example spiders in ``spiders/`` (``scrapy crawl microblog`` from the repository root).

The demo platform must be running for ``scrapy crawl``: ``consentcrawl demo --serve`` in another terminal, then
``http_proxy=http://127.0.0.1:8765 scrapy crawl microblog``. ``consentcrawl demo`` does both for you.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent

BOT_NAME = "consentcrawl-examples"
SPIDER_MODULES = ["spiders"]
NEWSPIDER_MODULE = "spiders"

# The add-on is set here, in the project settings, and not only by the ConsentSpider subclasses: `scrapy fetch`,
# `scrapy shell` and `scrapy parse` run without any spider's settings, and a fetch they make must be checked too.
# No CONSENTCRAWL_PURPOSE here: a fetch from `scrapy shell` states its purpose
# (`scrapy shell -s CONSENTCRAWL_PURPOSE=research URL`) or is refused; each spider declares its own.
ADDONS = {"consentcrawl.Addon": 0}
CONSENTCRAWL_PLATFORMS = str(_HERE / "platforms.yaml")
CONSENTCRAWL_AUTHORIZATIONS = str(_HERE / "authorizations.yaml")
CONSENTCRAWL_AUDIT_LOG = "output/audit.jsonl"
CONSENTCRAWL_USER_AGENT_TOKEN = "consentcrawl"
CONSENTCRAWL_LOGSTATS_INTERVAL = 10

USER_AGENT = "consentcrawl-example/0.1 (+https://github.com/consentcrawl)"
CONCURRENT_REQUESTS = 16
CONCURRENT_ITEMS = 16
TELNETCONSOLE_ENABLED = False
# Scrapy 2.19's RemoteControl runs code sent to a local HTTP port; a crawl of people's data has no use for it.
REMOTE_CONTROL_ENABLED = False
FEED_EXPORT_ENCODING = "utf-8"
