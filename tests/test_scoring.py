"""Worked examples of the scoring formula documented in sentinel/scoring.py."""
import pytest

from sentinel import scoring
from sentinel.model import CheckResult, ItemResult, Severity, Status, Text, Verdict

T = Text(zh="测试", en="test")


def result(status, *, severity=Severity.MEDIUM, high_risk=None, waiver=None, clause="8.1.4.1", item="a", cid="c",
           advisory=None):
    return CheckResult(check_id=cid, clause=clause, item=item, title=T, status=status, severity=severity,
                       high_risk=high_risk, expected="x", remediation=T, waiver=waiver, advisory=advisory)


def item(verdict, weight):
    return ItemResult(clause="8.1.4.1", item="a", control=T, text=T, weight=weight, verdict=verdict)


P, F, E, NA = Status.PASS, Status.FAIL, Status.ERROR, Status.NOT_APPLICABLE


@pytest.mark.parametrize("statuses, has_checks, expected", [
    ([], False, Verdict.PENDING),                 # manual item
    ([NA, NA], True, Verdict.NOT_APPLICABLE),
    ([P, P, NA], True, Verdict.CONFORM),
    ([P, F], True, Verdict.PARTIAL),
    ([F, F], True, Verdict.NONCONFORM),
    ([F, E], True, Verdict.NONCONFORM),
    ([P, E], True, Verdict.PENDING),              # error never counts as pass
    ([E], True, Verdict.PENDING),
    ([P, F, E], True, Verdict.PARTIAL),
])
def test_item_verdict(statuses, has_checks, expected):
    assert scoring.item_verdict([result(s) for s in statuses], has_checks) is expected


def test_waived_check_is_left_out_of_the_verdict():
    assert scoring.item_verdict([result(P), result(F, waiver="compensated by HIDS")], True) is Verdict.CONFORM
    assert scoring.item_verdict([result(F, waiver="accepted")], True) is Verdict.NOT_APPLICABLE


def test_weighted_score_worked_example():
    # 1.0×1 + 0.7×0.5 + 0.4×0 = 1.35 over weights 2.1 -> 64.29; n/a and pending items are left out.
    items = [item(Verdict.CONFORM, 1.0), item(Verdict.PARTIAL, 0.7), item(Verdict.NONCONFORM, 0.4),
             item(Verdict.NOT_APPLICABLE, 1.0), item(Verdict.PENDING, 0.7)]
    assert scoring.weighted_score(items) == 64.29
    assert scoring.weighted_score([item(Verdict.PENDING, 1.0)]) is None


def test_pass_rate_counts_errors_as_not_passed():
    rs = [result(P), result(P), result(F), result(E), result(NA), result(F, waiver="x")]
    assert scoring.pass_rate(rs) == 0.5  # 2 of (2 pass + 1 fail + 1 error)
    assert scoring.pass_rate([result(NA)]) is None


@pytest.mark.parametrize("score, risks, expected", [
    (95.0, {}, "优"),
    (95.0, {"medium": 1}, "良"),     # 优 needs no medium or high risk
    (85.0, {"low": 3}, "良"),
    (72.0, {}, "中"),
    (69.99, {}, "差"),
    (100.0, {"high": 1}, "差"),      # a high-risk finding caps the conclusion
    (None, {}, "待定"),
    (None, {"high": 1}, "差"),
])
def test_conclusion(score, risks, expected):
    assert scoring.conclusion(score, risks) == expected


def test_risk_levels():
    assert scoring.risk_level(result(F, high_risk="6.4.1.1", severity=Severity.LOW)) == "high"
    assert scoring.risk_level(result(F, severity=Severity.CRITICAL)) == "medium"
    assert scoring.risk_level(result(F, severity=Severity.HIGH)) == "medium"
    assert scoring.risk_level(result(F, severity=Severity.MEDIUM)) == "low"
    assert scoring.risk_level(result(P, high_risk="6.4.1.1")) is None
    assert scoring.risk_level(result(F, high_risk="6.4.1.1", waiver="accepted")) is None


