"""sshd.option, pam.module and accounts.* against small offline roots."""
from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.hostview import NotApplicable, ProbeError, RootHost
from sentinel.probe import ProbeContext, registry


def put(root: Path, rel: str, text: str = "") -> Path:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(kind: str, params: dict, root: Path, family: str | None = None):
    pdef = registry()[kind]
    host = RootHost(str(root))
    ctx = ProbeContext(host=host, family=family, os_release=host.os_release())
    return pdef.func(ctx, pdef.params.model_validate(params))


# ---- sshd ----------------------------------------------------------------------------------------


@pytest.fixture
def sshd_root(tmp_path: Path) -> Path:
    put(tmp_path, "/etc/ssh/sshd_config", """\
# global part
Include /etc/ssh/sshd_config.d/*.conf
PermitRootLogin yes
passwordauthentication=yes
X11Forwarding no   # trailing comment
AllowUsers alice
AllowUsers bob
Match User backup
    PasswordAuthentication no
    PasswordAuthentication yes
Match Address 10.0.0.0/8
    Include extra.conf
""")
    put(tmp_path, "/etc/ssh/sshd_config.d/50-cloud.conf", "PermitRootLogin no\n")
    put(tmp_path, "/etc/ssh/sshd_config.d/10-first.conf", "  PERMITROOTLOGIN   prohibit-password\n")
    put(tmp_path, "/etc/ssh/sshd_config.d/60-match.conf", "Match Group admins\n  PermitRootLogin yes\n")
    put(tmp_path, "/etc/ssh/sshd_config.d/notes.txt", "PermitRootLogin yes\n")
    put(tmp_path, "/etc/ssh/extra.conf", "PermitRootLogin = no\n")
    return tmp_path


def test_sshd_include_order_first_wins_and_match_blocks(sshd_root: Path):
    obs = run("sshd.option", {"key": "PermitRootLogin"}, sshd_root)
    assert obs.observed == ["prohibit-password", "yes", "no"]
    first = obs.evidence[0]
    assert first.source == "/etc/ssh/sshd_config.d/10-first.conf" and first.line == 1
    excerpts = "\n".join(e.excerpt or "" for e in obs.evidence)
    assert "Match Group admins (/etc/ssh/sshd_config.d/60-match.conf:1)" in excerpts
    assert "Match Address 10.0.0.0/8 (/etc/ssh/sshd_config:11)" in excerpts
    assert "first one wins" in excerpts


def test_sshd_match_in_include_does_not_leak(sshd_root: Path):
    # X11Forwarding follows the Include of a file that opens a Match block: still global
    assert run("sshd.option", {"key": "x11forwarding"}, sshd_root).observed == ["no"]


def test_sshd_key_equals_value_and_first_value_in_block(sshd_root: Path):
    obs = run("sshd.option", {"key": "PasswordAuthentication"}, sshd_root)
    assert obs.observed == ["yes", "no"]


def test_sshd_accumulating_keyword(sshd_root: Path):
    assert run("sshd.option", {"key": "AllowUsers"}, sshd_root).observed == ["alice bob"]


def test_sshd_default_and_unset(sshd_root: Path):
    obs = run("sshd.option", {"key": "PermitEmptyPasswords", "default": "no"}, sshd_root)
    assert obs.observed == ["no"] and "default" in obs.note
    assert run("sshd.option", {"key": "MaxAuthTries"}, sshd_root).observed == [None]


def test_sshd_missing_config_is_not_applicable(tmp_path: Path):
    with pytest.raises(NotApplicable):
        run("sshd.option", {"key": "PermitRootLogin"}, tmp_path)


def test_sshd_include_loop_is_an_error(tmp_path: Path):
    put(tmp_path, "/etc/ssh/sshd_config", "Include self.conf\n")
    put(tmp_path, "/etc/ssh/self.conf", "Include self.conf\n")
    with pytest.raises(ProbeError, match="Include nested"):
        run("sshd.option", {"key": "PermitRootLogin"}, tmp_path)


# ---- PAM -----------------------------------------------------------------------------------------


@pytest.fixture
def rhel_pam(tmp_path: Path) -> Path:
    put(tmp_path, "/etc/pam.d/system-auth", """\
#%PAM-1.0
auth        required      pam_env.so
auth        required      /lib64/security/pam_faillock.so preauth silent audit deny=5
auth        sufficient    pam_unix.so try_first_pass nullok
auth        [default=die]   pam_faillock.so authfail unlock_time=900
-auth       sufficient    pam_sss.so forward_pass
auth        required      pam_deny.so
account     required      pam_unix.so
password    requisite     pam_pwquality.so try_first_pass local_users_only \\
                          retry=3 ucredit=-1 dcredit=-1
password    sufficient    pam_unix.so sha512 shadow remember=5   # keep history
""")
    put(tmp_path, "/etc/pam.d/password-auth", "auth  substack  common-stack\naccount include system-auth\n")
    put(tmp_path, "/etc/pam.d/common-stack", "auth required pam_tally2.so deny=3 onerr=fail\n"
                                             "account required pam_tally2.so\n")
    put(tmp_path, "/etc/security/faillock.conf",
        "# deny = 3\ndeny = 4\nunlock_time = 600\neven_deny_root\nfail_interval=900\n")
    put(tmp_path, "/etc/security/pwquality.conf", "minlen = 8\nminclass = 1\n")
    put(tmp_path, "/etc/security/pwquality.conf.d/50-site.conf", "minlen = 12\nmaxrepeat = 3\n")
    return tmp_path


