"""Real Signoff processes for tests: web nodes (gunicorn) and workers (RQ or Celery), started
against the test database with the environment production would give them.

Every process runs in a session (process group) of its own, so stopping it stops whatever it
forked (gunicorn's workers, RQ's work horses); its output goes to a log file that a failing
test shows. ``Processes`` stops every process it started when its ``with`` block ends.

Each ``Backend`` uses a queue of its own (and Redis database 7 for RQ), so test runs side by
side, or a demo on the same Redis, never take each other's jobs.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self, cast
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from redis import Redis

PROJECT = Path(__file__).resolve().parents[1]
WAIT_SECONDS = 30  # the longest any one wait may take before the test fails
RQ_TEST_REDIS_DB = 7
# Settings of every process started here: the test settings plus the handlers of
# tests/worker_handlers.py.
PROCESS_SETTINGS = "tests.worker_settings"


@dataclass
class Process:
    """A process started in its own session (process group), its output in ``log``."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """SIGKILL the process and its process group, as a crash or the OOM killer would."""
        if self.process.returncode is None:  # not reaped yet, so its pid is still its own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> None:
        """Ask the process group for a warm shutdown (SIGTERM), without waiting for it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self, timeout: float = 5) -> None:
        """A warm shutdown (SIGTERM) if it comes within ``timeout`` seconds, else SIGKILL."""
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        self.kill()


@dataclass(frozen=True)
class WebNode:
    """One gunicorn master and its workers, answering at ``url``."""

    process: Process
    url: str


def database_url() -> str:
    """DATABASE_URL of the database this test runs on (the test database, not ``signoff``)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "localhost"
    port = db["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{quote(db['NAME'], safe='')}"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Processes:
    """Starts processes for one test; stops every one of them at the end of its ``with``."""

    tmp_path: Path
    signal_dir: Path
    started: list[Process] = field(default_factory=list)

    @classmethod
    def within(cls, tmp_path: Path) -> Self:
        signal_dir = tmp_path / "signals"
        signal_dir.mkdir(exist_ok=True)
        return cls(tmp_path, signal_dir)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process: this one's, on the test database, with ``extra``."""
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in {"TASKS_BACKEND", "SIGNOFF_WORKERS", "SIGNOFF_QUEUE", "RQ_REDIS_URL"}
        }
        env.update(
            DJANGO_SETTINGS_MODULE=PROCESS_SETTINGS,
            DATABASE_URL=database_url(),
            SIGNOFF_TEST_SIGNAL_DIR=str(self.signal_dir),
            PYTHONUNBUFFERED="1",
            **extra,
        )
        return env

    def start(self, argv: list[str], env: dict[str, str], name: str = "worker") -> Process:
        label = f"{name}-{len(self.started)}"
        log = self.tmp_path / f"{label}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=PROJECT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(label, popen, log)
        self.started.append(process)
        return process

    def start_web(self, env: dict[str, str], *, workers: int = 2) -> WebNode:
        """Start ``gunicorn config.wsgi`` on a free loopback port and wait until it answers.

        A port taken between choosing it and binding it is chosen again (three tries)."""
        for _attempt in range(3):
            port = free_port()
            argv = [sys.executable, "-m", "gunicorn", "config.wsgi"]
            argv += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
            # Several masters on one machine: the default control socket is one path for all.
            argv += ["--no-control-socket", "--access-logfile", "-", "--graceful-timeout", "5"]
            node = WebNode(self.start(argv, env, name="web"), f"http://127.0.0.1:{port}")
            if self._answers(node):
                return node
            if "Address already in use" not in node.process.output():
                break
        pytest.fail(f"a web node did not start\n{self.logs()}")

    def _answers(self, node: WebNode) -> bool:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline and node.process.running():
            try:
                with urllib.request.urlopen(f"{node.url}/accounts/login/", timeout=2) as answer:  # noqa: S310 - a loopback URL built above
                    if answer.status == 200:
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        node.process.stop()
        return False

    def logs(self) -> str:
        return "\n".join(
            f"--- {process.name} (pid {process.pid}, exit {process.process.poll()}):\n"
            f"{process.output()}"
            for process in self.started
        )

    def stop_all(self) -> None:
        """Warm shutdowns all at once, then SIGKILL for whatever is left after 5 s."""
        (self.signal_dir / "hold").unlink(missing_ok=True)  # a holding handler lets go at once
        for process in self.started:
            process.terminate()
        deadline = time.monotonic() + 5
        for process in self.started:
            process.stop(timeout=max(0.0, deadline - time.monotonic()))


