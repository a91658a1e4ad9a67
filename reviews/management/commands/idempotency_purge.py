"""Delete the Idempotency-Keys no longer kept; run it hourly or daily (cron, or the scheduler
through ``reviews.tasks.purge_idempotency_keys``)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from reviews.services import idempotency_key_purge


class Command(BaseCommand):
    help = (
        "Delete Idempotency-Keys first used more than SIGNOFF_IDEMPOTENCY_TTL_SECONDS ago, and "
        "keys left in flight for over an hour by a request whose process died."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        purge = idempotency_key_purge()
        self.stdout.write(
            f"Deleted {purge.total} idempotency key(s): {purge.expired} older than "
            f"{settings.SIGNOFF_IDEMPOTENCY_TTL_SECONDS} s, {purge.abandoned} abandoned in flight."
        )
