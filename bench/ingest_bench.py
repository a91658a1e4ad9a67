"""Ingestion benchmarks: suggestions submitted over HTTP to gunicorn, one at a time and in
batches, beside bare endpoints that do the least a submission must do.

    make bench            (or: .venv/bin/python -m bench ingest)

gunicorn serves the project (2 sync workers, as ``Procfile`` runs it) on PostgreSQL, with jobs
going to RQ on Redis when Redis answers (nothing consumes them during the run). Client
processes on the same machine send a realistic 1.5 KB body (a refund with its prompt, context
and usage; an e-mail address and a phone number for redaction to find), spread over 20
capabilities and confidences, so every route is taken:

* ``POST /api/v1/suggestions/`` with 1 and 8 concurrent clients: requests/s, p50, p99; floor:
  ``POST /bench/floor/`` (``bench/floor.py``), the same body through the same serializer into
  one row, under the same server and load;
* ``POST /api/v1/suggestions/batch/``: 10,000 suggestions as 10 requests of 1,000; floor: the
  bare batch endpoint ``POST /bench/floor/batch/``.

Each endpoint and its floor take turns (``bench.common.in_turns``): four turns each of the
single submissions, and one batch request each, ten times over.
"""

import argparse
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.common import (
    ROOT,
    TURNS,
    database_url,
    in_turns,
    machine,
    now,
    percentiles,
    run_processes,
    write_results,
)

REDIS_URL = "redis://127.0.0.1:6379/8"  # its own database, emptied after the run
QUEUE = "bench-ingest"
WARM_UP = 40  # requests to each endpoint before measuring
_SUBMIT = "/api/v1/suggestions/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=1200, help="requests per client setting")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--batch-items", type=int, default=10_000)


def run(args: argparse.Namespace) -> None:
    from bench.seed import BENCH_ACTOR, bench_world
    from capabilities.services import api_token_issue

    world = bench_world()
    secret = api_token_issue(client=world.client, actor=BENCH_ACTOR).secret
    keys = [c.key for c in world.capabilities]
    results: dict[str, Any] = {"machine": machine(), "started": now(), "single": []}
    with gunicorn() as port:
        target = Target(port, secret, keys)
        target.post_many("/bench/floor/", WARM_UP)
        target.post_many(_SUBMIT, WARM_UP)
        for clients in (int(c) for c in args.clients.split(",")):
            results["single"].append(bench_single(target, clients, args.requests))
        results["batch"] = bench_batch(target, args.batch_items)
    results["finished"] = now()
    write_results("ingest", "Ingestion benchmarks", results, table(results))


# --- The server -------------------------------------------------------------------------------


@contextlib.contextmanager
def gunicorn() -> Iterator[int]:
    """gunicorn serving ``bench.settings`` with 2 workers on a free loopback port; yields the
    port once it answers, stops it (and empties its job queue) afterwards."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url(),
        "SIGNOFF_QUEUE": QUEUE,
    }
    env.pop("TASKS_BACKEND", None)
    if _redis_answers():
        env.update(SIGNOFF_WORKERS="rq", REDIS_URL=REDIS_URL, RQ_REDIS_URL=REDIS_URL)
    else:
        print("Redis does not answer: jobs are dropped instead of queued")
        env["TASKS_BACKEND"] = "django.tasks.backends.dummy.DummyBackend"
    argv = [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", "2"]
    server = subprocess.Popen(  # noqa: S603 - our own command line
        [*argv, "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait_until_listening(port, server)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
        if env.get("SIGNOFF_WORKERS") == "rq":
            _redis_flush()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {server.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise SystemExit("gunicorn did not start listening within 30 s")


def _redis_answers() -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        return bool(Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except RedisError:
        return False


def _redis_flush() -> None:
    from redis import Redis

    Redis.from_url(REDIS_URL).flushdb()


# --- The load ---------------------------------------------------------------------------------


class Target:
    """Posts realistic submissions to the server on ``port`` with the bench client's token."""

    def __init__(self, port: int, secret: str, keys: list[str]) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self.keys = keys
        self.sent = 0

    def body(self, n: int) -> dict[str, Any]:
        """The ``n``-th submission of this process: about 1.5 KB of JSON."""
        self.sent += 1
        tag = f"{os.getpid()}-{self.sent}"
        return {
            "capability": self.keys[n % len(self.keys)],
            "external_id": f"ticket-{tag}",
            "payload": {
                "order": f"A-{tag}",
                "amount": f"{(n % 400) + 10}.00",
                "currency": "EUR",
                "reason": "Damaged on arrival",
                "lines": [{"sku": f"SKU-{n % 997}", "quantity": 1 + n % 3, "price": "19.90"}],
                "refund_to": "original_payment_method",
            },
            "confidence": round(0.05 + (n * 37 % 95) / 100, 2),
            "model": {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"},
            "prompt": (
                "You are a customer-service assistant. Decide whether to refund the order below "
                "under the refund policy: items damaged on arrival are refunded in full when "
                "reported within 30 days with a photo. The customer, jane.doe@example.com "
                "(+44 20 7946 0958), writes: 'My parcel arrived yesterday and the box was "
                "crushed; the glass teapot inside is broken. I attach two photos. I would like "
                "my money back rather than a replacement, please.' Order history: 14 orders "
                "over three years, no previous refunds, no chargebacks. Delivery confirmed by "
                "the carrier two days ago; the photos show the broken item in its packaging. "
                "Answer with the refund amount, the currency and a short reason."
            ),
            "context": {
                "channel": "email",
                "customer_tier": "gold",
                "ticket": f"T-{tag}",
                "photos": 2,
                "carrier": "DHL",
                "delivered": "2026-11-25",
                "previous_tickets": [
                    {"id": "T-88120", "topic": "delivery date", "closed": "2025-03-02"},
                    {"id": "T-90412", "topic": "invoice copy", "closed": "2026-01-17"},
                ],
                "agent_notes": "Customer is polite; photos attached; parcel scanned at depot.",
            },
            "usage": {"input_tokens": 1200, "output_tokens": 300, "cost": "0.0042"},
            "attempt": 1,
        }

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes, float]:
        """POST ``body`` on a new connection (gunicorn's sync workers close each one, for the
        real endpoint and the floor alike); returns the status, the body and the seconds."""
        data = json.dumps(body).encode()
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("POST", path, body=data, headers=self.headers)
            response = connection.getresponse()
            content = response.read()
        finally:
            connection.close()
        return response.status, content, time.perf_counter() - started

    def post_many(self, path: str, count: int, first: int = 0) -> list[float]:
        """``count`` submissions one after another; their latencies. Fails on any error."""
        latencies = []
        for n in range(first, first + count):
            status, content, seconds = self.post(path, self.body(n))
            if status >= 300:
                raise SystemExit(f"POST {path} answered {status}: {content[:500]!r}")
            latencies.append(seconds)
        return latencies


