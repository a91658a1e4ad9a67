"""Backends of Django's tasks framework for the workers Signoff runs on, and their schedule.

``rq``: the RQ backend (``config.task_backends.rq.RQBackend``), its job entry point and the
``manage.py rqcron`` configuration (``rq_cron``). Celery needs no code here: the
django-tasks-celery backend plugs into ``django.tasks`` itself, and ``config/celery.py`` is the
Celery application. ``periodic`` lists the tasks both schedulers run.
"""
