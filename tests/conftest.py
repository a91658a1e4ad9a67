"""Fixtures shared by the whole suite, and the rule that CI never silently skips a service."""

import os
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from guardian.shortcuts import assign_perm

from capabilities.models import ApiClient, Capability
from capabilities.services import IssuedToken
from tests.factories import ApiClientFactory, CapabilityFactory, UserFactory

REQUIRE_SERVICES = os.environ.get("SIGNOFF_REQUIRE_SERVICES") == "1"
# The browser tests drive Debian's Chromium; Playwright's own browser download is not used.
CHROMIUM = "/usr/bin/chromium"


def _missing_services() -> dict[str, str]:
    """Each service marker whose service this run lacks, with the reason."""
    from django.conf import settings

    missing = {}
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        missing["postgres"] = f"needs PostgreSQL; the test database is {engine}"
    if not settings.REDIS_URL:
        missing["redis"] = "needs Redis; REDIS_URL is not set and 127.0.0.1:6379 does not answer"
    if not getattr(settings, "CELERY_BROKER_URL", "").startswith(
        ("amqp://", "amqps://", "pyamqp://")
    ):
        missing["rabbitmq"] = "needs RabbitMQ; CELERY_BROKER_URL is not an amqp:// URL"
    if not os.access(CHROMIUM, os.X_OK):
        missing["browser"] = f"needs Chromium; {CHROMIUM} is missing (apt-get install chromium)"
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests whose service is missing, unless services are required: then stop the run."""
    missing = _missing_services()
    for item in items:
        for marker, reason in missing.items():
            if item.get_closest_marker(marker):
                if REQUIRE_SERVICES:
                    raise pytest.UsageError(
                        f"SIGNOFF_REQUIRE_SERVICES=1 but {item.nodeid} {reason}"
                    )
                item.add_marker(pytest.mark.skip(reason=reason))


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under SIGNOFF_REQUIRE_SERVICES=1 (CI), a skipped test fails the run."""
    if REQUIRE_SERVICES and _skipped and exitstatus == 0:
        print(f"\nSIGNOFF_REQUIRE_SERVICES=1 and {len(_skipped)} test(s) were skipped:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def _flush_past_the_audit_guards() -> Iterator[None]:
    """Let the test runner empty the database after transactional tests.

    pytest-django flushes with TRUNCATE (PostgreSQL) or DELETE (SQLite), which the audit
    triggers refuse. As the superuser it is, the runner steps past them for the flush alone:
    on PostgreSQL with ``session_replication_role = replica`` for the flush transaction, on
    SQLite by dropping the triggers and recreating them in the same transaction.
    """
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: list[str]) -> None:
        vendor = self.connection.vendor
        if vendor == "postgresql":
            sql_list = ["SET LOCAL session_replication_role = replica", *sql_list]
        elif vendor == "sqlite":
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                    " AND tbl_name LIKE 'audit_%'"
                )
                triggers = cursor.fetchall()
            drops = [f'DROP TRIGGER "{name}"' for name, _sql in triggers]
            sql_list = [*drops, *sql_list, *(sql for _name, sql in triggers)]
        original(self, sql_list)

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    yield
    BaseDatabaseOperations.execute_sql_flush = original  # type: ignore[method-assign]


@pytest.fixture
def vendor() -> str:
    return connection.vendor


@pytest.fixture
def capability(db: Any) -> Capability:
    """``refunds.issue`` with thresholds 0.90 (auto-approve) and 0.30 (auto-reject)."""
    return CapabilityFactory(
        key="refunds.issue", auto_approve_at=Decimal("0.90"), auto_reject_below=Decimal("0.30")
    )


@pytest.fixture
def other_capability(db: Any) -> Capability:
    return CapabilityFactory(key="content.moderate")


@pytest.fixture
def issued(capability: Capability) -> IssuedToken:
    """An API client scoped to ``capability`` and its token."""
    return ApiClientFactory.issue(capabilities=[capability])


@pytest.fixture
def api_client_row(issued: IssuedToken) -> ApiClient:
    return issued.token.client


@pytest.fixture
def make_reviewer(db: Any) -> Callable[..., Any]:
    """Make a user allowed to review the given capabilities (and resolve escalations if asked)."""

    def make(*capabilities: Capability, senior: bool = False, **fields: Any) -> Any:
        user = UserFactory(**fields)
        for cap in capabilities:
            assign_perm("capabilities.review_capability", user, cap)
            if senior:
                assign_perm("capabilities.resolve_escalations", user, cap)
        return user

    return make


@pytest.fixture
def reviewer(make_reviewer: Callable[..., Any], capability: Capability) -> Any:
    return make_reviewer(capability, username="rita")


@pytest.fixture
def senior(make_reviewer: Callable[..., Any], capability: Capability) -> Any:
    return make_reviewer(capability, senior=True, username="sam")


@pytest.fixture
def manager(db: Any, capability: Capability) -> Any:
    """A staff user who manages ``capability`` in the admin."""
    user = UserFactory(username="maya", is_staff=True)
    for codename in ("view_capability", "change_capability", "view_policy"):
        assign_perm(f"capabilities.{codename}", user)
    assign_perm("capabilities.manage_capability", user, capability)
    return user
