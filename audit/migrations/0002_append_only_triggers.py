"""Make the database itself refuse UPDATE and DELETE on the audit table, and seed the chain head.

Plain triggers rather than django-pgtrigger: pgtrigger's ignore switch lets any session bypass
its triggers, and it installs nothing on SQLite. A plain trigger can only be dropped by the
table's owner.
"""

from django.db import migrations

POSTGRES_INSTALL = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_auditevent_no_delete BEFORE DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
"""
POSTGRES_REMOVE = """
DROP TRIGGER IF EXISTS audit_auditevent_no_update ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_auditevent_no_delete ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_refuse_change();
"""
SQLITE_INSTALL = [
    """CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON audit_auditevent
       BEGIN SELECT RAISE(ABORT, 'audit_auditevent is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_auditevent_no_delete BEFORE DELETE ON audit_auditevent
       BEGIN SELECT RAISE(ABORT, 'audit_auditevent is append-only: DELETE refused'); END""",
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS audit_auditevent_no_update",
    "DROP TRIGGER IF EXISTS audit_auditevent_no_delete",
]
GENESIS_HASH = "0" * 64


def install(apps, schema_editor):
    _run(schema_editor, POSTGRES_INSTALL, SQLITE_INSTALL)
    apps.get_model("audit", "AuditChainHead").objects.get_or_create(
        pk=1, defaults={"sequence": 0, "hash": GENESIS_HASH}
    )


def remove(apps, schema_editor):
    _run(schema_editor, POSTGRES_REMOVE, SQLITE_REMOVE)


def _run(schema_editor, postgres_sql, sqlite_statements):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(postgres_sql, params=None)
    elif vendor == "sqlite":
        for statement in sqlite_statements:
            schema_editor.execute(statement, params=None)
    else:
        raise NotImplementedError(f"audit triggers are not written for {vendor}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(install, remove)]
