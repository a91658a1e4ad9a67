"""Filters and tags for the reviewer pages.

No filter marks its output safe: what they format is mostly supplied by AI systems, so it
must still pass through the template's autoescaping. The tags build their elements with
``format_html``, which escapes every value they put in.

The tags render in Python what a row of the queue would otherwise assemble from a dozen
lookups and filters: the queue shows 50 rows on every load and every poll.
"""

import datetime as dt
import json
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

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


@register.simple_tag
def time_ago(moment: dt.datetime | None, suffix: str = "") -> SafeString | str:
    """``<time>`` showing how long ago ``moment`` was (``age``, then ``suffix``), with the
    moment in ISO 8601 for machines and in full, in the current time zone, as its title;
    nothing for None."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}" title="{}">{}{}</time>',
        local.isoformat(),
        f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip(),
        age(moment),
        suffix,
    )


@register.simple_tag
def status_badge(suggestion: Any) -> SafeString:
    """The suggestion's status as a badge."""
    return format_html(
        '<span class="badge badge--{}">{}</span>',
        suggestion.status,
        suggestion.get_status_display(),
    )


_SLA_BADGES = {
    "overdue": ("badge--rejected", "Overdue"),
    "due_soon": ("badge--escalated", "Due soon"),
    "on_time": ("badge--approved", "On time"),
}


@register.simple_tag
def sla_badge(suggestion: Any) -> SafeString:
    """Where the open suggestion stands against its deadline (``Suggestion.sla_state``) as
    a badge titled with the deadline, or a muted dash when it has none."""
    state = suggestion.sla_state
    if not state:
        return format_html('<span class="muted">{}</span>', "\N{EM DASH}")
    css, label = _SLA_BADGES[state]
    due = timezone.localtime(suggestion.due_at)
    return format_html(
        '<span class="badge {} sla sla--{}" title="Due {}">{}</span>',
        css,
        state,
        f"{due:%Y-%m-%d %H:%M} {due.tzname() or ''}".rstrip(),
        label,
    )


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
