"""The request meta keys consentcrawl reads or writes (public: re-exported by ``consentcrawl``)."""

__all__ = ["META_DECISION", "META_NOFOLLOW", "META_SUBJECT"]

#: request meta keys (public): a request may name the person it concerns (only where its URL names none or the
#: same one); the decision is copied into meta for the spider to read, never read back from it
META_SUBJECT = "consentcrawl_subject"
META_DECISION = "consentcrawl_decision"
#: set on a response whose X-Robots-Tag / meta robots says nofollow: its links are dropped (it can only tighten)
META_NOFOLLOW = "consentcrawl_nofollow"
