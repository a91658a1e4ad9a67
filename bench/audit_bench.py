"""Audit trail benchmarks: audited decisions/s by writers, verification and export of a long chain.

    make bench            (or: .venv/bin/python -m bench audit --events 1000000)

Runs against the benchmarks' PostgreSQL database (``bench.common.database_url``). Every
throughput is printed with its ratio to a floor measured in the same run on the same machine,
so the figures hold on a noisy machine:

* audited decisions/s at 1, 4 and 16 writers (processes, as web workers are); floor: the same
  writers recording the same decision without permission checks or audit (lock, update,
  insert), the two taking turns (``bench.common.in_turns``), a quarter of the decisions each;
* ``audit_verify`` events/s over the whole chain, in one process and with ``--jobs`` as many as
  the machine has cores; floor: streaming the same rows unverified, in one process;
* ``audit_export`` of the whole chain: events/s and peak memory, against exporting a tenth of
  it (equal peaks mean the export streams).
"""

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import (
    ROOT,
    TURNS,
    in_turns,
    machine,
    now,
    run_processes,
    settle_after_bulk_load,
    write_results,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=1_000_000, help="chain length to verify")
    parser.add_argument("--decisions", type=int, default=4000, help="decisions per writer setting")
    parser.add_argument("--writers", default="1,4,16")


def run(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {"machine": machine(), "started": now()}
    writers = [int(w) for w in args.writers.split(",")]
    results["decisions"] = [bench_decisions(n, args.decisions) for n in writers]
    results["verify"] = bench_verify(args.events)
    results["export"] = bench_export(results["verify"]["events"])
    results["finished"] = now()
    write_results("audit", "Audit benchmarks", results, table(results))


# --- Audited decisions ------------------------------------------------------------------------


def bench_decisions(writers: int, total: int) -> dict[str, Any]:
    from reviews.services import decision_record

    setup = decision_setup(writers, 2 * total)
    audited_ids, floor_ids = setup["ids"][:total], setup["ids"][total:]

    def audited(index: int, pk: Any) -> None:
        decision_record(
            user=setup["users"][index], suggestion_id=pk, outcome="rejected", reason="Duplicate"
        )

    turns = in_turns(
        TURNS,
        {
            "floor": lambda turn: run_writers(writers, floor_ids[turn::TURNS], floor_decision),
            "audited": lambda turn: run_writers(writers, audited_ids[turn::TURNS], audited),
        },
    )
    floor_rate = len(floor_ids) / sum(turns["floor"])
    audited_rate = len(audited_ids) / sum(turns["audited"])
    row = {
        "writers": writers,
        "decisions": total,
        "audited_per_s": round(audited_rate),
        "floor_per_s": round(floor_rate),
        "ratio": round(audited_rate / floor_rate, 3),
    }
    print(
        f"decisions, {writers:>2} writers: {row['audited_per_s']:>6}/s audited, "
        f"floor {row['floor_per_s']:>6}/s, ratio {row['ratio']}"
    )
    return row


def decision_setup(writers: int, count: int) -> dict[str, Any]:
    """``count`` pending suggestions of one capability, and ``writers`` reviewers for it."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from guardian.shortcuts import assign_perm

    from audit.services import Actor
    from bench.seed import bench_world
    from capabilities.models import Capability
    from capabilities.services import capability_create, policy_active
    from reviews.models import Suggestion, SuggestionStatus

    user_model = get_user_model()
    owner, _ = user_model.objects.get_or_create(username="bench-owner")
    capability = Capability.objects.filter(key="bench.decide").first() or capability_create(
        key="bench.decide",
        name="Bench decisions",
        owner=owner,
        auto_approve_at=Decimal("0.99"),
        auto_reject_below=Decimal("0.01"),
        actor=Actor.system("bench"),
    )
    client = bench_world().client
    users = []
    for n in range(writers):
        user, created = user_model.objects.get_or_create(username=f"bench-writer{n}")
        if created:
            assign_perm("capabilities.review_capability", user, capability)
        users.append(user)
    policy = policy_active(capability)
    batch = Suggestion.objects.bulk_create(
        Suggestion(
            capability=capability,
            policy=policy,
            api_client=client,
            status=SuggestionStatus.PENDING_REVIEW,
            route_reason="confidence_between_thresholds",
            payload={"amount": "12.00", "order": f"B-{n}"},
            confidence=0.5,
            model_name="bench",
        )
        for n in range(count)
    )
    return {"ids": [s.pk for s in batch], "users": users}


def floor_decision(index: int, pk: Any) -> None:
    """The same decision without permission checks or audit: what the database alone costs."""
    from django.db import transaction
    from django.utils import timezone

    from reviews.models import Decision, Suggestion

    with transaction.atomic():
        suggestion = Suggestion.objects.select_for_update().get(pk=pk)
        suggestion.status = "rejected"
        suggestion.decided_at = timezone.now()
        suggestion.save(update_fields=["status", "decided_at"])
        Decision.objects.create(
            suggestion=suggestion,
            outcome="rejected",
            is_final=True,
            reason="Duplicate",
            policy_id=suggestion.policy_id,
        )


def run_writers(writers: int, ids: list[Any], work: Any) -> float:
    """Run ``work(writer_index, id)`` over ``ids`` split across ``writers`` processes;
    returns the seconds it took."""

    def writer(index: int) -> None:
        for pk in ids[index::writers]:
            work(index, pk)

    _answers, elapsed = run_processes(writers, writer)
    return elapsed


# --- Verification and export ------------------------------------------------------------------


def bench_verify(events: int) -> dict[str, Any]:
    from audit.models import AuditEvent
    from audit.selectors import audit_chain_verify, audit_event_rows
    from bench.seed import seed_audit_events

    started = time.perf_counter()
    added = seed_audit_events(events)
    if added:
        settle_after_bulk_load()
    print(f"seeded {added} audit events in {time.perf_counter() - started:.1f} s")
    ordered = AuditEvent.objects.order_by("sequence")

    started = time.perf_counter()
    streamed = sum(1 for _row in audit_event_rows(ordered))
    floor_rate = streamed / (time.perf_counter() - started)
    jobs = os.cpu_count() or 1
    alone, at_once = audit_chain_verify(), audit_chain_verify(jobs=jobs)
    for report in (alone, at_once):
        if not report.ok:
            raise SystemExit(f"the bench chain does not verify: {report.problem}")
    row = {
        "events": alone.events,
        "verify_per_s": round(alone.events_per_second),
        "floor_per_s": round(floor_rate),
        "ratio": round(alone.events_per_second / floor_rate, 3),
        "jobs": jobs,
        "verify_jobs_per_s": round(at_once.events_per_second),
        "ratio_jobs": round(at_once.events_per_second / floor_rate, 3),
    }
    print(
        f"audit_verify: {row['events']} events at {row['verify_per_s']}/s, "
        f"--jobs {jobs} {row['verify_jobs_per_s']}/s; floor (stream unverified, one process) "
        f"{row['floor_per_s']}/s, ratios {row['ratio']}, {row['ratio_jobs']}"
    )
    return row


def bench_export(events: int) -> dict[str, Any]:
    from audit.models import AuditEvent

    tenth = AuditEvent.objects.order_by("sequence").values_list("occurred_at", flat=True)[
        max(events - events // 10, 0)
    ]
    small = run_export(["--since", tenth.isoformat()])
    full = run_export([])
    row = {
        "events": events,
        "seconds": round(full["seconds"], 2),
        "per_s": round(events / full["seconds"]),
        "peak_rss_mb": full["peak_rss_mb"],
        "small_events": AuditEvent.objects.filter(occurred_at__gte=tenth).count(),
        "peak_rss_mb_small": small["peak_rss_mb"],
    }
    print(
        f"audit_export: {events} events in {row['seconds']} s ({row['per_s']}/s), peak RSS "
        f"{row['peak_rss_mb']} MB ({row['small_events']} events: {row['peak_rss_mb_small']} MB)"
    )
    return row


# The export runs as the command does, then reports the peak memory of its own process image
# (VmHWM). The kernel's peak for a child (wait4's ru_maxrss) keeps the larger of the child's
# and that of the process it was started from: this benchmark's, which would hide an export
# smaller than the benchmark itself.
_EXPORT_REPORTING_PEAK = """
import sys
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "audit_export", *sys.argv[1:]])
with open("/proc/self/status") as status:
    peak_kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(f"peak_rss_kb={peak_kb}", file=sys.stderr)