def bench_single(target: Target, clients: int, total: int) -> dict[str, Any]:
    each = total // clients // TURNS  # requests by each client in each turn

    def measure(path: str) -> Callable[[int], tuple[list[list[float]], float]]:
        def turn(number: int) -> tuple[list[list[float]], float]:
            return run_processes(
                clients,
                lambda index: target.post_many(path, each, first=(number * clients + index) * each),
            )

        return turn

    turns = in_turns(TURNS, {"floor": measure("/bench/floor/"), "real": measure(_SUBMIT)})
    floor, real = _throughput(turns["floor"]), _throughput(turns["real"])
    row = {
        "clients": clients,
        "requests": each * clients * TURNS,
        **real,
        "floor": floor,
        "ratio": round(real["per_s"] / floor["per_s"], 3),
    }
    print(
        f"POST {_SUBMIT}, {clients} client(s): {row['per_s']}/s, p50 {row['p50_ms']} "
        f"ms, p99 {row['p99_ms']} ms; floor {floor['per_s']}/s (p99 {floor['p99_ms']} ms), "
        f"ratio {row['ratio']}"
    )
    return row


def _throughput(turns: list[tuple[list[list[float]], float]]) -> dict[str, Any]:
    """Requests per second over all the turns, and the percentiles of their latencies."""
    samples = [s for latencies, _elapsed in turns for client in latencies for s in client]
    elapsed = sum(seconds for _latencies, seconds in turns)
    return {"per_s": round(len(samples) / elapsed, 1), **percentiles(samples)}


def bench_batch(target: Target, items: int) -> dict[str, Any]:
    size = 1000

    def send(path: str) -> Callable[[int], float]:
        def one_batch(number: int) -> float:
            first = number * size
            batch = {"items": [target.body(n) for n in range(first, first + size)]}
            status, content, seconds = target.post(path, batch)
            answer = json.loads(content) if status == 200 else {}
            if answer.get("created") != size:
                raise SystemExit(f"POST {path} answered {status}: {content[:500]!r}")
            return seconds

        return one_batch

    # The batches of the floor and of the endpoint in turns, one request each.
    turns = in_turns(
        items // size, {"floor": send("/bench/floor/batch/"), "real": send(f"{_SUBMIT}batch/")}
    )
    floor, seconds = sum(turns["floor"]), sum(turns["real"])
    row = {
        "items": items,
        "batch_size": size,
        "seconds": round(seconds, 2),
        "per_s": round(items / seconds),
        "floor_seconds": round(floor, 2),
        "floor_per_s": round(items / floor),
        "ratio": round(floor / seconds, 3),
    }
    print(
        f"POST {_SUBMIT}batch/: {items:,} in {row['seconds']} s ({row['per_s']}/s); "
        f"floor {row['floor_seconds']} s, ratio {row['ratio']}"
    )
    return row


# --- Results ----------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> list[str]:
    rows = [
        f"| POST {_SUBMIT}, {r['clients']} client(s) | {r['per_s']}/s, p50 "
        f"{r['p50_ms']} ms, p99 {r['p99_ms']} ms | {r['floor']['per_s']}/s, p99 "
        f"{r['floor']['p99_ms']} ms | {r['ratio']} |"
        for r in results["single"]
    ]
    b = results["batch"]
    rows.append(
        f"| POST {_SUBMIT}batch/, {b['items']:,} as {b['items'] // b['batch_size']} "
        f"requests | {b['seconds']} s ({b['per_s']:,}/s) | {b['floor_seconds']} s "
        f"({b['floor_per_s']:,}/s) | {b['ratio']} |"
    )
    return rows
