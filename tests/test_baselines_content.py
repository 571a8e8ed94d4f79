"""The shipped host baselines keep their promises: every GB/T 22239-2019 安全计算环境 item with the standard's
text and the record weight, enough checks with complete bilingual texts, probes and params that exist, the
level-2/level-4 derivations, and thresholds that accept and reject what the 作业指导书 says they should.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sentinel.baseline import load_baseline
from sentinel.catalogue import load as load_catalogue
from sentinel.engine import run_check
from sentinel.expect import evaluate
from sentinel.hostview import open_host
from sentinel.model import Baseline, Status
from sentinel.probe import ProbeContext, registry

REPO = Path(__file__).resolve().parent.parent
BASELINES = REPO / "baselines"
L3_FILE = BASELINES / "dengbao-l3-linux.yaml"
L2_FILE = BASELINES / "dengbao-l2-linux.yaml"
L4_FILE = BASELINES / "dengbao-l4-linux.yaml"
SITE_FILE = BASELINES / "examples" / "site-override.yaml"
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

_TRANSMIT_INTEGRITY = ("应采用校验技术或密码技术保证重要数据在{}过程中的完整性，"
                       "包括但不限于鉴别数据、重要业务数据、重要审计数据、重要配置数据、重要视频数据和重要个人信息等")
_CONFIDENTIALITY = "应采用密码技术保证重要数据在{}过程中的保密性，包括但不限于鉴别数据、重要业务数据和重要个人信息等"
_CRYPTO_INTEGRITY = _TRANSMIT_INTEGRITY.replace("校验技术或密码技术", "密码技术")  # level 4 (§9.1.4.7)

# GB/T 22239-2019 §8.1.4, by catalogue key: (weight in a real level-3 record, the standard's text)
L3_ITEMS = {  # catalogue key -> (weight, text); the level-3 numbering is in L3_CLAUSES
    "ces.auth.identify": (0.7, "应对登录的用户进行身份标识和鉴别，身份标识具有唯一性，"
                               "身份鉴别信息具有复杂度要求并定期更换"),
    "ces.auth.login-failure": (0.7, "应具有登录失败处理功能，"
                                    "应配置并启用结束会话、限制非法登录次数和当登录连接超时自动退出等相关措施"),
    "ces.auth.remote-eavesdrop": (1.0, "当进行远程管理时，应采取必要措施防止鉴别信息在网络传输过程中被窃听"),
    "ces.auth.multi-factor": (1.0, "应采用口令、密码技术、生物技术等两种或两种以上组合的鉴别技术对用户进行身份鉴别，"
                                   "且其中一种鉴别技术至少应使用密码技术来实现"),
    "ces.access.assign-accounts": (0.7, "应对登录的用户分配账户和权限"),
    "ces.access.default-accounts": (0.7, "应重命名或删除默认账户，修改默认账户的默认口令"),
    "ces.access.stale-accounts": (0.7, "应及时删除或停用多余的、过期的账户，避免共享账户的存在"),
    "ces.access.least-privilege": (0.4, "应授予管理用户所需的最小权限，实现管理用户的权限分离"),
    "ces.access.policy-by-authority": (0.4, "应由授权主体配置访问控制策略，访问控制策略规定主体对客体的访问规则"),
    "ces.access.granularity": (0.4, "访问控制的粒度应达到主体为用户级或进程级，客体为文件、数据库表级"),
    "ces.access.security-labels": (0.4, "应对重要主体和客体设置安全标记，并控制主体对有安全标记信息资源的访问"),
    "ces.audit.enabled": (0.7, "应启用安全审计功能，审计覆盖到每个用户，对重要的用户行为和重要安全事件进行审计"),
    "ces.audit.record-fields": (0.4, "审计记录应包括事件的日期和时间、用户、事件类型、"
                                     "事件是否成功及其他与审计相关的信息"),
    "ces.audit.record-protection": (0.4, "应对审计记录进行保护，定期备份，避免受到未预期的删除、修改或覆盖等"),
    "ces.audit.process-protection": (0.4, "应对审计进程进行保护，防止未经授权的中断"),
    "ces.intrusion.minimal-install": (0.7, "应遵循最小安装的原则，仅安装需要的组件和应用程序"),
    "ces.intrusion.services-ports": (1.0, "应关闭不需要的系统服务、默认共享和高危端口"),
    "ces.intrusion.mgmt-terminals": (0.7, "应通过设定终端接入方式或网络地址范围对通过网络进行管理的管理终端进行限制"),
    "ces.intrusion.input-validation": (1.0, "应提供数据有效性检验功能，"
                                            "保证通过人机接口输入或通过通信接口输入的内容符合系统设定要求"),
    "ces.intrusion.vulnerabilities": (0.7, "应能发现可能存在的已知漏洞，并在经过充分测试评估后，及时修补漏洞"),
    "ces.intrusion.detection": (0.7, "应能够检测到对重要节点进行入侵的行为，并在发生严重入侵事件时提供报警"),
    "ces.malware.protection": (0.7, "应采用免受恶意代码攻击的技术措施或主动免疫可信验证机制及时识别入侵和病毒行为，"
                                    "并将其有效阻断"),
    "ces.trusted.verification": (0.4, "可基于可信根对计算设备的系统引导程序、系统程序、重要配置参数和应用程序等"
                                      "进行可信验证，并在应用程序的关键执行环节进行动态可信验证，"
                                      "在检测到其可信性受到破坏后进行报警，并将验证结果形成审计记录送至安全管理中心"),
    "ces.integrity.transit": (0.7, _TRANSMIT_INTEGRITY.format("传输")),
    "ces.integrity.storage": (1.0, _TRANSMIT_INTEGRITY.format("存储")),
    "ces.confidentiality.transit": (1.0, _CONFIDENTIALITY.format("传输")),
    "ces.confidentiality.storage": (1.0, _CONFIDENTIALITY.format("存储")),
    "ces.backup.local": (1.0, "应提供重要数据的本地数据备份与恢复功能"),
    "ces.backup.offsite": (0.7, "应提供异地实时备份功能，利用通信网络将重要数据实时备份至备份场地"),
    "ces.backup.hot-redundancy": (1.0, "应提供重要数据处理系统的热冗余，保证系统的高可用性"),
    "ces.residual.auth-info": (0.7, "应保证鉴别信息所在的存储空间被释放或重新分配前得到完全清除"),
    "ces.residual.sensitive-data": (0.7, "应保证存有敏感数据的存储空间被释放或重新分配前得到完全清除"),
    "ces.personal.minimal-collection": (1.0, "应仅采集和保存业务必需的用户个人信息"),
    "ces.personal.unauthorised-use": (1.0, "应禁止未授权访问和非法使用用户个人信息"),
}
L3_CLAUSES = {key: f"8.1.4.{n}" for n, key in enumerate(
    ["ces.auth", "ces.access", "ces.audit", "ces.intrusion", "ces.malware", "ces.trusted", "ces.integrity",
     "ces.confidentiality", "ces.backup", "ces.residual", "ces.personal"], start=1)}
CONTROL_NAMES = {"ces.auth": "身份鉴别", "ces.access": "访问控制", "ces.audit": "安全审计", "ces.intrusion": "入侵防范",
                 "ces.malware": "恶意代码防范", "ces.trusted": "可信验证", "ces.integrity": "数据完整性",
                 "ces.confidentiality": "数据保密性", "ces.backup": "数据备份恢复", "ces.residual": "剩余信息保护",
                 "ces.personal": "个人信息保护"}
# check id area -> control point it belongs to
ID_AREAS = {"ia": "ces.auth", "ac": "ces.access", "au": "ces.audit", "ip": "ces.intrusion", "mc": "ces.malware",
            "di": "ces.integrity", "dc": "ces.confidentiality", "br": "ces.backup"}

L2_ITEMS = {"7.1.4.1": "abc", "7.1.4.2": "abcd", "7.1.4.3": "abc", "7.1.4.4": "abcde", "7.1.4.5": "a", "7.1.4.6": "a",
            "7.1.4.7": "a", "7.1.4.8": "ab", "7.1.4.9": "a", "7.1.4.10": "ab"}
L2_NAMES = {"7.1.4.7": "数据完整性", "7.1.4.8": "数据备份恢复", "7.1.4.9": "剩余信息保护", "7.1.4.10": "个人信息保护"}
L2_TEXTS = {
    ("7.1.4.5", "a"): "应安装防恶意代码软件或配置具有相应功能的软件，并定期进行升级和更新防恶意代码库",
    ("7.1.4.6", "a"): "可基于可信根对计算设备的系统引导程序、系统程序、重要配置参数和应用程序等进行可信验证，"
                      "并在检测到其可信性受到破坏后进行报警，并将验证结果形成审计记录送至安全管理中心",
    ("7.1.4.7", "a"): "应采用校验技术保证重要数据在传输过程中的完整性",
    ("7.1.4.8", "b"): "应提供异地数据备份功能，利用通信网络将重要数据定时批量传送至备用场地",
}
L4_TEXTS = {
    ("9.1.4.2", "g"): "应对主体、客体设置安全标记，并依据安全标记和强制访问控制规则确定主体对客体的访问",
    ("9.1.4.3", "b"): "审计记录应包括事件的日期和时间、事件类型、主体标识、客体标识和结果等",
    ("9.1.4.5", "a"): "应采用主动免疫可信验证机制及时识别入侵和病毒行为，并将其有效阻断",
    ("9.1.4.7", "a"): _CRYPTO_INTEGRITY.format("传输"),
    ("9.1.4.7", "b"): _CRYPTO_INTEGRITY.format("存储"),
    ("9.1.4.7", "c"): "在可能涉及法律责任认定的应用中，应采用密码技术提供数据原发证据和数据接收证据，"
                      "实现数据原发行为的抗抵赖和数据接收行为的抗抵赖",
    ("9.1.4.9", "d"): "应建立异地灾难备份中心，提供业务应用的实时切换",
}
HIGH_RISK_CASES = {"6.4.1.1": 2, "6.4.1.2": 2, "6.4.1.3": 3, "6.4.2.1": 2, "6.4.3.1": 2, "6.4.3.2": 2, "6.4.4.1": 2,
                   "6.4.5.1": 3, "6.4.5.2": 3, "6.4.6.1": 3, "6.3.3.1": 2, "6.3.3.2": 3, "6.2.2.1": 3,
                   "6.5.1.2": 3}  # case -> lowest level it applies to (reference §4.4)
# live-only check -> the configured-state check that works offline
LIVE_PAIRS = {
    "l3-ia-no-plaintext-mgmt-listening": "l3-ia-plaintext-mgmt-units-disabled",
    "l3-au-auditd-active": "l3-au-auditd-enabled",
    "l3-au-syslog-active": "l3-au-syslog-enabled",
    "l3-ip-high-risk-tcp-ports": "l3-ip-high-risk-units-disabled",
    "l3-ip-high-risk-udp-ports": "l3-ip-high-risk-units-disabled",
    "l3-ip-hids-running": "l3-ip-hids-installed",
    "l3-mc-antimalware-running": "l3-mc-antimalware-installed",
    "l3-br-cron-active": "l3-br-cron-enabled",
}


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def l3_raw() -> Baseline:
    """The level-3 baseline as resolved on the catalogue (the file itself names items by key only)."""
    return load_baseline(L3_FILE)


@pytest.fixture(scope="module")
def loaded() -> dict[str, Baseline]:
    return {name: load_baseline(ref) for name, ref in
            (("l2", "dengbao-l2-linux"), ("l3", "dengbao-l3-linux"), ("l4", "dengbao-l4-linux"),
             ("site", SITE_FILE))}


def _items(baseline: Baseline) -> dict:
    return {(c.clause, i.item): (c, i) for c in baseline.controls for i in c.items}


def _checks(baseline: Baseline) -> dict:
    return {k.id: (c, i, k) for c, i, k in baseline.iter_checks()}


def _documented_probes() -> dict[str, set[str]]:
    """kind -> parameter names, from the table in docs/probes.md."""
    kinds: dict[str, set[str]] = {}
    for line in (REPO / "docs" / "probes.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)]
        if len(cells) < 4 or not re.fullmatch(r"`[a-z]+\.[a-z0-9_]+`", cells[1]):
            continue
        kinds[cells[1].strip("`")] = set(re.findall(r"`([a-z_]+)(?::[^`]*)?`", cells[2]))
    return kinds


# ---- level 3: structure ----------------------------------------------------------------------------


def test_l3_has_every_computing_environment_item_with_text_and_weight(l3_raw):
    items = {i.key: (c, i) for c in l3_raw.controls for i in c.items}
    assert set(items) == set(L3_ITEMS)
    assert len(items) == 34  # 8.1.4.1 a-d ... 8.1.4.11 a-b as enumerated in the standard
    letters = "abcdefg"
    for key, (weight, text) in L3_ITEMS.items():
        control, item = items[key]
        assert item.weight == weight, key
        assert item.text.zh == text, key
        assert item.text.en.strip() and not CJK.search(item.text.en), key
        assert control.name.zh == CONTROL_NAMES[control.key]
        assert control.clause == L3_CLAUSES[control.key]
        assert item.item == letters[[k for k in L3_ITEMS if k.rpartition(".")[0] == control.key].index(key)]
    assert l3_raw.level == 3 and l3_raw.os_families == ["debian", "rhel"] and l3_raw.covers == ["ces"]


def test_baseline_files_name_items_by_key_only():
    """No shipped host baseline writes a clause, a letter, a text or a weight: the catalogue gives them."""
    raw = _raw(L3_FILE)
    assert isinstance(raw["version"], str) and raw["covers"] == ["ces"] and "controls" not in raw
    refs = [item["ref"] for item in raw["items"]]
    assert len(refs) == len(set(refs))
    for item in raw["items"]:
        assert set(item) <= {"ref", "checks", "notes"}, item["ref"]
    for path in (L2_FILE, L4_FILE):
        assert not {"renumber", "controls"} & set(_raw(path)), path


def test_every_resolved_item_is_the_catalogues(loaded):
    """Clause, letter, text, weight, unit and control point name of every item of every shipped host baseline are
    the catalogue's for the baseline's level, and the baseline has every catalogue item of what it covers."""
    cat = load_catalogue()
    for name, baseline in loaded.items():
        assert {i.key for c in baseline.controls for i in c.items} == \
            {i.key for i in cat.items(baseline.level, "general", "ces")}, name
        for control in baseline.controls:
            want = cat.control(control.key, baseline.level)
            assert (control.clause, control.name) == (want.clause, want.name), (name, control.key)
            for item in control.items:
                it = cat.item(item.key, baseline.level)
                assert (item.item, item.text, item.weight, item.unit) == (it.letter, it.text, it.weight, it.unit), \
                    (name, item.key)


CITED_NUMBER = re.compile(r"#\d+|§|\b[6-9]\.1\.\d+\.\d+\b")  # a guide row, a section or a level's clause


def test_rationales_cite_sources_as_refs_not_numbers_in_prose(loaded):
    """A check's sources are its `refs` (guide rows, high-risk cases, CIS, laws); the prose never cites a guide row
    or a clause number, which would be wrong at another level."""
    with_guide = 0
    for baseline in loaded.values():
        for _, _, check in baseline.iter_checks():
            for field in ("title", "rationale", "remediation"):
                text = getattr(check, field)
                for lang in ("zh", "en"):
                    assert not CITED_NUMBER.search(text.get(lang)), (baseline.id, check.id, field, lang)
            if check.advisory:
                assert not CITED_NUMBER.search(check.advisory.zh + check.advisory.en), check.id
            with_guide += bool(check.refs.guide)
            for row in check.refs.guide:
                assert 1 <= int(row[1:]) <= 44, (check.id, row)  # the guide rows in docs/baseline-coverage.md
            for case in check.refs.high_risk:
                assert case in HIGH_RISK_CASES, (check.id, case)
    assert with_guide >= 60  # most checks follow a row of the guide


def test_l3_checks_count_ids_and_placement(l3_raw):
    checks = list(l3_raw.iter_checks())
    assert len(checks) >= 45
    ids = [k.id for _, _, k in checks]
    assert len(ids) == len(set(ids))
    for control, item, check in checks:
        m = re.fullmatch(r"l3-([a-z]{2})-[a-z0-9]+(-[a-z0-9]+)*", check.id)
        assert m, check.id
        assert ID_AREAS[m.group(1)] == control.key, f"{check.id} sits under {item.key}"


def test_l3_checks_have_complete_bilingual_texts(l3_raw):
    for _, _, check in l3_raw.iter_checks():
        for field in ("title", "rationale", "remediation"):
            text = getattr(check, field)
            assert text.zh.strip() and CJK.search(text.zh), (check.id, field)
            assert text.en.strip() and not CJK.search(text.en), (check.id, field)


def test_manual_items_are_the_documented_ones(l3_raw):
    manual = {key for key, (_, item) in _items(l3_raw).items() if not item.checks}
    # 8.1.4.9 b and c have checks since issue 16 (backup.copies, backup.replication on what a site declares)
    assert manual == {("8.1.4.4", "d"), ("8.1.4.4", "e"), ("8.1.4.6", "a"),
                      ("8.1.4.10", "a"), ("8.1.4.10", "b"), ("8.1.4.11", "a"), ("8.1.4.11", "b")}
    coverage = (REPO / "docs" / "baseline-coverage.md").read_text(encoding="utf-8")
    for clause, letter in manual:
        row = next((ln for ln in coverage.splitlines() if ln.startswith(f"| {clause} {letter} ")), None)
        assert row is not None and "manual" in row, f"{clause} {letter} not documented as manual"


def test_coverage_doc_lists_each_items_checks(loaded):
    """The level-3 table in docs/baseline-coverage.md names exactly the checks of each item."""
    rows: dict = {}
    for line in (REPO / "docs" / "baseline-coverage.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| (8\.1\.4\.\d+) ([a-g]) ", line)
        if m and (m.group(1), m.group(2)) not in rows:  # the first table is level 3
            cells = line.split("|")
            rows[(m.group(1), m.group(2))] = (cells[3].strip(), set(re.findall(r"`(l3-[a-z0-9-]+)`", cells[4])))
    items = _items(loaded["l3"])
    assert set(rows) == set(items)
    for key, (status, ids) in rows.items():
        assert ids == {k.id for k in items[key][1].checks}, key
        assert status in ("automated", "partly automated", "manual"), key
        assert (status == "manual") == (not ids), key


def test_every_probe_kind_and_param_is_documented(loaded):
    documented = _documented_probes()
    assert len(documented) >= 20  # the table parsed
    for baseline in loaded.values():
        for _, _, check in baseline.iter_checks():
            assert check.probe in documented, check.id
            assert set(check.params) <= documented[check.probe], (check.id, set(check.params))


def test_every_registered_probe_kind_is_documented():
    """docs/probes.md names every probe kind checks/ registers, the object kinds' too (several engineers writing
    the table at once dropped each other's rows twice)."""
    missing = sorted(set(registry()) - set(_documented_probes()))
    assert not missing, f"not in docs/probes.md: {missing}"


