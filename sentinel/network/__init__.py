"""The network engine: one scan end to end (engine), the zone baselines it judges against (zones), the network
checks as data (checks), their scoring at the system's level (scoring) and the diff between scans (diff).

The probes it drives (nmap discovery, banners, TLS, SSH, unauthenticated access, credentials) and the scope guard
that runs before any packet are the probe package `sentinel.checks.network`; imports go one way, engine -> probes.
"""
