"""Settings of the processes that tests/processes.py starts (workers and web nodes): the test
settings, with the test handlers of tests/worker_handlers.py loaded as an app.

The test passes the rest through the environment, as production does: ``DATABASE_URL`` (the
test database), ``SIGNOFF_WORKERS``, ``SIGNOFF_QUEUE``, ``RQ_REDIS_URL`` or
``CELERY_BROKER_URL``.
"""

from config.settings_test import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.worker_handlers"]  # noqa: F405
