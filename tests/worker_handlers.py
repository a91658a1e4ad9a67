"""Handlers for the tests that start real processes, loaded into them by
tests/worker_settings.py.

``tests.slow_effect`` writes its effect, one row in ``EFFECT_TABLE`` (which the test creates),
then announces that it runs by writing its process id to ``<SIGNOFF_TEST_SIGNAL_DIR>/<suggestion
id>.pid``, then waits while the file ``hold`` exists there (at most ``HOLD_SECONDS``), so the
test can kill its process in the middle of the run.

``record_run``, the handler of every capability in ``SCALE_OUT_CAPABILITIES``, writes one row
per run into ``RUN_TABLE`` (which the test creates): which suggestion, which capability, and the
process that ran it and its parent (for RQ, the worker whose work horse it is).
"""

import os
import time
from pathlib import Path
from typing import Any

from django.db import connection

from capabilities.handlers import register

CAPABILITY = "tests.slow_effect"
EFFECT_TABLE = "test_worker_effect"
HOLD_SECONDS = 30
SCALE_OUT_CAPABILITIES = ("scale.refund", "scale.credit", "scale.note")
RUN_TABLE = "test_scale_out_run"


@register(CAPABILITY)
def slow_effect(*, capability: str, suggestion_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EFFECT_TABLE} (suggestion_id, pid) VALUES (%s, %s)",  # noqa: S608
            [suggestion_id, os.getpid()],
        )
    signal_dir = Path(os.environ["SIGNOFF_TEST_SIGNAL_DIR"])
    announced = signal_dir / f"{suggestion_id}.pid"
    partial = announced.with_suffix(".tmp")
    partial.write_text(str(os.getpid()))
    partial.rename(announced)  # whole or absent: the test never reads half a number
    deadline = time.monotonic() + HOLD_SECONDS
    while (signal_dir / "hold").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"pid": os.getpid()}


def record_run(*, capability: str, suggestion_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {RUN_TABLE} (suggestion_id, capability, pid, parent_pid)"  # noqa: S608
            " VALUES (%s, %s, %s, %s)",
            [suggestion_id, capability, os.getpid(), os.getppid()],
        )
    return {"pid": os.getpid()}


for _key in SCALE_OUT_CAPABILITIES:
    register(_key)(record_run)
