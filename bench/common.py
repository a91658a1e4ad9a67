"""What every benchmark shares: its database, worker processes, percentiles and result files."""

import datetime as dt
import json
import multiprocessing
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/signoff_bench"


def database_url() -> str:
    """The benchmarks' own PostgreSQL database (``BENCH_DATABASE_URL``)."""
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    if "bench" not in urlsplit(url).path:
        # They fill it with made-up data and recreate it: never point them at real data.
        raise SystemExit(f"BENCH_DATABASE_URL must name a database with 'bench' in it: {url}")
    return url


def django_setup(*, recreate: bool = False) -> None:
    """Configure Django for the benchmark database and migrate it; with ``recreate``, drop and
    create it first, so every full run starts from the same empty database."""
    url = database_url()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ["SIGNOFF_AUDIT_CHECKPOINT_EVERY"] = str(10**12)  # no checkpoint jobs mid-run
    if recreate:
        _recreate(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _recreate(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    maintenance = parts._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def settle_after_bulk_load() -> None:
    """Do what the database does on its own soon after a bulk load, before measuring.

    ``VACUUM ANALYZE``: statistics, and the visibility map that lets the queue's counts be
    answered from their index alone. ``CHECKPOINT``: the load's gigabytes of WAL written out at
    once. Otherwise PostgreSQL works through them during the measurements, a checkpoint every
    few seconds (with the default ``max_wal_size``), and after each one every page's first
    change is logged whole: writes then wait on the log, and latencies measure the load.
    """
    from django.db import DatabaseError, connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        try:
            cursor.execute("CHECKPOINT")
        except DatabaseError as exc:  # it needs a superuser, or pg_checkpoint from version 15
            print(f"CHECKPOINT refused ({exc}); the load's checkpoints may slow the writes")


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of ``samples`` (seconds), in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2)}


# A figure and its floor are measured in turns, floor first: a virtual machine's speed drifts
# during a run (by a third within an hour, seen on the 2-core build machines), and measured one
# after the other, a slow spell would land on one of the two and move their ratio with it.
TURNS = 4


def in_turns[T](turns: int, runs: dict[str, Callable[[int], T]]) -> dict[str, list[T]]:
    """Call every one of ``runs`` with the turn's number, in order, ``turns`` times over
    (floor, figure, floor, figure ...). Returns what each returned, turn by turn."""
    results: dict[str, list[T]] = {name: [] for name in runs}
    for turn in range(turns):
        for name, run in runs.items():
            results[name].append(run(turn))
    return results


def run_processes(count: int, work: Callable[[int], Any]) -> tuple[list[Any], float]:
    """Run ``work(index)`` in ``count`` forked processes that start together (as web workers
    are: separate interpreters, separate connections). Returns what each returned, in order,
    and the seconds from the start signal to the last one's end."""
    from django import db

    db.connections.close_all()  # each process opens its own connection
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(count + 1)
    answers = context.Queue()

    def run(index: int) -> None:
        barrier.wait()
        try:
            answers.put((index, work(index), None))
        except BaseException:
            answers.put((index, None, traceback.format_exc()))
        finally:
            db.connections.close_all()

    processes = [context.Process(target=run, args=(i,)) for i in range(count)]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    finished = [answers.get() for _ in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    if failures := [error for _index, _answer, error in finished if error]:
        raise SystemExit(f"{len(failures)} benchmark process(es) failed:\n{failures[0]}")
    results = {index: answer for index, answer, _error in finished}
    return [results[i] for i in range(count)], elapsed


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    from django.db import connection

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "platform": platform.platform(),
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_results(name: str, title: str, results: dict[str, Any], rows: list[str]) -> None:
    """Write ``results`` to ``bench/results/<name>.json`` and a Markdown table of ``rows``
    (``| measure | figure | floor | ratio |`` lines) to ``<name>.md``; print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    lines = [
        f"# {title}, {results['finished'][:10]}",
        "",
        f"{m['cores']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}.",
        f"Ratios are against a floor measured in the same run (see bench/{name}_bench.py).",
        "",
        "| measure | figure | floor | ratio |",
        "|---|---|---|---|",
        *rows,
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
