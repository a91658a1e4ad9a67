"""Fill a benchmark database: ``manage.py bench_seed --suggestions 1000000``."""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviews.models import Suggestion


class Command(BaseCommand):
    help = (
        "Top a benchmark database up to N suggestions over 20 capabilities (bench.cap00 to "
        "bench.cap19, reviewers bench-reviewer0 to 7): a tenth pending, the rest decided, with "
        "their decisions and a valid audit chain, written with COPY. Refuses a database that "
        "holds suggestions of other capabilities: it is for benchmark databases only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--suggestions", type=int, required=True, help="how many in all")
        parser.add_argument(
            "--pending-share",
            type=float,
            default=0.1,
            help="the share of new suggestions left pending (default 0.1)",
        )

    def handle(self, *args: Any, suggestions: int, pending_share: float, **options: Any) -> None:
        from bench.seed import seed_suggestions

        if suggestions < 1:
            raise CommandError("--suggestions must be at least 1.")
        if not 0 <= pending_share <= 0.5:
            raise CommandError("--pending-share must be between 0 and 0.5.")
        if Suggestion.objects.exclude(capability__key__startswith="bench.").exists():
            raise CommandError(
                "This database holds suggestions of capabilities other than bench.*: "
                "bench_seed only fills a benchmark database (see bench/README.md)."
            )
        started = time.perf_counter()
        added = seed_suggestions(suggestions, pending_share=pending_share)
        self.stdout.write(
            f"{added} suggestion(s) added in {time.perf_counter() - started:.1f} s "
            f"({suggestions} wanted in all)."
        )
