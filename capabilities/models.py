from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

CAPABILITY_KEY_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"

APPROVAL_CHOICES = [(1, "One reviewer"), (2, "Two distinct reviewers (four eyes)")]

_unit_interval = [MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))]


class Capability(models.Model):
    """A business action an AI system may propose, such as ``refunds.issue``.

    Its routing rules live in versioned ``Policy`` rows; the active one is the newest version.
    Who may review, resolve escalations or manage it are object permissions (django-guardian).
    It is accountable to an ``owner``: a person, or a group (a team), at least one of them.
    """

    key = models.CharField(
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                CAPABILITY_KEY_PATTERN,
                "Use dotted lowercase names such as refunds.issue.",
            )
        ],
        help_text="Stable identifier systems submit to, e.g. refunds.issue.",
    )
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    payload_schema = models.JSONField(
        null=True,
        blank=True,
        help_text="A JSON Schema (draft 2020-12) every payload, proposed or edited, must satisfy.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="owned_capabilities",
        null=True,
        blank=True,
        help_text="The person accountable for what this capability does.",
    )
    owner_group = models.ForeignKey(
        Group,
        on_delete=models.PROTECT,
        related_name="owned_capabilities",
        null=True,
        blank=True,
        help_text="Or the team accountable for it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]
        verbose_name_plural = "capabilities"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(owner__isnull=False) | models.Q(owner_group__isnull=False),
                name="capability_has_an_owner",
                violation_error_message="A capability needs an accountable owner or owner group.",
            ),
        ]
        permissions = [
            ("review_capability", "Can review suggestions of this capability"),
            ("resolve_escalations", "Can decide escalated suggestions of this capability"),
            ("manage_capability", "Can change thresholds of this capability"),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def accountable(self) -> str:
        """Who answers for this capability, for display: the owner, the team, or both."""
        names = [
            self.owner.get_username() if self.owner else "",
            self.owner_group.name if self.owner_group else "",
        ]
        return " / ".join(name for name in names if name)


class Policy(models.Model):
    """One immutable version of a capability's routing rules.

    Never edited in place: a change publishes a new version through
    ``capabilities.services.policy_publish``; a rollback republishes an old version's rules as a
    new version. The highest version of a capability is the one in force.
    """

    capability = models.ForeignKey(Capability, on_delete=models.PROTECT, related_name="policies")
    version = models.PositiveIntegerField()
    auto_approve_at = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        validators=_unit_interval,
        help_text="Confidence at or above this is approved without review.",
    )
    auto_reject_below = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        validators=_unit_interval,
        help_text="Confidence below this is rejected without review.",
    )
    sla_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Minutes an item may wait at each rung of the escalation ladder (reviewers, "
        "senior reviewers, the owner) before it climbs; empty: no deadline.",
    )
    sla_default = models.CharField(
        max_length=16,
        choices=[("reject", "Fail closed: reject"), ("approve", "Fail open: approve")],
        default="reject",
        help_text="What happens to an item nobody decided, past the top of the ladder.",
    )
    required_approvals = models.PositiveSmallIntegerField(
        default=1,
        choices=APPROVAL_CHOICES,
        help_text="How many distinct people must approve a suggestion that goes to review.",
    )
    note = models.CharField(max_length=300, blank=True, help_text="Why this version exists.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["capability", "-version"]
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["capability", "version"], name="policy_version_unique"),
            models.CheckConstraint(
                condition=models.Q(auto_reject_below__gte=0)
                & models.Q(auto_approve_at__lte=1)
                & models.Q(auto_reject_below__lte=models.F("auto_approve_at")),
                name="policy_thresholds_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.capability.key} v{self.version}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise TypeError("policies are immutable: publish a new version instead")
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class ApiClient(models.Model):
    """A system (AI service, agent, pipeline) that submits suggestions with its tokens.

    It may submit to, and read suggestions of, only the capabilities in its scope.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    capabilities = models.ManyToManyField(
        Capability,
        related_name="api_clients",
        help_text="The most a token of this client may be scoped to.",
    )
    webhook_secret = models.CharField(
        max_length=100,
        blank=True,
        help_text="Standard Webhooks signing secret (whsec_…, at least 24 random bytes).",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_clients",
        help_text="The person this client acts for, if any: they may not decide what it submits.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # DRF treats the authenticated principal as ``request.user``: an API client is one.
    is_authenticated = True
    is_anonymous = False


class ApiToken(models.Model):
    """A bearer token of an API client. Only its SHA-256 is stored; the token is shown once.

    Its ``capabilities`` are its scope: what it may submit to and read, within the client's.
    It stops working at ``expires_at`` (if set) or once revoked.
    """

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="tokens")
    capabilities = models.ManyToManyField(Capability, related_name="api_tokens")
    expires_at = models.DateTimeField(null=True, blank=True)
    prefix = models.CharField(
        max_length=16, help_text="The token's first characters, to tell it apart."
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.client.name} {self.prefix}…"
