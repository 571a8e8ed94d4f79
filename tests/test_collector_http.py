"""A real collector process (`sentinel collector`, uvicorn) over TLS on loopback, set up with the CLI."""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sentinel import signing
from sentinel.cli import main
from tests.collector_helpers import enroll_body, envelope, install_test_baselines, make_report, sign, sixty_results
from tests.process_helpers import terminate

pytest_plugins = ["tests.dbfixtures"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(capsys, *args: str) -> str:
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, f"sentinel {' '.join(args)} -> {code}: {out.err}"
    return out.out.strip()


@pytest.fixture
def collector(store_url, tmp_path, capsys):
    state = tmp_path / "state"
    common = ["--state-dir", str(state), "--database-url", store_url]
    cli(capsys, "db", "upgrade", *common)
    cli(capsys, "collector", "init", "--state-dir", str(state), "--name", "localhost", "--name", "127.0.0.1")
    cli(capsys, "department", "add", "health", "--title", "卫健委", *common)
    cli(capsys, "address-plan", "add", "10.8.0.0/16", "--department", "health", *common)
    cli(capsys, "system", "add", "his", "--department", "health", "--level", "3", "--s-grade", "3",
        "--a-grade", "2", "--zone", "core", "--scope", "10.8.0.0/16", *common)
    enroll_token = cli(capsys, "enroll-token", "create", "--system", "his", *common)
    api_token = cli(capsys, "token", "create", "--name", "viewer", "--role", "readonly", "--department", "health",
                    *common)
    install_test_baselines(state)  # site baselines the collector judges the test reports by
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sentinel.cli", "collector", *common, "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                    pytest.fail(f"collector did not start: {out}")
                time.sleep(0.1)
        yield {"url": f"https://127.0.0.1:{port}", "ca": state / "tls" / "ca.crt", "enroll": enroll_token,
               "api": api_token, "proc": proc}
    finally:
        terminate(proc, 10)


def test_tls_round_trip(collector):
    pinned = ssl.create_default_context(cafile=str(collector["ca"]))
    with httpx.Client(base_url=collector["url"], verify=pinned, trust_env=False, timeout=10) as http:
        assert http.get("/api/v1/health").json() == {"status": "ok"}
        key = signing.generate_key()
        r = http.post("/api/v1/agent/enroll", json=enroll_body(http, collector["enroll"], key, "his-app-1"))
        assert r.status_code == 201, r.text
        agent_id = r.json()["agent_id"]
        raw, headers = sign(key, envelope(agent_id, make_report(sixty_results(), hostname="his-app-1")))
        r = http.post("/api/v1/agent/reports", content=raw, headers=headers)
        assert r.status_code == 202, r.text
        run_id = r.json()["run_id"]
        assert http.post("/api/v1/agent/reports", content=raw, headers=headers).status_code == 200
        auth = {"Authorization": f"Bearer {collector['api']}"}
        runs = http.get("/api/v1/runs", headers=auth).json()
        assert [x["id"] for x in runs] == [run_id]
        assert len(http.get(f"/api/v1/runs/{run_id}/results", headers=auth).json()) == 60
        system = http.get("/api/v1/systems", headers=auth).json()[0]
        assert system["label"] == "S3A2" and system["scan_scope"] == ["10.8.0.0/16"] and system["zones"] == ["core"]
    # a client that does not trust the collector's CA cannot talk to it
    with httpx.Client(base_url=collector["url"], verify=ssl.create_default_context(), trust_env=False) as other:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            other.get("/api/v1/health")


def test_plain_http_only_on_loopback(tmp_path, capsys):
    state = tmp_path / "s"
    assert main(["collector", "--state-dir", str(state), "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "collector init" in capsys.readouterr().err
    assert main(["collector", "--state-dir", str(state), "--tls-cert", str(tmp_path / "x.crt")]) == 2
    assert "together" in capsys.readouterr().err
    assert not Path(state / "sentinel.db").exists()
