"""Service vocabulary: canonical names for what listens on a port, and the ports scanned by default.

nmap, banners and port numbers each name services differently (`ms-wbt-server`, `login`, `memcache`...);
zone baselines and checks use the canonical names below, so a baseline says `rdp`, never `ms-wbt-server`.
"""
from __future__ import annotations

from typing import Optional

# Well-known port -> canonical service (used when nothing better is known).
PORT_SERVICE: dict[tuple[str, int], str] = {
    **{("tcp", p): s for p, s in {
        21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "dns", 80: "http", 110: "pop3", 111: "rpcbind",
        135: "msrpc", 139: "netbios", 143: "imap", 389: "ldap", 443: "https", 445: "smb", 512: "rexec",
        513: "rlogin", 514: "rsh", 636: "ldaps", 873: "rsync", 993: "imaps", 995: "pop3s", 1433: "mssql",
        1521: "oracle", 2049: "nfs", 2181: "zookeeper", 2375: "docker", 2376: "docker", 3306: "mysql",
        3389: "rdp", 5432: "postgresql", 5601: "kibana", 5672: "amqp", 5900: "vnc", 5901: "vnc", 5985: "winrm",
        5986: "winrm-tls", 6000: "x11", 6379: "redis", 8080: "http", 8443: "https", 9090: "http",
        9200: "elasticsearch", 9300: "elasticsearch", 11211: "memcached", 27017: "mongodb", 27018: "mongodb",
    }.items()},
    **{("udp", p): s for p, s in {
        53: "dns", 69: "tftp", 123: "ntp", 137: "netbios", 161: "snmp", 500: "ike", 1900: "ssdp",
        5353: "mdns", 11211: "memcached",
    }.items()},
}

# nmap service names (nmap-services / -sV) -> canonical.
NMAP_SERVICE: dict[str, str] = {
    "ms-wbt-server": "rdp", "login": "rlogin", "shell": "rsh", "exec": "rexec", "ms-sql-s": "mssql",
    "oracle-tns": "oracle", "oracle": "oracle", "memcache": "memcached", "memcached": "memcached",
    "microsoft-ds": "smb", "netbios-ssn": "netbios", "netbios-ns": "netbios", "http-proxy": "http",
    "http-alt": "http", "https-alt": "https", "mongod": "mongodb", "mongodb": "mongodb", "domain": "dns",
    "vnc": "vnc", "vnc-http": "http", "wap-wsp": "elasticsearch", "elasticsearch": "elasticsearch",
    "zookeeper": "zookeeper", "docker": "docker", "postgresql": "postgresql", "mysql": "mysql",
    "redis": "redis", "ssh": "ssh", "telnet": "telnet", "ftp": "ftp", "tftp": "tftp", "http": "http",
    "https": "https", "snmp": "snmp", "rsync": "rsync", "nfs": "nfs", "rpcbind": "rpcbind", "msrpc": "msrpc",
    "ldap": "ldap", "smtp": "smtp", "ntp": "ntp", "x11": "x11", "wsman": "winrm", "kibana": "kibana",
}

# Remote management protocols (8.1.4.1 c, 8.1.4.4 c). Which of these are plaintext is decided per finding.
MANAGEMENT = frozenset({"ssh", "telnet", "rlogin", "rsh", "rexec", "vnc", "rdp", "ftp", "winrm", "winrm-tls",
                        "x11", "docker", "docker-tls"})
# Always plaintext: credentials cross the network readable (high-risk case 6.4.1.2).
PLAINTEXT_MANAGEMENT = frozenset({"telnet", "rlogin", "rsh", "rexec", "ftp", "vnc", "x11"})
# Probed for access without authentication (N4) or default community (N3).
UNAUTH_SERVICES = frozenset({"redis", "mongodb", "elasticsearch", "memcached", "docker", "zookeeper", "snmp",
                             "postgresql"})

# Added to nmap's top ports by default: databases, caches, container and management ports that a
# government system must not expose, several of which are not in nmap's top 1000.
EXTRA_TCP_PORTS = (21, 22, 23, 111, 135, 139, 445, 512, 513, 514, 873, 1433, 1521, 2049, 2181, 2375, 2376,
                   3306, 3389, 5432, 5601, 5900, 5901, 5985, 5986, 6379, 8080, 8443, 9090, 9200, 9300, 11211,
                   27017, 27018)
DEFAULT_UDP_PORTS = (53, 69, 123, 137, 161, 500, 1900, 5353, 11211)
DEFAULT_TOP_PORTS = 1000


def canonical(proto: str, port: int, nmap_name: Optional[str] = None, tunnel: Optional[str] = None) -> Optional[str]:
    """Best canonical name from nmap's name/tunnel, else the well-known port."""
    name = NMAP_SERVICE.get((nmap_name or "").lower())
    if name == "http" and tunnel == "ssl":
        return "https"
    if name:
        return name
    return PORT_SERVICE.get((proto, port))