def test_pam_faillock_line_args_and_conf_fallback(rhel_pam: Path):
    obs = run("pam.module", {"stack": "auth", "modules": ["pam_faillock", "pam_tally2"]}, rhel_pam, family="rhel")
    sysauth, pwauth = obs.observed
    assert sysauth["service"] == "system-auth" and sysauth["module"] == "pam_faillock"
    assert sysauth["control"] == "required"
    assert sysauth["deny"] == 5  # on the line: faillock.conf's 4 does not apply
    assert sysauth["unlock_time"] == 900  # from the authfail line
    assert sysauth["fail_interval"] == 900 and sysauth["even_deny_root"] is True  # from faillock.conf
    assert sysauth["preauth"] is True and sysauth["authfail"] is True
    assert pwauth == {"service": "password-auth", "module": "pam_tally2", "control": "required",
                      "deny": 3, "onerr": "fail"}
    faillock_ev = [e for e in obs.evidence if e.source == "/etc/security/faillock.conf"]
    assert {e.line for e in faillock_ev} == {4, 5}
    assert any("via /etc/pam.d/password-auth -> /etc/pam.d/common-stack" in (e.excerpt or "") for e in obs.evidence)


def test_pam_dash_line_and_bracket_control(rhel_pam: Path):
    obs = run("pam.module", {"stack": "auth", "modules": ["pam_sss.so"], "services": ["system-auth"]}, rhel_pam)
    assert obs.observed == [{"service": "system-auth", "module": "pam_sss", "control": "sufficient",
                             "forward_pass": True}]
    obs = run("pam.module", {"stack": "auth", "modules": ["pam_faillock"], "services": ["system-auth"]}, rhel_pam)
    assert obs.observed[0]["control"] == "required"


def test_pam_include_filters_by_type(rhel_pam: Path):
    obs = run("pam.module", {"stack": "account", "modules": ["pam_unix"], "services": ["password-auth"]}, rhel_pam)
    assert obs.observed[0]["module"] == "pam_unix"
    obs = run("pam.module", {"stack": "password", "modules": ["pam_unix"], "services": ["password-auth"]}, rhel_pam)
    assert obs.observed[0]["module"] is None  # `account include` brings only account lines


def test_pam_pwquality_conf_order_and_classes_required(rhel_pam: Path):
    obs = run("pam.module", {"stack": "password", "modules": ["pam_pwquality", "pam_cracklib"],
                             "services": ["system-auth"]}, rhel_pam)
    row = obs.observed[0]
    assert row["retry"] == 3 and row["local_users_only"] is True  # continuation line joined
    assert row["minlen"] == 8  # pwquality.conf is read after pwquality.conf.d and overrides it
    assert row["maxrepeat"] == 3
    assert row["classes_required"] == 2  # minclass 1, but ucredit and dcredit are negative
    put(rhel_pam, "/etc/security/pwquality.conf", "minclass = 3\n")
    obs = run("pam.module", {"stack": "password", "modules": ["pam_pwquality"], "services": ["system-auth"]}, rhel_pam)
    assert obs.observed[0]["classes_required"] == 3 and obs.observed[0]["minlen"] == 12


def test_pam_cracklib_classes_from_line_only(tmp_path: Path):
    put(tmp_path, "/etc/pam.d/common-password",
        "password requisite pam_cracklib.so retry=3 minlen=10 lcredit=-1 ucredit=-1 ocredit=-1 dcredit=0\n")
    obs = run("pam.module", {"stack": "password", "modules": ["pam_pwquality", "pam_cracklib"]}, tmp_path,
              family="debian")
    assert obs.observed[0]["module"] == "pam_cracklib" and obs.observed[0]["classes_required"] == 3


def test_pam_debian_at_include_and_family_guess(tmp_path: Path):
    put(tmp_path, "/etc/pam.d/common-auth", """\
auth\t[success=1 default=ignore]\tpam_unix.so nullok
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
""")
    put(tmp_path, "/etc/pam.d/sshd", "@include common-auth\naccount required pam_nologin.so\n")
    obs = run("pam.module", {"stack": "auth", "modules": ["pam_unix"], "services": ["sshd"]}, tmp_path)
    assert obs.observed == [{"service": "sshd", "module": "pam_unix", "control": "[success=1 default=ignore]",
                             "nullok": True}]
    guessed = run("pam.module", {"stack": "auth", "modules": ["pam_faillock"]}, tmp_path, family=None)
    assert guessed.observed == [{"service": "common-auth", "module": None, "control": None}]
    assert "pam_unix.so nullok" in guessed.evidence[-1].excerpt  # shows what the stack has instead


