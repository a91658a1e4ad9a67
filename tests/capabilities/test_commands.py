"""``manage.py create_api_client`` and ``manage.py api_token``: a token is printed once, alone
on the last line, and only its hash is kept; every change is audited as the command; a refused
command changes nothing."""

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Max
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from audit.services import Actor
from capabilities.models import ApiClient, ApiToken
from capabilities.services import (
    api_client_update,
    api_token_authenticate,
    api_token_issue,
    api_token_revoke,
    token_hash,
)
from tests.factories import ApiClientFactory, CapabilityFactory, UserFactory

TESTS = Actor.system("tests")

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
    assert events[0].data == {
        "name": "support-agent",
        "capabilities": [capability.key],
        "user": None,
    }


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


def test_the_client_may_act_for_a_person_and_its_first_token_may_expire(capability):
    UserFactory(username="olga")

    lines = create_api_client(
        "support-agent", "--capability", capability.key, "--user", "olga", "--expires-in", "30"
    )

    token = api_token_authenticate(lines[-1])
    assert token is not None
    assert token.client.user is not None and token.client.user.username == "olga"
    assert token.expires_at is not None
    expected = timezone.now() + dt.timedelta(days=30)
    assert abs(token.expires_at - expected) < dt.timedelta(minutes=1)
    assert "Acts for: olga" in lines
    assert any(line.startswith("Expires: 20") for line in lines)
    created = AuditEvent.objects.get(action=AuditAction.API_CLIENT_CREATED)
    assert created.data["user"] == "olga"
    issued = AuditEvent.objects.get(action=AuditAction.API_TOKEN_ISSUED)
    assert issued.data["expires_at"] is not None


def test_an_unknown_user_is_named_and_nothing_is_created(capability):
    before = counts()

    with pytest.raises(CommandError, match="no user named 'nobody'"):
        create_api_client("support-agent", "--capability", capability.key, "--user", "nobody")

    assert counts() == before


@pytest.mark.parametrize("days", ["0", "-1", "soon", "nan", "1e7"])
def test_an_expiry_that_is_not_a_positive_number_of_days_is_refused(capability, days):
    before = counts()

    with pytest.raises(CommandError, match="expires-in"):
        create_api_client("support-agent", "--capability", capability.key, "--expires-in", days)

    assert counts() == before


# --- api_token ----------------------------------------------------------------------------------


def api_token(*args: str) -> list[str]:
    out = StringIO()
    call_command("api_token", *args, stdout=out)
    return out.getvalue().splitlines()


def events_since(sequence: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence"))


def last_sequence() -> int:
    return AuditEvent.objects.aggregate(last=Max("sequence"))["last"] or 0


def state() -> tuple[Any, ...]:
    """Everything a refused command must leave as it was."""
    tokens = ApiToken.objects.order_by("pk")
    return (
        counts(),
        list(tokens.values_list("pk", "expires_at", "revoked_at")),
        [sorted(t.capabilities.values_list("key", flat=True)) for t in tokens],
    )


@pytest.fixture
def helpdesk(capability, other_capability) -> ApiClient:
    """A client that may reach ``refunds.issue`` and ``content.moderate``, with one token."""
    return ApiClientFactory.create(capabilities=[capability, other_capability], name="helpdesk")


def test_issue_prints_a_token_scoped_to_the_given_capabilities_alone_on_the_last_line(
    helpdesk, capability
):
    start = last_sequence()

    lines = api_token("issue", "helpdesk", "--capability", capability.key, "--expires-in", "7")

    token = api_token_authenticate(lines[-1])
    assert token is not None and token.client == helpdesk
    assert set(token.capabilities.values_list("key", flat=True)) == {"refunds.issue"}
    assert token.expires_at is not None
    expected = timezone.now() + dt.timedelta(days=7)
    assert abs(token.expires_at - expected) < dt.timedelta(minutes=1)
    assert "Scope: refunds.issue" in lines
    assert f"Token (prefix {token.prefix}), shown only now; store it as a secret:" in lines
    [event] = events_since(start)
    assert (event.action, event.actor_type, event.actor_label) == (
        "api_token.issued",
        "system",
        "api_token",
    )
    assert event.data["capabilities"] == ["refunds.issue"]


def test_issue_without_capabilities_scopes_the_token_to_the_whole_client(helpdesk):
    lines = api_token("issue", "helpdesk")

    token = api_token_authenticate(lines[-1])
    assert token is not None
    assert set(token.capabilities.values_list("key", flat=True)) == {
        "refunds.issue",
        "content.moderate",
    }
    assert token.expires_at is None
    assert "Expires: never" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "no API client named 'nobody'"),
        (["helpdesk", "--capability", "nope.act"], r"Unknown capability key\(s\): nope\.act"),
        (["helpdesk", "--capability", "payments.send"], "Outside the capabilities of API client"),
        (["helpdesk", "--expires-in", "0"], "expires-in"),
        (["helpdesk", "--expires-in", "1e7"], "expires-in"),
    ],
    ids=[
        "unknown-client",
        "unknown-capability",
        "capability-outside-the-client",
        "expiry-zero",
        "expiry-past-the-calendar",
    ],
)
def test_issue_refuses_clearly_and_changes_nothing(helpdesk, args, message):
    CapabilityFactory(key="payments.send")
    before = state()

    with pytest.raises(CommandError, match=message):
        api_token("issue", *args)

    assert state() == before


