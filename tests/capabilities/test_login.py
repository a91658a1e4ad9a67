"""Password login: success, brute-force lockout per username and address (django-axes), the
audited lockout, the cool-off, session cookies and logout."""

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import PASSWORD, UserFactory

PROJECT = Path(__file__).resolve().parents[2]
LOGIN = "/accounts/login/"
LIMIT = 3
ADDRESS = "198.51.100.7"
OTHER_ADDRESS = "198.51.100.8"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _login_limits(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=15)


@pytest.fixture
def rita() -> Any:
    return UserFactory(username="rita")


def attempt(client: Client, username: str, password: str, address: str = ADDRESS, **extra: Any):
    return client.post(
        LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address, **extra
    )


def lock_out(client: Client, username: str, address: str = ADDRESS) -> Any:
    """Fail ``LIMIT`` times; return the last answer (the one that locks the pair out)."""
    for _ in range(LIMIT - 1):
        response = attempt(client, username, "wrong", address)
        assert response.status_code == 200
        assert "correct username and password" in response.text
    return attempt(client, username, "wrong", address)


def lockout_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditAction.LOGIN_LOCKED_OUT))


def logged_in_username(client: Client) -> str | None:
    response = client.get(reverse("reviews:queue"))
    return response.context["user"].get_username() if response.status_code == 200 else None


def test_the_right_password_logs_in_and_lands_on_the_queue(client: Client, rita: Any):
    session = client.session
    session["before_login"] = True
    session.save()
    key_before_login = session.session_key

    response = attempt(client, "rita", PASSWORD)

    assert response.status_code == 302
    assert response.url == reverse("reviews:queue")
    assert logged_in_username(client) == "rita"
    # A session planted before the login is worthless after it.
    assert client.session.session_key != key_before_login


def test_the_session_cookie_is_http_only_same_site_and_ends_with_the_browser(
    client: Client, rita: Any
):
    response = attempt(client, "rita", PASSWORD)

    cookie = response.cookies["sessionid"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert not cookie["max-age"]
    assert not cookie["expires"]


def test_wrong_passwords_lock_the_username_and_address_out_with_a_429_page(
    client: Client, rita: Any
):
    response = lock_out(client, "rita")

    assert response.status_code == 429
    assert "Too many failed logins" in response.text
    assert "Try again after" in response.text
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60


def test_a_lockout_is_audited_once_with_the_username_and_address(client: Client, rita: Any):
    lock_out(client, "rita")
    attempt(client, "rita", "wrong again")
    attempt(client, "rita", PASSWORD)

    (event,) = lockout_events()
    assert (event.actor_type, event.actor_label) == ("system", "axes")
    assert (event.subject_type, event.subject_id) == ("user", "rita")
    assert event.data == {"username": "rita", "ip_address": ADDRESS, "failures": LIMIT}


def test_the_right_password_is_refused_until_the_cool_off_has_passed(client: Client, rita: Any):
    lock_out(client, "rita")

    refused = attempt(client, "rita", PASSWORD)
    assert refused.status_code == 429
    assert logged_in_username(client) is None

    # The cool-off runs from the failure that locked the pair out.
    AccessAttempt.objects.filter(username="rita").update(
        attempt_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=15, seconds=1)
    )
    response = attempt(client, "rita", PASSWORD)
    assert response.status_code == 302
    assert logged_in_username(client) == "rita"
    assert len(lockout_events()) == 1


def test_refused_attempts_do_not_extend_the_lockout(client: Client, rita: Any):
    first = lock_out(client, "rita")
    started = AccessAttempt.objects.get(username="rita").attempt_time

    later = attempt(client, "rita", "wrong again")

    assert later.status_code == 429
    assert AccessAttempt.objects.get(username="rita").attempt_time == started
    assert int(later["Retry-After"]) <= int(first["Retry-After"])


def test_a_successful_login_forgets_the_failures_before_it(client: Client, rita: Any):
    for _ in range(LIMIT - 1):
        attempt(client, "rita", "wrong")
    assert attempt(client, "rita", PASSWORD).status_code == 302
    client.post(reverse("logout"))

    for _ in range(LIMIT - 1):
        assert attempt(client, "rita", "wrong").status_code == 200
    assert lockout_events() == []


def test_another_address_or_another_username_is_not_locked_out(client: Client, rita: Any):
    UserFactory(username="sam")
    lock_out(client, "rita", ADDRESS)

    assert attempt(Client(), "rita", PASSWORD, OTHER_ADDRESS).status_code == 302
    assert attempt(Client(), "sam", PASSWORD, ADDRESS).status_code == 302


def test_an_unknown_username_is_locked_out_like_a_real_one(client: Client):
    response = lock_out(client, "nobody")

    assert response.status_code == 429
    (event,) = lockout_events()
    assert event.data["username"] == "nobody"


def test_the_admin_login_is_guarded_by_the_same_lockout(client: Client, rita: Any):
    lock_out(client, "rita")

    response = client.post(
        "/admin/login/", {"username": "rita", "password": PASSWORD}, REMOTE_ADDR=ADDRESS
    )
    assert response.status_code == 429


def test_without_a_cool_off_the_lockout_lasts_until_an_administrator_lifts_it(
    client: Client, rita: Any, settings: Any
):
    settings.AXES_COOLOFF_TIME = None

    response = lock_out(client, "rita")

    assert response.status_code == 429
    assert "administrator" in response.text
    assert "Retry-After" not in response


def test_behind_a_trusted_proxy_the_client_is_the_address_it_forwards(
    client: Client, rita: Any, settings: Any
):
    settings.SIGNOFF_TRUSTED_PROXY_COUNT = 1
    balancer = "10.0.0.2"
    # Whatever the client put in the header itself stands to the left and is ignored.
    for _ in range(LIMIT):
        response = attempt(
            client, "rita", "wrong", balancer, HTTP_X_FORWARDED_FOR=f"6.6.6.6, {ADDRESS}"
        )
    assert response.status_code == 429
    (event,) = lockout_events()
    assert event.data["ip_address"] == ADDRESS

    elsewhere = attempt(Client(), "rita", PASSWORD, balancer, HTTP_X_FORWARDED_FOR=OTHER_ADDRESS)
    assert elsewhere.status_code == 302


def test_logout_is_a_post_only(client: Client, rita: Any):
    client.force_login(rita)

    assert client.get(reverse("logout")).status_code == 405
    assert logged_in_username(client) == "rita"

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response.url == reverse("login")
    assert logged_in_username(client) is None


def test_session_cookies_are_secure_unless_debug():
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings';"
        "django.setup(); from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SESSION_COOKIE_SAMESITE, s.SESSION_EXPIRE_AT_BROWSER_CLOSE)"
    )

    def run(env: dict[str, str]) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=PROJECT,
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:///:memory:", **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert run({"SECRET_KEY": "k"}) == ["True", "True", "True", "Lax", "True"]
    assert run({"DEBUG": "true"})[:2] == ["False", "False"]
