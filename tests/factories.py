"""factory_boy factories shared by every app's tests. State changes go through services."""

from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth import get_user_model

from audit.services import Actor
from capabilities.models import ApiClient, Capability
from capabilities.services import IssuedToken, api_client_create, capability_create
from reviews.models import Suggestion
from reviews.services import ModelInfo, suggestion_submit

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


class CapabilityFactory(factory.Factory):
    """Creates a capability and its first policy through ``capability_create``."""

    class Meta:
        model = Capability

    key = factory.Sequence(lambda n: f"capability{n}.act")
    name = factory.LazyAttribute(lambda c: c.key.replace(".", " ").title())
    owner = factory.SubFactory(UserFactory)
    auto_approve_at = Decimal("0.90")
    auto_reject_below = Decimal("0.30")

    @classmethod
    def _create(cls, model_class: type, **kwargs: Any) -> Capability:
        return capability_create(actor=Actor.system("tests"), **kwargs)


class ApiClientFactory:
    """API clients are made through the service so their token and audit events exist."""

    _count = 0

    @classmethod
    def issue(cls, *, capabilities: list[Capability], name: str = "") -> IssuedToken:
        cls._count += 1
        return api_client_create(
            name=name or f"client{cls._count}",
            capabilities=capabilities,
            actor=Actor.system("tests"),
        )

    @classmethod
    def create(cls, *, capabilities: list[Capability], name: str = "") -> ApiClient:
        return cls.issue(capabilities=capabilities, name=name).token.client


def submit(
    client: ApiClient,
    capability: Capability,
    *,
    confidence: float = 0.5,
    payload: dict[str, Any] | None = None,
    **fields: Any,
) -> Suggestion:
    """Submit a suggestion through the service, as the API would."""
    return suggestion_submit(
        client=client,
        capability=capability,
        payload=payload if payload is not None else {"amount": "120.00", "currency": "EUR"},
        confidence=confidence,
        model=fields.pop("model", ModelInfo("gpt-4o", "2024-08-06", "openai")),
        **fields,
    )
