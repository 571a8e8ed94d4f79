"""Issue 12's proof: a level-2 and a level-4 system each show only their own level's clauses in every output.

For each level: a host report of the shipped dengbao-l{2,4}-linux baseline on a fixture root, and a real network
scan (`sentinel scan --level N`, nmap and sentinel's probes in the lab's namespaces, tests/netlab.py) of lab
hosts with telnet, FTP, SSH, an HTTP login page and TLS. Both go into a store through the collector's own paths
(signed ingest, scan ingest; tests/evidence_seed.py); then every output is read back: the host report (JSON and
table), the network report (JSON and table), the system roll-up, /metrics and `sentinel export` (JSON, XLSX,
HTML). Every clause seen is compared with the catalogue's for its key at the system's level: where an output
names the key, clause and letter must be the key's; where it shows a clause and a letter with the item's text or
control point, they must be the catalogue's item of that number at that level, text and all; where it shows only
a clause number, it must be one of the level's control points, and no other level's section may appear.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from sentinel import catalogue, signing
from sentinel.baseline import load_baseline
from sentinel.collector import operations
from sentinel.collector.scan_ingest import begin_scan, finish_scan
from sentinel.engine import run_baseline
from sentinel.exporters.prometheus import make_registry, render
from sentinel.hostview import RootHost
from sentinel.network.engine import ScanReport
from sentinel.store.assessment import assess
from sentinel.store.snapshot import build_snapshot
from tests import evidence_seed as seed
from tests.netlab import lab  # noqa: F401  (module-scoped fixture)

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / "tests" / "fixtures" / "roots" / "debian12-default"
PORTS = "21,22,23,80,443"
CAT = catalogue.load()
# a clause of the standard as reports print it (section 6-9, part 1 or 2, class, control point)
CLAUSE = re.compile(r"(?<![\d.])([6-9])\.([12])\.(\d{1,2})\.(\d{1,2})(?![\d])")


class Seen:
    """Every clause an output shows, checked against the catalogue at one level."""

    def __init__(self, level: int):
        self.level = level
        self.controls = {c.clause for c in CAT.controls(level)}
        self.keys: set[str] = set()
        self.checked = 0

    def keyed(self, where: str, key: Any, clause: str, letter: str) -> None:
        assert key, f"{where}: {clause}.{letter} carries no catalogue key"
        want = CAT.item(key, self.level)  # KeyError: the level has no such item
        assert (clause, letter) == (want.clause, want.letter), \
            f"{where}: {key} shown as {clause}.{letter}, level {self.level} numbers it {want.ref}"
        self.keys.add(key)
        self.checked += 1

    def numbered(self, where: str, clause: str, letter: str, text: str) -> None:
        """A clause and letter shown with the item's text or control point name (zh or en)."""
        try:
            want = CAT.by_clause(clause, letter, self.level)
        except KeyError:
            raise AssertionError(f"{where}: level {self.level} has no item {clause}.{letter}") from None
        names = {want.text.zh, want.text.en, want.control_name.zh, want.control_name.en}
        assert any(n and n in text for n in names), \
            f"{where}: {clause}.{letter} shown with {text!r}, level {self.level}'s is {want.key} ({want.text.zh})"
        self.keys.add(want.key)
        self.checked += 1

    def exists(self, where: str, clause: str, letter: str) -> None:
        try:
            self.keys.add(CAT.by_clause(clause, letter, self.level).key)
        except KeyError:
            raise AssertionError(f"{where}: level {self.level} has no item {clause}.{letter}") from None
        self.checked += 1

    def control(self, where: str, clause: str) -> None:
        assert clause in self.controls, f"{where}: {clause} is not a control point of level {self.level}"
        self.checked += 1

    def text(self, where: str, text: str) -> int:
        """Every clause-like number in free text: the level's section, and a control point it has."""
        found = 0
        for m in CLAUSE.finditer(text):
            assert int(m.group(1)) == self.level + 5, \
                f"{where}: {m.group(0)} is a clause of level {int(m.group(1)) - 5}, not {self.level}"
            self.control(where, m.group(0))
            found += 1
        return found

    def tree(self, where: str, data: Any) -> None:
        """Every mapping in a JSON document that names a clause (with its key, when it has one)."""
        for path, node in _mappings(data, where):
            clause = node.get("clause")
            if not isinstance(clause, str) or not clause:
                continue
            letter = node.get("item") if isinstance(node.get("item"), str) else None
            if "key" in node:
                self.keyed(path, node["key"], clause, letter or "")
            elif letter and isinstance(node.get("text"), dict):
                self.numbered(path, clause, letter, json.dumps(node["text"], ensure_ascii=False))
            elif letter and len(letter) == 1:  # e.g. a high-risk finding: clause, letter, check title
                self.exists(path, clause, letter)
            else:
                self.control(path, clause)
        self.text(where, json.dumps(data, ensure_ascii=False))


