"""`sentinel db`, `sentinel collector init` and the admin bootstrap commands, run in-process."""
from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from sentinel.cli import main
from sentinel.collector.auth import hash_secret
from sentinel.store.db import Database, head_revision
from sentinel.store.models import ApiToken, AuditEntry, EnrollmentToken, System

pytest_plugins = ["tests.dbfixtures"]


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bootstrap_commands(store_url, tmp_path, capsys):
    common = ["--state-dir", str(tmp_path), "--database-url", store_url]
    assert run(capsys, "db", "upgrade", *common)[0] == 0
    code, out, _ = run(capsys, "db", "current", *common)
    assert code == 0 and f"current {head_revision()}" in out
    assert run(capsys, "department", "add", "health", "--title", "市卫健委", *common)[0] == 0
    code, _, err = run(capsys, "department", "add", "health", *common)
    assert code == 2 and "already exists" in err
    for block in ("10.1.0.0/16", "2001:db8::/48"):  # the site's address plan bounds every scope
        assert run(capsys, "address-plan", "add", block, "--department", "health", *common)[0] == 0
    code, out, _ = run(capsys, "system", "add", "his", "--department", "health", "--level", "4", "--s-grade", "3",
                       "--a-grade", "4", "--owner", "信息科", "--zone", "core", "--zone", "dmz",
                       "--scope", "10.1.0.0/16", "--scope", "2001:db8::/64", *common)
    assert code == 0 and "S3A4" in out
    code, _, err = run(capsys, "system", "add", "x", "--department", "health", "--level", "3", "--s-grade", "1",
                       "--a-grade", "2", *common)
    assert code == 2 and "higher of the S and A grades" in err
    code, _, err = run(capsys, "system", "add", "y", "--department", "health", "--level", "2", "--s-grade", "2",
                       "--a-grade", "1", "--scope", "10.1.0.1/16", *common)
    assert code == 2 and "--scope '10.1.0.1/16': not a network in CIDR form" in err
    code, _, err = run(capsys, "system", "add", "z", "--department", "nope", "--level", "2", "--s-grade", "2",
                       "--a-grade", "1", *common)
    assert code == 2 and "department nope not found" in err
    code, out, _ = run(capsys, "system", "list", *common)
    assert "his\thealth\tlevel 4\tS3A4\t10.1.0.0/16,2001:db8::/64" in out

    code, secret, err = run(capsys, "token", "create", "--name", "ops", "--role", "dept_operator",
                            "--department", "health", *common)
    secret = secret.strip()
    assert code == 0 and secret.startswith("sntapi_") and secret not in err and err.startswith("API token ")
    created = err
    code, _, err = run(capsys, "token", "create", "--name", "bad", "--role", "dept_operator", *common)
    assert code == 2 and "department_ids" in err
    code, enroll, _ = run(capsys, "enroll-token", "create", "--system", "his", "--ttl", "600", *common)
    assert code == 0 and enroll.strip().startswith("sntenr_")
    code, out, _ = run(capsys, "token", "list", *common)
    assert "ops\tdept_operator" in out and secret not in out
    token_id = created.split()[2]  # "API token <id> (ops): ..."
    assert run(capsys, "token", "revoke", token_id, *common)[0] == 0

    db = Database(store_url)
    try:
        with db.read() as conn:
            token = conn.execute(select(ApiToken.__table__)).one()
            system = conn.execute(select(System.__table__)).one()
            et = conn.execute(select(EnrollmentToken.__table__)).one()
            audit = conn.execute(select(AuditEntry.__table__)).all()
    finally:
        db.dispose()
    assert token.token_hash == hash_secret(secret) and token.revoked_at is not None
    assert system.zones == ["core", "dmz"] and system.owner == "信息科"
    assert et.token_hash == hash_secret(enroll.strip())
    actions = [a.action for a in audit]
    assert {"department.create", "system.create", "api_token.create", "enrollment_token.create",
            "api_token.revoke"} <= set(actions)
    assert all(a.actor.startswith("cli:") for a in audit)


def test_commands_refuse_an_unmigrated_database(tmp_path, capsys):
    code, _, err = run(capsys, "department", "add", "x", "--state-dir", str(tmp_path))
    assert code == 2 and "sentinel db upgrade" in err
    code, out, _ = run(capsys, "db", "current", "--state-dir", str(tmp_path))
    assert code == 1 and "(empty)" in out


