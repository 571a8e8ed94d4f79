"""Files attached to manual assessments through the REST API: upload, list, download, limits, department
scoping and roles, on SQLite and PostgreSQL; and an uploaded file in a `sentinel export` bundle that
`sentinel verify` accepts."""
from __future__ import annotations

import hashlib
import json
import zipfile
from urllib.parse import quote

import pytest
from sqlalchemy import update

from sentinel.evidence.attachments import MAX_ATTACHMENT_BYTES
from sentinel.store.models import AssessmentAttachment
from tests.collector_helpers import World, assessment_world, audit_rows, bearer

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

NOTE = "2026-03-03 与系统管理员访谈：仅采集业务必需的个人信息。\n".encode()


@pytest.fixture
def env(db, make_client):
    w = assessment_world(db)
    w.token("root", "admin")
    client = make_client(db)
    assessments = {}
    for system, token in (("his", "assessor"), ("etax", "tax-assessor")):
        r = client.post(f"/api/v1/systems/{w.systems[system]}/assessments", headers=bearer(w.tokens[token]),
                        json={"clause": "8.1.4.11", "item": "a", "verdict": "符合", "note": "访谈"})
        assert r.status_code == 201, r.text
        assessments[system] = r.json()["id"]
    return w, client, assessments


def url(w: World, assessments: dict, system: str = "his", suffix: str = "") -> str:
    return f"/api/v1/systems/{w.systems[system]}/assessments/{assessments[system]}/attachments{suffix}"


def upload(client, path: str, token: str, filename: str = "访谈记录.txt", data: bytes = NOTE,
           form: dict | None = None):
    return client.post(path, headers=bearer(token), files={"file": (filename, data, "text/plain")}, data=form)


def test_upload_list_download(env, db):
    w, client, assessments = env
    token = w.tokens["assessor"]
    first = upload(client, url(w, assessments), token)
    assert first.status_code == 201, first.text
    meta = first.json()
    assert meta["name"] == "访谈记录.txt" and meta["size"] == len(NOTE)
    assert meta["sha256"] == hashlib.sha256(NOTE).hexdigest() and meta["assessment_id"] == assessments["his"]
    # the `name` field names the stored file instead of the upload's file name
    second = upload(client, url(w, assessments), token, filename="scan0001.pdf", data=b"%PDF-1.4 policy",
                    form={"name": "隐私政策.pdf"})
    assert second.status_code == 201 and second.json()["name"] == "隐私政策.pdf"

    listed = client.get(url(w, assessments), headers=bearer(token))
    assert listed.status_code == 200
    assert [(a["id"], a["name"]) for a in listed.json()] == [(meta["id"], "访谈记录.txt"),
                                                             (second.json()["id"], "隐私政策.pdf")]
    assert listed.json()[0] == meta  # metadata only, the same as the upload answered
    paged = client.get(url(w, assessments), params={"limit": 1, "offset": 1}, headers=bearer(token)).json()
    assert [a["name"] for a in paged] == ["隐私政策.pdf"]

    got = client.get(url(w, assessments, suffix=f"/{meta['id']}"), headers=bearer(token))
    assert got.status_code == 200 and got.content == NOTE
    assert got.headers["x-sentinel-sha256"] == meta["sha256"]
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["x-content-type-options"] == "nosniff"
    disposition = got.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"filename*=UTF-8''{quote('访谈记录.txt')}" in disposition
    # readers of the department may list and download
    reader = bearer(w.tokens["reader"])
    assert client.get(url(w, assessments, suffix=f"/{meta['id']}"), headers=reader).content == NOTE

    entries = [e for e in audit_rows(db, "assessment.attach") if e.outcome == "ok"]
    assert [e.target for e in entries] == [f"assessment:{assessments['his']}"] * 2
    assert meta["sha256"] in entries[0].detail and entries[0].actor.startswith("token:")


@pytest.mark.parametrize("form, field", [
    ({"name": "../../etc/passwd"}, "name"),
    ({"name": "a\\b.txt"}, "name"),
    ({"name": ".."}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"file_name": "dir/evil.txt"}, "file"),
    ({"file_name": ".."}, "file"),
])
def test_bad_names_are_refused_naming_the_field(env, db, form, field):
    w, client, assessments = env
    form = dict(form)  # the parameters are shared by both databases' runs
    filename = form.pop("file_name", "ok.txt")
    r = upload(client, url(w, assessments), w.tokens["assessor"], filename=filename, form=form or None)
    assert r.status_code == 422 and r.json()["detail"].startswith(f"{field}: attachment name "), r.text
    assert client.get(url(w, assessments), headers=bearer(w.tokens["assessor"])).json() == []
    assert [e.status_code for e in audit_rows(db) if e.outcome == "rejected"] == [422]