def _mappings(data: Any, path: str) -> Iterator[tuple[str, dict]]:
    if isinstance(data, dict):
        yield path, data
        for k, v in data.items():
            yield from _mappings(v, f"{path}.{k}")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _mappings(v, f"{path}[{i}]")


def _host_report(level: int):
    rep = run_baseline(load_baseline(f"dengbao-l{level}-linux"), RootHost(str(ROOT)))
    return rep.model_copy(update={"host": rep.host.model_copy(update={"hostname": "web-1"})})


def _scan(the_lab, level: int) -> ScanReport:
    targets = [the_lab.hosts["h1"], the_lab.hosts["h3"]]
    proc = the_lab.sentinel(["scan", *targets, "--scope", the_lab.net, "--ports", PORTS, "--level", str(level),
                         "--format", "json"], timeout=240)
    assert proc.returncode == 1 and proc.stdout, proc.stderr[-2000:]  # findings: telnet, ftp, ...
    return ScanReport.model_validate_json(proc.stdout)


def _table(printer, report, lang: str) -> str:
    buf = io.StringIO()
    printer(report, lang, file=buf)
    return buf.getvalue()


@pytest.fixture(scope="module", params=[2, 4], ids=["level2", "level4"])
def world(request, lab, tmp_path_factory):  # noqa: F811
    level = request.param
    tmp = tmp_path_factory.mktemp(f"levels-{level}")
    s = seed.new_store(tmp)
    name = f"system-l{level}"
    seed.create_system(s, name=name, level=level, sg=level, ag=level)
    host = _host_report(level)
    at = datetime.now(timezone.utc) - timedelta(minutes=5)
    seed.enroll(s, "web-1", system=name)
    seed.ingest(s, "web-1", host, at)
    net = _scan(lab, level)
    with s.db.session() as session:
        system_id = operations.system_by_name(session, name).id
    claim = begin_scan(s.db, system_id=system_id, triggered_by="cli", actor="cli:test", targets=net.targets,
                       full_scope=True, scope=net.scope.model_dump(mode="json"), args={},
                       zone_baseline=net.zone_baseline, zone=None, scanner_zone=None,
                       stale_after=timedelta(hours=3), now=at + timedelta(seconds=10))
    finish_scan(s.db, claim.run_id, net, now=at + timedelta(seconds=60))
    key_file = tmp / "collector.key"
    signing.save_private_key(s.key, key_file)
    yield {"level": level, "store": s, "name": name, "system_id": system_id, "host": host, "net": net,
           "tmp": tmp, "key": key_file}
    s.db.dispose()


def test_host_report(world):
    from sentinel import render

    seen = Seen(world["level"])
    rep = world["host"]
    assert rep.baseline.level == world["level"]
    seen.tree("host report", rep.model_dump(mode="json"))
    for item in rep.items:  # every item of the report by its key, once
        assert item.key is not None
    assert len({i.key for i in rep.items}) == len(rep.items)
    for lang in ("zh", "en"):
        assert seen.text(f"host table ({lang})", _table(render.print_table, rep, lang))
        assert seen.text(f"host csv ({lang})", render.to_csv(rep, lang))
        assert seen.text(f"host junit ({lang})", render.to_junit(rep, lang))
    assert seen.checked > len(rep.items)


