"""Evidence bundles end to end through the real store (SQLite): export, verify, and tampering of every
kind detected and named."""
from __future__ import annotations

import base64
import json
import struct
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from sentinel import signing
from sentinel.cli import main
from sentinel.evidence.collect import collect
from sentinel.evidence.digest import canonical_bytes, chain_hash, sha256_hex
from sentinel.evidence.model import EvidenceError, Manifest, SystemEvidence
from sentinel.evidence.trust import ssh_signature
from sentinel.evidence.verify import verify_bundle
from sentinel.exporters.evidence.bundle import write_bundle
from sentinel.store.models import System
from tests import evidence_seed as seed


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evidence-world")
    s = seed.seed_world(tmp)
    yield s, tmp
    s.db.dispose()


@pytest.fixture(scope="module")
def evidence(world) -> SystemEvidence:
    s, _ = world
    with s.db.session() as session:
        return collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))


@pytest.fixture(scope="module")
def bundle(world, evidence) -> Path:
    s, tmp = world
    out = tmp / "bundle.zip"
    write_bundle(evidence, out, s.key)
    return out


# ---- helpers -------------------------------------------------------------------------------------


def read_all(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_all(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def resign(files: dict[str, bytes], key) -> dict[str, bytes]:
    """What someone holding `key` would do after editing: rehash everything and sign the new manifest."""
    m = json.loads(files["manifest.json"])
    m["files"] = [{"path": p, "sha256": sha256_hex(d), "size": len(d)}
                  for p, d in sorted(files.items())
                  if p not in ("manifest.json", "manifest.sig", "manifest.sig.bin", "manifest.sshsig")]
    files["manifest.json"] = json.dumps(m, ensure_ascii=False, indent=1).encode()
    sig = signing.sign(key, files["manifest.json"])
    files["manifest.sig"], files["manifest.sig.bin"] = (sig + "\n").encode(), base64.b64decode(sig)
    files["manifest.sshsig"] = ssh_signature(key, files["manifest.json"]).encode()
    return files


def kinds(report) -> set[str]:
    return {p.kind for p in report.problems}


def edit_evidence(files: dict[str, bytes], fn) -> dict[str, bytes]:
    data = json.loads(files["evidence.json"])
    fn(data)
    files["evidence.json"] = json.dumps(data, ensure_ascii=False).encode()
    return files


# ---- contents ------------------------------------------------------------------------------------


def test_digest_and_chain_match_the_collectors(evidence):
    from sentinel.collector import ingest

    body = {"b": [1, "二"], "a": {"z": None, "y": 1.5}}
    assert sha256_hex(canonical_bytes(body)) == ingest.canonical_digest(body)
    assert chain_hash("0" * 64, "ab" * 32) == ingest.chain("0" * 64, "ab" * 32)


def test_collect_reads_the_seeded_store(evidence):
    ev = evidence
    assert ev.system.label == "S3A2" and ev.system.department == "hrss" and ev.system.level == 3
    assert [(o.kind, o.name) for o in ev.objects] == [("host", "db-1"), ("host", "web-1"), ("zone", "network")]
    net = ev.objects[2].reports[0]
    assert net.scan_run_id == 1 and net.run_id is None and net.baseline.id == "zone-egov-default"
    assert {r.high_risk for r in net.results if r.status.value == "fail"} >= {"6.4.1.2", "6.4.3.1"}
    assert len(ev.chain.entries) == 4 and ev.chain.anchor == "0" * 64
    # the latest run per host is the record: web-1 was fixed on day two, db-1 was not
    web = next(o for o in ev.objects if o.name == "web-1").reports[0]
    db = next(o for o in ev.objects if o.name == "db-1").reports[0]
    assert web.run_id == 3 and db.run_id == 4
    assert {(i.clause, i.item): i.verdict.value for i in db.items}["8.1.4.2", "b"] == "不符合"
    # the system figures are the collector's own system assessment (scoring.system_items + summarize)
    assert ev.summary.high_risk == 3 and ev.summary.conclusion == "差"
    assert {(i.clause, i.item): i.verdict.value for i in ev.items} == {
        ("8.1.4.1", "a"): "部分符合", ("8.1.4.1", "c"): "不符合", ("8.1.4.2", "b"): "部分符合",
        ("8.1.4.4", "b"): "部分符合", ("8.1.4.8", "a"): "不符合", ("8.1.4.9", "a"): "不符合",
        ("8.1.4.11", "a"): "符合"}
    # manual items: decided by the assessor, with attachment hash, on every object
    for rep in (web, db):
        items = {(i.clause, i.item): i for i in rep.items}
        assert items["8.1.4.11", "a"].verdict.value == "符合" and items["8.1.4.11", "a"].source == "manual"
        assert items["8.1.4.11", "a"].manual.assessor == "cli:张三"
        assert items["8.1.4.9", "a"].verdict.value == "不符合"
    att = next(a for a in ev.manual_assessments if a.item == "a" and a.clause == "8.1.4.11").attachments[0]
    assert att.name == "访谈记录.txt" and len(att.sha256) == 64
    assert ev.attachment_blobs[att.path].startswith(b"2026-03-03")
    # findings: three fixed on web-1 with before/after evidence, two open on db-1
    fixed = [f for f in ev.findings if not f.open]
    still = [f for f in ev.findings if f.open]
    assert {f.object for f in fixed} == {"web-1"} and len(fixed) == 3
    assert {(f.object, f.check_id) for f in still} == {("db-1", "accounts.no-empty-password"),
                                                       ("db-1", "login.pass-max-days")}
    hr = next(f for f in fixed if f.check_id == "accounts.no-empty-password")
    assert hr.risk == "high" and hr.before.status.value == "fail" and hr.after.status.value == "pass"
    assert hr.before.evidence and hr.before.evidence[0].source == "/etc/shadow"
    assert [p.object for p in ev.score_history].count(None) == 2


def test_system_figures_equal_the_collectors_system_assessment(world, evidence):
    from sentinel.store.assessment import system_assessment

    s, _ = world
    with s.db.session() as session:
        system_id = session.exec(select(System.id).where(System.name == seed.SYSTEM)).one()
    official = system_assessment(s.db, system_id)
    assert official.complete and official.summary == evidence.summary
    assert [(i.clause, i.item, i.verdict, i.automated, i.source) for i in official.items] == \
        [(i.clause, i.item, i.verdict, i.automated, i.source) for i in evidence.items]


def test_time_range_selects_a_contiguous_stretch_of_the_chain(world):
    s, _ = world
    with s.db.session() as session:
        ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key),
                     start=seed.T0 + timedelta(hours=12))
    assert [e.run_id for e in ev.chain.entries] == [3, 4]
    assert ev.chain.anchor == ev.chain.entries[0].prev_chain_hash != "0" * 64
    with s.db.session() as session:
        with pytest.raises(EvidenceError, match="not found.*egov-portal"):
            collect(session, "no-such", collector=seed.collector_identity(s.key))
        with pytest.raises(EvidenceError, match="after"):
            collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key), start=seed.T0,
                    end=seed.T0 - timedelta(days=1))


def test_altered_store_is_refused(world):
    """A run whose stored digest no longer matches its kept envelope, or a chain head that does not end the
    chain, is an error naming the run, never exported as if fine (changes rolled back afterwards)."""
    from sqlalchemy import text
    from sqlmodel import Session

    s, _ = world
    for sql, message in (("UPDATE runs SET digest = :x WHERE id = 2", r"run 2 .*does not hash to the run's digest"),
                         ("UPDATE systems SET chain_head = :x", "is not the system's chain head")):
        with s.db.engine.connect() as conn:
            trans = conn.begin()
            try:
                conn.execute(text(sql), {"x": "f" * 64})
                with Session(bind=conn) as session:
                    with pytest.raises(EvidenceError, match=message):
                        collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
            finally:
                trans.rollback()


def test_bundle_round_trip(bundle, world, evidence):
    s, _ = world
    report = verify_bundle(bundle, s.key.public_key())
    assert report.ok, [str(p) for p in report.problems]
    assert report.signature == "valid" and report.key_source == "pinned"
    assert report.runs_checked == 4 and report.results_checked == 8
    files = read_all(bundle)
    m = Manifest.model_validate_json(files["manifest.json"])
    assert {f.path for f in m.files} == set(files) - {"manifest.json", "manifest.sig", "manifest.sig.bin",
                                                      "manifest.sshsig"}
    for f in m.files:
        assert sha256_hex(files[f.path]) == f.sha256
    assert [(b.id, b.version) for b in m.baselines] == [("evidence-seed", "1.2"), ("zone-egov-default", "1")]
    assert m.collector.fingerprint == evidence.collector.fingerprint and m.range.end == evidence.range.end
    assert {"record.xlsx", "report.html", "evidence.json", "risk.txt", "rectification.html",
            "reports/1.json", "reports/1.envelope.json", "attachments/1/访谈记录.txt",
            "evidence/db-1/evidence-seed.txt"} <= set(files)
    raw = files["evidence/db-1/evidence-seed.txt"].decode()
    assert "check: accounts.no-empty-password" in raw and "-- /etc/shadow line 2" in raw and "app:<empty>" in raw
    # the raw bodies are the chained ones
    for e in evidence.chain.entries:
        assert sha256_hex(files[e.body]) == e.digest
    # without a pinned key: nothing altered, but not INTACT either, with a warning that says who must be trusted
    loose = verify_bundle(bundle)
    assert not loose.problems and loose.signature == "valid"
    assert not loose.ok and loose.verdict == "unverified" and loose.key_source == "bundle"
    assert "fingerprint" in loose.warnings[0] and "sentinel key show" in loose.warnings[0]


# ---- tampering -----------------------------------------------------------------------------------


def test_unpacked_and_rezipped_bundle_still_verifies(bundle, world, tmp_path):
    s, _ = world
    files = read_all(bundle)
    out = tmp_path / "rezipped.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for d in ("attachments/", "attachments/1/", "evidence/", "reports/"):
            zf.writestr(d, b"")
        for name in sorted(files, reverse=True):
            zf.writestr(name, files[name])
    assert verify_bundle(out, s.key.public_key()).ok


def test_changed_file_is_named(bundle, world, tmp_path):
    s, _ = world
    files = read_all(bundle)
    files["record.xlsx"] = files["record.xlsx"][:-10] + b"0123456789"
    r = verify_bundle(write_all(tmp_path / "t.zip", files), s.key.public_key())
    assert not r.ok and [(p.kind, p.path) for p in r.problems] == [("file_changed", "record.xlsx")]


def test_added_and_removed_files_are_named(bundle, world, tmp_path):
    s, _ = world
    files = read_all(bundle)
    files["extra/readme.txt"] = b"not from the collector"
    del files["attachments/1/访谈记录.txt"]
    r = verify_bundle(write_all(tmp_path / "t.zip", files), s.key.public_key())
    assert ("file_added", "extra/readme.txt") in [(p.kind, p.path) for p in r.problems]
    assert ("file_removed", "attachments/1/访谈记录.txt") in [(p.kind, p.path) for p in r.problems]


def test_edited_manifest_breaks_the_signature(bundle, world, tmp_path):
    s, _ = world
    files = read_all(bundle)
    files["risk.txt"] = "一、高风险问题\n无\n".encode()
    m = json.loads(files["manifest.json"])
    for f in m["files"]:
        if f["path"] == "risk.txt":
            f["sha256"], f["size"] = sha256_hex(files["risk.txt"]), len(files["risk.txt"])
    files["manifest.json"] = json.dumps(m, ensure_ascii=False, indent=1).encode()
    r = verify_bundle(write_all(tmp_path / "t.zip", files), s.key.public_key())
    assert kinds(r) == {"signature_invalid"} and r.signature == "invalid"


def test_missing_signature_and_wrong_key(bundle, world, tmp_path):
    s, _ = world
    files = read_all(bundle)
    del files["manifest.sig"]
    r = verify_bundle(write_all(tmp_path / "t.zip", files), s.key.public_key())
    assert kinds(r) == {"signature_missing"}
    other = signing.generate_key()
    r = verify_bundle(bundle, other.public_key())
    assert kinds(r) == {"key_mismatch", "signature_invalid"}
    # re-signed by someone else, who also put their own key in: only the pinned key catches it
    other_pub = signing.public_key_b64(other)
    ident = {"public_key": other_pub, "fingerprint": sha256_hex(base64.b64decode(other_pub))}
    files = edit_evidence(read_all(bundle), lambda d: d["collector"].update(ident))
    m = json.loads(files["manifest.json"])
    m["collector"].update(ident)
    files["manifest.json"] = json.dumps(m).encode()
    forged = write_all(tmp_path / "f.zip", resign(files, other))
    r = verify_bundle(forged, s.key.public_key())
    assert kinds(r) == {"key_mismatch", "signature_invalid"}
    unpinned = verify_bundle(forged)
    assert not unpinned.ok and unpinned.verdict == "unverified" and not unpinned.problems
    assert unpinned.key_fingerprint == ident["fingerprint"] and unpinned.warnings


def test_altered_result_is_named_even_when_resigned(bundle, world, tmp_path):
    """A result flipped to pass in evidence.json: caught by the hash list, and, if the collector key itself
    re-signed it, by the comparison with the chained raw body."""
    s, _ = world

    def flip(data):
        db = next(o for o in data["objects"] if o["name"] == "db-1")
        res = next(r for r in db["reports"][0]["results"] if r["check_id"] == "accounts.no-empty-password")
        res["status"], res["observed"] = "pass", []

    files = edit_evidence(read_all(bundle), flip)
    r = verify_bundle(write_all(tmp_path / "t.zip", dict(files)), s.key.public_key())
    assert ("file_changed", "evidence.json") in [(p.kind, p.path) for p in r.problems]
    r = verify_bundle(write_all(tmp_path / "r.zip", resign(files, s.key)), s.key.public_key())
    assert r.signature == "valid" and not r.ok
    named = [str(p) for p in r.problems if p.kind == "result_mismatch"]
    assert any("db-1, run 4: check accounts.no-empty-password differs" in n and "status" in n for n in named), named


def test_altered_manual_verdict_is_named(bundle, world, tmp_path):
    s, _ = world

    def upgrade(data):
        for o in data["objects"]:
            for i in o["reports"][0]["items"]:
                if (i["clause"], i["item"]) == ("8.1.4.9", "a"):
                    i["verdict"] = "符合"

    files = resign(edit_evidence(read_all(bundle), upgrade), s.key)
    r = verify_bundle(write_all(tmp_path / "t.zip", files), s.key.public_key())
    msgs = [str(p) for p in r.problems]
    assert any("8.1.4.9.a shows manual verdict 符合, which no listed assessment gave" in m for m in msgs), msgs
    assert any("summary" in m for m in msgs), msgs


def test_altered_report_body_is_named(bundle, world, tmp_path):
    s, _ = world
    files = read_all(bundle)
    body = json.loads(files["reports/2.json"])
    body["results"][0]["status"] = "pass"
    files["reports/2.json"] = canonical_bytes(body)
    r = verify_bundle(write_all(tmp_path / "t.zip", resign(files, s.key)), s.key.public_key())
    digest = [p for p in r.problems if p.kind == "digest_mismatch"]
    assert len(digest) == 1 and digest[0].run_id == 2 and "report body digest mismatch for run 2" in digest[0].detail


def test_rebuilt_chain_is_caught_by_the_agents_signature(bundle, world, tmp_path):
    """Even a holder of the collector key who rewrites a body and recomputes every chain link cannot make
    the agent's envelope signature cover it."""
    s, _ = world
    files = read_all(bundle)
    body = json.loads(files["reports/1.json"])
    body["results"][0]["observed"] = 90
    files["reports/1.json"] = canonical_bytes(body)

    def rechain(data):
        prev = data["chain"]["anchor"]
        for e in data["chain"]["entries"]:
            if e["run_id"] == 1:
                e["digest"] = sha256_hex(files["reports/1.json"])
            e["prev_chain_hash"] = prev
            e["chain_hash"] = prev = chain_hash(prev, e["digest"])
        data["chain"]["head"] = prev

    files = edit_evidence(files, rechain)
    m = json.loads(files["manifest.json"])
    m["chain"]["head"] = json.loads(files["evidence.json"])["chain"]["head"]
    files["manifest.json"] = json.dumps(m).encode()
    r = verify_bundle(write_all(tmp_path / "t.zip", resign(files, s.key)), s.key.public_key())
    assert [(p.kind, p.run_id) for p in r.problems] == [("envelope_invalid", 1)], [str(p) for p in r.problems]


def test_removed_run_breaks_the_chain_at_that_run(bundle, world, tmp_path):
    s, _ = world
    files = read_all(bundle)

    def drop(data):
        data["chain"]["entries"] = [e for e in data["chain"]["entries"] if e["run_id"] != 2]

    files = edit_evidence(files, drop)
    del files["reports/2.json"], files["reports/2.envelope.json"]
    m = json.loads(files["manifest.json"])
    m["chain"]["runs"] = 3
    files["manifest.json"] = json.dumps(m).encode()
    r = verify_bundle(write_all(tmp_path / "t.zip", resign(files, s.key)), s.key.public_key())
    broken = [p for p in r.problems if p.kind == "chain_broken"]
    assert [p.run_id for p in broken] == [3] and "chain broken at run 3 (#2 in the chain" in broken[0].detail


def test_bytes_flipped_inside_the_archive_are_named(bundle, world, tmp_path):
    """Editing the zip file itself (not re-zipping): the damaged member fails its CRC and is named."""
    s, _ = world
    raw = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as zf:
        info = zf.getinfo("reports/2.json")
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.compress_size // 2] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    r = verify_bundle(damaged, s.key.public_key())
    assert not r.ok
    assert ("file_changed", "reports/2.json") in [(p.kind, p.path) for p in r.problems]
    assert any(p.kind == "body_missing" and p.run_id == 2 for p in r.problems)


def test_not_a_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    assert kinds(verify_bundle(bad)) == {"not_a_bundle"}


# ---- command line --------------------------------------------------------------------------------


