"""Offline verification of an evidence bundle: every file hash, the manifest signature, the per-system
hash chain recomputed from the raw report bodies, the agents' envelope signatures, and the results in
evidence.json against the raw bodies they claim to come from.

Nothing here touches the network or the store. Every problem names what was altered and where; the
report is complete (checking goes on after the first problem) so an agency sees the whole damage.

Trust: the bundle names its own signing key, so a forger re-signs with theirs. Only a trust anchor
obtained out of band (the collector's public key, `pubkey`, or its fingerprint, `fingerprint`: see
trust.py) tells who made it. The verdict is therefore three-valued: `intact` (no problem and the signer is
the pinned key), `unverified` (no problem, but nothing pinned the signer: the bundle may be a complete
forgery), `altered` (a problem was found). `ok` is True only for `intact`.
"""
from __future__ import annotations

import base64
import json
import zipfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Literal, Optional, Union

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, Field, ValidationError

from .. import scoring, signing
from ..model import HostReport, Summary
from .assemble import effective_in, evidence_rollup
from .digest import canonical_bytes, chain_hash, sha256_hex, sha256_stream
from .gc_pause import paused_gc
from .model import (
    EVIDENCE_JSON,
    MANIFEST,
    SIGNATURE,
    SIGNATURE_RAW,
    SIGNATURE_SSH,
    ChainEntry,
    Manifest,
    ReportEvidence,
    SystemEvidence,
)
from .trust import check_ssh_signature, fingerprint_b64, parse_fingerprint, raw_signature

MAX_MEMBER_BYTES = 256 << 20  # a member larger than this is not read into memory (zip bomb guard)

ProblemKind = Literal[
    "not_a_bundle", "manifest_missing", "manifest_invalid", "signature_missing", "signature_invalid",
    "key_mismatch", "file_added", "file_removed", "file_changed", "unsafe_path", "evidence_invalid",
    "manifest_mismatch", "body_missing", "digest_mismatch", "chain_broken", "envelope_invalid",
    "agent_signature_invalid", "result_mismatch",
]


class Problem(BaseModel):
    kind: ProblemKind
    path: Optional[str] = None
    run_id: Optional[int] = None
    detail: str

    def __str__(self) -> str:
        where = self.path or (f"run {self.run_id}" if self.run_id is not None else "")
        return f"{self.kind}: {where + ': ' if where else ''}{self.detail}"


Verdict = Literal["intact", "unverified", "altered"]


class VerifyReport(BaseModel):
    bundle: str
    ok: bool = False  # verdict == "intact": nothing altered AND signed by the pinned key
    verdict: Verdict = "altered"
    system: Optional[str] = None
    signature: Literal["valid", "invalid", "missing", "unchecked"] = "unchecked"
    # pinned: --pubkey; fingerprint: the bundle's key matched --fingerprint; bundle: nothing pinned it
    key_source: Literal["pinned", "fingerprint", "bundle", "none"] = "none"
    key_fingerprint: Optional[str] = None
    files_checked: int = 0
    runs_checked: int = 0
    results_checked: int = 0
    problems: list[Problem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    def add(self, kind: ProblemKind, detail: str, path: Optional[str] = None, run_id: Optional[int] = None) -> None:
        self.problems.append(Problem(kind=kind, path=path, run_id=run_id, detail=detail))


class PublicKeyError(ValueError):
    pass


def load_public_key(data: Union[bytes, str]) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo) or base64 of the raw 32 bytes."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    text = raw.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except ValueError as exc:
            raise PublicKeyError(f"not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise PublicKeyError(f"expected an Ed25519 public key, got {type(key).__name__}")
        return key
    try:
        return signing.load_public_key_b64(text.decode("ascii"))
    except (signing.SigningKeyError, UnicodeDecodeError) as exc:
        raise PublicKeyError(f"expected PEM or base64 of a raw 32-byte Ed25519 key: {exc}") from None


def load_public_key_file(path: Union[str, Path]) -> Ed25519PublicKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PublicKeyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data.lstrip().startswith(b"-----BEGIN PRIVATE KEY") or b"PRIVATE KEY-----" in data:
        raise PublicKeyError(f"{path}: this is a private key; give the collector's public key")
    try:
        return load_public_key(data)
    except PublicKeyError as exc:
        raise PublicKeyError(f"{path}: {exc}") from None


def _pub_b64(key: Ed25519PublicKey) -> str:
    return signing.public_key_b64(key)


def _read(zf: zipfile.ZipFile, name: str) -> bytes:
    """A member's bytes; ValueError (with the reason) if it is too large or cannot be read back, e.g. a
    CRC error from bytes edited inside the archive."""
    info = zf.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise ValueError(f"{info.file_size} bytes exceeds the {MAX_MEMBER_BYTES} bytes a verifier reads")
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"cannot be read back: {exc}") from None


