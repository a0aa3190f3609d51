"""The demo platform behind ``consentcrawl demo``: a made-up microblog served on loopback, and the run that crawls it.

A package of its own, beside ``consentcrawl`` rather than inside it, so that what a crawl imports holds no HTTP
server: only the ``demo`` command of the CLI imports it, when it runs. The end-to-end tests serve their sites with
the same :class:`~consentcrawl_demo.server.LocalServer`.
"""
