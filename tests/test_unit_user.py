"""`systemd.unit_user` (checks/unit_user.py): the account a service runs as, from its unit file and drop-ins."""
from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.hostview import NotApplicable, RootHost
from sentinel.probe import ProbeContext, registry

UNIT = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/usr/bin/x \\\n  --flag\nUser=redis\nGroup=redis\n"


def _user(root: Path, unit: str = "redis-server.service") -> str:
    ctx = ProbeContext(host=RootHost(str(root)), family="debian", os_release={})
    pdef = registry()["systemd.unit_user"]
    return pdef.func(ctx, pdef.params.model_validate({"unit": unit})).observed


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def test_unit_file_and_drop_ins_in_order(tmp_path):
    _write(tmp_path, "lib/systemd/system/redis-server.service", UNIT)
    assert _user(tmp_path) == "redis"
    _write(tmp_path, "lib/systemd/system/redis-server.service.d/10-root.conf", "[Service]\nUser=\n")
    assert _user(tmp_path) == "root"  # an empty User= resets it
    _write(tmp_path, "etc/systemd/system/redis-server.service.d/20-back.conf", "[Service]\nUser=redis2\n")
    assert _user(tmp_path) == "redis2"  # drop-ins apply in file-name order, whichever directory holds them
    _write(tmp_path, "etc/systemd/system/redis-server.service.d/10-root.conf", "[Service]\nUser=svc\n")
    assert _user(tmp_path) == "redis2"  # /etc's 10-root.conf hides /lib's; 20-back still comes last


def test_an_etc_unit_replaces_the_packaged_one_and_no_user_is_root(tmp_path):
    _write(tmp_path, "lib/systemd/system/redis-server.service", UNIT)
    _write(tmp_path, "etc/systemd/system/redis-server.service", "[Service]\nExecStart=/usr/bin/x\n")
    assert _user(tmp_path) == "root"


def test_user_outside_service_section_does_not_count_and_dynamic_user(tmp_path):
    _write(tmp_path, "lib/systemd/system/x.service", "[Unit]\nUser=nobody\n[Service]\nDynamicUser=yes\n")
    assert _user(tmp_path, "x.service") == "dynamic"


def test_masked_or_missing_unit_is_not_applicable(tmp_path):
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    (tmp_path / "etc/systemd/system/redis-server.service").symlink_to("/dev/null")
    with pytest.raises(NotApplicable, match="masked"):
        _user(tmp_path)
    with pytest.raises(NotApplicable, match="no such unit"):
        _user(tmp_path, "other.service")
