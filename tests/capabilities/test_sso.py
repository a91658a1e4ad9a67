"""Single sign-on through OpenID Connect, against a fake identity provider run by the test itself.

The provider is a real HTTP server on 127.0.0.1 (a thread): ``/token`` checks the client, the
code, the redirect URI and the PKCE verifier and answers an RS256-signed ID token (a key made
here with ``cryptography``) and an access token; ``/userinfo`` answers the person's claims;
``/jwks`` publishes the public key. The browser's trip to the provider's login page is played by
``FakeProvider.authorize``, which issues a code for the parameters Signoff sent the browser
with; the test then calls the callback with that code and the state, as the browser would.
"""

import base64
import hashlib
import json
import os
import runpy
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from axes.models import AccessAttempt
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from django.urls import NoReverseMatch, clear_url_caches, reverse

from audit.models import AuditEvent
from audit.services import Actor
from capabilities.models import Capability
from capabilities.roles import ADMINISTRATOR, AUDITOR, REVIEWER
from capabilities.services import role_grant
from tests.factories import PASSWORD, UserFactory

PROJECT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = PROJECT / "config" / "settings.py"
CLIENT_ID = "signoff-test"
CLIENT_SECRET = "client-secret-for-tests"
ROLE_MAP = "signoff-auditors=auditor,signoff-reviewers=reviewer"
SSO_BACKEND = "capabilities.sso.SignoffOIDCBackend"

pytestmark = pytest.mark.django_db


# --- The fake identity provider ---------------------------------------------------------------


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Grant:
    """What the provider remembers about a code it issued."""

    claims: dict[str, Any]
    redirect_uri: str
    code_challenge: str
    id_token_claims: dict[str, Any]
    signing_key: rsa.RSAPrivateKey
    userinfo: dict[str, Any] = field(default_factory=dict)


class FakeProvider:
    """An OpenID provider on 127.0.0.1 with one signing key, published as ``kid`` "test"."""

    def __init__(self) -> None:
        self.key = _rsa_key()
        self.kid = "test"
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.token_requests = 0
        self.down = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        self.grants.clear()
        self.access_tokens.clear()
        self.token_requests = 0
        self.down = False

    def authorize(
        self,
        params: dict[str, str],
        claims: dict[str, Any],
        *,
        signing_key: rsa.RSAPrivateKey | None = None,
        userinfo: dict[str, Any] | None = None,
        **id_token_claims: Any,
    ) -> str:
        """The person signs in at the provider: check the request, issue a code.

        ``id_token_claims`` override what the ID token would say (``nonce``, ``aud``, ``exp``);
        ``signing_key`` signs it with another key; ``userinfo`` replaces the userinfo answer.
        """
        assert params["response_type"] == "code"
        assert params["client_id"] == CLIENT_ID
        assert "openid" in params["scope"].split()
        assert params["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        now = int(time.time())
        self.grants[code] = Grant(
            claims=claims,
            redirect_uri=params["redirect_uri"],
            code_challenge=params["code_challenge"],
            id_token_claims={
                "iss": self.url,
                "sub": claims["sub"],
                "aud": CLIENT_ID,
                "iat": now,
                "exp": now + 300,
                "nonce": params["nonce"],
                **id_token_claims,
            },
            signing_key=signing_key or self.key,
            userinfo=userinfo if userinfo is not None else claims,
        )
        return code

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests += 1
        if self.down:
            return 503, {"error": "temporarily_unavailable"}
        grant = self.grants.pop(form.get("code", ""), None)  # a code is good once
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
            or form.get("redirect_uri") != grant.redirect_uri
            or challenge != grant.code_challenge
        ):
            return 400, {"error": "invalid_grant"}
        access_token = secrets.token_urlsafe(16)
        self.access_tokens[access_token] = grant.userinfo
        id_token = jwt.encode(
            grant.id_token_claims, grant.signing_key, algorithm="RS256", headers={"kid": self.kid}
        )
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    def userinfo(self, authorization: str) -> tuple[int, dict[str, Any]]:
        claims = self.access_tokens.get(authorization.removeprefix("Bearer "))
        return (200, claims) if claims is not None else (401, {"error": "invalid_token"})

    def jwks(self) -> tuple[int, dict[str, Any]]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return 200, {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}


def _handler_for(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/jwks":
                self._answer(*provider.jwks())
            elif self.path == "/userinfo":
                self._answer(*provider.userinfo(self.headers.get("Authorization", "")))
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if self.path == "/token":
                self._answer(*provider.token(form))
            else:
                self._answer(404, {"error": "not_found"})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            encoded = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


# --- Settings as the environment makes them --------------------------------------------------


def settings_from_environment(env: dict[str, str]) -> dict[str, Any]:
    """Run config/settings.py under ``env`` (on top of the current environment, minus any
    OIDC variables) and return what it defines: the same path production takes."""
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.startswith(("OIDC_", "SIGNOFF_OIDC_")):
                del os.environ[name]
        os.environ.update(env)
        return runpy.run_path(str(SETTINGS_FILE))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _reload_urls() -> None:
    import importlib

    import config.urls

    importlib.reload(config.urls)
    clear_url_caches()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], None]]:
    """Apply the authentication and single sign-on settings ``env`` would give, and route the
    URLs accordingly; everything is put back afterwards."""
    overrides: list[override_settings] = []

    def apply(env: dict[str, str]) -> None:
        values = settings_from_environment(env)
        names = [
            name
            for name in values
            if name.startswith(("OIDC_", "SIGNOFF_OIDC_", "SIGNOFF_SSO_"))
            or name == "AUTHENTICATION_BACKENDS"
        ]
        override = override_settings(**{name: values[name] for name in names})
        override.enable()
        overrides.append(override)
        _reload_urls()

    # The calls to the provider stay on this machine whatever proxy the environment names.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield apply
    for override in reversed(overrides):
        override.disable()
    _reload_urls()


@pytest.fixture
def sso(provider: FakeProvider, configure: Callable[[dict[str, str]], None]) -> FakeProvider:
    """Single sign-on on, against the fake provider."""
    provider.reset()
    configure(
        {
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{provider.url}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{provider.url}/token",
            "OIDC_OP_USER_ENDPOINT": f"{provider.url}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{provider.url}/jwks",
            "SIGNOFF_OIDC_ROLE_MAP": ROLE_MAP,
        }
    )
    return provider


# --- Helpers ----------------------------------------------------------------------------------


def person(username: str = "ada", groups: list[str] | None = None, **claims: Any) -> dict[str, Any]:
    return {
        "sub": f"sub-{username}",
        "preferred_username": username,
        "email": f"{username}@example.com",
        "groups": groups or [],
        **claims,
    }


def start_login(client: Client, provider: FakeProvider) -> dict[str, str]:
    """Follow "Sign in with single sign-on" to the provider; return what Signoff asked for."""
    response = client.get(reverse("oidc_authentication_init"))
    assert response.status_code == 302
    assert response.url.startswith(f"{provider.url}/authorize?")
    return {name: values[0] for name, values in parse_qs(urlsplit(response.url).query).items()}


def sso_login(client: Client, provider: FakeProvider, claims: dict[str, Any], **tamper: Any) -> Any:
    """A whole single sign-on: out to the provider, sign in there, back to the callback."""
    params = start_login(client, provider)
    code = provider.authorize(params, claims, **tamper)
    return client.get(
        reverse("oidc_authentication_callback"), {"code": code, "state": params["state"]}
    )


def signed_in_as(client: Client) -> str | None:
    response = client.get(reverse("reviews:queue"))
    return response.context["user"].get_username() if response.status_code == 200 else None


def last_sequence() -> int:
    latest = AuditEvent.objects.order_by("-sequence").first()
    return latest.sequence if latest else 0


def events_after(sequence: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (event.action, event.actor_label, event.data)
        for event in AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence")
    ]


def role_names(user: Any) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


# --- Signing in ---------------------------------------------------------------------------------


def test_a_first_login_creates_the_user_with_the_mapped_role_audited(
    client: Client, sso: FakeProvider
):
    before = last_sequence()

    response = sso_login(client, sso, person("ada", groups=["signoff-auditors"]))

    assert response.status_code == 302
    assert response.url == reverse("reviews:queue")
    assert signed_in_as(client) == "ada"
    ada = get_user_model().objects.get(username="ada")
    assert ada.email == "ada@example.com"
    assert not ada.has_usable_password()
    assert role_names(ada) == {AUDITOR}
    assert events_after(before) == [
        ("user.created", "sso", {"user": "ada", "via": "sso", "sub": "sub-ada"}),
        ("role.granted", "sso", {"user": "ada", "role": AUDITOR}),
    ]
    assert client.get("/audit/").status_code == 200


