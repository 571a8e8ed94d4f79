"""The two sentences an assessor writes for each finding, from a check result and its evidence:

- 结果记录 (`seen`): what was seen, where — "/etc/login.defs 第 160 行 PASS_MAX_DAYS 99999；PASS_MAX_DAYS 为 99999，
  要求 ≤ 90" — and whether that meets the requirement;
- 问题描述 (`gap`): the gap — "PASS_MAX_DAYS 为 99999，要求 ≤ 90，未满足「口令最长使用期限不超过 90 天」的要求".

A check's title is the requirement as it reads when met ("未安装 FTP 服务端"), so it is never the opening of a
problem: it is quoted as the requirement not met. The observation comes from the assessor-style reasons of
sentinel/expect.py (`reason_zh`/`reason`) and the probes' evidence; raw JSON and regular expressions are left
out (the regex a probe used stays in evidence.json and evidence/<object>/*.txt), and the probes' common English
evidence phrases are put in Chinese for zh.
"""
from __future__ import annotations

import re
from typing import Optional

from sentinel.model import CheckResult, Evidence, Status

# A regular expression as expect.py and the probes show it: /.../ holding at least one regex metacharacter,
# so paths (/etc/ssh/sshd_config) are kept.
_REGEX = re.compile(r"\s*/(?=[^/\s]*[\^\\(\[$*+?|{])\S+?/(?=$|[\s,;，；。)）:])")
_SPACES = re.compile(r"\s+")

# The probes' evidence phrases met most often (measured over the fixture roots), in Chinese.
_ZH_EVIDENCE: list[tuple[re.Pattern, str]] = [(re.compile(p), z) for p, z in [
    (r"^no such file$", "文件不存在"),
    (r"^no path matches$", "无匹配的文件"),
    (r"^no line matches\b.*$", "未找到所需配置行"),
    (r"^exists \((\w+), ([-rwxsStT]+)\)$", r"存在 (\1, \2)"),
    (r"^\[(\S+)\] auth stack read from (\S+)$", r"\1 的认证 (auth) 栈读自 \2"),
    (r"^\[(\S+)\] password stack read from (\S+)$", r"\1 的口令 (password) 栈读自 \2"),
    (r"^(\S+) no watch for perms '(\w+)'$", r"\1 无权限 \2 的审计监视"),
    (r"^no audit rules: neither (\S+) nor (\S+) has any$", r"无审计规则：\1 与 \2 均未配置"),
    (r"^(\d+) entries, none with an empty password field$", r"共 \1 条，无空口令"),
    (r"^(\d+) entries, every (\w+) unique$", r"共 \1 条，\2 均唯一"),
    (r"^(\S+): no unit file$", r"\1：无单元文件 (未安装)"),
    (r"^(\S+): no such account$", r"\1：无此账户"),
    (r"^(\S+) not set globally in (.+)$", r"\2 均未全局设置 \1 (取默认值)"),
    (r"^(\S+) not set in (\d+) sysctl configuration file\(s\)$", r"\2 个 sysctl 配置文件均未设置 \1"),
    (r"^(\S+) not set$", r"\1 未设置"),
    (r"^(.*) -> no file$", r"\1 (无文件)"),
    (r"^no installed package matches (.*?)(?: \(\d+ installed.*)?$", r"未安装以下任一软件包：\1"),
    (r"^no (\S+) or (\S+) in the effective (\w+) stack$", r"有效的 \3 栈中未配置 \1 或 \2"),
    (r"^no (\S+) in the effective (\w+) stack$", r"有效的 \2 栈中未配置 \1"),
    (r"^pam_unix nullok lets an empty password in: (.*)$", r"pam_unix 的 nullok 允许空口令登录：\1"),
    (r"^a person outside the wheel group gets in with the password: (.*)$", r"非 wheel 组成员凭口令即可通过：\1"),
]]
_ANY_OF = ("以下任一条件均不满足", "none of the accepted alternatives holds")

MAX_PLACES = 3


def clean(text: str) -> str:
    """A reason or excerpt without regular expressions and with whitespace collapsed."""
    text = _REGEX.sub("", text)
    text = text.replace("不符合要求的格式", "不符合要求").replace("which does not have the required form",
                                                                   "which is not the required form")
    text = text.replace("符合禁止的格式", "属禁止的形式").replace("which has the forbidden form", "which is forbidden")
    return _SPACES.sub(" ", text).strip(" ，,;；")


def _zh_excerpt(text: str) -> str:
    for pattern, zh in _ZH_EVIDENCE:
        if pattern.match(text):
            return pattern.sub(zh, text)
    return text


