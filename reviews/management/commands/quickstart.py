"""Seed a demo: capabilities, one login per role, an API client and a queue of suggestions.

Safe to run every time the demo starts: what exists is kept, so a second run creates no
duplicates. Only the API client's token is new on every run, because token secrets are never
stored and the printed curl line needs one.
"""

import datetime as dt
import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from audit.services import Actor
from capabilities import roles
from capabilities.models import ApiClient, Capability
from capabilities.services import (
    IssuedToken,
    api_client_create,
    api_token_issue,
    api_token_revoke,
    capability_create,
    policy_active,
    role_grant,
)
from reviews.models import Suggestion
from reviews.services import ModelInfo, Usage, suggestion_submit

DEMO_PASSWORD = "signoff-demo"  # noqa: S105 - a published demo login, printed on purpose
DEMO_CLIENT = "demo-agent"
SEED = 8812
SUGGESTIONS_PER_CAPABILITY = 12
# Below this many suggestions the demo queue is (re)filled; above it, a rerun adds nothing.
SEED_BELOW = 20
ACTOR = Actor.system("quickstart")


@dataclass(frozen=True)
class CapabilitySeed:
    key: str
    name: str
    description: str
    auto_approve_at: Decimal
    auto_reject_below: Decimal
    payload_schema: dict[str, Any] | None = None


# What a refund must say; the demo's refund drafts (``_refund``) and CURL_BODY satisfy it.
REFUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order", "amount", "currency"],
    "properties": {
        "order": {"type": "string", "minLength": 1},
        "amount": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,2})?$"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "reason": {"type": "string"},
    },
}

CAPABILITIES = [
    CapabilitySeed(
        "refunds.issue",
        "Refunds: issue a refund",
        "Refund all or part of an order to the customer's original payment method.",
        Decimal("0.95"),
        Decimal("0.40"),
        REFUND_SCHEMA,
    ),
    CapabilitySeed(
        "content.moderate",
        "Content moderation",
        "Keep, restrict or remove a community post under the content guidelines.",
        Decimal("0.90"),
        Decimal("0.20"),
    ),
    CapabilitySeed(
        "invoice.extract",
        "Invoice field extraction",
        "Book the fields read from a supplier invoice into accounts payable.",
        Decimal("0.85"),
        Decimal("0.30"),
    ),
]


@dataclass(frozen=True)
class DemoUser:
    username: str
    does: str
    role: str | None  # a role from capabilities.roles, granted on every demo capability
    is_superuser: bool = False
    owns_capabilities: bool = False

    @property
    def is_staff(self) -> bool:
        return self.is_superuser or bool(self.role and roles.ROLES[self.role].staff)


ROLES = [
    DemoUser("reviewer", "reviews pending suggestions (queue at /)", roles.REVIEWER),
    DemoUser("senior", "reviews and resolves escalations (queue at /)", roles.SENIOR_REVIEWER),
    DemoUser(
        "manager",
        "owns the capabilities, changes thresholds (/admin/)",
        roles.MANAGER,
        owns_capabilities=True,
    ),
    DemoUser(
        "auditor", "reads the audit trail and exports it, changes nothing (/audit/)", roles.AUDITOR
    ),
    DemoUser("admin", "superuser (/admin/)", None, is_superuser=True),
]

MODELS = [
    (ModelInfo("gpt-4o", "2024-08-06", "openai"), Decimal("0.0025"), Decimal("0.0100")),
    (ModelInfo("claude-sonnet-4", "2025-05-14", "anthropic"), Decimal("0.0030"), Decimal("0.0150")),
    (ModelInfo("llama-3.1-70b", "2024-07-23", "meta"), Decimal("0.00088"), Decimal("0.00088")),
]

