"""The site's 通报 policy: who issues it (the authority's header) and how long a department has to rectify a
problem of each incident grade (sentinel/events/grading.py). Site-configurable as the collector's `notices`
setting (docs/notices.md); the defaults follow the usual practice of the 监测预警通报 offices: the graver the
grade, the shorter the time."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..events.grading import TABLE

GRADES = ("特别重大", "重大", "较大", "一般")

#: days to rectify, by grade
DEFAULT_DEADLINES: dict[str, int] = {"特别重大": 1, "重大": 3, "较大": 7, "一般": 15}


class NoticePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    authority: str = Field(default="网络安全和信息化委员会办公室", min_length=1, max_length=200,
                           description="the issuing authority, printed as the document's header (发文机关)")
    number_prefix: str = Field(default="网安通报", min_length=1, max_length=32,
                               description="the document number's prefix: 网安通报〔2026〕3号")
    deadline_days: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_DEADLINES),
                                          description="days to rectify, by incident grade")
    zombie_days: Optional[int] = Field(default=None, ge=1, le=365,
                                       description="days to rectify a zombie-system problem (清理 takes longer than "
                                                   "closing a port); default: its grade's (一般)")
    verify_seconds: int = Field(default=3600, ge=0, le=7 * 86400,
                                description="how often the collector re-verifies notified problems (0: only on "
                                            "request and when a notice is issued)")

    @field_validator("deadline_days")
    @classmethod
    def _every_grade(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(GRADES))
        if unknown:
            raise ValueError(f"unknown grade(s) {', '.join(unknown)}; grades are {', '.join(GRADES)}")
        if any(days < 1 or days > 365 for days in value.values()):
            raise ValueError("a deadline is 1 to 365 days")
        # a grade the site leaves out keeps its default: a partial override never leaves a problem without one
        return {**DEFAULT_DEADLINES, **value}

    def days(self, grade: str) -> int:
        return self.deadline_days[grade]


def grade(event_class: str, level: int) -> str:
    """The incident grade of a problem of this class on a system of this level (the graded-response table)."""
    return TABLE[event_class][min(max(level, 1), 5)]
