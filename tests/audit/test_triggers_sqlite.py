"""The append-only triggers on SQLite, checked on a freshly migrated database file.

The suite's own database may be PostgreSQL; this proves the SQLite migration path whatever it is.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
INSERT = (
    "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, actor_label,"
    " action, subject_type, subject_id, capability, data, prev_hash, hash)"
    " VALUES (?, '2026-01-01 00:00:00', 'system', '', 'tests', 'policy.published', 'policy', ?,"
    " '', '{}', ?, ?)"
)


def insert_event(db: sqlite3.Connection, sequence: int, prev_hash: str, event_hash: str) -> None:
    db.execute(INSERT, (sequence, str(sequence), prev_hash, event_hash))


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "signoff.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "t", "DEBUG": "0"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=PROJECT,
        env=env,
        check=True,
        timeout=120,
    )
    with sqlite3.connect(path) as db:
        insert_event(db, 1, "0" * 64, "a" * 64)
    return path


@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_auditevent SET action = 'forged'", "DELETE FROM audit_auditevent"],
)
def test_sqlite_refuses_raw_update_and_delete(migrated_sqlite: Path, sql: str):
    with sqlite3.connect(migrated_sqlite) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(sql)
        assert db.execute("SELECT action FROM audit_auditevent").fetchall() == [
            ("policy.published",)
        ]


def test_sqlite_still_accepts_inserts(migrated_sqlite: Path):
    with sqlite3.connect(migrated_sqlite) as db:
        insert_event(db, 2, "a" * 64, "b" * 64)
        assert db.execute("SELECT count(*) FROM audit_auditevent").fetchone() == (2,)
