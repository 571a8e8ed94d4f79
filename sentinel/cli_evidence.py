"""`sentinel export`, `sentinel verify` and `sentinel assess`: evidence for testing agencies.

export and assess read and write the collector's store in the shared state directory (sentinel/state.py;
settings from SENTINEL_COLLECTOR_* and the --state-dir/--database-url flags, as `sentinel collector`), so
they find what `sentinel up` stored; verify needs nothing but the bundle and the trust anchor, which
`sentinel key show` prints on the collector (from the same state directory).
Exit codes: 0 ok (verify: INTACT, signed by the pinned key); 1 verify found the bundle altered; 2 usage,
configuration or data error; 3 verify found nothing altered but had no trust anchor (UNVERIFIED).
"""
from __future__ import annotations

import getpass
import re
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import NoReturn, Optional

import typer

FORMATS = ("zip", "json", "xlsx", "html", "pdf")
VERDICT_ALIASES = {"conform": "符合", "partial": "部分符合", "nonconform": "不符合", "not_applicable": "不适用",
                   "n/a": "不适用"}

StateDir = typer.Option(None, "--state-dir", help="State directory (database, keys, TLS files); default "
                        "SENTINEL_STATE_DIR, else /var/lib/sentinel (root) or ~/.local/state/sentinel, "
                        "the one `sentinel up` uses.")
DatabaseUrl = typer.Option(None, "--database-url", help="sqlite:////path.db or postgresql://user@host/db.")


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def parse_time(value: Optional[str], option: str, end_of_day: bool = False) -> Optional[datetime]:
    """RFC 3339 with a zone, or a date (UTC midnight; for --to the end of that day)."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        d = date.fromisoformat(text)
        start = datetime.combine(d, time(0), tzinfo=timezone.utc)
        return start + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else start
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{option} {value!r}: expected a date (2026-03-01) or a time with zone (2026-03-01T08:00:00+08:00)")
    if t.tzinfo is None:
        _fail(f"{option} {value!r}: give a time zone (Z or +08:00)")
    return t.astimezone(timezone.utc)


def _store(state_dir: Optional[Path], database_url: Optional[str]):
    # The collector's settings and database checks (schema at head), so both commands read the same store.
    from .cli_collector import _database, _settings

    return _database(_settings(state_dir=state_dir, database_url=database_url))


def collector_identity(key):
    """The collector as named in an export: its host name and its signing key's public half."""
    import base64
    import socket

    from . import __version__, signing
    from .evidence.digest import sha256_hex
    from .evidence.model import CollectorIdentity

    pub = signing.public_key_b64(key)
    return CollectorIdentity(name=socket.getfqdn() or socket.gethostname(), public_key=pub,
                             fingerprint=sha256_hex(base64.b64decode(pub)), software=f"sentinel {__version__}")


