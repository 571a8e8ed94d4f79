"""Government website monitoring (网站群监测, issue 17): declared sites per department and system, crawled
politely within their declaration, judged by the national inspection rules (sentinel/websites/rules.py), with
the findings kept as a rectification trail. docs/websites.md.

sites: the declaration and its scope; crawl: one bounded crawl (httpx); page: what an HTML page shows (lxml);
judge: the verdicts of a round; deface: tamper baselines and diffs; tlscheck: the HTTPS origins; monitor:
rounds, availability visits and findings against the store; keywords: gambling and pornography words.
"""
