"""The collector's config file (issue 11: one state directory, one config file, an environment variable):
flags > SENTINEL_COLLECTOR_* > the file (--config, SENTINEL_CONFIG, /etc/sentinel/collector.yaml) > defaults,
bad values named by file:line, and `sentinel up` and the admin commands finding the file's state directory.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.collector.settings import (
    CollectorConfigError,
    CollectorSettings,
    config_file_in_use,
    load_collector_settings,
    setting_origin,
)

from .test_agent_runner import BASELINE

SENTINEL = [sys.executable, "-m", "sentinel.cli"]
VARS = ("SENTINEL_STATE_DIR", "SENTINEL_COLLECTOR_STATE_DIR", "SENTINEL_AGENT_STATE_DIR",
        "SENTINEL_COLLECTOR_DATABASE_URL", "SENTINEL_COLLECTOR_PORT", "SENTINEL_CONFIG")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in VARS:
        monkeypatch.delenv(name, raising=False)


def _env(**extra: str) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in VARS}, **extra}


def _run(args, env: dict, timeout: float = 120):
    return subprocess.run(SENTINEL + args, capture_output=True, text=True, timeout=timeout, env=env)


def _config(tmp_path: Path, text: str) -> Path:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "collector.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_below_environment_below_flags(tmp_path, monkeypatch):
    path = _config(tmp_path, f"state_dir: {tmp_path / 'from-file'}\nport: 9001\nscans: true\n")
    s = load_collector_settings(path)
    assert (s.state_dir, s.port, s.scans) == (tmp_path / "from-file", 9001, True)
    assert setting_origin(s, "state_dir") == f"{path}:1"
    monkeypatch.setenv("SENTINEL_COLLECTOR_PORT", "9002")
    assert load_collector_settings(path).port == 9002
    assert load_collector_settings(path, port=9003).port == 9003
    s = load_collector_settings(path, state_dir=tmp_path / "flag")
    assert s.state_dir == tmp_path / "flag" and setting_origin(s, "state_dir") is None
    # the file beats SENTINEL_STATE_DIR (that is only the default of state_dir)
    monkeypatch.setenv("SENTINEL_STATE_DIR", str(tmp_path / "state-env"))
    assert load_collector_settings(path).state_dir == tmp_path / "from-file"


def test_sentinel_config_names_the_file_also_for_a_bare_settings_object(tmp_path, monkeypatch):
    path = _config(tmp_path, "port: 9100\n")
    assert config_file_in_use() in (None, Path("/etc/sentinel/collector.yaml"))
    monkeypatch.setenv("SENTINEL_CONFIG", str(path))
    assert config_file_in_use() == path
    assert load_collector_settings().port == 9100
    assert CollectorSettings().port == 9100  # the multi-worker factory builds its settings this way
    assert load_collector_settings(_config(tmp_path / "other", "port: 9200\n")).port == 9200  # --config wins


@pytest.mark.parametrize("text, expected", [
    ("state_dir: /tmp/x\nport: 70000\n", "collector.yaml:2: port: Input should be less than or equal to 65535"),
    ("host: 127.0.0.1\n\nscan_rat: 5\n", "collector.yaml:3: scan_rat: not a collector setting"),
    ("port: [1, 2\nhost: x\n", "collector.yaml:2: invalid YAML"),
    ("port: 1\x07\n", "collector.yaml: invalid YAML: unacceptable character #x0007"),  # PyYAML gives no line
    ("- port: 1\n", "collector.yaml:1: expected a mapping of settings"),
    ("log_level: loud\n", "collector.yaml:1: log_level: Input should be"),
])
def test_a_bad_file_is_named_with_its_line(tmp_path, text, expected):
    path = _config(tmp_path, text)
    with pytest.raises(CollectorConfigError) as err:
        load_collector_settings(path)
    assert str(err.value).startswith(str(path)), err.value
    assert expected in str(err.value)


def test_a_bad_value_from_a_variable_or_a_flag_names_that(tmp_path, monkeypatch):
    path = _config(tmp_path, "port: 9001\n")
    monkeypatch.setenv("SENTINEL_COLLECTOR_PORT", "0")
    with pytest.raises(CollectorConfigError, match=r"^SENTINEL_COLLECTOR_PORT: port: "):
        load_collector_settings(path)
    with pytest.raises(CollectorConfigError, match=r"^--port: port: "):
        load_collector_settings(path, port=70000)


def test_a_missing_config_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL_CONFIG", str(tmp_path / "none.yaml"))
    with pytest.raises(CollectorConfigError, match="none.yaml: no such config file .from SENTINEL_CONFIG"):
        load_collector_settings()


def test_commands_look_where_the_file_says_and_say_so(tmp_path):
    state = tmp_path / "file-state"
    path = _config(tmp_path, f"# the collector\nstate_dir: {state}\n")
    proc = _run(["department", "list"], _env(SENTINEL_CONFIG=str(path), SENTINEL_STATE_DIR=str(tmp_path / "o")))
    assert proc.returncode == 2
    assert f"no sentinel database at {state / 'sentinel.db'}" in proc.stderr
    assert f"from state_dir in {path}:2" in proc.stderr
    bad = _run(["collector", "--config", str(_config(tmp_path, "port: 70000\n"))], _env())
    assert bad.returncode == 2 and f"{tmp_path / 'collector.yaml'}:1: port:" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_up_and_the_admin_commands_share_the_file_state_dir(tmp_path):
    state = tmp_path / "file-state"
    path = _config(tmp_path, f"state_dir: {state}\n")
    env = _env(SENTINEL_CONFIG=str(path))
    quick = tmp_path / "quick.yaml"
    quick.write_text(BASELINE % "", encoding="utf-8")
    up = _run(["up", "--once", "--baseline", str(quick), "--lang", "en"], env, timeout=240)
    assert up.returncode in (0, 1), up.stderr
    assert (state / "sentinel.db").is_file() and (state / "agent" / "agent.json").is_file()
    listed = _run(["department", "list"], env)
    assert listed.returncode == 0 and "\tlocal\t" in listed.stdout, listed.stderr
    bad = _run(["up", "--once", "--config", str(_config(tmp_path / "other", "bogus: 1\n"))], env)
    assert bad.returncode == 2 and "collector.yaml:1: bogus: not a collector setting" in bad.stderr