def test_pam_include_loop_and_missing_service(tmp_path: Path):
    put(tmp_path, "/etc/pam.d/loop-a", "auth include loop-b\n")
    put(tmp_path, "/etc/pam.d/loop-b", "auth required pam_env.so\nauth include loop-a\n")
    with pytest.raises(ProbeError, match="loop"):
        run("pam.module", {"stack": "auth", "modules": ["pam_env"], "services": ["loop-a"]}, tmp_path)
    obs = run("pam.module", {"stack": "auth", "modules": ["pam_env"], "services": ["nosuch"]}, tmp_path)
    assert obs.observed == [{"service": "nosuch", "module": None, "control": None}]
    assert "does not exist" in obs.note


def test_pam_unknown_family_without_stacks_is_error(tmp_path: Path):
    with pytest.raises(ProbeError, match="unknown OS family"):
        run("pam.module", {"stack": "auth", "modules": ["pam_faillock"]}, tmp_path)


# ---- accounts ------------------------------------------------------------------------------------

HASH = "$6$saltsalt$" + "x" * 86


@pytest.fixture
def users(tmp_path: Path) -> Path:
    put(tmp_path, "/etc/passwd", """\
root:x:0:0:root:/root:/bin/bash
toor:x:0:0::/root:/bin/sh
daemon:x:1:1::/usr/sbin:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60::/usr/games:/bin/sh
lp:x:7:7::/var/spool/lpd:/bin/sh
ftp:x:14:50::/var/ftp:/sbin/nologin
halt:x:15:0::/sbin:/bin/false
alice:x:1000:1000::/home/alice:/bin/bash
bob:x:1001:1001::/home/bob:/bin/bash
carol:x:1001:1002::/home/carol:/bin/bash
svc:x:999:999::/srv:/bin/bash
""")
    put(tmp_path, "/etc/shadow", f"""\
root:{HASH}:19000:0:99999:7:::
toor:{HASH}:19000:1:60:14:::
daemon:*:19000:0:99999:7:::
sync::19000:0:99999:7:::
games:{HASH}:19000:::::
lp:*:19000:0:99999:7:::
ftp:{HASH}:19000:0:99999:7:::
halt:{HASH}:19000:0:99999:7:::
alice:{HASH}:19000:1:90:7:::
bob:!!{HASH}:19000:0:99999:7:::
carol:{HASH}:19000::::::
svc:{HASH}:19000:0:99999:7:::
""")
    put(tmp_path, "/etc/group", "root:x:0:\nusers:x:1000:\nstaff:x:1000:\nbob:x:1001:\n")
    put(tmp_path, "/etc/login.defs", "UID_MIN                  1000\n")
    return tmp_path


def test_accounts_empty_uid0_duplicates(users: Path):
    assert run("accounts.empty_password", {}, users).observed == ["sync"]
    assert run("accounts.uid0", {}, users).observed == ["root", "toor"]
    dup = run("accounts.duplicate", {"field": "uid"}, users)
    assert dup.observed == ["0", "1001"]
    assert dup.evidence[1].excerpt.splitlines()[0].startswith("10: bob:x:1001")
    assert run("accounts.duplicate", {"field": "gid"}, users).observed == ["1000"]
    assert run("accounts.duplicate", {"field": "name"}, users).observed == []


def test_accounts_locked_vs_unlocked_default(users: Path):
    obs = run("accounts.unlocked_default",
              {"names": ["daemon", "sync", "games", "lp", "ftp", "halt", "bob", "nosuch"]}, users)
    # games: hash + shell; sync: empty password is not locked + /bin/sync is a real program
    assert obs.observed == ["games", "sync"]
    text = "\n".join(e.excerpt or "" for e in obs.evidence)
    assert "nosuch: no such account" in text
    assert HASH not in text and "<hash $6$>" in text


def test_accounts_password_aging(users: Path):
    obs = run("accounts.password_aging", {}, users)
    assert obs.observed == [
        {"user": "root", "max_days": 99999, "warn_days": 7, "min_days": 0},
        {"user": "toor", "max_days": 60, "warn_days": 14, "min_days": 1},
        {"user": "alice", "max_days": 90, "warn_days": 7, "min_days": 1},
        {"user": "carol", "max_days": None, "warn_days": None, "min_days": None},
    ]  # bob is locked; svc is below UID_MIN
    assert obs.evidence[0].source == "/etc/login.defs" and obs.evidence[0].line == 1
    lowered = run("accounts.password_aging", {"uid_min": 500}, users)
    assert "svc" in [r["user"] for r in lowered.observed]
    assert all(HASH not in (e.excerpt or "") for e in lowered.evidence)


def test_accounts_without_shadow_or_passwd_is_error(tmp_path: Path):
    put(tmp_path, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ProbeError, match="/etc/shadow"):
        run("accounts.empty_password", {}, tmp_path)
    empty = tmp_path / "empty-root"
    empty.mkdir()
    with pytest.raises(ProbeError, match="/etc/passwd"):
        run("accounts.uid0", {}, empty)
