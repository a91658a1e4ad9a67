"""audit_verify, audit_export and audit_checkpoint, as an operator runs them."""

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent

pytestmark = pytest.mark.django_db

STANDALONE = Path(__file__).resolve().parents[2] / "audit" / "verify_export.py"


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def standalone(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STANDALONE), str(path)], capture_output=True, text=True, timeout=60
    )


def test_verify_reports_an_intact_chain_with_its_speed(record_events):
    record_events(12)
    out, err = run("audit_verify")
    assert "OK: the chain is intact (#1 to #12" in out
    assert re.search(r"12 events in [\d.]+ s \([\d,]+/s\)", out)
    assert "Verifying the chain" in err


def test_verify_refuses_more_jobs_than_cores_before_reading_anything():
    """Each job is a process and a database connection; past the cores they only take more."""
    too_many = str((os.cpu_count() or 1) + 1)
    with pytest.raises(CommandError, match="--jobs must be at most"):
        call_command("audit_verify", "--jobs", too_many, stdout=StringIO(), stderr=StringIO())


def test_verify_exits_non_zero_naming_the_first_bad_event(record_events, tamper):
    record_events(6)
    tamper("UPDATE audit_auditevent SET action = 'decision.recorded' WHERE sequence = 3")
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("audit_verify", stdout=out, stderr=StringIO())
    assert exit_.value.code == 1
    assert "FAILED at event #3 (altered)" in out.getvalue()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_verifies_on_its_own_and_a_one_byte_change_fails(record_events, tmp_path, fmt):
    record_events(8)
    export = tmp_path / f"trail.{fmt}"
    _out, err = run("audit_export", "--format", fmt, "--output", str(export))
    assert "Wrote" in err
    assert "OK" in run("audit_verify", "--file", str(export))[0]
    assert standalone(export).returncode == 0, standalone(export).stdout

    text = export.read_text()
    assert text.count("maya") == 8
    export.write_text(text.replace("change 4", "change 5", 1))
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("audit_verify", "--file", str(export), stdout=out, stderr=StringIO())
    assert "FAILED at event #5 (altered)" in out.getvalue()
    result = standalone(export)
    assert result.returncode == 1
    assert "event #5: its content does not match its hash" in result.stdout


def test_an_export_of_a_time_range_verifies_from_its_first_event(record_events, tmp_path):
    record_events(5)
    later = AuditEvent.objects.get(sequence=3).occurred_at
    export = tmp_path / "slice.jsonl"
    run("audit_export", "--since", later.isoformat(), "--output", str(export))
    assert export.read_text().count("\n") == 3
    assert "OK: the chain is intact (#3 to #5" in run("audit_verify", "--file", str(export))[0]
    assert standalone(export).returncode == 0


def test_export_to_stdout_streams_json_lines(record_events, capsys):
    record_events(2)
    call_command("audit_export")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith('{"action":"policy.published"')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since must be an ISO 8601"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "--since must be before --until"),
        (["--output", "/nonexistent/dir/x.jsonl"], "Cannot write"),
    ],
)
def test_export_refuses_bad_options_clearly(record_events, args, message):
    record_events(1)
    with pytest.raises(CommandError, match=message):
        run("audit_export", *args)


def test_verify_refuses_a_file_that_is_not_an_export(tmp_path):
    bogus = tmp_path / "notes.csv"
    bogus.write_text("a,b\n1,2\n")
    with pytest.raises(CommandError, match="not a Signoff audit export"):
        run("audit_verify", "--file", str(bogus))
    with pytest.raises(CommandError, match="Cannot read"):
        run("audit_verify", "--file", str(tmp_path / "missing.jsonl"))


def test_checkpoints_exported_to_a_file_catch_a_cut_tail(record_events, tamper, tmp_path):
    record_events(6)
    out, _err = run("audit_checkpoint")
    assert out.startswith("Signed checkpoint #6")
    assert "Nothing new to sign" in run("audit_checkpoint")[0]
    saved = tmp_path / "checkpoints.jsonl"
    run("audit_checkpoint", "--export", str(saved))
    assert saved.read_text().count("\n") == 1

    tamper("DELETE FROM audit_auditevent WHERE sequence > 4")
    tamper("DELETE FROM audit_auditcheckpoint")
    last = AuditEvent.objects.get(sequence=4).hash
    AuditChainHead.objects.filter(pk=1).update(sequence=4, hash=last)
    assert "OK" in run("audit_verify")[0]  # the database alone no longer knows

    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("audit_verify", "--checkpoints", str(saved), stdout=out, stderr=StringIO())
    assert "FAILED at event #5 (truncated)" in out.getvalue()


def test_a_generated_key_pair_signs_checkpoints_anyone_can_check(record_events, settings, tmp_path):
    out, _err = run("audit_checkpoint", "--generate-key")
    private = out.split("# SIGNOFF_AUDIT_VERIFY_KEY (give to auditors):")[0]
    private = private.split("(keep secret):")[1].strip()
    public = out.split("(give to auditors):")[1].strip()
    settings.SIGNOFF_AUDIT_SIGNING_KEY = private
    record_events(3)
    run("audit_checkpoint")
    assert AuditCheckpoint.objects.get().algorithm == "ed25519"

    # An auditor holds only the public key.
    settings.SIGNOFF_AUDIT_SIGNING_KEY = ""
    key_file = tmp_path / "signoff-audit.pub"
    key_file.write_text(public)
    assert "OK" in run("audit_verify", "--public-key", str(key_file))[0]
    other = tmp_path / "other.pub"
    other.write_text(run("audit_checkpoint", "--generate-key")[0].split("(give to auditors):")[1])
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("audit_verify", "--public-key", str(other), stdout=out, stderr=StringIO())
    assert "(bad_checkpoint)" in out.getvalue()


def test_grants_are_for_postgresql_roles_only(vendor):
    if vendor == "postgresql":
        with pytest.raises(CommandError, match="is a superuser"):
            run("audit_db_grants", "postgres")
        with pytest.raises(CommandError, match="There is no role"):
            run("audit_db_grants", "nobody_by_that_name")
    else:
        with pytest.raises(CommandError, match="apply to PostgreSQL"):
            run("audit_db_grants", "signoff_app")
