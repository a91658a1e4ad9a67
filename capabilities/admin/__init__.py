"""The admin of capabilities, API clients and users, one module per subject. Every change made
here goes through the audited services; what has no service is read-only."""

from capabilities.admin import catalog, clients, users

__all__ = ["catalog", "clients", "users"]