def verify_bundle(path: Union[str, Path], pubkey: Union[Ed25519PublicKey, str, bytes, None] = None,
                  fingerprint: Optional[str] = None) -> VerifyReport:
    """Check a bundle. The trust anchor is `pubkey`, the collector's public key (object, PEM or base64
    raw), or `fingerprint`, its SHA-256 fingerprint (trust.parse_fingerprint forms); without either the
    verdict is at best `unverified`. FingerprintError for a malformed fingerprint."""
    report = VerifyReport(bundle=str(path))
    if isinstance(pubkey, Ed25519PrivateKey):
        pubkey = pubkey.public_key()
    if isinstance(pubkey, (str, bytes)):
        pubkey = load_public_key(pubkey)
    pinned_fp = parse_fingerprint(fingerprint) if fingerprint is not None else None
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        report.add("not_a_bundle", f"cannot open as a zip archive: {exc}")
        return report
    with zf, paused_gc():
        _verify(zf, report, pubkey, pinned_fp)
    if report.problems:
        report.verdict = "altered"
    elif report.signature == "valid" and report.key_source in ("pinned", "fingerprint"):
        report.verdict = "intact"
    else:
        report.verdict = "unverified"
    report.ok = report.verdict == "intact"
    return report


def _verify(zf: zipfile.ZipFile, report: VerifyReport, pubkey: Optional[Ed25519PublicKey],
            pinned_fp: Optional[str] = None) -> None:
    # Directory entries hold nothing; a bundle unpacked and zipped again (zip -r) has them, harmlessly.
    names = [n for n in zf.namelist() if not (n.endswith("/") and zf.getinfo(n).file_size == 0)]
    for name in names:
        if name.startswith("/") or ".." in name.split("/") or "\\" in name:
            report.add("unsafe_path", "member name could write outside an extraction directory", path=name)
    if len(set(names)) != len(names):
        for n in sorted(n for n, count in Counter(names).items() if count > 1):
            report.add("file_added", "the archive holds this name more than once (a second copy was appended)",
                       path=n)
    manifest, manifest_bytes = _manifest(zf, names, report)
    if manifest is None:
        return
    report.system = manifest.system.name
    _signature(zf, names, manifest, manifest_bytes, report, pubkey, pinned_fp)
    _files(zf, names, manifest, report)
    ev = _evidence(zf, names, report)
    if ev is None:
        return
    _consistency(ev, manifest, report)
    bodies = _chain(zf, names, ev, report)
    _results(ev, bodies, report)
    _manual(zf, names, ev, report)
    items, again = evidence_rollup((rep for _, rep in ev.reports()), effective_in(ev))
    if [i.model_dump(mode="json") for i in items] != [i.model_dump(mode="json") for i in ev.items]:
        report.add("result_mismatch", "the system's item verdicts are not the roll-up of the objects' records and "
                   "the effective manual assessments", path=EVIDENCE_JSON)
    if not _same_summary(again, ev.summary):
        report.add("result_mismatch", f"system summary (score {ev.summary.score}, {ev.summary.conclusion}) is not "
                   f"what the objects' records give (score {again.score}, {again.conclusion})", path=EVIDENCE_JSON)


def _manifest(zf: zipfile.ZipFile, names: list[str], report: VerifyReport) -> tuple[Optional[Manifest], bytes]:
    if MANIFEST not in names:
        report.add("manifest_missing", "the bundle has no manifest.json", path=MANIFEST)
        return None, b""
    try:
        data = _read(zf, MANIFEST)
        return Manifest.model_validate_json(data), data
    except (ValidationError, ValueError, zipfile.BadZipFile) as exc:
        report.add("manifest_invalid", f"not a valid manifest: {str(exc).splitlines()[0]}", path=MANIFEST)
        return None, b""