def test_collector_init_makes_a_pki(tmp_path, capsys):
    code, out, _ = run(capsys, "collector", "init", "--state-dir", str(tmp_path), "--name", "collector.gov.local",
                       "--name", "10.20.0.5")
    assert code == 0 and "SHA256" in out
    tls = tmp_path / "tls"
    for name, mode in (("ca.key", 0o600), ("server.key", 0o600), ("ca.crt", 0o644), ("server.crt", 0o644)):
        assert stat.S_IMODE((tls / name).stat().st_mode) == mode, name
    assert stat.S_IMODE((tmp_path / "collector.key").stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((tls / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((tls / "server.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert server.issuer == ca.subject
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes, ec.ECDSA(server.signature_hash_algorithm))
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["collector.gov.local"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.20.0.5"]
    # an existing CA is never replaced by accident (agents pinned it)
    code, _, err = run(capsys, "collector", "init", "--state-dir", str(tmp_path))
    assert code == 2 and "--force" in err
    assert x509.load_pem_x509_certificate((tls / "ca.crt").read_bytes()) == ca
    assert run(capsys, "collector", "init", "--state-dir", str(tmp_path), "--force")[0] == 0
    assert x509.load_pem_x509_certificate((tls / "ca.crt").read_bytes()) != ca
    code, _, err = run(capsys, "collector", "init", "--state-dir", str(tmp_path / "b"), "--name", "bad name")
    assert code == 2 and "bad name" in err


@pytest.mark.parametrize("args, words", [
    (["collector", "--port", "99999"], "port"),
    (["db", "upgrade", "--database-url", "mysql://x@y/z"], "only sqlite"),
])
def test_bad_settings(tmp_path, capsys, args, words):
    code, _, err = run(capsys, *args, "--state-dir", str(tmp_path))
    assert code == 2 and words in err


def test_system_update_switches_credential_probes_audited_as_the_api_does(store_url, tmp_path, capsys):
    """`sentinel system update NAME --credential-probes` goes through operations.update_system, the function
    behind PATCH /api/v1/systems/{id}: same who/when on the system, same system.update audit entry."""
    import getpass
    import json

    common = ["--state-dir", str(tmp_path), "--database-url", store_url]
    assert run(capsys, "department", "add", "health", *common)[0] == 0
    assert run(capsys, "system", "add", "his", "--department", "health", "--level", "3", "--s-grade", "3",
               "--a-grade", "2", *common)[0] == 0
    code, _, err = run(capsys, "system", "update", "his", *common)
    assert code == 2 and "nothing to change" in err
    code, _, err = run(capsys, "system", "update", "nope", "--credential-probes", *common)
    assert code == 2 and "system nope not found" in err

    actor = f"cli:{getpass.getuser()}"
    code, out, _ = run(capsys, "system", "update", "his", "--credential-probes", *common)
    assert code == 0 and out.startswith("system his (id ") and f"credential probes ON (set by {actor} at " in out
    assert out.rstrip().endswith(", changed")
    code, out, _ = run(capsys, "system", "update", "his", "--credential-probes", *common)
    assert code == 0 and out.rstrip().endswith(", unchanged")  # no change: no audit entry either (below)

    def stored():
        db = Database(store_url)
        try:
            with db.read() as conn:
                system = conn.execute(select(System.__table__)).one()
                audit = conn.execute(select(AuditEntry.__table__).where(
                    AuditEntry.__table__.c.action == "system.update").order_by(AuditEntry.__table__.c.id)).all()
        finally:
            db.dispose()
        return system, audit

    system, audit = stored()
    assert system.credential_probes is True and system.credential_probes_by == actor
    assert system.credential_probes_at is not None
    assert len(audit) == 1 and audit[0].actor == actor and audit[0].outcome == "ok"
    assert audit[0].target == f"system:{system.id}:his"
    assert json.loads(audit[0].detail) == {"before": {"credential_probes": False},
                                           "after": {"credential_probes": True}}
    switched_on_at = system.credential_probes_at

    code, out, _ = run(capsys, "system", "update", "his", "--no-credential-probes", *common)
    assert code == 0 and "credential probes off (set by " in out and out.rstrip().endswith(", changed")
    system, audit = stored()
    assert system.credential_probes is False and system.credential_probes_by == actor
    assert system.credential_probes_at >= switched_on_at  # who switched them off, and when
    assert len(audit) == 2 and json.loads(audit[1].detail) == {"before": {"credential_probes": True},
                                                               "after": {"credential_probes": False}}
