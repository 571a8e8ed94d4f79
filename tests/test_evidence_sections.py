"""The report's structure (issue 18 item 3): the scope statement on the cover and beside every conclusion,
and the 2021 template's chapters that a person writes, recorded through the REST API (and the CLI) like
manual items, exported with their text, or 待填写 until written; on SQLite and PostgreSQL."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from openpyxl import load_workbook

from sentinel.cli import main
from sentinel.evidence.sections import SECTIONS
from tests import evidence_seed as seed
from tests.collector_helpers import assessment_world, audit_rows, bearer

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

TOPOLOGY = "核心区与互联网区之间部署防火墙；数据库服务器位于核心区，仅应用服务器可访问 3306 端口。"


@pytest.fixture
def env(db, make_client):
    w = assessment_world(db)
    return w, make_client(db)


def test_sections_through_the_api(env, db):
    w, client = env
    base = f"/api/v1/systems/{w.systems['his']}/report-sections"
    listed = client.get(base, headers=bearer(w.tokens["reader"]))
    assert listed.status_code == 200
    assert [s["key"] for s in listed.json()] == [s.key for s in SECTIONS]
    assert {s["status"] for s in listed.json()} == {"to_fill"}
    put = client.put(f"{base}/topology", headers=bearer(w.tokens["assessor"]), json={"text": TOPOLOGY})
    assert put.status_code == 200, put.text
    assert put.json()["status"] == "filled" and put.json()["text"] == TOPOLOGY and put.json()["number"] == "2.2"
    again = client.put(f"{base}/topology", headers=bearer(w.tokens["assessor"]), json={"text": TOPOLOGY + "（修订）"})
    assert again.status_code == 200
    now = {s["key"]: s for s in client.get(base, headers=bearer(w.tokens["reader"])).json()}
    assert now["topology"]["text"].endswith("（修订）") and now["overview"]["status"] == "to_fill"
    assert len(audit_rows(db, "report_section.set")) == 2
    # roles, departments, bad input: named, never a 5xx
    assert client.put(f"{base}/topology", headers=bearer(w.tokens["reader"]), json={"text": "x"}).status_code == 403
    assert client.put(f"{base}/topology", headers=bearer(w.tokens["operator"]), json={"text": "x"}).status_code == 403
    other = client.put(f"{base}/topology", headers=bearer(w.tokens["tax-assessor"]), json={"text": "x"})
    assert other.status_code == 404
    assert client.get(base, headers=bearer(w.tokens["tax-assessor"])).status_code == 404
    unknown = client.put(f"{base}/appendix", headers=bearer(w.tokens["assessor"]), json={"text": "x"})
    assert unknown.status_code == 404 and "report section appendix not found" in unknown.json()["detail"]
    assert client.put(f"{base}/Chapter-9", headers=bearer(w.tokens["assessor"]), json={"text": "x"}).status_code == 422
    for body in ({"text": ""}, {"text": "x", "extra": 1}, {}):
        r = client.put(f"{base}/overall", headers=bearer(w.tokens["assessor"]), json=body)
        assert r.status_code == 422, (body, r.text)
    blank = client.put(f"{base}/overall", headers=bearer(w.tokens["assessor"]), json={"text": "   "})
    assert blank.status_code == 422 and "text: empty" in blank.json()["detail"]
    assert client.put(f"{base}/overall", json={"text": "x"}).status_code == 401


def test_the_longest_chapter_fits_however_the_client_escapes_it(db, make_client):
    """A chapter of the most characters the schema allows, sent as json.dumps sends it (every non-ASCII
    character escaped: 6 bytes each, 12 outside the BMP), is stored on a collector whose body limit is sized
    for agent reports below that (max_body_bytes 512 KiB); one character more is a 422 naming the field, and
    only a body past what any valid chapter can take is a 413, naming the section's own limit."""
    from sentinel.collector.routers.report_sections import SECTION_BODY_BYTES
    from sentinel.evidence.sections import MAX_SECTION_CHARS

    w = assessment_world(db)
    client = make_client(db, max_body_bytes=512 * 1024)
    base = f"/api/v1/systems/{w.systems['his']}/report-sections"
    headers = {**bearer(w.tokens["assessor"]), "Content-Type": "application/json"}
    longest = "𠀀" * MAX_SECTION_CHARS  # outside the BMP: \ud840\udc00, the widest escape
    body = json.dumps({"text": longest})
    assert len(body) > client.app.state.settings.max_body_bytes
    stored = client.put(f"{base}/overview", headers=headers, content=body)
    assert stored.status_code == 200, stored.text[:300]
    assert client.get(base, headers=bearer(w.tokens["reader"])).json()[0]["text"] == longest
    over = client.put(f"{base}/overview", headers=headers, content=json.dumps({"text": "界" * (MAX_SECTION_CHARS + 1)}))
    assert over.status_code == 422 and over.json()["errors"][0]["loc"] == "body.text", over.text[:300]
    huge = client.put(f"{base}/overview", headers=headers, content=b'{"text": "' + b"x" * SECTION_BODY_BYTES + b'"}')
    assert huge.status_code == 413 and f"limit of {SECTION_BODY_BYTES} bytes of a report section" in huge.text


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sections")
    s = seed.seed_world(tmp)
    common = ["--state-dir", str(tmp / "state"), "--database-url", s.url]
    assert main(["report-section", "set", "--system", seed.SYSTEM, "--section", "topology", "--text", TOPOLOGY,
                 "--assessor", "王五", *common]) == 0
    overall = tmp / "overall.txt"
    overall.write_text("数据库主机的空口令问题无其他措施可补偿。\n", encoding="utf-8")
    assert main(["report-section", "set", "--system", seed.SYSTEM, "--section", "overall", "--file", str(overall),
                 "--assessor", "王五", *common]) == 0
    out = tmp / "b.zip"
    assert main(["export", "--system", seed.SYSTEM, "-o", str(out), *common]) == 0
    en = tmp / "en.html"
    assert main(["export", "--system", seed.SYSTEM, "--format", "html", "--lang", "en", "-o", str(en), *common]) == 0
    with zipfile.ZipFile(out) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    yield s, tmp, common, files, en.read_text(encoding="utf-8")
    s.db.dispose()


