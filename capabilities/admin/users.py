"""The user admin, with roles changed only through the audited services.

Django's own user admin edits groups and permissions directly, which would change access
without an audit event. Here those fields are read-only; an administrator picks the user's
roles and the capabilities they hold them on, and saving calls ``role_grant`` and
``role_revoke``, so every change is audited (who, whom, what).
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.http import HttpRequest
from guardian.shortcuts import get_objects_for_user

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.models import Capability
from capabilities.roles import ROLES
from capabilities.services import role_grant, role_revoke

User = get_user_model()


def held_roles(user: Any) -> list[str]:
    return sorted(user.groups.filter(name__in=ROLES).values_list("name", flat=True))


def held_capabilities(user: Any) -> list[Capability]:
    """Capabilities on which the user holds any role permission directly."""
    if user.pk is None:
        return []
    codenames = {
        permission for role in ROLES.values() for permission in role.capability_permissions
    }
    return list(
        get_objects_for_user(
            user,
            sorted(codenames),
            klass=Capability,
            any_perm=True,
            use_groups=False,
            with_superuser=False,
            accept_global_perms=False,
        )
    )


class UserAccessForm(UserChangeForm):  # type: ignore[type-arg]
    roles = forms.MultipleChoiceField(
        choices=[(name, name) for name in ROLES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Each change is recorded in the audit trail.",
    )
    capabilities = forms.ModelMultipleChoiceField(
        queryset=Capability.objects.order_by("key"),
        required=False,
        help_text="The capabilities on which the roles above apply (reviewer, senior reviewer "
        "and manager work per capability; auditors and administrators need none).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["roles"].initial = held_roles(self.instance)
            self.fields["capabilities"].initial = held_capabilities(self.instance)


class UserAccessAdmin(UserAdmin):  # type: ignore[type-arg]
    form = UserAccessForm
    readonly_fields = ("is_staff", "is_superuser", "groups", "user_permissions", "last_login")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "roles", "capabilities", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Creating a user and switching one on or off change who may do anything at all (every
        # predicate checks is_active): audited in the admin's own transaction, as roles are.
        super().save_model(request, obj, form, change)
        if not change:
            action, data = AuditAction.USER_CREATED, {"user": obj.get_username(), "via": "admin"}
        elif "is_active" in form.changed_data:
            action, data = (
                AuditAction.USER_UPDATED,
                {"user": obj.get_username(), "is_active": obj.is_active},
            )
        else:
            return
        audit_event_record(
            actor=Actor.user(request.user),
            action=action,
            subject=Subject("user", str(obj.pk)),
            data=data,
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # The add form has no access fields; a save that leaves them as they were must not
        # touch access at all: the form shows roles and capabilities apart, so re-granting
        # every role on every capability would widen what a user held role by capability.
        if not {"roles", "capabilities"} & set(form.changed_data):
            return
        user = form.instance
        actor = Actor.user(request.user)
        before_roles = set(held_roles(user))
        before_capabilities = set(held_capabilities(user))
        roles = set(form.cleaned_data["roles"])
        capabilities = set(form.cleaned_data["capabilities"])
        for role in sorted(before_roles - roles):
            role_revoke(user=user, role=role, actor=actor)
        dropped = sorted(before_capabilities - capabilities, key=str)
        added = sorted(capabilities - before_capabilities, key=str)
        for role in sorted(roles):
            if dropped:
                role_revoke(user=user, role=role, capabilities=dropped, actor=actor)
            # A role newly ticked applies on every capability ticked; a role kept, only on
            # the capabilities newly ticked.
            if role not in before_roles:
                role_grant(
                    user=user, role=role, capabilities=sorted(capabilities, key=str), actor=actor
                )
            elif added:
                role_grant(user=user, role=role, capabilities=added, actor=actor)


admin.site.unregister(User)
admin.site.register(User, UserAccessAdmin)
