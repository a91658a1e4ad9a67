"""Filters for the reviewer pages.

None of them marks its output safe: what they format is mostly supplied by AI systems, so it
must still pass through the template's autoescaping.
"""

import datetime as dt
import json
from typing import Any

from django import template
from django.utils import timezone

from reviews import diffing

register = template.Library()


@register.filter
def age(moment: dt.datetime | None) -> str:
    """How long ago ``moment`` was, compactly: "45 s", "12 min", "3 h", "2 d"."""
    if moment is None:
        return ""
    seconds = max(0, int((timezone.now() - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 60 * 60:
        return f"{seconds // 60} min"
    if seconds < 24 * 60 * 60:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


@register.filter
def pretty_json(value: Any) -> str:
    """``value`` as indented JSON with sorted keys, the form diffs are computed on."""
    return diffing.pretty_json(value)


@register.filter
def json_rows(value: Any) -> list[tuple[str, Any]]:
    """The top-level ``(key, value)`` pairs of a JSON object, sorted by key.

    A template cannot use ``payload.items``: for a payload with an ``"items"`` key, Django's
    lookup would return that value instead of the method.
    """
    if not isinstance(value, dict):
        return []
    return sorted(((str(key), item) for key, item in value.items()), key=lambda row: row[0])


@register.filter
def is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


@register.filter
def json_scalar(value: Any) -> str:
    """A JSON scalar as a reviewer reads it: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
