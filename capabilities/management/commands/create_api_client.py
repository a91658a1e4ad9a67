"""Create an API client scoped to some capabilities and print its token, once."""

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.services import Actor
from capabilities.management.commands.api_token import describe, positive_number, when
from capabilities.models import ApiClient, Capability
from capabilities.services import api_client_create


class Command(BaseCommand):
    help = (
        "Create an API client allowed to submit to the given capabilities, and print its "
        "bearer token on the last line. The token is shown only now: just its hash is stored. "
        "Further tokens: `manage.py api_token`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Unique name of the client, e.g. support-agent.")
        parser.add_argument(
            "--capability",
            dest="capabilities",
            action="append",
            default=[],
            metavar="KEY",
            help="A capability key the client may submit to; repeat for several.",
        )
        parser.add_argument("--description", default="", help="What the client is.")
        parser.add_argument(
            "--user",
            metavar="USERNAME",
            help="The person the client acts for: they may not decide what it submits.",
        )
        parser.add_argument(
            "--expires-in",
            type=positive_number,
            metavar="DAYS",
            help="The first token stops working after this many days. Default: never.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"].strip()
        keys = list(dict.fromkeys(options["capabilities"]))
        if not name:
            raise CommandError("The client name must not be empty.")
        if not keys:
            raise CommandError("Give at least one --capability KEY the client may submit to.")
        capabilities = list(Capability.objects.filter(key__in=keys))
        unknown = sorted(set(keys) - {capability.key for capability in capabilities})
        if unknown:
            raise CommandError(f"Unknown capability key(s): {', '.join(unknown)}.")
        if ApiClient.objects.filter(name=name).exists():
            raise CommandError(f"An API client named {name!r} already exists.")
        user = None
        if options["user"] is not None:
            user = _user(options["user"])
        expires_at = None
        if options["expires_in"] is not None:
            expires_at = timezone.now() + dt.timedelta(days=options["expires_in"])
        try:
            issued = api_client_create(
                name=name,
                capabilities=capabilities,
                description=options["description"],
                user=user,
                expires_at=expires_at,
                actor=Actor.system("create_api_client"),
            )
        except ValidationError as exc:
            raise CommandError(describe(exc)) from exc

        self.stdout.write(self.style.SUCCESS(f"Created API client {name!r}."))
        if user is not None:
            self.stdout.write(f"Acts for: {user.get_username()}")
        self.stdout.write(f"Scope: {', '.join(sorted(keys))}")
        self.stdout.write(f"Expires: {when(issued.token.expires_at, never='never')}")
        self.stdout.write(
            f"Token (prefix {issued.token.prefix}), shown only now; store it as a secret:"
        )
        self.stdout.write(issued.secret)


def _user(username: str) -> Any:
    user_model = get_user_model()
    user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
    if user is None:
        raise CommandError(f"There is no user named {username!r}.")
    return user
