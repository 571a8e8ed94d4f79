"""nginx's configuration read offline as nginx reads it (checks/_nginx_conf.py, checks/nginx.py, checks/_tls.py), and
the level-2/3/4 Nginx baselines over Debian's stock package files and a hardened tree (tests/fixtures/nginx/).

The same verdicts against the running server, with nginx's own dump and real handshakes: test_object_nginx_real.py.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.checks import _nginx_conf as nc
from sentinel.checks._tls import OpenSSL, offer
from sentinel.checks.nginx import default_protocols, restriction
from sentinel.engine import run_baseline
from sentinel.hostview import ProbeError, open_host
from sentinel.model import Verdict

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nginx"


def _root(tmp_path: Path, name: str, log_mode: int = 0o640) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root, symlinks=True)
    logs = root / "var" / "log" / "nginx"
    logs.mkdir(parents=True)
    for log in ("access.log", "error.log"):  # as the package's postinst makes them
        (logs / log).write_text("")
        (logs / log).chmod(log_mode)
    key = root / "etc/nginx/site.key"
    if key.exists():
        key.chmod(0o600)
    return root


def _statuses(root: Path, baseline: str = "dengbao-l3-nginx") -> dict[str, tuple[str, object, str]]:
    report = run_baseline(load_baseline(baseline), open_host(str(root)))
    return {r.check_id: (r.status.value, r.observed, r.reason or "") for r in report.results}


def _conf(files: dict[str, str], main: str = "/etc/nginx/nginx.conf") -> nc.NginxConf:
    return nc.load(main, files.get, nc.dump_glob(files), "test")


# ---- syntax ------------------------------------------------------------------------------------------------


def test_tokens_follow_nginx_quoting_comments_and_variables():
    text = 'a "b c" \'d\\\'e\' f#g # comment\nh ${var}x "esc\\"q";\n'
    got = [(t, line) for t, line, _ in nc.tokenize(text, "t")]
    assert got == [("a", 1), ("b c", 1), ("d'e", 1), ("f#g", 1), ("h", 2), ("${var}x", 2), ('esc"q', 2), (";", 2)]


@pytest.mark.parametrize("text, why", [
    ("http { server { listen 80; }", "unexpected end of file"),
    ("listen 80; }", 'unexpected "}"'),
    ('add_header X "open;', "unbalanced quote"),
    ("{ listen 80; }", 'unexpected "{"'),
])
def test_a_file_nginx_refuses_is_an_error(text, why):
    with pytest.raises(ProbeError, match=why):
        _conf({"/etc/nginx/nginx.conf": text})


def test_includes_are_relative_to_the_config_directory_sorted_without_dot_files():
    conf = _conf({
        "/etc/nginx/nginx.conf": "http { include conf.d/*.conf; include /etc/nginx/last; }",
        "/etc/nginx/conf.d/b.conf": "server_tokens off;",
        "/etc/nginx/conf.d/a.conf": "server { listen 81; }",
        "/etc/nginx/conf.d/.c.conf": "autoindex on;",
        "/etc/nginx/conf.d/d.conf.bak": "autoindex on;",
        "/etc/nginx/last": "server { listen 82; }",
    })
    assert conf.files == ["/etc/nginx/nginx.conf", "/etc/nginx/conf.d/a.conf", "/etc/nginx/conf.d/b.conf",
                          "/etc/nginx/last"]
    http = nc.blocks(conf.root, "http")[0]
    assert [n.name for n in http.children or []] == ["server", "server_tokens", "server"]
    assert [n.where for n in http.children or []] == ["/etc/nginx/conf.d/a.conf:1", "/etc/nginx/conf.d/b.conf:1",
                                                     "/etc/nginx/last:1"]
    with pytest.raises(ProbeError, match="include /etc/nginx/missing: no such file"):
        _conf({"/etc/nginx/nginx.conf": "include missing;"})


def test_nginx_t_dump_is_split_per_file():
    dump = ("# configuration file /etc/nginx/nginx.conf:\nhttp { include a/*; }\n\n"
            "# configuration file /etc/nginx/a/x:\nserver { listen 80; }\n")
    files = nc.split_dump(dump)
    assert files == {"/etc/nginx/nginx.conf": "http { include a/*; }\n", "/etc/nginx/a/x": "server { listen 80; }"}
    assert [nc.label(s) for s in nc.servers(_conf(files))] == ["server 80 (/etc/nginx/a/x:1)"]


# ---- inheritance and defaults --------------------------------------------------------------------------------


def test_nearest_level_wins_and_repeated_directives_go_as_a_group():
    conf = _conf({"/etc/nginx/nginx.conf": """
        http {
          ssl_protocols TLSv1 TLSv1.2;
          access_log /a.log; access_log /b.log;
          server { listen 443 ssl; ssl_protocols TLSv1.2 TLSv1.3;
                   location / { access_log /c.log; }
                   location /x { location /x/y { } } }
          server { listen 444 ssl; }
        }"""})
    one, two = nc.servers(conf)
    assert nc.effective(one, "ssl_protocols")[0][0].args == ("TLSv1.2", "TLSv1.3")
    assert nc.effective(two, "ssl_protocols")[0][0].args == ("TLSv1", "TLSv1.2")
    slash, x, xy = nc.locations(one)
    assert [n.args[0] for n in nc.effective(slash, "access_log")[0]] == ["/c.log"]
    assert [n.args[0] for n in nc.effective(xy, "access_log")[0]] == ["/a.log", "/b.log"]
    assert nc.effective(xy, "autoindex") == ([], None)


def test_ssl_protocols_default_follows_the_installed_version():
    assert default_protocols((1, 22, 1)) == ["TLSv1", "TLSv1.1", "TLSv1.2"]
    assert default_protocols((1, 24, 0)) == ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    assert default_protocols((1, 27, 3)) == ["TLSv1.2", "TLSv1.3"]
    assert default_protocols(None) is None


def test_openssl_security_level_decides_what_is_offered():
    """OpenSSL 3 refuses TLS below 1.2 above level 0 and drops anonymous suites from level 1 (ssl/t1_lib.c)."""
    lib3 = OpenSSL(3, 2, ())
    stock = offer(lib3, ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"], "HIGH:!aNULL:!MD5")
    assert stock.protocols == ("TLSv1.2", "TLSv1.3") and stock.weak_protocols == ()
    assert stock.refused == ("TLSv1", "TLSv1.1") and stock.weak_ciphers == ()
    legacy = offer(lib3, ["TLSv1", "TLSv1.2"], "HIGH:aNULL:@SECLEVEL=0")
    assert legacy.level == 0 and legacy.weak_protocols == ("TLSv1",)
    assert any(c.startswith(("ADH-", "AECDH-")) for c in legacy.weak_ciphers)
    assert offer(lib3, ["TLSv1.2"], "HIGH:aNULL").weak_ciphers == ()  # level 2 drops them
    assert offer(lib3, ["TLSv1.3"], "ALL:@SECLEVEL=0").weak_ciphers == ()  # no TLS 1.2 suite is negotiable
    assert offer(OpenSSL(1, 1, ()), ["TLSv1"], "HIGH").weak_protocols == ("TLSv1",)
    with pytest.raises(ProbeError, match="makes no cipher"):
        offer(lib3, ["TLSv1.2"], "NOSUCHCIPHER")


@pytest.mark.parametrize("body, restricted", [
    ("stub_status;", False),
    ("stub_status; allow 10.0.0.1; deny all;", True),
    ("stub_status; allow 10.0.0.1;", False),  # an unlisted address matches no rule and gets through
    ("stub_status; deny 10.0.0.1; allow all; deny all;", False),
    ("stub_status; auth_basic \"s\"; auth_basic_user_file /x;", True),
    ("stub_status; auth_basic off;", False),
    ("stub_status; satisfy any; allow all; auth_basic \"s\";", False),
    ("stub_status; satisfy any; allow 10.0.0.1; deny all; auth_basic \"s\";", True),
    ("stub_status; internal;", True),
])
def test_status_page_access_rules(body, restricted):
    conf = _conf({"/etc/nginx/nginx.conf": f"http {{ server {{ location /s {{ {body} }} }} }}"})
    assert restriction(nc.locations(nc.servers(conf)[0])[0])[0] is restricted


def test_access_rules_are_inherited_from_the_server():
    text = "http { server { allow 10.0.0.1; deny all; location /s { stub_status; } } }"
    conf = _conf({"/etc/nginx/nginx.conf": text})
    assert restriction(nc.locations(nc.servers(conf)[0])[0]) == (True, "allow/deny ending in deny all")


# ---- the baselines over the fixture trees --------------------------------------------------------------------


def test_debian_stock_package_files(tmp_path):
    got = _statuses(_root(tmp_path, "debian-stock"))
    failing = {"l3-nginx-server-tokens", "l3-nginx-default-page", "l3-nginx-https-only", "l3-nginx-request-limits"}
    assert {k for k, v in got.items() if v[0] == "fail"} == failing
    assert got["l3-nginx-default-page"][1] == [
        "server 80,[::]:80 _ (/etc/nginx/sites-enabled/default:21) serves /var/www/html/index.nginx-debian.html "
        "(nginx welcome page)"]
    assert got["l3-nginx-server-tokens"][2] == "server_tokens is on, expected off"
    assert got["l3-nginx-tls-protocols"][0] == got["l3-nginx-tls-ciphers"][0] == "not_applicable"
    assert got["l3-nginx-worker-user"][:2] == ("pass", "www-data")
    assert got["l3-nginx-methods"][0] == "pass"  # static files only
    assert got["l3-nginx-status-restricted"][:2] == ("pass", [])
    assert got["l3-nginx-log-files"][0] == "pass"
    assert got["l3-nginx-config-files"][0] == ("pass" if os.geteuid() == 0 else "fail")  # files of the builder


def test_hardened_tree_passes_every_automated_check(tmp_path):
    root = _root(tmp_path, "hardened")
    if os.geteuid() != 0:
        pytest.skip("the configuration files must be root's; the fixture copy belongs to the user running the test")
    report = run_baseline(load_baseline("dengbao-l3-nginx"), open_host(str(root)))
    assert [(r.check_id, r.status.value, r.reason) for r in report.results if r.status.value != "pass"] == []
    verdicts = {i.key: i.verdict for i in report.items}
    assert {v for k, v in verdicts.items() if v != Verdict.PENDING} == {Verdict.CONFORM}
    results = {r.check_id: r for r in report.results}
    tls = results["l3-nginx-tls-protocols"].observed
    assert [row["configured"] for row in tls] == [["TLSv1.2", "TLSv1.3"]]  # the server's, not http's TLSv1
    listeners = results["l3-nginx-https-only"].observed
    assert [(row["listen"], row["ssl"], row["redirect"]) for row in listeners] == [
        ("80 default_server", False, True), ("443 ssl", True, False)]
    status = results["l3-nginx-status-restricted"].observed
    assert [(row["restricted"], row["how"]) for row in status] == [(True, "allow/deny ending in deny all")]
    fmt = results["l3-nginx-log-format"].observed
    assert {(tuple(row["formats"]), tuple(row["missing"])) for row in fmt} == {(("main",), ())}


@pytest.mark.parametrize("change, check, status", [
    (("etc/nginx/conf.d/limits.conf", "autoindex on;\n"), "l3-nginx-autoindex", "fail"),
    (("etc/nginx/conf.d/limits.conf", "client_max_body_size 0;\n"), "l3-nginx-body-size", "fail"),
    (("etc/nginx/conf.d/limits.conf", "keepalive_timeout 1h;\n"), "l3-nginx-timeouts", "fail"),
    (("etc/nginx/conf.d/limits.conf", "access_log off;\n"), "l3-nginx-access-log", "fail"),
    (("etc/nginx/conf.d/limits.conf", "log_format short '$remote_addr $request';\naccess_log /var/log/nginx/a.log "
      "short;\n"), "l3-nginx-log-format", "fail"),
    (("etc/nginx/conf.d/limits.conf", "ssl_protocols TLSv1 TLSv1.2;\n"), "l3-nginx-tls-protocols", "pass"),
    (("etc/nginx/conf.d/limits.conf", "server { listen 8080; location / { proxy_pass http://b; } }\n"),
     "l3-nginx-methods", "fail"),
    (("etc/nginx/conf.d/limits.conf", "server { listen 8081; location /s { stub_status; } }\n"),
     "l3-nginx-status-restricted", "fail"),
    (("etc/nginx/conf.d/limits.conf", "server { listen 8082 ssl; }\n"), "l3-nginx-tls-protocols", "fail"),
    (("etc/nginx/conf.d/limits.conf", "server { listen 8083 ssl; ssl_ciphers 'ALL:eNULL:@SECLEVEL=0'; }\n"),
     "l3-nginx-tls-ciphers", "fail"),
    (("etc/nginx/nginx.conf", "user root;\nevents {}\nhttp { server { listen 80; } }\n"), "l3-nginx-worker-user",
     "fail"),
    (("etc/nginx/nginx.conf", "events {}\nhttp { server { listen 80; } \n"), "l3-nginx-server-tokens", "error"),
])
def test_one_change_to_the_hardened_tree(tmp_path, change, check, status):
    """Appending a line to an http-level include, or replacing nginx.conf: the one check it bears on follows."""
    root = _root(tmp_path, "hardened")
    path, text = change
    target = root / path
    target.write_text(text if path.endswith("nginx.conf") else target.read_text() + text)
    got = _statuses(root)
    assert got[check][0] == status, got[check]


def test_tls_default_without_ssl_protocols_is_the_versions(tmp_path):
    """nginx 1.22 without ssl_protocols offers TLS 1.0 and 1.1 unless OpenSSL refuses them: the fixture root has no
    OpenSSL library, so the upstream default level 1 of an unknown build applies and the default stands."""
    root = _root(tmp_path, "hardened")
    site = root / "etc/nginx/sites-enabled/site"
    site.write_text(site.read_text().replace("ssl_protocols TLSv1.2 TLSv1.3;", ""))
    nginx_conf = root / "etc/nginx/nginx.conf"
    nginx_conf.write_text(nginx_conf.read_text().replace("ssl_protocols TLSv1 TLSv1.1 TLSv1.2;", ""))
    got = _statuses(root)
    assert got["l3-nginx-tls-protocols"][0] == "fail"
    assert got["l3-nginx-tls-protocols"][1][0]["configured"] == ["TLSv1", "TLSv1.1", "TLSv1.2"]


def test_private_key_mode(tmp_path):
    root = _root(tmp_path, "hardened")
    (root / "etc/nginx/site.key").chmod(0o644)
    got = _statuses(root)["l3-nginx-tls-key-files"]
    assert got[0] == "fail" and got[1][0]["path"] == "/etc/nginx/site.key" and got[1][0]["mode"] == "0644"
    (root / "etc/nginx/site.key").unlink()
    assert _statuses(root)["l3-nginx-tls-key-files"][0] == "error"  # nginx would not start without it


def test_not_installed_is_not_applicable(tmp_path):
    (tmp_path / "etc").mkdir()
    got = _statuses(tmp_path)
    assert {v[0] for v in got.values()} == {"not_applicable"}
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/nginx").write_text("")  # installed, but the named configuration is not there
    assert {v[0] for v in _statuses(tmp_path).values()} == {"error"}


@pytest.mark.parametrize("level, lineage", [(2, ["dengbao-l3-nginx"]), (4, ["dengbao-l3-nginx"])])
def test_levels_2_and_4(tmp_path, level, lineage):
    baseline = load_baseline(f"dengbao-l{level}-nginx")
    assert baseline.level == level and baseline.object == "nginx" and baseline.lineage == lineage
    items = {i.key: i for c in baseline.controls for i in c.items}
    if level == 2:
        assert "ces.confidentiality.transit" not in items
        assert {c.id for c in items["ces.auth.remote-eavesdrop"].checks} == {
            "l3-nginx-https-only", "l3-nginx-tls-protocols", "l3-nginx-tls-ciphers"}
        assert "l3-nginx-autoindex" in {c.id for c in items["ces.access.assign-accounts"].checks}
    else:
        assert not items["ces.integrity.non-repudiation"].checks and items["ces.backup.dr-centre"].notes
    got = _statuses(_root(tmp_path, "debian-stock"), f"dengbao-l{level}-nginx")
    assert got["l3-nginx-server-tokens"][0] == "fail"


def test_every_item_of_the_computing_environment_is_in_each_level():
    from sentinel.catalogue import load as load_catalogue

    cat = load_catalogue()
    for level in (2, 3, 4):
        baseline = load_baseline(f"dengbao-l{level}-nginx")
        keys = {i.key for c in baseline.controls for i in c.items}
        assert keys == {i.key for i in cat.items(level, "general", "ces")}
        for control in baseline.controls:
            for item in control.items:
                assert item.checks or item.notes, (level, item.key)  # manual items say what the assessor checks
