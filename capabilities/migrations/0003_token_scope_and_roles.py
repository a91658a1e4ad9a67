"""Give existing tokens their client's scope, and create the role groups.

The groups and their model permissions come from ``capabilities.roles``; permissions are created
here first, since Django only creates them after all migrations have run.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from capabilities.roles import ROLES


def scope_tokens(apps, schema_editor):
    ApiToken = apps.get_model("capabilities", "ApiToken")
    for token in ApiToken.objects.select_related("client"):
        token.capabilities.set(token.client.capabilities.all())


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role in ROLES.values():
        group, _created = Group.objects.get_or_create(name=role.name)
        permissions = []
        for dotted in role.model_permissions:
            app_label, codename = dotted.split(".")
            permissions.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("capabilities", "0002_owners_four_eyes_token_scopes"),
        ("audit", "0006_actor_index"),
        ("reviews", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [
        migrations.RunPython(scope_tokens, migrations.RunPython.noop),
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
