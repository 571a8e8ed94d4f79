"""Packaging: the repository's folders install under the `sentinel` import namespace (setup.cfg package_dir).

setup.cfg lists its packages by hand (setuptools cannot find packages through a package_dir mapping), so a new
package folder that is not listed would be missing from every non-editable install; this keeps the list true. A
wheel built from the tree must hold the mapped packages and their data, and no global `checks`/`exporters`.
"""
from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _options() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    return cfg["options"]


def _mapping() -> dict[str, str]:
    rows = [line.split("=") for line in _options()["package_dir"].strip().splitlines()]
    return {name.strip(): folder.strip() for name, folder in rows}


def test_every_package_folder_is_listed():
    listed = set(_options()["packages"].split())
    found = set()
    for name, folder in _mapping().items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join((name, *rel.parts)) if rel.parts else name)
    assert listed == found


def test_wheel_holds_the_namespace_and_its_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("sentinel_dengbao-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"sentinel"}
    for expected in ("sentinel/network/engine.py", "sentinel/checks/network/probes.py",
                     "sentinel/baselines/network/checks.yaml", "sentinel/exporters/evidence/templates/report.html.j2",
                     "sentinel/baselines/dengbao-l3-linux.yaml", "sentinel/store/migrations/script.py.mako",
                     "sentinel/baselines/domestic/products.yaml"):
        assert expected in names
    assert any(n.startswith("sentinel/baselines/catalogue/") and n.endswith(".yaml") for n in names)
