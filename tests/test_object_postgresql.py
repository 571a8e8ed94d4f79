"""PostgreSQL probes offline (issue 15): the cluster's files read as the server reads them, on fixture roots.

tests/fixtures/postgresql/debian15 is a Debian cluster whose files exercise the include, quoting, comment and
precedence rules; tests/test_object_postgresql_real.py loads the same files into a real server and holds what these
tests expect against its pg_settings and pg_hba_file_rules. rhel13 is a PGDATA layout of version 13 (other
defaults). Smaller cases are written into tmp_path.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline, shipped
from sentinel.engine import run_baseline
from sentinel.hostview import NotApplicable, ProbeError, open_host
from sentinel.model import ObjectRef, Status
from sentinel.probe import ProbeContext, registry

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "postgresql"
DEBIAN = FIXTURES / "debian15"
MAIN = "/etc/postgresql/15/main"


@pytest.fixture(autouse=True)
def _no_outside_account(monkeypatch, tmp_path):
    for var in ("CONFIG", "USER", "PASSWORD", "HOST", "PORT", "SOCKET", "DATABASE"):
        monkeypatch.delenv(f"SENTINEL_POSTGRESQL_{var}", raising=False)
    monkeypatch.setenv("SENTINEL_OBJECT_CREDENTIALS", str(tmp_path / "no-credentials.yaml"))


def _ctx(root: Path) -> ProbeContext:
    return ProbeContext(open_host(str(root)), "debian", {})


def _probe(ctx: ProbeContext, kind: str, **params):
    pdef = registry()[kind]
    return pdef.func(ctx, pdef.params.model_validate(params))


def _value(root: Path, key: str):
    return _probe(_ctx(root), "postgresql.setting", key=key)


@pytest.mark.parametrize("key, value", [
    ("listen_addresses", ["*"]),
    ("log_connections", "off"),  # the last line, after the include_dir, wins over the earlier on
    ("log_statement", "mod"),  # no '='
    ("log_line_prefix", "%m [%p] %u@%d '%r' "),  # '' is one quote
    ("log_disconnections", "on"),  # TRUE: names and booleans case-insensitive
    ("idle_in_transaction_session_timeout", 300_000),  # 5min unquoted: an integer with unit letters, in ms
    ("log_file_mode", "0640"),  # octal
    ("idle_session_timeout", 600_000),  # postgresql.auto.conf over extra.conf
    ("shared_preload_libraries", ["pgaudit", "auth_delay"]),
    ("auth_delay.milliseconds", 1500),  # '1.5s' quoted: a real with a unit
    ("ssl", "off"),  # conf.d in name order; .hidden.conf and *.conf.bak not read
    ("password_encryption", "md5"),
    ("pgaudit.log", ["none"]),  # the library is loaded, the parameter unset: pgaudit's default
])
def test_debian_cluster_settings(key, value):
    assert _value(DEBIAN, key).observed == value


def test_evidence_names_the_deciding_line_and_the_overridden_one():
    obs = _value(DEBIAN, "log_connections")
    assert (obs.evidence[0].source, obs.evidence[0].line) == (f"{MAIN}/postgresql.conf", 15)
    assert obs.evidence[1].line == 6 and "overridden" in obs.evidence[1].excerpt
    includes = [e.excerpt for e in obs.evidence if e.excerpt and e.excerpt.startswith("include")]
    assert includes == [f"include {MAIN}/extra.conf", f"include_if_exists {MAIN}/missing.conf: absent, skipped",
                        f"include_dir {MAIN}/conf.d: 10-first.conf, 20-second.conf"]
    auto = _value(DEBIAN, "idle_session_timeout").evidence[0]
    assert (auto.source, auto.line) == ("/var/lib/postgresql/15/main/postgresql.auto.conf", 3)


def test_unset_parameters_take_the_versions_default_and_say_so():
    obs = _value(DEBIAN, "ssl_min_protocol_version")
    assert obs.observed == "TLSv1.2" and "PostgreSQL 15" in obs.note and "PostgreSQL 15" in obs.note_zh
    assert _value(DEBIAN, "ssl_ciphers").observed == "HIGH:MEDIUM:+3DES:!aNULL"
    unloaded = _value(DEBIAN, "credcheck.max_auth_failure")
    assert unloaded.observed is None and "not loaded" in unloaded.note


def test_rhel_pgdata_version_13_defaults():
    root = FIXTURES / "rhel13"
    assert _value(root, "password_encryption").observed == "md5"  # scram-sha-256 only from 14
    gone = _value(root, "idle_session_timeout")
    assert gone.observed is None and "does not exist in PostgreSQL 13" in gone.note
    assert _value(root, "port").observed == 5433
    hits = _probe(_ctx(root), "postgresql.hba", methods=["ident", "md5"]).observed
    assert hits == ["/var/lib/pgsql/data/pg_hba.conf:2: host all all 127.0.0.1/32 ident",
                    "/var/lib/pgsql/data/pg_hba.conf:3: host all all ::1/128 md5"]


HBA = f"{MAIN}/pg_hba.conf"
LIVE_METHODS = ["trust", "password", "md5", "scram-sha-256", "peer", "ident", "cert"]


@pytest.mark.parametrize("params, lines", [
    ({"methods": ["trust"]}, []),  # line 5 is never reached: the reject of line 4 matches all it matches
    ({"methods": ["password"], "types": ["host", "hostnossl"]}, [7]),  # a continued line: its first line
    ({"remote": True, "types": ["host", "hostnossl"], "methods": LIVE_METHODS}, [7, 9]),
    ({"user": "postgres", "remote": True, "methods": LIVE_METHODS}, [9]),  # all; line 6 is hostssl, ssl is off
    ({"wide": True, "methods": LIVE_METHODS}, [9]),  # samenet; 172.16.0.0/16 is not below /16
    ({"wide": True, "min_prefix_v4": 24, "methods": LIVE_METHODS}, [7, 9]),
    ({}, [2, 3, 4, 7, 9]),
])
def test_hba_selection(params, lines):
    obs = _probe(_ctx(DEBIAN), "postgresql.hba", **params)
    assert [int(h.split(":")[1]) for h in obs.observed] == lines


def test_trust_for_other_machines_is_the_high_risk_one(tmp_path):
    root = _tree(tmp_path, "", hba="local all all trust\nhost all all 127.0.0.1/32 trust\n"
                                   "host all all ::1/128 trust\nhost all all 10.0.0.0/8 trust\n")
    assert len(_probe(_ctx(root), "postgresql.hba", methods=["trust"]).observed) == 4
    assert [h.split(":")[1] for h in _probe(_ctx(root), "postgresql.hba", methods=["trust"], remote=True).observed] \
        == ["4"]


def test_hba_shadowed_line_is_evidence_not_a_finding():
    obs = _probe(_ctx(DEBIAN), "postgresql.hba", methods=["trust"])
    assert any(e.line == 5 and "never reached" in e.excerpt and ":4:" in e.excerpt for e in obs.evidence)


def test_hba_hostssl_cannot_match_while_ssl_is_off(tmp_path):
    obs = _probe(_ctx(DEBIAN), "postgresql.hba", types=["hostssl"])
    assert obs.observed == [] and any(e.line == 6 and "ssl is off" in e.excerpt for e in obs.evidence)
    root = _tree(tmp_path, "ssl = on\n", hba="hostssl all +admins 192.168.0.0/16 md5\n")
    assert len(_probe(_ctx(root), "postgresql.hba", user="postgres", remote=True).observed) == 1  # +group counts


def test_hba_at_file_and_quoted_keyword():
    from sentinel.checks.postgresql import hba

    _, _, parsed = hba(_ctx(DEBIAN))
    by_line = {r.line: r for r in parsed.rules}
    assert [t.text for t in by_line[6].databases] == ["sales", "hr"]  # @dbs, relative to pg_hba.conf
    assert by_line[7].databases[0].quoted and [t.text for t in by_line[7].users] == ["app", "report"]
    assert str(by_line[6].network) == "192.168.0.0/16"


def _tree(tmp_path: Path, conf: str, hba: str = "local all all peer\n", version: str = "15",
          files: dict[str, str] | None = None) -> Path:
    main = tmp_path / "etc/postgresql" / version / "main"
    main.mkdir(parents=True)
    (main / "postgresql.conf").write_text(f"data_directory = '/var/lib/postgresql/{version}/main'\n"
                                          f"hba_file = '/etc/postgresql/{version}/main/pg_hba.conf'\n" + conf)
    (main / "pg_hba.conf").write_text(hba)
    data = tmp_path / "var/lib/postgresql" / version / "main"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text(version + "\n")
    for name, text in (files or {}).items():
        (main / name).parent.mkdir(parents=True, exist_ok=True)
        (main / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("conf, files, why", [
    ("idle_session_timeout = 1.5min\n", {}, "syntax error"),  # the lexer's real takes no unit letters
    ("ssl = on off\n", {}, "one value"),
    ("= on\n", {}, "syntax error"),
    ("include 'nowhere.conf'\n", {}, "no such file"),
    ("include_dir 'nodir'\n", {}, "no such directory"),
    ("include 'a.conf'\n", {"a.conf": "include 'a.conf'\n"}, "nested more than 10"),
    ("ssl = maybe\n", {}, "invalid value"),
    ("idle_session_timeout = '5 parsecs'\n", {}, "invalid value"),
    ("log_file_mode = 08\n", {}, "invalid value"),
])
def test_a_file_the_server_refuses_is_an_error(tmp_path, conf, files, why):
    root = _tree(tmp_path, conf, files=files)
    key = "idle_session_timeout" if "idle" in conf else "log_file_mode" if "mode" in conf else "ssl"
    with pytest.raises(ProbeError, match=why):
        _value(root, key)


@pytest.mark.parametrize("version, ok", [("15", False), ("16", True)])
def test_hba_include_is_a_postgresql_16_directive(tmp_path, version, ok):
    root = _tree(tmp_path, "", hba="include more.conf\n", version=version,
                 files={"more.conf": "host all all 0.0.0.0/0 trust\n"})
    if ok:
        assert len(_probe(_ctx(root), "postgresql.hba", methods=["trust"]).observed) == 1
    else:
        with pytest.raises(ProbeError, match="PostgreSQL 16 directive"):
            _probe(_ctx(root), "postgresql.hba", methods=["trust"])


@pytest.mark.parametrize("hba, why", [
    ("hots all all 10.0.0.0/8 md5\n", "invalid connection type"),
    ("host all all 10.0.0.0/8 md6\n", "invalid authentication method"),
    ("host all all 10.0.0.1 md5\n", "invalid netmask"),  # the token after an address is its mask
    ("host all all\n", "end-of-line"),
])
def test_an_hba_file_the_server_refuses_is_an_error(tmp_path, hba, why):
    with pytest.raises(ProbeError, match=why):
        _probe(_ctx(_tree(tmp_path, "", hba=hba)), "postgresql.hba")


def test_all_does_not_shadow_a_replication_line(tmp_path):
    root = _tree(tmp_path, "", hba="host all all 0.0.0.0/0 reject\nhost replication all 0.0.0.0/0 trust\n"
                                   "host replication all 10.0.0.0/8 trust\n")
    hits = _probe(_ctx(root), "postgresql.hba", methods=["trust"]).observed
    assert [h.split(":")[1] for h in hits] == ["2"]  # line 3 is covered by line 2, line 2 by nothing


def test_quoted_all_is_a_database_named_all_and_shadows_nothing(tmp_path):
    root = _tree(tmp_path, "", hba='host "all" all 0.0.0.0/0 reject\nhost all all 0.0.0.0/0 trust\n')
    assert len(_probe(_ctx(root), "postgresql.hba", methods=["trust"]).observed) == 1


def test_which_cluster(tmp_path, monkeypatch):
    assert pytest.raises(NotApplicable, _value, tmp_path, "ssl")
    root = _tree(tmp_path, "ssl = on\n")
    other = tmp_path / "var/lib/pgsql/data"
    other.mkdir(parents=True)
    (other / "postgresql.conf").write_text("ssl = off\n")
    with pytest.raises(ProbeError, match="several PostgreSQL clusters"):
        _value(root, "ssl")
    monkeypatch.setenv("SENTINEL_POSTGRESQL_CONFIG", "/var/lib/pgsql/data/postgresql.conf")
    assert _value(root, "ssl").observed == "off"
    ctx = ProbeContext(open_host(str(root)), "debian", {},
                       target=ObjectRef(kind="postgresql", instance="5432", config=f"{MAIN}/postgresql.conf"))
    assert _probe(ctx, "postgresql.setting", key="ssl").observed == "on"  # the target's config first


def test_unknown_version_with_a_version_dependent_default_is_an_error(tmp_path):
    root = tmp_path
    (root / "var/lib/pgsql/data").mkdir(parents=True)
    (root / "var/lib/pgsql/data/postgresql.conf").write_text("ssl = on\n")
    assert _value(root, "ssl").observed == "on"
    assert _value(root, "log_statement").observed == "none"  # the same default in every version
    with pytest.raises(ProbeError, match="version, which is unknown"):
        _value(root, "password_encryption")


def test_a_version_sentinel_has_no_defaults_for_is_an_error_for_unset_parameters(tmp_path):
    root = _tree(tmp_path, "ssl = on\n", version="18")
    assert _value(root, "ssl").observed == "on"  # what the files set is still read
    with pytest.raises(ProbeError, match="PostgreSQL 12-17, not of 18"):
        _value(root, "log_connections")


def test_server_probes_without_an_account_or_psycopg_are_errors(monkeypatch):
    ctx = ProbeContext(open_host(None), "debian", {})
    monkeypatch.setenv("SENTINEL_POSTGRESQL_CONFIG", str(DEBIAN / "etc/postgresql/15/main/postgresql.conf"))
    with pytest.raises(ProbeError, match="no read-only account"):
        _probe(ctx, "postgresql.server", query="superusers")
    monkeypatch.setenv("SENTINEL_POSTGRESQL_USER", "sentinel_ro")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # an agent installed without the postgres extra
    with pytest.raises(ProbeError, match="psycopg is not installed"):
        _probe(ProbeContext(open_host(None), "debian", {}), "postgresql.server", query="superusers")


def test_level_3_baseline_offline_on_the_debian_fixture():
    report = run_baseline(load_baseline("dengbao-l3-postgresql"), open_host(str(DEBIAN)))
    status = {r.check_id: r.status for r in report.results}
    live = {"l3-postgresql-" + s for s in ("process-user", "expired-roles", "superusers", "audit-settings-in-effect")}
    assert {k for k, s in status.items() if s == Status.NOT_APPLICABLE} == live
    passing = {k.removeprefix("l3-postgresql-") for k, s in status.items() if s == Status.PASS}
    assert passing == {"hba-no-remote-trust", "hba-no-trust", "failed-login", "idle-session-timeout",
                       "idle-in-transaction-timeout",
                       "log-statement", "log-line-prefix", "log-file-mode", "ssl-min-protocol", "log-disconnections"}
    assert status["l3-postgresql-pgaudit"] == Status.FAIL  # loaded, but pgaudit.log is its default none
    assert status["l3-postgresql-hba-no-cleartext"] == Status.FAIL
    assert report.object is not None and report.object.kind == "postgresql"
    assert {it.key for it in report.items} >= {"ces.auth.identify", "ces.personal.unauthorised-use"}
    assert len(report.items) == 34


def test_check_ids_are_the_postgresql_baselines_own():
    ours = {c.id for ref in ("dengbao-l2-postgresql", "dengbao-l3-postgresql", "dengbao-l4-postgresql")
            for _, _, c in load_baseline(ref).iter_checks()}
    assert all(i.startswith("l3-postgresql-") for i in ours)
    for ref in shipped():
        spec = load_baseline(ref)
        if spec.object != "postgresql":
            assert not ours & {c.id for _, _, c in spec.iter_checks()}, ref


def test_secrets_in_the_files_stay_out_of_reports(tmp_path):
    secret = "s3cr3t-" + "x" * 8
    root = _tree(tmp_path, f"archive_mode = on\narchive_command = 'PGPASSWORD={secret} upload %p'\n",
                 hba=f'host all all 10.0.0.0/24 ldap ldapserver=ldap ldapbindpasswd="{secret} x"\n'
                     f"host all all 10.0.1.0/24 radius radiusservers=r radiussecrets={secret}\n")
    obs = _probe(_ctx(root), "postgresql.settings", keys=["archive_mode", "archive_command"])
    assert obs.observed == {"archive_mode": "on", "archive_command": "(set)"}
    hba = _probe(_ctx(root), "postgresql.hba", methods=["ldap", "radius"])
    assert len(hba.observed) == 2
    assert secret not in repr(obs) + repr(hba)


def test_cli_judges_the_cluster_an_object_baseline_names(tmp_path, capsys):
    """`sentinel check --baseline dengbao-l3-postgresql --root DIR`: discovery finds the cluster from the package
    database and the configuration layout, and the report judges that configuration."""
    import json
    import shutil

    from sentinel.cli import main

    root = tmp_path / "root"
    shutil.copytree(DEBIAN, root)
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("Package: postgresql-15\nStatus: install ok installed\n"
                                             "Version: 15.20-0+deb12u1\nArchitecture: amd64\n\n")
    code = main(["check", "--baseline", "dengbao-l3-postgresql", "--root", str(root), "--format", "json"])
    out = capsys.readouterr()
    assert code == 1, out.err  # failures
    report = json.loads(out.out)
    assert report["object"]["kind"] == "postgresql" and report["object"]["config"] == f"{MAIN}/postgresql.conf"
    status = {r["check_id"]: r["status"] for r in report["results"]}
    assert status["l3-postgresql-hba-no-cleartext"] == "fail" and status["l3-postgresql-log-statement"] == "pass"