def export(
    system: str = typer.Option(..., "--system", help="System name (定级对象)."),
    since: Optional[str] = typer.Option(None, "--from", help="Start: date or RFC 3339 time (default: first report)."),
    until: Optional[str] = typer.Option(None, "--to", help="End: date or RFC 3339 time (default: now)."),
    fmt: str = typer.Option("zip", "--format", "-f", help="zip | json | xlsx | html | pdf"),
    lang: str = typer.Option("zh", "--lang", help="zh | en"),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    with_pdf: bool = typer.Option(False, "--with-pdf", help="zip: include report.pdf (needs WeasyPrint)."),
    key_file: Optional[Path] = typer.Option(None, "--key",
                                            help="Collector signing key (default: <state-dir>/collector.key)."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Export a system's compliance evidence: signed zip bundle, JSON, record workbook, HTML or PDF."""
    from . import signing
    from .evidence.collect import collect
    from .evidence.model import EvidenceError

    if fmt not in FORMATS:
        _fail(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if lang not in ("zh", "en"):
        _fail(f"--lang {lang}: expected zh or en")
    if not output.parent.is_dir():
        _fail(f"-o {output}: directory {output.parent} does not exist")
    if with_pdf and fmt != "zip":
        _fail("--with-pdf applies to --format zip (use --format pdf for the PDF alone)")
    start, end = parse_time(since, "--from"), parse_time(until, "--to", end_of_day=True)
    if fmt == "pdf" or with_pdf:
        from sentinel.exporters.evidence import pdf

        reason = pdf.unavailable_reason()
        if reason is not None:
            _fail(reason)
    from .cli_collector import _database, _settings

    settings = _settings(state_dir=state_dir, database_url=database_url)
    try:
        key = signing.load_private_key(key_file or settings.signing_key_file)
    except signing.SigningKeyError as exc:
        _fail(f"collector signing key: {exc} (give --key, or run the collector once to create it)")
    db = _database(settings)
    try:
        with db.session() as session:
            ev = collect(session, system, collector=collector_identity(key), start=start, end=end,
                         zombie=settings.zombie)
        data = _render(ev, fmt, lang, output, key, with_pdf)
    except EvidenceError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"-o {output}: {exc.strerror or exc}")
    finally:
        db.dispose()
    if data is not None:
        try:
            output.write_bytes(data)
        except OSError as exc:
            _fail(f"-o {output}: {exc.strerror or exc}")
    typer.echo(f"{fmt} evidence for {system}: {len(ev.objects)} object(s), {len(ev.chain.entries)} run(s), "
               f"conclusion {ev.summary.conclusion} -> {output}", err=True)
    for note in ev.notes:
        typer.echo(f"note: {note}", err=True)


def _render(ev, fmt: str, lang: str, output: Path, key, with_pdf: bool) -> Optional[bytes]:
    from .evidence.gc_pause import paused_gc

    with paused_gc():
        return _render_format(ev, fmt, lang, output, key, with_pdf)


def _render_format(ev, fmt: str, lang: str, output: Path, key, with_pdf: bool) -> Optional[bytes]:
    from sentinel.exporters.evidence import bundle, html, jsonexport, pdf, xlsx

    if fmt == "zip":
        bundle.write_bundle(ev, output, key, lang=lang, include_pdf=with_pdf)
        return None
    if fmt == "json":
        return jsonexport.export_json(ev)
    if fmt == "xlsx":
        return xlsx.export_xlsx(ev, lang)
    page = html.render_html(ev, lang)
    return page.encode("utf-8") if fmt == "html" else pdf.render_pdf(page)


EXIT_ALTERED, EXIT_UNVERIFIED = 1, 3


def verify(
    bundle: Path = typer.Argument(..., help="Evidence bundle (zip) made by `sentinel export`."),
    pubkey: Optional[Path] = typer.Option(None, "--pubkey", help="The collector's public key (PEM or base64 raw), "
                                          "obtained out of band (`sentinel key show` on the collector)."),
    fingerprint: Optional[str] = typer.Option(None, "--fingerprint", help="Or the SHA-256 fingerprint of that "
                                              "key (64 hex digits), obtained out of band."),
    as_json: bool = typer.Option(False, "--json", help="Print the verification report as JSON."),
) -> None:
    """Check a bundle offline: file hashes, signature, hash chain, results. Exit 0 INTACT (signed by the pinned
    key), 1 ALTERED, 2 usage, 3 UNVERIFIED (nothing altered, but no --pubkey/--fingerprint pinned the signer)."""
    from .evidence.trust import FingerprintError, parse_fingerprint
    from .evidence.verify import PublicKeyError, load_public_key_file, verify_bundle

    if not bundle.is_file():
        _fail(f"{bundle}: no such file")
    if pubkey is not None and fingerprint is not None:
        _fail("give either --pubkey or --fingerprint, not both")
    key = None
    if pubkey is not None:
        try:
            key = load_public_key_file(pubkey)
        except PublicKeyError as exc:
            _fail(f"--pubkey {exc}")
    if fingerprint is not None:
        try:
            parse_fingerprint(fingerprint)
        except FingerprintError as exc:
            _fail(f"--fingerprint {exc}")
    report = verify_bundle(bundle, key, fingerprint=fingerprint)
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=1) + "\n")
    else:
        fp = report.key_fingerprint or "?"
        if report.verdict == "intact":
            how = "pinned key" if report.key_source == "pinned" else "key matching the pinned fingerprint"
            head = f"INTACT: {bundle} (system {report.system or '?'})"
            sig = f"signature valid ({how} {fp[:16]}…)"
        elif report.verdict == "unverified":
            head = f"UNVERIFIED: {bundle} (system {report.system or '?'})"
            sig = (f"signature valid but signer not pinned: UNVERIFIED (the bundle's own key {fp}; give --pubkey "
                   "or --fingerprint with the collector's key obtained out of band)")
        else:
            head = f"ALTERED: {bundle} (system {report.system or '?'})"
            sig = f"signature {report.signature} ({report.key_source} key {fp[:16]}…)"
        typer.echo(f"{head}: {report.files_checked} files, {report.runs_checked} chained runs, "
                   f"{report.results_checked} results checked; {sig}")
        for p in report.problems:
            typer.echo(f"  ✗ {p}")
        for w in report.warnings:
            typer.echo(f"  ! {w}", err=True)
    raise typer.Exit({"intact": 0, "unverified": EXIT_UNVERIFIED}.get(report.verdict, EXIT_ALTERED))


