"""The auditor's pages: the audit log with its filters, and its export.

Auditors read; nothing here changes anything. Whoever may not read the trail gets 404, as if
the pages did not exist. The log pages by keyset on ``sequence`` (``?before=`` / ``?after=``)
rather than by offset, so any page costs the same on a trail of millions of events, and no
page counts the whole trail.
"""

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_safe

from audit.export import FORMATS, export_lines
from audit.forms import AuditFilterForm
from audit.models import AuditEvent
from audit.permissions import can_read_audit_trail
from audit.selectors import (
    audit_chain_head,
    audit_checkpoint_latest,
    audit_event_list,
    audit_event_rows,
    audit_events_any,
)

PAGE_SIZE = 100
HASH_PREFIX = 12
EXPORT_LABELS = {"jsonl": "Download JSON Lines", "csv": "Download CSV"}


@dataclass(frozen=True)
class LogRow:
    """One event as the log shows it: the event, and its data as indented JSON."""

    event: AuditEvent
    data_json: str

    @property
    def hash_prefix(self) -> str:
        return self.event.hash[:HASH_PREFIX]


@dataclass(frozen=True)
class LogPage:
    """One page of the log, newest first, and the cursors of its neighbours (None: no such
    page)."""

    rows: list[LogRow]
    newer_after: int | None
    older_before: int | None

    @property
    def newest_shown(self) -> int | None:
        return self.rows[0].event.sequence if self.rows else None

    @property
    def oldest_shown(self) -> int | None:
        return self.rows[-1].event.sequence if self.rows else None


@login_required
@require_safe
def log(request: HttpRequest) -> HttpResponse:
    """The audit log, newest first, a hundred events a page, narrowed by the filters."""
    _require_reader(request)
    form = AuditFilterForm(request.GET)
    cursor_errors: list[str] = []
    before = _cursor(request, "before", cursor_errors)
    after = _cursor(request, "after", cursor_errors)
    page: LogPage | None = None
    links: dict[str, str] = {}
    if form.is_valid() and not cursor_errors:
        page = _page(audit_event_list(**form.cleaned_filters()), before=before, after=after)
        carried = form.query_items()
        here = reverse("audit:log")
        if page.newer_after is not None:
            links["newer"] = _url(here, [*carried, ("after", str(page.newer_after))])
        if before is not None or after is not None:
            links["newest"] = _url(here, carried)
        if page.older_before is not None:
            links["older"] = _url(here, [*carried, ("before", str(page.older_before))])
    export_links = (
        [
            (label, _url(reverse("audit:export"), [("format", fmt), *form.query_items()]))
            for fmt, label in EXPORT_LABELS.items()
        ]
        if page is not None
        else []
    )
    head_sequence, head_hash = audit_chain_head()
    latest = audit_checkpoint_latest()
    return render(
        request,
        "audit/log.html",
        {
            "form": form,
            "cursor_errors": cursor_errors,
            "page": page,
            "links": links,
            "export_links": export_links,
            "paged": before is not None or after is not None,
            "head_sequence": head_sequence,
            "head_hash": head_hash,
            "checkpoint": latest,
            "checkpoint_signed_at": _moment(latest.signed_at) if latest else None,
            "since_checkpoint": head_sequence - latest.sequence if latest else 0,
            "page_size": PAGE_SIZE,
        },
    )


@login_required
@require_safe
def export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The events matching the filters, oldest first, streamed as JSON Lines or CSV.

    Rows are read a chunk at a time and written as they come, so a download of millions of
    events never sits in memory. Each row carries its hashes: the file verifies on its own.
    """
    _require_reader(request)
    fmt = request.GET.get("format", "")
    if fmt not in FORMATS:
        return _bad_request(f"Choose the export format: format={' or format='.join(FORMATS)}.")
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        problems = "; ".join(
            f"{_field_label(form, name)}: {' '.join(str(error) for error in errors)}"
            for name, errors in form.errors.items()
        )
        return _bad_request(f"The filters are not valid: {problems}")
    filters = form.cleaned_filters()
    rows = audit_event_rows(audit_event_list(**filters))
    response = StreamingHttpResponse(
        export_lines(rows, fmt), content_type=f"{FORMATS[fmt]}; charset=utf-8"
    )
    start = _stamp(filters["since"]) if filters["since"] else "start"
    end = _stamp(filters["until"] or timezone.now())
    response["Content-Disposition"] = f'attachment; filename="signoff-audit-{start}-{end}.{fmt}"'
    # The trail is sensitive: no shared cache may keep a copy of it.
    response["Cache-Control"] = "no-store"
    return response


# --- Helpers ----------------------------------------------------------------------------------


def _require_reader(request: HttpRequest) -> None:
    if not can_read_audit_trail(request.user):
        raise Http404("No such page.")


def _page(events: QuerySet[AuditEvent], *, before: int | None, after: int | None) -> LogPage:
    """A page of ``events`` newest first: the newest ``PAGE_SIZE`` below ``before``, or the
    oldest ``PAGE_SIZE`` above ``after`` (shown newest first), or the newest of all.

    One more row than shown is read to learn whether a further page exists; whether one exists
    the other way is one row read from an index (``audit_events_any``), never a count.
    """
    if after is not None:
        found = list(events.filter(sequence__gt=after).order_by("sequence")[: PAGE_SIZE + 1])
        has_newer = len(found) > PAGE_SIZE
        shown = found[:PAGE_SIZE][::-1]
        has_older = bool(shown) and audit_events_any(events.filter(sequence__lt=shown[-1].sequence))
    else:
        below = events if before is None else events.filter(sequence__lt=before)
        found = list(below.order_by("-sequence")[: PAGE_SIZE + 1])
        has_older = len(found) > PAGE_SIZE
        shown = found[:PAGE_SIZE]
        has_newer = (
            before is not None
            and bool(shown)
            and audit_events_any(events.filter(sequence__gt=shown[0].sequence))
        )
    return LogPage(
        rows=[LogRow(event, _pretty(event.data)) for event in shown],
        newer_after=shown[0].sequence if has_newer else None,
        older_before=shown[-1].sequence if has_older else None,
    )


def _cursor(request: HttpRequest, name: str, errors: list[str]) -> int | None:
    value = request.GET.get(name, "")
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        errors.append(f"The page position {name}={value[:40]} is not an event number.")
        return None
    return int(value)


def _url(path: str, items: list[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(items)}" if items else path


def _pretty(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _moment(text: str) -> dt.datetime | str:
    try:
        return parse_datetime(text) or text
    except ValueError:
        return text


def _field_label(form: AuditFilterForm, name: str) -> str:
    field = form.fields.get(name)
    return str(field.label) if field is not None and field.label else "Filters"


def _bad_request(message: str) -> HttpResponse:
    return HttpResponseBadRequest(message + "\n", content_type="text/plain; charset=utf-8")
