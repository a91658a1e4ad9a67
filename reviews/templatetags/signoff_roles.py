"""What the navigation needs to know about the signed-in user's roles."""

from typing import Any

from django import template

from capabilities.permissions import MANAGE, capability_ids_with

register = template.Library()


@register.filter
def manages_capabilities(user: Any) -> bool:
    """Does ``user`` manage at least one capability (``can_manage_capability`` on it)? Asked
    on every page, so in the one query of ``capability_ids_with``, not through guardian's
    querysets."""
    return bool(user.is_authenticated and capability_ids_with(user, [MANAGE])[MANAGE])
