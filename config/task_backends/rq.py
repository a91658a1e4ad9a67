"""Django's tasks framework on RQ: ``enqueue`` puts a job on an RQ queue in Redis, and an RQ
worker (``manage.py rqworker``, from django-rq) runs the task.

Why a backend of our own: django-rq 4.2 ships none for ``django.tasks``, and django-tasks-rq
builds on the ``django_tasks`` backport, whose results and signals are the backport's classes,
not Django's. This one is small because RQ does the queueing; it only carries a task by its
import path and runs it in the worker the way Django's immediate backend runs it in-process
(the same ``task_started`` / ``task_finished`` signals, the same ``TaskContext``).

Every job is ``run_task(module_path, args, kwargs, backend_alias)``: the worker imports the
``@task`` by its path, so what a worker may run is exactly what is decorated with ``@task``.

Settings (see ``config/settings.py``): ``RQ_QUEUES`` (django-rq's, naming each RQ queue and its
Redis), and in ``TASKS`` ``OPTIONS["QUEUE_NAMES"]``, which maps a task's ``queue_name`` to the
RQ queue that carries it (unmapped names are used as they are).
"""

from __future__ import annotations

import datetime as dt
import json
from traceback import format_exception
from typing import Any

import django_rq
from django.core import checks
from django.db import close_old_connections
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.json import normalize_json
from django.utils.module_loading import import_string
from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.results import Result

RUN_TASK = "config.task_backends.rq.run_task"

_STATUS = {
    JobStatus.QUEUED: TaskResultStatus.READY,
    JobStatus.DEFERRED: TaskResultStatus.READY,
    JobStatus.SCHEDULED: TaskResultStatus.READY,
    JobStatus.CREATED: TaskResultStatus.READY,
    JobStatus.STARTED: TaskResultStatus.RUNNING,
    JobStatus.FINISHED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.STOPPED: TaskResultStatus.FAILED,
    JobStatus.CANCELED: TaskResultStatus.FAILED,
}


