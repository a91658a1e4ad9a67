"""Bearer-token authentication for systems calling the REST API."""

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from capabilities.models import ApiClient, ApiToken
from capabilities.services import api_token_authenticate


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``: authenticates as the token's API client.

    ``request.user`` becomes the ``ApiClient`` and ``request.auth`` the ``ApiToken``.
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
        token = api_token_authenticate(secret)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or unknown token.")
        return token.client, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="signoff"'