CURL_BODY = {
    "capability": "refunds.issue",
    "external_id": "ticket-9001",
    "payload": {
        "order": "A-20417",
        "amount": "35.00",
        "currency": "EUR",
        "reason": "late_delivery",
    },
    "confidence": 0.82,
    "model": {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"},
    "prompt": "Parcel arrived nine days late; the customer asks for the shipping costs back.",
    "usage": {"input_tokens": 950, "output_tokens": 120, "cost": "0.0036"},
}


@dataclass
class Summary:
    users_created: list[str] = field(default_factory=list)
    capabilities_created: list[str] = field(default_factory=list)
    client_created: bool = False
    suggestions: Counter[str] = field(default_factory=Counter)
    suggestions_existing: int = 0


class Command(BaseCommand):
    help = (
        "Seed the demo: three capabilities, a login per role (password printed), the API "
        "client demo-agent with a fresh token, and a queue of suggestions. Safe to rerun."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-suggestions", action="store_true", help="Do not submit demo suggestions."
        )
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the server answers, for the printed links (default %(default)s).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run although DEBUG is off. It creates logins with a published password: "
            "never on a database that real people use.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "quickstart creates logins with a published password, so it runs only with "
                "DEBUG on (as `make demo` does). Pass --force to run it anyway."
            )
        base_url = options["base_url"].rstrip("/")
        summary = Summary()
        with transaction.atomic():
            users = {role.username: self._user(role, summary) for role in ROLES}
            capabilities = [
                self._capability(seed, users["manager"], summary) for seed in CAPABILITIES
            ]
            for role in ROLES:
                _grant(users[role.username], role, capabilities)
            issued = self._client_token(capabilities, summary)

        summary.suggestions_existing = Suggestion.objects.count()
        if not options["no_suggestions"] and summary.suggestions_existing < SEED_BELOW:
            # Each seeded suggestion would log its routing and execution; the summary says it all.
            logging.disable(logging.INFO)
            try:
                summary.suggestions = _submit_suggestions(issued.token.client, capabilities)
            finally:
                logging.disable(logging.NOTSET)

        self._report(base_url, capabilities, issued, summary, options["no_suggestions"])

    # --- Seeding ------------------------------------------------------------------------------

    def _user(self, role: DemoUser, summary: Summary) -> Any:
        user_model = get_user_model()
        user = user_model.objects.filter(username=role.username).first()
        if user is None:
            user = user_model.objects.create_user(
                username=role.username,
                email=f"{role.username}@example.com",
                password=DEMO_PASSWORD,
            )
            summary.users_created.append(role.username)
        if (user.is_staff, user.is_superuser, user.is_active) != (
            role.is_staff,
            role.is_superuser,
            True,
        ):
            user.is_staff, user.is_superuser, user.is_active = (
                role.is_staff,
                role.is_superuser,
                True,
            )
            user.save(update_fields=["is_staff", "is_superuser", "is_active"])
        return user

    def _capability(self, seed: CapabilitySeed, owner: Any, summary: Summary) -> Capability:
        existing = Capability.objects.filter(key=seed.key).first()
        if existing is not None:
            return existing
        summary.capabilities_created.append(seed.key)
        return capability_create(
            key=seed.key,
            name=seed.name,
            description=seed.description,
            owner=owner,
            auto_approve_at=seed.auto_approve_at,
            auto_reject_below=seed.auto_reject_below,
            actor=ACTOR,
            payload_schema=seed.payload_schema,
        )

    def _client_token(self, capabilities: list[Capability], summary: Summary) -> IssuedToken:
        client = ApiClient.objects.filter(name=DEMO_CLIENT).first()
        if client is None:
            summary.client_created = True
            return api_client_create(
                name=DEMO_CLIENT,
                capabilities=capabilities,
                description="The demo's AI agent, seeded by quickstart.",
                actor=ACTOR,
            )
        in_scope = set(client.capabilities.values_list("key", flat=True))
        missing = sorted({c.key for c in capabilities} - in_scope)
        if missing or not client.is_active:
            raise CommandError(
                f"The API client {DEMO_CLIENT!r} exists but is "
                + (f"not scoped to {', '.join(missing)}" if missing else "inactive")
                + "; fix or rename it, then run quickstart again."
            )
        # Secrets are never stored, so the printed curl line needs a freshly issued token; the
        # ones printed by earlier runs are revoked, so only one demo token is ever live.
        earlier = list(client.tokens.filter(revoked_at__isnull=True))
        issued = api_token_issue(client=client, actor=ACTOR)
        for token in earlier:
            api_token_revoke(token=token, actor=ACTOR)
        return issued

    # --- Output -------------------------------------------------------------------------------

    def _report(
        self,
        base_url: str,
        capabilities: list[Capability],
        issued: IssuedToken,
        summary: Summary,
        no_suggestions: bool,
    ) -> None:
        write = self.stdout.write
        write(self.style.SUCCESS("Signoff demo is ready."))
        write("")
        write(f"Open {base_url}/  (admin: {base_url}/admin/)")
        write("")
        write(
            f'Logins, all with the password "{DEMO_PASSWORD}" (for this demo only; '
            "users that already existed keep theirs):"
        )
        width = max(len(role.username) for role in ROLES)
        for role in ROLES:
            write(f"  {role.username:<{width}}  {role.does}")
        write("")
        write("Capabilities (auto-approve at / auto-reject below):")
        for capability in capabilities:
            policy = policy_active(capability)
            write(
                f"  {capability.key:<17} {policy.auto_approve_at} / {policy.auto_reject_below}"
                f"  (policy v{policy.version})"
            )
        write("")
        if summary.suggestions:
            counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.suggestions.items()))
            write(f"Submitted {summary.suggestions.total()} demo suggestions: {counts}.")
        elif no_suggestions:
            write("Skipped demo suggestions (--no-suggestions).")
        else:
            write(f"Kept the {summary.suggestions_existing} existing suggestions; added none.")
        state = "created" if summary.client_created else "exists; issued a new token"
        write(f"API client {DEMO_CLIENT} ({state}); token, shown only now:")
        write(f"  {issued.secret}")
        write("")
        write("Submit a suggestion yourself:")
        body = json.dumps(CURL_BODY, separators=(",", ":"))
        write(
            f"curl -sS -X POST {base_url}/api/v1/suggestions/ "
            f'-H "Authorization: Bearer {issued.secret}" '
            f"-H \"Content-Type: application/json\" -d '{body}'"
        )


def _grant(user: Any, demo_user: DemoUser, capabilities: list[Capability]) -> None:
    if demo_user.role is not None:
        role_grant(user=user, role=demo_user.role, capabilities=capabilities, actor=ACTOR)


# --- Demo suggestions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    external_id: str
    payload: dict[str, Any]
    prompt: str
    context: dict[str, Any]


def _submit_suggestions(client: ApiClient, capabilities: list[Capability]) -> Counter[str]:
    """Submit a repeatable mix of suggestions through the service, as the API would."""
    rng = random.Random(SEED)
    drafters: dict[str, Callable[[random.Random, int], Draft]] = {
        "refunds.issue": _refund,
        "content.moderate": _moderation,
        "invoice.extract": _invoice,
    }
    plan = [
        (capability, index)
        for capability in capabilities
        for index in range(SUGGESTIONS_PER_CAPABILITY)
    ]
    rng.shuffle(plan)
    outcomes: Counter[str] = Counter()
    for capability, index in plan:
        draft = drafters[capability.key](rng, index)
        model, input_price, output_price = rng.choice(MODELS)
        input_tokens = rng.randint(600, 3200)
        output_tokens = rng.randint(60, 420)
        cost = (input_tokens * input_price + output_tokens * output_price) / 1000
        suggestion = suggestion_submit(
            client=client,
            capability=capability,
            payload=draft.payload,
            confidence=_confidence(rng, policy_active(capability)),
            model=model,
            external_id=draft.external_id,
            prompt=draft.prompt,
            context=draft.context,
            usage=Usage(input_tokens, output_tokens, cost.quantize(Decimal("0.000001"))),
            attempt=1 if rng.random() < 0.9 else 2,
        )
        outcomes[suggestion.get_status_display().lower()] += 1
    return outcomes


def _confidence(rng: random.Random, policy: Any) -> float:
    """Mostly between the thresholds (a person decides), some above and some below."""
    approve_at, reject_below = float(policy.auto_approve_at), float(policy.auto_reject_below)
    draw = rng.random()
    if draw < 0.2:
        value = rng.uniform(approve_at, 1.0)
    elif draw < 0.35:
        value = rng.uniform(0.05, reject_below - 0.01)
    else:
        value = rng.uniform(reject_below, approve_at - 0.005)
    return round(value, 3)


_REFUND_REASONS = {
    "damaged_in_transit": "The parcel arrived crushed and the {item} inside is broken.",
    "not_received": "Tracking says delivered but nothing arrived; I checked with the neighbours.",
    "wrong_item": "I ordered the {item} in black and received a red one.",
    "late_delivery": "Delivery took two weeks instead of two days; I want the shipping back.",
    "duplicate_charge": "My card was charged twice for the same order.",
    "changed_mind": "I no longer need the {item}; it is unopened.",
}
_ITEMS = ["espresso machine", "desk lamp", "running shoes", "headphones", "winter jacket"]


