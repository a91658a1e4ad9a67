"""Create an API client scoped to some capabilities and print its token, once."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import Actor
from capabilities.models import ApiClient, Capability
from capabilities.services import api_client_create


class Command(BaseCommand):
    help = (
        "Create an API client allowed to submit to the given capabilities, and print its "
        "bearer token on the last line. The token is shown only now: just its hash is stored."
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
        try:
            issued = api_client_create(
                name=name,
                capabilities=capabilities,
                description=options["description"],
                actor=Actor.system("create_api_client"),
            )
        except ValidationError as exc:
            raise CommandError(_describe(exc)) from exc

        self.stdout.write(self.style.SUCCESS(f"Created API client {name!r}."))
        self.stdout.write(f"Scope: {', '.join(sorted(keys))}")
        self.stdout.write(
            f"Token (prefix {issued.token.prefix}), shown only now; store it as a secret:"
        )
        self.stdout.write(issued.secret)


def _describe(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)
