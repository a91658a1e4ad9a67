"""Verify the audit trail: ``manage.py audit_verify [--file EXPORT] [--checkpoints FILE]``."""

import json
import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.export import ExportError, read_export
from audit.selectors import audit_chain_verify, audit_checkpoints
from audit.verification import Checkpoint, Report, verify_events


class Command(BaseCommand):
    help = (
        "Walk the audit chain and check every hash, link and sequence number, and agreement with "
        "signed checkpoints. Exits 0 when intact, 1 naming the first bad event otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            help="Verify an export (JSON Lines or CSV) instead of the database.",
        )
        parser.add_argument(
            "--checkpoints",
            help="Hold the chain to these signed checkpoints (JSON Lines, as written by "
            "audit_checkpoint --export). Without it, the database's own checkpoints are used.",
        )
        parser.add_argument(
            "--public-key",
            help="File with the Ed25519 public key (PEM) that signed the checkpoints.",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            help="Walk the database's chain in this many slices at once, one process and one "
            "database connection each (default 1; at most this machine's CPU cores, past which "
            "more processes only take more connections).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["jobs"] < 1:
            raise CommandError("--jobs must be at least 1.")
        if options["jobs"] > (cores := os.cpu_count() or 1):
            raise CommandError(f"--jobs must be at most {cores}, this machine's CPU cores.")
        public_key = _read(options["public_key"]) if options["public_key"] else ""
        checkpoints = _load_checkpoints(options["checkpoints"]) if options["checkpoints"] else None
        if options["file"]:
            report = self._verify_file(
                options["file"],
                audit_checkpoints() if checkpoints is None else checkpoints,
                public_key,
            )
        else:
            jobs = options["jobs"]
            self.stderr.write(f"Verifying the chain{f' in {jobs} slices' if jobs > 1 else ''} …")
            report = audit_chain_verify(
                checkpoints=checkpoints,
                public_key=public_key,
                jobs=jobs,
                progress=lambda done: self.stderr.write(f"  {done} events checked"),
            )
        self._report(report)

    def _verify_file(self, path: str, checkpoints: list[Checkpoint], public_key: str) -> Report:
        try:
            with open(path, encoding="utf-8", newline="") as stream:
                rows = read_export(stream)
                first = next(rows, None)
                if first is None:
                    raise CommandError(f"{path} holds no events.")
                return verify_events(
                    _chain(first, rows),
                    from_genesis=first["sequence"] == 1,
                    checkpoints=[c for c in checkpoints if c.sequence >= first["sequence"]],
                    public_key=public_key,
                    progress=lambda done: self.stderr.write(f"  {done} events checked"),
                )
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        except ExportError as exc:
            raise CommandError(f"{path} is not a Signoff audit export: {exc}") from None

    def _report(self, report: Report) -> None:
        rate = f"{report.events_per_second:,.0f}/s"
        speed = f"{report.events} events in {report.seconds:.2f} s ({rate})"
        for note in report.notes:
            self.stderr.write(note)
        if report.ok:
            span = (
                f"#{report.first_sequence} to #{report.last_sequence}" if report.events else "empty"
            )
            self.stdout.write(
                self.style.SUCCESS(
                    f"OK: the chain is intact ({span}, {report.checkpoints_checked} "
                    f"checkpoint(s) matched); {speed}."
                )
            )
            return
        problem = report.problem
        assert problem is not None
        where = f"FAILED at event #{problem.sequence} ({problem.kind})"
        self.stdout.write(self.style.ERROR(f"{where}: {problem.message}"))
        self.stderr.write(f"Checked {speed} before the first problem.")
        sys.exit(1)


def _chain(first: dict[str, Any], rest: Any) -> Any:
    yield first
    yield from rest


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from None


def _load_checkpoints(path: str) -> list[Checkpoint]:
    checkpoints = []
    for number, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            checkpoints.append(Checkpoint.from_mapping(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"{path} line {number} is not a checkpoint: {exc}") from None
    return checkpoints