def test_cli_set_and_list(exported, capsys):
    s, tmp, common, _, _ = exported
    capsys.readouterr()
    assert main(["report-section", "list", "--system", seed.SYSTEM, *common]) == 0
    lines = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    assert "cli:王五" in lines["topology"] and lines["overview"].endswith("待填写")
    assert main(["report-section", "set", "--system", seed.SYSTEM, "--section", "nope", "--text", "x",
                 "--assessor", "a", *common]) == 2
    assert "--section report section 'nope': expected one of overview" in capsys.readouterr().err
    assert main(["report-section", "set", "--system", seed.SYSTEM, "--section", "overview", "--assessor", "a",
                 *common]) == 2
    assert main(["report-section", "set", "--system", "nope", "--section", "overview", "--text", "x",
                 "--assessor", "a", *common]) == 2
    assert "system nope not found" in capsys.readouterr().err


def test_every_chapter_in_the_exports(exported):
    _, _, _, files, en = exported
    html = files["report.html"].decode()
    for spec in SECTIONS:
        assert f'id="chapter-{spec.key}"' in html and spec.title.zh in html
    assert TOPOLOGY in html and "数据库主机的空口令问题无其他措施可补偿。" in html
    # the chapters nobody wrote are marked, the written ones are not
    chapters = {spec.key: html.split(f'id="chapter-{spec.key}"', 1)[1].split("</section>", 1)[0] for spec in SECTIONS}
    assert "待填写" not in chapters["topology"] and "cli:王五" in chapters["topology"]
    assert all("【待填写】" in chapters[k] for k in ("overview", "business", "risk_analysis", "conclusion", "advice"))
    # data where data exists: the objects, the per-control-point counts
    assert "db-1" in chapters["assets"] and "web-1" in chapters["assets"]
    assert "8.1.4.2" in chapters["single_summary"]
    wb = load_workbook(io.BytesIO(files["record.xlsx"]), read_only=True)
    rows = list(wb["报告章节"].iter_rows(values_only=True))
    assert rows[0][:4] == ("章节", "标题", "状态", "内容")
    by_no = {r[0]: r for r in rows[1:]}
    assert by_no["2.2"][2] == "已填写" and by_no["2.2"][3] == TOPOLOGY and by_no["2.2"][5] == "cli:王五"
    assert by_no["1"][2] == "待填写" and by_no["1"][3].startswith("待填写")
    sections = json.loads(files["evidence.json"])["sections"]
    assert [s["key"] for s in sections] == [s.key for s in SECTIONS]
    assert 'id="chapter-overview"' in en and "to be filled in" in en


def test_scope_on_the_cover_and_beside_every_conclusion(exported):
    _, _, _, files, en = exported
    html = files["report.html"].decode()
    scope = html.split('id="scope">', 1)[1].split("</p>", 1)[0]
    assert "安全计算环境" in scope and "不是系统的等级测评结论" in scope
    covered, not_covered = scope.split("未覆盖")[0].split("：", 1)
    assert "安全计算环境" in covered and "安全计算环境" not in not_covered
    for missing in ("安全物理环境", "安全通信网络", "安全区域边界", "安全管理中心", "安全运维管理"):
        assert missing in not_covered, scope
    assert "网络扫描" in scope and "2 台主机" in scope
    # the cover's conclusion card and each object's conclusion say they are within the scope
    cover, rest = html.split('id="conclusion"', 1)
    assert "结论 (覆盖范围内)" in cover[-200:]
    assert rest.count("结论 (覆盖范围内)") >= 3  # db-1, web-1, network
    assert "不是系统的等级测评结论" in html.split('id="chapter-conclusion"', 1)[1].split("</section>")[0]
    summary = {r[0]: r[1] for r in load_workbook(io.BytesIO(files["record.xlsx"]), read_only=True)["汇总"]
               .iter_rows(values_only=True) if r and r[0]}
    assert "安全计算环境" in summary["覆盖范围"] and "不是系统的等级测评结论" in summary["覆盖范围"]
    risk = files["risk.txt"].decode()
    assert "覆盖范围" in risk.splitlines()[1] and "安全计算环境" in risk.splitlines()[1]
    assert "不是系统的等级测评结论" in files["rectification.html"].decode()
    assert "computing environment" in en and "not the system&#39;s assessment conclusion" in en
