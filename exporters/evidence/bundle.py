"""The evidence bundle: one zip with every export, the raw evidence, the raw report bodies, a manifest
listing each file's SHA-256, and a detached Ed25519 signature of the manifest by the collector's key.

Layout:
    manifest.json, manifest.sig          what is inside (hashes, baselines, range, collector), its signature
    manifest.sig.bin                      the same signature as 64 raw bytes, which openssl checks:
        openssl pkeyutl -verify -pubin -inkey collector.pub.pem -rawin -in manifest.json -sigfile manifest.sig.bin
    manifest.sshsig                       an OpenSSH signature of manifest.json by the same key:
        ssh-keygen -Y verify -f allowed_signers -I sentinel-collector -n sentinel-evidence -s manifest.sshsig
    evidence.json                         every result with its raw evidence (jsonexport)
    record.xlsx, report.html [report.pdf] 测评记录表 and the readable report
    risk.txt                              high-risk list and 重大风险隐患 candidates, ready to paste
    rectification.html                    整改报告
    reports/<run>.json                    raw report bodies (canonical JSON; sha256 = the chain digest)
    reports/<run>.envelope.json           the agent's signed envelope as it arrived
    evidence/<object>/<baseline>.txt      each check's raw evidence excerpts, check by check
    attachments/<assessment>/<name>       files attached to manual assessments

`sentinel verify` (sentinel/evidence/verify.py) checks all of it offline.
"""
from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Union

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentinel import signing
from sentinel.atomicfile import atomic_output
from sentinel.evidence.gc_pause import paused_gc
from sentinel.evidence.model import (
    EVIDENCE_JSON,
    MANIFEST,
    SIGNATURE,
    SIGNATURE_RAW,
    SIGNATURE_SSH,
    BundleFile,
    ChainSummary,
    EvidenceError,
    Manifest,
    ReportEvidence,
    SystemEvidence,
)
from sentinel.evidence.trust import ssh_signature

from . import pdf
from .common import STATUS_LABEL, lang_code, short
from .html import render_html, render_rectification_html
from .jsonexport import export_json
from .risk import paste_text
from .xlsx import export_xlsx

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_PRECOMPRESSED = (".xlsx", ".pdf", ".zip", ".png", ".jpg", ".jpeg", ".gz", ".docx")


def safe_component(name: str) -> str:
    """A file name part that is the same on every OS and can never climb out of its directory."""
    cleaned = _UNSAFE.sub("_", name).strip(".") or "_"
    return cleaned[:100]


def raw_evidence_files(ev: SystemEvidence) -> dict[str, bytes]:
    """evidence/<object>/<baseline>.txt: every result of an object's latest report with its raw evidence."""
    out: dict[str, bytes] = {}
    dirs: dict[str, str] = {}
    for obj, rep in ev.reports():
        base = safe_component(obj.name)
        d = dirs.setdefault(obj.name, base if base not in dirs.values() else f"{base}-{len(dirs)}")
        out[f"evidence/{d}/{safe_component(rep.baseline.id)}.txt"] = _evidence_text(obj.name, rep).encode("utf-8")
    return out


def _evidence_text(obj: str, rep: ReportEvidence) -> str:
    lines = [f"object: {obj}", f"report: {rep.report_id} (run {rep.run_id})",
             f"baseline: {rep.baseline.id} {rep.baseline.version}"]
    for r in rep.results:
        lines += ["", "=" * 78, f"check: {r.check_id} ({r.clause}{r.item}) {r.title.zh} / {r.title.en}",
                  f"status: {r.status.value} ({STATUS_LABEL['zh'][r.status.value]})",
                  f"observed: {short(r.observed, 100000)}", f"expected: {r.expected}"]
        if r.reason:
            lines.append(f"reason: {r.reason}")
        if r.reason_zh and r.reason_zh != r.reason:
            lines.append(f"原因: {r.reason_zh}")
        if r.waiver:
            lines.append(f"waiver: {r.waiver}")
        elif r.advisory:  # evidence only: decides no verdict, no score, no finding
            lines.append(f"advisory (参考项，不计入判定): {r.advisory.zh} / {r.advisory.en}")
        for e in r.evidence:
            when = f" at {e.at.isoformat()}" if e.at else " (the report gives no time)"
            lines += [f"-- {e.source}" + (f" line {e.line}" if e.line else "") + when]
            if e.excerpt is not None:
                lines.append(e.excerpt)
    return "\n".join(lines) + "\n"


