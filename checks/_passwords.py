"""Whether a password is weak, for the object probes that can see one (Redis ACL users, Tomcat's tomcat-users.xml).

Weak, as the 作业指导书 and the 高风险判定指引 (6.4.1.1) use the word: a common or default password, the account's
own name, fewer than 8 characters, or fewer than 3 of the 4 character classes. A reason never repeats the password.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Optional

# Common passwords and the products' own examples (redis.conf's foobared, tomcat-users.xml's tomcat/s3cret and
# <must-be-changed>). Plain passwords are compared case-insensitively; SHA-256 hashes against these words in
# their usual capitalisations.
WEAK_WORDS = ("foobared", "redis", "redis123", "redis@123", "tomcat", "tomcat123", "s3cret", "<must-be-changed>",
              "manager", "changeit", "123456", "12345678", "123456789", "1234567890", "password", "passw0rd",
              "p@ssw0rd", "p@ssword", "admin", "admin123", "admin@123", "root", "root123", "qwerty", "abc123",
              "111111", "000000", "666666", "888888", "1qaz2wsx", "1qaz@wsx", "test", "test123", "default",
              "changeme", "secret")
_WEAK_SHA256 = {hashlib.sha256(v.encode()).hexdigest() for w in WEAK_WORDS for v in {w, w.capitalize(), w.upper()}}
MIN_LENGTH = 8


def weak_reason(account: str, password: str, extra: Iterable[str] = ()) -> Optional[str]:
    """Why a plain password is weak, or None."""
    low = password.lower()
    if low in WEAK_WORDS or low == account.lower() or low in {e.lower() for e in extra}:
        return "a common or default password, or the account's name"
    if len(password) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters ({len(password)})"
    classes = sum(bool(any(test(c) for c in password)) for test in
                  (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum()))
    if classes < 3:
        return f"only {classes} of the 4 character classes (lower, upper, digit, other)"
    return None


def weak_sha256(hexdigest: str) -> Optional[str]:
    """Why a SHA-256-hashed password is weak (it is a common one), or None; its length cannot be known."""
    return "a common password (its SHA-256 is in the weak-password list)" if hexdigest.lower() in _WEAK_SHA256 \
        else None
