"""Show, or rotate, the secret an API client's webhooks are signed with."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import Actor
from capabilities.models import ApiClient
from capabilities.services.clients import (
    api_client_rotate_webhook_secret,
    api_client_webhook_secret,
)

ACTOR = Actor.system("api_client_secret")


class Command(BaseCommand):
    help = (
        "Print the secret that signs the webhooks sent to API client NAME (Standard Webhooks, "
        "whsec_…), on the last line; a client without one gets one now. With --rotate, replace "
        "it first: messages are signed with the new secret only from then on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="The API client's name.")
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="Replace the secret by a new one and print the new one.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        client = ApiClient.objects.filter(name=name).first()
        if client is None:
            raise CommandError(f"There is no API client named {name!r}.")
        if options["rotate"]:
            secret = api_client_rotate_webhook_secret(client=client, actor=ACTOR)
            self.stdout.write(
                self.style.SUCCESS(f"Rotated the webhook secret of API client {client.name!r}.")
            )
            self.stdout.write(
                "Webhooks are signed with this secret from now on; give it to the receiver:"
            )
        else:
            secret = api_client_webhook_secret(client=client, actor=ACTOR)
            self.stdout.write(f"Webhook signing secret of API client {client.name!r}:")
        self.stdout.write(secret)
