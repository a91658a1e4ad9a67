"""Browser tests: Playwright drives Debian's Chromium against pytest-django's live server.

Every page a test opens is watched (``tests.browser.pages.Pages``): a console error or an
uncaught page error anywhere fails the test. Each wait is bounded by ``TIMEOUT_MS``, so a
missing element fails in seconds instead of hanging the run.
"""

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from playwright.sync_api import Browser, expect

from capabilities.roles import ROLES
from tests.browser.pages import TIMEOUT_MS, Pages
from tests.conftest import CHROMIUM

# The live server and the ORM calls of a test share the main thread with Playwright's event
# loop, which Django would otherwise take for an async context and refuse.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch the system's Chromium: Playwright's own browser download is not available."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
        "timeout": TIMEOUT_MS,
    }


@pytest.fixture(scope="session", autouse=True)
def _bounded_expectations() -> None:
    expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture
def pages(browser: Browser, live_server: Any) -> Iterator[Pages]:
    """Browser contexts on the live server; the test fails if any of their pages logged a
    console error or threw (checked after the test body, and again when the pages close)."""
    opened = Pages(browser=browser, base_url=live_server.url)
    try:
        yield opened
    finally:
        opened.close()
    late = opened.errors[opened.reported :]
    assert late == [], "errors in the browser:\n" + "\n".join(late)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail, rather than error in teardown, a test whose pages logged an error."""
    result = yield
    opened = getattr(item, "funcargs", {}).get("pages")
    if isinstance(opened, Pages) and opened.errors:
        opened.reported = len(opened.errors)
        raise AssertionError("errors in the browser:\n" + "\n".join(opened.errors))
    return result


def _create_role_groups() -> None:
    """The role groups, with their model permissions, as the migration creates them."""
    for role in ROLES.values():
        group, _created = Group.objects.get_or_create(name=role.name)
        permissions = []
        for dotted in role.model_permissions:
            app_label, codename = dotted.split(".")
            permissions.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)


@pytest.fixture(autouse=True)
def _role_groups(django_db_blocker: Any) -> None:
    """The role groups, which a transactional test that ran before may have flushed away."""
    with django_db_blocker.unblock():
        _create_role_groups()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Put the role groups back once a browser test's database is flushed.

    A live-server test is transactional: the flush after it also removes the rows the
    migrations created, and the tests that follow (in whatever order they run) expect them.
    """
    blocker = getattr(item, "funcargs", {}).get("django_db_blocker")
    try:
        return (yield)
    finally:
        # After the last test the test database itself is gone.
        if blocker is not None and nextitem is not None:
            with blocker.unblock():
                _create_role_groups()