key_app = typer.Typer(help="The collector's evidence signing key, for testing agencies to pin.",
                      no_args_is_help=True)


@key_app.command("show")
def key_show(
    fmt: str = typer.Option("text", "--format", "-f", help="text | pem | json | allowed-signers (a line for "
                            "`ssh-keygen -Y verify -f`)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the public key (PEM) to FILE."),
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Print the collector's public key and its fingerprint (SHA-256 of the raw key), read from the collector's
    state directory. Hand them to the testing agency out of band; it runs `sentinel verify --pubkey FILE` or
    `--fingerprint FP`. Never prints the private key."""
    import json

    from . import signing
    from .cli_collector import _settings, _state_source
    from .evidence.trust import allowed_signers, grouped, public_pem, ssh_public_key
    from .evidence.trust import fingerprint as key_fingerprint

    if fmt not in ("text", "pem", "json", "allowed-signers"):
        _fail(f"--format {fmt}: expected text, pem, json or allowed-signers")
    settings = _settings(state_dir=state_dir)
    path = settings.signing_key_file
    if not path.is_file():
        _fail(f"collector signing key {path}: no such file (state directory {settings.state_dir}, from "
              f"{_state_source(settings)}); the collector creates it on its first start (`sentinel up`, "
              "`sentinel collector`)")
    try:
        pub = signing.load_private_key(path).public_key()
    except signing.SigningKeyError as exc:
        _fail(f"collector signing key: {exc}")
    fp, pem, raw = key_fingerprint(pub), public_pem(pub), signing.public_key_b64(pub)
    if output is not None:
        try:
            output.write_text(pem, encoding="ascii")
        except OSError as exc:
            _fail(f"-o {output}: {exc.strerror or exc}")
    if fmt == "pem":
        sys.stdout.write(pem)
    elif fmt == "allowed-signers":
        sys.stdout.write(allowed_signers(pub))
    elif fmt == "json":
        sys.stdout.write(json.dumps({"algorithm": "Ed25519", "fingerprint_sha256": fp, "public_key_b64": raw,
                                     "public_key_pem": pem, "public_key_ssh": ssh_public_key(pub),
                                     "key_file": str(path)}, indent=1) + "\n")
    else:
        sys.stdout.write(f"collector evidence signing key (Ed25519), {path}\n"
                         f"fingerprint (SHA-256 of the raw key): {fp}\n"
                         f"  to read aloud: {grouped(fp)}\n"
                         f"public key (base64 of the raw 32 bytes): {raw}\n"
                         f"OpenSSH (allowed_signers line): {allowed_signers(pub)}{pem}")
    if output is not None:
        typer.echo(f"public key written to {output}; the agency checks bundles with "
                   f"`sentinel verify BUNDLE --pubkey {output.name}` or `--fingerprint {fp}`", err=True)


def _known_item(session, system, clause: str, item: str) -> None:
    """The item must exist in a baseline this system is assessed with (as its latest report per baseline
    shows, else the shipped baseline for its level), so a typo never records a verdict for nothing."""
    import json

    from sqlalchemy import func
    from sqlmodel import col, select

    from .store import envelopes
    from .store.models import Report, Run

    latest = select(func.max(Run.id)).where(Run.system_id == system.id).group_by(Run.baseline_id)
    rows = session.exec(select(Run.baseline_id, Run.baseline_version, Report.envelope)
                        .join(Report, (col(Report.agent_id) == Run.agent_id) & (col(Report.report_id) == Run.report_id))
                        .where(col(Run.id).in_(latest))).all()
    items: Optional[set] = None
    source = ""
    for baseline_id, version, envelope in rows:
        if envelope is None:
            continue
        body = json.loads(envelopes.unpack(envelope))["body"]
        items = (items or set()) | {(i["clause"], i["item"]) for i in body.get("items", [])}
        source += f"{', ' if source else ''}baseline {baseline_id} {version}"
    if items is None:
        from .baseline import BaselineError, load_baseline

        ref = f"dengbao-l{system.level}-linux"
        try:
            spec = load_baseline(ref)
        except BaselineError as exc:
            _fail(f"cannot check item {clause}.{item}: system {system.name} has no reports and baseline {ref} "
                  f"does not load: {exc}")
        items = {(c.clause, i.item) for c in spec.controls for i in c.items}
        source = f"shipped baseline {ref} (the system has no reports yet)"
    if (clause, item) not in items:
        _fail(f"--item {clause}.{item}: not a requirement item of {source}")


def record_assessment(db, system: str, item_ref: str, verdict: str, note: str, assessor: str,
                      attachments: list[Path]) -> int:
    """Store a manual assessment with its attachments in one transaction; returns its id.
    Raises typer.Exit(2) with the reason on bad input."""
    from pydantic import ValidationError

    from .collector import operations
    from .collector.auth import cli_principal
    from .collector.errors import ApiError
    from .collector.schemas import AssessmentIn
    from .evidence import attachments as att
    from .evidence.model import parse_item_ref
    from .model import Verdict

    try:
        clause, item = parse_item_ref(item_ref)
    except ValueError as exc:
        _fail(f"--item {exc}")
    value = VERDICT_ALIASES.get(verdict.strip().lower(), verdict.strip())
    if value not in {v.value for v in Verdict} - {Verdict.PENDING.value}:
        _fail(f"--verdict {verdict!r}: expected 符合, 部分符合, 不符合 or 不适用 "
              "(or conform, partial, nonconform, not_applicable)")
    if not assessor.strip():
        _fail("--assessor: give the assessor's name")
    try:
        files = [att.read_file(p) for p in attachments]
        spec = AssessmentIn(clause=clause, item=item, verdict=Verdict(value), note=note)
    except att.AttachmentError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    try:
        with db.session(write=True) as session:
            ctx = operations.Ctx(session, cli_principal(assessor.strip()))
            sysrow = operations.system_by_name(session, system)
            assert sysrow.id is not None  # a stored row
            _known_item(session, sysrow, clause, item)
            row = operations.add_assessment(ctx, sysrow.id, spec)
            for name, data in files:
                operations.add_attachment(ctx, row, name, data, detail=f"by OS user {getpass.getuser()}")
            assert row.id is not None  # a stored row
            return row.id
    except ApiError as exc:
        _fail(exc.detail)


def assess(
    system: str = typer.Option(..., "--system", help="System name."),
    item: str = typer.Option(..., "--item", help="Requirement item, e.g. 8.1.4.11.a"),
    verdict: str = typer.Option(..., "--verdict", help="符合 | 部分符合 | 不符合 | 不适用"),
    note: str = typer.Option("", "--note", help="What was examined (访谈, 文档审查 ...) and found."),
    attach: Optional[list[Path]] = typer.Option(None, "--attach", help="File to attach (repeat)."),
    assessor: str = typer.Option(..., "--assessor", help="Name of the person giving the verdict."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Record a person's verdict on a requirement item that checks cannot decide (it appears in every export)."""
    db = _store(state_dir, database_url)
    try:
        assessment_id = record_assessment(db, system, item, verdict, note, assessor, list(attach or []))
    finally:
        db.dispose()
    typer.echo(f"assessment {assessment_id}: {system} {item} {verdict} by {assessor}"
               + (f", {len(attach)} attachment(s)" if attach else ""), err=True)


section_app = typer.Typer(help="The report chapters an assessor writes (测评项目概述, 网络结构, 整体测评, "
                          "等级测评结论 ...); exports show them, or 待填写 until written.", no_args_is_help=True)


@section_app.command("set")
def section_set(
    system: str = typer.Option(..., "--system", help="System name."),
    key: str = typer.Option(..., "--section", help="Chapter key (`sentinel report-section list` shows them)."),
    text: Optional[str] = typer.Option(None, "--text", help="The chapter's content."),
    text_file: Optional[Path] = typer.Option(None, "--file", help="Or read the content from a UTF-8 text file."),
    assessor: str = typer.Option(..., "--assessor", help="Name of the person who wrote it."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Record a chapter's text for a system (append-only; the latest counts, audited as cli:NAME)."""
    from .collector import operations
    from .collector.auth import cli_principal
    from .collector.errors import ApiError
    from .evidence import sections

    if (text is None) == (text_file is None):
        _fail("give the content with --text or --file (one of them)")
    if text_file is not None:
        try:
            text = text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"--file {text_file}: {getattr(exc, 'strerror', None) or exc}")
    assert text is not None  # exactly one of --text and --file was given, and the file was read into text
    if not assessor.strip():
        _fail("--assessor: give the name of the person who wrote it")
    try:
        sections.spec(key)
        sections.check_text(text or "")
    except sections.SectionError as exc:
        _fail(f"--section {exc}" if "report section" in str(exc) else f"--{'file' if text_file else 'text'} {exc}")
    db = _store(state_dir, database_url)
    try:
        with db.session(write=True) as session:
            sysrow = operations.system_by_name(session, system)
            assert sysrow.id is not None  # a stored row
            ctx = operations.Ctx(session, cli_principal(assessor.strip()))
            row = operations.add_section(ctx, sysrow.id, key, text)
            row_id = row.id
    except ApiError as exc:
        _fail(exc.detail)
    finally:
        db.dispose()
    typer.echo(f"report section {key} of {system}: recorded as #{row_id} by {assessor}", err=True)


@section_app.command("list")
def section_list(
    system: str = typer.Option(..., "--system", help="System name."),
    lang: str = typer.Option("zh", "--lang", help="zh | en"),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Every chapter a person writes, with its state (written by whom and when, or 待填写)."""
    from .collector import operations
    from .collector.errors import ApiError
    from .evidence import sections

    if lang not in ("zh", "en"):
        _fail(f"--lang {lang}: expected zh or en")
    db = _store(state_dir, database_url)
    try:
        with db.session() as session:
            sysrow = operations.system_by_name(session, system)
            assert sysrow.id is not None  # a stored row
            latest = sections.latest_sections(session, sysrow.id)
    except ApiError as exc:
        _fail(exc.detail)
    finally:
        db.dispose()
    for spec in sections.SECTIONS:
        row = latest.get(spec.key)
        state = (f"{row.author} {row.at.isoformat(timespec='seconds')}" if row
                 else ("待填写" if lang == "zh" else "to fill"))
        typer.echo(f"{spec.key}\t{spec.number}\t{spec.title.get(lang)}\t{state}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("verify")(verify)
    app.add_typer(key_app, name="key")
    app.add_typer(section_app, name="report-section")
    app.command("assess")(assess)