def test_every_check_params_validate_against_the_probe_registry(loaded):
    probes = registry()
    for baseline in loaded.values():
        for _, _, check in baseline.iter_checks():
            probes[check.probe].params.model_validate(check.params)


def test_runtime_checks_are_live_only_and_paired_with_configured_state(l3_raw):
    checks = _checks(l3_raw)
    for check_id, (_, _, check) in checks.items():
        runtime = check.probe in ("process.running", "socket.listening", "command.output") or (
            check.probe == "systemd.unit" and check.params.get("state") == "active")
        assert check.live_only == runtime, check_id
        if runtime:
            assert LIVE_PAIRS[check_id] in checks
            assert not checks[LIVE_PAIRS[check_id]][2].live_only


def test_high_risk_cases_are_known_and_valid_for_the_level(loaded):
    for baseline in loaded.values():
        for _, _, check in baseline.iter_checks():
            if check.high_risk is not None:
                assert check.high_risk in HIGH_RISK_CASES, check.id
                assert HIGH_RISK_CASES[check.high_risk] <= baseline.level, (baseline.id, check.id)
                assert check.severity.value in ("high", "critical"), check.id


def test_family_specific_files_are_limited_to_their_family(l3_raw):
    for _, _, check in l3_raw.iter_checks():
        if check.probe == "logs.retention":
            family = {"/var/log/secure": "rhel", "/var/log/auth.log": "debian"}[check.params["log"]]
            assert check.os_families == [family], check.id


