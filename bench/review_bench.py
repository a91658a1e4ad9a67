"""Review benchmarks: claim-next, decide and the queue page, as the suggestion table grows.

    make bench            (or: .venv/bin/python -m bench review --sizes 10000,1000000)

At each size (suggestions in the table, a tenth of them pending, over 20 capabilities; seeded
by ``bench_seed``) it measures, in latencies (p50 and p99), each beside a floor measured in the
same run:

* claim-next and a decision by 1 and by 8 reviewers at once (processes, as web workers are),
  through ``suggestion_claim_next`` and ``decision_record``, audit included; floor: the same
  row locked and updated without permission checks or audit;
* the queue page (``GET /``) rendered for a reviewer allowed on 5 of the 20 capabilities;
  floor: the login page, through the same middleware and templates.

The queue page and its floor take turns, one request each, so that the machine's drifting
speed slows both alike; claims and decisions are measured first, then their floor.

Approvals enqueue their execution on a backend that drops it: the workers that would run it
are not what is measured here.
"""

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    in_turns,
    machine,
    now,
    percentiles,
    run_processes,
    settle_after_bulk_load,
    write_results,
)

CLAIMS_ALONE = 60  # decisions by one reviewer at each size
CLAIMS_EACH = 20  # decisions by each of 8 reviewers at each size
PAGE_RENDERS = 200
WARM_UP = 5  # unmeasured rounds in each process first


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="10000,1000000", help="table sizes, in rows")


def prepare_environment() -> None:
    os.environ["TASKS_BACKEND"] = "django.tasks.backends.dummy.DummyBackend"