def _excerpt(e: Evidence, lang: str) -> str:
    lines = [ln.strip() for ln in (e.excerpt or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    first = clean(lines[0])
    if lang == "zh" and not e.line:
        first = _zh_excerpt(first)
    more = len(lines) - 1
    if more:
        second = clean(lines[1])
        first += f"；{second}" if lang == "zh" else f"; {second}"
        if more > 1:
            first += f" 等 {len(lines)} 行" if lang == "zh" else f" ({len(lines)} lines)"
    return first if len(first) <= 120 else first[:119] + "…"


def place(e: Evidence, lang: str) -> str:
    """Where something was seen and what: `/etc/login.defs 第 160 行 PASS_MAX_DAYS 99999`."""
    where = e.source
    if e.line:
        where = f"{where} 第 {e.line} 行" if lang == "zh" else f"{where} line {e.line}"
    what = _excerpt(e, lang)
    if not what:
        return where
    return f"{where} {what}" if e.line else (f"{where}：{what}" if lang == "zh" else f"{where}: {what}")


def _places(r: CheckResult, lang: str) -> str:
    # A line read beats a "not found" note: the lines with numbers first, then the rest, as the probe gave them.
    ev = sorted(r.evidence, key=lambda e: e.line is None)
    shown = [place(e, lang) for e in ev[:MAX_PLACES]]
    rest = len(ev) - len(shown)
    text = "；".join(shown) if lang == "zh" else "; ".join(shown)
    if rest > 0:
        text += f" 等 {len(ev)} 处" if lang == "zh" else f" and {rest} more"
    return text


def _reason(r: CheckResult, lang: str) -> str:
    text = (r.reason_zh if lang == "zh" and r.reason_zh else r.reason) or ""
    if text.startswith(_ANY_OF):
        text = _why(r, text, lang) or _alternatives(text, lang)
    return clean(text)


def _alternatives(reason: str, lang: str) -> str:
    """An any_of reason without the alternative that only says the row is not exempt (`nobody` is the PAM
    rows' "nobody can get through this service" exemption): what is left is the setting that falls short."""
    head, _, body = reason.partition("：" if lang == "zh" else ": ")
    parts = body.split("；或" if lang == "zh" else "; or ")
    kept = [p for p in parts if ".nobody " not in p]
    if not kept or len(kept) == len(parts):
        return reason
    return ("；或".join(kept)) if lang == "zh" else "; or ".join(kept)


def _why(r: CheckResult, reason: str, lang: str) -> Optional[str]:
    """For checks whose rows explain themselves (PAM stacks: {"service", "why"}), the row the reason names:
    "sshd：有效的 auth 栈中未配置 pam_faillock 或 pam_tally2" reads better than the alternatives' field values."""
    if not isinstance(r.observed, list):
        return None
    body = reason.split("：", 1)[-1].split(": ", 1)[-1]
    for row in r.observed:
        # only a row whose "why" explains a failure (the module is missing, nullok lets in, su is open)
        failed = row.get("enforced") is False or row.get("restricted") is False or row.get("nullok") is True \
            if isinstance(row, dict) else False
        if failed and row.get("service") and row.get("why") and body.startswith(f"{row['service']}."):
            why = str(row["why"])
            if lang == "zh":
                why = _zh_excerpt(why)
            return f"{row['service']}：{why}" if lang == "zh" else f"{row['service']}: {why}"
    return None


def _requirement(r: CheckResult, lang: str) -> str:
    return f"「{r.title.get(lang)}」" if lang == "zh" else f"“{r.title.get(lang)}”"


def seen(r: CheckResult, lang: str) -> str:
    """结果记录 of one check: where and what was seen, then the judgement against the requirement."""
    places = _places(r, lang)
    reason = _reason(r, lang)
    req = _requirement(r, lang)
    sep = "；" if lang == "zh" else "; "
    if r.status == Status.PASS:
        verdict = f"符合{req}的要求" if lang == "zh" else f"meets {req}"
    elif r.status == Status.FAIL:
        verdict = (f"{reason}，未满足{req}的要求" if reason else f"未满足{req}的要求") if lang == "zh" else \
            (f"{reason}: does not meet {req}" if reason else f"does not meet {req}")
    elif r.status == Status.ERROR:
        verdict = (f"无法判定{req}：{reason or '未给出原因'}" if lang == "zh"
                   else f"could not determine {req}: {reason or 'no reason given'}")
    else:
        verdict = (f"{req}不适用：{reason}" if reason else f"{req}不适用") if lang == "zh" else \
            (f"{req} does not apply: {reason}" if reason else f"{req} does not apply")
    if r.waiver:
        verdict += f"{sep}{'豁免' if lang == 'zh' else 'waived'}: {r.waiver}"
    return f"{places}{sep}{verdict}" if places else verdict


def gap(r: CheckResult, lang: str, object_name: Optional[str] = None) -> str:
    """问题描述 of a failing check: the gap, opening with what is wrong, then the requirement it misses."""
    reason = _reason(r, lang)
    req = _requirement(r, lang)
    where = ""
    # The line the gap is on, if a numbered excerpt names what the reason names (PASS_MAX_DAYS on line 160),
    # never a merely nearby line (an Include line when the setting is absent).
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]{2,}", reason))
    for e in r.evidence:
        if e.line and e.excerpt and words & set(re.findall(r"[A-Za-z_][A-Za-z0-9_]{2,}", e.excerpt.split("\n")[0])) \
                and not e.excerpt.lstrip().startswith("Include"):
            where = f"（{e.source} 第 {e.line} 行）" if lang == "zh" else f" ({e.source} line {e.line})"
            break
    who = f"{object_name} " if object_name else ""
    if lang == "zh":
        body = f"{reason}{where}" if reason else f"检查结果不通过{where}"
        return f"{who}{body}，未满足{req}的要求"
    body = f"{reason}{where}" if reason else f"the check failed{where}"
    return f"{who}{body}; does not meet {req}"
