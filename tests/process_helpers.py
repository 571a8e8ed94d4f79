"""Stopping the real sentinel processes the end-to-end tests start (collector, `sentinel up`)."""
from __future__ import annotations

import signal
import subprocess


def terminate(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, as systemd stops the service, and `timeout` seconds for a clean exit; then SIGKILL, so a
    hung process never outlives its test."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