# ---- level 2 and level 4 -----------------------------------------------------------------------------


def test_l2_and_l4_declare_extends_and_their_level():
    l2, l4 = _raw(L2_FILE), _raw(L4_FILE)
    assert l2["extends"] == l4["extends"] == "dengbao-l3-linux"
    assert l2["level"] == 2 and l4["level"] == 4
    assert "renumber" not in l2 and "renumber" not in l4  # the numbers come from the catalogue


def test_l2_has_exactly_the_level_2_items(loaded):
    l2 = loaded["l2"]
    assert l2.level == 2 and l2.lineage == ["dengbao-l3-linux"]
    got = {c.clause: "".join(i.item for i in c.items) for c in l2.controls}
    assert got == L2_ITEMS
    names = {c.clause: c.name.zh for c in l2.controls}
    for clause, name in L2_NAMES.items():
        assert names[clause] == name
    items = _items(l2)
    for key, text in L2_TEXTS.items():
        assert items[key][1].text.zh == text
    # unchanged items keep the level-3 text and weight
    assert items[("7.1.4.8", "a")][1].text.zh == L3_ITEMS["ces.backup.local"][1]
    assert items[("7.1.4.4", "b")][1].weight == 1.0


def test_l2_drops_level_3_only_checks_and_high_risk_cases(loaded):
    l2 = _checks(loaded["l2"])
    for gone in ("l3-ia-ssh-two-factor", "l3-ac-mac-enforcing", "l3-au-audit-immutable", "l3-ip-hids-installed",
                 "l3-di-aide-database", "l3-dc-encrypt-method", "l3-mc-aslr"):
        assert gone not in l2
    # Kept under the level-2 item whose text supports them (their level-3 items do not exist at level 2).
    for kept in ("l3-dc-ssh-ciphers", "l3-dc-ssh-kex"):
        assert (l2[kept][0].clause, l2[kept][1].item) == ("7.1.4.1", "c"), kept
    for kept in ("l3-ac-passwd-group-mode", "l3-ac-shadow-mode", "l3-ac-sshd-config-mode",
                 "l3-ac-ssh-host-key-mode", "l3-ac-auth-config-mode", "l3-ac-cron-config-mode"):
        assert (l2[kept][0].clause, l2[kept][1].item) == ("7.1.4.2", "a"), kept
    assert l2["l3-au-log-retention-secure"][2].high_risk is None
    assert l2["l3-mc-antimalware-installed"][0].clause == "7.1.4.5"
    assert l2["l3-br-backup-job"][0].clause == "7.1.4.8"


