"""Evaluate an `Expect` against an observed value: None when it holds, else the reason, worded as an assessor
would write it, in English and Chinese (`explain`), e.g. "PASS_MAX_DAYS is -1, expected at least 0" /
"PASS_MAX_DAYS 为 -1，要求 ≥ 0"."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from .model import Expect


@dataclass(frozen=True)
class Reason:
    """Why an expectation does not hold, in both report languages."""

    en: str
    zh: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    def prefixed(self, label: str) -> Reason:
        return Reason(f"{label}: {self.en}", f"{label}：{self.zh}") if label else self


# What a list observation holds, per probe kind: the words for "found these, none expected" and for
# "found none, at least one expected". A list of missing audit watches is not "files that should not exist".
_EMPTY_WORDS: dict[str, tuple[str, str, str, str]] = {
    "file.exists": ("found files that should not exist", "发现不应存在的文件",
                    "none of the required files exists", "未找到要求存在的文件"),
    "file.regex": ("found settings that should not be there", "发现不应存在的配置",
                   "the required setting was not found in the files read", "所读文件中未找到要求的配置"),
    "accounts.duplicate": ("found duplicates", "发现重复项", "nothing found", "未发现任何项"),
    "accounts.empty_password": ("accounts with an empty password", "存在空口令账户", "nothing found", "未发现任何项"),
    "accounts.unlocked_default": ("default accounts that can still log in", "默认账户仍可登录",
                                  "nothing found", "未发现任何项"),
    "audit.watch": ("not watched by any audit rule", "未被审计规则监视", "nothing found", "未发现任何项"),
    "package.installed": ("packages installed that should not be", "安装了不应安装的软件包",
                          "none of the required packages is installed", "未安装要求的软件包"),
    "process.running": ("processes running that should not be", "运行了不应运行的进程",
                        "none of the required processes is running", "要求的进程均未运行"),
    "socket.listening": ("listening where nothing should", "存在不应监听的端口",
                         "nothing listens where a service is required", "要求的服务端口均未监听"),
}
# `each` over an empty list, for kinds without words of their own: there was nothing to judge.
_EMPTY_NOTHING = ("", "", "nothing found to judge, and absence is not compliance here",
                  "未发现可判定的对象，缺失不视为符合")
_EMPTY_DEFAULT = ("found what should not exist", "发现不应存在的项",
                  "nothing found, at least one is required", "未发现任何项，要求至少一项")


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(int(text, 0)) if text.lower().startswith(("0x", "0o")) else float(text)
        except ValueError:
            return None
    return None


def _norm(value: Any) -> Any:
    """Compare scalars loosely: 'yes' == 'yes', 90 == '90', case-insensitive for strings."""
    if isinstance(value, str):
        num = _num(value)
        return num if num is not None else value.strip().lower()
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, tuple, dict, set)) and len(value) == 0)


def _show(value: Any, lang: str = "en") -> str:
    """A value as a report shows it: strings bare, lists comma-separated, mappings as compact JSON."""
    if value is None or value == "" or value == []:
        text = "（空）" if lang == "zh" else "(empty)"
    elif isinstance(value, bool):
        text = ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_show(v, lang) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    return text if len(text) <= 200 else text[:200] + "…"


def show_value(value: Any, lang: str = "en") -> str:
    """An observed value as a person reads it (see `_show`); for tables and summaries."""
    return _show(value, lang)


def _is(subject: str, observed: Any) -> Reason:
    """The opening "X is V" / "X 为 V" (or "found V" / "实际为 V" without a subject)."""
    en, zh = _show(observed), _show(observed, "zh")
    return Reason(f"{subject} is {en}", f"{subject} 为 {zh}") if subject else Reason(f"found {en}", f"实际为 {zh}")


def _and(first: Reason, en: str, zh: str) -> Reason:
    return Reason(f"{first.en}, {en}", f"{first.zh}，{zh}")


_BOUNDS = {"lt": ("less than", "<"), "le": ("at most", "≤"), "gt": ("more than", ">"), "ge": ("at least", "≥")}


def _wanted(expect: Expect) -> Reason:
    """What the scalar operators of `expect` ask for, for a value that is missing."""
    en, zh = [], []
    if expect.eq is not None:
        en.append(_show(expect.eq))
        zh.append(f"为 {_show(expect.eq, 'zh')}")
    for op, (words, sign) in _BOUNDS.items():
        bound = getattr(expect, op)
        if bound is not None:
            en.append(f"{words} {bound:g}")
            zh.append(f"{sign} {bound:g}")
    if expect.in_ is not None:
        en.append(_one_of(expect.in_, "en"))
        zh.append(_one_of(expect.in_, "zh"))
    if expect.match is not None:
        en.append(f"a value matching /{expect.match}/")
        zh.append(f"符合 /{expect.match}/")
    if expect.mode_max is not None:
        en.append(f"a mode no more permissive than {expect.mode_max}")
        zh.append(f"权限不宽于 {expect.mode_max}")
    if not en:
        return Reason("a value", "有值")
    return Reason(" and ".join(en), "且".join(zh))


def _listed(observed: Any) -> Optional[list[Any]]:
    """The observed values a contains/not_contains test looks among (None for a string: it is searched as text)."""
    if isinstance(observed, str):
        return None
    return [_norm(v) for v in (observed if isinstance(observed, (list, tuple)) else [observed])]


def _one_of(values: list[Any], lang: str) -> str:
    if len(values) == 1:
        return _show(values[0], lang) if lang == "en" else f"为 {_show(values[0], lang)}"
    return f"one of {_show(values)}" if lang == "en" else f"为以下之一: {_show(values, lang)}"


def evaluate(expect: Expect, observed: Any, where: str = "", kind: Optional[str] = None) -> Optional[str]:
    """None if every operator holds; otherwise the English reason (see `explain` for both languages)."""
    reason = explain(expect, observed, where, kind)
    return None if reason is None else reason.en


def explain(expect: Expect, observed: Any, where: str = "", kind: Optional[str] = None) -> Optional[Reason]:
    """None if every operator holds; otherwise why the first that does not, in zh and en.

    `where` names the value (a configuration key, or the path into a mapping such as `root.max_days`);
    `kind` is the probe kind, which says what the elements of a list observation are."""
    s = where
    if expect.absent is not None:
        if expect.absent and observed is not None:
            return (Reason(f"{s} is set ({_show(observed)}); it should not be set",
                           f"{s} 已设置（{_show(observed, 'zh')}），要求不设置") if s
                    else Reason(f"found {_show(observed)}; nothing should be set",
                                f"发现 {_show(observed, 'zh')}，要求不存在"))
        if not expect.absent and observed is None:
            if kind == "pam.module" and s.endswith(".module"):  # {service}.module: the stack lacks the module
                service = s[: -len(".module")]
                return Reason(f"{service}: the required PAM module is not configured",
                              f"{service}：未配置要求的 PAM 模块")
            return Reason(f"{s} is not set", f"{s} 未设置") if s else Reason("not set", "未设置")
    if expect.empty is not None and _is_empty(observed) != expect.empty:
        found_en, found_zh, none_en, none_zh = _EMPTY_WORDS.get(kind or "", _EMPTY_DEFAULT)
        if expect.empty:
            reason = Reason(f"{found_en}: {_show(observed)}", f"{found_zh}: {_show(observed, 'zh')}")
        else:
            reason = Reason(none_en, none_zh)
        return reason.prefixed(s)
    scalar_ops = [expect.eq, expect.ne, expect.lt, expect.le, expect.gt, expect.ge, expect.in_,
                  expect.not_in, expect.match, expect.not_match, expect.mode_max]
    if observed is None and any(op is not None for op in scalar_ops):
        want = _wanted(expect)
        zh = want.zh if want.zh.startswith(("为", "符合", "权限", "有")) else f" {want.zh}"  # "要求为 X", "要求 ≤ 90"
        return (Reason(f"{s} is not set, expected {want.en}", f"{s} 未设置，要求{zh}") if s
                else Reason(f"not set, expected {want.en}", f"未设置，要求{zh}"))
    if expect.eq is not None and _norm(observed) != _norm(expect.eq):
        return _and(_is(s, observed), f"expected {_show(expect.eq)}", f"要求为 {_show(expect.eq, 'zh')}")
    if expect.ne is not None and _norm(observed) == _norm(expect.ne):
        return _and(_is(s, observed), "which is not allowed", "不允许该值")
    for op, (words, sign) in _BOUNDS.items():
        bound = getattr(expect, op)
        if bound is None:
            continue
        num = _num(observed)
        if num is None:
            return _and(_is(s, observed), f"expected a number {words} {bound:g}", f"要求为 {sign} {bound:g} 的数值")
        if not {"lt": num < bound, "le": num <= bound, "gt": num > bound, "ge": num >= bound}[op]:
            return _and(_is(s, f"{num:g}"), f"expected {words} {bound:g}", f"要求 {sign} {bound:g}")
    if expect.in_ is not None and _norm(observed) not in [_norm(v) for v in expect.in_]:
        return _and(_is(s, observed), f"expected {_one_of(expect.in_, 'en')}", f"要求{_one_of(expect.in_, 'zh')}")
    if expect.not_in is not None and _norm(observed) in [_norm(v) for v in expect.not_in]:
        return _and(_is(s, observed), "which is not allowed", "不允许该值")
    if expect.match is not None and not re.search(expect.match, str(observed)):
        return _and(_is(s, observed), f"which does not have the required form /{expect.match}/",
                    f"不符合要求的格式 /{expect.match}/")
    if expect.not_match is not None and re.search(expect.not_match, str(observed)):
        return _and(_is(s, observed), f"which has the forbidden form /{expect.not_match}/",
                    f"符合禁止的格式 /{expect.not_match}/")
    if expect.mode_max is not None:
        mode = _num(observed) if not isinstance(observed, str) else _octal(observed)
        mask = _octal(expect.mode_max)
        if mode is None or mask is None:
            return _and(_is(s, observed), "expected a file mode", "应为文件权限值")
        extra = int(mode) & ~int(mask) & 0o7777
        if extra:
            s = s.removesuffix(".mode")  # file.mode names each file by its path: "/etc/shadow has mode ..."
            head = Reason(f"{s} has mode {int(mode):04o}", f"{s} 权限为 {int(mode):04o}") if s else \
                Reason(f"mode is {int(mode):04o}", f"权限为 {int(mode):04o}")
            return _and(head, f"more permissive than {int(mask):04o} (extra bits {extra:04o})",
                        f"宽于 {int(mask):04o}（多出 {extra:04o}）")
    if expect.contains is not None:
        have = _listed(observed)
        for want in expect.contains:
            ok = (str(want).lower() in observed.lower()) if isinstance(observed, str) else (_norm(want) in (have or []))
            if not ok:
                return _and(_is(s, observed), f"{_show(want)} is missing", f"缺少 {_show(want, 'zh')}")
    if expect.not_contains is not None:
        have = _listed(observed)
        for bad in expect.not_contains:
            hit = (str(bad).lower() in observed.lower()) if isinstance(observed, str) else (_norm(bad) in (have or []))
            if hit:
                return _and(_is(s, observed), f"which contains the forbidden {_show(bad)}",
                            f"包含禁止的 {_show(bad, 'zh')}")
    if expect.fields is not None:
        if not isinstance(observed, dict):
            return _and(_is(s, observed), "expected a set of named values", "应为键值结构")
        for key, sub in expect.fields.items():
            found = explain(sub, observed.get(key), f"{where}.{key}" if where else key, kind)
            if found:
                return found
    if expect.each is not None:
        if not isinstance(observed, (list, tuple)):
            return _and(_is(s, observed), "expected a list", "应为列表")
        if not observed and expect.when_empty != "pass":  # absence is not compliance (Expect.when_empty)
            _, _, none_en, none_zh = _EMPTY_WORDS.get(kind or "", _EMPTY_NOTHING)
            return Reason(none_en, none_zh).prefixed(s)
        for element in observed:
            name = (element.get("path") or element.get("service") or element.get("user")
                    if isinstance(element, dict) else None)
            found = explain(expect.each, element, name or where, kind)
            if found:
                return found
    if expect.any_of is not None:
        reasons = [explain(alt, observed, where, kind) for alt in expect.any_of]
        if all(reasons):
            return Reason("none of the accepted alternatives holds: " + "; or ".join(r.en for r in reasons if r),
                          "以下任一条件均不满足：" + "；或".join(r.zh for r in reasons if r))
    return None


def _octal(value: Any) -> Optional[int]:
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 8)
    except ValueError:
        return None