def test_signoff_asks_for_the_code_flow_with_pkce_a_nonce_and_its_callback(
    client: Client, sso: FakeProvider
):
    params = start_login(client, sso)

    assert params["response_type"] == "code"
    assert params["redirect_uri"] == "http://testserver/oidc/callback/"
    assert params["code_challenge_method"] == "S256"
    assert len(params["nonce"]) >= 32
    assert len(params["state"]) >= 32


def test_a_later_login_without_the_group_revokes_the_role(client: Client, sso: FakeProvider):
    sso_login(client, sso, person("ada", groups=["signoff-auditors"]))
    before = last_sequence()

    later = Client()
    response = sso_login(later, sso, person("ada", groups=[]))

    assert response.status_code == 302
    ada = get_user_model().objects.get(username="ada")
    assert role_names(ada) == set()
    assert events_after(before) == [("role.revoked", "sso", {"user": "ada", "role": AUDITOR})]
    assert later.get("/audit/").status_code == 404


def test_a_later_login_with_the_same_groups_changes_nothing(client: Client, sso: FakeProvider):
    sso_login(client, sso, person("ada", groups=["signoff-auditors"]))
    before = last_sequence()

    sso_login(Client(), sso, person("ada", groups=["signoff-auditors"]))

    assert events_after(before) == []


def test_an_unknown_group_grants_nothing(client: Client, sso: FakeProvider):
    before = last_sequence()

    response = sso_login(client, sso, person("ada", groups=["marketing", "signoff-admins"]))

    assert response.status_code == 302
    assert role_names(get_user_model().objects.get(username="ada")) == set()
    assert [action for action, _actor, _data in events_after(before)] == ["user.created"]
    assert client.get("/audit/").status_code == 404


def test_roles_given_by_hand_outside_the_map_are_left_alone(client: Client, sso: FakeProvider):
    ada = UserFactory(username="ada")
    role_grant(user=ada, role=ADMINISTRATOR, actor=Actor.system("tests"))
    before = last_sequence()

    sso_login(client, sso, person("ada", groups=["signoff-reviewers"]))

    # An existing account with the provider's username is the same person: no new user.
    assert role_names(ada) == {ADMINISTRATOR, REVIEWER}
    assert events_after(before) == [("role.granted", "sso", {"user": "ada", "role": REVIEWER})]


def test_a_reviewer_from_single_sign_on_may_review_no_capability_until_granted_one(
    client: Client, sso: FakeProvider, capability: Capability
):
    sso_login(client, sso, person("ada", groups=["signoff-reviewers"]))

    ada = get_user_model().objects.get(username="ada")
    assert role_names(ada) == {REVIEWER}
    assert not ada.has_perm("capabilities.review_capability", capability)


def test_without_preferred_username_the_email_is_the_username(client: Client, sso: FakeProvider):
    claims = person("ada")
    del claims["preferred_username"]

    sso_login(client, sso, claims)

    assert signed_in_as(client) == "ada@example.com"


def test_a_deactivated_user_is_signed_out_at_the_next_request(client: Client, sso: FakeProvider):
    sso_login(client, sso, person("ada"))
    get_user_model().objects.filter(username="ada").update(is_active=False)

    assert signed_in_as(client) is None


def test_a_deactivated_user_cannot_sign_in_and_keeps_their_roles(client: Client, sso: FakeProvider):
    sso_login(Client(), sso, person("ada", groups=["signoff-auditors"]))
    get_user_model().objects.filter(username="ada").update(is_active=False)
    before = last_sequence()

    response = sso_login(client, sso, person("ada", groups=[]))

    assert response.url == reverse("login")
    assert signed_in_as(client) is None
    assert role_names(get_user_model().objects.get(username="ada")) == {AUDITOR}
    assert events_after(before) == []


# --- Refusals ---------------------------------------------------------------------------------


def assert_refused_without_a_trace(client: Client, before: int) -> None:
    assert not get_user_model().objects.filter(username="ada").exists()
    assert signed_in_as(client) is None
    assert events_after(before) == []


def test_a_bad_signature_is_refused_and_creates_no_user(client: Client, sso: FakeProvider):
    before = last_sequence()

    response = sso_login(client, sso, person("ada"), signing_key=_rsa_key())

    assert response.status_code == 400
    assert_refused_without_a_trace(client, before)


