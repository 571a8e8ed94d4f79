"""Discovery of 测评对象 (sentinel/discovery.py, issue 15): on a fixture root laid out as Debian packages it,
and on this host with a real redis-server and nginx the test starts on loopback.

The fixture root (tests/fixtures/objects/debian12-objects) holds: redis-server with two instances (redis.conf
port 6379, redis-cache.conf whose last `port` is 6380) and its unit enabled, mariadb-server whose option files
(my.cnf's !includedir) set port 3307 in mariadb.conf.d/50-server.cnf,
postgresql-15 with a cluster on port 5433 (a commented `#port = 5432` under it), nginx, and only the client or
common packages of Apache (apache2-utils) and Tomcat (tomcat10-common, removed with its config kept): no server.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sentinel.discovery import discover, short_version
from sentinel.hostview import LiveHost, RootHost
from tests.obs_support import LOOPBACK, free_port
from tests.waits import until

ROOT = Path(__file__).parent / "fixtures" / "objects" / "debian12-objects"


def _need(*paths: str) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:  # tests/setup-machine.sh installs them: missing in CI is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{', '.join(missing)} not installed "
                                                               "(tests/setup-machine.sh)")


def test_fixture_root_objects_and_baselines():
    found = discover(RootHost(str(ROOT)), 3, shipped=["dengbao-l3-linux", "dengbao-l3-redis"])
    got = [(d.object.kind, d.object.instance, d.object.name, d.object.port, d.object.config, d.baseline)
           for d in found]
    assert got == [
        ("mysql", "3307", "db01 MariaDB 10.11 (3307)", 3307, "/etc/mysql/my.cnf", None),
        ("postgresql", "5433", "db01 PostgreSQL 15.8 (5433)", 5433, "/etc/postgresql/15/main/postgresql.conf", None),
        ("redis", "6379", "db01 Redis 7.0 (6379)", 6379, "/etc/redis/redis.conf", "dengbao-l3-redis"),
        ("redis", "6380", "db01 Redis 7.0 (6380)", 6380, "/etc/redis/redis-cache.conf", "dengbao-l3-redis"),
        ("nginx", "/etc/nginx/nginx.conf", "db01 Nginx 1.22 (/etc/nginx/nginx.conf)", None, "/etc/nginx/nginx.conf",
         None),
    ]
    assert all(d.running is None for d in found)  # an offline root: not knowable
    assert [d.wanted_baseline for d in found][:3] == ["dengbao-l3-mysql", "dengbao-l3-postgresql", "dengbao-l3-redis"]
    assert "/etc/mysql/mariadb.conf.d/50-server.cnf:6: port 3307" in found[0].found_by
    redis = found[2].found_by
    assert "package redis-server 5:7.0.15-1~deb12u1 (/var/lib/dpkg/status)" in redis
    assert "systemd unit redis-server.service enabled" in redis and "/etc/redis/redis.conf: port 6379" in redis
    # the level names the baseline
    assert {d.wanted_baseline for d in discover(RootHost(str(ROOT)), 2)} >= {"dengbao-l2-redis", "dengbao-l2-nginx"}


def test_an_os_baseline_fixture_root_has_no_objects(fixture_root):
    assert discover(RootHost(str(fixture_root("debian12-default"))), 3) == []
    assert discover(RootHost(str(fixture_root("rocky9-default"))), 3) == []  # an rpm database


def test_short_version():
    assert short_version("1:10.11.6-0+deb12u1") == "10.11"
    assert short_version("5:7.0.15-1~deb12u1") == "7.0"
    assert short_version("15") == "15"
    assert short_version("git-abc") is None


@pytest.fixture
def private_dir():
    d = Path(tempfile.mkdtemp(prefix="sntl-objects-"))
    d.chmod(0o755)  # nginx's workers run as nobody
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((LOOPBACK, port)) == 0


def test_live_redis_and_nginx_started_here_are_found(private_dir):
    _need("/usr/bin/redis-server", "/usr/sbin/nginx")
    redis_port, nginx_port = free_port(), free_port()
    redis = subprocess.Popen(["/usr/bin/redis-server", "--port", str(redis_port), "--bind", LOOPBACK, "--save", "",
                              "--appendonly", "no", "--dir", str(private_dir)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conf = private_dir / "nginx.conf"
    conf.write_text(f"daemon off;\npid {private_dir}/nginx.pid;\nerror_log {private_dir}/error.log;\n"
                    f"events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {private_dir};\n"
                    f"  server {{ listen {LOOPBACK}:{nginx_port}; return 204; }}\n}}\n", encoding="utf-8")
    nginx = subprocess.Popen(["/usr/sbin/nginx", "-c", str(conf), "-p", str(private_dir)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(lambda: _listening(redis_port), f"redis-server on port {redis_port}", timeout=20)
        until(lambda: _listening(nginx_port), f"nginx on port {nginx_port}", timeout=20)
        # what redis-cli says the server is: the port discovery must name
        info = subprocess.run(["redis-cli", "-h", LOOPBACK, "-p", str(redis_port), "CONFIG", "GET", "port"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.split()
        assert info == ["port", str(redis_port)]
        found = {(d.object.kind, d.object.instance): d for d in discover(LiveHost(), 3)}
        mine = found[("redis", str(redis_port))]
        assert mine.running is True and mine.object.port == redis_port
        assert any(f"(pid {redis.pid}) listening on {LOOPBACK}:{redis_port}" in f for f in mine.found_by)
        assert mine.object.name.endswith(f"({redis_port})") and " Redis " in mine.object.name
        web = found[("nginx", str(conf))]
        assert web.running is True and web.object.config == str(conf)
        assert any(f"listening on {LOOPBACK}:{nginx_port}" in f for f in web.found_by)
    finally:
        _stop(redis)
        _stop(nginx)
    time.sleep(0.2)
    # once stopped, its instance is gone (what is left is the package's own configuration, if any)
    assert ("redis", str(redis_port)) not in {(d.object.kind, d.object.instance) for d in discover(LiveHost(), 3)}
