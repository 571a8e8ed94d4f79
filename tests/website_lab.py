"""Generated government websites served by Debian's nginx on loopback (tests/test_websites_real.py, bench/).

`NginxSites` writes a minimal nginx.conf into a temporary directory (pid, logs and temporary files kept there),
one `server` per site on a free 127.0.0.1 port, and runs /usr/sbin/nginx on it in the foreground; `stop()`
ends that one process (and so its workers) and removes the directory. Sites are plain files the test writes
and rewrites, so what the monitor reads is what nginx serves.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from tests.obs_support import wait_listening

NGINX = "/usr/sbin/nginx"


def need_nginx() -> None:
    why = f"{NGINX} not installed (tests/setup-machine.sh)" if not os.path.exists(NGINX) else (
        "needs root (the nginx master binds as root and its workers read the sites)" if os.geteuid() != 0 else None)
    if why:  # in CI setup-machine.sh installs nginx and the suite runs as root: a skip there is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Site:
    name: str
    root: Path
    port: int
    tls: Optional[tuple[Path, Path]] = None  # certificate, key
    extra: str = ""  # nginx directives inside the server block
    protocols: str = "TLSv1.2 TLSv1.3"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    def write(self, path: str, text: str) -> Path:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        for parent in [target.parent, *target.parent.parents]:
            if parent == self.root.parent:
                break
            parent.chmod(0o755)
        target.write_text(text, encoding="utf-8")
        target.chmod(0o644)
        return target


class NginxSites:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sntl-web-"))
        self.dir.chmod(0o755)  # the workers (nobody) read the sites under it
        self.sites: dict[str, Site] = {}
        self.proc: Optional[subprocess.Popen] = None

    def site(self, name: str, **kw) -> Site:
        root = self.dir / "sites" / name
        root.mkdir(parents=True)
        (self.dir / "sites").chmod(0o755)
        root.chmod(0o755)
        site = Site(name=name, root=root, port=free_port(), **kw)
        self.sites[name] = site
        return site

    def conf(self) -> str:
        d = self.dir
        temp = "".join(f"  {k}_temp_path {d}/tmp-{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        servers = []
        for s in self.sites.values():
            listen = f"listen 127.0.0.1:{s.port}{' ssl' if s.tls else ''};"
            tls = ""
            if s.tls:
                tls = (f"    ssl_certificate {s.tls[0]};\n    ssl_certificate_key {s.tls[1]};\n"
                       f"    ssl_protocols {s.protocols};\n")
                if "TLSv1 " in s.protocols + " ":
                    tls += '    ssl_ciphers "DEFAULT:@SECLEVEL=0";\n'
            headers = "".join(f"    add_header {k} \"{v}\" always;\n" for k, v in s.headers.items())
            servers.append(f"  server {{\n    {listen}\n    server_name _;\n    root {s.root};\n    index index.html;\n"
                           f"    access_log {d}/access-{s.name}.log;\n"
                           f"{tls}{headers}{s.extra}  }}\n")
        return (f"pid {d}/nginx.pid;\nerror_log {d}/error.log;\nworker_processes 2;\n"
                "events { worker_connections 512; }\n"
                f"http {{\n  access_log {d}/access.log;\n{temp}"
                "  types { text/html html; text/css css; application/javascript js; image/png png; }\n"
                "  default_type application/octet-stream;\n  charset utf-8;\n  server_tokens off;\n"
                + "".join(servers) + "}\n")

    def start(self) -> NginxSites:
        conf = self.dir / "nginx.conf"
        conf.write_text(self.conf())
        self.proc = subprocess.Popen([NGINX, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(conf),
                                      "-g", "daemon off;"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        wait_listening(self.proc, [s.port for s in self.sites.values()], "nginx", interval=0.05,
                       detail=lambda: "\n" + conf.read_text())
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def requested(self, name: str) -> list[str]:
        """The paths nginx served on that site (its access log): what the monitor really fetched."""
        log = self.dir / f"access-{name}.log"
        out = []
        for line in log.read_text().splitlines() if log.exists() else []:
            parts = line.split('"')
            if len(parts) > 1 and " " in parts[1]:
                out.append(parts[1].split(" ")[1])
        return out


def make_ca(directory: Path):
    """A throw-away CA: (certificate PEM text, key, certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sentinel test government CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (directory / "ca.crt").write_text(pem)
    return pem, key, cert


def make_leaf(directory: Path, name: str, ca, days: int) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by `ca`, valid from yesterday for `days` more days."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    _, ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    crt, pem = directory / f"{name}.crt", directory / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    for p in (crt, pem):
        p.chmod(0o644)
    return crt, pem
