"""Every change to capabilities, policies, API clients and access, each audited in its
transaction. One module per subject; import from here."""

from capabilities.services.access import (
    permission_grant,
    permission_revoke,
    role_grant,
    role_revoke,
)
from capabilities.services.catalog import (
    capability_create,
    capability_schema_set,
    policy_active,
    policy_publish,
)
from capabilities.services.clients import (
    TOKEN_PREFIX,
    TOKEN_PREFIX_LENGTH,
    UNCHANGED,
    IssuedToken,
    TokenCheck,
    TokenRefusal,
    api_client_create,
    api_client_update,
    api_token_authenticate,
    api_token_check,
    api_token_issue,
    api_token_revoke,
    api_token_rotate,
    token_hash,
)

__all__ = [
    "TOKEN_PREFIX",
    "TOKEN_PREFIX_LENGTH",
    "UNCHANGED",
    "IssuedToken",
    "TokenCheck",
    "TokenRefusal",
    "api_client_create",
    "api_client_update",
    "api_token_authenticate",
    "api_token_check",
    "api_token_issue",
    "api_token_revoke",
    "api_token_rotate",
    "capability_create",
    "capability_schema_set",
    "permission_grant",
    "permission_revoke",
    "policy_active",
    "policy_publish",
    "role_grant",
    "role_revoke",
    "token_hash",
]
