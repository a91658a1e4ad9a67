"""Audit trail benchmarks: audited decisions/s by writers, verification and export of a long chain.

    make bench                       (or: .venv/bin/python -m bench.audit_bench --events 1000000)

Runs against its own PostgreSQL database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/signoff_bench``), which it migrates and fills. Every
throughput is printed with its ratio to a floor measured in the same run on the same machine,
so the figures hold on a noisy machine:

* audited decisions/s at 1, 4 and 16 writers (processes, as web workers are); floor: the same
  writers recording the same decision without permission checks or audit (lock, update,
  insert);
* ``audit_verify`` events/s over the whole chain; floor: streaming the same rows unverified;
* ``audit_export`` of the whole chain: events/s and peak memory, against exporting a tenth of
  it (flat memory means the export streams).
"""

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/signoff_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="chain length to verify")
    parser.add_argument("--decisions", type=int, default=4000, help="decisions per writer setting")
    parser.add_argument("--writers", default="1,4,16")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ["SIGNOFF_AUDIT_CHECKPOINT_EVERY"] = str(10**12)  # no checkpoint jobs mid-run
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results: dict[str, Any] = {"machine": machine(), "started": now()}
    writers = [int(w) for w in args.writers.split(",")]
    results["decisions"] = [bench_decisions(n, args.decisions) for n in writers]
    results["verify"] = bench_verify(args.events)
    results["export"] = bench_export(args.events)
    results["finished"] = now()
    write_results(results)


# --- Audited decisions ------------------------------------------------------------------------


def bench_decisions(writers: int, total: int) -> dict[str, Any]:
    from reviews.services import decision_record

    setup = decision_setup(writers, 2 * total)
    audited_ids, floor_ids = setup["ids"][:total], setup["ids"][total:]

    def audited(index: int, pk: Any) -> None:
        decision_record(
            user=setup["users"][index], suggestion_id=pk, outcome="rejected", reason="Duplicate"
        )

    floor_rate = run_writers(writers, floor_ids, floor_decision)
    audited_rate = run_writers(writers, audited_ids, audited)
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
    from capabilities.models import Capability
    from capabilities.services import api_client_create, capability_create, policy_active
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
    client = (
        capability.api_clients.first()
        or api_client_create(
            name="bench-client", capabilities=[capability], actor=Actor.system("bench")
        ).token.client
    )
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
    """Run ``work(writer_index, id)`` over ``ids`` split across ``writers`` processes (as web
    workers would be: separate interpreters, separate connections); returns ids per second."""
    from django import db

    db.connections.close_all()  # each process opens its own connection
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(writers + 1)

    def writer(index: int) -> None:
        barrier.wait()
        for pk in ids[index::writers]:
            work(index, pk)
        db.connections.close_all()

    processes = [context.Process(target=writer, args=(i,)) for i in range(writers)]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise SystemExit(f"{len(failed)} writer process(es) failed")
    return len(ids) / elapsed


# --- Verification and export ------------------------------------------------------------------


def bench_verify(events: int) -> dict[str, Any]:
    from audit.models import AuditEvent
    from audit.selectors import audit_chain_head, audit_event_rows
    from audit.verification import verify_events
    from bench.seed import seed_audit_events

    started = time.perf_counter()
    added = seed_audit_events(events)
    print(f"seeded {added} audit events in {time.perf_counter() - started:.1f} s")
    ordered = AuditEvent.objects.order_by("sequence")

    started = time.perf_counter()
    streamed = sum(1 for _row in audit_event_rows(ordered))
    floor_rate = streamed / (time.perf_counter() - started)
    report = verify_events(audit_event_rows(ordered), head=audit_chain_head())
    if not report.ok:
        raise SystemExit(f"the bench chain does not verify: {report.problem}")
    row = {
        "events": report.events,
        "verify_per_s": round(report.events_per_second),
        "floor_per_s": round(floor_rate),
        "ratio": round(report.events_per_second / floor_rate, 3),
    }
    print(
        f"audit_verify: {row['events']} events at {row['verify_per_s']}/s, "
        f"floor (stream unverified) {row['floor_per_s']}/s, ratio {row['ratio']}"
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
        "peak_rss_mb_tenth": small["peak_rss_mb"],
    }
    print(
        f"audit_export: {events} events in {row['seconds']} s ({row['per_s']}/s), peak RSS "
        f"{row['peak_rss_mb']} MB (a tenth of the rows: {row['peak_rss_mb_tenth']} MB)"
    )
    return row


def run_export(extra: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, "manage.py", "audit_export", "--output", os.devnull, *extra],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"audit_export failed with status {status}")
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": round(usage.ru_maxrss / 1024)}


# --- Results ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
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


def write_results(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    lines = [
        f"# Audit benchmarks, {results['finished'][:10]}",
        "",
        f"{m['cores']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}.",
        "Ratios are against a floor measured in the same run (see bench/audit_bench.py).",
        "",
        "| measure | figure | floor | ratio |",
        "|---|---|---|---|",
    ]
    for row in results["decisions"]:
        lines.append(
            f"| audited decisions, {row['writers']} writer(s) | {row['audited_per_s']}/s "
            f"| {row['floor_per_s']}/s | {row['ratio']} |"
        )
    v = results["verify"]
    lines.append(
        f"| audit_verify, {v['events']:,} events | {v['verify_per_s']:,}/s "
        f"| {v['floor_per_s']:,}/s | {v['ratio']} |"
    )
    e = results["export"]
    lines.append(
        f"| audit_export, {e['events']:,} events | {e['per_s']:,}/s, peak RSS "
        f"{e['peak_rss_mb']} MB | a tenth: {e['peak_rss_mb_tenth']} MB | |"
    )
    (RESULTS / "audit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
