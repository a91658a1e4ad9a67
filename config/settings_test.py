"""Test settings: the real settings, on PostgreSQL and Redis whenever they answer.

``DATABASE_URL``, ``REDIS_URL`` and ``CELERY_BROKER_URL`` win when set. Otherwise the suite
uses the local PostgreSQL if port 5432 answers (else SQLite), the local Redis if port 6379
answers (else an in-memory cache) and the local RabbitMQ if port 5672 answers. Tests that need
a service are marked ``postgres``, ``redis`` or ``rabbitmq``; with
``SIGNOFF_REQUIRE_SERVICES=1`` (as in CI) a missing service fails the run instead of skipping.
"""

import os
import socket


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
# Single sign-on is switched on by its variables; the suite turns it on where it tests it.
for name in [name for name in os.environ if name.startswith("OIDC_")]:
    del os.environ[name]
if "DATABASE_URL" not in os.environ and _answers("127.0.0.1", 5432):
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/signoff"
if "REDIS_URL" not in os.environ and _answers("127.0.0.1", 6379):
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/0"
if "CELERY_BROKER_URL" not in os.environ and _answers("127.0.0.1", 5672):
    os.environ["CELERY_BROKER_URL"] = "amqp://guest:guest@127.0.0.1:5672//"

from config.settings import *  # noqa: E402, F403

# Fast hashing: the suite creates many users; production keeps the default.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True
SECURE_COOKIES = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

# Keep concurrent test runs (and a demo on the same Redis) from reading each other's keys.
CACHES["default"]["KEY_PREFIX"] = f"test-{os.getpid()}"  # noqa: F405
