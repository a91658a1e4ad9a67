"""New suggestions get time-ordered ids (``reviews.identifiers.uuid7``), appended at the
right-hand edge of the indexes that hold them. Existing ids stay as they are; the default is
Python's, so the database does not change."""

from django.db import migrations, models

import reviews.identifiers


class Migration(migrations.Migration):
    dependencies = [("reviews", "0010_suggestion_autovacuum")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="suggestion",
                    name="id",
                    field=models.UUIDField(
                        default=reviews.identifiers.uuid7,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                )
            ]
        )
    ]
