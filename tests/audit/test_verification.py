"""The tamper suite: every way of changing history is caught, and the first bad event named."""

import pytest

from audit import chain
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import (
    audit_chain_head,
    audit_chain_verify,
    audit_checkpoints,
    audit_event_rows,
)
from audit.services import audit_checkpoint_write
from audit.verification import Report, verify_events, verify_in_slices, verify_slice

pytestmark = pytest.mark.django_db


def verify(*, with_checkpoints: bool = False, with_head: bool = True) -> Report:
    """The walk of the stored chain; and, for every way of cutting it into slices, a check
    that walking the slices apart and joining them finds the same (see ``sliced``)."""
    rows = list(audit_event_rows(AuditEvent.objects.order_by("sequence")))
    checkpoints = audit_checkpoints() if with_checkpoints else []
    head = audit_chain_head() if with_head else None
    report = verify_events(iter(rows), checkpoints=checkpoints, head=head)
    last = max((row["sequence"] for row in rows), default=0)
    for parts in range(2, last + 1):
        joined = sliced(rows, parts, checkpoints, head)
        assert joined.problem == report.problem, f"cut into {parts}"
        assert (joined.events, joined.last_sequence, joined.last_hash) == (
            report.events,
            report.last_sequence,
            report.last_hash,
        ), f"cut into {parts}"
        assert joined.checkpoints_checked == report.checkpoints_checked
    return report


def sliced(rows, parts, checkpoints, head) -> Report:
    """What ``audit_chain_verify(jobs=parts)`` does, in one process: the rows cut into
    slices of consecutive numbers, each walked on its own, the reports joined."""

    def walk(parts):
        return [
            verify_slice([row for row in rows if in_slice(row["sequence"], part)], part)
            for part in parts
        ]

    last = max(row["sequence"] for row in rows)
    return verify_in_slices(last, parts, walk, checkpoints=checkpoints, head=head)


def in_slice(sequence, part) -> bool:
    # As ``audit.selectors`` reads a slice: the first one also takes events numbered below 1.
    return (part.low == 1 or part.low <= sequence) and sequence <= part.high


def hash_of(sequence: int) -> str:
    return AuditEvent.objects.get(sequence=sequence).hash


def test_an_intact_chain_verifies(record_events):
    record_events(10)
    audit_checkpoint_write()
    report = verify(with_checkpoints=True)
    assert report.ok, report.problem
    assert (report.events, report.first_sequence, report.last_sequence) == (10, 1, 10)
    assert report.checkpoints_checked == 1
    assert report.last_hash == hash_of(10)


def test_an_edited_field_is_caught_at_its_event(record_events, tamper):
    record_events(10)
    tamper("UPDATE audit_auditevent SET actor_label = 'mallory' WHERE sequence = 4")
    problem = verify().problem
    assert (problem.sequence, problem.kind) == (4, "altered")


def test_edited_data_is_caught_at_its_event(record_events, tamper):
    record_events(10)
    tamper("""UPDATE audit_auditevent SET data = '{"version": 99}' WHERE sequence = 6""")
    assert (verify().problem.sequence, verify().problem.kind) == (6, "altered")


def test_a_deleted_event_is_caught_as_a_gap(record_events, tamper):
    record_events(10)
    tamper("DELETE FROM audit_auditevent WHERE sequence = 4")
    problem = verify().problem
    assert (problem.sequence, problem.kind) == (4, "gap")
    assert "#4 is missing" in problem.message


def test_two_swapped_events_are_caught_as_reordered(record_events, tamper):
    record_events(10)
    tamper("UPDATE audit_auditevent SET sequence = 1000 WHERE sequence = 4")
    tamper("UPDATE audit_auditevent SET sequence = 4 WHERE sequence = 5")
    tamper("UPDATE audit_auditevent SET sequence = 5 WHERE sequence = 1000")
    problem = verify().problem
    assert (problem.sequence, problem.kind) == (4, "reordered")
    assert "recorded as #5" in problem.message


def test_a_forged_event_with_a_made_up_hash_is_caught(record_events, tamper):
    record_events(10)
    tamper("UPDATE audit_auditevent SET sequence = sequence + 1000 WHERE sequence >= 6")
    tamper("UPDATE audit_auditevent SET sequence = sequence - 999 WHERE sequence >= 1006")
    tamper(
        "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, actor_label,"
        " action, subject_type, subject_id, capability, data, prev_hash, hash) VALUES"
        " (6, '2026-01-01 00:00:00+00', 'user', '1', 'mallory', 'decision.recorded',"
        " 'suggestion', 'x', '', '{}', %s, %s)",
        [hash_of(5), "f" * 64],
    )
    problem = verify().problem
    assert (problem.sequence, problem.kind) == (6, "altered")


def test_a_carefully_forged_event_breaks_the_link_of_the_next(record_events, tamper):
    """A forger who hashes the fake event correctly still cannot re-link the real one after it."""
    record_events(10)
    tamper("UPDATE audit_auditevent SET sequence = sequence + 1000 WHERE sequence >= 6")
    tamper("UPDATE audit_auditevent SET sequence = sequence - 999 WHERE sequence >= 1006")
    forged = {
        "sequence": 6,
        "occurred_at": "2026-01-01T00:00:00.000000Z",
        "actor_type": "user",
        "actor_id": "1",
        "actor_label": "mallory",
        "action": "decision.recorded",
        "subject_type": "suggestion",
        "subject_id": "x",
        "capability": "",
        "data": {},
    }
    tamper(
        "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, actor_label,"
        " action, subject_type, subject_id, capability, data, prev_hash, hash) VALUES"
        " (6, '2026-01-01 00:00:00+00', 'user', '1', 'mallory', 'decision.recorded',"
        " 'suggestion', 'x', '', '{}', %s, %s)",
        [hash_of(5), chain.event_hash(forged, hash_of(5))],
    )
    problem = verify().problem
    assert problem.sequence == 7
    assert problem.kind == "reordered"  # the real #6, pushed to #7


