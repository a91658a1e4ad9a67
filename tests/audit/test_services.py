import pytest
from django.db import DatabaseError, connection, transaction

from audit import chain
from audit.models import AuditAction, AuditChainHead, AuditEvent
from audit.services import Actor, Subject, audit_event_record

pytestmark = pytest.mark.django_db


def record(n: int = 1) -> list[AuditEvent]:
    with transaction.atomic():
        return [
            audit_event_record(
                actor=Actor.system("tests"),
                action=AuditAction.POLICY_PUBLISHED,
                subject=Subject("policy", str(i)),
                capability="refunds.issue",
                data={"version": i, "note": "café ☕"},
            )
            for i in range(n)
        ]


def test_events_are_numbered_contiguously_and_chained():
    start = AuditChainHead.objects.get().sequence
    events = record(3)
    assert [e.sequence for e in events] == [start + 1, start + 2, start + 3]
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    head = AuditChainHead.objects.get()
    assert (head.sequence, head.hash) == (events[2].sequence, events[2].hash)


def test_stored_event_hash_recomputes_from_its_stored_fields():
    (event,) = record()
    stored = AuditEvent.objects.get(pk=event.pk)
    fields = {
        name: getattr(stored, name)
        for name in (
            "sequence",
            "occurred_at",
            "actor_type",
            "actor_id",
            "actor_label",
            "action",
            "subject_type",
            "subject_id",
            "capability",
            "data",
        )
    }
    assert chain.event_hash(fields, stored.prev_hash) == stored.hash


def test_a_rolled_back_change_leaves_no_event_and_no_gap():
    before = AuditChainHead.objects.get().sequence
    with pytest.raises(RuntimeError), transaction.atomic():
        record()
        raise RuntimeError("the change failed")
    assert AuditChainHead.objects.get().sequence == before
    (event,) = record()
    assert event.sequence == before + 1


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused():
    with pytest.raises(transaction.TransactionManagementError):
        audit_event_record(
            actor=Actor.system(),
            action=AuditAction.POLICY_PUBLISHED,
            subject=Subject("policy", "1"),
        )
    assert not AuditEvent.objects.exists()


def test_orm_refuses_to_change_or_delete_events():
    (event,) = record()
    event.action = AuditAction.DECISION_RECORDED
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == AuditAction.POLICY_PUBLISHED


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'forged'",
        "UPDATE audit_auditevent SET data = '{}' WHERE sequence = 1",
        "DELETE FROM audit_auditevent",
    ],
)
def test_database_refuses_raw_update_and_delete(sql):
    (event,) = record()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.hash) == (event.action, event.hash)


def test_awkward_text_hashes_the_same_in_the_database_and_in_python():
    """On PostgreSQL the hash is computed by the database; it must match the documented one."""
    awkward = 'Zoë "quoted" \\ back\nslash\t☕ 🚀 \u2028 \x01'
    with transaction.atomic():
        event = audit_event_record(
            actor=Actor("user", "42", awkward),
            action=AuditAction.DECISION_RECORDED,
            subject=Subject("suggestion", awkward),
            capability=awkward,
            data={awkward: [awkward, 1, None, True, {"n": 0.5}]},
        )
    stored = AuditEvent.objects.get(pk=event.pk)
    fields = {name: getattr(stored, name) for name in chain.EVENT_FIELDS}
    assert chain.event_hash(fields, stored.prev_hash) == stored.hash == event.hash
    assert stored.data == {awkward: [awkward, 1, None, True, {"n": "0.5"}]}


@pytest.mark.postgres
def test_the_suggestion_table_is_vacuumed_after_one_percent_of_its_rows_change():
    """The queue's index-only scans stay index-only as claims and decisions change pages
    (``reviews/migrations/0010``)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'reviews_suggestion'")
        (options,) = cursor.fetchone()
    assert "autovacuum_vacuum_scale_factor=0.01" in options
    assert "autovacuum_vacuum_insert_scale_factor=0.01" in options


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["audit_auditevent", "reviews_suggestion"])
def test_the_largest_tables_carry_no_text_pattern_indexes(table):
    """Every insert pays for every index; nothing queries these tables with LIKE 'prefix%',
    so the varchar_pattern_ops twins PostgreSQL gets for indexed text columns are dropped."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [table, "%pattern_ops%"],
        )
        assert cursor.fetchall() == []


@pytest.mark.postgres
def test_an_events_hash_has_no_index_of_its_own():
    """Hashes are random, so an index on them takes every append at a random place; nothing
    looks events up by hash (``audit/migrations/0011``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'audit_auditevent' "
            "AND indexdef LIKE %s",
            ["%(hash)%"],
        )
        assert cursor.fetchall() == []
