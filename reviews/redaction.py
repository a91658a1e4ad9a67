"""Redaction of sensitive data in prompts and contexts, before anything is stored or logged.

What is redacted: e-mail addresses, payment card numbers (checked with Luhn, so order numbers
survive), IBANs, US social security numbers, bearer tokens and well-known API key shapes,
values under sensitive-looking keys (``password``, ``token``, ``secret``, ``api_key`` …), and
any pattern in the ``SIGNOFF_REDACT_PATTERNS`` setting. Each match becomes ``[REDACTED:<kind>]``.
Payloads are not redacted: they are the action a reviewer approves and a handler performs.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|authorization|credential|ssn|card[-_]?number|cvv",
    re.IGNORECASE,
)

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # The lookbehind starts a match only where a run of address characters starts: without it
    # a long run with no "@" is rescanned from every position, quadratic in its length.
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("bearer", re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)),
    ("api_key", re.compile(r"\b(sk|pk|rk|sgf)[-_][A-Za-z0-9_-]{16,}\b|\bAKIA[0-9A-Z]{16}\b")),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")),
    ("ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
]
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
_SCOPED_FLAGS = {
    "a": re.ASCII,
    "i": re.IGNORECASE,
    "m": re.MULTILINE,
    "s": re.DOTALL,
    "x": re.VERBOSE,
}


def _any_of(patterns: list[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern that matches wherever one of ``patterns`` would, each keeping its flags."""

    def scoped(pattern: re.Pattern[str]) -> str:
        letters = "".join(k for k, flag in _SCOPED_FLAGS.items() if pattern.flags & flag)
        # A verbose pattern's trailing comment would swallow the closing parenthesis.
        end = "\n)" if pattern.flags & re.VERBOSE else ")"
        return f"(?{letters}:{pattern.pattern}{end}"

    return re.compile("|".join(scoped(pattern) for pattern in patterns))


# Most strings of a context (a channel, a tier, a date) hold nothing sensitive: one scan tells
# so, instead of one per pattern.
_ANY = _any_of([*(pattern for _kind, pattern in _PATTERNS), _CARD])


@dataclass
class Redactor:
    """Redacts strings and JSON values, counting what it replaced, by kind."""

    extra_patterns: list[re.Pattern[str]]
    counts: dict[str, int] = field(default_factory=dict)

    def text(self, value: str) -> str:
        if _ANY.search(value):
            for kind, pattern in _PATTERNS:
                value = pattern.sub(self._replacement(kind), value)
            value = _CARD.sub(self._card_replacement, value)
        for pattern in self.extra_patterns:
            value = pattern.sub(self._replacement("custom"), value)
        return value

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {
                key: self._mark("key") if SENSITIVE_KEY.search(str(key)) else self.json(item)
                for key, item in value.items()
            }
        return value

    def _replacement(self, kind: str) -> Callable[[re.Match[str]], str]:
        return lambda match: self._mark(kind)

    def _card_replacement(self, match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return self._mark("card") if _luhn_valid(digits) else match.group()

    def _mark(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"[REDACTED:{kind}]"


def redactor() -> Redactor:
    """A fresh redactor with the configured extra patterns."""
    return Redactor([re.compile(p) for p in settings.SIGNOFF_REDACT_PATTERNS])


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0
