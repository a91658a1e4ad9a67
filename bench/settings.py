"""Settings of the processes the benchmarks start: the production settings, with the floor
endpoints of ``bench/floor.py`` mounted (``bench/urls.py``). Everything else comes from the
environment, as in production (``DATABASE_URL``, ``SIGNOFF_WORKERS``, ``REDIS_URL`` ...)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

# The queue page benchmark renders through Django's test client.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "127.0.0.1", "localhost", "testserver"]  # noqa: F405