def test_l4_renumbers_and_adds_the_level_4_items(loaded):
    l3, l4 = loaded["l3"], loaded["l4"]
    expected = {("9" + clause[1:], letter) for clause, letter in _items(l3)} | {("9.1.4.7", "c"), ("9.1.4.9", "d")}
    items = _items(l4)
    assert set(items) == expected
    for key, text in L4_TEXTS.items():
        assert items[key][1].text.zh == text, key
    assert "所有执行环节" in items[("9.1.4.6", "a")][1].text.zh and "动态关联感知" in items[("9.1.4.6", "a")][1].text.zh
    for added in (("9.1.4.7", "c"), ("9.1.4.9", "d"), ("9.1.4.5", "a"), ("9.1.4.6", "a")):
        assert items[added][1].checks == [], added  # manual at level 4
    assert len(list(l4.iter_checks())) == len(list(l3.iter_checks())) - 6  # 9.1.4.5 a's anti-malware checks


def test_l4_mandatory_access_control_is_stricter(loaded):
    l3_mac = _checks(loaded["l3"])["l3-ac-mac-enforcing"][2]
    l4_mac = _checks(loaded["l4"])["l3-ac-mac-enforcing"][2]
    assert evaluate(l3_mac.expect, "apparmor:enabled") is None
    assert evaluate(l4_mac.expect, "apparmor:enabled") is not None
    assert evaluate(l4_mac.expect, "selinux:enforcing") is None
    assert evaluate(l4_mac.expect, "selinux:permissive") is not None
    assert l4_mac.severity.value == "high"