def wait_until(
    condition: Callable[[], bool],
    what: str,
    processes: Processes,
    seconds: float = WAIT_SECONDS,
) -> None:
    """Poll ``condition`` until it holds; fail after ``seconds``, with every process's log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"waited {seconds} s for {what}\n{processes.logs()}")


# --- Task backends --------------------------------------------------------------------------


class Backend:
    """One kind of worker: how to start it, and the settings that enqueue to it."""

    name: str

    def __init__(self, processes: Processes) -> None:
        self.processes = processes
        self.queue = f"signoff-test-{uuid.uuid4().hex[:12]}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of this backend's processes (workers, and web nodes)."""
        raise NotImplementedError

    def start_worker(self, **extra_env: str) -> Process:
        raise NotImplementedError

    @contextlib.contextmanager
    def enqueueing(self) -> Iterator[None]:
        """Within: this process enqueues its jobs to these workers."""
        raise NotImplementedError
        yield

    def cleanup(self) -> None:
        raise NotImplementedError


class RQ(Backend):
    name = "rq"

    def __init__(self, processes: Processes) -> None:
        super().__init__(processes)
        parts = urlsplit(settings.REDIS_URL)
        self.url = urlunsplit(parts._replace(path=f"/{RQ_TEST_REDIS_DB}"))

    def env(self, **extra: str) -> dict[str, str]:
        return self.processes.env(
            SIGNOFF_WORKERS="rq", SIGNOFF_QUEUE=self.queue, RQ_REDIS_URL=self.url, **extra
        )

    def start_worker(self, **extra_env: str) -> Process:
        name = f"{self.queue}-{len(self.processes.started)}"
        argv = [sys.executable, "manage.py", "rqworker", self.queue, "--name", name]
        return self.processes.start(argv, self.env(**extra_env))

    def listening(self) -> int:
        """How many workers have registered on this queue."""
        from rq import Queue, Worker

        with contextlib.closing(Redis.from_url(self.url)) as redis:
            return Worker.count(connection=redis, queue=Queue(self.queue, connection=redis))

    def idle(self) -> bool:
        """No job of this queue is waiting or running."""
        from rq import Queue

        with contextlib.closing(Redis.from_url(self.url)) as redis:
            queue = Queue(self.queue, connection=redis)
            return queue.count == 0 and queue.started_job_registry.count == 0

    @contextlib.contextmanager
    def enqueueing(self) -> Iterator[None]:
        with override_settings(
            TASKS={
                "default": {
                    "BACKEND": "config.task_backends.rq.RQBackend",
                    "QUEUES": ["default"],
                    "OPTIONS": {"QUEUE_NAMES": {"default": self.queue}},
                }
            },
            RQ_QUEUES={self.queue: {"URL": self.url}},
        ):
            yield

    def cleanup(self) -> None:
        """Delete the queue, its registries, their jobs and the workers' records."""
        redis = Redis.from_url(self.url)
        for key in list(redis.scan_iter(match=f"rq:*{self.queue}*")):
            kind = redis.type(key)
            members = (
                redis.zrange(key, 0, -1)
                if kind == b"zset"
                else redis.lrange(key, 0, -1)
                if kind == b"list"
                else []
            )
            for member in members:
                # A started job is "<job id>:<execution id>" in its registry.
                job_id = cast(bytes, member).decode().split(":")[0]
                job_keys = list(redis.scan_iter(match=f"rq:*{job_id}*"))
                if job_keys:
                    redis.delete(*job_keys)
            redis.delete(key)
        redis.srem("rq:queues", f"rq:queue:{self.queue}")
        redis.close()


class Celery(Backend):
    name = "celery"

    def env(self, **extra: str) -> dict[str, str]:
        return self.processes.env(
            SIGNOFF_WORKERS="celery",
            SIGNOFF_QUEUE=self.queue,
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            **extra,
        )

    def start_worker(self, **extra_env: str) -> Process:
        name = f"{self.queue}-{len(self.processes.started)}@%h"
        argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo"]
        argv += ["-Q", self.queue, "-n", name, "--without-mingle", "--without-gossip"]
        argv += ["--loglevel=INFO"]
        return self.processes.start(argv, self.env(**extra_env))

    @contextlib.contextmanager
    def enqueueing(self) -> Iterator[None]:
        from config.celery import app

        previous = app.conf.task_default_queue
        app.conf.task_default_queue = self.queue
        try:
            with override_settings(
                TASKS={
                    "default": {
                        "BACKEND": "django_tasks_celery.CeleryBackend",
                        "QUEUES": ["default"],
                        "OPTIONS": {"CELERY_APP": "config.celery.app"},
                    }
                }
            ):
                yield
        finally:
            app.conf.task_default_queue = previous

    def cleanup(self) -> None:
        from config.celery import app

        with app.connection_for_write() as broker:
            channel = broker.default_channel
            channel.queue_delete(self.queue)
            channel.exchange_delete(self.queue)
