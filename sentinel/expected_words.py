"""A check's expectation in Chinese words, for zh output (csv, junit): "≤ 90", "为 no", "权限不宽于 0644",
where `Expect.describe()` gives the operator form ("le 90") that machines and the en output keep.

The same operators as sentinel/expect.py judges, worded the way its reasons word what was required.
"""
from __future__ import annotations

from .expect import show_value
from .model import Expect

_BOUNDS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}  # lower bound first: "≥ 0，且≤ 90"


def _values(values: list) -> str:
    return "、".join(show_value(v, "zh") for v in values)


def expected_zh(expect: Expect) -> str:
    """Every operator of `expect`, joined with 且 (they must all hold); 任意值 when there is none."""
    parts: list[str] = []
    if expect.eq is not None:
        parts.append(f"为 {show_value(expect.eq, 'zh')}")
    if expect.ne is not None:
        parts.append(f"不为 {show_value(expect.ne, 'zh')}")
    for op, sign in _BOUNDS.items():
        bound = getattr(expect, op)
        if bound is not None:
            parts.append(f"{sign} {bound:g}")
    if expect.in_ is not None:
        parts.append(f"为 {_values(expect.in_)}" if len(expect.in_) == 1 else f"为以下之一：{_values(expect.in_)}")
    if expect.not_in is not None:
        parts.append(f"不为以下任一：{_values(expect.not_in)}")
    if expect.match is not None:
        parts.append(f"符合 /{expect.match}/")
    if expect.not_match is not None:
        parts.append(f"不符合 /{expect.not_match}/")
    if expect.contains is not None:
        parts.append(f"包含 {_values(expect.contains)}")
    if expect.not_contains is not None:
        parts.append(f"不包含 {_values(expect.not_contains)}")
    if expect.empty is not None:
        parts.append("为空" if expect.empty else "不为空")
    if expect.absent is not None:
        parts.append("不存在" if expect.absent else "存在")
    if expect.mode_max is not None:
        parts.append(f"权限不宽于 {expect.mode_max}")
    if expect.fields is not None:
        parts.append("；".join(f"{name} {expected_zh(sub)}" for name, sub in expect.fields.items()))
    if expect.each is not None:
        parts.append(f"每一项均{expected_zh(expect.each)}")
        if expect.when_empty == "pass":
            parts.append("无任何项时视为符合")
    if expect.any_of is not None:
        parts.append("满足以下任一：" + " 或 ".join(f"（{expected_zh(sub)}）" for sub in expect.any_of))
    return "，且".join(parts) or "任意值"