def test_a_wrong_nonce_is_refused_and_creates_no_user(client: Client, sso: FakeProvider):
    before = last_sequence()

    response = sso_login(client, sso, person("ada"), nonce="replayed-from-another-login")

    assert response.status_code == 400
    assert_refused_without_a_trace(client, before)


def test_an_unknown_state_is_refused_and_creates_no_user(client: Client, sso: FakeProvider):
    before = last_sequence()
    params = start_login(client, sso)
    code = sso.authorize(params, person("ada"))

    response = client.get(
        reverse("oidc_authentication_callback"), {"code": code, "state": "forged-state"}
    )

    assert response.status_code == 400
    assert sso.token_requests == 0
    assert_refused_without_a_trace(client, before)


def test_a_callback_in_a_browser_that_started_no_login_is_refused(
    client: Client, sso: FakeProvider
):
    before = last_sequence()
    params = start_login(Client(), sso)
    code = sso.authorize(params, person("ada"))

    response = client.get(
        reverse("oidc_authentication_callback"), {"code": code, "state": params["state"]}
    )

    assert response.status_code == 302
    assert response.url == reverse("login")
    assert sso.token_requests == 0
    assert_refused_without_a_trace(client, before)


def test_a_token_for_another_client_is_refused(client: Client, sso: FakeProvider):
    before = last_sequence()

    response = sso_login(client, sso, person("ada"), aud="another-application")

    assert response.status_code == 400
    assert_refused_without_a_trace(client, before)


def test_an_expired_token_is_refused(client: Client, sso: FakeProvider):
    before = last_sequence()

    response = sso_login(client, sso, person("ada"), exp=int(time.time()) - 60)

    assert response.status_code == 400
    assert_refused_without_a_trace(client, before)


def test_userinfo_about_another_subject_is_refused(client: Client, sso: FakeProvider):
    before = last_sequence()

    response = sso_login(client, sso, person("ada"), userinfo=person("mallory"))

    assert response.status_code == 302
    assert response.url == reverse("login")
    assert_refused_without_a_trace(client, before)
    page = client.get(response.url)
    assert "Single sign-on did not sign you in" in page.text


def test_a_username_django_would_not_accept_is_refused(client: Client, sso: FakeProvider):
    before = last_sequence()

    response = sso_login(client, sso, person("ada", preferred_username="ada lovelace"))

    assert response.url == reverse("login")
    assert not get_user_model().objects.filter(username="ada lovelace").exists()
    assert events_after(before) == []


def test_a_provider_error_is_a_failed_login_not_an_error_page(client: Client, sso: FakeProvider):
    sso.down = True
    before = last_sequence()

    response = sso_login(client, sso, person("ada"))

    assert response.status_code == 302
    assert response.url == reverse("login")
    assert_refused_without_a_trace(client, before)


def test_a_password_login_carrying_a_code_does_not_reach_the_provider(
    client: Client, sso: FakeProvider
):
    params = start_login(Client(), sso)
    code = sso.authorize(params, person("ada"))

    response = client.post(
        f"{reverse('login')}?code={code}&state={params['state']}",
        {"username": "ada", "password": "anything"},
    )

    assert response.status_code == 200
    assert sso.token_requests == 0
    assert signed_in_as(client) is None


def test_failed_single_sign_ons_are_not_counted_by_the_password_lockout(
    client: Client, sso: FakeProvider, settings: Any
):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(3):
        sso_login(client, sso, person("ada"), userinfo=person("mallory"))

    assert AccessAttempt.objects.count() == 0
    assert sso_login(client, sso, person("ada")).url == reverse("reviews:queue")
    UserFactory(username="rita")
    password_login = Client().post(reverse("login"), {"username": "rita", "password": PASSWORD})
    assert password_login.status_code == 302


# --- On only when configured ------------------------------------------------------------------


def test_the_login_page_offers_single_sign_on_when_it_is_configured(
    client: Client, sso: FakeProvider
):
    page = client.get(reverse("login"), {"next": "/audit/"})

    assert "Sign in with single sign-on" in page.text
    assert 'href="/oidc/authenticate/?next=/audit/"' in page.text


