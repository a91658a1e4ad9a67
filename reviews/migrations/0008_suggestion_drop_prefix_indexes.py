"""Drop the foreign keys' own indexes on ``suggestion.capability`` and ``suggestion.api_client``.

Composite indexes start with each column (``suggestion_capability_recent``,
``suggestion_client_recent``, ``suggestion_client_external``) and serve every lookup the
single-column ones would; every insert paid for both. Only the indexes go: altering the fields
the way Django would by default also drops and re-adds the foreign key constraints, which
re-checks every row under a lock.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "reviews_suggestion_capability_id_ec1c8b44": "capability_id",
    "reviews_suggestion_api_client_id_3b7d91d2": "api_client_id",
}


class Migration(migrations.Migration):
    dependencies = [
        ("capabilities", "0005_fingerprints_and_schemas"),
        ("reviews", "0007_fingerprint_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="suggestion",
                    name="api_client",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="suggestions",
                        to="capabilities.apiclient",
                    ),
                ),
                migrations.AlterField(
                    model_name="suggestion",
                    name="capability",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="suggestions",
                        to="capabilities.capability",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=(
                        f'CREATE INDEX IF NOT EXISTS "{name}" ON reviews_suggestion ({column})'
                    ),
                )
                for name, column in INDEXES.items()
            ],
        ),
    ]
