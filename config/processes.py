"""Worker processes that run Django code for a command, on the command's own database.

Spawned, not forked: a fork would share the parent's open database connections (two
processes on one connection interleave their answers) and whatever locks its threads held.
Each worker sets Django up from ``DJANGO_SETTINGS_MODULE`` and connects to the database the
parent uses, test databases included.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from django.db import connection


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes set up as described above."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(dict(connection.settings_dict),),
    )


def _start_worker(database: Any) -> None:
    import django
    from django.conf import settings

    settings.DATABASES["default"] = database
    django.setup()
