"""Drop the text-pattern index PostgreSQL gets beside the unique index on ``hash``.

Django adds a ``varchar_pattern_ops`` twin to every indexed text column on PostgreSQL, for
``LIKE 'prefix%'`` queries. Nothing looks events up by a hash prefix, and each append paid for
one more insert at a random place in an index as large as the trail. The unique constraint
itself stays. (On SQLite there is no such index; a later change to the field drops it with
``IF EXISTS``, so dropping it here does not trouble it.)
"""

from django.db import migrations

INDEX = "audit_auditevent_hash_d0c402da_like"  # Django's name for it: table, column, "_like"


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"', params=None)


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON audit_auditevent '
            "(hash varchar_pattern_ops)",
            params=None,
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_async_work")]
    operations = [migrations.RunPython(drop, restore)]