def test_site_override_example(loaded):
    site, l3 = _checks(loaded["site"]), _checks(loaded["l3"])
    assert loaded["site"].lineage == ["dengbao-l3-linux"]
    waived = {cid: k.waiver for cid, (_, _, k) in site.items() if k.waiver}
    assert list(waived) == ["l3-ia-ssh-two-factor"] and "堡垒机" in waived["l3-ia-ssh-two-factor"]
    assert evaluate(l3["l3-ia-shell-timeout"][2].expect, "600") is None
    assert evaluate(site["l3-ia-shell-timeout"][2].expect, "600") is not None
    assert evaluate(site["l3-ia-shell-timeout"][2].expect, "300") is None


# ---- thresholds: what passes and what fails -----------------------------------------------------------

CASES = [
    ("l3-ia-pass-max-days", "90", True), ("l3-ia-pass-max-days", "91", False), ("l3-ia-pass-max-days", "99999", False),
    ("l3-ia-pass-min-len", "8", True), ("l3-ia-pass-min-len", "5", False), ("l3-ia-pass-min-len", None, False),
    ("l3-ia-pass-warn-age", "7", True), ("l3-ia-pass-warn-age", "6", False),
    ("l3-ia-uid0-only-root", ["root"], True), ("l3-ia-uid0-only-root", ["root", "toor"], False),
    ("l3-ia-shell-timeout", "600", True), ("l3-ia-shell-timeout", "601", False),
    ("l3-ia-shell-timeout", "0", False), ("l3-ia-shell-timeout", None, False),
    ("l3-ia-login-lockout", [{"service": "sshd", "enforced": True, "deny": 5, "unlock_time": 300}], True),
    ("l3-ia-login-lockout", [{"service": "sshd", "enforced": True, "deny": 3, "unlock_time": 0}], True),
    ("l3-ia-login-lockout", [{"service": "sshd", "enforced": True, "deny": 6, "unlock_time": 600}], False),
    ("l3-ia-login-lockout", [{"service": "sshd", "enforced": True, "deny": 0, "unlock_time": 600}], False),
    ("l3-ia-login-lockout", [{"service": "sshd", "enforced": True, "deny": 5, "unlock_time": 299}], False),
    # the settings are right but a way through the stack bypasses them (issue 14)
    ("l3-ia-login-lockout", [{"service": "sshd", "enforced": False, "deny": 5, "unlock_time": 600}], False),
    ("l3-ia-login-lockout", [{"service": "sshd", "enforced": False, "module": None, "control": None}], False),
    # nobody gets in through the service at all (e.g. no file and `other` denies): nothing to lock
    ("l3-ia-login-lockout", [{"service": "login", "nobody": True, "enforced": True, "module": None}], True),
    ("l3-ia-pwquality-minlen", [{"service": "passwd", "nobody": True, "enforced": True, "module": None}], True),
    ("l3-ia-pwquality-minlen", [{"service": "passwd", "nobody": False, "enforced": False, "minlen": 12}], False),
    ("l3-ia-pwquality-complexity", [{"service": "passwd", "enforced": True, "classes_required": 2}], True),
    ("l3-ia-pwquality-complexity", [{"service": "passwd", "enforced": True, "classes_required": 1}], False),
    ("l3-ia-pwquality-complexity", [{"service": "passwd", "enforced": False, "classes_required": 3}], False),
    ("l3-ia-pam-nullok", [{"service": "sshd", "nullok": False}, {"service": "login", "nullok": False}], True),
    ("l3-ia-pam-nullok", [{"service": "sshd", "nullok": False}, {"service": "login", "nullok": True}], False),
    ("l3-ac-su-wheel", [{"service": "su", "restricted": True, "module": "pam_wheel"}], True),
    ("l3-ac-su-wheel", [{"service": "su", "restricted": False, "module": "pam_wheel", "control": "required"}], False),
    ("l3-ia-ssh-client-alive-interval", ["300"], True), ("l3-ia-ssh-client-alive-interval", ["0"], False),
    ("l3-ia-ssh-client-alive-count", {"ClientAliveInterval": ["300"], "ClientAliveCountMax": ["0"]}, False),
    ("l3-ia-ssh-client-alive-count", {"ClientAliveInterval": ["300"], "ClientAliveCountMax": ["3"]}, True),
    # issue 14: the default count 3 while ClientAliveInterval is 0 (no probes are sent) is not a configuration
    ("l3-ia-ssh-client-alive-count", {"ClientAliveInterval": ["0"], "ClientAliveCountMax": ["3"]}, False),
    ("l3-ia-ssh-max-auth-tries", ["5"], True), ("l3-ia-ssh-max-auth-tries", ["4", "6"], False),
    ("l3-ia-ssh-protocol-2", ["2"], True), ("l3-ia-ssh-protocol-2", ["2,1"], False),
    ("l3-ac-ssh-no-root-login", ["no"], True), ("l3-ac-ssh-no-root-login", ["prohibit-password"], False),
    ("l3-ac-ssh-no-root-login", [None], False),
    ("l3-ia-ssh-two-factor", ["publickey,password"], True),
    ("l3-ia-ssh-two-factor", ["publickey,keyboard-interactive:pam"], True),
    ("l3-ia-ssh-two-factor", ["publickey,password publickey,keyboard-interactive"], True),
    ("l3-ia-ssh-two-factor", ["publickey,password password"], False),
    ("l3-ia-ssh-two-factor", ["any"], False), ("l3-ia-ssh-two-factor", ["publickey"], False),
    ("l3-ia-ssh-two-factor", ["password,keyboard-interactive"], False),
    ("l3-ac-umask-login-defs", "027", True), ("l3-ac-umask-login-defs", "0077", True),
    ("l3-ac-umask-login-defs", "022", False), ("l3-ac-umask-login-defs", "007", False),
    ("l3-ac-umask-profile", "0027", True), ("l3-ac-umask-profile", "0077", True),
    ("l3-ac-umask-profile", "0022", False), ("l3-ac-umask-profile", "0002", False),
    ("l3-ac-shadow-mode", [{"path": "/etc/shadow", "mode": "0000", "owner": "root"}], True),
    ("l3-ac-shadow-mode", [{"path": "/etc/shadow", "mode": "0644", "owner": "root"}], False),
    ("l3-ac-inactive-lock", "-1", False), ("l3-ac-inactive-lock", "30", True),
    ("l3-ac-mac-enforcing", "selinux:permissive", False), ("l3-ac-mac-enforcing", "kysec:enabled", True),
    ("l3-au-log-retention-secure", {"local_days": 182, "remote": []}, True),
    ("l3-au-log-retention-secure", {"local_days": 168, "remote": []}, False),
    ("l3-au-log-retention-secure", {"local_days": 28, "remote": ["@@10.0.0.9:514"]}, True),
    ("l3-au-log-retention-secure", {"local_days": None, "remote": []}, False),
    ("l3-au-time-sync", {"service": "chronyd", "enabled": True, "servers": ["10.0.0.1"]}, True),
    ("l3-au-time-sync", {"service": "systemd-timesyncd", "enabled": True, "servers": []}, False),
    ("l3-au-time-sync", {"service": None, "enabled": False, "servers": []}, False),
    ("l3-au-auditd-keep-logs", "KEEP_LOGS", True), ("l3-au-auditd-keep-logs", "ROTATE", False),
    ("l3-au-auditd-refuse-stop", "yes", True), ("l3-au-auditd-refuse-stop", "no", False),
    ("l3-ip-high-risk-units-disabled", "masked", True), ("l3-ip-high-risk-units-disabled", "enabled", False),
    ("l3-di-ssh-macs", ["openssh-default"], True), ("l3-di-ssh-macs", ["hmac-sha2-256,hmac-md5"], False),
    ("l3-di-ssh-macs", ["hmac-sha1-96"], False), ("l3-di-ssh-macs", ["-hmac-md5*"], True),
    ("l3-dc-ssh-ciphers", ["aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr"], True),
    ("l3-dc-ssh-ciphers", ["aes256-ctr,aes128-cbc"], False), ("l3-dc-ssh-ciphers", ["+3des-cbc"], False),
    ("l3-dc-ssh-ciphers", ["-*-cbc"], True),
    ("l3-dc-ssh-kex", ["curve25519-sha256,diffie-hellman-group14-sha256"], True),
    ("l3-dc-ssh-kex", ["diffie-hellman-group1-sha1"], False),
    ("l3-dc-encrypt-method", "SHA512", True), ("l3-dc-encrypt-method", "yescrypt", True),
    ("l3-dc-encrypt-method", "MD5", False),
    ("l3-dc-pam-unix-hash", [{"service": "passwd", "module": "pam_unix", "method": "yescrypt", "nobody": False}], True),
    ("l3-dc-pam-unix-hash", [{"service": "passwd", "module": "pam_unix", "method": "md5", "nobody": False}], False),
    ("l3-dc-pam-unix-hash", [{"service": "passwd", "module": "pam_unix", "method": "des", "nobody": False}], False),
    ("l3-dc-pam-unix-hash", [{"service": "passwd", "module": None, "method": None, "nobody": True}], True),
    ("l3-mc-aslr", "2", True), ("l3-mc-aslr", "1", False),
]


