"""``audit_verify --jobs``: the chain walked in slices by several processes, on PostgreSQL."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from audit.selectors import audit_chain_verify
from audit.services import audit_checkpoint_write

# Committed rows: the processes read them over their own connections.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def alter(sql: str, params: list[str] | None = None) -> None:
    """Change history as a superuser could, past the append-only triggers."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)


def test_slices_walked_at_once_verify_the_whole_chain_with_its_checkpoints(record_events):
    record_events(30)
    audit_checkpoint_write()
    record_events(10)

    alone = audit_chain_verify()
    at_once = audit_chain_verify(jobs=3)

    assert at_once.ok, at_once.problem
    assert (at_once.events, at_once.first_sequence, at_once.last_sequence) == (40, 1, 40)
    assert (at_once.last_hash, at_once.checkpoints_checked) == (alone.last_hash, 1)


def test_the_first_problem_is_named_whichever_slice_finds_it(record_events):
    record_events(40)
    alter("UPDATE audit_auditevent SET actor_label = 'mallory' WHERE sequence = 33")
    alter("DELETE FROM audit_auditevent WHERE sequence = 35")

    problem = audit_chain_verify(jobs=4).problem

    assert problem == audit_chain_verify().problem
    assert (problem.sequence, problem.kind) == (33, "altered")


def test_a_gap_between_two_slices_is_found_by_joining_them(record_events):
    record_events(40)
    alter("DELETE FROM audit_auditevent WHERE sequence BETWEEN 20 AND 22")

    problem = audit_chain_verify(jobs=2).problem

    assert (problem.sequence, problem.kind) == (20, "gap")
    assert "#20 to #22 are missing" in problem.message


def test_an_event_numbered_below_the_first_is_read_by_the_first_slice(record_events):
    record_events(10)
    alter(
        "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, actor_label,"
        " action, subject_type, subject_id, capability, data, prev_hash, hash) VALUES"
        " (0, now(), 'system', '', 'policy', 'x', 'suggestion', 'x', '', '{}', %s, %s)",
        ["", "e" * 64],
    )

    problem = audit_chain_verify(jobs=2).problem

    assert problem == audit_chain_verify().problem
    assert problem.sequence == 0


def test_the_command_takes_jobs_and_refuses_fewer_than_one(record_events):
    record_events(12)
    out = StringIO()
    call_command("audit_verify", "--jobs", "2", stdout=out, stderr=StringIO())
    assert "OK: the chain is intact (#1 to #12" in out.getvalue()
    with pytest.raises(CommandError, match="--jobs must be at least 1"):
        call_command("audit_verify", "--jobs", "0", stdout=StringIO(), stderr=StringIO())