@pytest.mark.parametrize("form, field, words", [
    ({"name": "report\u202etxt.exe"}, "name", "U+202E RIGHT-TO-LEFT OVERRIDE"),  # shows as report"exe.txt"
    ({"file_name": "invoice\u2066.pdf"}, "file", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ({"name": "notes\u200b.txt"}, "name", "U+200B ZERO WIDTH SPACE"),
    ({"name": "scan\u00ad.pdf"}, "name", "U+00AD SOFT HYPHEN"),
    ({"name": "etc\u2215passwd"}, "name", "U+2215 DIVISION SLASH"),
    ({"file_name": "invoice\u2024pdf"}, "file", "U+2024 ONE DOT LEADER"),
    ({"name": "inv\u043eice.pdf"}, "name", "mixes Latin letters with Cyrillic ones"),  # Cyrillic о
    ({"name": "report.\u0440df"}, "name", "mixes Latin letters with Cyrillic ones"),  # Cyrillic р
])
def test_look_alike_and_bidi_names_are_refused(env, db, form, field, words):
    w, client, assessments = env
    form = dict(form)
    filename = form.pop("file_name", "ok.txt")
    r = upload(client, url(w, assessments), w.tokens["assessor"], filename=filename, form=form or None)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{field}: attachment name ") and words in r.json()["detail"], r.text
    assert client.get(url(w, assessments), headers=bearer(w.tokens["assessor"])).json() == []


def test_names_are_stored_in_nfc(env):
    """One name, one spelling: a decomposed é (e + U+0301) is stored as the composed U+00E9, so two uploads
    that look the same are named the same; scripts other than Latin stay as they are."""
    w, client, assessments = env
    token = w.tokens["assessor"]
    for sent, stored in (("re\u0301sume\u0301.pdf", "r\u00e9sum\u00e9.pdf"), ("访谈记录.txt", "访谈记录.txt"),
                         ("Ελληνικά.txt", "Ελληνικά.txt")):
        r = upload(client, url(w, assessments), token, filename=sent)
        assert r.status_code == 201 and r.json()["name"] == stored, r.text
        r = upload(client, url(w, assessments), token, form={"name": sent})
        assert r.status_code == 201 and r.json()["name"] == stored, r.text
    names = [a["name"] for a in client.get(url(w, assessments), headers=bearer(token)).json()]
    assert names[:2] == ["r\u00e9sum\u00e9.pdf"] * 2
    first = client.get(url(w, assessments)).status_code  # no token
    assert first == 401


def test_missing_file_is_refused(env):
    w, client, assessments = env
    r = client.post(url(w, assessments), headers=bearer(w.tokens["assessor"]), data={"name": "a.txt"})
    assert r.status_code == 422 and "file" in r.json()["detail"]


def test_oversize_is_refused_naming_the_limit(env, db):
    w, client, assessments = env
    token = w.tokens["assessor"]
    # one byte over: the body is within the upload's framing allowance, the route refuses the file
    r = upload(client, url(w, assessments), token, filename="big.bin", data=b"\0" * (MAX_ATTACHMENT_BYTES + 1))
    assert r.status_code == 413 and f"limit of {MAX_ATTACHMENT_BYTES} bytes" in r.json()["detail"], r.text
    # far over: refused while the body streams in, with the same limit named
    r = upload(client, url(w, assessments), token, filename="huge.bin",
               data=b"\0" * (MAX_ATTACHMENT_BYTES + (1 << 20)))
    assert r.status_code == 413
    assert r.json()["detail"] == f"attachment exceeds the limit of {MAX_ATTACHMENT_BYTES} bytes"
    # exactly the limit is fine, although it is above the collector's max_body_bytes (8 MiB) for other requests
    ok = upload(client, url(w, assessments), token, filename="max.bin", data=b"\1" * MAX_ATTACHMENT_BYTES)
    assert ok.status_code == 201 and ok.json()["size"] == MAX_ATTACHMENT_BYTES
    assert [e.status_code for e in audit_rows(db) if e.outcome == "rejected"] == [413, 413]
    other = client.post(f"/api/v1/systems/{w.systems['his']}/assessments", headers=bearer(token),
                        json={"clause": "8.1.4.11", "item": "a", "verdict": "符合", "note": "x" * (9 << 20)})
    assert other.status_code == 413 and "request body exceeds the limit of 8388608 bytes" in other.json()["detail"]


def test_other_departments_see_nothing(env):
    w, client, assessments = env
    mine = upload(client, url(w, assessments), w.tokens["assessor"]).json()
    theirs = bearer(w.tokens["tax-assessor"])
    for method, path in (("GET", url(w, assessments)), ("GET", url(w, assessments, suffix=f"/{mine['id']}"))):
        r = client.request(method, path, headers=theirs)
        assert r.status_code == 404 and r.json()["detail"] == f"system {w.systems['his']} not found", r.text
    r = upload(client, url(w, assessments), w.tokens["tax-assessor"])
    assert r.status_code == 404
    # their own system with our assessment id, or our attachment under their assessment: not found either
    crossed = f"/api/v1/systems/{w.systems['etax']}/assessments/{assessments['his']}/attachments"
    assert client.get(crossed, headers=theirs).status_code == 404
    assert upload(client, crossed, w.tokens["tax-assessor"]).status_code == 404
    r = client.get(url(w, assessments, "etax", f"/{mine['id']}"), headers=theirs)
    assert r.status_code == 404 and r.json()["detail"] == f"attachment {mine['id']} not found"
    # an admin sees every department
    assert client.get(url(w, assessments, suffix=f"/{mine['id']}"), headers=bearer(w.tokens["root"])).content == NOTE


@pytest.mark.parametrize("token", ["reader", "operator"])
def test_roles_that_cannot_assess_cannot_attach(env, db, token):
    w, client, assessments = env
    r = upload(client, url(w, assessments), w.tokens[token])
    assert r.status_code == 403 and "needs admin or assessor" in r.json()["detail"], r.text
    assert client.get(url(w, assessments), headers=bearer(w.tokens["root"])).json() == []
    denied = [e for e in audit_rows(db) if e.outcome == "denied"]
    assert [(e.status_code, e.action) for e in denied] == [(403, f"POST {url(w, assessments)}"[:64])]
    assert client.post(url(w, assessments), files={"file": ("a.txt", b"a")}).status_code == 401


def test_altered_content_is_never_served(env, db):
    w, client, assessments = env
    meta = upload(client, url(w, assessments), w.tokens["assessor"]).json()
    with db.write() as conn:
        conn.execute(update(AssessmentAttachment.__table__).values(content=b"rewritten"))
    r = client.get(url(w, assessments, suffix=f"/{meta['id']}"), headers=bearer(w.tokens["assessor"]))
    assert r.status_code == 500 and "does not match its recorded SHA-256" in r.json()["detail"]
    assert b"rewritten" not in r.content


def test_uploaded_attachment_is_exported_and_verifies(store_url, tmp_path, make_client, capsys):
    """Uploaded through the API, the file is in `sentinel export`'s bundle under its assessment, listed with its
    SHA-256, and `sentinel verify` finds the bundle intact (and a changed attachment altered)."""
    from sentinel import signing
    from sentinel.cli import main
    from tests import evidence_seed as seed

    s = seed.seed_world(tmp_path, url=store_url)
    try:
        w = World(s.db)
        with s.db.session() as session:
            from sentinel.collector import operations

            system = operations.system_by_name(session, seed.SYSTEM)
            w.departments["hrss"], w.systems[seed.SYSTEM] = system.department_id, system.id
        w.token("assessor", "assessor", ["hrss"])
        client = make_client(s.db)
        token = bearer(w.tokens["assessor"])
        r = client.post(f"/api/v1/systems/{system.id}/assessments", headers=token,
                        json={"clause": "8.1.4.9", "item": "a", "verdict": "部分符合", "note": "查阅备份策略"})
        assert r.status_code == 201
        assessment = r.json()["id"]
        policy = b"%PDF-1.4 backup policy v3"
        up = client.post(f"/api/v1/systems/{system.id}/assessments/{assessment}/attachments", headers=token,
                         files={"file": ("备份策略.pdf", policy, "application/pdf")})
        assert up.status_code == 201, up.text

        out = tmp_path / "bundle.zip"
        common = ["--state-dir", str(tmp_path / "state"), "--database-url", s.url]
        assert main(["export", "--system", seed.SYSTEM, "-o", str(out), *common]) == 0
        with zipfile.ZipFile(out) as zf:
            names = zf.namelist()
            member = f"attachments/{assessment}/备份策略.pdf"
            assert member in names and zf.read(member) == policy
            assert any(n.startswith("attachments/") and n.endswith("/访谈记录.txt") for n in names)  # the CLI's
            manifest = json.loads(zf.read("manifest.json"))
            listed = {f["path"]: f["sha256"] for f in manifest["files"]}
            assert listed[member] == up.json()["sha256"]
            record = next(a for a in json.loads(zf.read("evidence.json"))["manual_assessments"]
                          if a["id"] == assessment)
            assert record["attachments"] == [{"name": "备份策略.pdf", "sha256": up.json()["sha256"],
                                              "size": len(policy), "path": member}]
            files = {n: zf.read(n) for n in names}
        pub = tmp_path / "collector.pub"
        pub.write_text(signing.public_key_b64(s.key) + "\n")
        capsys.readouterr()
        assert main(["verify", str(out), "--pubkey", str(pub)]) == 0
        assert "INTACT" in capsys.readouterr().out
        files[member] = b"%PDF-1.4 backup policy v4"
        altered = tmp_path / "altered.zip"
        with zipfile.ZipFile(altered, "w") as zf:
            for n, data in files.items():
                zf.writestr(n, data)
        assert main(["verify", str(altered), "--pubkey", str(pub)]) == 1
        assert f"file_changed: {member}" in capsys.readouterr().out
    finally:
        s.db.dispose()