def run(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {"machine": machine(), "started": now(), "sizes": []}
    for size in (int(s) for s in args.sizes.split(",")):
        results["sizes"].append(bench_size(size))
    results["finished"] = now()
    write_results("review", "Review benchmarks", results, table(results))


def bench_size(size: int) -> dict[str, Any]:
    from bench.seed import bench_world, seed_suggestions

    started = time.perf_counter()
    added = seed_suggestions(size)
    settle_after_bulk_load()
    print(f"{size:,} suggestions: seeded {added:,} in {time.perf_counter() - started:.0f} s")
    world = bench_world()
    row: dict[str, Any] = {"suggestions": size, "claims": []}
    for reviewers, each in ((1, CLAIMS_ALONE), (8, CLAIMS_EACH)):
        row["claims"].append(bench_claims(world, reviewers, each))
    row["queue_page"] = bench_queue_page(world)
    return row


# --- Claim next and decide --------------------------------------------------------------------


def bench_claims(world: Any, reviewers: int, each: int) -> dict[str, Any]:
    """``each`` claim-next + approve rounds by ``reviewers`` reviewers at once, then the same
    rounds done bare (the floor). Not in turns: each turn's new processes would warm up again
    on rows of their own, and 10,000 suggestions hold too few pending ones for that."""

    def audited(index: int) -> dict[str, list[float]]:
        from reviews.services import decision_record, suggestion_claim_next

        user = world.reviewers[index]
        return _rounds(
            each,
            claim=lambda: suggestion_claim_next(user=user),
            decide=lambda pk: decision_record(user=user, suggestion_id=pk, outcome="approved"),
        )

    def floor(index: int) -> dict[str, list[float]]:
        capability_ids = [c.pk for c in world.capabilities[index % 4 :: 4]]
        return _rounds(
            each,
            claim=lambda: floor_claim(capability_ids, world.reviewers[index]),
            decide=floor_decide,
        )

    measured, _ = run_processes(reviewers, audited)
    floors, _ = run_processes(reviewers, floor)
    row: dict[str, Any] = {"reviewers": reviewers, "rounds": reviewers * each}
    for step in ("claim", "decide"):
        real = percentiles([s for m in measured for s in m[step]])
        bare = percentiles([s for f in floors for s in f[step]])
        row[step] = {**real, "floor": bare, "ratio_p50": round(real["p50_ms"] / bare["p50_ms"], 2)}
    print(
        f"  {reviewers} reviewer(s): claim-next p50 {row['claim']['p50_ms']} ms, p99 "
        f"{row['claim']['p99_ms']} ms (floor p50 {row['claim']['floor']['p50_ms']} ms); decide "
        f"p50 {row['decide']['p50_ms']} ms, p99 {row['decide']['p99_ms']} ms "
        f"(floor p50 {row['decide']['floor']['p50_ms']} ms)"
    )
    return row


def _rounds(
    count: int, *, claim: Callable[[], Any], decide: Callable[[Any], Any]
) -> dict[str, list[float]]:
    """``count`` measured claim-and-decide rounds, after ``WARM_UP`` unmeasured ones: a new
    process opens its connection and fills its caches first, which a web worker does once in
    its life, not once a request."""
    timings: dict[str, list[float]] = {"claim": [], "decide": []}
    for round_number in range(WARM_UP + count):
        started = time.perf_counter()
        suggestion = claim()
        claimed = time.perf_counter()
        if suggestion is None:
            raise SystemExit("the queue ran dry: seed more suggestions")
        decide(suggestion.pk)
        if round_number >= WARM_UP:
            timings["claim"].append(claimed - started)
            timings["decide"].append(time.perf_counter() - claimed)
    return timings


def floor_claim(capability_ids: list[int], user: Any) -> Any:
    """The first open, unclaimed suggestion of these capabilities in the queue's order, locked
    and claimed: what the database alone costs, without permission checks or audit."""
    from django.db import transaction
    from django.utils import timezone

    from reviews.models import OPEN_STATUSES, Suggestion, sla_order_key

    with transaction.atomic():
        suggestion = (
            Suggestion.objects.filter(
                capability_id__in=capability_ids,
                status__in=OPEN_STATUSES,
                claimed_by__isnull=True,
            )
            .order_by(sla_order_key(), "created_at", "id")
            .select_for_update(skip_locked=True)
            .first()
        )
        if suggestion is not None:
            suggestion.claimed_by = user
            suggestion.claim_expires_at = timezone.now()
            suggestion.save(update_fields=["claimed_by", "claim_expires_at"])
    return suggestion


def floor_decide(pk: Any) -> None:
    """The decision without permission checks or audit: lock, update, insert."""
    from bench.audit_bench import floor_decision

    floor_decision(0, pk)


# --- The queue page ---------------------------------------------------------------------------


def bench_queue_page(world: Any) -> dict[str, Any]:
    from django.test import Client

    reviewer = Client()
    reviewer.force_login(world.reviewers[0])
    renders = {
        "floor": _render(Client(), "/accounts/login/"),
        "page": _render(reviewer, "/"),
    }
    for render in renders.values():
        for turn in range(10):  # warm the caches and the connection
            render(turn)
    turns = in_turns(PAGE_RENDERS, renders)
    page, bare = percentiles(turns["page"]), percentiles(turns["floor"])
    row = {**page, "floor": bare, "ratio_p50": round(page["p50_ms"] / bare["p50_ms"], 2)}
    print(
        f"  queue page: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms "
        f"(floor, the login page: p50 {bare['p50_ms']} ms)"
    )
    return row


def _render(client: Any, url: str) -> Callable[[int], float]:
    """A function that GETs ``url`` with ``client`` and returns the seconds it took."""

    def render(_turn: int) -> float:
        started = time.perf_counter()
        response = client.get(url)
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}")
        return seconds

    return render


# --- Results ----------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> list[str]:
    rows = []
    for size in results["sizes"]:
        n = f"{size['suggestions']:,} rows"
        for claims in size["claims"]:
            who = f"{claims['reviewers']} reviewer(s)"
            for step, label in (("claim", "claim-next"), ("decide", "decision")):
                m = claims[step]
                rows.append(
                    f"| {label}, {who}, {n} | p50 {m['p50_ms']} ms, p99 {m['p99_ms']} ms "
                    f"| p50 {m['floor']['p50_ms']} ms | {m['ratio_p50']} |"
                )
        q = size["queue_page"]
        rows.append(
            f"| queue page, {n} | p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms "
            f"| p50 {q['floor']['p50_ms']} ms | {q['ratio_p50']} |"
        )
    return rows