def test_summary_lists_high_risk_findings_and_caps_conclusion():
    rs = [result(P, cid="a"), result(F, cid="b", high_risk="6.4.1.2", item="c")]
    items = [ItemResult(clause="8.1.4.1", item="a", control=T, text=T, weight=1.0, verdict=Verdict.CONFORM),
             ItemResult(clause="8.1.4.1", item="c", control=T, text=T, weight=1.0, verdict=Verdict.NONCONFORM)]
    s = scoring.summarize(items, rs)
    assert s.counts == {"pass": 1, "fail": 1, "error": 0, "not_applicable": 0}
    assert s.score == 50.0 and s.pass_rate == 0.5
    assert s.high_risk == 1 and s.high_risk_findings[0].check_id == "b" and s.high_risk_findings[0].case == "6.4.1.2"
    assert (s.conclusion, s.conclusion_en) == ("差", "poor")


C, PA, N, PE, X = Verdict.CONFORM, Verdict.PARTIAL, Verdict.NONCONFORM, Verdict.PENDING, Verdict.NOT_APPLICABLE


@pytest.mark.parametrize("verdicts, expected", [
    ([C, C, X], C),
    ([N, N], N),
    ([C, N], PA),
    ([PA, C], PA),
    ([C, PE], PE),        # one host undetermined: the system item is not shown as conforming
    ([N, PE], N),
    ([C, N, PE], PA),
    ([X, X], X),
    ([PE], PE),
])
def test_combine_verdicts_across_objects(verdicts, expected):
    assert scoring.combine_verdicts(verdicts) is expected


def test_system_rollup_worked_example():
    def it(clause, letter, verdict, weight):
        return ItemResult(clause=clause, item=letter, control=T, text=T, weight=weight, verdict=verdict)

    host_a = [it("8.1.4.1", "a", C, 0.7), it("8.1.4.4", "b", C, 1.0)]
    host_b = [it("8.1.4.1", "a", N, 0.7), it("8.1.4.4", "b", C, 1.0)]
    network = [it("8.1.4.4", "b", N, 1.0), it("8.1.3.1", "a", C, 1.0)]
    items = scoring.system_items([host_a, host_b, network])
    assert [(i.clause, i.item, i.verdict) for i in items] == [
        ("8.1.3.1", "a", C), ("8.1.4.1", "a", PA), ("8.1.4.4", "b", PA)]
    # (1.0×1 + 0.7×0.5 + 1.0×0.5) / 2.7 = 68.52
    assert scoring.weighted_score(items) == 68.52


def test_rejudged_items_take_their_verdicts_from_the_results():
    """A body's claimed verdicts are replaced by what its results give (the collector reads agents' bodies)."""
    claimed = [ItemResult(clause="8.1.4.1", item="a", control=T, text=T, weight=1.0, verdict=Verdict.CONFORM,
                          checks=["c1", "c2"]),
               ItemResult(clause="8.1.4.1", item="b", control=T, text=T, weight=0.7, verdict=Verdict.CONFORM,
                          checks=["c3"]),
               ItemResult(clause="8.1.4.1", item="c", control=T, text=T, weight=0.4, verdict=Verdict.PENDING,
                          checks=[])]
    results = [result(Status.FAIL, cid="c1"), result(Status.PASS, cid="c2"), result(Status.PASS, item="b", cid="c3")]
    a, b, c = scoring.rejudged_items(claimed, results)
    assert (a.verdict, b.verdict, c.verdict) == (Verdict.PARTIAL, Verdict.CONFORM, Verdict.PENDING)
    assert b is claimed[1] and c is claimed[2], "an item whose verdict agrees is kept as it is"
    assert claimed[0].verdict == Verdict.CONFORM, "the input is not changed"


def test_advisory_check_is_evidence_not_a_verdict():
    adv = dict(advisory=Text(zh="超出作业指导书的 CIS 做法", en="CIS practice beyond the guide"))
    failing = result(F, severity=Severity.HIGH, **adv)
    # A failing advisory check does not pull a passing item down, nor count as a risk or in the pass rate.
    assert scoring.item_verdict([result(P), failing], True) is Verdict.CONFORM
    assert scoring.risk_level(failing) is None
    assert scoring.pass_rate([result(P), failing]) == 1.0
    # Advisory evidence alone leaves the item to the assessor (待核查), never 不适用 or 符合.
    assert scoring.item_verdict([failing], True) is Verdict.PENDING
    assert scoring.item_verdict([result(P, **adv)], True) is Verdict.PENDING
    assert scoring.item_verdict([result(NA, **adv)], True) is Verdict.NOT_APPLICABLE
