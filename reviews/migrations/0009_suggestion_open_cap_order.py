"""One index for the queue's per-capability order and its counts, in place of two.

``suggestion_open_cap_sla_order`` kept the order but not the columns the queue's conditions
read, so PostgreSQL preferred to read every open item of a capability from
``suggestion_open_counts`` and sort them, to find the first 51: the cost of a queue page grew
with the backlog. ``suggestion_open_cap_order`` is the order followed by those columns, so an
ordered read is also an index-only one, and one index less is written per submission.
"""

import django.db.models.functions.comparison
import reviews.models
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("capabilities", "0005_fingerprints_and_schemas"),
        ("reviews", "0008_suggestion_drop_prefix_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    # The new index first, so the queue is never without one while this runs.
    operations = [
        migrations.AddIndex(
            model_name="suggestion",
            index=models.Index(
                models.F("capability"),
                django.db.models.functions.comparison.Coalesce(
                    models.F("due_at"), reviews.models.NoDeadline()
                ),
                models.F("created_at"),
                models.F("id"),
                models.F("status"),
                models.F("due_at"),
                models.F("escalation_level"),
                models.F("api_client"),
                models.F("policy"),
                models.F("claimed_by"),
                models.F("claim_expires_at"),
                condition=models.Q(("status__in", ["pending_review", "escalated"])),
                name="suggestion_open_cap_order",
            ),
        ),
        migrations.RemoveIndex(
            model_name="suggestion",
            name="suggestion_open_cap_sla_order",
        ),
        migrations.RemoveIndex(
            model_name="suggestion",
            name="suggestion_open_counts",
        ),
    ]
