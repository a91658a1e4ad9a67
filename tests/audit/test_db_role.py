"""The third layer on PostgreSQL: an application role that may only read and append the trail.

The role is real: created in the test cluster, given the statements ``audit_db_grants`` prints,
and used over its own connection, as the application would in production.
"""

from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from audit.models import AuditEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROLE = "signoff_app_under_test"


@pytest.fixture
def app_connection(record_events):
    record_events(3)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {ROLE}")
        cursor.execute(f"CREATE ROLE {ROLE} LOGIN")
    try:
        call_command("audit_db_grants", ROLE, "--apply", stdout=StringIO(), stderr=StringIO())
        params = connection.get_connection_params()
        params.update(user=ROLE, autocommit=True)
        params.pop("password", None)
        params.pop("cursor_factory", None)
        params.pop("context", None)
        with psycopg.connect(**params) as app:
            yield app
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {ROLE}")
            cursor.execute(f"DROP ROLE {ROLE}")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET actor_label = 'mallory'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
        "UPDATE audit_auditcheckpoint SET signature = ''",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER USER",
        "DROP TRIGGER audit_auditevent_no_update ON audit_auditevent",
        "SET session_replication_role = replica",
    ],
)
def test_the_application_role_cannot_change_or_unguard_the_trail(app_connection, sql):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_connection.execute(sql)
    assert AuditEvent.objects.count() == 3


def test_the_application_role_can_read_append_and_move_the_head(app_connection):
    assert app_connection.execute("SELECT count(*) FROM audit_auditevent").fetchone() == (3,)
    app_connection.execute("UPDATE audit_auditchainhead SET sequence = sequence WHERE id = 1")
    app_connection.execute(
        "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, actor_label,"
        " action, subject_type, subject_id, capability, data, prev_hash, hash) VALUES"
        " (4, now(), 'system', '', 'tests', 'policy.published', 'policy', '4', '', '{}', %s, %s)",
        ["0" * 64, "e" * 64],
    )
    assert AuditEvent.objects.count() == 4
