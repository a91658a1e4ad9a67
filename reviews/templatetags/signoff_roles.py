"""What the navigation needs to know about the signed-in user's roles."""

from typing import Any

from django import template

from capabilities.permissions import managed_capabilities

register = template.Library()


@register.filter
def manages_capabilities(user: Any) -> bool:
    """Does ``user`` manage at least one capability (``can_manage_capability`` on it)?"""
    return bool(user.is_authenticated and managed_capabilities(user).exists())
