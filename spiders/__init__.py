"""Example spiders: run them with `scrapy crawl NAME` from the repository root."""
