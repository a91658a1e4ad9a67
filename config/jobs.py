"""The one way to start background work: enqueue a task once the current transaction commits.

A job enqueued inside a transaction that later rolls back would act on a change that never
happened, and a worker could pick it up before the commit makes the change visible. Enqueueing
on commit rules out both. (Work that must survive a process killed between commit and enqueue
needs an outbox row written in the transaction itself.)
"""

from typing import Any

from django.db import transaction
from django.tasks import Task


def enqueue_on_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    """Enqueue ``task(*args, **kwargs)`` after the surrounding transaction commits.

    Outside a transaction it is enqueued at once. Arguments must be JSON-serialisable ids.
    """
    transaction.on_commit(lambda: task.enqueue(*args, **kwargs), robust=True)
