"""The Celery application, for ``SIGNOFF_WORKERS=celery``.

``celery -A config worker`` runs Signoff's tasks; ``celery -A config beat`` enqueues the
periodic ones (``config.task_backends.periodic``). Celery reads the ``CELERY_*`` settings from
``config/settings.py``. Tasks are Django's ``@task`` functions: the django-tasks-celery backend
registers each with this application, by its import path, when its module is imported (which
``autodiscover_tasks`` and the apps' ``ready()`` do).
"""

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("signoff")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def schedule_periodic_tasks(sender: Celery, **kwargs: Any) -> None:
    """Give beat every periodic task, by name: beat only sends it, a worker runs it."""
    from config.task_backends.periodic import periodic_tasks

    for module_path, seconds in periodic_tasks().items():
        sender.add_periodic_task(float(seconds), sender.signature(module_path), name=module_path)
