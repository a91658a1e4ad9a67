"""When to try failed work again: exponential back-off with full jitter, and ``Retry-After``.

Pure functions, no database. Full jitter (a uniform draw between zero and an exponentially
growing ceiling) spreads the retries of many items that failed together (a downstream outage)
instead of sending them back in one wave; see "Exponential Backoff And Jitter" on the AWS
Architecture Blog.
"""

import datetime as dt
import random
from email.utils import parsedate_to_datetime

# 2 ** 62 times any sensible base is far beyond any cap; the exponent stops there so that a
# huge attempt number cannot overflow a float.
_MAX_EXPONENT = 62

# Not for secrets: it only spreads retries over time.
_jitter = random.Random()  # noqa: S311


def backoff_ceiling(attempt: int, *, base: float, cap: float) -> float:
    """The longest wait, in seconds, after failed attempt number ``attempt`` (1 for the first):
    ``base`` doubled for each attempt after the first, never more than ``cap``."""
    if attempt < 1:
        raise ValueError("attempts are counted from 1")
    if base < 0 or cap < 0:
        raise ValueError("base and cap cannot be negative")
    exponent = min(attempt - 1, _MAX_EXPONENT)
    return float(min(cap, base * 2.0**exponent))


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """How long to wait, in seconds, before the attempt after failed attempt number
    ``attempt``: uniformly drawn from ``[0, backoff_ceiling(attempt, base=base, cap=cap)]``."""
    return (rng or _jitter).uniform(0.0, backoff_ceiling(attempt, base=base, cap=cap))


def retry_after_seconds(value: str | None, *, now: dt.datetime) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (never negative), or None when
    it is absent or unreadable. It holds either a number of seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # HTTP dates are GMT; "-0000" parses as naive
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, (moment - now).total_seconds())
