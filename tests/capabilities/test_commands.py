"""``manage.py create_api_client``: the token is printed once and only its hash is kept."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditAction, AuditEvent
from capabilities.models import ApiClient, ApiToken
from capabilities.services import api_token_authenticate, token_hash

pytestmark = pytest.mark.django_db


def create_api_client(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_api_client", *args, stdout=out)
    return out.getvalue().splitlines()


def counts() -> tuple[int, int, int]:
    return ApiClient.objects.count(), ApiToken.objects.count(), AuditEvent.objects.count()


def test_prints_the_token_alone_on_the_last_line_and_it_authenticates(capability, other_capability):
    lines = create_api_client(
        "support-agent",
        "--capability",
        capability.key,
        "--capability",
        other_capability.key,
        "--description",
        "Drafts refunds from support tickets",
    )

    token = lines[-1]
    assert token.startswith("sgf_") and " " not in token
    authenticated = api_token_authenticate(token)
    assert authenticated is not None
    client = authenticated.client
    assert client.name == "support-agent"
    assert client.description == "Drafts refunds from support tickets"
    assert set(client.capabilities.values_list("key", flat=True)) == {
        capability.key,
        other_capability.key,
    }
    summary = "\n".join(lines[:-1])
    assert "support-agent" in summary
    assert f"{other_capability.key}, {capability.key}" in summary


def test_only_the_hash_of_the_token_is_stored(capability):
    token = create_api_client("support-agent", "--capability", capability.key)[-1]

    stored = ApiToken.objects.get()
    assert stored.token_hash == token_hash(token)
    assert token not in {stored.token_hash, stored.prefix}
    assert token.startswith(stored.prefix) and len(stored.prefix) < len(token)


def test_creation_is_audited_as_the_command(capability):
    create_api_client("support-agent", "--capability", capability.key)

    events = AuditEvent.objects.filter(
        action__in=[AuditAction.API_CLIENT_CREATED, AuditAction.API_TOKEN_ISSUED]
    ).order_by("sequence")
    assert [(e.action, e.actor_type, e.actor_label) for e in events] == [
        ("api_client.created", "system", "create_api_client"),
        ("api_token.issued", "system", "create_api_client"),
    ]
    assert events[0].data == {"name": "support-agent", "capabilities": [capability.key]}


def test_a_repeated_capability_is_scoped_once(capability):
    create_api_client(
        "support-agent", "--capability", capability.key, "--capability", capability.key
    )
    assert ApiClient.objects.get().capabilities.count() == 1


def test_unknown_capability_is_named_and_nothing_is_created(capability):
    before = counts()

    with pytest.raises(CommandError, match=r"Unknown capability key\(s\): nope\.act"):
        create_api_client(
            "support-agent", "--capability", capability.key, "--capability", "nope.act"
        )

    assert counts() == before


def test_without_a_capability_nothing_is_created(capability):
    before = counts()

    with pytest.raises(CommandError, match="--capability"):
        create_api_client("support-agent")

    assert counts() == before


def test_a_duplicate_client_name_is_refused_and_nothing_is_created(capability, api_client_row):
    before = counts()

    with pytest.raises(CommandError, match=f"named '{api_client_row.name}' already exists"):
        create_api_client(api_client_row.name, "--capability", capability.key)

    assert counts() == before


def test_an_invalid_name_is_reported_as_a_command_error(capability):
    before = counts()

    with pytest.raises(CommandError, match="name"):
        create_api_client("x" * 101, "--capability", capability.key)

    assert counts() == before
