"""Host utilisation samples for zombie-system detection (a system nobody uses still has to be secured).

Every sample: CPU percent since the previous sample (all cores), memory percent in use, bytes sent and
received on non-loopback interfaces *during the interval ending at `at`* (so one sample reads on its
own, and a counter reset at reboot cannot produce a negative value), the number of logged-in
sessions, and the established TCP connections that remote peers opened to this host's listening ports
(`inbound_connections`: what the host's services serve, the application side of "little use"; None when the
sockets cannot be read). Samples wait in a bounded ring until an `utilisation` envelope takes them; if none can be
made for long, the oldest samples go first.
"""
from __future__ import annotations

import ipaddress
import threading
from collections import deque
from datetime import datetime, timezone
from typing import Any, Optional

import psutil


def _net_bytes() -> tuple[int, int]:
    sent = recv = 0
    for nic, counters in psutil.net_io_counters(pernic=True, nowrap=True).items():
        if nic == "lo" or nic.startswith("lo:"):
            continue  # local traffic (including the agent's own to a local collector) says nothing about use
        sent += counters.bytes_sent
        recv += counters.bytes_recv
    return sent, recv


def inbound_connections() -> Optional[int]:
    """Established TCP connections from a non-loopback peer to a port this host listens on (all addresses)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    listening = {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.laddr}
    count = 0
    for c in conns:
        if c.status != psutil.CONN_ESTABLISHED or not c.raddr or not c.laddr or c.laddr.port not in listening:
            continue
        try:
            if ipaddress.ip_address(c.raddr.ip.split("%", 1)[0]).is_loopback:
                continue  # the host talking to itself (a local collector, a local proxy) is no use by anyone
        except ValueError:
            continue
        count += 1
    return count


class Sampler:
    def __init__(self, ring_size: int) -> None:
        self._ring: deque[dict[str, Any]] = deque(maxlen=ring_size)
        self._lock = threading.Lock()
        psutil.cpu_percent(interval=None)  # the first call only sets the reference point
        self._net = _net_bytes()

    def sample(self) -> dict[str, Any]:
        sent, recv = _net_bytes()
        with self._lock:
            prev_sent, prev_recv = self._net
            self._net = (sent, recv)
            record = {
                "at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                "cpu_percent": psutil.cpu_percent(interval=None),
                "memory_percent": psutil.virtual_memory().percent,
                "net_bytes_sent": max(sent - prev_sent, 0),
                "net_bytes_recv": max(recv - prev_recv, 0),
                "logins": len(psutil.users()),
                "inbound_connections": inbound_connections(),
            }
            self._ring.append(record)
        return record

    def drain(self) -> list[dict[str, Any]]:
        """All samples taken since the last drain, oldest first."""
        with self._lock:
            samples = list(self._ring)
            self._ring.clear()
        return samples

    def __len__(self) -> int:
        return len(self._ring)
