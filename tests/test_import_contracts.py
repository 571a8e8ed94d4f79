"""The import contracts of setup.cfg ([importlinter]) hold: `lint-imports` on the installed layout (checks/ and
exporters/ at sentinel.checks and sentinel.exporters, laid out as .ci/mypy does), and a module that crosses
a layer breaks them."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lay_out(tree: Path) -> Path:
    loader = importlib.machinery.SourceFileLoader("ci_mypy", str(REPO / ".ci" / "mypy"))
    spec = importlib.util.spec_from_loader("ci_mypy", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    module.TREE = tree  # a tree of its own: .ci/mypy may be using build/typecheck at the same time
    module.lay_out(module.package_dirs())
    return tree


def _lint(tree: Path) -> subprocess.CompletedProcess:
    binary = Path(sys.executable).with_name("lint-imports")
    if not binary.exists():
        pytest.fail(f"{binary} is missing: install the lint extra (pip install -e '.[lint]'; README command 2 does)")
    # grimp finds `sentinel` on sys.path, which lint-imports starts with its working directory
    return subprocess.run([str(binary), "--no-cache", str(REPO / "setup.cfg")], cwd=tree, capture_output=True,
                          text=True, timeout=300)


def test_the_layers_hold(tmp_path):
    proc = _lint(_lay_out(tmp_path / "tree"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout and "Module 'sentinel." not in proc.stdout


def test_a_core_module_importing_an_exporter_breaks_them(tmp_path):
    tree = _lay_out(tmp_path / "tree")
    (tree / "sentinel" / "crossing.py").write_text("from sentinel.exporters import prometheus  # crosses\n")
    proc = _lint(tree)
    assert proc.returncode != 0
    assert "sentinel.crossing -> sentinel.exporters.prometheus" in proc.stdout, proc.stdout
