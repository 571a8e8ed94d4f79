"""The fast JSON path agrees with the standard library on the oldest orjson that setup.cfg allows, not only on
the locked (newest) one: tests/test_collector_fastjson.py runs again in a child interpreter that imports the
oldest allowed release, installed from the package index into a private directory."""
from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _orjson_floor() -> str:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    for line in cfg["options"]["install_requires"].splitlines():
        m = re.fullmatch(r"orjson\s*>=\s*([0-9.]+)\s*(,.*)?", line.strip())
        if m:
            return m.group(1)
    raise AssertionError("setup.cfg names no lower bound for orjson")


@pytest.fixture(scope="module")
def oldest_orjson(tmp_path_factory) -> tuple[str, Path]:
    version = _orjson_floor()
    target = tmp_path_factory.mktemp(f"orjson-{version}")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--only-binary", ":all:",
                           "--disable-pip-version-check", "--target", str(target), f"orjson=={version}"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return version, target


def test_fastjson_agrees_on_the_oldest_allowed_orjson(oldest_orjson):
    version, target = oldest_orjson
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(ROOT)]))
    seen = subprocess.run([sys.executable, "-c", "import orjson; print(orjson.__version__)"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert Version(seen.stdout.strip()) == Version(version), seen.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                          str(ROOT / "tests" / "test_collector_fastjson.py")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stdout[-4000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout
