"""Every page and REST operation, for every role, on its own capability and another: the exact
status each gets. A named route that has no row here fails ``test_every_route_has_a_row``.

"Own" is a suggestion of ``refunds.issue``, the capability the roles were granted on (and the
API client's scope); "other" is one of ``content.moderate``, granted to nobody here. Users who
may not see an object get 404, never 403, so identifiers cannot be probed.
"""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from audit.services import Actor
from capabilities.services import role_grant
from tests.factories import ApiClientFactory, UserFactory, submit

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "reviewer", "senior", "manager", "auditor", "administrator", "client")


@dataclass(frozen=True)
class Row:
    method: str
    own: dict[str, int]
    other: dict[str, int] | None = None  # None: the route is not about one suggestion
    body: dict[str, Any] | None = None


def statuses(**by_role: int) -> dict[str, int]:
    assert set(by_role) == set(ROLES), set(ROLES) ^ set(by_role)
    return by_role


PAGE_ANON = 302  # to the login page
NOT_A_PAGE_USER = 302  # an API client has no session: the pages send it to log in
SEES_ALL = statuses(
    anonymous=PAGE_ANON,
    reviewer=200,
    senior=200,
    manager=200,
    auditor=200,
    administrator=200,
    client=NOT_A_PAGE_USER,
)
# Reading one suggestion: its reviewers and auditors; everyone else 404.
READ_OWN = statuses(
    anonymous=PAGE_ANON,
    reviewer=200,
    senior=200,
    manager=404,
    auditor=200,
    administrator=404,
    client=NOT_A_PAGE_USER,
)
READ_OTHER = {**READ_OWN, "reviewer": 404, "senior": 404}
# Deciding: its reviewers only (a decision redirects on to the next item).
DECIDE_OWN = statuses(
    anonymous=PAGE_ANON,
    reviewer=302,
    senior=302,
    manager=404,
    auditor=404,
    administrator=404,
    client=NOT_A_PAGE_USER,
)
DECIDE_OTHER = {**DECIDE_OWN, "reviewer": 404, "senior": 404}
AUDITORS_ONLY = statuses(
    anonymous=PAGE_ANON,
    reviewer=404,
    senior=404,
    manager=404,
    auditor=200,
    administrator=404,
    client=NOT_A_PAGE_USER,
)
API_READ = statuses(
    anonymous=401,
    reviewer=200,
    senior=200,
    manager=200,
    auditor=200,
    administrator=200,
    client=200,
)

MATRIX: dict[str, Row] = {
    "login": Row("GET", {**SEES_ALL, "anonymous": 200, "client": 200}),
    "logout": Row("POST", {role: 302 for role in ROLES}),
    "reviews:queue": Row("GET", SEES_ALL),
    # The counts fragment the queue polls: everyone signed in, each seeing their own counts.
    "reviews:queue_counts": Row("GET", SEES_ALL),
    # Which shown rows were taken meanwhile: everyone signed in, of what each may read.
    "reviews:queue_taken": Row("GET", SEES_ALL),
    "reviews:claim_next": Row(
        "POST",
        {
            **SEES_ALL,
            "reviewer": 302,
            "senior": 302,
            "manager": 302,
            "auditor": 302,
            "administrator": 302,
        },
    ),
    "reviews:review": Row("GET", READ_OWN, READ_OTHER),
    "reviews:timeline": Row("GET", READ_OWN, READ_OTHER),
    "reviews:claim": Row("POST", DECIDE_OWN, DECIDE_OTHER),
    # Releasing what one does not hold only says so; it needs read access.
    "reviews:release": Row(
        "POST",
        {**READ_OWN, "reviewer": 302, "senior": 302, "auditor": 302},
        {**READ_OTHER, "auditor": 302},
    ),
    "reviews:approve": Row("POST", DECIDE_OWN, DECIDE_OTHER),
    "reviews:reject": Row("POST", DECIDE_OWN, DECIDE_OTHER, {"reason": "Wrong order"}),
    "reviews:escalate": Row("POST", DECIDE_OWN, DECIDE_OTHER, {"reason": "Over my limit"}),
    "reviews:edit": Row("GET", {**DECIDE_OWN, "reviewer": 200, "senior": 200}, DECIDE_OTHER),
    # Failed executions: the managers of a capability only. Retrying one that has not failed
    # (the "own" suggestion is pending) redirects to the list with a message.
    "reviews:failed_executions": Row("GET", {**AUDITORS_ONLY, "auditor": 404, "manager": 200}),
    "reviews:retry_execution": Row(
        "POST",
        {**AUDITORS_ONLY, "auditor": 404, "manager": 302},
        {**AUDITORS_ONLY, "auditor": 404},
    ),
    "audit:log": Row("GET", AUDITORS_ONLY),
    "audit:export": Row("GET", AUDITORS_ONLY, body={"format": "jsonl"}),
    # Retries and replays per client: administrators and auditors.
    "reviews:submission_retries": Row("GET", {**AUDITORS_ONLY, "administrator": 200}),
    "suggestion-list": Row("GET", API_READ),
    "suggestion-list:POST": Row(
        "POST",
        # People submit nothing (403); the client's token may submit to its own scope only.
        {
            **API_READ,
            "reviewer": 403,
            "senior": 403,
            "manager": 403,
            "auditor": 403,
            "administrator": 403,
            "client": 201,
        },
        {
            **API_READ,
            "reviewer": 403,
            "senior": 403,
            "manager": 403,
            "auditor": 403,
            "administrator": 403,
            "client": 403,
        },
    ),
    # People submit nothing (403). A client's token gets its batch answered (200), and an item
    # outside its scope is refused in its place (test_api_batch.py checks the items).
    "suggestion-batch": Row(
        "POST",
        {
            **API_READ,
            "reviewer": 403,
            "senior": 403,
            "manager": 403,
            "auditor": 403,
            "administrator": 403,
            "client": 200,
        },
    ),
    "suggestion-detail": Row(
        "GET",
        {**API_READ, "manager": 404, "administrator": 404},
        {
            **API_READ,
            "reviewer": 404,
            "senior": 404,
            "manager": 404,
            "administrator": 404,
            "client": 404,
        },
    ),
    "schema": Row("GET", {role: 200 for role in ROLES}),
    "docs": Row("GET", {role: 200 for role in ROLES}),
    # Manager pages: the capability admin, for the capabilities one manages.
    "admin:capabilities_capability_changelist": Row(
        "GET", {**SEES_ALL, "reviewer": 302, "senior": 302, "client": 302}
    ),
    "admin:capabilities_capability_change": Row(
        "GET",
        {**SEES_ALL, "reviewer": 302, "senior": 302, "client": 302},
        # Another capability: the manager is sent back to the admin index as if it did not
        # exist; auditors and administrators see every capability.
        {**SEES_ALL, "reviewer": 302, "senior": 302, "manager": 302, "client": 302},
    ),
    "admin:audit_auditevent_changelist": Row(
        "GET",
        {
            **SEES_ALL,
            "reviewer": 302,
            "senior": 302,
            "manager": 403,
            "administrator": 403,
            "client": 302,
        },
    ),
}

# Routes that need no row: the admin's own pages, the OIDC handshake, the API's 404 catch-all.
UNLISTED_NAMESPACES = {"admin"}
UNLISTED_NAMES = {
    "api-not-found",
    "oidc_authentication_init",
    "oidc_authentication_callback",
    "oidc_logout",
    "favicon",
}


@pytest.fixture
def world(capability, other_capability):
    own_client = ApiClientFactory.issue(capabilities=[capability])
    other_client = ApiClientFactory.issue(capabilities=[other_capability])
    users: dict[str, Any] = {}
    for role, name, on in (
        ("reviewer", "reviewer", [capability]),
        ("senior", "senior reviewer", [capability]),
        ("manager", "manager", [capability]),
        ("auditor", "auditor", []),
        ("administrator", "administrator", []),
    ):
        user = UserFactory(username=role)
        role_grant(user=user, role=name, capabilities=on, actor=Actor.system("tests"))
        users[role] = user
    return {
        "own": submit(own_client.token.client, capability),
        "other": submit(other_client.token.client, other_capability),
        "users": users,
        "token": own_client.secret,
        "capabilities": {"own": capability, "other": other_capability},
    }


def request_as(role: str, world: dict[str, Any], name: str, target: str) -> int:
    row = MATRIX[name]
    client = Client()
    headers = {}
    if role == "client":
        headers["Authorization"] = f"Bearer {world['token']}"
    elif role != "anonymous":
        client.force_login(world["users"][role])
    url_name = name.split(":POST")[0]
    suggestion = world[target]
    kwargs: dict[str, Any] = {}
    if url_name == "admin:capabilities_capability_change":
        kwargs = {"object_id": world["capabilities"][target].pk}
    elif url_name in ("suggestion-detail",):
        kwargs = {"suggestion_id": suggestion.pk}
    elif row.other is not None and url_name.startswith("reviews:"):
        kwargs = {"pk": suggestion.pk}
    url = reverse(url_name, kwargs=kwargs)
    if name in ("suggestion-list:POST", "suggestion-batch"):
        body: Any = {
            "capability": world["capabilities"][target].key,
            "payload": {"amount": "1.00"},
            "confidence": 0.5,
            "model": {"name": "gpt-4o"},
        }
        if name == "suggestion-batch":
            body = {"items": [body]}
        response = client.post(
            url, json.dumps(body), content_type="application/json", headers=headers
        )
    elif row.method == "POST":
        response = client.post(url, row.body or {}, headers=headers)
    else:
        response = client.get(url, row.body or {}, headers=headers)
    return response.status_code


CASES = [
    (name, role, target)
    for name, row in MATRIX.items()
    for role in ROLES
    for target in (("own", "other") if row.other is not None else ("own",))
]


@pytest.mark.parametrize(("name", "role", "target"), CASES)
def test_each_role_gets_exactly_the_expected_status(world, name, role, target):
    row = MATRIX[name]
    expected = (row.own if target == "own" else row.other)[role]  # type: ignore[index]
    assert request_as(role, world, name, target) == expected


def test_every_route_has_a_row():
    missing = sorted(_named_routes() - {name.split(":POST")[0] for name in MATRIX})
    assert not missing, f"add these routes to MATRIX: {missing}"


def _named_routes() -> set[str]:
    names: set[str] = set()

    def walk(patterns: list[Any], namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                if pattern.namespace in UNLISTED_NAMESPACES:
                    continue
                walk(pattern.url_patterns, inner)
            elif isinstance(pattern, URLPattern) and pattern.name:
                name = f"{namespace}{pattern.name}"
                if pattern.name not in UNLISTED_NAMES:
                    names.add(name)

    walk(get_resolver().url_patterns, "")
    return names
