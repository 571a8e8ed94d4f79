"""The one state directory every command finds by default (docs/state.md).

    --state-dir DIR  >  SENTINEL_STATE_DIR  >  /var/lib/sentinel (root) or $XDG_STATE_HOME/sentinel
                                               (else ~/.local/state/sentinel)

Inside it the collector keeps its files at the top (sentinel.db, collector.key, tls/), an agent on this
machine keeps its own in `agent/`, and `sentinel up` adds `admin-token`. So `sentinel up`, the admin
commands (`department`, `system`, `token`, `export`, ...), `sentinel collector` and `sentinel enroll` /
`sentinel agent` all read and write the same place unless told otherwise. The older per-part variables
SENTINEL_COLLECTOR_STATE_DIR and SENTINEL_AGENT_STATE_DIR still win over SENTINEL_STATE_DIR for their part.

Kept free of heavy imports: `sentinel check` must stay lean.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "SENTINEL_STATE_DIR"
AGENT_SUBDIR = "agent"


def default_state_dir() -> Path:
    """SENTINEL_STATE_DIR, else /var/lib/sentinel for root (systemd StateDirectory=sentinel), else XDG."""
    configured = os.environ.get(ENV, "").strip()
    if configured:
        return Path(configured).expanduser().absolute()
    if os.geteuid() == 0:
        return Path("/var/lib/sentinel")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sentinel"


def default_agent_state_dir() -> Path:
    return default_state_dir() / AGENT_SUBDIR


def state_dir_source(flag_given: bool = False, part_env: str = "") -> str:
    """Where the state directory in use came from, for messages that say where a command looked."""
    if flag_given:
        return "--state-dir"
    if part_env and os.environ.get(part_env, "").strip():
        return part_env
    if os.environ.get(ENV, "").strip():
        return ENV
    return f"default; set {ENV} or --state-dir to use another"