def _signature(zf: zipfile.ZipFile, names: list[str], manifest: Manifest, manifest_bytes: bytes, report: VerifyReport,
               pubkey: Optional[Ed25519PublicKey], pinned_fp: Optional[str] = None) -> None:
    embedded: Optional[Ed25519PublicKey] = None
    key: Optional[Ed25519PublicKey]  # None: no usable key, the signature is not checked
    try:
        embedded = signing.load_public_key_b64(manifest.collector.public_key)
    except signing.SigningKeyError as exc:
        report.add("manifest_invalid", f"collector.public_key: {exc}", path=MANIFEST)
    if pubkey is not None:
        report.key_source = "pinned"
        key = pubkey
        if embedded is not None and _pub_b64(embedded) != _pub_b64(pubkey):
            report.add("key_mismatch", "the manifest names collector key "
                       f"{manifest.collector.fingerprint[:16]}…, not the key given with --pubkey "
                       f"({sha256_hex(base64.b64decode(_pub_b64(pubkey)))[:16]}…)", path=MANIFEST)
    elif pinned_fp is not None:
        key = embedded
        if embedded is not None:
            have = fingerprint_b64(manifest.collector.public_key)
            if have == pinned_fp:
                report.key_source = "fingerprint"
            else:
                report.key_source = "bundle"
                report.add("key_mismatch", f"the bundle is signed by collector key {have[:16]}…, not the key with "
                           f"the fingerprint given with --fingerprint ({pinned_fp[:16]}…)", path=MANIFEST)
    else:
        report.key_source = "bundle" if embedded is not None else "none"
        key = embedded
        report.warnings.append("no --pubkey or --fingerprint given: the signature was checked with the key inside "
                               "the bundle, which anyone who forges a bundle replaces with their own; it shows the "
                               "bundle is consistent, not who made it. Pin the collector's key (`sentinel key "
                               "show` on the collector, obtained out of band) and compare the fingerprint "
                               f"{manifest.collector.fingerprint}")
    if key is not None:
        report.key_fingerprint = sha256_hex(base64.b64decode(_pub_b64(key)))
        if embedded is not None and sha256_hex(base64.b64decode(manifest.collector.public_key)) != \
                manifest.collector.fingerprint:
            report.add("manifest_invalid", "collector.fingerprint is not the SHA-256 of collector.public_key",
                       path=MANIFEST)
    if SIGNATURE not in names:
        report.signature = "missing"
        report.add("signature_missing", "the bundle has no manifest.sig", path=SIGNATURE)
        return
    if key is None:
        return
    try:
        sig = _read(zf, SIGNATURE).decode("ascii").strip()
    except (UnicodeDecodeError, ValueError, zipfile.BadZipFile):
        sig = ""
    if signing.verify(key, manifest_bytes, sig):
        report.signature = "valid"
    else:
        report.signature = "invalid"
        report.add("signature_invalid", "manifest.sig does not verify: manifest.json was changed after signing, or "
                   "it was signed by another key", path=SIGNATURE)
    _raw_signature(zf, names, sig, report)
    _ssh_signature(zf, names, key, manifest_bytes, report)


def _raw_signature(zf: zipfile.ZipFile, names: list[str], sig_b64: str, report: VerifyReport) -> None:
    """manifest.sig.bin (for openssl) must be the very signature in manifest.sig, so the two never disagree."""
    if SIGNATURE_RAW not in names:
        report.warnings.append(f"the bundle has no {SIGNATURE_RAW} (made by an older sentinel): it cannot be checked "
                               "with openssl, only with `sentinel verify`")
        return
    try:
        same = _read(zf, SIGNATURE_RAW) == raw_signature(sig_b64)
    except (ValueError, zipfile.BadZipFile):
        same = False
    if not same:
        report.add("signature_invalid", f"{SIGNATURE_RAW} is not the signature in {SIGNATURE}", path=SIGNATURE_RAW)


