"""Signed checkpoints: when they are written, how they are signed, and that they stay put."""

import datetime as dt
import json

import pytest
from django.db import DatabaseError, connection, transaction

from audit import signing
from audit.models import AuditChainHead, AuditCheckpoint
from audit.services import audit_checkpoint_write

pytestmark = pytest.mark.django_db


def test_a_checkpoint_is_requested_every_n_events(
    record_events, settings, django_capture_on_commit_callbacks
):
    settings.SIGNOFF_AUDIT_CHECKPOINT_EVERY = 3
    record_events(1)  # starts the clock on a new chain
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record_events(2)  # #2 and #3
    assert not callbacks
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record_events(2)  # #4 and #5
    assert len(callbacks) == 1  # one request, however many events cross the line
    checkpoint = AuditCheckpoint.objects.get()
    head = AuditChainHead.objects.get()
    assert (checkpoint.sequence, checkpoint.head_hash) == (head.sequence, head.hash)
    assert head.checkpoint_requested_sequence == 4
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record_events(1)  # #6
    assert not callbacks
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record_events(1)  # #7: three after the last request
    assert len(callbacks) == 1


def test_a_checkpoint_is_requested_after_the_interval_even_with_few_events(
    record_events, settings, django_capture_on_commit_callbacks
):
    settings.SIGNOFF_AUDIT_CHECKPOINT_MINUTES = 30
    record_events(1)
    AuditChainHead.objects.update(
        checkpoint_requested_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31)
    )
    with django_capture_on_commit_callbacks(execute=True):
        record_events(1)
    assert AuditCheckpoint.objects.get().sequence == 2


def test_nothing_is_signed_twice_for_the_same_head(record_events):
    assert audit_checkpoint_write() is None  # an empty chain
    record_events(2)
    assert audit_checkpoint_write().sequence == 2
    assert audit_checkpoint_write() is None
    assert AuditCheckpoint.objects.count() == 1


def test_without_a_key_pair_checkpoints_are_hmac_signed(record_events):
    record_events(1)
    checkpoint = audit_checkpoint_write()
    assert checkpoint.algorithm == "hmac-sha256"
    message = signing.checkpoint_message(
        sequence=1,
        head_hash=checkpoint.head_hash,
        signed_at=checkpoint.signed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )
    signature = signing.Signature(checkpoint.algorithm, checkpoint.key_id, checkpoint.signature)
    assert signing.verify(message, signature) is None
    assert signing.verify(message + b" ", signature) == "the HMAC does not match"


def test_ed25519_checkpoints_verify_with_the_public_key_alone(record_events, settings):
    private_pem, public_pem = signing.generate_key_pair()
    settings.SIGNOFF_AUDIT_SIGNING_KEY = private_pem
    record_events(1)
    checkpoint = audit_checkpoint_write()
    assert checkpoint.algorithm == "ed25519" and checkpoint.key_id.startswith("ed25519:")
    settings.SIGNOFF_AUDIT_SIGNING_KEY = ""
    settings.SIGNOFF_AUDIT_VERIFY_KEY = public_pem
    message = signing.checkpoint_message(
        sequence=1,
        head_hash=checkpoint.head_hash,
        signed_at=checkpoint.signed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )
    signature = signing.Signature(checkpoint.algorithm, checkpoint.key_id, checkpoint.signature)
    assert signing.verify(message, signature) is None
    settings.SIGNOFF_AUDIT_VERIFY_KEY = ""
    assert "no Ed25519 public key" in signing.verify(message, signature)


def test_each_checkpoint_is_appended_to_the_configured_file(
    record_events, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.SIGNOFF_AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    record_events(2)
    with django_capture_on_commit_callbacks(execute=True):
        audit_checkpoint_write()
    record_events(1)
    with django_capture_on_commit_callbacks(execute=True):
        audit_checkpoint_write()
    written = (tmp_path / "checkpoints.jsonl").read_text().splitlines()
    lines = [json.loads(line) for line in written]
    assert [line["sequence"] for line in lines] == [2, 3]
    assert set(lines[0]) == {
        "sequence", "head_hash", "signed_at", "algorithm", "key_id", "signature"
    }  # fmt: skip


def test_checkpoints_cannot_be_changed_or_deleted(record_events):
    record_events(1)
    checkpoint = audit_checkpoint_write()
    with pytest.raises(TypeError):
        checkpoint.save()
    with pytest.raises(TypeError):
        AuditCheckpoint.objects.all().delete()
    for sql in (
        "UPDATE audit_auditcheckpoint SET sequence = 9",
        "DELETE FROM audit_auditcheckpoint",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["audit_auditevent", "audit_auditcheckpoint"])
def test_postgresql_refuses_truncate(record_events, table):
    record_events(1)
    audit_checkpoint_write()
    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE refused"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"TRUNCATE {table}")
