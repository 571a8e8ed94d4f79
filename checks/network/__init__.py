"""Network probes: nmap discovery, banners, TLS, SSH, unauthenticated access, opt-in credentials, and the scope
guard that refuses any target outside the allowed scope before a packet is sent. They produce `ServiceFinding`s
(findings.py); judging them is the network engine's work (`sentinel.network`), which this package never imports.
"""
