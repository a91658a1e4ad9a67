"""The schedule of ``manage.py rqcron config.task_backends.rq_cron``: RQ 2.x's cron scheduler
(through django-rq) enqueues each periodic task on its RQ queue at its period.

Run one scheduler per deployment: two would enqueue every task twice (harmless, as each task
is safe to run twice, but wasted work).
"""

from django.tasks import task_backends
from django.utils.module_loading import import_string
from rq import cron

from config.task_backends.periodic import periodic_tasks
from config.task_backends.rq import RQBackend, run_task

for module_path, seconds in periodic_tasks().items():
    task = import_string(module_path)
    backend = task_backends[task.backend]
    if not isinstance(backend, RQBackend):
        raise RuntimeError(
            f"rqcron schedules tasks for RQ workers, but {module_path} runs on "
            f"{type(backend).__name__}: set SIGNOFF_WORKERS=rq."
        )
    cron.register(
        run_task,
        queue_name=backend.rq_queue_name(task.queue_name),
        args=(module_path, [], {}, task.backend),
        interval=seconds,
        name=module_path,
    )
