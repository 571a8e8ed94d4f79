"""Redis object kind, offline (issue 15): redis.conf read as Redis 7.0 reads it, ACL users as it builds them, and the
level-2/3/4 Redis baselines over fixture roots (tests/fixtures/redis/). The real server's answers are compared in
tests/test_object_redis_real.py.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.checks import _redis_conf as conf
from sentinel.checks._redis_acl import weakness
from sentinel.engine import run_baseline
from sentinel.hostview import RootHost
from sentinel.model import Status
from sentinel.probe import ProbeContext, registry

FIXTURES = Path(__file__).parent / "fixtures" / "redis"
DPKG = (FIXTURES / "debian-stock" / "var" / "lib" / "dpkg" / "status").read_text(encoding="utf-8")


def _root(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    # git keeps no modes: give the files those the Debian package installs
    for path in (root / "etc" / "redis").rglob("*.conf"):
        path.chmod(0o640)
    return root


def _bare(tmp_path: Path, files: dict[str, str], version: str = "5:7.0.15-1~deb12u10") -> Path:
    root = tmp_path / "root"
    for rel, text in {"etc/os-release": "ID=debian\nVERSION_ID=12\n",
                      "var/lib/dpkg/status": DPKG.replace("5:7.0.15-1~deb12u10", version), **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _probe(root: Path, kind: str, **params):
    ctx = ProbeContext(host=RootHost(str(root)), family="debian", os_release={})
    pdef = registry()[kind]
    return pdef.func(ctx, pdef.params.model_validate(params))


def _value(root: Path, key: str) -> str:
    return _probe(root, "redis.config", key=key).observed


def _statuses(root: Path, baseline: str = "dengbao-l3-redis") -> dict[str, Status]:
    report = run_baseline(load_baseline(baseline), RootHost(str(root)))
    return {r.check_id: r.status for r in report.results}


# ---- the configuration as Redis reads it ------------------------------------------------------------------


@pytest.mark.parametrize(("line", "args"), [
    ("bind 127.0.0.1 -::1", ["bind", "127.0.0.1", "-::1"]),
    ('logfile ""', ["logfile", ""]),
    ('requirepass "a b\\x41\\n"', ["requirepass", "a bA\n"]),
    ("requirepass 'it\\'s'", ["requirepass", "it's"]),
    ('save "" ', ["save", ""]),
    ('logfile "x"y', None),  # the closing quote must be followed by a space
    ('logfile "x', None),
])
def test_split_args_as_sdssplitargs(line, args):
    assert conf.split_args(line) == args


def test_stock_debian_values_and_defaults(tmp_path):
    root = _root(tmp_path, "debian-stock")
    assert _value(root, "bind") == "127.0.0.1 -::1"
    assert _value(root, "protected-mode") == "yes"
    assert _value(root, "logfile") == "/var/log/redis/redis-server.log"
    assert _value(root, "dir") == "/var/lib/redis"
    # not set in Debian's file: Redis 7.0's compiled-in values, said so in the evidence
    obs = _probe(root, "redis.config", key="save")
    assert obs.observed == "3600 1 300 100 60 10000"
    assert "compiled-in default" in obs.evidence[0].excerpt and obs.note
    assert _value(root, "tls-port") == "0" and _value(root, "maxclients") == "10000"
    assert _value(root, "enable-debug-command") == "no"


def test_include_glob_order_and_precedence(tmp_path):
    root = _root(tmp_path, "hardened")
    # main file's weak values are replaced by conf.d (later lines win); the dot file is skipped
    assert _value(root, "bind") == "127.0.0.1 -::1 10.0.0.5"
    assert _value(root, "protected-mode") == "yes"
    assert _value(root, "port") == "0"
    assert _value(root, "timeout") == "300"  # the directive is case-insensitive
    ev = _probe(root, "redis.config", key="timeout").evidence[0]
    assert (ev.source, ev.line) == ("/etc/redis/conf.d/20-session.conf", 1)
    # save: the main file's `save ""` empties the schedule, later lines add to it
    assert _value(root, "save") == "3600 1 300 100"
    assert _value(root, "tls-protocols") == "TLSv1.2 TLSv1.3"


def test_an_include_before_a_line_loses_to_it(tmp_path):
    root = _bare(tmp_path, {"etc/redis/redis.conf": "include /etc/redis/extra.conf\ntimeout 10\n",
                            "etc/redis/extra.conf": "timeout 20\nloglevel verbose\n"})
    assert _value(root, "timeout") == "10"
    assert _value(root, "loglevel") == "verbose"


def test_relative_include_follows_dir(tmp_path):
    root = _bare(tmp_path, {"etc/redis/redis.conf": "dir /srv/redis\ninclude local.conf\n",
                            "srv/redis/local.conf": "timeout 42\n"})
    assert _value(root, "timeout") == "42"
    assert _value(root, "dir") == "/srv/redis"


@pytest.mark.parametrize(("text", "words"), [
    ("timeout 300 # idle clients\n", "wrong number of arguments"),
    ("tiemout 300\n", "bad directive"),
    ('logfile "unclosed\n', "unbalanced quotes"),
    ("include /etc/redis/missing.conf\n", "does not exist"),
    ("save 60\n", "invalid save"),
])
def test_what_redis_refuses_is_an_error_naming_the_line(tmp_path, text, words):
    root = _bare(tmp_path, {"etc/redis/redis.conf": "port 6379\n" + text})
    with pytest.raises(conf.ConfError) as info:
        _value(root, "port")
    assert words in str(info.value) and "/etc/redis/redis.conf:2" in str(info.value)


def test_an_include_glob_without_match_is_no_error(tmp_path):
    root = _bare(tmp_path, {"etc/redis/redis.conf": "include /etc/redis/conf.d/*.conf\ntimeout 7\n"})
    assert _value(root, "timeout") == "7"


def test_secrets_cannot_be_asked_and_never_reach_evidence(tmp_path):
    secret = "Zq8!secret-Value"
    root = _bare(tmp_path, {"etc/redis/redis.conf": f"requirepass {secret}\nrename-command CONFIG CFG-{secret}\n"
                                                    f"masterauth {secret}\n"})
    with pytest.raises(ValueError):
        registry()["redis.config"].params.model_validate({"key": "requirepass"})
    obs = _probe(root, "redis.acl")
    text = repr(obs.evidence) + repr(obs.observed)
    assert secret not in text and "<withheld>" in text
    assert obs.observed["unauthenticated"] is False and obs.observed["weak_passwords"] == []


def test_other_redis_versions_are_refused_not_guessed(tmp_path):
    root = _bare(tmp_path, {"etc/redis/redis.conf": "port 6379\n"}, version="5:6.0.16-1+deb11u2")
    with pytest.raises(Exception, match="Redis 6.0.16 is installed"):
        _value(root, "port")


def test_not_installed_is_not_applicable(tmp_path):
    root = _bare(tmp_path, {})
    (root / "var/lib/dpkg/status").write_text("Package: bash\nStatus: install ok installed\nVersion: 5.2\n\n")
    report = run_baseline(load_baseline("dengbao-l3-redis"), RootHost(str(root)))
    # the Redis probes say so; the generic file and log probes judge paths, and discovery runs the baseline only
    # where Redis is
    mine = [r for r in report.results if r.check_id not in ("l3-redis-config-mode", "l3-redis-log-mode",
                                                              "l3-redis-log-retention")]
    assert {r.status for r in mine} == {Status.NOT_APPLICABLE}
    assert "Redis is not installed" in next(r.reason for r in mine if r.check_id == "l3-redis-auth-required")


# ---- ACL users as Redis builds them ---------------------------------------------------------------------


def _acl(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> dict:
    root = _bare(tmp_path, {"etc/redis/redis.conf": text, **(files or {})})
    return _probe(root, "redis.acl").observed


def test_stock_default_user_is_open_and_all_powerful(tmp_path):
    facts = _probe(_root(tmp_path, "debian-stock"), "redis.acl").observed
    assert facts["unauthenticated"] is True and facts["default_superuser"] is True
    assert facts["default_commands"] == ["config", "flushall", "flushdb", "keys", "shutdown"]  # DEBUG is off in 7.0
    assert facts["named_users"] == 0


def test_user_default_line_resets_it_so_it_is_off_without_on(tmp_path):
    facts = _acl(tmp_path, "requirepass Aa1!aaaaaaaa\nuser default >Bb2!bbbbbbbb ~* +@all\n")
    assert facts["default_enabled"] is False and facts["unauthenticated"] is False


def test_aclfile_without_default_recreates_it_open_despite_requirepass(tmp_path):
    facts = _acl(tmp_path, "requirepass Aa1!aaaaaaaa\naclfile /etc/redis/users.acl\n",
                 {"etc/redis/users.acl": "user admin on >Cc3!cccccccc ~* &* +@all\n"})
    assert facts["unauthenticated"] is True and facts["superusers"] == ["admin", "default"]


def test_users_in_both_config_and_aclfile_are_fatal(tmp_path):
    with pytest.raises(conf.ConfError, match="both"):
        _acl(tmp_path, "aclfile /etc/redis/users.acl\nuser app on nopass\n", {"etc/redis/users.acl": ""})


def test_dangerous_commands_by_rename_and_acl(tmp_path):
    facts = _acl(tmp_path, 'rename-command FLUSHALL ""\nrename-command CONFIG CFG2\n'
                           "user default on >Aa1!aaaaaaaa ~* +@all -keys -flushdb +flushdb -cfg2|get\n")
    # FLUSHALL removed, CONFIG renamed (its old name is gone), KEYS denied, FLUSHDB denied then allowed again
    assert facts["default_commands"] == ["flushdb", "shutdown"]
    assert facts["default_superuser"] is False  # a `-` rule after +@all is a restriction
    facts = _acl(tmp_path, "user default on >Aa1!aaaaaaaa ~* -@all +@read +config|get\n")
    assert facts["default_commands"] == ["config|get", "keys"]
    facts = _acl(tmp_path, "enable-debug-command local\nuser default on >Aa1!aaaaaaaa ~* +@all -@dangerous\n")
    assert facts["default_commands"] == []


def test_an_acl_rule_naming_a_renamed_command_is_refused(tmp_path):
    with pytest.raises(Exception, match="renamed or removed"):
        _acl(tmp_path, 'rename-command FLUSHALL ""\nuser default on nopass ~* +@all -flushall\n')


def test_selectors_grant_what_they_hold(tmp_path):
    facts = _acl(tmp_path, "user default on >Aa1!aaaaaaaa ~app:* -@all +get (~* +flushall)\n")
    assert facts["default_commands"] == ["flushall"] and facts["default_superuser"] is False


@pytest.mark.parametrize(("entry", "weak"), [
    (("plain", "foobared"), True), (("plain", "Redis"), True), (("plain", "Ab1!"), True),
    (("plain", "abcdefgh1"), True), (("plain", "app"), True), (("plain", "Abcdefg1"), False),
    (("hash", hashlib.sha256(b"123456").hexdigest()), True), (("hash", hashlib.sha256(b"x7!Qz").hexdigest()), False),
])
def test_weak_passwords(entry, weak):
    from sentinel.checks._redis_acl import User

    assert (weakness(User("app"), entry) is not None) == weak


# ---- the baselines over fixture roots --------------------------------------------------------------------

STOCK_FAILS = {"l3-redis-auth-required", "l3-redis-weak-passwords", "l3-redis-idle-timeout", "l3-redis-named-users",
               "l3-redis-default-user", "l3-redis-dangerous-commands", "l3-redis-superusers",
               "l3-redis-log-retention", "l3-redis-maxclients"}


def test_stock_debian_fails_what_an_assessor_fails(tmp_path):
    root = _root(tmp_path, "debian-stock")
    log = root / "var" / "log" / "redis"
    log.mkdir(parents=True)
    (log / "redis-server.log").write_text("")
    (log / "redis-server.log").chmod(0o640)
    (root / "etc" / "logrotate.d").mkdir(parents=True)
    shutil.copy("/etc/logrotate.d/redis-server", root / "etc" / "logrotate.d") if Path(
        "/etc/logrotate.d/redis-server").exists() else (root / "etc/logrotate.d/redis-server").write_text(
        "/var/log/redis/redis-server*.log {\n weekly\n missingok\n rotate 12\n compress\n}\n")
    statuses = _statuses(root)
    fails = {k for k, s in statuses.items() if s == Status.FAIL}
    assert fails == STOCK_FAILS
    assert all(s == Status.NOT_APPLICABLE for k, s in statuses.items() if k.endswith("-server") or k.endswith(
        "-not-root")), statuses
    assert not any(s == Status.ERROR for s in statuses.values()), statuses


def test_hardened_passes(tmp_path):
    root = _root(tmp_path, "hardened")
    statuses = _statuses(root)
    offline = {k: s for k, s in statuses.items() if s != Status.NOT_APPLICABLE}
    bad = {k: s for k, s in offline.items() if s != Status.PASS and k not in ("l3-redis-log-retention",)}
    assert not bad, bad
    assert offline["l3-redis-client-certificates"] == Status.PASS  # TLS only, client certificates required


@pytest.mark.parametrize("level", [2, 3, 4])
def test_every_level_covers_every_item(level):
    spec = load_baseline(f"dengbao-l{level}-redis")
    assert spec.object == "redis" and spec.level == level
    items = [i for c in spec.controls for i in c.items]
    assert len(items) == {2: 23, 3: 34, 4: 36}[level]
    for item in items:
        assert item.checks or item.notes, item.key
    ids = [k.id for _, _, k in spec.iter_checks()]
    assert len(ids) == len(set(ids)) and all(i.startswith("l3-redis-") for i in ids)


def test_level_2_keeps_moved_checks_and_clears_level_3_high_risk():
    spec = load_baseline("dengbao-l2-redis")
    checks = {k.id: (i.key, k) for _, i, k in spec.iter_checks()}
    assert checks["l3-redis-tls-protocols"][0] == "ces.auth.remote-eavesdrop"
    assert checks["l3-redis-config-mode"][0] == "ces.access.assign-accounts"
    assert checks["l3-redis-persistence"][1].high_risk is None
    assert checks["l3-redis-auth-required"][1].high_risk == "6.4.1.1"


def test_check_ids_are_unique_across_shipped_baselines():
    from sentinel.baseline import shipped

    seen: dict[str, str] = {}
    for ref in shipped():
        spec = load_baseline(ref)
        for _, _, check in spec.iter_checks():
            if "redis" in spec.id:
                assert check.id not in seen or "redis" in seen[check.id], (check.id, seen.get(check.id))
            seen.setdefault(check.id, spec.id)


def test_an_unreachable_server_is_an_error_naming_it(tmp_path, monkeypatch):
    """A live check with no server behind the given socket: error, never pass (no traffic: the path is empty)."""
    from sentinel.hostview import LiveHost

    monkeypatch.setenv("SENTINEL_OBJECT_CREDENTIALS", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("SENTINEL_REDIS_SOCKET", str(tmp_path / "no.sock"))
    ctx = ProbeContext(host=LiveHost(), family="debian", os_release={})
    pdef = registry()["redis.server_acl"]
    with pytest.raises(Exception, match="cannot connect") as info:
        pdef.func(ctx, pdef.params.model_validate({}))
    assert f"unix:{tmp_path / 'no.sock'}" in str(info.value)
