"""Bearer-token authentication for systems calling the REST API."""

from typing import Any

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from capabilities.models import ApiClient, ApiToken
from capabilities.services import TokenCheck, TokenRefusal, api_token_check


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``: authenticates as the token's API client.

    ``request.user`` becomes the ``ApiClient`` and ``request.auth`` the ``ApiToken``, whose
    scope decides what the request may reach. A token that does not work is answered with 401
    (``authentication_failed``) and a message saying why: unknown, revoked, expired, or its
    client deactivated. Only the holder of the secret learns which.
    """

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Bearer <token>'."
            )
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        check = api_token_check(secret)
        token = check.live_token
        if token is None:
            raise exceptions.AuthenticationFailed(_refusal_message(check))
        return token.client, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="signoff"'


def _refusal_message(check: TokenCheck) -> str:
    token = check.token
    if token is None or check.refusal is TokenRefusal.UNKNOWN:
        return "Invalid or unknown token."
    if check.refusal is TokenRefusal.REVOKED:
        return f"This token ({token.prefix}) was revoked; use a current token of your client."
    if check.refusal is TokenRefusal.EXPIRED:
        assert token.expires_at is not None
        expired_at = timezone.localtime(token.expires_at).isoformat(timespec="seconds")
        return (
            f"This token ({token.prefix}) expired at {expired_at}; use its successor or ask "
            "for a new token."
        )
    return f"This token's API client ({token.client.name}) is deactivated."
