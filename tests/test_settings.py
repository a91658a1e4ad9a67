"""The environment-driven settings and the services the suite runs against."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache

PROJECT = Path(__file__).resolve().parents[1]


def settings_in(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings';"
        f"django.setup(); from django.conf import settings; print({expression})"
    )
    clean = {"PATH": "/usr/bin:/bin", **env}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_database_url_the_embedded_default_is_sqlite_in_the_project():
    result = settings_in({"DEBUG": "1"}, "settings.DATABASES['default']['NAME']")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(PROJECT / "db.sqlite3")


def test_database_url_selects_postgresql():
    result = settings_in(
        {"SECRET_KEY": "k", "DATABASE_URL": "postgres://app@db.internal:5433/signoff"},
        "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['PORT']",
    )
    assert result.stdout.strip() == "django.db.backends.postgresql 5433", result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = settings_in({}, "settings.SECRET_KEY")
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_secrets_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    result = settings_in({"SECRET_KEY_FILE": str(secret)}, "settings.SECRET_KEY")
    assert result.stdout.strip() == "from-a-file", result.stderr


def test_a_malformed_boolean_is_a_clear_error():
    result = settings_in({"SECRET_KEY": "k", "DEBUG": "maybe"}, "settings.DEBUG")
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr


@pytest.mark.redis
def test_the_cache_round_trips_through_redis(settings):
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    cache.set("signoff-check", {"ok": 1}, timeout=5)
    assert cache.get("signoff-check") == {"ok": 1}
