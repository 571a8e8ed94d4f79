"""Apache httpd's configuration read offline as httpd reads it (checks/_httpd_conf.py, checks/httpd.py) and the
level-2/3/4 httpd baselines over Debian's stock apache2 files (tests/fixtures/httpd/); test_object_httpd_real.py
runs the same against the running server.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.checks import _httpd_conf as hc
from sentinel.checks.httpd import protocols
from sentinel.engine import run_baseline
from sentinel.hostview import ProbeError, open_host

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "httpd"
STOCK_FAILS = {"l3-httpd-timeout", "l3-httpd-request-limits", "l3-httpd-https-only", "l3-httpd-indexes",
               "l3-httpd-default-page", "l3-httpd-server-tokens", "l3-httpd-server-signature"}


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "debian-stock"
    shutil.copytree(FIXTURES / "debian-stock", root, symlinks=True)
    logs = root / "var" / "log" / "apache2"
    logs.mkdir(parents=True)
    for log in ("access.log", "error.log", "other_vhosts_access.log"):  # as the package makes them
        (logs / log).write_text("")
        (logs / log).chmod(0o640)
    return root


def _enable(root: Path, *names: str) -> None:
    """a2enmod / a2ensite: links in mods-enabled and sites-enabled (and default-ssl's snakeoil key, as ssl-cert
    makes it: 0640)."""
    key = root / "etc/ssl/private/ssl-cert-snakeoil.key"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text("not a real key\n")
    key.chmod(0o640)
    for name in names:
        kind = "sites" if name.endswith(".conf") and not name.startswith("ssl") else "mods"
        (root / f"etc/apache2/{kind}-enabled" / name).symlink_to(f"../{kind}-available/{name}")


def _statuses(root: Path, level: int = 3) -> dict:
    report = run_baseline(load_baseline(f"dengbao-l{level}-httpd"), open_host(str(root)))
    return {r.check_id: (r.status.value, r.observed, r.reason or "") for r in report.results}


def _conf(files: dict[str, str], static=("core_module",), env=None) -> hc.HttpdConf:
    def glob(pattern: str) -> list[str]:
        import fnmatch

        return sorted(p for p in files if fnmatch.fnmatchcase(p, pattern))

    return hc.load("/etc/apache2/apache2.conf", "/etc/apache2", files.get, glob,
                   lambda p: any(f.startswith(p.rstrip("/") + "/") for f in files), lambda p: p in files,
                   list(static), env or {})


def test_lines_comments_quotes_continuations_and_variables():
    conf = _conf({"/etc/apache2/apache2.conf": (
        "# a comment\nServerTokens Prod # not a comment: httpd would refuse the extra word\n"
        'LogFormat "%h \\"%r\\" %>s" q\nCustomLog ${APACHE_LOG_DIR}/a.log \\\n    q\n')},
        env={"APACHE_LOG_DIR": "/var/log/apache2"})
    tokens, fmt, log = conf.root.children or []
    assert tokens.args == ("Prod", "#", "not", "a", "comment:", "httpd", "would", "refuse", "the", "extra", "word")
    assert fmt.args == ('%h "%r" %>s', "q")
    assert (log.args, log.line) == (("/var/log/apache2/a.log", "q"), 4)


def test_ifmodule_follows_the_modules_loaded_so_far():
    conf = _conf({"/etc/apache2/apache2.conf": (
        "<IfModule mod_ssl.c>\nA 1\n</IfModule>\nLoadModule ssl_module x.so\n<IfModule ssl_module>\nB 2\n"
        "<IfModule !mod_status.c>\nC 3\n</IfModule>\n</IfModule>\n<IfDefine NOPE>\nD 4\n</IfDefine>\n")})
    assert [n.name for n in conf.root.children or []] == ["loadmodule", "b", "c"]
    assert conf.modules == ["core_module", "ssl_module"]


def test_includes_relative_to_server_root_and_their_errors():
    files = {"/etc/apache2/apache2.conf": "IncludeOptional conf.d/*.conf\nInclude ports.conf\n",
             "/etc/apache2/conf.d/b.conf": "B 1\n", "/etc/apache2/conf.d/a.conf": "A 1\n",
             "/etc/apache2/ports.conf": "Listen 80\n"}
    conf = _conf(files)
    assert conf.files == ["/etc/apache2/apache2.conf", "/etc/apache2/conf.d/a.conf", "/etc/apache2/conf.d/b.conf",
                          "/etc/apache2/ports.conf"]
    with pytest.raises(ProbeError, match="matches no file"):
        _conf({"/etc/apache2/apache2.conf": "Include missing/*.conf\n"})
    assert _conf({"/etc/apache2/apache2.conf": "IncludeOptional missing/*.conf\n"}).files == [
        "/etc/apache2/apache2.conf"]
    with pytest.raises(ProbeError, match="is not closed"):
        _conf({"/etc/apache2/apache2.conf": "<VirtualHost *:80>\nServerName x\n"})
    with pytest.raises(ProbeError, match="closes nothing"):
        _conf({"/etc/apache2/apache2.conf": "</Directory>\n"})


@pytest.mark.parametrize("line, expected", [
    (None, ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]),  # default all -SSLv3
    ("SSLProtocol all -SSLv3", ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]),
    ("SSLProtocol -all +TLSv1.2 +TLSv1.3", ["TLSv1.2", "TLSv1.3"]),
    ("SSLProtocol TLSv1.2", ["TLSv1.2"]),
    ("SSLProtocol all -TLSv1 -TLSv1.1 -SSLv3", ["TLSv1.2", "TLSv1.3"]),
])
def test_sslprotocol_as_mod_ssl_reads_it(line, expected):
    node = _conf({"/etc/apache2/apache2.conf": line + "\n"}).root.children[0] if line else None
    assert protocols(node) == expected


def test_debian_stock_package_files(tmp_path):
    got = _statuses(_root(tmp_path))
    assert {k for k, v in got.items() if v[0] == "fail"} == STOCK_FAILS | (
        set() if os.geteuid() == 0 else {"l3-httpd-config-files"})
    assert got["l3-httpd-indexes"][1] == ["<Directory /var/www/> (/etc/apache2/apache2.conf:170)"]
    assert got["l3-httpd-server-tokens"][2] == "ServerTokens is os, expected one of prod, productonly"
    assert got["l3-httpd-run-user"][1] == {"User": "www-data", "Group": "www-data"}  # from envvars
    assert got["l3-httpd-status-restricted"][1][0]["how"] == "Require local"
    assert got["l3-httpd-request-body"][1][0]["LimitRequestBody"] == 1073741824  # 2.4.71's default
    assert got["l3-httpd-default-page"][1] == [
        "<VirtualHost *:80> (/etc/apache2/sites-enabled/000-default.conf:1) serves /var/www/html/index.html "
        "(Debian apache2 page)"]
    assert got["l3-httpd-tls-protocols"][0] == "not_applicable"


def test_tls_follows_sslprotocol_and_the_openssl_build(tmp_path):
    root = _root(tmp_path)
    _enable(root, "ssl.load", "ssl.conf", "socache_shmcb.load", "default-ssl.conf")
    got = _statuses(root)
    # no OpenSSL library in the root: an unknown build, upstream level 1, so "all -SSLv3" offers TLS 1.0/1.1
    assert got["l3-httpd-tls-protocols"][0] == "fail"
    lib = root / "usr/lib/x86_64-linux-gnu/libcrypto.so.3"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"\x7fELF...compiler: gcc -DOPENSSL_TLS_SECURITY_LEVEL=2 -O2\x00")  # the flags string it carries
    got = _statuses(root)
    assert got["l3-httpd-tls-protocols"][:1] == ("pass",)
    row = got["l3-httpd-tls-protocols"][1][0]
    assert row["refused_by_openssl"] == ["TLSv1", "TLSv1.1"] and row["security_level"] == 2
    assert got["l3-httpd-tls-ciphers"][0] == "pass"  # HIGH:!aNULL
    ssl_conf = root / "etc/apache2/mods-available/ssl.conf"
    weak = "SSLCipherSuite HIGH:aNULL:@SECLEVEL=0"
    ssl_conf.write_text(ssl_conf.read_text().replace("SSLCipherSuite HIGH:!aNULL", weak))
    got = _statuses(root)
    assert got["l3-httpd-tls-protocols"][0] == got["l3-httpd-tls-ciphers"][0] == "fail"


def test_rectified_debian_files_pass(tmp_path):
    root = _root(tmp_path)
    etc = root / "etc/apache2"
    _enable(root, "ssl.load", "ssl.conf", "socache_shmcb.load", "default-ssl.conf")
    conf = etc / "apache2.conf"
    text = conf.read_text().replace("Timeout 300", "Timeout 60").replace(
        "<Directory /var/www/>\n\tOptions Indexes FollowSymLinks", "<Directory /var/www/>\n\tOptions FollowSymLinks")
    conf.write_text(text + "LoadModule evasive20_module /usr/lib/apache2/modules/mod_evasive20.so\n")
    security = etc / "conf-available/security.conf"
    security.write_text(security.read_text().replace("ServerTokens OS", "ServerTokens Prod").replace(
        "ServerSignature On", "ServerSignature Off"))
    site = etc / "sites-available/000-default.conf"
    site.write_text(site.read_text().replace("DocumentRoot /var/www/html", "Redirect permanent / https://www.example.test/"))
    (root / "var/www/html/index.html").write_text("<html><title>Example</title></html>\n")
    ssl_conf = etc / "mods-available/ssl.conf"
    ssl_conf.write_text(ssl_conf.read_text().replace("SSLProtocol all -SSLv3", "SSLProtocol -all +TLSv1.2 +TLSv1.3"))
    got = _statuses(root)
    if os.geteuid() != 0:
        got.pop("l3-httpd-config-files")  # the copy belongs to the user running the test
    assert [(k, v[0], v[2]) for k, v in got.items() if v[0] != "pass"] == []
    conf.write_text(conf.read_text() + "<Location /server-info>\nSetHandler server-info\nRequire all granted\n"
                    "</Location>\nLoadModule info_module x.so\n")
    got = _statuses(root)
    assert got["l3-httpd-risky-modules"][0] == "fail"
    assert got["l3-httpd-status-restricted"][0] == "fail"  # handlers are looked up per request: order is no matter
    assert [row["handler"] for row in got["l3-httpd-status-restricted"][1] if not row["restricted"]] == ["server-info"]


@pytest.mark.parametrize("level", [2, 4])
def test_levels_2_and_4(tmp_path, level):
    baseline = load_baseline(f"dengbao-l{level}-httpd")
    assert baseline.object == "httpd" and baseline.lineage == ["dengbao-l3-httpd"]
    got = _statuses(_root(tmp_path), level)
    assert got["l3-httpd-server-tokens"][0] == "fail"
    items = {i.key: i for c in baseline.controls for i in c.items}
    if level == 2:
        assert "l3-httpd-tls-protocols" in {c.id for c in items["ces.auth.remote-eavesdrop"].checks}


def test_every_item_is_in_each_level_with_checks_or_notes():
    from sentinel.catalogue import load as load_catalogue

    cat = load_catalogue()
    for level in (2, 3, 4):
        baseline = load_baseline(f"dengbao-l{level}-httpd")
        keys = {i.key for c in baseline.controls for i in c.items}
        assert keys == {i.key for i in cat.items(level, "general", "ces")}
        assert all(i.checks or i.notes for c in baseline.controls for i in c.items)


def test_rhel_layout(tmp_path):
    """The RHEL family's httpd: conf/httpd.conf under ServerRoot /etc/httpd, conf.modules.d and conf.d, User apache."""
    root = tmp_path / "rocky"
    files = {
        "etc/os-release": 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n',
        "etc/httpd/conf/httpd.conf": (
            'ServerRoot "/etc/httpd"\nListen 80\nInclude conf.modules.d/*.conf\nUser apache\nGroup apache\n'
            'DocumentRoot "/var/www/html"\n<Directory "/var/www/html">\n    Options Indexes FollowSymLinks\n'
            "    Require all granted\n</Directory>\nErrorLog \"logs/error_log\"\n<IfModule log_config_module>\n"
            '    LogFormat "%h %l %u %t \\"%r\\" %>s %b" common\n    CustomLog "logs/access_log" common\n'
            "</IfModule>\nIncludeOptional conf.d/*.conf\n"),
        "etc/httpd/conf.modules.d/00-base.conf": ("LoadModule autoindex_module modules/mod_autoindex.so\n"
                                                  "LoadModule log_config_module modules/mod_log_config.so\n"),
        "etc/httpd/conf.d/welcome.conf": "<LocationMatch \"^/+$\">\n    Options -Indexes\n</LocationMatch>\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "var/www/html").mkdir(parents=True)
    (root / "etc/httpd/logs").mkdir()
    (root / "etc/httpd/logs/access_log").write_text("")
    (root / "etc/httpd/logs/access_log").chmod(0o644)
    got = _statuses(root)
    assert got["l3-httpd-run-user"][:2] == ("pass", {"User": "apache", "Group": "apache"})
    assert got["l3-httpd-indexes"][1] == ["<Directory /var/www/html> (/etc/httpd/conf/httpd.conf:7)"]
    assert got["l3-httpd-log-format"][0] == "pass"  # common has %h %t %r %>s
    assert got["l3-httpd-log-files"][:1] == ("fail",)  # logs/access_log under ServerRoot, 0644
    assert got["l3-httpd-log-files"][1][0]["path"] == "/etc/httpd/logs/access_log"
    assert got["l3-httpd-server-tokens"][1][0]["ServerTokens"] == "full"  # httpd's default
    assert got["l3-httpd-trace-off"][0] == "fail"  # default On
    assert got["l3-httpd-request-body"][0] == "error"  # no package database: version unknown, default unknown



def test_methods_are_judged_where_requests_reach_an_application(tmp_path):
    root = _root(tmp_path)
    assert _statuses(root)["l3-httpd-methods"][0] == "pass"  # Debian's stock site serves files only
    site = root / "etc/apache2/sites-available/000-default.conf"
    stock = site.read_text()
    site.write_text(stock.replace("</VirtualHost>", "\tProxyPass /app/ http://127.0.0.1:8080/\n</VirtualHost>"))
    got = _statuses(root)["l3-httpd-methods"]
    assert got[0] == "fail" and "ProxyPass /app/" in got[1][0]["how"]
    site.write_text(stock.replace("</VirtualHost>", "\tProxyPass /app/ http://127.0.0.1:8080/\n\t<Location />\n"
                                  "\t\t<LimitExcept GET POST HEAD>\n\t\t\tRequire all denied\n\t\t</LimitExcept>\n"
                                  "\t</Location>\n</VirtualHost>"))
    assert _statuses(root)["l3-httpd-methods"][0] == "pass"



def test_private_key_mode(tmp_path):
    root = _root(tmp_path)
    _enable(root, "ssl.load", "ssl.conf", "socache_shmcb.load", "default-ssl.conf")
    assert _statuses(root)["l3-httpd-tls-key-files"][0] == ("pass" if os.geteuid() == 0 else "fail")
    (root / "etc/ssl/private/ssl-cert-snakeoil.key").chmod(0o644)
    got = _statuses(root)["l3-httpd-tls-key-files"]
    assert got[0] == "fail" and got[1][0]["mode"] == "0644"