def test_an_event_rehashed_in_place_breaks_the_link_of_the_next(record_events, tamper):
    """Edited and hashed again, an event verifies on its own; the next one's link does not."""
    record_events(10)
    (row,) = audit_event_rows(AuditEvent.objects.filter(sequence=6))
    edited = {**row, "actor_label": "mallory"}
    tamper(
        "UPDATE audit_auditevent SET actor_label = 'mallory', hash = %s WHERE sequence = 6",
        [chain.event_hash(edited, row["prev_hash"])],
    )
    problem = verify(with_head=False).problem
    assert (problem.sequence, problem.kind) == (7, "broken_link")


def test_an_event_numbered_below_the_first_is_caught(record_events, tamper):
    record_events(5)
    tamper(
        "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, actor_label,"
        " action, subject_type, subject_id, capability, data, prev_hash, hash) VALUES"
        " (0, '2026-01-01 00:00:00+00', 'system', '', 'policy', 'decision.recorded',"
        " 'suggestion', 'x', '', '{}', %s, %s)",
        [chain.GENESIS_HASH, "e" * 64],
    )
    problem = verify().problem
    assert (problem.sequence, problem.kind) == (0, "reordered")
    assert audit_chain_verify().problem == problem  # as audit_verify reads the database


def test_an_event_appended_behind_the_heads_back_is_caught(record_events, tamper):
    record_events(5)
    forged = {
        "sequence": 6,
        "occurred_at": "2026-01-01T00:00:00.000000Z",
        "actor_type": "system",
        "actor_id": "",
        "actor_label": "policy",
        "action": "decision.recorded",
        "subject_type": "suggestion",
        "subject_id": "x",
        "capability": "",
        "data": {},
    }
    tamper(
        "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, actor_label,"
        " action, subject_type, subject_id, capability, data, prev_hash, hash) VALUES"
        " (6, '2026-01-01 00:00:00+00', 'system', '', 'policy', 'decision.recorded',"
        " 'suggestion', 'x', '', '{}', %s, %s)",
        [hash_of(5), chain.event_hash(forged, hash_of(5))],
    )
    problem = verify().problem
    assert (problem.sequence, problem.kind) == (5, "head_mismatch")


def test_a_cut_tail_is_caught_by_the_head_and_by_checkpoints(record_events, tamper):
    record_events(10)
    audit_checkpoint_write()
    tamper("DELETE FROM audit_auditevent WHERE sequence > 7")
    head_problem = verify().problem
    assert (head_problem.sequence, head_problem.kind) == (8, "head_mismatch")

    # The forger also moves the head back: the chain alone now looks whole …
    AuditChainHead.objects.filter(pk=1).update(sequence=7, hash=hash_of(7))
    assert verify().ok
    # … but the signed checkpoint still covers event #10.
    problem = verify(with_checkpoints=True).problem
    assert (problem.sequence, problem.kind) == (8, "truncated")
    assert "#10" in problem.message


def test_a_history_rewritten_after_event_k_is_caught_by_checkpoints(record_events, tamper):
    events = record_events(3)
    audit_checkpoint_write()
    events += record_events(3)
    audit_checkpoint_write()
    events += record_events(3)
    audit_checkpoint_write()
    events += record_events(1)

    # Rewrite #7 onwards with new content and correct hashes, then move the head along.
    previous = hash_of(6)
    for sequence in range(7, 11):
        row = AuditEvent.objects.filter(sequence=sequence).values(*chain.EVENT_FIELDS).get()
        row["data"] = {**row["data"], "auto_approve_at": "0.1"}
        row["prev_hash"] = previous
        digest = chain.event_hash(row, previous)
        tamper(
            "UPDATE audit_auditevent SET data = %s, prev_hash = %s, hash = %s WHERE sequence = %s",
            [chain.canonical_json(row["data"]), previous, digest, sequence],
        )
        previous = digest
    AuditChainHead.objects.filter(pk=1).update(sequence=10, hash=previous)

    assert verify().ok  # the chain alone cannot tell
    problem = verify(with_checkpoints=True).problem
    assert (problem.sequence, problem.kind) == (7, "rewritten")
    assert "#7 to #9" in problem.message


def test_a_checkpoint_with_a_forged_signature_is_refused(record_events, tamper):
    record_events(3)
    checkpoint = audit_checkpoint_write()
    tamper(
        "UPDATE audit_auditcheckpoint SET signature = %s WHERE sequence = %s",
        ["00" * 32, checkpoint.sequence],
    )
    problem = verify(with_checkpoints=True).problem
    assert (problem.sequence, problem.kind) == (3, "bad_checkpoint")


def test_a_slice_of_the_chain_verifies_from_its_first_link(record_events):
    record_events(10)
    rows = audit_event_rows(AuditEvent.objects.filter(sequence__gte=4).order_by("sequence"))
    report = verify_events(rows, from_genesis=False)
    assert report.ok and (report.first_sequence, report.events) == (4, 7)


def test_progress_is_reported_while_walking(record_events):
    record_events(10)
    seen = []
    verify_events(
        audit_event_rows(AuditEvent.objects.order_by("sequence")),
        progress=seen.append,
        progress_every=4,
    )
    assert seen == [4, 8]
