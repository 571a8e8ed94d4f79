"""The trust anchor of evidence bundles (issue 18 item 1): a complete forgery — exports edited, every hash
recomputed, re-signed by another key that the forger also names in the bundle — is never INTACT; the
agency pins the collector's key printed by `sentinel key show` (--pubkey or --fingerprint); the manifest
signature is also checked by openssl itself; the fingerprint is on the covers of the exports."""
from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from sentinel import signing
from sentinel.cli import main
from sentinel.evidence.digest import sha256_hex
from sentinel.evidence.trust import FingerprintError, fingerprint, grouped, parse_fingerprint
from sentinel.evidence.verify import verify_bundle
from tests import evidence_seed as seed
from tests.test_evidence_bundle import edit_evidence, read_all, resign, write_all

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evidence-trust")
    s = seed.seed_world(tmp)
    out = tmp / "genuine.zip"
    assert main(["export", "--system", seed.SYSTEM, "-o", str(out), "--state-dir", str(tmp / "state"),
                 "--database-url", s.url]) == 0
    yield s, tmp, out
    s.db.dispose()


def key_show(capsys, tmp: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["key", "show", "--state-dir", str(tmp / "state"), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def forge(genuine: Path, out: Path) -> tuple[Path, object]:
    """What a forger does: 差 -> 良 in report.html and risk.txt, their own key named in evidence.json and the
    manifest, every hash recomputed, the manifest re-signed (both signature files)."""
    other = signing.generate_key()
    pub = signing.public_key_b64(other)
    ident = {"public_key": pub, "fingerprint": sha256_hex(base64.b64decode(pub))}
    files = read_all(genuine)
    for name in ("report.html", "risk.txt"):
        assert "差".encode() in files[name] or name == "risk.txt"
        files[name] = files[name].replace("差".encode(), "良".encode())
    files = edit_evidence(files, lambda d: d["collector"].update(ident))
    m = json.loads(files["manifest.json"])
    m["collector"].update(ident)
    files["manifest.json"] = json.dumps(m, ensure_ascii=False).encode()
    return write_all(out, resign(files, other)), other


def test_key_show_prints_the_collectors_public_key_and_fingerprint(world, capsys, tmp_path):
    s, tmp, _ = world
    fp = fingerprint(s.key.public_key())
    code, out, _ = key_show(capsys, tmp)
    assert code == 0 and f"fingerprint (SHA-256 of the raw key): {fp}" in out and grouped(fp) in out
    assert "BEGIN PUBLIC KEY" in out and "PRIVATE" not in out
    code, out, _ = key_show(capsys, tmp, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["fingerprint_sha256"] == fp and data["public_key_b64"] == signing.public_key_b64(s.key)
    pem = tmp_path / "collector.pub.pem"
    code, out, err = key_show(capsys, tmp, "--format", "pem", "-o", str(pem))
    assert code == 0 and out == pem.read_text() and out.startswith("-----BEGIN PUBLIC KEY-----")
    assert f"--fingerprint {fp}" in err
    # no key: says where it looked, creates nothing
    empty = tmp_path / "empty"
    assert main(["key", "show", "--state-dir", str(empty)]) == 2
    assert f"{empty / 'collector.key'}: no such file" in capsys.readouterr().err and not empty.exists()
    assert main(["key", "show", "--state-dir", str(tmp / "state"), "--format", "der"]) == 2


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_fingerprint_is_what_openssl_computes(world, capsys, tmp_path):
    s, tmp, _ = world
    pem = tmp_path / "c.pem"
    key_show(capsys, tmp, "-o", str(pem))
    der = subprocess.run([OPENSSL, "pkey", "-pubin", "-in", str(pem), "-outform", "DER"], capture_output=True,
                         check=True).stdout
    assert sha256_hex(der[-32:]) == fingerprint(s.key.public_key())


def test_a_full_forgery_is_never_intact(world, capsys, tmp_path):
    s, tmp, genuine = world
    forged, other = forge(genuine, tmp_path / "forged.zip")
    # internally the forgery is perfect: no problem found
    r = verify_bundle(forged)
    assert not r.problems and r.signature == "valid" and r.verdict == "unverified" and not r.ok
    capsys.readouterr()
    assert main(["verify", str(forged)]) == 3
    out = capsys.readouterr()
    assert "INTACT" not in out.out.replace("UNVERIFIED", "")
    assert out.out.startswith("UNVERIFIED: ") and "signature valid but signer not pinned: UNVERIFIED" in out.out
    assert "sentinel key show" in out.err
    # pinned, by key or by fingerprint: ALTERED, the wrong signer named
    pem = tmp_path / "c.pem"
    key_show(capsys, tmp, "-o", str(pem))
    assert main(["verify", str(forged), "--pubkey", str(pem)]) == 1
    assert "ALTERED" in (o := capsys.readouterr().out) and "key_mismatch" in o and "signature_invalid" in o
    fp = fingerprint(s.key.public_key())
    assert main(["verify", str(forged), "--fingerprint", fp]) == 1
    o = capsys.readouterr().out
    assert o.startswith("ALTERED") and "key_mismatch" in o and fingerprint(other.public_key())[:16] in o
    rep = verify_bundle(forged, fingerprint=fp)
    assert not rep.ok and rep.verdict == "altered" and [p.kind for p in rep.problems] == ["key_mismatch"]


def test_genuine_bundle_is_intact_only_when_pinned(world, capsys):
    s, _, genuine = world
    fp = fingerprint(s.key.public_key())
    capsys.readouterr()
    assert main(["verify", str(genuine)]) == 3
    assert "UNVERIFIED" in capsys.readouterr().out
    for given in (fp, fp.upper(), grouped(fp), "SHA256:" + ":".join(fp[i:i + 2] for i in range(0, 64, 2))):
        assert main(["verify", str(genuine), "--fingerprint", given]) == 0, given
        o = capsys.readouterr().out
        assert o.startswith("INTACT: ") and "key matching the pinned fingerprint" in o
    report = verify_bundle(genuine, fingerprint=fp)
    assert report.ok and report.verdict == "intact" and report.key_source == "fingerprint"
    assert main(["verify", str(genuine), "--fingerprint", "abc123"]) == 2
    assert "--fingerprint 'abc123' is not a collector key fingerprint" in capsys.readouterr().err
    assert main(["verify", str(genuine), "--fingerprint", fp, "--pubkey", str(genuine)]) == 2
    with pytest.raises(FingerprintError):
        parse_fingerprint("g" * 64)


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_openssl_verifies_the_manifest_signature(world, capsys, tmp_path):
    s, tmp, genuine = world
    pem = tmp_path / "collector.pub.pem"
    key_show(capsys, tmp, "-o", str(pem))

    def openssl_verify(bundle: Path) -> subprocess.CompletedProcess:
        work = tmp_path / bundle.stem
        work.mkdir()
        with zipfile.ZipFile(bundle) as zf:
            zf.extract("manifest.json", work)
            zf.extract("manifest.sig.bin", work)
        return subprocess.run([OPENSSL, "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin",
                               "-in", str(work / "manifest.json"), "-sigfile", str(work / "manifest.sig.bin")],
                              capture_output=True, text=True)

    ok = openssl_verify(genuine)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stdout + ok.stderr
    # the manifest lists every other file's SHA-256, so `sha256sum -c` style checks finish the job
    files = read_all(genuine)
    for f in json.loads(files["manifest.json"])["files"]:
        assert sha256_hex(files[f["path"]]) == f["sha256"]
    forged, _ = forge(genuine, tmp_path / "forged.zip")
    bad = openssl_verify(forged)
    assert bad.returncode != 0 and "Signature Verified Successfully" not in bad.stdout


def test_raw_signature_must_be_the_manifest_signature(world, tmp_path):
    s, _, genuine = world
    files = read_all(genuine)
    assert base64.b64decode(files["manifest.sig"]) == files["manifest.sig.bin"]
    files["manifest.sig.bin"] = bytes(64)
    r = verify_bundle(write_all(tmp_path / "t.zip", files), s.key.public_key())
    assert [(p.kind, p.path) for p in r.problems] == [("signature_invalid", "manifest.sig.bin")]
    del files["manifest.sig.bin"]  # an older bundle: still checked, with a warning
    r = verify_bundle(write_all(tmp_path / "old.zip", files), s.key.public_key())
    assert r.ok and any("manifest.sig.bin" in w for w in r.warnings)


def test_fingerprint_on_every_cover(world):
    s, _, genuine = world
    fp = fingerprint(s.key.public_key())
    files = read_all(genuine)
    for page in ("report.html", "rectification.html"):
        html = files[page].decode()
        assert fp in html, page
        assert f"--fingerprint {fp}" in html, page  # with how to check it
    wb = load_workbook(io.BytesIO(files["record.xlsx"]), read_only=True)
    cover = [c for row in wb.worksheets[0].iter_rows(values_only=True) for c in row if c]
    assert fp in cover and any(f"--fingerprint {fp}" in str(c) for c in cover)


def test_fingerprint_on_the_pdf_cover(world, tmp_path):
    """report.pdf is the HTML laid out by WeasyPrint: its first page carries the fingerprint and how to check it."""
    from sentinel.exporters.evidence import pdf

    if not pdf.available():
        pytest.skip(f"WeasyPrint unavailable: {pdf.unavailable_reason()}")
    import weasyprint

    s, _, genuine = world
    fp = fingerprint(s.key.public_key())
    html = read_all(genuine)["report.html"].decode()
    first = weasyprint.HTML(string=html).render().pages[0]

    def texts(box):
        if getattr(box, "text", None):
            yield box.text
        for child in getattr(box, "children", None) or []:
            yield from texts(child)

    page = "".join(texts(first._page_box))
    assert fp in page.replace(" ", "").replace("\n", "") and "sentinel verify" in page


SSH_KEYGEN = shutil.which("ssh-keygen")


@pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen not installed")
def test_ssh_keygen_verifies_the_manifest_signature(world, capsys, tmp_path):
    s, tmp, genuine = world
    code, signers, _ = key_show(capsys, tmp, "--format", "allowed-signers")
    assert code == 0 and signers.startswith('sentinel-collector namespaces="sentinel-evidence" ssh-ed25519 ')
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(signers)

    def ssh_verify(bundle: Path) -> subprocess.CompletedProcess:
        files = read_all(bundle)
        sig = tmp_path / f"{bundle.stem}.sshsig"
        sig.write_bytes(files["manifest.sshsig"])
        return subprocess.run([SSH_KEYGEN, "-Y", "verify", "-f", str(allowed), "-I", "sentinel-collector",
                               "-n", "sentinel-evidence", "-s", str(sig)], input=files["manifest.json"],
                              capture_output=True)

    ok = ssh_verify(genuine)
    assert ok.returncode == 0
    assert b"Good \"sentinel-evidence\" signature for sentinel-collector" in ok.stdout + ok.stderr
    forged, _ = forge(genuine, tmp_path / "forged.zip")
    bad = ssh_verify(forged)
    assert bad.returncode != 0
    # a manifest.sshsig that is not the manifest's is caught by sentinel verify as well
    files = read_all(genuine)
    files["manifest.sshsig"] = read_all(forged)["manifest.sshsig"]
    r = verify_bundle(write_all(tmp_path / "t.zip", files), s.key.public_key())
    assert [(p.kind, p.path) for p in r.problems] == [("signature_invalid", "manifest.sshsig")]
    assert "another key" in r.problems[0].detail