def test_issue_refuses_a_deactivated_client(helpdesk):
    api_client_update(client=helpdesk, is_active=False, actor=TESTS)
    before = state()

    with pytest.raises(CommandError, match="deactivated"):
        api_token("issue", "helpdesk")

    assert state() == before


def test_rotate_prints_the_successor_and_says_until_when_the_old_token_works(helpdesk):
    old = helpdesk.tokens.get()
    start = last_sequence()

    lines = api_token("rotate", old.prefix, "--overlap-hours", "2")

    new = api_token_authenticate(lines[-1])
    assert new is not None and new.pk != old.pk and new.client == helpdesk
    old.refresh_from_db()
    assert old.expires_at is not None
    assert abs(old.expires_at - (timezone.now() + dt.timedelta(hours=2))) < dt.timedelta(minutes=1)
    until = old.expires_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"The old token {old.prefix} works until {until}." in lines
    assert old.revoked_at is None
    assert [e.action for e in events_since(start)] == ["api_token.issued", "api_token.rotated"]
    rotated = events_since(start)[-1]
    assert rotated.actor_label == "api_token"
    assert rotated.data["prefix"] == old.prefix
    assert rotated.data["new_prefix"] == new.prefix


def test_rotate_with_no_overlap_stops_the_old_token_at_once(capability):
    issued = ApiClientFactory.issue(capabilities=[capability])

    lines = api_token("rotate", issued.token.prefix, "--overlap-hours", "0")

    assert api_token_authenticate(issued.secret) is None
    assert api_token_authenticate(lines[-1]) is not None


def test_rotate_keeps_the_old_token_working_for_the_default_overlap(capability):
    issued = ApiClientFactory.issue(capabilities=[capability])

    lines = api_token("rotate", issued.token.prefix)

    assert api_token_authenticate(issued.secret) is not None
    assert api_token_authenticate(lines[-1]) is not None
    issued.token.refresh_from_db()
    assert issued.token.expires_at is not None
    assert issued.token.expires_at - timezone.now() > dt.timedelta(hours=23)


def test_rotate_and_revoke_refuse_an_unknown_prefix(helpdesk):
    before = state()

    for subcommand in ("rotate", "revoke"):
        with pytest.raises(CommandError, match="No token has the prefix 'sgf_zzzzzz'"):
            api_token(subcommand, "sgf_zzzzzz")

    assert state() == before


