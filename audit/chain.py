"""The audit chain's hashing: pure functions, no database.

Format version 1, for anyone re-implementing the check:

* The hashed document is a JSON object with exactly these keys: ``v`` (the integer 1),
  ``sequence`` (integer), ``occurred_at`` (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), ``actor_type``,
  ``actor_id``, ``actor_label``, ``action``, ``subject_type``, ``subject_id``, ``capability``
  (strings), ``data`` (the event's JSON object) and ``prev_hash`` (the previous event's hash as
  64 lowercase hex digits; 64 zeros for the first event).
* It is encoded canonically: keys sorted, no whitespace (separators ``,`` and ``:``), non-ASCII
  characters kept as UTF-8, no NaN or Infinity. Inside ``data``, decimals are strings.
* An event's ``hash`` is the lowercase hex SHA-256 of those UTF-8 bytes.
"""

import datetime as dt
import hashlib
import json
import uuid
from decimal import Decimal
from typing import Any

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """Encode ``value`` in the canonical form described above."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_encode_default,
    )


def normalize_data(data: Any) -> Any:
    """Return ``data`` as the plain JSON it will be stored and hashed as."""
    return json.loads(canonical_json(data))


def format_timestamp(moment: dt.datetime) -> str:
    """Format an aware datetime as UTC with microseconds and a ``Z`` suffix."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(fields: dict[str, Any], prev_hash: str) -> str:
    """Return the SHA-256 hex digest of one event chained to its predecessor's hash."""
    document = {
        "v": FORMAT_VERSION,
        "sequence": fields["sequence"],
        "occurred_at": format_timestamp(fields["occurred_at"]),
        "actor_type": fields["actor_type"],
        "actor_id": fields["actor_id"],
        "actor_label": fields["actor_label"],
        "action": fields["action"],
        "subject_type": fields["subject_type"],
        "subject_id": fields["subject_id"],
        "capability": fields["capability"],
        "data": fields["data"],
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def _encode_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable in an audit event")
