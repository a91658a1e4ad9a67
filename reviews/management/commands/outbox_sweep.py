"""Enqueue the outbox work that is due and not in the queue: ``manage.py outbox_sweep``."""

from typing import Any

from django.core.management.base import BaseCommand

from reviews.services import outbox_sweep


class Command(BaseCommand):
    help = (
        "Enqueue every open outbox item that is due and not in the queue: never enqueued (its "
        "process died after the commit) or enqueued longer ago than "
        "SIGNOFF_OUTBOX_STALE_SECONDS (the queue lost it, or its worker died). The scheduler "
        "does this every minute; run it by hand or from cron where there is no scheduler."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = outbox_sweep()
        self.stdout.write(f"{count} outbox item(s) enqueued.")
