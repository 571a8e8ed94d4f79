"""The catalogue of GB/T 22239-2019 (sentinel/catalogue.py, baselines/catalogue/*.yaml).

The loader derives every number from order, as the standard numbers: a small catalogue written here checks the
rules (a level without a control point renumbers the later ones; the cloud part at level 2 without 安全管理中心), and
the shipped catalogue is counted against the standard's own totals and checked at clauses whose numbers are known.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sentinel.catalogue import CatalogueError, load, load_from

MINI = """\
standard: GB/T 22239-2019
part: general
classes:
  - key: ces
    code: CES
    order: 4
    name: {zh: 安全计算环境, en: Computing environment}
    control_points:
      - key: ces.auth
        name: {zh: 身份鉴别, en: Authentication}
        items:
          - {key: ces.auth.identify, levels: [2, 3, 4], zh: 甲, en: A, weight: 0.7, weight_basis: record}
          - {key: ces.auth.multi-factor, levels: [3, 4], zh: 乙, en: B, weight: 1.0, weight_basis: record,
             at: {4: {zh: 乙四, weight: 0.4}}}
      - key: ces.confidentiality
        name: {zh: 数据保密性, en: Confidentiality}
        items:
          - {key: ces.confidentiality.transit, levels: [3, 4], zh: 丙, en: C, weight: 1.0, weight_basis: record}
      - key: ces.backup
        name: {zh: 数据备份恢复, en: Backup}
        at: {2: {name: {zh: 备份, en: Backup (L2)}}}
        items:
          - {key: ces.backup.local, levels: [2, 3, 4], zh: 丁, en: D, weight: 1.0, weight_basis: rule}
  - key: pes
    code: PES
    order: 1
    name: {zh: 安全物理环境, en: Physical}
    control_points:
      - key: pes.location
        name: {zh: 物理位置选择, en: Location}
        items:
          - {key: pes.location.building, levels: [2, 3, 4], zh: 戊, en: E, weight: 0.7, weight_basis: rule}
"""

CLOUD = """\
standard: GB/T 22239-2019
part: cloud
classes:
  - key: smc
    code: SMC
    order: 5
    name: {zh: 安全管理中心, en: Management centre}
    control_points:
      - key: cloud.smc.central
        name: {zh: 集中管控, en: Central control}
        items:
          - {key: cloud.smc.central.resources, levels: [3, 4], zh: 己, en: F, weight: 0.7, weight_basis: rule}
  - key: cms
    code: CMS
    order: 6
    name: {zh: 安全建设管理, en: Construction}
    control_points:
      - key: cloud.cms.provider
        name: {zh: 云服务商选择, en: Provider}
        items:
          - {key: cloud.cms.provider.compliant, levels: [2, 3, 4], zh: 庚, en: G, weight: 0.4, weight_basis: rule}