class RQBackend(BaseTaskBackend):
    """Enqueue ``django.tasks`` tasks on RQ queues (django-rq's ``RQ_QUEUES``)."""

    supports_defer = True  # RQ's scheduled jobs: run workers with --with-scheduler
    supports_async_task = True  # run through Task.call, as the immediate backend does
    supports_get_result = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self._rq_queues: dict[str, Queue] = {}

    def rq_queue_name(self, queue_name: str) -> str:
        """The RQ queue that carries tasks of ``queue_name``."""
        return str(self.options.get("QUEUE_NAMES", {}).get(queue_name, queue_name))

    def rq_queue(self, queue_name: str) -> Queue:
        # Kept for the backend's life: each django_rq.get_queue() opens a new Redis connection
        # pool, which cost an enqueue four times its Redis round trip. redis-py's pools notice
        # a fork and reconnect in the child, so forked web and work-horse processes are safe.
        name = self.rq_queue_name(queue_name)
        if name not in self._rq_queues:
            # "auto": enqueue when told to. When to enqueue (after the commit, through the
            # outbox) is decided by the caller, not by django-rq's own on-commit deferral.
            self._rq_queues[name] = django_rq.get_queue(name, commit_mode="auto")
        return self._rq_queues[name]

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        try:
            json.dumps([args, kwargs])
        except TypeError as exc:
            raise InvalidTask(f"Arguments of {task.module_path} must be JSON: {exc}") from exc
        task_result: TaskResult = TaskResult(
            task=task,
            id=get_random_string(32),
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        queue = self.rq_queue(task.queue_name)
        job_args = (task.module_path, list(args), dict(kwargs), self.alias)
        options: dict[str, Any] = {"job_id": task_result.id, "description": task.module_path}
        if task.run_after is None:
            job = queue.enqueue_call(RUN_TASK, args=job_args, **options)
        else:
            job = queue.enqueue_at(task.run_after, RUN_TASK, args=job_args, **options)
        object.__setattr__(task_result, "enqueued_at", job.enqueued_at or timezone.now())
        task_enqueued.send(type(self), task_result=task_result)
        return task_result

    def get_result(self, result_id: str) -> TaskResult:
        queue = self.rq_queue(next(iter(self.queues), "default"))
        try:
            job = Job.fetch(result_id, connection=queue.connection, serializer=queue.serializer)
        except NoSuchJobError:
            raise TaskResultDoesNotExist(result_id) from None
        if job.func_name != RUN_TASK:
            raise TaskResultDoesNotExist(result_id)
        module_path, args, kwargs, _alias = job.args
        task = _task_at(module_path)
        status = _STATUS.get(job.get_status(refresh=False), TaskResultStatus.READY)
        latest = job.latest_result()
        errors = []
        if latest is not None and latest.type == Result.Type.FAILED:
            errors.append(
                TaskError(
                    exception_class_path="builtins.Exception", traceback=latest.exc_string or ""
                )
            )
        task_result: TaskResult = TaskResult(
            task=task,
            id=result_id,
            status=status,
            enqueued_at=_aware(job.enqueued_at),
            started_at=_aware(job.started_at),
            last_attempted_at=_aware(job.started_at),
            finished_at=_aware(job.ended_at),
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=errors,
            worker_ids=[job.worker_name] if job.worker_name else [],
        )
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(task_result, "_return_value", job.return_value(refresh=False))
        return task_result

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages = list(super().check(**kwargs))
        for queue_name in sorted(self.queues):
            rq_name = self.rq_queue_name(queue_name)
            if rq_name not in getattr(django_rq.settings, "QUEUES", {}):
                messages.append(
                    checks.Error(
                        f"Task queue {queue_name!r} goes to RQ queue {rq_name!r}, which is not "
                        "in RQ_QUEUES.",
                        hint="Set REDIS_URL (or RQ_REDIS_URL), which RQ_QUEUES is made from.",
                        id="signoff.E101",
                    )
                )
        return messages


def run_task(module_path: str, args: list[Any], kwargs: dict[str, Any], backend: str) -> Any:
    """Run the ``@task`` at ``module_path`` in an RQ worker: the job every ``RQBackend``
    enqueues and every ``rqcron`` schedule runs. A failure propagates, so RQ records the job
    as failed."""
    task = _task_at(module_path)
    job = get_current_job()
    now = timezone.now()
    task_result: TaskResult = TaskResult(
        task=task,
        id=job.id if job else get_random_string(32),
        status=TaskResultStatus.RUNNING,
        enqueued_at=_aware(job.enqueued_at) if job else None,
        started_at=now,
        last_attempted_at=now,
        finished_at=None,
        args=args,
        kwargs=kwargs,
        backend=backend,
        errors=[],
        worker_ids=[job.worker_name] if job and job.worker_name else [],
    )
    sender = type(task.get_backend())
    # A worker lives long and sees no request cycle: drop connections that died or outlived
    # DATABASE_CONN_MAX_AGE, as Django does around each request.
    close_old_connections()
    task_started.send(sender, task_result=task_result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=task_result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
    except BaseException as exc:
        object.__setattr__(task_result, "finished_at", timezone.now())
        object.__setattr__(task_result, "status", TaskResultStatus.FAILED)
        task_result.errors.append(
            TaskError(
                exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
                traceback="".join(format_exception(exc)),
            )
        )
        task_finished.send(sender, task_result=task_result)
        raise
    finally:
        close_old_connections()
    object.__setattr__(task_result, "finished_at", timezone.now())
    object.__setattr__(task_result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(task_result, "_return_value", normalize_json(value))
    task_finished.send(sender, task_result=task_result)
    return value


def _task_at(module_path: str) -> Task:
    """The ``@task`` at ``module_path``; anything else is refused (a job names what to run)."""
    task = import_string(module_path)
    if not isinstance(task, Task):
        raise InvalidTask(f"{module_path} is not a task")
    return task


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """RQ keeps naive UTC times; Django's results carry aware ones."""
    if moment is None or timezone.is_aware(moment):
        return moment
    return moment.replace(tzinfo=dt.UTC)
