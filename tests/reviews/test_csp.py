"""The Content-Security-Policy: every page sends it, and the pages keep within it.

The policy forbids inline scripts, eval, inline styles and style attributes, so besides the
header these tests check what the project itself renders: its templates, the admin's additions,
the API docs page and htmx's configuration.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from capabilities.models import ApiClient, Capability
from reviews.models import Suggestion
from tests.factories import UserFactory, submit

pytestmark = pytest.mark.django_db

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"
)
TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates"
# A <script> element without a src attribute: an inline script.
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.IGNORECASE)
# An event handler attribute (onclick=, onload=, ...) inside a tag.
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE)
STYLE_ELEMENT = re.compile(r"<style\b", re.IGNORECASE)


# --- Helpers ----------------------------------------------------------------------------------


@pytest.fixture
def pending(api_client_row: ApiClient, capability: Capability) -> Suggestion:
    return submit(api_client_row, capability, payload={"amount": "120.00"}, external_id="t-1")


@pytest.fixture
def auditor(db: Any) -> Any:
    user: Any = UserFactory(username="audrey")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="audit", codename="view_auditevent")
    )
    return user


@pytest.fixture
def superuser(db: Any) -> Any:
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def as_user(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def assert_policy(response: Any) -> None:
    assert response["Content-Security-Policy"] == POLICY
    assert "Content-Security-Policy-Report-Only" not in response


def assert_keeps_within_policy(html: str) -> None:
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html)
    assert not EVENT_HANDLER.search(html), EVENT_HANDLER.search(html)
    assert not STYLE_ATTRIBUTE.search(html), STYLE_ATTRIBUTE.search(html)
    assert not STYLE_ELEMENT.search(html)


def templates() -> list[Path]:
    return sorted(TEMPLATES_DIR.rglob("*.html"))


# --- The header on every page -----------------------------------------------------------------


def test_login_page_sends_the_policy(client: Client):
    response = client.get(reverse("login"))

    assert response.status_code == 200
    assert_policy(response)
    assert_keeps_within_policy(response.content.decode())


def test_queue_sends_the_policy(client: Client, reviewer: Any, pending: Suggestion):
    response = as_user(client, reviewer).get(reverse("reviews:queue"))

    assert response.status_code == 200
    assert_policy(response)
    assert_keeps_within_policy(response.content.decode())


@pytest.mark.parametrize("name", ["reviews:review", "reviews:edit", "reviews:timeline"])
def test_suggestion_pages_send_the_policy(
    client: Client, reviewer: Any, pending: Suggestion, name: str
):
    response = as_user(client, reviewer).get(reverse(name, args=[pending.pk]))

    assert response.status_code == 200
    assert_policy(response)
    assert_keeps_within_policy(response.content.decode())


def test_redirects_and_errors_send_the_policy(client: Client, reviewer: Any):
    assert_policy(client.get(reverse("reviews:queue")))  # anonymous: to the login page
    response = as_user(client, reviewer).get("/suggestions/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert_policy(response)


def test_claiming_next_sends_the_policy(client: Client, reviewer: Any, pending: Suggestion):
    response = as_user(client, reviewer).post(reverse("reviews:claim_next"))

    assert response.status_code == 302
    assert_policy(response)


def test_audit_log_sends_the_policy(client: Client, auditor: Any, pending: Suggestion):
    response = as_user(client, auditor).get(reverse("audit:log"))

    assert response.status_code == 200
    assert_policy(response)
    assert_keeps_within_policy(response.content.decode())


def test_admin_index_sends_the_policy(client: Client, superuser: Any):
    response = as_user(client, superuser).get(reverse("admin:index"))

    assert response.status_code == 200
    assert_policy(response)


def test_api_sends_the_policy(client: Client):
    response = client.get(reverse("suggestion-list"))

    assert response.status_code == 401
    assert_policy(response)


# --- The admin's JSON fields --------------------------------------------------------------------


def test_admin_json_fields_use_a_stylesheet_not_a_style_attribute(
    client: Client, superuser: Any, pending: Suggestion
):
    browser = as_user(client, superuser)
    event = AuditEvent.objects.filter(subject_id=str(pending.pk)).first()
    assert event is not None

    for path in (
        reverse("admin:reviews_suggestion_change", args=[pending.pk]),
        reverse("admin:audit_auditevent_change", args=[event.pk]),
    ):
        response = browser.get(path)
        html = response.content.decode()

        assert response.status_code == 200
        assert_policy(response)
        assert '<pre class="signoff-json">' in html
        assert "signoff/admin.css" in html
        assert not STYLE_ATTRIBUTE.search(html), STYLE_ATTRIBUTE.search(html)
    assert finders.find("signoff/admin.css")


# --- The API docs page --------------------------------------------------------------------------


def test_api_docs_page_works_under_the_same_policy(client: Client):
    response = client.get("/api/v1/docs/")
    html = response.content.decode()

    assert response.status_code == 200
    assert_policy(response)
    assert_keeps_within_policy(html)
    assert 'id="swagger-ui"' in html
    # Swagger UI's start-up script is served from the page's own URL, not inline.
    script_url = re.search(r'<script src="(/api/v1/docs/\?[^"]*script=[^"]*)"', html)
    assert script_url is not None
    script = client.get(script_url.group(1).replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle(" in script.content
    assert b"/api/v1/schema/" in script.content


# --- What the templates may contain -------------------------------------------------------------


def test_templates_exist_to_be_scanned():
    names = {path.relative_to(TEMPLATES_DIR).as_posix() for path in templates()}

    assert {"base.html", "reviews/queue.html", "reviews/review.html"} <= names


@pytest.mark.parametrize("path", templates(), ids=lambda path: path.name)
def test_template_has_no_inline_script_event_handler_or_style(path: Path):
    assert_keeps_within_policy(path.read_text())


def test_base_loads_htmx_and_the_keys_from_the_project_with_no_inline_styles(
    client: Client, reviewer: Any
):
    html = as_user(client, reviewer).get(reverse("reviews:queue")).content.decode()

    scripts = re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"[^>]*>", html)
    assert scripts == [static("vendor/htmx-2.0.11.min.js"), static("signoff/keys.js")]
    assert finders.find("vendor/htmx-2.0.11.min.js")
    assert finders.find("signoff/keys.js")
    meta = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html)
    assert meta is not None
    config = json.loads(meta.group(1))
    assert config["includeIndicatorStyles"] is False
    assert "style" not in config["attributesToSettle"]
    assert config["allowEval"] is False
    assert config["allowScriptTags"] is False
    assert 'hx-boost="true"' in html