@pytest.mark.parametrize("check_id,observed,passes", CASES)
def test_thresholds(loaded, check_id, observed, passes):
    check = _checks(loaded["l3"])[check_id][2]
    reason = evaluate(check.expect, observed)
    assert (reason is None) == passes, reason


# ---- end to end: the patterns and paths against small host roots ----------------------------------------


def _run(tmp_path: Path, loaded, check_id: str, files: dict[str, str], family: str = "rhel"):
    for rel, content in files.items():
        target = tmp_path / rel.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    host = open_host(str(tmp_path))
    ctx = ProbeContext(host=host, family=family, os_release={})
    control, item, check = _checks(loaded["l3"])[check_id]
    return run_check(ctx, loaded["l3"], control, item, check)


PROFILE_CASES = [  # the effective TMOUT of a login shell (shell.variable); /etc/profile sources profile.d
    ("TMOUT=600\nreadonly TMOUT\nexport TMOUT\n", "600", Status.PASS),
    ("export TMOUT=300\n", "300", Status.PASS),
    ('[ -z "$TMOUT" ] && readonly TMOUT=900\n', "900", Status.FAIL),
    ("  TMOUT=600; readonly TMOUT; export TMOUT\n# TMOUT=0\n", "600", Status.PASS),
    ("MYTMOUT=5\necho $TMOUT\n", None, Status.FAIL),
    ("TMOUT=600\nexport TMOUT\nunset TMOUT\n", None, Status.FAIL),  # issue 14: a later unset wins
    ("readonly TMOUT=300\nTMOUT=0\n", "300", Status.PASS),  # issue 14: the readonly value stays
]


@pytest.mark.parametrize("content,observed,status", PROFILE_CASES)
def test_shell_timeout_pattern(tmp_path, loaded, content, observed, status):
    result = _run(tmp_path, loaded, "l3-ia-shell-timeout", {
        "/etc/profile": 'for i in /etc/profile.d/*.sh; do\n  if [ -r "$i" ]; then . "$i"; fi\ndone\n',
        "/etc/profile.d/tmout.sh": content})
    assert result.observed == observed
    assert result.status == status


