#!/usr/bin/env python3
"""Verify a Signoff audit export on its own: no Signoff, no Django, only Python 3.

    python3 verify_export.py signoff-audit.jsonl      (or a .csv export)

Exit status 0 when every event's hash matches its content and each event links to the one
before it; 1 naming the first bad event otherwise. An export that starts after event 1 is
checked from its first event on, whose link to the past is taken on trust.

This is a second, independent reading of the format documented in ``audit/chain.py``: the
hash of an event is the SHA-256 of the canonical JSON (sorted keys, no whitespace, UTF-8) of
its fields plus ``"v": 1``, and its ``prev_hash`` is the hash of the event before it.
"""

import csv
import hashlib
import json
import sys

HASHED = (
    "sequence", "occurred_at", "actor_type", "actor_id", "actor_label", "action",
    "subject_type", "subject_id", "capability", "data", "prev_hash",
)  # fmt: skip


def rows(path):
    with open(path, encoding="utf-8", newline="") as file:
        first = file.read(1)
        file.seek(0)
        if first == "{":
            for line in file:
                if line.strip():
                    yield json.loads(line)
        else:
            for row in csv.DictReader(file):
                row["sequence"] = int(row["sequence"])
                row["data"] = json.loads(row["data"])
                yield row


def digest(row):
    document = {name: row[name] for name in HASHED}
    document["v"] = 1
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def verify(path):
    previous_sequence, previous_hash, count = None, None, 0
    for row in rows(path):
        sequence = row["sequence"]
        if previous_sequence is not None and sequence != previous_sequence + 1:
            return f"event #{previous_sequence + 1}: missing or out of order (found #{sequence})"
        if digest(row) != row["hash"]:
            return f"event #{sequence}: its content does not match its hash"
        if previous_hash is not None and row["prev_hash"] != previous_hash:
            return f"event #{sequence}: it does not link to event #{previous_sequence}"
        if previous_hash is None and sequence == 1 and row["prev_hash"] != "0" * 64:
            return "event #1: it does not start the chain"
        previous_sequence, previous_hash, count = sequence, row["hash"], count + 1
    if count == 0:
        return "the export holds no events"
    print(f"OK: {count} events verified, up to #{previous_sequence} ({previous_hash})")
    return None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    problem = verify(sys.argv[1])
    if problem:
        print(f"FAILED: {problem}")
        sys.exit(1)
