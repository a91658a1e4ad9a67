"""Real workers in their own processes, against the test database: an approval is executed by
an RQ worker and by a Celery worker; a worker killed with SIGKILL in the middle of a handler,
or a web process killed between its commit and the enqueue, still ends with the action done
exactly once. Also the wiring around them: the periodic schedule and ``outbox_sweep``.

The processes, and the queues that keep test runs apart, come from tests/processes.py.
"""

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from audit.models import AuditAction, AuditEvent
from capabilities.models import Capability
from reviews.models import ExecutionStatus, OutboxItem, OutboxKind, Suggestion
from reviews.services import decision_record
from tests.factories import ApiClientFactory, CapabilityFactory, submit
from tests.processes import (
    PROJECT,
    RQ,
    WAIT_SECONDS,
    Backend,
    Celery,
    Processes,
    wait_until,
)
from tests.worker_handlers import CAPABILITY as SLOW_CAPABILITY
from tests.worker_handlers import EFFECT_TABLE

workers = pytest.mark.django_db(transaction=True)  # workers see only what is committed


@pytest.fixture
def worker_processes(transactional_db: Any, tmp_path: Path) -> Iterator[Processes]:
    with Processes.within(tmp_path) as started:
        yield started


BACKENDS = [
    pytest.param(RQ, marks=[pytest.mark.postgres, pytest.mark.redis], id="rq"),
    pytest.param(Celery, marks=[pytest.mark.postgres, pytest.mark.rabbitmq], id="celery"),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, worker_processes: Processes) -> Iterator[Backend]:
    chosen: Backend = request.param(worker_processes)
    try:
        yield chosen
    finally:
        worker_processes.stop_all()
        chosen.cleanup()


# --- The outcome of one approval ------------------------------------------------------------


def executed(suggestion: Suggestion) -> bool:
    """Its handler has succeeded and its outbox work is done."""
    suggestion.refresh_from_db()
    work = OutboxItem.objects.filter(kind=OutboxKind.EXECUTE, ref=str(suggestion.pk)).get()
    return suggestion.execution_status == ExecutionStatus.SUCCEEDED and work.done_at is not None


def execution_events(suggestion: Suggestion) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            subject_id=str(suggestion.pk),
            action__in=[AuditAction.EXECUTION_SUCCEEDED, AuditAction.EXECUTION_FAILED],
        )
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def effects_of(suggestion: Suggestion) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {EFFECT_TABLE} WHERE suggestion_id = %s",  # noqa: S608
            [str(suggestion.pk)],
        )
        return int(cursor.fetchone()[0])