MGMT_CASES = [
    ("/etc/ssh/sshd_config", "AllowUsers admin@10.0.0.5\n", True),
    ("/etc/ssh/sshd_config", "AllowUsers admin\nAllowGroups wheel\n", False),
    ("/etc/ssh/sshd_config", "ListenAddress 10.0.0.1\n", True),
    ("/etc/ssh/sshd_config", "ListenAddress 0.0.0.0\nListenAddress ::\n", False),
    ("/etc/sysconfig/iptables", "-A INPUT -s 10.0.0.0/24 -p tcp -m tcp --dport 22 -j ACCEPT\n", True),
    ("/etc/sysconfig/iptables", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n", False),
    ("/etc/nftables/main.nft", "ip saddr 10.0.0.0/8 tcp dport 22 accept\n", True),
    ("/etc/nftables/main.nft", "tcp dport 22 accept\n", False),
    ("/etc/firewalld/zones/mgmt.xml", '<zone>\n  <source address="10.0.0.0/24"/>\n  <service name="ssh"/>\n</zone>\n',
     True),
    ("/etc/hosts.allow", "sshd: 10.0.0.0/255.0.0.0\n", False),  # EL8+ sshd ignores tcp_wrappers
]


@pytest.mark.parametrize("path,content,restricted", MGMT_CASES)
def test_management_source_restriction_rhel(tmp_path, loaded, path, content, restricted):
    result = _run(tmp_path, loaded, "l3-ip-mgmt-source-restricted-rhel", {path: content})
    assert result.status == (Status.PASS if restricted else Status.FAIL), result.observed


WRAP0 = {"/var/lib/dpkg/status": "Package: openssh-server\nStatus: install ok installed\n"
                                  "Depends: libc6 (>= 2.36), libwrap0 (>= 7.6-4~)\n"}  # sshd uses tcp_wrappers
ALLOW = {"/etc/hosts.allow": "sshd: 10.0.0.0/255.0.0.0\n", "/etc/ssh/sshd_config": "PermitRootLogin no\n"}


@pytest.mark.parametrize("files,restricted", [  # hosts_access(5) as tcpdmatch decides (test_mgmt_source_real.py)
    ({**WRAP0, **ALLOW, "/etc/hosts.deny": "sshd: ALL\n"}, True),
    ({**WRAP0, **ALLOW}, False),  # issue 14: with no hosts.deny rule, no match grants everyone
    ({**ALLOW, "/etc/hosts.deny": "sshd: ALL\n"}, False),  # an sshd without libwrap does not read them
    ({**WRAP0, "/etc/hosts.allow": "sshd: ALL\nALL: ALL\n", "/etc/hosts.deny": "ALL: ALL\n"}, False),
    ({"/etc/ufw/user.rules": "-A ufw-user-input -p tcp --dport 22 -s 10.1.0.0/16 -j ACCEPT\n"}, True),
    ({"/etc/ufw/user.rules": "-A ufw-user-input -p tcp --dport 22 -j ACCEPT\n"}, False),
])
def test_management_source_restriction_debian(tmp_path, loaded, files, restricted):
    result = _run(tmp_path, loaded, "l3-ip-mgmt-source-restricted-debian", files, family="debian")
    assert result.status == (Status.PASS if restricted else Status.FAIL), result.observed


def test_login_lockout_from_faillock_conf(tmp_path, loaded):
    stack = ("auth required pam_env.so\nauth required pam_faillock.so preauth silent\n"
             "auth sufficient pam_unix.so\nauth [default=die] pam_faillock.so authfail\n")
    files = {"/etc/pam.d/system-auth": stack, "/etc/pam.d/password-auth": stack,
             "/etc/pam.d/sshd": "auth substack password-auth\n", "/etc/pam.d/login": "auth substack system-auth\n",
             "/etc/pam.d/su": "auth sufficient pam_rootok.so\nauth include system-auth\n",
             "/etc/security/faillock.conf": "deny = 5\nunlock_time = 600\neven_deny_root\n"}
    assert _run(tmp_path, loaded, "l3-ia-login-lockout", files).status == Status.PASS
    assert _run(tmp_path, loaded, "l3-ia-lockout-root", files).status == Status.PASS
    files["/etc/security/faillock.conf"] = "deny = 10\nunlock_time = 600\n"
    assert _run(tmp_path, loaded, "l3-ia-login-lockout", files).status == Status.FAIL
    assert _run(tmp_path, loaded, "l3-ia-lockout-root", files).status == Status.FAIL
    # issue 14: the same settings, but a sufficient pam_unix ahead of preauth lets a locked account in
    files["/etc/security/faillock.conf"] = "deny = 5\nunlock_time = 600\neven_deny_root\n"
    files["/etc/pam.d/password-auth"] = "auth sufficient pam_unix.so\n" + stack
    result = _run(tmp_path, loaded, "l3-ia-login-lockout", files)
    assert result.status == Status.FAIL and "locked account still logs in" in str(result.observed)


def test_password_quality_debian(tmp_path, loaded):
    files = {"/etc/pam.d/passwd": "@include common-password\n", "/etc/pam.d/common-password":
             "password requisite pam_pwquality.so retry=3\npassword [success=1 default=ignore] pam_unix.so obscure "
             "use_authtok try_first_pass yescrypt\npassword requisite pam_deny.so\n",
             "/etc/security/pwquality.conf": "minlen = 8\ndcredit = -1\nucredit = -1\nenforce_for_root\n"}
    for check_id in ("l3-ia-pwquality-complexity", "l3-ia-pwquality-minlen", "l3-ia-pwquality-enforce-root",
                     "l3-dc-pam-unix-hash"):
        assert _run(tmp_path, loaded, check_id, files, family="debian").status == Status.PASS, check_id
    files["/etc/security/pwquality.conf"] = "minlen = 6\n"
    for check_id in ("l3-ia-pwquality-complexity", "l3-ia-pwquality-minlen", "l3-ia-pwquality-enforce-root"):
        assert _run(tmp_path, loaded, check_id, files, family="debian").status == Status.FAIL, check_id


def test_log_retention_weekly_rotate(tmp_path, loaded):
    conf = "/var/log/messages /var/log/secure {\n    weekly\n    rotate %d\n    missingok\n}\n"
    files = {"/etc/logrotate.conf": "weekly\nrotate 4\ninclude /etc/logrotate.d\n",
             "/etc/logrotate.d/syslog": conf % 26}
    assert _run(tmp_path, loaded, "l3-au-log-retention-secure", files).status == Status.PASS
    files["/etc/logrotate.d/syslog"] = conf % 24  # the guide's 24 weeks is 168 days, short of six months
    assert _run(tmp_path, loaded, "l3-au-log-retention-secure", files).status == Status.FAIL
    files["/etc/rsyslog.conf"] = "$IncludeConfig /etc/rsyslog.d/*.conf\nauthpriv.* /var/log/secure\n"
    files["/etc/rsyslog.d/90-remote.conf"] = "*.* @@10.0.0.9:514\n"
    assert _run(tmp_path, loaded, "l3-au-log-retention-secure", files).status == Status.PASS


SUDO_ACCOUNTS = {"/etc/passwd": "root:x:0:0::/root:/bin/bash\ncloud:x:1000:1000::/home/cloud:/bin/bash\n",
                 "/etc/group": "root:x:0:\ncloud:x:1000:\nwheel:x:10:cloud\n"}


@pytest.mark.parametrize("check_id,files,status", [
    ("l3-br-backup-job", {"/etc/cron.d/backup": "30 1 * * * root /usr/bin/rsync -a /data/ /backup/\n"}, Status.PASS),
    ("l3-br-backup-job", {"/var/spool/cron/root": "@daily /usr/local/bin/restic backup /srv\n"}, Status.PASS),
    ("l3-br-backup-job", {"/etc/cron.d/0hourly": "01 * * * * root run-parts /etc/cron.hourly\n"}, Status.FAIL),
    ("l3-di-aide-scheduled", {"/etc/cron.d/aide": "0 5 * * * root /usr/sbin/aide --check\n"}, Status.PASS),
    ("l3-di-aide-scheduled", {"/etc/cron.daily/man-db": "# guide\nexec man-db\n"}, Status.FAIL),
    ("l3-ia-xinetd-plaintext-disabled", {"/etc/xinetd.d/telnet": "service telnet\n{\n  disable = no\n}\n"},
     Status.FAIL),
    ("l3-ia-xinetd-plaintext-disabled", {"/etc/xinetd.d/telnet": "service telnet\n{\n  disable = yes\n}\n"},
     Status.PASS),
    ("l3-ac-sudo-no-unrestricted-nopasswd", {**SUDO_ACCOUNTS, "/etc/sudoers": "@includedir /etc/sudoers.d\n",
                                             "/etc/sudoers.d/90-cloud": "cloud ALL=(ALL) NOPASSWD:ALL\n"},
     Status.FAIL),
    ("l3-ac-sudo-no-unrestricted-nopasswd", {**SUDO_ACCOUNTS, "/etc/sudoers": "# %wheel ALL=(ALL) NOPASSWD: ALL\n"
                                                                              "%wheel ALL=(ALL) ALL\n"}, Status.PASS),
    # issue 14: read as sudo reads it -- an alias and an inherited tag still grant NOPASSWD ALL ...
    ("l3-ac-sudo-no-unrestricted-nopasswd", {**SUDO_ACCOUNTS, "/etc/sudoers": "Cmnd_Alias EVERY = ALL\n"
                                             "%wheel ALL=(root) NOPASSWD: /usr/bin/id, EVERY\n"}, Status.FAIL),
    ("l3-ac-sudo-no-unrestricted-nopasswd", {**SUDO_ACCOUNTS, "/etc/sudoers": "Defaults:%wheel !authenticate\n"
                                                                              "%wheel ALL=(ALL) ALL\n"}, Status.FAIL),
    # ... and a drop-in /etc/sudoers does not include is not read by sudo at all
    ("l3-ac-sudo-no-unrestricted-nopasswd", {**SUDO_ACCOUNTS, "/etc/sudoers": "root ALL=(ALL) ALL\n",
                                             "/etc/sudoers.d/90-cloud": "cloud ALL=(ALL) NOPASSWD:ALL\n"},
     Status.NOT_APPLICABLE),  # so sudo grants no account but root anything: nothing to judge (bench/agreement.py)
    ("l3-ip-nfs-exports-restricted", {"/etc/exports": "/data *(rw)\n"}, Status.FAIL),
    ("l3-ip-nfs-exports-restricted", {"/etc/exports": "/data 10.0.0.0/24(rw,no_root_squash)\n"}, Status.FAIL),
    ("l3-ip-nfs-exports-restricted", {"/etc/exports": "/data 10.0.0.0/24(ro,root_squash)\n"}, Status.PASS),
    ("l3-ia-no-autologin", {"/etc/gdm/custom.conf": "[daemon]\nAutomaticLoginEnable=True\n"}, Status.FAIL),
    ("l3-ia-no-autologin", {"/etc/lightdm/lightdm.conf": "[Seat:*]\n#autologin-user=kylin\n"}, Status.PASS),
    ("l3-au-syslog-authpriv", {"/etc/rsyslog.conf": "authpriv.*    /var/log/secure\n"}, Status.PASS),
    ("l3-au-syslog-authpriv", {"/etc/rsyslog.conf": "*.info;mail.none;authpriv.none  /var/log/messages\n"},
     Status.FAIL),
    ("l3-au-auditd-refuse-stop", {"/usr/lib/systemd/system/auditd.service": "[Unit]\nRefuseManualStop=yes\n",
                                  "/etc/systemd/system/auditd.service.d/x.conf": "[Unit]\nRefuseManualStop=no\n"},
     Status.FAIL),
])
def test_file_patterns(tmp_path, loaded, check_id, files, status):
    result = _run(tmp_path, loaded, check_id, files)
    assert result.status == status, (result.observed, result.reason)


def test_cis_values_are_a_site_option(loaded, tmp_path):
    """The shipped baseline follows the 作业指导书 (#20: sshd_config <= 0644, so stock Debian passes); CIS's
    0600 and the advisory checks counted are what baselines/examples/site-cis-strict.yaml chooses."""
    from tests.fixtures.build import build_root

    cis = load_baseline(REPO / "baselines" / "examples" / "site-cis-strict.yaml")
    l3, strict = _checks(loaded["l3"]), _checks(cis)
    for check_id in ("l3-ac-inactive-lock", "l3-ip-no-icmp-redirects", "l3-au-audit-immutable",
                     "l3-au-auditd-refuse-stop"):
        assert l3[check_id][2].advisory is not None and strict[check_id][2].advisory is None, check_id
    assert strict["l3-ip-no-source-route"][2].advisory is not None  # not listed: stays advisory
    root = build_root("debian12-default", tmp_path)
    ctx = ProbeContext(host=open_host(str(root)), family="debian", os_release={})
    for baseline, status in ((loaded["l3"], Status.PASS), (cis, Status.FAIL)):  # Debian ships 0644
        control, item, check = _checks(baseline)["l3-ac-sshd-config-mode"]
        assert run_check(ctx, baseline, control, item, check).status == status


def test_level_2_host_with_a_readable_shadow_is_not_excellent(loaded, tmp_path):
    """issue 14: level 2 dropped the key-file permission checks with 8.1.4.2 f, so a level-2 host with
    /etc/shadow at 0644 scored 100 优. They are kept under 7.1.4.2 a (分配账户和权限)."""
    from sentinel.engine import run_baseline
    from tests.fixtures.build import build_root

    root = build_root("debian12-hardened", tmp_path)
    before = run_baseline(loaded["l2"], open_host(str(root)))
    assert before.summary.conclusion == "优"
    (root / "etc" / "shadow").chmod(0o644)
    after = run_baseline(loaded["l2"], open_host(str(root)))
    verdicts = {(i.clause, i.item): i.verdict.value for i in after.items}
    assert verdicts[("7.1.4.2", "a")] == "部分符合"
    assert after.summary.score < 100 and after.summary.conclusion != "优"
