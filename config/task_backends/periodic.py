"""The tasks that run on a schedule, for every scheduler: ``manage.py rqcron`` on RQ (see
``rq_cron``) and ``celery -A config beat`` on Celery (see ``config/celery.py``)."""

from django.conf import settings


def periodic_tasks() -> dict[str, int]:
    """Each scheduled task, by the import path of its ``@task``, with its period in seconds.

    Each is safe to run late, twice, or on two schedulers at once: the sweeps lock what they
    take, and a checkpoint is written only when the chain has moved.
    """
    return {
        "reviews.tasks.sweep_outbox": 60,
        "reviews.tasks.sweep_escalations": 60,
        "reviews.tasks.purge_idempotency_keys": 60 * 60,
        "audit.tasks.write_checkpoint": settings.SIGNOFF_AUDIT_CHECKPOINT_MINUTES * 60,
    }
