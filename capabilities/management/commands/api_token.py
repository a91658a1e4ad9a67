"""Issue, rotate, revoke and list the bearer tokens of API clients.

A token is named by its prefix (``sgf_`` and six characters, shown by ``list`` and in the
admin), or by any start of it that names one token alone. Secrets are printed once, alone on
the last line, and never stored.
"""

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.services import Actor
from capabilities.models import ApiClient, ApiToken, Capability
from capabilities.services import (
    TOKEN_PREFIX,
    TOKEN_PREFIX_LENGTH,
    IssuedToken,
    api_token_issue,
    api_token_revoke,
    api_token_rotate,
)

ACTOR = Actor.system("api_token")


# No span a token is given (days to expiry, hours of overlap) needs more; a larger one would
# overflow the date it is added to.
LONGEST_SPAN = 36_500


def positive_number(text: str) -> float:
    value = non_negative_number(text)
    if value == 0:
        raise ValueError(text)
    return value


def non_negative_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(text) from None
    if not 0 <= value <= LONGEST_SPAN:  # also NaN and infinity
        raise ValueError(text)
    return value


positive_number.__name__ = f"positive number (at most {LONGEST_SPAN})"
non_negative_number.__name__ = f"number of hours (0 to {LONGEST_SPAN})"


class Command(BaseCommand):
    help = (
        "Manage API tokens: issue a token for a client, rotate one (its successor is printed, "
        "the old one keeps working for an overlap), revoke one at once, or list them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(
            dest="subcommand", required=True, metavar="{issue,rotate,revoke,list}"
        )

        issue = subcommands.add_parser(
            "issue",
            help="Issue a new token for CLIENT and print it on the last line.",
            description="Issue a new token for CLIENT; the token is printed once, alone on "
            "the last line.",
        )
        issue.add_argument("client", metavar="CLIENT", help="The API client's name.")
        issue.add_argument(
            "--capability",
            dest="capabilities",
            action="append",
            default=[],
            metavar="KEY",
            help="Scope the token to this capability of the client; repeat for several. "
            "Default: all of the client's.",
        )
        issue.add_argument(
            "--expires-in",
            type=positive_number,
            metavar="DAYS",
            help="The token stops working after this many days. Default: never.",
        )

        rotate = subcommands.add_parser(
            "rotate",
            help="Replace a token by a new one of the same scope; print the new one.",
            description="Issue a successor of the token with the same client and scope, and "
            "let the old one work only for the overlap. The new token is printed once, alone "
            "on the last line.",
        )
        rotate.add_argument("prefix", metavar="PREFIX", help="The token's prefix.")
        rotate.add_argument(
            "--overlap-hours",
            type=non_negative_number,
            metavar="H",
            help="How long the old token keeps working. Default: "
            "SIGNOFF_TOKEN_ROTATION_OVERLAP_SECONDS (a day).",
        )

        revoke = subcommands.add_parser(
            "revoke",
            help="Revoke a token now.",
            description="Revoke the token now: it stops working at once.",
        )
        revoke.add_argument("prefix", metavar="PREFIX", help="The token's prefix.")

        listing = subcommands.add_parser(
            "list",
            help="List tokens (of CLIENT), newest first; never their secrets or hashes.",
            description="List tokens, newest first: prefix, client, scope, created, expires, "
            "last used, revoked.",
        )
        listing.add_argument("client", metavar="CLIENT", nargs="?", help="Only this client's.")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand == "issue":
            self.issue_token(options["client"], options["capabilities"], options["expires_in"])
        elif subcommand == "rotate":
            self.rotate_token(options["prefix"], options["overlap_hours"])
        elif subcommand == "revoke":
            self.revoke_token(options["prefix"])
        else:
            self.list_tokens(options["client"])

    # --- Subcommands --------------------------------------------------------------------------

    def issue_token(self, name: str, keys: list[str], expires_in_days: float | None) -> None:
        client = _client(name)
        if not client.is_active:
            raise CommandError(
                f"API client {client.name!r} is deactivated: its tokens would not work."
            )
        scope: list[Capability] | None = None
        if keys:
            scope = _capabilities_of(client, keys)
        expires_at = None
        if expires_in_days is not None:
            expires_at = timezone.now() + dt.timedelta(days=expires_in_days)
        try:
            issued = api_token_issue(
                client=client, capabilities=scope, expires_at=expires_at, actor=ACTOR
            )
        except ValidationError as exc:
            raise CommandError(describe(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Issued a token for API client {client.name!r}."))
        self._print_secret(issued)

    def rotate_token(self, prefix: str, overlap_hours: float | None) -> None:
        token = _token(prefix)
        overlap = None if overlap_hours is None else dt.timedelta(hours=overlap_hours)
        try:
            issued = api_token_rotate(token=token, overlap=overlap, actor=ACTOR)
        except ValidationError as exc:
            raise CommandError(describe(exc)) from exc
        token.refresh_from_db()
        self.stdout.write(
            self.style.SUCCESS(f"Rotated token {token.prefix} of API client {token.client.name!r}.")
        )
        self.stdout.write(f"The old token {token.prefix} works until {when(token.expires_at)}.")
        self._print_secret(issued)

    def revoke_token(self, prefix: str) -> None:
        token = _token(prefix)
        if token.revoked_at is not None:
            self.stdout.write(
                f"Token {token.prefix} of API client {token.client.name!r} was already revoked "
                f"at {when(token.revoked_at)}; nothing changed."
            )
            return
        token = api_token_revoke(token=token, actor=ACTOR)
        self.stdout.write(
            self.style.SUCCESS(
                f"Revoked token {token.prefix} of API client {token.client.name!r}: it stopped "
                f"working at {when(token.revoked_at)}."
            )
        )

    def list_tokens(self, name: str | None) -> None:
        tokens = ApiToken.objects.select_related("client").prefetch_related("capabilities")
        if name is not None:
            tokens = tokens.filter(client=_client(name))
        rows = [
            (
                token.prefix,
                token.client.name,
                ",".join(sorted(c.key for c in token.capabilities.all())) or "-",
                when(token.created_at),
                when(token.expires_at, never="never"),
                when(token.last_used_at, never="never"),
                when(token.revoked_at, never="-"),
            )
            for token in tokens.order_by("-created_at", "-id")
        ]
        if not rows:
            self.stdout.write("No tokens.")
            return
        header = ("PREFIX", "CLIENT", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "REVOKED")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )

    def _print_secret(self, issued: IssuedToken) -> None:
        token = issued.token
        scope = sorted(token.capabilities.values_list("key", flat=True))
        self.stdout.write(f"Scope: {', '.join(scope) or '(none)'}")
        self.stdout.write(f"Expires: {when(token.expires_at, never='never')}")
        self.stdout.write(f"Token (prefix {token.prefix}), shown only now; store it as a secret:")
        self.stdout.write(issued.secret)


def when(moment: dt.datetime | None, never: str = "-") -> str:
    """A moment as operators read it: UTC, to the second."""
    if moment is None:
        return never
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(error: ValidationError) -> str:
    """A ``ValidationError`` as one line for a ``CommandError``."""
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)