def _child(conn, fn: Callable[..., dict[str, bytes]], args: tuple) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # reported to the parent, which raises it there
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def in_background(fn: Callable[..., dict[str, bytes]], *args) -> Callable[[], dict[str, bytes]]:
    """Start fn(*args) -> {path: bytes} in a forked process; returns a function that waits for the files.

    The workbook and the rectification report are about half of a large export and need nothing from the
    rest, so on a machine with more than one CPU they are built alongside. Fork shares the
    evidence with the child without pickling it. Where fork is unavailable, or on one CPU, fn runs at once
    in this process."""
    if "fork" not in multiprocessing.get_all_start_methods() or (os.cpu_count() or 1) < 2:
        data = fn(*args)
        return lambda: data
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, fn, args), daemon=True)
    proc.start()
    sender.close()

    def result() -> dict[str, bytes]:
        try:
            status, payload = receiver.recv()
        except EOFError:
            proc.join()
            raise EvidenceError(f"{getattr(fn, '__name__', 'export')}: worker process died "
                                f"(exit code {proc.exitcode})") from None
        finally:
            receiver.close()
        proc.join()
        if status != "ok":
            raise EvidenceError(f"{getattr(fn, '__name__', 'export')} failed: {payload}")
        return payload

    result.process = proc  # type: ignore[attr-defined]
    return result


def _worker_files(ev: SystemEvidence, lang: str) -> dict[str, bytes]:
    # Measured on 100 hosts: these two take about as long as everything else including the zip.
    return {"record.xlsx": export_xlsx(ev, lang),
            "rectification.html": render_rectification_html(ev, lang).encode("utf-8")}


def _files(ev: SystemEvidence, lang: str, include_pdf: bool) -> Iterator[tuple[str, bytes]]:
    """Every file but the worker's, the manifest and its signature, made one at a time so the zip is
    written while the worker runs."""
    html = render_html(ev, lang)
    yield "report.html", html.encode("utf-8")
    if include_pdf:
        yield "report.pdf", pdf.render_pdf(html)
    del html
    yield EVIDENCE_JSON, export_json(ev)
    yield "risk.txt", paste_text(ev, lang).encode("utf-8")
    for group in (ev.raw_reports, raw_evidence_files(ev), ev.attachment_blobs):
        yield from group.items()


def _check_chain_files(ev: SystemEvidence) -> None:
    for entry in ev.chain.entries:
        for path in (entry.body, entry.envelope):
            if path and path not in ev.raw_reports:
                raise EvidenceError(f"bundle: chain entry for run {entry.run_id} names {path}, which is not in "
                                    "the evidence's raw reports")


def make_manifest(ev: SystemEvidence, listed: list[BundleFile], lang: str) -> Manifest:
    return Manifest(generated_at=ev.generated_at, system=ev.system, range=ev.range, collector=ev.collector,
                    baselines=ev.baselines, chain=ChainSummary(anchor=ev.chain.anchor, head=ev.chain.head,
                                                               runs=len(ev.chain.entries)),
                    lang=lang_code(lang), files=sorted(listed, key=lambda f: f.path), notes=ev.notes)


def write_bundle(ev: SystemEvidence, out: Union[str, Path], key: Ed25519PrivateKey, lang: str = "zh",
                 include_pdf: bool = False) -> Manifest:
    """Write the signed bundle to `out` atomically; returns its manifest."""
    with paused_gc():  # the forked worker inherits the pause
        return _write_bundle(ev, Path(out), key, lang, include_pdf)


def _write_bundle(ev: SystemEvidence, out: Path, key: Ed25519PrivateKey, lang: str, include_pdf: bool) -> Manifest:
    if signing.public_key_b64(key) != ev.collector.public_key:
        raise EvidenceError("bundle: the signing key is not the collector key named in the evidence "
                            f"(fingerprint {ev.collector.fingerprint[:16]}…)")
    _check_chain_files(ev)
    stamp = max(ev.generated_at.utctimetuple()[:6], (1980, 1, 1, 0, 0, 0))
    listed: list[BundleFile] = []

    def add(zf: zipfile.ZipFile, path: str, data: bytes, hashed: bool = True) -> None:
        if hashed:
            if path in seen:
                raise EvidenceError(f"bundle: two files would be written to {path}")
            seen.add(path)
            listed.append(BundleFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
        info = zipfile.ZipInfo(path, date_time=stamp)
        info.external_attr = 0o644 << 16
        # Level 1 deflate: JSON shrinks ~4x at a third of level 6's time; xlsx/pdf are compressed already.
        if path.endswith(_PRECOMPRESSED):
            zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)
        else:
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)

    seen: set[str] = set()
    worker = None
    try:
        with atomic_output(out, mode=0o644) as fh, zipfile.ZipFile(fh, "w") as zf:
            worker = in_background(_worker_files, ev, lang)
            for path, data in _files(ev, lang, include_pdf):
                add(zf, path, data)
            for path, data in worker().items():
                add(zf, path, data)
            manifest = make_manifest(ev, listed, lang)
            manifest_bytes = manifest.model_dump_json(indent=1).encode("utf-8")
            add(zf, MANIFEST, manifest_bytes, hashed=False)
            sig = signing.sign(key, manifest_bytes)
            add(zf, SIGNATURE, (sig + "\n").encode("ascii"), hashed=False)
            add(zf, SIGNATURE_RAW, base64.b64decode(sig), hashed=False)
            add(zf, SIGNATURE_SSH, ssh_signature(key, manifest_bytes).encode("ascii"), hashed=False)
    except BaseException:
        proc = getattr(worker, "process", None)
        if proc is not None and proc.is_alive():  # do not leave the worker behind
            proc.terminate()
            proc.join()
        raise
    return manifest
