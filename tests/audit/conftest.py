"""Fixtures for proving the trail: a small chain, and a way to tamper with it as a superuser."""

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from audit.models import AuditAction, AuditEvent
from audit.services import Actor, Subject, audit_event_record


@pytest.fixture
def record_events(db: Any) -> Callable[[int], list[AuditEvent]]:
    """Append ``n`` events about policies, as a manager would cause them."""

    def record(n: int) -> list[AuditEvent]:
        with transaction.atomic():
            return [
                audit_event_record(
                    actor=Actor("user", "7", "maya"),
                    action=AuditAction.POLICY_PUBLISHED,
                    subject=Subject("policy", str(i)),
                    capability="refunds.issue",
                    data={"version": i, "auto_approve_at": "0.9", "note": f"change {i}"},
                )
                for i in range(n)
            ]

    return record


@pytest.fixture
def tamper(db: Any) -> Callable[..., None]:
    """Run raw SQL with the append-only triggers out of the way, as a superuser could.

    On PostgreSQL with ``session_replication_role = replica``, on SQLite by dropping the
    triggers; both last only until the test's transaction is rolled back.
    """
    disabled = False

    def run(sql: str, params: list[Any] | None = None) -> None:
        nonlocal disabled
        with connection.cursor() as cursor:
            if not disabled:
                if connection.vendor == "postgresql":
                    cursor.execute("SET LOCAL session_replication_role = replica")
                else:
                    cursor.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                        " AND tbl_name LIKE 'audit_%'"
                    )
                    for (name,) in cursor.fetchall():
                        cursor.execute(f'DROP TRIGGER "{name}"')
                disabled = True
            cursor.execute(sql, params or [])

    return run
