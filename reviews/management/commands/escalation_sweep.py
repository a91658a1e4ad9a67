"""Take the escalation steps that are due: ``manage.py escalation_sweep [--now ISO]``."""

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from reviews.services.escalation import EscalationStep, escalation_sweep


class Command(BaseCommand):
    help = (
        "Move every open suggestion past its deadline one rung up the escalation ladder "
        "(reviewers, senior reviewers, the capability's owner), or past the top to its "
        "policy's default. Prints each step; a scheduler runs this every minute."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now",
            help="Sweep as if it were this moment (ISO 8601, e.g. 2026-05-01T12:00:00+00:00; "
            "without an offset, in the server's time zone). Default: the current time.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = _parse_now(options["now"]) if options["now"] else None
        taken = escalation_sweep(now=now, on_step=self._print_step)
        self.stdout.write(f"{taken} escalation step(s) taken.")

    def _print_step(self, step: EscalationStep) -> None:
        if step.to_level is None:
            what = f"{step.outcome} by its policy's default past rung {step.from_level}"
        else:
            what = f"escalated from rung {step.from_level} to rung {step.to_level}"
        self.stdout.write(f"{step.capability} {step.suggestion_id}: {what}")


def _parse_now(value: str) -> dt.datetime:
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--now: {value!r} is not an ISO 8601 date and time.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment
