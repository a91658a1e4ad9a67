"""API clients and their tokens in the admin: administrators change what a client may reach
through ``api_client_update`` and revoke tokens through ``api_token_revoke``, both audited.
Clients are created, and tokens issued, on the command line, where a secret is shown once."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from audit.admin import ReadOnlyMixin
from audit.services import Actor
from capabilities.models import ApiClient, ApiToken
from capabilities.permissions import visible_capabilities
from capabilities.services import (
    api_client_update,
    api_token_revoke,
)


class ApiClientAdminForm(forms.ModelForm):
    """What an administrator may change on an API client: whether it works, the most its
    tokens may reach, and the person it acts for. Saved through ``api_client_update``."""

    class Meta:
        model = ApiClient
        fields = ["is_active", "capabilities", "user"]
        help_texts = {
            "is_active": "Unticked, every token of the client stops working at once.",
            "capabilities": (
                "The most a token of this client may be scoped to. Removing one also removes "
                "it from every token's scope; adding one widens no existing token."
            ),
        }


def _token_scope(token: ApiToken) -> str:
    return ", ".join(sorted(capability.key for capability in token.capabilities.all())) or "-"


class ApiTokenInline(ReadOnlyMixin, admin.TabularInline):
    """A client's tokens: only a prefix is ever shown; the secret was shown once, at issue."""

    model = ApiToken
    fields = ("prefix", "scope", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return super().get_queryset(request).prefetch_related("capabilities")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Tokens are part of the client: whoever may view the client sees their prefixes.
        return request.user.has_perm("capabilities.view_apiclient")

    @admin.display(description="Scope")
    def scope(self, obj: ApiToken) -> str:
        return _token_scope(obj)


def _may_manage_api_clients(request: HttpRequest) -> bool:
    # Administrators manage every client (the role's model permission); there is no per-client
    # grant, so the model permission is the whole answer.
    return request.user.has_perm("capabilities.change_apiclient")


def _api_clients_visible_to(request: HttpRequest) -> QuerySet[ApiClient]:
    clients = ApiClient.objects.all()
    if request.user.is_superuser or _may_manage_api_clients(request):
        return clients
    visible = visible_capabilities(request.user).values("pk")
    return clients.filter(capabilities__in=visible).distinct()


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    """API clients. Administrators change whether one works, its capabilities and the person
    it acts for, through ``api_client_update`` (audited); managers see the clients of their
    capabilities, read-only.

    Clients are created with ``manage.py create_api_client``, which shows the token once; tokens
    are issued, rotated and revoked with ``manage.py api_token`` (revocation also from the token
    list here). Name and description have no audited service and stay read-only.
    """

    form = ApiClientAdminForm
    list_display = ("name", "scope", "user", "is_active", "created_at")
    list_select_related = ("user",)
    list_filter = ("is_active", ("capabilities", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("name", "description", "capabilities__key", "user__username")
    fields = ("name", "description", "is_active", "capabilities", "user", "created_at", "tokens")
    raw_id_fields = ("user",)
    inlines = (ApiTokenInline,)

    changelist_note = (
        "API clients are created with `python manage.py create_api_client NAME --capability "
        "KEY`, which shows the new token once (only its hash is stored); `python manage.py "
        "api_token` issues, rotates, revokes and lists tokens."
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiClient]:
        queryset = super().get_queryset(request).prefetch_related("capabilities")
        return queryset.filter(pk__in=_api_clients_visible_to(request).values("pk"))

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(
            request, extra_context={"subtitle": self.changelist_note, **(extra_context or {})}
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A client is born with a token whose secret must be shown once: that is the command's.
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiClient | None = None) -> bool:
        return super().has_change_permission(request, obj) and _may_manage_api_clients(request)

    def has_delete_permission(self, request: HttpRequest, obj: ApiClient | None = None) -> bool:
        # Suggestions refer to their client and deletion is not audited: deactivate instead.
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> Any:
        if self.has_change_permission(request, obj):
            return ("name", "description", "created_at", "tokens")
        return self.fields

    def save_model(
        self, request: HttpRequest, obj: ApiClient, form: ModelForm, change: bool
    ) -> None:
        # ``obj`` already carries the submitted values (the form set them); the service reads
        # the stored ones under a lock to record what changed, and writes the new ones.
        data = form.cleaned_data
        api_client_update(
            client=obj,
            is_active=data["is_active"],
            capabilities=data["capabilities"],
            user=data["user"],
            actor=Actor.user(request.user),
        )

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        # The form's many-to-many save would set the capabilities behind the service's back
        # (unaudited, tokens not narrowed): save_model has saved them already.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.display(description="Capabilities")
    def scope(self, obj: ApiClient) -> str:
        return ", ".join(sorted(capability.key for capability in obj.capabilities.all()))

    @admin.display(description="Tokens")
    def tokens(self, obj: ApiClient) -> str:
        url = reverse("admin:capabilities_apitoken_changelist")
        return format_html(
            '<a href="{}?client__id__exact={}">Revoke or review this client\'s tokens</a>',
            url,
            obj.pk,
        )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Every API token, read-only, by prefix: never a hash or a secret. Administrators revoke
    the selected ones with ``api_token_revoke`` (audited); issuing and rotating print a secret,
    which is the command's job (``manage.py api_token``)."""

    list_display = (
        "prefix",
        "client",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_select_related = ("client",)
    list_filter = (("client", admin.RelatedOnlyFieldListFilter), "revoked_at", "expires_at")
    search_fields = ("prefix", "client__name", "capabilities__key")
    fields = ("prefix", "client", "scope", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_tokens"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        queryset = super().get_queryset(request).prefetch_related("capabilities")
        return queryset.filter(client__in=_api_clients_visible_to(request).values("pk"))

    def has_view_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        # Tokens are part of their client: whoever may view clients sees their tokens' prefixes.
        return request.user.has_perm("capabilities.view_apiclient") or super().has_view_permission(
            request, obj
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return _may_manage_api_clients(request)

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = []
        for token in queryset.filter(revoked_at__isnull=True).order_by("pk"):
            api_token_revoke(token=token, actor=Actor.user(request.user))
            revoked.append(token.prefix)
        if revoked:
            self.message_user(
                request,
                f"Revoked {len(revoked)} token(s), which stopped working at once: "
                f"{', '.join(revoked)}.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, "The selected tokens were revoked already.")

    @admin.display(description="Scope")
    def scope(self, obj: ApiToken) -> str:
        return _token_scope(obj)
