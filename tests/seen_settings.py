"""A settings module for ``consentcrawl purge --settings``: the crawl's own request fingerprinter, so that the
purge computes the fingerprints ``requests.seen`` holds as the crawl did (``tests/test_purge_jobdir_seen.py``)."""

REQUEST_FINGERPRINTER_CLASS = "consentcrawl.distributed.fingerprint.CanonicalRequestFingerprinter"