def _refund(rng: random.Random, index: int) -> Draft:
    reason = rng.choice(sorted(_REFUND_REASONS))
    item = rng.choice(_ITEMS)
    order = f"A-{rng.randint(10000, 29999)}"
    order_total = Decimal(rng.randint(1500, 45000)) / 100
    amount = order_total if reason != "late_delivery" else Decimal("4.90")
    complaint = _REFUND_REASONS[reason].format(item=item)
    sender = "jane.doe@example.com" if index == 0 else "the customer"
    return Draft(
        external_id=f"ticket-{8812 + index}",
        payload={
            "order": order,
            "amount": f"{amount:.2f}",
            "currency": rng.choice(["EUR", "EUR", "USD", "GBP"]),
            "reason": reason,
        },
        prompt=(
            f'Support ticket from {sender} about order {order}: "{complaint}" '
            "Decide whether a refund is due under the returns policy, and how much."
        ),
        context={
            "channel": rng.choice(["email", "chat", "phone"]),
            "customer_tier": rng.choice(["standard", "standard", "gold"]),
            "order_total": f"{order_total:.2f}",
            "previous_refunds_12m": rng.randint(0, 3),
        },
    )


_POSTS = [
    ("Buy cheap followers now!!! dm me, link in bio", "remove", ["spam"]),
    ("Anyone know a good vet in Leeds? Our cat stopped eating.", "keep", []),
    ("You people are idiots and deserve what is coming", "remove", ["harassment", "threat"]),
    ("Verify your account here or it will be closed: bit.ly/x", "remove", ["phishing", "spam"]),
    ("This diet cured my diabetes in a week, doctors hate it", "restrict", ["misinformation"]),
    ("Selling my old bike, 120 EUR, pick-up only", "keep", ["commerce"]),
    ("Graphic photo from the accident on the A4 this morning", "restrict", ["graphic_violence"]),
    ("Great thread, thanks for sharing the sources!", "keep", []),
]


def _moderation(rng: random.Random, index: int) -> Draft:
    text, verdict, labels = rng.choice(_POSTS)
    post_id = f"p_{rng.randint(100000, 999999)}"
    return Draft(
        external_id=f"post-{48210 + index}",
        payload={"post_id": post_id, "verdict": verdict, "labels": labels},
        prompt=(
            "Classify this community post under the content guidelines and answer keep, "
            f'restrict or remove with labels: "{text}"'
        ),
        context={
            "forum": rng.choice(["general", "marketplace", "health", "local-news"]),
            "author_reports_90d": rng.randint(0, 6),
            "reported_by_users": rng.randint(1, 14),
        },
    )


_SUPPLIERS = [
    ("Nordwind Logistik GmbH", "EUR"),
    ("Acme Office Supplies Ltd", "GBP"),
    ("Brightline Cloud Inc.", "USD"),
    ("Fabbrica Rossi S.r.l.", "EUR"),
    ("Kestrel Facility Services", "GBP"),
]


def _invoice(rng: random.Random, index: int) -> Draft:
    supplier, currency = rng.choice(_SUPPLIERS)
    number = f"INV-{timezone.now().year}-{rng.randint(100, 9999):04d}"
    total = Decimal(rng.randint(4000, 980000)) / 100
    due = timezone.now().date() + dt.timedelta(days=rng.choice([14, 30, 30, 45, 60]))
    pages = rng.randint(1, 4)
    return Draft(
        external_id=f"ap-inbox-{3301 + index}",
        payload={
            "supplier": supplier,
            "invoice_number": number,
            "total": f"{total:.2f}",
            "currency": currency,
            "due_date": due.isoformat(),
        },
        prompt=(
            f"Extract supplier, invoice number, total, currency and due date from the "
            f"attached {pages}-page invoice (OCR text follows). Answer as JSON."
        ),
        context={
            "source": "ap-inbox",
            "pages": pages,
            "ocr_quality": rng.choice(["good", "good", "fair", "poor"]),
            "purchase_order": f"PO-{rng.randint(40000, 49999)}",
        },
    )