def test_network_report(world):
    from sentinel.cli_scan_oneshot import _print_table

    level, net = world["level"], world["net"]
    seen = Seen(level)
    assert net.level == level
    seen.tree("scan report", net.model_dump(mode="json"))
    for lang in ("zh", "en"):
        assert seen.text(f"scan table ({lang})", _table(_print_table, net, lang))
    assert net.items and all(i.key for i in net.items)
    lacking = {n.key for n in net.not_scored}
    # what the level lacks is said, never numbered: level 2 has no 数据保密性 / 通信传输 b / 两种以上鉴别技术
    assert all(not CAT.has(k, level) for k in lacking)
    if level == 2:
        assert {"ces.confidentiality.transit", "cns.transmission.confidentiality"} <= lacking
        assert all(n.why.zh and n.why.en for n in net.not_scored)
        assert "未计分" in _table(_print_table, net, "zh") and "not scored" in _table(_print_table, net, "en")
    else:
        assert net.not_scored == []
        assert "ces.confidentiality.transit" in {i.key for i in net.items}


def test_system_rollup(world):
    seen = Seen(world["level"])
    with world["store"].db.read() as conn:
        a = assess(conn, [world["system_id"]])[world["system_id"]]
    assert a.level == world["level"] and a.complete, a.errors
    seen.tree("assessment", a.model_dump(mode="json"))
    keys = [i.key for i in a.items]
    assert None not in keys and len(keys) == len(set(keys)), "each requirement once, by key"
    # host and network meet on shared requirements (远程管理防窃听, 关闭高危端口 ...) as one item each
    assert {"ces.auth.remote-eavesdrop", "ces.intrusion.services-ports"} <= set(keys)
    assert a.network is not None and a.network.items


def test_metrics(world):
    seen = Seen(world["level"])
    s = world["store"]
    body, _ = render(make_registry(lambda: build_snapshot(s.db, per_check=True), per_check=True))
    text = body.decode()
    by_check = {r.check_id: r for r in world["host"].results}
    series = 0
    for line in text.splitlines():
        m = re.search(r'clause="([^"]*)"', line)
        if not m or line.startswith("#"):
            continue
        series += 1
        check = re.search(r'check="([^"]*)"', line)
        if check:  # a per-check series: the clause of that check's item at the level
            r = by_check[check.group(1)]
            assert r.key and CAT.item(r.key, seen.level).clause == m.group(1), line
            seen.control(f"metrics {check.group(1)}", m.group(1))
        else:
            seen.control(f"metrics {line.split('{')[0]}", m.group(1))
    assert series > 0
    seen.text("metrics", text)


def _export(world, fmt: str) -> bytes:
    out = world["tmp"] / f"evidence.{fmt}"
    proc = subprocess.run([sys.executable, "-m", "sentinel.cli", "export", "--system", world["name"], "--format", fmt,
                           "-o", str(out), "--key", str(world["key"]), "--database-url", world["store"].url,
                           "--state-dir", str(world["tmp"])],
                          capture_output=True, text=True, cwd=str(REPO), timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out.read_bytes()


def test_evidence_exports(world):
    seen = Seen(world["level"])
    data = json.loads(_export(world, "json"))
    seen.tree("export json", data)
    wb = load_workbook(io.BytesIO(_export(world, "xlsx")))
    rows = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows(values_only=True):
            cells = [str(c) for c in row if c is not None]
            line = " | ".join(cells)
            seen.text(f"xlsx {ws.title}", line)
            # item rows: 安全控制点编号, 安全控制点, 测评项 ("a) text")
            for i, c in enumerate(cells[:-2]):
                if CLAUSE.fullmatch(c) and re.match(r"^[a-z]\) ", cells[i + 2]):
                    seen.numbered(f"xlsx {ws.title}", c, cells[i + 2][0], cells[i + 1] + cells[i + 2])
                    rows += 1
    assert rows > 0, "the workbook's item rows were not found"
    html = _export(world, "html").decode("utf-8")
    assert seen.text("export html", re.sub(r"<[^>]+>", " ", html))
    assert seen.checked > rows
