"""Grant, revoke and show roles from the command line: ``manage.py access grant rita reviewer
--capability refunds.issue``. Every change is audited, naming the operator's login."""

import getpass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from guardian.shortcuts import get_objects_for_user

from audit.services import Actor
from capabilities.models import Capability
from capabilities.roles import ROLES
from capabilities.services import role_grant, role_revoke


class Command(BaseCommand):
    help = (
        "Give or take a user's role, on some capabilities or (revoke without --capability) "
        "altogether, or show what they hold. Roles: " + ", ".join(sorted(ROLES)) + "."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        for name, text in (("grant", "Give USER the ROLE"), ("revoke", "Take the ROLE away")):
            sub = actions.add_parser(name, help=text)
            sub.add_argument("username")
            sub.add_argument("role", help="One of: " + ", ".join(sorted(ROLES)))
            sub.add_argument(
                "--capability",
                dest="capabilities",
                action="append",
                default=[],
                metavar="KEY",
                help="Only on this capability; repeat for several.",
            )
        show = actions.add_parser("show", help="Show the roles and capabilities of USER")
        show.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = _user(options["username"])
        if options["action"] == "show":
            self._show(user)
            return
        role = options["role"]
        if role not in ROLES:
            raise CommandError(f"Unknown role {role!r}; the roles are {', '.join(sorted(ROLES))}.")
        capabilities = _capabilities(options["capabilities"])
        actor = Actor.system(f"manage.py access ({getpass.getuser()})")
        try:
            if options["action"] == "grant":
                role_grant(user=user, role=role, capabilities=capabilities, actor=actor)
            else:
                role_revoke(user=user, role=role, capabilities=capabilities or None, actor=actor)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self._show(user)

    def _show(self, user: Any) -> None:
        held = sorted(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        self.stdout.write(f"{user.get_username()}: {', '.join(held) or 'no role'}")
        for codename in ("review_capability", "resolve_escalations", "manage_capability"):
            keys = get_objects_for_user(
                user,
                f"capabilities.{codename}",
                klass=Capability,
                use_groups=False,
                with_superuser=False,
                accept_global_perms=False,
            ).values_list("key", flat=True)
            if keys:
                self.stdout.write(f"  {codename}: {', '.join(sorted(keys))}")


def _user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"There is no user {username!r}.")
    return user


def _capabilities(keys: list[str]) -> list[Capability]:
    found = list(Capability.objects.filter(key__in=keys))
    unknown = sorted(set(keys) - {c.key for c in found})
    if unknown:
        raise CommandError(f"Unknown capability key(s): {', '.join(unknown)}.")
    return found
