import re
import time

import pytest

from reviews.redaction import _any_of, redactor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ann.lee+refunds@mail.example.co.uk now", "write to [REDACTED:email] now"),
        ("card 4111-1111-1111-1111 exp 12/29", "card [REDACTED:card] exp 12/29"),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: [REDACTED:bearer]"),
        ("authorization: bearer abcdefgh12345678", "authorization: [REDACTED:bearer]"),
        ("aws AKIAABCDEFGHIJKLMNOP", "aws [REDACTED:api_key]"),
        ("key sk-proj-ABCDEFGHIJKLMNOPQRST", "key [REDACTED:api_key]"),
        ("IBAN DE44 5001 0517 5407 3249 31 please", "IBAN [REDACTED:iban] please"),
        ("ssn 123-45-6789", "ssn [REDACTED:ssn]"),
    ],
)
def test_sensitive_text_is_redacted(text, expected):
    assert redactor().text(text) == expected


def test_text_with_nothing_sensitive_is_kept_and_counts_nothing():
    scrub = redactor()
    assert scrub.text("gold tier, DHL, delivered 2026-11-25, ticket T-88120") == (
        "gold tier, DHL, delivered 2026-11-25, ticket T-88120"
    )
    assert scrub.counts == {}


def test_the_combined_scan_matches_where_each_pattern_would_with_its_own_flags():
    patterns = [
        re.compile(r"^ref \d+$", re.MULTILINE),
        re.compile(r"secret . word", re.DOTALL | re.IGNORECASE),
        re.compile(r"emp - \d{3}  # an employee number", re.VERBOSE),
        re.compile(r"\bkey\d+", re.ASCII),  # "ékey1" has a boundary in ASCII only
    ]
    combined = _any_of(patterns)

    texts = ["one\nref 12\ntwo", "SECRET\nWORD", "emp-123", "ékey1", "plain text", "ref 12 more"]
    for text in texts:
        expected = any(pattern.search(text) for pattern in patterns)
        assert bool(combined.search(text)) is expected, text


def test_numbers_that_fail_the_luhn_check_are_kept():
    assert redactor().text("order 1234567890123") == "order 1234567890123"


def test_values_under_sensitive_keys_are_redacted_at_any_depth():
    scrub = redactor()
    value = scrub.json({"user": [{"api_key": "x", "name": "Ann"}], "Password": 3, "n": 1.5})
    assert value == {
        "user": [{"api_key": "[REDACTED:key]", "name": "Ann"}],
        "Password": "[REDACTED:key]",
        "n": 1.5,
    }
    assert scrub.counts == {"key": 2}


def test_configured_patterns_are_redacted_too(settings):
    settings.SIGNOFF_REDACT_PATTERNS = [r"EMP-\d{6}"]
    assert redactor().text("employee EMP-123456") == "employee [REDACTED:custom]"


@pytest.mark.parametrize("filler", ["x", "7", "a.b", "x@"])
def test_a_body_sized_run_without_matches_is_scanned_in_linear_time(filler):
    """A guard against catastrophic backtracking, not a speed target: a quadratic pattern
    takes minutes on this input, a linear one milliseconds."""
    text = filler * (256 * 1024 // len(filler))
    started = time.perf_counter()
    assert redactor().text(text) == text
    assert time.perf_counter() - started < 2.0
