"""`systemd.unit_user`: the account a systemd service runs as, from its unit file and drop-ins (works offline).

As systemd reads them (systemd.unit(5)): the unit file is the first directory of checks/services.py's search path
that has it (a link to /dev/null masks it); drop-ins are every
`UNIT.d/*.conf` of those directories, a name in an earlier directory hiding the same name in a later one, applied
in file-name order after the unit file. In `[Service]`, the last `User=` wins, an empty `User=` resets it; none is
root. `DynamicUser=yes` makes a transient unprivileged account.
"""
from __future__ import annotations

import posixpath

from pydantic import Field

from sentinel.hostview import NotApplicable
from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from .services import UNIT_DIRS, _find_unit_file, _is_masked


class UnitUserParams(Strict):
    unit: str = Field(pattern=r"^[A-Za-z0-9@._-]+\.service$")


def _assignments(text: str, path: str) -> list[tuple[str, str, int]]:
    """(key, value, line) of the [Service] section, continuation lines joined."""
    out: list[tuple[str, str, int]] = []
    section = ""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if pending:
            line, pending = pending + line, ""
        elif not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending, start = line[:-1] + " ", start or number
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line:
            key, _, value = line.partition("=")
            out.append((key.strip(), value.strip(), start or number))
        start = 0
    return out


@probe("systemd.unit_user", UnitUserParams)
def unit_user(ctx: ProbeContext, params: UnitUserParams) -> Observation:
    """The account `unit` runs as (`root` when no User=), or `dynamic` with DynamicUser=yes."""
    unit_file = _find_unit_file(ctx, params.unit)  # systemd's search path, as systemd.unit reads it
    if unit_file is None:
        raise NotApplicable(f"{params.unit}: no such unit", f"{params.unit}：没有此单元")
    if _is_masked(ctx, unit_file):
        raise NotApplicable(f"{params.unit} is masked ({unit_file})", f"{params.unit} 已被屏蔽（{unit_file}）")
    dropins: dict[str, str] = {}
    for d in reversed(UNIT_DIRS):  # earlier directories hide the same name in later ones
        for name in ctx.host.listdir(posixpath.join(d, params.unit + ".d")):
            if name.endswith(".conf"):
                dropins[name] = posixpath.join(d, params.unit + ".d", name)
    user, dynamic = "root", False
    ev: list[Evidence] = []
    for path in [unit_file, *(dropins[n] for n in sorted(dropins))]:
        text = ctx.host.read_optional(path) or ""
        for key, value, line in _assignments(text, path):
            if key == "User":
                user = value or "root"
                ev.append(evidence(path, f"User={value}", line))
            elif key == "DynamicUser":
                dynamic = value.lower() in ("yes", "true", "1", "on")
                ev.append(evidence(path, f"DynamicUser={value}", line))
    if not ev:
        ev.append(evidence(unit_file, "no User= in [Service]: the service runs as root"))
    return Observation(observed="dynamic" if dynamic and user == "root" else user, evidence=ev)
