"""A network lab of Linux network namespaces for the network-scan tests (needs root and iproute2).

Topology (all inside namespaces this module creates; nothing is added to the machine's own namespace):

    scanner ns: bridge lab0 10.A.B.1/24 -- veth p1/p2/p3 --> host ns h1 .11, h2 .12, h3 .13 (eth0)
                veth out0 10.A.B+1.1/30 -----------------> decoy ns .2 (out of scope: must never see a packet)

The subnet is random per lab and exists only inside these namespaces; namespace names carry a random suffix
so parallel runs do not collide; IPv6 is off on every lab interface so the kernel's own neighbour discovery
does not disturb the packet counters. `Lab.close()` kills every listener and deletes every namespace; the
fixture calls it in a finalizer, so it runs when a test fails too.

Listeners are small Python servers started inside host namespaces with `python -m tests.netlab serve KIND
PORT [ARGS]`: http with a login form (no TLS), ftp, ssh (real banner + KEXINIT with weak algorithms), telnet,
mysql greeting, redis without auth (RESP), TLS with an expired self-signed certificate, TLS 1.0 only, SNMP
v2c answering community `public`.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def lab_available() -> Optional[str]:
    """None if a lab can be built here, else why not (for skip reasons)."""
    if os.geteuid() != 0:
        return "network lab needs root (ip netns)"
    if shutil.which("ip") is None:
        return "iproute2 `ip` not installed"
    return None


class Lab:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.suffix = f"{random.getrandbits(24):06x}"
        a, b = random.randint(100, 250), random.randrange(0, 254, 2)
        self.net = f"10.{a}.{b}.0/24"
        self.prefix = f"10.{a}.{b}"
        self.scanner_ip = f"{self.prefix}.1"
        self.hosts = {"h1": f"{self.prefix}.11", "h2": f"{self.prefix}.12", "h3": f"{self.prefix}.13"}
        self.decoy_ip = f"10.{a}.{b + 1}.2"
        self.decoy_net = f"10.{a}.{b + 1}.0/30"
        self.ns = {name: f"sntl-{self.suffix}-{name}" for name in ("scan", "h1", "h2", "h3", "decoy")}
        self.procs: dict[str, subprocess.Popen] = {}
        self.created: list[str] = []
        self.dirs: list[Path] = []  # directories outside workdir (PostgreSQL data), removed by close()

    # ---- build / tear down ---------------------------------------------------------------------

    def build(self) -> Lab:
        for name, ns in self.ns.items():
            _ip("netns", "add", ns)
            self.created.append(ns)
            self.exec(name, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                             "net.ipv6.conf.default.disable_ipv6=1"])
            _ip("-n", ns, "link", "set", "lo", "up")
        scan = self.ns["scan"]
        _ip("-n", scan, "link", "add", "lab0", "type", "bridge")
        for i, host in enumerate(("h1", "h2", "h3"), 1):
            _ip("link", "add", f"p{i}", "netns", scan, "type", "veth", "peer", "name", "eth0", "netns", self.ns[host])
            _ip("-n", scan, "link", "set", f"p{i}", "master", "lab0")
            _ip("-n", scan, "link", "set", f"p{i}", "up")
            _ip("-n", self.ns[host], "addr", "add", f"{self.hosts[host]}/24", "dev", "eth0")
            _ip("-n", self.ns[host], "link", "set", "eth0", "up")
        _ip("-n", scan, "addr", "add", f"{self.scanner_ip}/24", "dev", "lab0")
        _ip("-n", scan, "link", "set", "lab0", "up")
        _ip("link", "add", "out0", "netns", scan, "type", "veth", "peer", "name", "eth0", "netns", self.ns["decoy"])
        _ip("-n", scan, "addr", "add", f"{self.decoy_ip[:-1]}1/30", "dev", "out0")
        _ip("-n", scan, "link", "set", "out0", "up")
        _ip("-n", self.ns["decoy"], "addr", "add", f"{self.decoy_ip}/30", "dev", "eth0")
        _ip("-n", self.ns["decoy"], "link", "set", "eth0", "up")
        return self

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for ns in reversed(self.created):
            _ip("netns", "del", ns, check=False)
        self.created.clear()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()

    # ---- running things inside ---------------------------------------------------------------

    def exec(self, name: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 120)
        return subprocess.run(["ip", "netns", "exec", self.ns[name], *argv], **kw)

    def python(self, name: str, code_or_args: list[str], **kw) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        return self.exec(name, [sys.executable, *code_or_args], cwd=str(REPO), env=env, **kw)

    def sentinel(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        """`sentinel ARGS` run inside the scanner namespace."""
        return self.python("scan", ["-m", "sentinel.cli", *args], **kw)

    def serve(self, host: str, kind: str, port: int, *args: str) -> None:
        key = f"{host}:{kind}:{port}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns[host], sys.executable, "-m", "tests.netlab", "serve",
                                 kind, str(port), *args], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs[key] = proc
        line = proc.stdout.readline()
        if not line.startswith("ready"):
            proc.kill()
            raise RuntimeError(f"lab listener {key} did not start: {line!r} {proc.stderr.read()[-500:]}")

    def stop(self, host: str, kind: str, port: int) -> None:
        proc = self.procs.pop(f"{host}:{kind}:{port}")
        proc.kill()
        proc.wait(timeout=5)

    # ---- packet counters ---------------------------------------------------------------------

    def counters(self, name: str) -> dict[str, dict[str, int]]:
        """{ifname: {rx_packets, tx_packets}} for every interface in namespace `name` except lo."""
        out = json.loads(_ip("-n", self.ns[name], "-s", "-j", "link", "show").stdout)
        res = {}
        for link in out:
            if link["ifname"] == "lo":
                continue
            stats = link.get("stats64") or link.get("stats")
            res[link["ifname"]] = {"rx_packets": stats["rx"]["packets"], "tx_packets": stats["tx"]["packets"]}
        return res

    def routes(self, name: str) -> list[dict]:
        return json.loads(_ip("-n", self.ns[name], "-j", "route", "show").stdout)


# ---- real services from Debian's packages (snmpd, memcached, postgresql, openssh-server, nftables) ----------

REAL_TOOLS = {"snmpd": "/usr/sbin/snmpd", "memcached": "/usr/bin/memcached", "sshd": "/usr/sbin/sshd",
              "nft": "/usr/sbin/nft", "runuser": "/usr/sbin/runuser", "vsftpd": "/usr/sbin/vsftpd"}


def postgres_bin() -> Optional[Path]:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


def real_services_available() -> Optional[str]:
    """None if the Debian packages the real-service lab needs are installed, else what is missing."""
    missing = [name for name, path in REAL_TOOLS.items() if not Path(path).exists()]
    if postgres_bin() is None:
        missing.append("postgresql")
    if missing:
        return "real-service lab needs " + ", ".join(missing) + " (tests/setup-machine.sh installs them)"
    return None


def _wait_port(lab: Lab, host: str, port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    code = (f"import socket,sys,time\nend=time.time()+{timeout!r}\nwhile time.time()<end:\n try:\n"
            f"  socket.create_connection(({lab.hosts[host]!r},{port:d}),0.5).close();sys.exit(0)\n"
            " except OSError: time.sleep(0.1)\nsys.exit(1)")
    if lab.exec(host, [sys.executable, "-c", code], timeout=timeout + 5).returncode != 0 or proc.poll() is not None:
        err = proc.stderr.read()[-500:] if proc.poll() is not None and proc.stderr else ""
        raise RuntimeError(f"lab {what} on {host}:{port} did not start: {err}")


def start_real(lab: Lab, host: str, kind: str, workdir: Path) -> None:
    """Start a real daemon in namespace `host`, in the foreground so Lab.close() ends it by its pid."""
    ip = lab.hosts[host]
    workdir.mkdir(parents=True, exist_ok=True)
    if kind.startswith("snmpd"):
        community = kind.partition(":")[2] or "public"
        conf = workdir / f"snmpd-{host}.conf"
        conf.write_text(f"agentAddress udp:{ip}:161\nrocommunity {community}\nsysDescr Linux lab-{host} snmpd\n")
        argv = [REAL_TOOLS["snmpd"], "-f", "-Lf", str(workdir / f"snmpd-{host}.log"), "-C", "-c", str(conf),
                "-p", str(workdir / f"snmpd-{host}.pid"), "-M", "/dev/null", "-m", ""]
    elif kind == "memcached":  # UDP on, as old packages had it by default
        argv = [REAL_TOOLS["memcached"], "-u", "nobody", "-l", ip, "-p", "11211", "-U", "11211", "-m", "8"]
    elif kind == "sshd":  # Debian's stock algorithms, password authentication offered
        key = workdir / f"ssh_host_ed25519_key-{host}"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                           capture_output=True, timeout=30)
        conf = workdir / f"sshd-{host}.conf"
        conf.write_text(f"ListenAddress {ip}:22\nHostKey {key}\nPidFile {workdir / f'sshd-{host}.pid'}\n"
                        "PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory sshd insists on
        argv = [REAL_TOOLS["sshd"], "-D", "-e", "-f", str(conf)]
    elif kind == "vsftpd":  # anonymous FTP on, as an assessor finds it
        empty = workdir / "vsftpd-empty"
        empty.mkdir(exist_ok=True)
        anon = Path(tempfile.mkdtemp(prefix=f"sntl-ftp-{lab.suffix}-"))  # the ftp user must reach it
        lab.dirs.append(anon)
        os.chmod(anon, 0o555)
        conf = workdir / f"vsftpd-{host}.conf"
        conf.write_text(f"listen=YES\nlisten_ipv6=NO\nlisten_address={ip}\nanonymous_enable=YES\nlocal_enable=NO\n"
                        f"anon_root={anon}\nsecure_chroot_dir={empty}\nbackground=NO\nseccomp_sandbox=NO\n"
                        "run_as_launching_user=NO\nftp_username=ftp\n")  # the vsftpd package creates user ftp
        argv = [REAL_TOOLS["vsftpd"], str(conf)]
    elif kind == "postgresql":  # trust authentication for every address, no TLS
        # its own directory under /tmp: pytest's tmp directories are root-only, postgres could not enter them
        data = Path(tempfile.mkdtemp(prefix=f"sntl-pg-{lab.suffix}-{host}-"))
        lab.dirs.append(data)
        if not (data / "PG_VERSION").exists():
            shutil.chown(data, "postgres", "postgres")
            subprocess.run([REAL_TOOLS["runuser"], "-u", "postgres", "--", str(postgres_bin() / "initdb"), "-D",
                            str(data), "-A", "trust", "-U", "postgres", "--no-sync"], check=True,
                           capture_output=True, timeout=120)
            with open(data / "pg_hba.conf", "a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")
        argv = [REAL_TOOLS["runuser"], "-u", "postgres", "--", str(postgres_bin() / "postgres"), "-D", str(data),
                "-c", f"listen_addresses={ip}", "-c", f"unix_socket_directories={data}", "-c", "ssl=off",
                "-p", "5432"]
    else:
        raise ValueError(f"unknown real service {kind}")
    proc = subprocess.Popen(["ip", "netns", "exec", lab.ns[host], *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lab.procs[f"{host}:{kind}"] = proc
    tcp = {"memcached": 11211, "sshd": 22, "postgresql": 5432, "vsftpd": 21}.get(kind)
    if tcp:
        _wait_port(lab, host, tcp, proc, kind)
    else:
        time.sleep(1.0)  # snmpd binds its UDP port at once; nothing to connect to
        if proc.poll() is not None:
            raise RuntimeError(f"lab snmpd on {host} exited: {proc.stderr.read()[-500:]}")


def drop_udp(lab: Lab, host: str) -> None:
    """A host firewall (nftables) that silently drops every UDP datagram: nmap then reports open|filtered."""
    rules = ("table inet labfw {\n chain input {\n  type filter hook input priority 0; policy accept;\n"
             "  meta l4proto udp drop\n }\n}\n")
    proc = lab.exec(host, [REAL_TOOLS["nft"], "-f", "-"], input=rules)
    if proc.returncode != 0:
        raise RuntimeError(f"nft on {host}: {proc.stderr}")


# ---- certificates --------------------------------------------------------------------------------


def make_cert(path_prefix: Path, common_name: str, expired: bool) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sentinel lab")])
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start, end = ((now - dt.timedelta(days=400), now - dt.timedelta(days=35)) if expired
                  else (now - dt.timedelta(days=1), now + dt.timedelta(days=90)))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .sign(key, hashes.SHA256()))
    crt, pem = Path(f"{path_prefix}.crt"), Path(f"{path_prefix}.key")
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def tls10_supported() -> Optional[str]:
    """None if this Python/OpenSSL can serve TLS 1.0 (SECLEVEL=0), else why not."""
    if not getattr(ssl, "HAS_TLSv1", False):
        return "local OpenSSL was built without TLS 1.0"
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
    except (ValueError, ssl.SSLError) as exc:
        return f"local OpenSSL refuses TLS 1.0 even with SECLEVEL=0: {exc}"
    return None


# ---- listeners (run inside host namespaces) ---------------------------------------------------------

LOGIN_PAGE = (b"<html><head><title>Admin Console</title></head><body><form method=post action=/login>"
              b"<input name=user><input type=password name=pass><button>Login</button></form></body></html>")

SSH_KEXINIT_LISTS = [
    "diffie-hellman-group1-sha1,diffie-hellman-group14-sha1,curve25519-sha256",  # kex
    "ssh-rsa,ssh-dss",  # host key
    "aes128-cbc,3des-cbc,aes128-ctr", "aes128-cbc,3des-cbc,aes128-ctr",  # ciphers
    "hmac-md5,hmac-sha1-96,hmac-sha2-256", "hmac-md5,hmac-sha1-96,hmac-sha2-256",  # macs
    "none", "none", "", "",
]


def ssh_kexinit_packet() -> bytes:
    payload = bytes([20]) + os.urandom(16)
    for names in SSH_KEXINIT_LISTS:
        payload += struct.pack(">I", len(names)) + names.encode()
    payload += b"\x00" + b"\x00\x00\x00\x00"
    padding = 8 - ((len(payload) + 5) % 8)
    padding += 8 if padding < 4 else 0
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + b"\x00" * padding


def mysql_greeting() -> bytes:
    version = b"5.7.33-log"
    caps_lower = 0xF7FF & ~0x0800  # everything common but CLIENT_SSL
    body = (b"\x0a" + version + b"\x00" + struct.pack("<I", 42) + b"abcdefgh" + b"\x00" + struct.pack("<H", caps_lower)
            + b"\x21" + struct.pack("<H", 2) + struct.pack("<H", 0x8000 >> 0) + b"\x15" + b"\x00" * 10
            + b"ijklmnopqrst\x00" + b"mysql_native_password\x00")
    return len(body).to_bytes(3, "little") + b"\x00" + body


class _Handler(socketserver.BaseRequestHandler):
    kind = ""
    extra: list[str] = []
    tls_ctx: Optional[ssl.SSLContext] = None

    def handle(self):
        s = self.request
        s.settimeout(10)
        try:
            getattr(self, "serve_" + self.kind.replace("-", "_"))(s)
        except (OSError, ssl.SSLError, ValueError):
            pass

    def serve_http_login(self, s):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return
            data += chunk
        s.sendall(b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.29 (Ubuntu)\r\nContent-Type: text/html\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(LOGIN_PAGE) + LOGIN_PAGE)

    def serve_ftp(self, s):
        s.sendall(b"220 (vsFTPd 3.0.3)\r\n")
        f = s.makefile("rb")
        for line in f:
            cmd = line.decode("latin-1").strip().split(" ")[0].upper()
            if cmd == "USER":
                s.sendall(b"331 Please specify the password.\r\n")
            elif cmd == "PASS":
                s.sendall(b"530 Login incorrect.\r\n")
            elif cmd == "QUIT":
                s.sendall(b"221 Goodbye.\r\n")
                return
            else:
                s.sendall(b"530 Please login with USER and PASS.\r\n")

    def serve_ftp_anon(self, s):
        """vsftpd-like, anonymous logins accepted; every USER line is appended to the file extra[0], so a test
        sees whether (and which) login was tried."""
        s.sendall(b"220 (vsFTPd 3.0.3)\r\n")
        user = ""
        for line in s.makefile("rb"):
            cmd, _, arg = line.decode("latin-1").strip().partition(" ")
            cmd = cmd.upper()
            if cmd == "USER":
                user = arg
                with open(self.extra[0], "a", encoding="utf-8") as log:
                    log.write(f"USER {arg}\n")
                s.sendall(b"331 Please specify the password.\r\n")
            elif cmd == "PASS":
                s.sendall(b"230 Login successful.\r\n" if user == "anonymous" else b"530 Login incorrect.\r\n")
            elif cmd == "QUIT":
                s.sendall(b"221 Goodbye.\r\n")
                return
            else:
                s.sendall(b"530 Please login with USER and PASS.\r\n")

    def serve_ssh(self, s):
        s.sendall(b"SSH-2.0-OpenSSH_7.4\r\n")
        line = b""
        while not line.endswith(b"\n") and len(line) < 256:
            ch = s.recv(1)
            if not ch:
                return
            line += ch
        s.sendall(ssh_kexinit_packet())
        s.recv(4096)  # the client's KEXINIT, if any; then hang up as a real server would on a failed kex

    def serve_telnet(self, s):
        # IAC DO TTYPE, TSPEED, XDISPLOC, NEW-ENV
        s.sendall(bytes([255, 253, 24, 255, 253, 32, 255, 253, 35, 255, 253, 39]))
        time.sleep(0.05)
        s.sendall(b"\r\nUbuntu 18.04 LTS\r\nlab-h1 login: ")
        s.recv(1024)

    def serve_rsync(self, s):  # a protocol our probes do not know: only nmap -sV names it
        s.sendall(b"@RSYNCD: 31.0\n")
        s.recv(1024)

    def serve_mysql(self, s):
        s.sendall(mysql_greeting())
        s.recv(4096)

    def serve_redis(self, s):
        f = s.makefile("rb")
        while True:
            line = f.readline()
            if not line:
                return
            line = line.strip()
            if line.startswith(b"*"):
                args = []
                for _ in range(int(line[1:] or 0)):
                    f.readline()  # $len
                    args.append(f.readline().strip())
            else:
                args = line.split()
            if not args:
                continue
            cmd = args[0].upper()
            if cmd == b"PING":
                s.sendall(b"+PONG\r\n")
            elif cmd == b"INFO":
                body = b"# Server\r\nredis_version:6.0.16\r\nredis_mode:standalone\r\nos:Linux\r\n"
                s.sendall(b"$%d\r\n%s\r\n" % (len(body), body))
            elif cmd == b"QUIT":
                s.sendall(b"+OK\r\n")
                return
            else:
                s.sendall(b"-ERR unknown command '%s'\r\n" % cmd[:20].lower())

    def serve_tls(self, s):
        tls = self.tls_ctx.wrap_socket(s, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                return
            data += chunk
        page = b"<html><head><title>Portal</title></head><body>ok</body></html>"
        tls.sendall(b"HTTP/1.1 200 OK\r\nServer: nginx/1.14.0\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                    % len(page) + page)
        tls.close()


def _serve_snmp(port: int) -> None:
    from sentinel.checks.network.unauth import _ber, _ber_int, ber_read

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(65535)
        try:
            _, msg, _ = ber_read(data, 0)
            _, _, pos = ber_read(msg, 0)
            _, community, pos = ber_read(msg, pos)
            tag, pdu, _ = ber_read(msg, pos)
            if community != b"public" or tag != 0xA0:
                continue  # a real agent silently drops a wrong community
            _, rid, p = ber_read(pdu, 0)
            _, _, p = ber_read(pdu, p)
            _, _, p = ber_read(pdu, p)
            _, varbinds, _ = ber_read(pdu, p)
            _, vb, _ = ber_read(varbinds, 0)
            _, oid, _ = ber_read(vb, 0)
        except (IndexError, ValueError):
            continue
        value = _ber(0x04, b"Linux lab-h2 5.10.0-21-amd64 #1 SMP x86_64")
        varbind = _ber(0x30, _ber(0x06, oid) + value)
        resp_pdu = _ber(0xA2, _ber(0x02, rid) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
        sock.sendto(_ber(0x30, _ber_int(1) + _ber(0x04, community) + resp_pdu), peer)


def _serve(kind: str, port: int, args: list[str]) -> None:
    if kind == "snmp":
        _serve_snmp(port)
        return
    handler = type("H", (_Handler,), {"kind": "tls" if kind.startswith("tls") else kind, "extra": args})
    if kind.startswith("tls"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[0], args[1])
        if kind == "tls10":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.set_ciphers("ALL:@SECLEVEL=0")  # includes anonymous ECDH suites: a weak-cipher finding
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1
        handler.tls_ctx = ctx
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    server = socketserver.ThreadingTCPServer(("0.0.0.0", port), handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        threading.current_thread().name = f"netlab-{sys.argv[2]}"
        _serve(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    else:
        sys.exit("usage: python -m tests.netlab serve KIND PORT [ARGS]")


# ---- pytest fixture -------------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # the listeners run without pytest
    pytest = None

if pytest is not None:
    def need_lab(real_services: bool = False) -> None:
        """Skip the test unless the lab's tools (with `real_services`, also the real daemons) and nmap are
        there. In CI they are installed by tests/setup-machine.sh: a missing one is a failure, not a skip."""
        unavailable = pytest.fail if os.environ.get("CI") else pytest.skip
        why = lab_available() or (real_services_available() if real_services else None)
        if why:
            unavailable(why)
        from sentinel.checks.network.discovery import NmapMissing, nmap_path

        try:
            nmap_path()
        except NmapMissing as exc:
            unavailable(str(exc))

    @pytest.fixture(scope="module")
    def lab(tmp_path_factory):
        """A built lab with every listener running; torn down after the module, also on failure."""
        need_lab()
        work = tmp_path_factory.mktemp("netlab")
        the_lab = Lab(work)
        try:
            the_lab.build()
            expired = make_cert(work / "expired", "expired.lab", expired=True)
            valid = make_cert(work / "legacy", "legacy.lab", expired=False)
            for host, kind, port, extra in [
                ("h1", "ssh", 22, ()), ("h1", "telnet", 23, ()), ("h1", "ftp", 21, ()), ("h1", "http-login", 80, ()),
                ("h2", "mysql", 3306, ()), ("h2", "redis", 6379, ()), ("h2", "snmp", 161, ()),
                ("h3", "tls", 443, tuple(map(str, expired))), ("h3", "rsync", 7000, ()),
            ]:
                the_lab.serve(host, kind, port, *extra)
            the_lab.tls10_skip = tls10_supported()
            if the_lab.tls10_skip is None:
                the_lab.serve("h3", "tls10", 8443, *map(str, valid))
            yield the_lab
        finally:
            the_lab.close()