def test_without_a_client_id_nothing_of_single_sign_on_is_active(
    client: Client, configure: Callable[[dict[str, str]], None]
):
    configure({"SIGNOFF_OIDC_ROLE_MAP": ROLE_MAP})

    from django.conf import settings

    assert SSO_BACKEND not in settings.AUTHENTICATION_BACKENDS
    with pytest.raises(NoReverseMatch):
        reverse("oidc_authentication_init")
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/", {"code": "c", "state": "s"}).status_code == 404
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert "single sign-on" not in page.text


def run_manage_py(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=PROJECT,
        env={
            "PATH": "/usr/bin:/bin",
            "SECRET_KEY": "k",
            "DATABASE_URL": "sqlite:///:memory:",
            "LOG_LEVEL": "WARNING",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_environment_alone_turns_single_sign_on_on_and_off(tmp_path: Path):
    probe = (
        "from django.conf import settings; from django.urls import reverse;"
        "from django.test import Client;"
        f"print({SSO_BACKEND!r} in settings.AUTHENTICATION_BACKENDS,"
        " settings.AUTHENTICATION_BACKENDS[0] == 'axes.backends.AxesStandaloneBackend',"
        " reverse('oidc_authentication_init') if settings.SIGNOFF_SSO_ENABLED else '-',"
        " 'single sign-on' in Client().get('/accounts/login/').text)"
    )
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    configured = {
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET_FILE": str(secret),
        "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://id.example.invalid/authorize",
        "OIDC_OP_TOKEN_ENDPOINT": "https://id.example.invalid/token",
        "OIDC_OP_USER_ENDPOINT": "https://id.example.invalid/userinfo",
        "OIDC_OP_JWKS_ENDPOINT": "https://id.example.invalid/jwks",
        "ALLOWED_HOSTS": "testserver",
    }

    off = run_manage_py({"ALLOWED_HOSTS": "testserver"}, probe)
    on = run_manage_py(configured, probe)

    assert off.returncode == 0, off.stderr
    assert off.stdout.split() == ["False", "True", "-", "False"]
    assert on.returncode == 0, on.stderr
    assert on.stdout.split() == ["True", "True", "/oidc/authenticate/", "True"]
    check = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env={
            "PATH": "/usr/bin:/bin",
            "SECRET_KEY": "k",
            "DATABASE_URL": "sqlite:///:memory:",
            **configured,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_client_secret_and_algorithm_come_from_the_environment(tmp_path: Path):
    secret = tmp_path / "client-secret"
    secret.write_text("from-a-file\n")
    values = settings_from_environment(
        {
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET_FILE": str(secret),
            "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://id.example.invalid/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": "https://id.example.invalid/token",
            "OIDC_OP_USER_ENDPOINT": "https://id.example.invalid/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": "https://id.example.invalid/jwks",
            "SIGNOFF_OIDC_GROUPS_CLAIM": "roles",
            "SIGNOFF_OIDC_ROLE_MAP": "leads=reviewer, leads=senior reviewer,audit=auditor",
        }
    )

    assert values["OIDC_RP_CLIENT_SECRET"] == "from-a-file"
    assert values["OIDC_RP_SIGN_ALGO"] == "RS256"
    assert values["SIGNOFF_OIDC_GROUPS_CLAIM"] == "roles"
    assert values["SIGNOFF_OIDC_ROLE_MAP"] == {
        "leads": ("reviewer", "senior reviewer"),
        "audit": ("auditor",),
    }
    assert values["AUTHENTICATION_BACKENDS"][0] == "axes.backends.AxesStandaloneBackend"
    assert values["AUTHENTICATION_BACKENDS"][-1] == SSO_BACKEND


def test_a_client_id_without_the_provider_endpoints_refuses_to_start():
    with pytest.raises(ImproperlyConfigured) as refused:
        settings_from_environment({"OIDC_RP_CLIENT_ID": CLIENT_ID})

    for name in (
        "OIDC_RP_CLIENT_SECRET",
        "OIDC_OP_AUTHORIZATION_ENDPOINT",
        "OIDC_OP_TOKEN_ENDPOINT",
        "OIDC_OP_USER_ENDPOINT",
        "OIDC_OP_JWKS_ENDPOINT",
    ):
        assert name in str(refused.value)


def test_a_role_map_naming_an_unknown_role_refuses_to_start():
    with pytest.raises(ImproperlyConfigured, match="'signoff-gods=god' is not group=role"):
        settings_from_environment({"SIGNOFF_OIDC_ROLE_MAP": "signoff-gods=god"})
