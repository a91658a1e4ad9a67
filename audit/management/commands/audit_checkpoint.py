"""Signed checkpoints of the audit chain: write one now, export them all, or make a key pair."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import chain
from audit.selectors import audit_checkpoints
from audit.services import audit_checkpoint_write
from audit.signing import generate_key_pair


class Command(BaseCommand):
    help = (
        "Sign a checkpoint of the chain's head now (checkpoints are also written every "
        "SIGNOFF_AUDIT_CHECKPOINT_EVERY events or SIGNOFF_AUDIT_CHECKPOINT_MINUTES minutes); "
        "--export writes every checkpoint as JSON Lines for safekeeping outside the database; "
        "--generate-key prints a new Ed25519 key pair for SIGNOFF_AUDIT_SIGNING_KEY."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument(
            "--export", metavar="FILE", help="Write all checkpoints to FILE ('-': stdout)."
        )
        action.add_argument("--generate-key", action="store_true", help="Print a new key pair.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["generate_key"]:
            private_pem, public_pem = generate_key_pair()
            self.stdout.write("# SIGNOFF_AUDIT_SIGNING_KEY (keep secret):")
            self.stdout.write(private_pem.strip())
            self.stdout.write("# SIGNOFF_AUDIT_VERIFY_KEY (give to auditors):")
            self.stdout.write(public_pem.strip())
            return
        if options["export"]:
            lines = [chain.canonical_json(c.as_dict()) + "\n" for c in audit_checkpoints()]
            if options["export"] == "-":
                self.stdout.write("".join(lines), ending="")
                return
            try:
                with open(options["export"], "w", encoding="utf-8") as out:
                    out.writelines(lines)
            except OSError as exc:
                raise CommandError(f"Cannot write {options['export']}: {exc.strerror}") from None
            self.stderr.write(f"Wrote {len(lines)} checkpoint(s) to {options['export']}.")
            return
        checkpoint = audit_checkpoint_write()
        if checkpoint is None:
            self.stdout.write("Nothing new to sign: the latest checkpoint covers the chain's head.")
        else:
            self.stdout.write(
                f"Signed checkpoint #{checkpoint.sequence} ({checkpoint.algorithm}, "
                f"{checkpoint.key_id}): {checkpoint.head_hash}"
            )