def _ssh_signature(zf: zipfile.ZipFile, names: list[str], key: Ed25519PublicKey, manifest_bytes: bytes,
                   report: VerifyReport) -> None:
    """manifest.sshsig (for ssh-keygen -Y verify) must be a valid signature of manifest.json by the same key."""
    if SIGNATURE_SSH not in names:
        report.warnings.append(f"the bundle has no {SIGNATURE_SSH} (made by an older sentinel): it cannot be checked "
                               "with ssh-keygen")
        return
    try:
        problem = check_ssh_signature(_read(zf, SIGNATURE_SSH), key, manifest_bytes)
    except (ValueError, zipfile.BadZipFile) as exc:
        problem = str(exc)
    if problem:
        report.add("signature_invalid", f"{SIGNATURE_SSH}: {problem}", path=SIGNATURE_SSH)


def _files(zf: zipfile.ZipFile, names: list[str], manifest: Manifest, report: VerifyReport) -> None:
    listed = {f.path: f for f in manifest.files}
    present = set(names) - {MANIFEST, SIGNATURE, SIGNATURE_RAW, SIGNATURE_SSH}
    for name in sorted(present - set(listed)):
        report.add("file_added", "not listed in the manifest", path=name)
    for name in sorted(set(listed) - present):
        report.add("file_removed", "listed in the manifest but missing from the bundle", path=name)
    for name in sorted(present & set(listed)):
        want = listed[name]
        try:
            with zf.open(name) as fh:
                digest, size = sha256_stream(fh)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:  # e.g. a CRC error
            report.add("file_changed", f"cannot be read back: {exc}", path=name)
            continue
        report.files_checked += 1
        if digest != want.sha256 or size != want.size:
            report.add("file_changed", f"SHA-256 {digest[:16]}… ({size} bytes) differs from the manifest's "
                       f"{want.sha256[:16]}… ({want.size} bytes)", path=name)


def _evidence(zf: zipfile.ZipFile, names: list[str], report: VerifyReport) -> Optional[SystemEvidence]:
    if EVIDENCE_JSON not in names:
        return None  # already reported as file_removed
    try:
        return SystemEvidence.model_validate_json(_read(zf, EVIDENCE_JSON))
    except (ValidationError, ValueError) as exc:
        report.add("evidence_invalid", f"cannot be read as evidence: {str(exc).splitlines()[0]}", path=EVIDENCE_JSON)
        return None


def _consistency(ev: SystemEvidence, manifest: Manifest, report: VerifyReport) -> None:
    """The signed manifest and evidence.json must tell the same story about system, range and chain."""
    pairs = [("system", ev.system.name, manifest.system.name),
             ("collector key", ev.collector.public_key, manifest.collector.public_key),
             ("time range", ev.range, manifest.range),
             ("chain anchor", ev.chain.anchor, manifest.chain.anchor),
             ("chain head", ev.chain.head, manifest.chain.head),
             ("chain runs", len(ev.chain.entries), manifest.chain.runs)]
    for what, a, b in pairs:
        if a != b:
            report.add("manifest_mismatch", f"{what} in evidence.json ({a}) differs from the signed manifest ({b})",
                       path=EVIDENCE_JSON)


