"""Export the audit trail: ``manage.py audit_export --since … --until … --format jsonl|csv``."""

import datetime as dt
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.export import FORMATS, export_lines
from audit.selectors import audit_event_list, audit_event_rows


class Command(BaseCommand):
    help = (
        "Stream audit events, oldest first, as JSON Lines or CSV. Every row carries its hashes, so "
        "the export verifies on its own (audit_verify --file, or audit/verify_export.py)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", help="From this time (ISO 8601 date or datetime; UTC if no zone)."
        )
        parser.add_argument("--until", help="Before this time (exclusive).")
        parser.add_argument("--format", choices=sorted(FORMATS), default="jsonl")
        parser.add_argument("--output", "-o", help="Write to this file instead of standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _moment(options["since"], "--since")
        until = _moment(options["until"], "--until")
        if since and until and since >= until:
            raise CommandError("--since must be before --until.")
        rows = audit_event_rows(audit_event_list(since=since, until=until))
        lines = export_lines(rows, options["format"])
        if options["output"]:
            try:
                with open(options["output"], "w", encoding="utf-8", newline="") as out:
                    count = _write(lines, out)
            except OSError as exc:
                raise CommandError(f"Cannot write {options['output']}: {exc.strerror}") from None
            self.stderr.write(f"Wrote {count} lines to {options['output']}.")
        else:
            _write(lines, sys.stdout)


def _write(lines: Any, out: Any) -> int:
    count = 0
    for line in lines:
        out.write(line)
        count += 1
    return count


def _moment(value: str | None, option: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            moment = dt.datetime.combine(day, dt.time()) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"{option} must be an ISO 8601 date or datetime, not {value!r}.")
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    return moment
