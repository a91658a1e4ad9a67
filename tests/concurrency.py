"""Running work on several database connections at the same moment, for race tests."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_together(workers: list[Callable[[], Any]]) -> list[Any]:
    """Start every worker at the same moment, each on its own connection; collect results."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)

    def run(index: int, work: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = work()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