def test_rotate_and_revoke_refuse_an_ambiguous_prefix_and_list_the_candidates(helpdesk):
    second = api_token_issue(client=helpdesk, actor=TESTS).token
    before = state()

    for subcommand in ("rotate", "revoke"):
        with pytest.raises(CommandError, match="names several tokens") as raised:
            api_token(subcommand, "sgf_")
        assert second.prefix in str(raised.value)

    assert state() == before


def test_a_whole_token_given_as_prefix_is_refused_without_being_echoed(capability):
    issued = ApiClientFactory.issue(capabilities=[capability])
    before = state()

    with pytest.raises(CommandError, match="only the prefix") as raised:
        api_token("revoke", issued.secret)

    assert issued.secret not in str(raised.value)
    assert state() == before


def test_rotate_refuses_a_revoked_token(capability):
    issued = ApiClientFactory.issue(capabilities=[capability])
    api_token_revoke(token=issued.token, actor=TESTS)
    before = state()

    with pytest.raises(CommandError, match="revoked: issue a new token instead"):
        api_token("rotate", issued.token.prefix)

    assert state() == before


@pytest.mark.parametrize("hours", ["-1", "later", "1e12"])
def test_rotate_refuses_an_overlap_that_is_not_zero_or_more_hours(capability, hours):
    issued = ApiClientFactory.issue(capabilities=[capability])
    before = state()

    with pytest.raises(CommandError, match="overlap-hours"):
        api_token("rotate", issued.token.prefix, "--overlap-hours", hours)

    assert state() == before


def test_revoke_stops_the_token_at_once_and_is_audited_once(capability):
    issued = ApiClientFactory.issue(capabilities=[capability])
    start = last_sequence()

    lines = api_token("revoke", issued.token.prefix)
    again = api_token("revoke", issued.token.prefix)

    assert api_token_authenticate(issued.secret) is None
    assert f"Revoked token {issued.token.prefix}" in lines[0]
    assert "already revoked" in again[0] and "nothing changed" in again[0]
    [event] = events_since(start)
    assert (event.action, event.actor_label) == ("api_token.revoked", "api_token")


def test_list_shows_every_column_and_never_a_hash(helpdesk, capability):
    first = helpdesk.tokens.get()
    scoped = api_token_issue(
        client=helpdesk,
        capabilities=[capability],
        expires_at=timezone.now() + dt.timedelta(days=2),
        actor=TESTS,
    ).token
    api_token_revoke(token=first, actor=TESTS)
    ApiToken.objects.filter(pk=scoped.pk).update(last_used_at=timezone.now())
    other = ApiClientFactory.issue(capabilities=[capability], name="elsewhere").token

    lines = api_token("list")

    header, *rows = lines
    assert header.split() == [
        "PREFIX",
        "CLIENT",
        "SCOPE",
        "CREATED",
        "EXPIRES",
        "LAST",
        "USED",
        "REVOKED",
    ]
    assert [row.split()[0] for row in rows] == [other.prefix, scoped.prefix, first.prefix]
    scoped_row = rows[1]
    assert "helpdesk" in scoped_row and "refunds.issue" in scoped_row
    assert scoped_row.count("UTC") == 3  # created, expires, last used
    assert scoped_row.rstrip().endswith("-")  # not revoked
    first_row = rows[2]
    assert "content.moderate,refunds.issue" in first_row
    assert "never" in first_row  # never expires, never used
    assert first_row.count("UTC") == 2  # created, revoked
    output = "\n".join(lines)
    for token in ApiToken.objects.all():
        assert token.token_hash not in output


def test_list_of_one_client_shows_only_its_tokens(helpdesk, capability):
    ApiClientFactory.issue(capabilities=[capability], name="elsewhere")

    _header, *rows = api_token("list", "helpdesk")

    assert [row.split()[1] for row in rows] == ["helpdesk"]


def test_list_of_an_unknown_client_is_refused(helpdesk):
    with pytest.raises(CommandError, match="no API client named 'nobody'"):
        api_token("list", "nobody")


def test_a_subcommand_is_required(helpdesk):
    with pytest.raises(CommandError):
        api_token()