def _chain(zf: zipfile.ZipFile, names: list[str], ev: SystemEvidence, report: VerifyReport) -> dict[int, bytes]:
    """Recompute the chain from the raw bodies; returns run id -> body bytes for the result check."""
    bodies: dict[int, bytes] = {}
    prev = ev.chain.anchor
    seen: set[int] = set()
    for pos, e in enumerate(ev.chain.entries, 1):
        where = f"run {e.run_id} (#{pos} in the chain, {e.object}, report {e.report_id})"
        report.runs_checked += 1
        if e.run_id in seen:
            report.add("chain_broken", f"{where} appears twice", run_id=e.run_id)
        seen.add(e.run_id)
        if e.prev_chain_hash != prev:
            report.add("chain_broken", f"chain broken at {where}: its prev_chain_hash {e.prev_chain_hash[:16]}… is not "
                       f"the previous link {prev[:16]}… (a run was removed, inserted or reordered)", run_id=e.run_id)
        if chain_hash(e.prev_chain_hash, e.digest) != e.chain_hash:
            report.add("chain_broken", f"chain broken at {where}: chain_hash is not sha256(prev_chain_hash + digest)",
                       run_id=e.run_id)
        prev = e.chain_hash
        if e.body is None:
            report.warnings.append(f"{where}: the collector did not keep its report body, so its digest cannot be "
                                   "recomputed")
        elif e.body not in names:
            report.add("body_missing", f"{where}: raw report body {e.body} is not in the bundle", path=e.body,
                       run_id=e.run_id)
        else:
            try:
                body = _read(zf, e.body)
            except ValueError as exc:
                report.add("body_missing", f"{where}: raw report body {exc}", path=e.body, run_id=e.run_id)
                body = None
            if body is None:
                pass
            elif sha256_hex(body) != e.digest:
                report.add("digest_mismatch", f"report body digest mismatch for {where}: the body hashes to "
                           f"{sha256_hex(body)[:16]}…, the chain records {e.digest[:16]}…", path=e.body,
                           run_id=e.run_id)
            else:
                bodies[e.run_id] = body
        if e.envelope is not None:
            _envelope(zf, names, e, where, report)
    if ev.chain.entries and prev != ev.chain.head:
        report.add("chain_broken", f"the last link {prev[:16]}… is not the chain head {ev.chain.head[:16]}… "
                   "(runs were removed from the end)")
    return bodies


def _envelope(zf: zipfile.ZipFile, names: list[str], e: ChainEntry, where: str, report: VerifyReport) -> None:
    if e.envelope not in names:
        report.add("body_missing", f"{where}: agent envelope {e.envelope} is not in the bundle", path=e.envelope,
                   run_id=e.run_id)
        return
    try:
        raw = _read(zf, e.envelope)
        body = json.loads(raw)["body"]
        digest = sha256_hex(canonical_bytes(body))
    except (ValueError, KeyError, TypeError) as exc:
        report.add("envelope_invalid", f"{where}: not a report envelope ({exc})", path=e.envelope, run_id=e.run_id)
        return
    if digest != e.digest:
        report.add("envelope_invalid", f"{where}: the envelope's body does not hash to the chain digest",
                   path=e.envelope, run_id=e.run_id)
    if not e.agent_key or not e.signature:
        report.warnings.append(f"{where}: no agent key or signature recorded; agent signature not checked")
        return
    try:
        key = signing.load_public_key_b64(e.agent_key)
    except signing.SigningKeyError as exc:
        report.add("agent_signature_invalid", f"{where}: agent key unusable: {exc}", path=e.envelope, run_id=e.run_id)
        return
    if not signing.verify(key, raw, e.signature):
        report.add("agent_signature_invalid", f"{where}: the envelope is not signed by agent {e.agent_id}'s key",
                   path=e.envelope, run_id=e.run_id)


def _results(ev: SystemEvidence, bodies: dict[int, bytes], report: VerifyReport) -> None:
    """Each object's record in evidence.json must be the raw body it names, result by result."""
    chained = {e.run_id for e in ev.chain.entries}
    for obj, rep in ev.reports():
        if rep.scan_run_id is not None and rep.run_id is None:
            # A network scan is the collector's own work: the manifest signature is what vouches for it.
            _summaries(rep, f"{obj.name}, scan {rep.scan_run_id}", report)
            continue
        where = f"{obj.name}, run {rep.run_id}"
        if rep.run_id is None or rep.run_id not in chained:
            report.add("result_mismatch", f"{where}: the record is not backed by a run in the chain",
                       path=EVIDENCE_JSON, run_id=rep.run_id)
            continue
        body = bodies.get(rep.run_id)
        if body is None:
            continue  # its body problem is already reported
        try:
            raw = HostReport.model_validate_json(body)
        except ValidationError as exc:
            report.add("result_mismatch", f"{where}: raw body is not a host report: {str(exc).splitlines()[0]}",
                       run_id=rep.run_id)
            continue
        if raw.report_id != rep.report_id or raw.baseline != rep.baseline:
            report.add("result_mismatch", f"{where}: report id or baseline differs from the raw body",
                       path=EVIDENCE_JSON, run_id=rep.run_id)
        # In order, result by result: a check id may appear twice in a report (its last result counts).
        if len(raw.results) != len(rep.results):
            report.add("result_mismatch", f"{where}: evidence.json has {len(rep.results)} results, the raw body "
                       f"{len(raw.results)}", path=EVIDENCE_JSON, run_id=rep.run_id)
        for a, b in zip(raw.results, rep.results, strict=False):  # a count mismatch is reported above
            report.results_checked += 1
            da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
            if da != db:
                fields = [k for k, v in da.items() if db.get(k) != v]
                report.add("result_mismatch", f"{where}: check {a.check_id} differs from the raw body in "
                           f"{', '.join(fields)} (e.g. status {a.status.value} in the body, {b.status.value} in "
                           "evidence.json)", path=EVIDENCE_JSON, run_id=rep.run_id)
        _summaries(rep, where, report)
        # the raw body's items judged by its own results, as the export does (its claimed verdicts are not evidence)
        automated = {(i.clause, i.item): i.verdict for i in scoring.rejudged_items(raw.items, raw.results)}
        for item in rep.items:
            if automated.get((item.clause, item.item)) != item.automated:
                report.add("result_mismatch", f"{where}: item {item.clause}.{item.item} automated verdict "
                           f"{item.automated.value} differs from the raw body's "
                           f"{getattr(automated.get((item.clause, item.item)), 'value', 'none')}",
                           path=EVIDENCE_JSON, run_id=rep.run_id)


