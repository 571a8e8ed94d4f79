"""file.exists / file.mode / file.regex / config.value against small offline roots."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from sentinel.hostview import NotApplicable, ProbeError, RootHost
from sentinel.probe import ProbeContext, registry


def put(root: Path, rel: str, text: str = "", mode: int | None = None) -> Path:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def run(kind: str, params: dict, root: Path, family: str | None = None, ctx: ProbeContext | None = None):
    pdef = registry()[kind]
    parsed = pdef.params.model_validate(params)
    if ctx is None:
        host = RootHost(str(root))
        ctx = ProbeContext(host=host, family=family, os_release=host.os_release())
    return pdef.func(ctx, parsed)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    put(tmp_path, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:4242:4343::/home/alice:/bin/bash\n")
    put(tmp_path, "/etc/group", "root:x:0:\nauditors:x:4343:\n")
    return tmp_path


def test_file_exists_globs_and_missing(root: Path):
    put(root, "/home/a/.rhosts")
    put(root, "/home/b/.rhosts")
    put(root, "/home/c/notes")
    obs = run("file.exists", {"paths": ["/home/*/.rhosts", "/etc/hosts.equiv"]}, root)
    assert obs.observed == ["/home/a/.rhosts", "/home/b/.rhosts"]
    sources = {e.source: e.excerpt for e in obs.evidence}
    assert sources["/etc/hosts.equiv"] == "no such file"
    assert "exists (file" in sources["/home/a/.rhosts"]


def test_file_mode_resolves_names_from_the_hosts_own_files(root: Path):
    path = put(root, "/etc/shadow", "root:*:19000::::::\n", mode=0o640)
    os.chown(path, 4242, 4343)  # ids the scanning machine does not know by these names
    put(root, "/etc/gshadow", "", mode=0o600)
    os.chown(root / "etc/gshadow", 5555, 6666)  # unknown to the host too: numeric strings
    obs = run("file.mode", {"paths": ["/etc/shadow", "/etc/gshadow", "/etc/nothing"]}, root)
    assert obs.observed == [
        {"path": "/etc/shadow", "mode": "0640", "owner": "alice", "group": "auditors"},
        {"path": "/etc/gshadow", "mode": "0600", "owner": "5555", "group": "6666"},
    ]
    assert any("-rw-r----- 0640 alice:auditors" in (e.excerpt or "") for e in obs.evidence)


def test_file_mode_none_existing_is_not_applicable(root: Path):
    with pytest.raises(NotApplicable):
        run("file.mode", {"paths": ["/etc/cron.deny"]}, root)


def test_file_mode_setuid_bits_are_kept(root: Path):
    put(root, "/usr/bin/passwd", "", mode=0o4755)
    obs = run("file.mode", {"paths": ["/usr/bin/passwd"]}, root)
    assert obs.observed[0]["mode"] == "4755"


def test_params_are_strict():
    pdef = registry()["file.exists"]
    with pytest.raises(ValidationError):
        pdef.params.model_validate({"paths": ["/etc/x"], "path": "/etc/y"})
    with pytest.raises(ValidationError):
        pdef.params.model_validate({"paths": ["etc/relative"]})
    with pytest.raises(ValidationError):
        registry()["file.regex"].params.model_validate({"paths": ["/x"], "pattern": "(a", "group": 0})
    with pytest.raises(ValidationError):
        registry()["file.regex"].params.model_validate({"paths": ["/x"], "pattern": "a(b)", "group": 2})


def test_file_regex_group_pick_and_comments(root: Path):
    put(root, "/etc/login.defs", "# PASS_MAX_DAYS 99999\nPASS_MAX_DAYS   90\nPASS_MIN_DAYS 1\n")
    put(root, "/etc/login.defs.d/extra", "PASS_MAX_DAYS 60\n")
    base = {"paths": ["/etc/login.defs", "/etc/login.defs.d/*"], "pattern": r"PASS_MAX_DAYS\s+(\d+)", "group": 1}
    assert run("file.regex", base, root).observed == ["90", "60"]
    assert run("file.regex", {**base, "pick": "first"}, root).observed == "90"
    assert run("file.regex", {**base, "pick": "last"}, root).observed == "60"
    all_lines = run("file.regex", {**base, "ignore_comments": False}, root)
    assert all_lines.observed == ["99999", "90", "60"]
    whole = run("file.regex", {"paths": ["/etc/login.defs"], "pattern": "MIN_DAYS"}, root)
    assert whole.observed == ["PASS_MIN_DAYS 1"]
    assert whole.evidence[0].line == 3
    none = run("file.regex", {"paths": ["/etc/missing"], "pattern": "x", "pick": "first"}, root)
    assert none.observed is None and none.evidence[0].excerpt == "no such file"


def test_directory_and_symlink_loop_are_probe_errors(root: Path):
    (root / "etc/issue").mkdir(parents=True)
    with pytest.raises(ProbeError, match="is a directory"):
        run("file.regex", {"paths": ["/etc/issue"], "pattern": "x"}, root)
    os.symlink("/etc/loop-b", root / "etc/loop-a")
    os.symlink("/etc/loop-a", root / "etc/loop-b")
    with pytest.raises(ProbeError, match="symbolic links"):
        run("config.value", {"paths": ["/etc/loop-a"], "key": "X"}, root)


def test_symlinks_escaping_the_root_stay_inside(root: Path):
    put(root, "/etc/hostname", "inside-the-root\n")
    os.symlink("/etc/hostname", root / "etc/absolute-link")
    os.symlink("../../../../../../../../etc/hostname", root / "etc/relative-link")
    for link in ("/etc/absolute-link", "/etc/relative-link"):
        obs = run("file.regex", {"paths": [link], "pattern": "."}, root)
        assert obs.observed == ["inside-the-root"], link


def test_dangling_symlink_counts_as_absent(root: Path):
    os.symlink("/etc/gone", root / "etc/dangling")
    put(root, "/etc/real", "", mode=0o600)
    obs = run("file.mode", {"paths": ["/etc/dangling", "/etc/real"]}, root)
    assert [r["path"] for r in obs.observed] == ["/etc/real"]
    assert run("file.exists", {"paths": ["/etc/dangling"]}, root).observed == []


def test_config_value_separators_precedence_and_default(root: Path):
    put(root, "/etc/login.defs", "PASS_MAX_DAYS 99999\n# PASS_MIN_LEN 5\nPASS_MAX_DAYS\t90\n")
    put(root, "/etc/security/pwquality.conf", "# minlen = 9\nminlen = 12  # site policy\n")
    put(root, "/etc/security/pwquality.conf.d/10-x.conf", "minlen=14\n")
    put(root, "/etc/profile.d/tmout.sh", "readonly TMOUT=600; export TMOUT\n")
    obs = run("config.value", {"paths": ["/etc/login.defs"], "key": "PASS_MAX_DAYS", "separator": "space"}, root)
    assert obs.observed == "90" and obs.evidence[0].line == 3
    first = run("config.value", {"paths": ["/etc/login.defs"], "key": "PASS_MAX_DAYS", "precedence": "first"}, root)
    assert first.observed == "99999"
    later = run("config.value", {"paths": ["/etc/security/pwquality.conf", "/etc/security/pwquality.conf.d/*.conf"],
                                 "key": "minlen", "separator": "equals"}, root)
    assert later.observed == "14"
    assert later.evidence[0].source == "/etc/security/pwquality.conf.d/10-x.conf"
    only_main = run("config.value", {"paths": ["/etc/security/pwquality.conf"], "key": "minlen"}, root)
    assert only_main.observed == "12"
    tmout = run("config.value", {"paths": ["/etc/profile", "/etc/profile.d/*.sh"], "key": "TMOUT"}, root)
    assert tmout.observed == "600"
    unset = run("config.value", {"paths": ["/etc/login.defs"], "key": "PASS_WARN_AGE", "default": "7"}, root)
    assert unset.observed == "7" and "default" in unset.note
    nothing = run("config.value", {"paths": ["/etc/login.defs"], "key": "pass_max_days"}, root)
    assert nothing.observed is None
    insensitive = run("config.value", {"paths": ["/etc/login.defs"], "key": "pass_max_days",
                                       "case_sensitive": False}, root)
    assert insensitive.observed == "90"