"""


def write(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def test_numbers_follow_the_levels_present(tmp_path):
    cat = load_from(write(tmp_path, general=MINI, cloud=CLOUD))
    # Classes are numbered by order among those present: pes is 1, ces is its order's rank (2 here, the mini
    # catalogue has only two classes), at every level's own section.
    assert cat.item("pes.location.building", 2).ref == "7.1.1.1.a"
    assert cat.item("ces.auth.identify", 3).ref == "8.1.2.1.a"
    assert cat.item("ces.auth.multi-factor", 4).ref == "9.1.2.1.b"
    # Level 2 has no 数据保密性: its 数据备份恢复 moves up one number; level 3 keeps it third.
    assert cat.item("ces.backup.local", 2).clause == "7.1.2.2"
    assert cat.item("ces.backup.local", 3).clause == "8.1.2.3"
    # The cloud part at level 2 has no 安全管理中心, so 安全建设管理 is 7.2.1 there and 8.2.2 at level 3.
    assert cat.item("cloud.cms.provider.compliant", 2).ref == "7.2.1.1.a"
    assert cat.item("cloud.cms.provider.compliant", 3).ref == "8.2.2.1.a"


def test_level_differences_and_units(tmp_path):
    cat = load_from(write(tmp_path, general=MINI))
    four = cat.item("ces.auth.multi-factor", 4)
    assert (four.text.zh, four.text.en, four.weight) == ("乙四", "B", 0.4)
    assert cat.item("ces.auth.multi-factor", 3).weight == 1.0
    assert cat.control("ces.backup", 2).name.en == "Backup (L2)"
    assert cat.control("ces.backup", 3).name.en == "Backup"
    # GB/T 28448 units count the items of a class at a level.
    assert [i.unit for i in cat.items(3, class_key="ces")] == [f"L3-CES1-0{n}" for n in range(1, 5)]
    assert [i.unit for i in cat.items(2, class_key="ces")] == ["L2-CES1-01", "L2-CES1-02"]
    assert cat.by_clause("8.1.2.1", "b", 3).key == "ces.auth.multi-factor"


def test_lookups_say_what_is_missing(tmp_path):
    cat = load_from(write(tmp_path, general=MINI))
    with pytest.raises(KeyError, match=r"level 2 has no such item \(it is in level 3, 4\)"):
        cat.item("ces.auth.multi-factor", 2)
    with pytest.raises(KeyError, match="no such item"):
        cat.item("ces.auth.nothing", 3)
    assert cat.levels_of("ces.confidentiality") == (3, 4)


@pytest.mark.parametrize("change, message", [
    (("ces.backup.local, levels", "ces.auth.identify, levels"), "key defined twice"),
    (("key: ces.backup.local", "key: ces.other.local"), "must start with 'ces.backup.'"),
    (("weight: 0.7, weight_basis: record}", "weight: 0.5, weight_basis: record}"), "weight"),
    (("at: {4: {zh: 乙四", "at: {2: {zh: 乙四"), "level 2 is not in levels"),
    (("levels: [2, 3, 4], zh: 戊", "levels: [5], zh: 戊"), "levels"),
])
def test_bad_catalogue_names_file_and_line(tmp_path, change, message):
    old, new = change
    assert old in MINI
    write(tmp_path, general=MINI.replace(old, new, 1))
    with pytest.raises(CatalogueError) as err:
        load_from(tmp_path)
    assert message in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "general.yaml") + ":")
    line = int(str(err.value).split(":")[1])
    assert 1 < line <= MINI.count("\n")


# ---- the shipped catalogue against the standard ------------------------------------------------------------

# 安全通用要求 and 云计算安全扩展要求 items per level, per class and control points, as the standard's text counts
# them (§7 / §8 / §9 of GB/T 22239-2019) and GB/T 28448-2019 lists one 测评单元 per item (docs/catalogue-sources.md
# names both texts). The often cited 232 for level 4 is in neither: both count 228. Level 2's cloud part has 29
# (云服务商选择 c is at level 2); a comparison table's 28 is that table's tick error.
GENERAL = {2: 135, 3: 211, 4: 228}
CLOUD_TOTAL = {2: 29, 3: 46, 4: 49}
GENERAL_BY_CLASS = {
    2: {"pes": 15, "cns": 4, "abs": 11, "ces": 23, "smc": 4, "pss": 6, "ors": 9, "hrs": 7, "cms": 25, "mms": 31},
    3: {"pes": 22, "cns": 8, "abs": 20, "ces": 34, "smc": 12, "pss": 7, "ors": 14, "hrs": 12, "cms": 34, "mms": 48},
    4: {"pes": 24, "cns": 11, "abs": 21, "ces": 36, "smc": 13, "pss": 7, "ors": 15, "hrs": 14, "cms": 35, "mms": 52},
}
CLOUD_BY_CLASS = {  # level 2 has no 安全管理中心 in this part
    2: {"pes": 1, "cns": 3, "abs": 7, "ces": 11, "cms": 6, "mms": 1},
    3: {"pes": 1, "cns": 5, "abs": 8, "ces": 19, "smc": 4, "cms": 8, "mms": 1},
    4: {"pes": 1, "cns": 8, "abs": 8, "ces": 19, "smc": 4, "cms": 8, "mms": 1},
}
CONTROL_POINTS = {("general", 2): 68, ("general", 3): 71, ("general", 4): 71,
                  ("cloud", 2): 13, ("cloud", 3): 16, ("cloud", 4): 16}
# What level 4 has that level 3 has not, and the reverse: each a requirement of §9.1 / §9.2 that can be read
# against the standard.
L4_ADDS = {
    "pes.access.second-door", "pes.power.emergency-supply", "cns.architecture.bandwidth-priority",
    "cns.transmission.mutual-auth", "cns.transmission.hardware-crypto", "abs.boundary.effective-blocking",
    "abs.boundary.device-verification", "abs.access.protocol-isolation", "ces.integrity.non-repudiation",
    "ces.backup.dr-centre", "smc.central.unified-clock", "ors.staffing.key-duties-shared",
    "hrs.recruitment.internal-key-posts", "hrs.external.no-critical-access", "cms.procurement.specialist-testing",
    "mms.environment.authorise-monitor", "mms.crypto.hardware-module", "mms.incidents.joint-defence",
    "mms.emergency.cross-unit",
    "cloud.cns.architecture.security-labels", "cloud.cns.architecture.exchange-modes",
    "cloud.cns.architecture.dedicated-resource-pool",
}
L4_LACKS = {"abs.access.application-content", "abs.audit.user-behaviour"}


def test_shipped_level_4_differs_from_level_3_by_these_requirements():
    cat = load()
    three, four = {i.key for i in cat.items(3)}, {i.key for i in cat.items(4)}
    assert four - three == L4_ADDS
    assert three - four == L4_LACKS


@pytest.mark.parametrize("level", [2, 3, 4])
def test_shipped_catalogue_has_the_standards_totals(level):
    cat = load()
    assert cat.count(level, part="general") == GENERAL[level]
    assert cat.count(level, part="cloud") == CLOUD_TOTAL[level]


@pytest.mark.parametrize("level", [2, 3, 4])
def test_shipped_catalogue_by_class_and_control_points(level):
    cat = load()
    for part, by_class in (("general", GENERAL_BY_CLASS[level]), ("cloud", CLOUD_BY_CLASS[level])):
        classes = {c.class_key for c in cat.controls(level, part=part)}
        assert {k: cat.count(level, part=part, class_key=k) for k in classes} == by_class, part
        assert len(cat.controls(level, part=part)) == CONTROL_POINTS[(part, level)], part


@pytest.mark.parametrize("key, level, ref", [
    ("ces.auth.identify", 3, "8.1.4.1.a"),
    ("ces.auth.multi-factor", 3, "8.1.4.1.d"),
    ("ces.access.security-labels", 3, "8.1.4.2.g"),
    ("ces.intrusion.services-ports", 2, "7.1.4.4.b"),
    ("ces.backup.local", 2, "7.1.4.8.a"),       # level 2 has no 数据保密性
    ("ces.backup.local", 3, "8.1.4.9.a"),
    ("ces.personal.unauthorised-use", 2, "7.1.4.10.b"),
    ("ces.personal.unauthorised-use", 4, "9.1.4.11.b"),
    ("ces.integrity.non-repudiation", 4, "9.1.4.7.c"),
    ("ces.backup.dr-centre", 4, "9.1.4.9.d"),
    ("cns.transmission.confidentiality", 3, "8.1.2.2.b"),
    ("abs.access.default-deny", 3, "8.1.3.2.a"),
    ("abs.boundary.controlled-interface", 2, "7.1.3.1.a"),
])
def test_shipped_clauses_where_the_standard_is_known(key, level, ref):
    assert load().item(key, level).ref == ref


@pytest.mark.parametrize("key, level, start", [
    # where one level words an item differently from the next, as the standard prints it
    ("pes.access.entrance", 2, "机房出入口应安排专人值守或配置电子门禁系统"),
    ("pes.access.entrance", 3, "机房出入口应配置电子门禁系统"),
    ("ces.integrity.transit", 2, "应采用校验技术保证"),
    ("ces.integrity.transit", 3, "应采用校验技术或密码技术保证"),
    ("ces.integrity.transit", 4, "应采用密码技术保证重要数据在传输过程中"),
    ("ces.integrity.storage", 4, "应采用密码技术保证重要数据在存储过程中"),
    ("smc.audit.analysis", 2, "应通过审计管理员对审计记录进行分析"),
    ("smc.audit.analysis", 4, "应通过审计管理员对审计记录应进行分析"),
    ("cms.suppliers.agreements", 2, "应与选定的服务供应商签订相关协议，明确整个服务供应链各方"),
    ("mms.incidents.procedures", 2, "应制定安全事件报告和处置管理制度"),
    ("hrs.training.skill-assessment", 4, "应定期对不同岗位的人员进行技术技能考核"),
    ("cms.in-house-dev.security-testing", 3, "应保证在软件开发过程中"),
    ("cms.in-house-dev.security-testing", 4, "应在软件开发过程中"),
    ("cloud.cms.provider.sla-responsibilities", 2, "应在服务水平协议中规定云服务商的权限与责任"),
    ("cloud.ces.data.migration-integrity", 4, "应使用校验技术或密码技术保证虚拟机迁移过程中"),
    ("cloud.cms.supply-chain.change-notice", 4, "应保证供应商的重要变更"),
])
def test_shipped_wording_per_level(key, level, start):
    assert load().item(key, level).text.zh.startswith(start)


def test_shipped_units_and_record_weights():
    cat = load()
    assert cat.item("ces.auth.identify", 3).unit == "L3-CES1-01"
    assert cat.item("ces.access.assign-accounts", 3).unit == "L3-CES1-05"
    assert cat.item("ces.backup.local", 2).unit == "L2-CES1-19"  # 3+4+3+5+1+1+1 level-2 items before it
    # reference §1.2: the real level-3 record's weights for 8.1.4
    assert [(i.letter, i.weight) for i in cat.control("ces.auth", 3).items] == [
        ("a", 0.7), ("b", 0.7), ("c", 1.0), ("d", 1.0)]
    assert all(i.weight_basis == "record" for i in cat.items(3, class_key="ces", part="general"))
    # 高风险判定指引 6.4.6.1 (no local backup) judges level 3 and up only
    assert cat.item("ces.backup.local", 3).high_risk == ("6.4.6.1",)
    assert cat.item("ces.backup.local", 2).high_risk == ()


def test_shipped_record_weights_beyond_8_1_4():
    # Read in the 9018/dengbaoceping workbooks (sheet, row, column F). Level-3 record (…三级-批注-V4.xlsx):
    # 中心机房 r2 物理位置选择 a 0.40, r4 物理访问控制 a 1.00; 系统边界 r13 入侵防范 c 1.00; 安全管理中心 r8 集中管控 a
    # 1.00; 安全管理制度 r2 安全策略 a 1.00; 安全运维管理 r47 外包运维管理 b 0.40. Level-2 record (…二级v3.xlsx):
    # 安全管理制度 r3 管理制度 a 0.70 (the rule had 0.4 there), 安全运维管理 r18 恶意代码防范管理 c 0.70.
    cat = load()
    expected = {"pes.location.building": 0.4, "pes.access.entrance": 1.0, "abs.intrusion.behaviour-analysis": 1.0,
                "smc.central.management-zone": 1.0, "pss.policy.overall": 1.0, "mms.outsourcing.agreement": 0.4}
    for key, weight in expected.items():
        for level in cat.levels_of(key):  # level 4 (and level 2, which the record agrees with) keep level 3's
            item = cat.item(key, level)
            assert (item.weight, item.weight_basis) == (weight, "record"), (key, level)
    assert cat.item("pss.rules.management-activities", 2).weight == 0.7
    assert cat.item("pss.rules.management-activities", 3).weight == 0.7
    assert cat.item("mms.malware.signature-checks", 2).weight_basis == "record"
    # every general item of level 3 has the record's weight; no record weights a cloud item or a level-4-only one
    assert all(i.weight_basis == "record" for i in cat.items(3, part="general"))
    assert all(i.weight_basis == "rule" for i in cat.items(3, part="cloud"))
    assert cat.item("smc.central.unified-clock", 4).weight_basis == "rule"


def test_every_shipped_item_has_both_languages_at_every_level():
    cat = load()
    for level in (2, 3, 4):
        for item in cat.items(level):
            assert item.text.zh.strip() and item.text.en.strip(), item.key
            assert not item.text.zh.endswith("。"), f"{item.key}: the catalogue keeps texts without the full stop"
