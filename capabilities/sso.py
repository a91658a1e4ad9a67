"""Single sign-on through OpenID Connect: who the identity provider says signed in, and which
roles its groups give them.

mozilla-django-oidc runs the authorization code flow (with PKCE): ``/oidc/authenticate/`` sends
the browser to the provider, ``/oidc/callback/`` takes the code back, fetches the tokens, checks
the ID token's signature against the provider's JWKS and its nonce against the session. This
backend adds what Signoff needs on top:

* the ID token must be meant for this client (``aud``) and unexpired, and the userinfo must be
  about the same subject; anything else is refused as a suspicious request;
* the username is the ``preferred_username`` claim, else ``email``. A person is created at their
  first login, with no usable password (audited as ``user.created``); an existing account with
  that username is the same person;
* at every login the roles named in ``SIGNOFF_OIDC_ROLE_MAP`` follow the provider's groups
  claim (``SIGNOFF_OIDC_GROUPS_CLAIM``): granted when a mapped group is present, revoked when
  none is, through ``role_grant`` / ``role_revoke`` as the system actor ``sso``. Roles the map
  does not name are never touched, so roles given by hand stay.

A role from the provider is a group and its model-wide permissions, nothing more: a reviewer,
senior reviewer or manager from single sign-on may work on no capability until an administrator
grants them each one (``role_grant`` with ``capabilities``). Auditors and administrators work
everywhere by nature, so their role alone is what the provider grants.
"""

import logging
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpResponseRedirect
from django.shortcuts import resolve_url
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record
from capabilities.services.access import role_grant, role_revoke

logger = logging.getLogger(__name__)

SSO_ACTOR = Actor.system("sso")


class SignoffOIDCBackend(OIDCAuthenticationBackend):
    """Signs in the person the provider vouches for, creating them on first sight, and syncs
    their mapped roles. Refuses (returns None, or raises ``SuspiciousOperation`` for a forged
    or misdirected token) whatever does not check out; a provider that does not answer is a
    failed login, not an error page."""

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        # Only the callback signs anyone in here: it passes the nonce it took from the session.
        # A password login (or anything else) with a code in its query string is not ours.
        if "nonce" not in kwargs:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except requests.RequestException:
            logger.warning("single sign-on: the identity provider did not answer", exc_info=True)
            return None

    def get_user(self, user_id: Any) -> Any:
        # As Django's own backend: a deactivated user's session ends at their next request
        # (the library's version would keep them signed in).
        return ModelBackend.get_user(self, user_id)

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = super().verify_token(token, **kwargs)
        except jwt.PyJWTError as error:
            # A malformed, expired or misaddressed token is refused like a forged one.
            raise SuspiciousOperation(
                f"The identity provider's token was refused: {error}"
            ) from error
        return payload

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        """Check the signature with the configured algorithm only, and that the token is for
        this client and still valid (the library leaves the audience unchecked)."""
        algorithm = jwt.get_unverified_header(payload).get("alg")
        if algorithm != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(
                f"The token is signed with {algorithm!r}, not {self.OIDC_RP_SIGN_ALGO!r}."
            )
        claims: dict[str, Any] = jwt.decode(
            payload,
            key,
            algorithms=[self.OIDC_RP_SIGN_ALGO],
            audience=self.OIDC_RP_CLIENT_ID,
            options={"require": ["exp", "aud", "sub"]},
        )
        return claims

    def get_username(self, claims: dict[str, Any]) -> str:
        return str(claims.get("preferred_username") or claims.get("email") or "")

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        """A login needs a username Django accepts."""
        username = self.get_username(claims)
        if not username or len(username) > 150:
            return False
        try:
            UnicodeUsernameValidator()(username)
        except ValidationError:
            return False
        return True

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        """The user named by the claims (by username, not by e-mail as the library would),
        created or updated by ``sso_user_sync``."""
        user_info = self.get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 5.3.2: the userinfo must be about the ID token's subject.
        if user_info.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo is about another subject than the ID token.")
        claims = {**payload, **user_info}
        if not self.verify_claims(claims):
            raise SuspiciousOperation("The provider gave no usable preferred_username or email.")
        return sso_user_sync(username=self.get_username(claims), claims=claims)


class SignoffOIDCCallbackView(OIDCAuthenticationCallbackView):
    """The callback, sending a failed single sign-on back to the login page with a message."""

    def login_failure(self) -> HttpResponseRedirect:
        messages.error(
            self.request,
            "Single sign-on did not sign you in. Try again, or ask an administrator.",
        )
        return HttpResponseRedirect(resolve_url(settings.LOGIN_URL))


def sso_user_sync(*, username: str, claims: dict[str, Any]) -> Any:
    """The user the provider signed in as ``username``, created if new, with the mapped roles
    their groups claim gives, in one transaction.

    Audited as ``user.created`` for a new user, and ``role.granted`` / ``role.revoked`` (and the
    permissions a revoked role takes with it) per change, all by the system actor ``sso``. An
    inactive user's roles are left as they are: they will not be signed in anyway.
    """
    user_model = get_user_model()
    wanted = roles_from_claims(claims)
    managed = {role for roles in settings.SIGNOFF_OIDC_ROLE_MAP.values() for role in roles}
    with transaction.atomic():
        # Two logins of one person at once (two tabs) sync one after the other.
        user = (
            user_model.objects.select_for_update()
            .filter(**{user_model.USERNAME_FIELD: username})
            .first()
        )
        if user is None:
            user = _user_create(username=username, claims=claims)
        if not user.is_active:
            return user
        held = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
        for role in sorted(wanted - held):
            role_grant(user=user, role=role, actor=SSO_ACTOR)
        for role in sorted(held - wanted):
            role_revoke(user=user, role=role, actor=SSO_ACTOR)
    return user


def roles_from_claims(claims: dict[str, Any]) -> set[str]:
    """The roles ``SIGNOFF_OIDC_ROLE_MAP`` gives for the groups in ``claims``. A groups claim
    may be a list or a single string; groups the map does not name give nothing."""
    groups = claims.get(settings.SIGNOFF_OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    role_map: dict[str, tuple[str, ...]] = settings.SIGNOFF_OIDC_ROLE_MAP
    return {role for group in groups if isinstance(group, str) for role in role_map.get(group, ())}


def _user_create(*, username: str, claims: dict[str, Any]) -> Any:
    """Create the user with no usable password (they sign in through the provider), audited
    as ``user.created``. Locks the new row for the caller's role sync."""
    user_model = get_user_model()
    try:
        with transaction.atomic():  # a savepoint: the loser of a race keeps its transaction
            user = user_model.objects.create_user(username, email=claims.get("email") or "")
            audit_event_record(
                actor=SSO_ACTOR,
                action=AuditAction.USER_CREATED,
                subject=Subject("user", str(user.pk)),
                data={"user": username, "via": "sso", "sub": str(claims.get("sub", ""))},
            )
    except IntegrityError:
        # The same person's other login created them a moment ago.
        return user_model.objects.select_for_update().get(**{user_model.USERNAME_FIELD: username})
    return user
