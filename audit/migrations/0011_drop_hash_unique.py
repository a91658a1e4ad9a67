"""Drop the unique constraint on ``AuditEvent.hash``.

Its index was the trail's largest (364 MB at three million events) and the most expensive to
write: a hash is random, so every append inserted at a random place in it, a page seldom in
memory once the index outgrows the buffer cache. Measured at three million events, appending
2,000 events took 370-510 ms with it and 175-240 ms without. Nothing looks an event up by its
hash; uniqueness adds nothing either, since every hash covers its event's unique
``sequence`` (and ``audit_verify`` checks each one).

On PostgreSQL the constraint is dropped by the name PostgreSQL gave it. On SQLite, the small
embedded installation, it stays: dropping it means rebuilding the table, which would drop the
triggers that keep the trail append-only.
"""

from django.db import migrations, models

CONSTRAINT = "audit_auditevent_hash_key"  # PostgreSQL's name for a column's UNIQUE


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'ALTER TABLE audit_auditevent DROP CONSTRAINT IF EXISTS "{CONSTRAINT}"', params=None
        )


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'ALTER TABLE audit_auditevent ADD CONSTRAINT "{CONSTRAINT}" UNIQUE (hash)',
            params=None,
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0010_user_updated_action")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="hash",
                    field=models.CharField(editable=False, max_length=64),
                )
            ],
            database_operations=[migrations.RunPython(drop, restore)],
        )
    ]