def _client(name: str) -> ApiClient:
    client = ApiClient.objects.filter(name=name).first()
    if client is None:
        raise CommandError(f"There is no API client named {name!r}.")
    return client


def _capabilities_of(client: ApiClient, keys: list[str]) -> list[Capability]:
    keys = list(dict.fromkeys(keys))
    known = {c.key: c for c in Capability.objects.filter(key__in=keys)}
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise CommandError(f"Unknown capability key(s): {', '.join(unknown)}.")
    allowed = set(client.capabilities.values_list("key", flat=True))
    beyond = [key for key in keys if key not in allowed]
    if beyond:
        raise CommandError(
            f"Outside the capabilities of API client {client.name!r}: {', '.join(beyond)}. "
            f"It may reach: {', '.join(sorted(allowed)) or 'nothing'}."
        )
    return [known[key] for key in keys]


def _token(prefix: str) -> ApiToken:
    prefix = prefix.strip()
    if not prefix:
        raise CommandError("Give the token's prefix, as `api_token list` shows it.")
    if prefix.startswith(TOKEN_PREFIX) and len(prefix) > TOKEN_PREFIX_LENGTH:
        # Not echoed: it is most likely a whole secret, pasted where it should not be.
        raise CommandError(
            "That is longer than a token's prefix; give only the prefix, as `api_token list` "
            "shows it (a whole token does not belong on a command line)."
        )
    matches = list(ApiToken.objects.select_related("client").filter(prefix__startswith=prefix)[:10])
    if not matches:
        raise CommandError(f"No token has the prefix {prefix!r}; `api_token list` shows them.")
    exact = [token for token in matches if token.prefix == prefix]
    if len(matches) > 1 and len(exact) != 1:
        named = ", ".join(f"{token.prefix} ({token.client.name})" for token in matches)
        raise CommandError(f"The prefix {prefix!r} names several tokens: {named}. Give more of it.")
    return exact[0] if exact else matches[0]