"""


def run_export(extra: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    finished = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, "-c", _EXPORT_REPORTING_PEAK, "--output", os.devnull, *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"audit_export failed ({finished.returncode}): {finished.stderr}")
    peak_kb = int(finished.stderr.rsplit("peak_rss_kb=", 1)[1])
    return {"seconds": seconds, "peak_rss_mb": round(peak_kb / 1024)}


# --- Results ----------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> list[str]:
    rows = [
        f"| audited decisions, {row['writers']} writer(s) | {row['audited_per_s']}/s "
        f"| {row['floor_per_s']}/s | {row['ratio']} |"
        for row in results["decisions"]
    ]
    v = results["verify"]
    rows.append(
        f"| audit_verify, {v['events']:,} events | {v['verify_per_s']:,}/s "
        f"| {v['floor_per_s']:,}/s | {v['ratio']} |"
    )
    rows.append(
        f"| audit_verify --jobs {v['jobs']}, {v['events']:,} events | {v['verify_jobs_per_s']:,}/s "
        f"| {v['floor_per_s']:,}/s | {v['ratio_jobs']} |"
    )
    e = results["export"]
    rows.append(
        f"| audit_export, {e['events']:,} events | {e['per_s']:,}/s, peak RSS "
        f"{e['peak_rss_mb']} MB | {e['small_events']:,} events: {e['peak_rss_mb_small']} MB | |"
    )
    return rows