def _same_summary(again: Summary, recorded: Summary) -> bool:
    """`recorded` is what scoring gives (`again`). A bundle written before summaries carried `advisory` (issue 14)
    has none: that count only describes results the bundle holds and decides nothing, so it is not compared."""
    a, b = again.model_dump(mode="json"), recorded.model_dump(mode="json")
    if not b.get("advisory"):
        a.pop("advisory", None)
        b.pop("advisory", None)
    return a == b


def _summaries(rep: ReportEvidence, where: str, report: VerifyReport) -> None:
    """Verdicts decided by a person must be that person's, and the scores must be what scoring gives."""
    for item in rep.items:
        if item.source == "automated" and item.verdict != item.automated:
            report.add("result_mismatch", f"{where}: item {item.clause}.{item.item} shows {item.verdict.value} but "
                       f"its checks say {item.automated.value} and no manual assessment decided it",
                       path=EVIDENCE_JSON, run_id=rep.run_id)
        if item.source == "manual" and item.manual is None:
            report.add("result_mismatch", f"{where}: item {item.clause}.{item.item} claims a manual verdict without "
                       "an assessment", path=EVIDENCE_JSON, run_id=rep.run_id)
    again = scoring.summarize(rep.items, rep.results)
    if not _same_summary(again, rep.summary):
        report.add("result_mismatch", f"{where}: the summary (score {rep.summary.score}, {rep.summary.conclusion}) is "
                   f"not what its items and results give (score {again.score}, {again.conclusion})",
                   path=EVIDENCE_JSON, run_id=rep.run_id)


def _manual(zf: zipfile.ZipFile, names: list[str], ev: SystemEvidence, report: VerifyReport) -> None:
    """A manual verdict in a record must be the recorded assessment's; attachments must be the files listed."""
    by_id = {a.id: a for a in ev.manual_assessments}
    for obj, rep in ev.reports():
        for item in rep.items:
            if item.source != "manual" or item.manual is None:
                continue
            a = by_id.get(item.manual.assessment_id)
            if a is None or a.verdict != item.verdict or (a.clause, a.item) != (item.clause, item.item):
                report.add("result_mismatch", f"{obj.name}, run {rep.run_id}: item {item.clause}.{item.item} shows "
                           f"manual verdict {item.verdict.value}, which no listed assessment gave", path=EVIDENCE_JSON,
                           run_id=rep.run_id)
    for a in ev.manual_assessments:
        for x in a.attachments:
            if x.path not in names:
                continue  # reported as file_removed if the manifest lists it
            try:
                with zf.open(x.path) as fh:
                    digest, size = sha256_stream(fh)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error):
                continue  # reported by the file check
            if digest != x.sha256:
                report.add("file_changed", f"attachment of assessment {a.id} ({a.clause}.{a.item}) does not match "
                           f"the SHA-256 recorded with the assessment", path=x.path)
