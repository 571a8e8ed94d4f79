"""README's deployment walkthrough, run as written: its ```sh block(s) are read from README.md here, so a change
to the README changes what this test runs.

Loopback only: the collector listens with TLS on 127.0.0.2, the "second host" is a second state directory on
this machine, and the only scan target is a TCP listener this test starts on 127.0.0.3 (its port alone is
scanned). No secret is echoed: the shell prints each command as written, before expansion.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTION = "## Deployment walkthrough"
COLLECTOR_ADDR = "127.0.0.2"
TARGET_ADDR = "127.0.0.3"


def walkthrough_script(text: str) -> str:
    """The ```sh blocks of the walkthrough section, in order, joined."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else len(text)]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)
    assert blocks, f"README.md: no ```sh block under {SECTION!r}"
    return "\n".join(blocks)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Listener:
    """A tiny TCP service on a loopback address: the one thing the walkthrough's scan may find."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.sendall(b"hello from the walkthrough test\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def test_the_walkthrough_names_every_step():
    script = walkthrough_script(README.read_text(encoding="utf-8"))
    for step in ("sentinel collector init", "sentinel db upgrade", "sentinel collector --host",
                 "sentinel department add", "sentinel address-plan add", "sentinel system add",
                 "sentinel enroll-token create", "sentinel enroll ", "--ca ", "sentinel agent",
                 "sentinel system scan-schedule", "/scans", "sentinel scan", "/metrics", "promtool check config",
                 "sentinel export", "sentinel key show", "sentinel verify", "--pubkey", "collector.key"):
        assert step in script, f"the README walkthrough lost the step {step!r}"


@pytest.mark.skipif(not all(shutil.which(t) for t in ("nmap", "promtool", "openssl", "curl")),
                    reason="the walkthrough needs nmap, promtool, openssl and curl (tests/setup-machine.sh)")
def test_the_readme_walkthrough_runs(tmp_path):
    script = walkthrough_script(README.read_text(encoding="utf-8"))
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "deploy", work / "deploy")  # step 6 reads deploy/ as from a checkout
    # each command as written (BASH_COMMAND is the text before expansion: no token reaches the output)
    header = "set -euo pipefail\ntrap 'printf \"+ %s\\n\" \"$BASH_COMMAND\" >&2' DEBUG\n"
    (work / "walkthrough.sh").write_text(header + script, encoding="utf-8")
    listener = Listener(TARGET_ADDR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # this venv's `sentinel`
        "COLLECTOR_ADDR": COLLECTOR_ADDR, "COLLECTOR_PORT": str(_free_port(COLLECTOR_ADDR)),
        "SENTINEL_STATE_DIR": str(tmp_path / "collector-host"),
        "AGENT_STATE_DIR": str(tmp_path / "agent-host" / "agent"),
        "SCAN_TARGET": TARGET_ADDR, "SCAN_SCOPE": f"{TARGET_ADDR}/32", "SCAN_PORTS": str(listener.port),
        "PROMETHEUS_DIR": str(tmp_path / "prometheus-host"), "no_proxy": "*", "NO_PROXY": "*",
    })
    log = tmp_path / "walkthrough.log"  # a file, not a pipe: the background collector would hold a pipe open
    with open(log, "w") as sink:
        proc = subprocess.Popen(["bash", "walkthrough.sh"], cwd=work, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        proc.wait(timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the walkthrough did not finish:\n{log.read_text()[-4000:]}")
    finally:
        try:  # the collector it started in the background, and anything else left in its session
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        listener.close()
    out = log.read_text()
    assert proc.returncode == 0, f"the README walkthrough failed (last command is the one marked +):\n{out[-6000:]}"

    for secret_file in (work / "enroll-token", work / "admin-token", tmp_path / "collector-host" / "metrics-token"):
        secret = secret_file.read_text().strip()
        assert len(secret) >= 16 and secret not in out, f"{secret_file}: the secret reached the output"
    # the second host enrolled and reported; the collector stored its run
    assert (tmp_path / "agent-host" / "agent" / "agent.json").is_file()
    assert re.search(r"^sentinel_host_score\{.*system=\"budget\"", out, flags=re.M), out[-3000:]
    # Prometheus's configuration points at this collector with its CA and token, and promtool accepted it
    prom = (tmp_path / "prometheus-host" / "prometheus.yml").read_text()
    assert f"{COLLECTOR_ADDR}:{env['COLLECTOR_PORT']}" in prom and "SUCCESS" in out
    # the collector's scan is stored and in the evidence: the network is a 测评对象 of the export
    assert "no succeeded network scan" not in out
    # the one-shot scan found the listener, and nothing else was scanned
    scan = (work / "scan.json").read_text()
    assert f'"{TARGET_ADDR}"' in scan and str(listener.port) in scan
    # a signed bundle that verifies against the public key `sentinel key show` gave
    with zipfile.ZipFile(work / "budget-evidence.zip") as bundle:
        assert bundle.namelist()
    assert "BEGIN PUBLIC KEY" in (work / "collector-public.pem").read_text()
    assert "INTACT: budget-evidence.zip (system budget)" in out and "signature valid (pinned key" in out