def test_cli_export_verify_assess(tmp_path, capsys):
    tmp = tmp_path / "world"
    tmp.mkdir()
    s = seed.seed_world(tmp)
    common = ["--state-dir", str(tmp / "state"), "--database-url", s.url]
    out = tmp_path / "cli.zip"
    assert main(["export", "--system", seed.SYSTEM, "-o", str(out), *common]) == 0
    pub = tmp_path / "collector.pub"
    pub.write_text(signing.public_key_b64(s.key) + "\n")
    assert main(["verify", str(out), "--pubkey", str(pub)]) == 0
    assert "INTACT" in capsys.readouterr().out
    files = read_all(out)
    files["report.html"] = files["report.html"].replace("差".encode(), "优".encode())
    assert main(["verify", str(write_all(tmp_path / "t.zip", files)), "--pubkey", str(pub)]) == 1
    assert "file_changed: report.html" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "missing.zip")]) == 2
    (tmp_path / "junk.pub").write_text("not a key")
    assert main(["verify", str(out), "--pubkey", str(tmp_path / "junk.pub")]) == 2
    assert main(["verify", str(out), "--pubkey", str(s.key_file)]) == 2  # a private key is refused
    # usage errors name what is wrong
    assert main(["export", "--system", "nope", "-o", str(tmp_path / "x.zip"), *common]) == 2
    assert "system 'nope' not found" in capsys.readouterr().err
    assert main(["export", "--system", seed.SYSTEM, "--format", "doc", "-o", str(tmp_path / "x"), *common]) == 2
    assert main(["export", "--system", seed.SYSTEM, "--from", "yesterday", "-o", str(tmp_path / "x"), *common]) == 2
    # manual assessment through the CLI, with an attachment, lands in the next export
    doc = tmp_path / "备份策略.pdf"
    doc.write_bytes(b"%PDF-1.4 backup policy")
    assert main(["assess", "--system", seed.SYSTEM, "--item", "8.1.4.9.a", "--verdict", "部分符合", "--note",
                 "有本地备份，未见恢复测试记录", "--attach", str(doc), "--assessor", "王五", *common]) == 0
    assert main(["assess", "--system", seed.SYSTEM, "--item", "8.1.4.99.z", "--verdict", "符合",
                 "--assessor", "王五", *common]) == 2
    assert "not a requirement item" in capsys.readouterr().err
    assert main(["assess", "--system", seed.SYSTEM, "--item", "8.1.4.9", "--verdict", "符合",
                 "--assessor", "王五", *common]) == 2
    assert main(["assess", "--system", seed.SYSTEM, "--item", "8.1.4.9.a", "--verdict", "待核查",
                 "--assessor", "王五", *common]) == 2
    # a system with no reports yet: the item is checked against the shipped baseline for its level
    from sentinel.collector import operations
    from sentinel.collector.auth import cli_principal
    from sentinel.collector.schemas import SystemIn

    with s.db.session(write=True) as session:
        dept = operations.department_by_name(session, "hrss")
        operations.create_system(operations.Ctx(session, cli_principal("t")),
                            SystemIn(name="new-sys", department_id=dept.id, level=3, s_grade=3, a_grade=3))
    assert main(["assess", "--system", "new-sys", "--item", "8.1.4.10.b", "--verdict", "conform",
                 "--assessor", "王五", *common]) == 0
    assert main(["assess", "--system", "new-sys", "--item", "8.1.4.12.a", "--verdict", "符合",
                 "--assessor", "王五", *common]) == 2
    assert "shipped baseline dengbao-l3-linux" in capsys.readouterr().err
    assert main(["assess", "--system", "no-such", "--item", "8.1.4.10.b", "--verdict", "符合",
                 "--assessor", "王五", *common]) == 2
    json_out = tmp_path / "e.json"
    assert main(["export", "--system", seed.SYSTEM, "--format", "json", "-o", str(json_out), *common]) == 0
    data = json.loads(json_out.read_text())
    latest = [a for a in data["manual_assessments"] if a["clause"] == "8.1.4.9" and a["effective"]]
    assert len(latest) == 1 and latest[0]["verdict"] == "部分符合" and latest[0]["assessor"] == "cli:王五"
    assert latest[0]["attachments"][0]["sha256"] == sha256_hex(b"%PDF-1.4 backup policy")
    for obj in data["objects"]:
        if obj["kind"] == "host":
            item = next(i for i in obj["reports"][0]["items"] if (i["clause"], i["item"]) == ("8.1.4.9", "a"))
            assert item["verdict"] == "部分符合" and item["source"] == "manual"
    system_item = next(i for i in data["items"] if (i["clause"], i["item"]) == ("8.1.4.9", "a"))
    assert system_item["verdict"] == "部分符合" and system_item["manual"]["assessor"] == "cli:王五"


def test_a_failing_worker_fails_the_export_and_leaves_nothing(world, evidence, tmp_path, monkeypatch):
    from sentinel.exporters.evidence import bundle as bundle_mod

    def broken(ev, lang):
        raise RuntimeError("disk full while writing the workbook")

    monkeypatch.setattr(bundle_mod, "export_xlsx", broken)
    s, _ = world
    with pytest.raises(EvidenceError, match="disk full while writing the workbook"):
        write_bundle(evidence, tmp_path / "out.zip", s.key)
    assert list(tmp_path.iterdir()) == []


def test_a_bundle_from_before_summary_advisory_still_verifies(bundle, world, tmp_path):
    """Summaries carry `advisory` since issue 14; a bundle written before (no such key) is not a mismatch, while
    a wrong advisory count in a bundle that has one is."""
    s, _ = world

    def strip(data):
        data["summary"].pop("advisory")
        for o in data["objects"]:
            for rep in o["reports"]:
                rep["summary"].pop("advisory")

    assert "advisory" in json.loads(read_all(bundle)["evidence.json"])["summary"]
    old = resign(edit_evidence(read_all(bundle), strip), s.key)
    r = verify_bundle(write_all(tmp_path / "old.zip", old), s.key.public_key())
    assert r.ok, [str(p) for p in r.problems]

    def miscount(data):
        data["summary"]["advisory"]["fail"] = 7

    wrong = resign(edit_evidence(read_all(bundle), miscount), s.key)
    r = verify_bundle(write_all(tmp_path / "wrong.zip", wrong), s.key.public_key())
    assert not r.ok and any("system summary" in str(p) for p in r.problems if p.kind == "result_mismatch")
