"""Extend the append-only guard: checkpoints too, and TRUNCATE on PostgreSQL."""

from django.db import migrations

POSTGRES_INSTALL = """
CREATE TRIGGER audit_auditevent_no_truncate BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_auditcheckpoint_no_update BEFORE UPDATE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_auditcheckpoint_no_delete BEFORE DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_auditcheckpoint_no_truncate BEFORE TRUNCATE ON audit_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""
POSTGRES_REMOVE = """
DROP TRIGGER IF EXISTS audit_auditevent_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_update ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_delete ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_truncate ON audit_auditcheckpoint;
"""
SQLITE_INSTALL = [
    """CREATE TRIGGER audit_auditcheckpoint_no_update BEFORE UPDATE ON audit_auditcheckpoint
       BEGIN SELECT RAISE(ABORT, 'audit_auditcheckpoint is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_auditcheckpoint_no_delete BEFORE DELETE ON audit_auditcheckpoint
       BEGIN SELECT RAISE(ABORT, 'audit_auditcheckpoint is append-only: DELETE refused'); END""",
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_update",
    "DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_delete",
]


def install(apps, schema_editor):
    _run(schema_editor, POSTGRES_INSTALL, SQLITE_INSTALL)


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
    dependencies = [("audit", "0004_checkpoints")]
    operations = [migrations.RunPython(install, remove)]