def sweep_outbox() -> str:
    """``manage.py outbox_sweep``, taking every open item as stale."""
    out = io.StringIO()
    with override_settings(SIGNOFF_OUTBOX_STALE_SECONDS=0):
        call_command("outbox_sweep", stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def slow_capability(worker_processes: Processes) -> Iterator[Capability]:
    """``tests.slow_effect``, whose handler (tests/worker_handlers.py) writes one row into
    ``EFFECT_TABLE`` per run, then holds while the test wants it to."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {EFFECT_TABLE} (suggestion_id text NOT NULL, pid integer NOT NULL)"
        )
    try:
        yield cast(Capability, CapabilityFactory(key=SLOW_CAPABILITY))
    finally:
        worker_processes.stop_all()  # no worker may still hold the table
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {EFFECT_TABLE}")


# --- Tests ----------------------------------------------------------------------------------


@workers
def test_an_approval_is_executed_once_by_a_real_worker(
    backend, capability, api_client_row, reviewer
):
    backend.start_worker()
    suggestion = submit(api_client_row, capability)
    with backend.enqueueing():
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")

    wait_until(lambda: executed(suggestion), "the worker to execute it", backend.processes)
    assert suggestion.execution_attempts == 1
    assert execution_events(suggestion) == ["execution.succeeded"]
    assert OutboxItem.objects.get(kind=OutboxKind.EXECUTE).enqueue_count == 1


@workers
def test_a_worker_killed_in_the_middle_of_a_handler_leaves_the_action_done_once(
    backend, slow_capability, make_reviewer
):
    client = ApiClientFactory.create(capabilities=[slow_capability])
    reviewer = make_reviewer(slow_capability)
    signals = backend.processes.signal_dir
    (signals / "hold").touch()
    first = backend.start_worker()
    suggestion = submit(client, slow_capability)
    with backend.enqueueing():
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")

    announced = signals / f"{suggestion.pk}.pid"
    wait_until(announced.exists, "the handler to start", backend.processes)
    os.kill(int(announced.read_text()), signal.SIGKILL)  # the process running the handler
    first.kill()  # and the worker around it (for RQ, the parent of its work horse)
    announced.unlink()
    (signals / "hold").unlink()
    # Its transaction died with it: no effect, no success recorded.
    assert effects_of(suggestion) == 0
    suggestion.refresh_from_db()
    assert suggestion.execution_status != ExecutionStatus.SUCCEEDED

    backend.start_worker()
    with backend.enqueueing():
        sweep_outbox()  # RQ lost the job with its worker; Celery's broker also hands it back
    wait_until(lambda: executed(suggestion), "a new worker to execute it", backend.processes)

    assert effects_of(suggestion) == 1
    assert suggestion.execution_attempts == 1
    assert execution_events(suggestion) == ["execution.succeeded"]


@workers
def test_work_of_a_web_process_killed_between_commit_and_enqueue_reaches_a_worker(
    backend, capability, api_client_row, reviewer
):
    suggestion = submit(api_client_row, capability)
    # The web process: decides, commits, and dies where it would enqueue the job.
    web = subprocess.run(
        [
            sys.executable,
            "-c",
            WEB_PROCESS_DYING_AFTER_COMMIT,
            str(reviewer.pk),
            str(suggestion.pk),
        ],
        cwd=PROJECT,
        env=backend.env(),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert web.returncode == 70, web.stderr
    suggestion.refresh_from_db()
    work = OutboxItem.objects.get(kind=OutboxKind.EXECUTE)
    assert suggestion.status == "approved" and work.enqueued_at is None
    assert suggestion.execution_status == ExecutionStatus.NOT_STARTED

    backend.start_worker()
    with backend.enqueueing():
        assert sweep_outbox() == "1 outbox item(s) enqueued."
    wait_until(lambda: executed(suggestion), "the worker to execute it", backend.processes)
    assert execution_events(suggestion) == ["execution.succeeded"]


WEB_PROCESS_DYING_AFTER_COMMIT = """
import os, sys
import django
django.setup()
from django.contrib.auth import get_user_model
import reviews.services.outbox
from reviews.services import decision_record

def die_instead_of_enqueueing(**kwargs):
    os._exit(70)

reviews.services.outbox.outbox_relay = die_instead_of_enqueueing
reviewer = get_user_model().objects.get(pk=int(sys.argv[1]))
decision_record(user=reviewer, suggestion_id=sys.argv[2], outcome="approved")
"""


# --- Wiring ---------------------------------------------------------------------------------


def settings_with(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    """Evaluate ``expression`` on the production settings in a process with only ``env``."""
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings';"
        f"django.setup(); from django.conf import settings; print({expression})"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "k", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "backend", "rq_app"),
    [
        ({}, "django.tasks.backends.immediate.ImmediateBackend", False),
        (
            {"SIGNOFF_WORKERS": "rq", "REDIS_URL": "redis://redis.internal:6379/0"},
            "config.task_backends.rq.RQBackend",
            True,
        ),
        (
            {"SIGNOFF_WORKERS": "celery", "CELERY_BROKER_URL": "amqp://u:p@mq.internal:5672//"},
            "django_tasks_celery.CeleryBackend",
            False,
        ),
    ],
    ids=["immediate", "rq", "celery"],
)
def test_signoff_workers_picks_the_tasks_backend(env, backend, rq_app):
    result = settings_with(
        env, "settings.TASKS['default']['BACKEND'], 'django_rq' in settings.INSTALLED_APPS"
    )
    assert result.stdout.strip() == f"{backend} {rq_app}", result.stderr


@pytest.mark.parametrize(
    ("env", "refusal"),
    [
        ({"SIGNOFF_WORKERS": "sometimes"}, "SIGNOFF_WORKERS must be one of immediate, rq, celery"),
        ({"SIGNOFF_WORKERS": "rq"}, "SIGNOFF_WORKERS=rq needs REDIS_URL"),
        ({"SIGNOFF_WORKERS": "celery"}, "SIGNOFF_WORKERS=celery needs CELERY_BROKER_URL"),
    ],
    ids=["unknown", "rq-without-redis", "celery-without-broker"],
)
def test_workers_without_what_they_need_refuse_to_start(env, refusal):
    result = settings_with(env, "settings.TASKS")
    assert result.returncode != 0
    assert refusal in result.stderr


def test_every_periodic_task_is_a_task_and_both_schedulers_take_it():
    from django.tasks import Task
    from django.utils.module_loading import import_string
    from django_rq.cron import DjangoCronScheduler

    from config.celery import app
    from config.task_backends.periodic import periodic_tasks

    schedule = periodic_tasks()
    assert schedule["reviews.tasks.sweep_outbox"] == 60
    assert schedule["reviews.tasks.sweep_escalations"] == 60
    assert (
        schedule["audit.tasks.write_checkpoint"] == settings.SIGNOFF_AUDIT_CHECKPOINT_MINUTES * 60
    )
    for module_path in schedule:
        assert isinstance(import_string(module_path), Task), module_path

    beat = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert beat == {path: float(seconds) for path, seconds in schedule.items()}

    with override_settings(
        TASKS={
            "default": {
                "BACKEND": "config.task_backends.rq.RQBackend",
                "OPTIONS": {"QUEUE_NAMES": {"default": "signoff"}},
            }
        },
        RQ_QUEUES={"signoff": {"URL": "redis://127.0.0.1:6379/7"}},
    ):
        cron = DjangoCronScheduler()
        cron.load_config_from_file("config.task_backends.rq_cron")
    jobs = {job.name: job for job in cron.get_jobs()}
    assert {name: job.interval for name, job in jobs.items()} == schedule
    sweep = jobs["reviews.tasks.sweep_outbox"]
    assert (sweep.func_name, sweep.queue_name) == ("config.task_backends.rq.run_task", "signoff")
    assert sweep.args == ("reviews.tasks.sweep_outbox", [], {}, "default")


@pytest.mark.django_db
def test_outbox_sweep_command_enqueues_what_is_due_and_says_how_many(
    capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    suggestion = submit(api_client_row, capability)
    with django_capture_on_commit_callbacks(execute=False):  # the process dies after commit
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")

    out = io.StringIO()
    call_command("outbox_sweep", stdout=out)  # the immediate backend runs the job at once
    assert out.getvalue() == "1 outbox item(s) enqueued.\n"
    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED
    out = io.StringIO()
    call_command("outbox_sweep", stdout=out)
    assert out.getvalue() == "0 outbox item(s) enqueued.\n"
