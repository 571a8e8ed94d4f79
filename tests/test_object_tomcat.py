"""Tomcat object kind, offline (issue 15): CATALINA_BASE read as Tomcat 10.1 reads it, and the level-2/3/4 Tomcat
baselines over fixture roots (tests/fixtures/tomcat/). The real server is asked in tests/test_object_tomcat_real.py.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.checks import _tomcat_conf as tc
from sentinel.engine import run_baseline
from sentinel.hostview import RootHost
from sentinel.model import Status
from sentinel.probe import ProbeContext, registry

FIXTURES = Path(__file__).parent / "fixtures" / "tomcat"


def _root(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root, symlinks=True)
    for path in (root / "etc" / "tomcat10").rglob("*"):
        if path.is_file():
            path.chmod(0o640)  # git keeps no modes: the package installs these 0640 root:tomcat
    return root


def _facts(root: Path, kind: str) -> dict:
    ctx = ProbeContext(host=RootHost(str(root)), family="debian", os_release={})
    pdef = registry()[kind]
    return pdef.func(ctx, pdef.params.model_validate({})).observed


def _probe_evidence(root: Path) -> list:
    ctx = ProbeContext(host=RootHost(str(root)), family="debian", os_release={})
    pdef = registry()["tomcat.users"]
    return pdef.func(ctx, pdef.params.model_validate({})).evidence


def _statuses(root: Path, ref: str = "dengbao-l3-tomcat") -> dict[str, Status]:
    return {r.check_id: r.status for r in run_baseline(load_baseline(ref), RootHost(str(root))).results}


@pytest.mark.parametrize(("value", "expanded"), [
    ("all", ["SSLv2Hello", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]),
    ("TLSv1.2+TLSv1.3", ["TLSv1.2", "TLSv1.3"]),
    ("all -TLSv1 -TLSv1.1 -SSLv2Hello", ["TLSv1.2", "TLSv1.3"]),
    ("TLSv1.2, TLSv1.3", ["TLSv1.2", "TLSv1.3"]),
])
def test_protocols_as_sslhostconfig_expands_them(value, expanded):
    assert tc.expand_protocols(value) == expanded


def test_properties_and_substitution():
    props = tc.parse_properties("# c\n! c\na=1\nb : two\nlong=x\\\n   y\n")
    assert props == {"a": "1", "b": "two", "long": "xy"}
    assert tc.substitute("${a}-${missing}", props) == "1-${missing}"


def test_stock_debian_facts(tmp_path):
    root = _root(tmp_path, "debian-stock")
    server = _facts(root, "tomcat.server")
    assert server["shutdown_port"] == -1 and server["shutdown_default_command"] is False
    assert server["plaintext_beyond_loopback"] == ["/var/lib/tomcat10/conf/server.xml:70 port 8080 (HTTP/1.1, "
                                                   "address *)"]
    assert server["version_disclosed"] is True and server["access_log"] is True
    assert (server["session_timeout"], server["lockout_failures"], server["lockout_seconds"]) == (30, 5, 300)
    apps = _facts(root, "tomcat.apps")
    # the context files of tomcat10-admin win over manager's own META-INF/context.xml and its RemoteCIDRValve
    assert apps["admin_unrestricted"] == ["host-manager", "manager"] and apps["default_root"] is True
    assert _facts(root, "tomcat.users") == {"users": [], "weak": [], "admins": []}


def test_hardened_facts(tmp_path):
    root = _root(tmp_path, "hardened")
    server = _facts(root, "tomcat.server")
    assert server["plaintext_beyond_loopback"] == [] and server["tls_connectors"] == 1
    assert server["weak_tls"] == [] and server["ajp_exposed"] == [] and server["version_disclosed"] is False
    assert (server["session_timeout"], server["lockout_failures"], server["lockout_seconds"]) == (15, 3, 600)
    apps = _facts(root, "tomcat.apps")
    assert apps["admin_apps"] == ["manager"] and apps["admin_unrestricted"] == []
    assert apps["deployed"] == ["ROOT", "app", "manager"] and apps["default_root"] is False
    assert _facts(root, "tomcat.users")["admins"] == ["ops-li (manager-gui)"]


def test_weak_and_example_users_and_open_ajp(tmp_path):
    root = _root(tmp_path, "hardened")
    users = root / "etc/tomcat10/tomcat-users.xml"
    users.write_text('<tomcat-users><user username="tomcat" password="tomcat" roles="manager-gui"/>'
                     '<user username="dev" password="dev12345" roles="x"/></tomcat-users>')
    facts = _facts(root, "tomcat.users")
    assert facts["weak"] == ["dev: only 2 of the 4 character classes (lower, upper, digit, other)",
                             "tomcat: a common or default password, or the account's name"]
    shown = repr(_probe_evidence(root))
    assert 'password="tomcat"' not in shown and "dev12345" not in shown and 'password="<withheld>"' in shown
    xml = (root / "etc/tomcat10/server.xml").read_text()
    (root / "etc/tomcat10/server.xml").write_text(xml.replace(
        'address="127.0.0.1" secretRequired="true"', 'address="0.0.0.0" secretRequired="false"').replace(
        'protocols="TLSv1.2+TLSv1.3"', 'protocols="all"'))
    server = _facts(root, "tomcat.server")
    assert len(server["ajp_exposed"]) == 1 and "secretRequired false" in server["ajp_exposed"][0]
    assert "TLSv1, TLSv1.1" in server["weak_tls"][0]
    statuses = _statuses(root)
    assert statuses["l3-tomcat-weak-users"] == statuses["l3-tomcat-no-example-users"] == Status.FAIL
    assert statuses["l3-tomcat-ajp"] == statuses["l3-tomcat-tls-protocols"] == Status.FAIL


def test_a_global_context_valve_restricts_every_application(tmp_path):
    root = _root(tmp_path, "debian-stock")
    (root / "etc/tomcat10/context.xml").write_text(
        '<Context><Valve className="org.apache.catalina.valves.RemoteAddrValve" allow="127\\.\\d+\\.\\d+\\.\\d+|::1"/>'
        "</Context>")
    assert _facts(root, "tomcat.apps")["admin_unrestricted"] == []


def test_malformed_server_xml_is_an_error(tmp_path):
    root = _root(tmp_path, "hardened")
    (root / "etc/tomcat10/server.xml").write_text("<Server><Service></Server>")
    statuses = _statuses(root)
    assert statuses["l3-tomcat-ajp"] == Status.ERROR


STOCK_FAILS = {"l3-tomcat-no-plaintext-network", "l3-tomcat-no-default-root", "l3-tomcat-admin-apps",
               "l3-tomcat-version-disclosure"}


def test_stock_fails_what_an_assessor_fails(tmp_path):
    statuses = _statuses(_root(tmp_path, "debian-stock"))
    assert {k for k, s in statuses.items() if s == Status.FAIL} == STOCK_FAILS
    assert not any(s == Status.ERROR for s in statuses.values()), statuses


def test_hardened_passes(tmp_path):
    statuses = _statuses(_root(tmp_path, "hardened"))
    assert {k for k, s in statuses.items() if s not in (Status.PASS, Status.NOT_APPLICABLE)} == set(), statuses
    assert statuses["l3-tomcat-not-root"] == Status.NOT_APPLICABLE  # a live fact


@pytest.mark.parametrize("level", [2, 3, 4])
def test_every_level_covers_every_item(level):
    spec = load_baseline(f"dengbao-l{level}-tomcat")
    assert spec.object == "tomcat" and spec.level == level
    items = [i for c in spec.controls for i in c.items]
    assert len(items) == {2: 23, 3: 34, 4: 36}[level]
    assert all(i.checks or i.notes for i in items)
    assert all(k.id.startswith("l3-tomcat-") for _, _, k in spec.iter_checks())


def test_the_jvm_disables_what_its_java_security_says(tmp_path):
    """protocols="all": TLSv1/TLSv1.1 are in effect only where Tomcat's JVM does not disable them."""
    root = _root(tmp_path, "hardened")
    xml = (root / "etc/tomcat10/server.xml").read_text()
    (root / "etc/tomcat10/server.xml").write_text(xml.replace('protocols="TLSv1.2+TLSv1.3"', 'protocols="all"'))
    jvm = root / "usr/lib/jvm/java-17-openjdk-amd64"
    (jvm / "bin").mkdir(parents=True)
    (jvm / "bin/java").write_text("")
    (jvm / "conf/security").mkdir(parents=True)
    (jvm / "conf/security/java.security").write_text(
        "jdk.tls.disabledAlgorithms=SSLv3, TLSv1, TLSv1.1, DTLSv1.0, RC4, DES, \\\n    MD5withRSA, anon, NULL\n")
    assert _facts(root, "tomcat.server")["weak_tls"] == []
    # JAVA_HOME in /etc/default/tomcat10 picks another JVM, whose java.security disables only SSLv3
    other = root / "opt/jdk"
    (other / "conf/security").mkdir(parents=True)
    (other / "conf/security/java.security").write_text("jdk.tls.disabledAlgorithms=SSLv3\n")
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/tomcat10").write_text("JAVA_HOME=/opt/jdk\n")
    assert "TLSv1, TLSv1.1" in _facts(root, "tomcat.server")["weak_tls"][0]
