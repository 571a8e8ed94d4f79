import pytest
from pydantic import ValidationError

from sentinel.expect import evaluate
from sentinel.model import Expect


def ok(expect: dict, observed) -> bool:
    return evaluate(Expect.model_validate(expect), observed) is None


@pytest.mark.parametrize("expect, observed, holds", [
    ({"le": 90}, "90", True),
    ({"le": 90}, "99999", False),
    ({"le": 90}, None, False),             # unset never satisfies a bound
    ({"le": 90}, "ninety", False),
    ({"ge": 8}, 12, True),
    ({"eq": "no"}, "No", True),            # case-insensitive strings
    ({"eq": 2}, "2", True),
    ({"in": ["no", "prohibit-password"]}, "yes", False),
    ({"not_in": ["yes"]}, "no", True),
    ({"empty": True}, [], True),
    ({"empty": True}, ["toor"], False),
    ({"empty": False}, None, False),
    ({"absent": True}, None, True),
    ({"absent": False}, "x", True),
    ({"eq": ["root"]}, ["root"], True),
    ({"eq": ["root"]}, ["root", "toor"], False),
    ({"match": r"^0?0?27$"}, "027", True),
    ({"not_match": "telnet"}, "sshd", True),
    ({"mode_max": "0644"}, "0640", True),
    ({"mode_max": "0644"}, "0664", False),
    ({"mode_max": "0000"}, "0000", True),
    ({"mode_max": "0640"}, "4755", False),
    ({"contains": ["even_deny_root"]}, ["deny=5", "even_deny_root"], True),
    ({"contains": ["x"]}, "abc", False),
    ({"not_contains": ["telnet"]}, ["ssh", "telnet"], False),
    ({"fields": {"deny": {"le": 5}, "unlock_time": {"ge": 300}}}, {"deny": "3", "unlock_time": "600"}, True),
    ({"fields": {"deny": {"le": 5}}}, {"deny": "10"}, False),
    ({"fields": {"deny": {"le": 5}}}, "not a mapping", False),
    ({"each": {"in": ["no"]}}, ["no", "no"], True),
    ({"each": {"in": ["no"]}}, ["no", "yes"], False),
    ({"each": {"le": 600}}, [], False),     # absence is not compliance unless the expectation says so
    ({"each": {"le": 600}, "when_empty": "pass"}, [], True),
    ({"each": {"le": 600}, "empty": False}, [], False),
    ({"any_of": [{"fields": {"local_days": {"ge": 180}}}, {"fields": {"remote": {"empty": False}}}]},
     {"local_days": 28, "remote": ["@@log.example:514"]}, True),
    ({"any_of": [{"fields": {"local_days": {"ge": 180}}}, {"fields": {"remote": {"empty": False}}}]},
     {"local_days": 28, "remote": []}, False),
])
def test_operators(expect, observed, holds):
    assert ok(expect, observed) is holds


def test_reason_names_the_field_and_values():
    reason = evaluate(Expect.model_validate({"each": {"fields": {"deny": {"le": 5}}}}),
                      [{"service": "system-auth", "deny": "10"}])
    assert "system-auth" in reason and "deny" in reason and "10" in reason and "5" in reason


def test_describe_is_readable():
    assert Expect.model_validate({"le": 90}).describe() == "le 90"
    assert Expect.model_validate({"le": 0.5}).describe() == "le 0.5"
    assert "any of" in Expect.model_validate({"any_of": [{"eq": 1}, {"eq": 2}]}).describe()


def test_unknown_operator_is_rejected():
    with pytest.raises(ValidationError, match="lessthan"):
        Expect.model_validate({"lessthan": 3})
