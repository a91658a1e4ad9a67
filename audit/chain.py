"""The audit chain's hashing: pure functions, no database, no Django.

Format version 1, for anyone re-implementing the check (``audit/verify_export.py`` is such a
re-implementation, in plain Python with no dependencies):

* Every event has these fields: ``sequence`` (integer, 1, 2, 3 … without gaps),
  ``occurred_at`` (UTC, exactly ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), ``actor_type``,
  ``actor_id``, ``actor_label``, ``action``, ``subject_type``, ``subject_id``,
  ``capability`` (strings, possibly empty), ``data`` (a JSON object) and ``prev_hash`` (the
  previous event's ``hash``; 64 zeros for event 1).
* ``data`` holds only strings, integers, booleans, null, arrays and objects: numbers that are
  not integers are recorded as decimal strings (``"0.87"``), so every language encodes them
  the same way.
* The hashed document is the JSON object of those fields plus ``"v": 1``, encoded
  canonically: keys sorted by code point at every level, no whitespace (separators ``,`` and
  ``:``), strings as UTF-8 with only ``"``, ``\\`` and control characters escaped (control
  characters as ``\\uXXXX``, except ``\\b \\f \\n \\r \\t``).
* ``hash`` is the lowercase hex SHA-256 of those bytes.

Checkpoints sign ``{"head_hash": ..., "sequence": ..., "signed_at": ..., "v": 1}`` in the same
encoding (see ``audit.signing``).
"""

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64

# The hashed fields, besides ``v``, in the order exports list them.
EVENT_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "subject_type",
    "subject_id",
    "capability",
    "data",
    "prev_hash",
)

# The C string encoder json.dumps uses with ensure_ascii=False: quotes, backslashes and control
# characters escaped, everything else kept as is.
_encode_text = json.encoder.encode_basestring  # type: ignore[attr-defined]
_encode_data = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


def canonical_json(value: Any) -> str:
    """Encode plain JSON ``value`` canonically, as described above."""
    return _encode_data(value)


def normalize_data(data: Any) -> Any:
    """Return ``data`` as the plain JSON it is stored and hashed as.

    Decimals, floats, datetimes, dates and UUIDs become strings; mapping keys become strings.
    Anything else that is not JSON raises ``TypeError``.
    """
    if data is None or isinstance(data, bool | int | str):
        return data
    if isinstance(data, float):
        if data != data or data in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinite numbers cannot be recorded in the audit trail")
        return repr(data)
    if isinstance(data, Decimal):
        return str(data)
    if isinstance(data, dt.datetime):
        return format_timestamp(data)
    if isinstance(data, dt.date):
        return data.isoformat()
    if isinstance(data, uuid.UUID):
        return str(data)
    if isinstance(data, Mapping):
        return {str(key): normalize_data(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [normalize_data(item) for item in data]
    raise TypeError(f"{type(data).__name__} cannot be recorded in the audit trail")


def format_timestamp(moment: dt.datetime) -> str:
    """Format an aware datetime as UTC with microseconds and a ``Z`` suffix."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    # isoformat ends in "+00:00" for UTC; years before 1000 are zero-padded as well.
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def event_document_parts(fields: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The canonical document of an event, split around the values an append learns last.

    ``document = parts[0] + occurred_at + parts[1] + prev_hash + parts[2] + str(sequence)
    + parts[3]``: the database can then complete it under its lock on the chain head. Keys in
    sorted order, which is the same text as ``canonical_json`` of the whole document.
    """
    text = _encode_text
    return (
        f'{{"action":{text(fields["action"])},'
        f'"actor_id":{text(fields["actor_id"])},'
        f'"actor_label":{text(fields["actor_label"])},'
        f'"actor_type":{text(fields["actor_type"])},'
        f'"capability":{text(fields["capability"])},'
        f'"data":{_encode_data(fields["data"])},'
        '"occurred_at":"',
        '","prev_hash":"',
        '","sequence":',
        f',"subject_id":{text(fields["subject_id"])},'
        f'"subject_type":{text(fields["subject_type"])},'
        f'"v":{FORMAT_VERSION}}}',
    )


def event_document(fields: Mapping[str, Any], prev_hash: str) -> str:
    """The canonical document an event's hash is taken over.

    ``fields["occurred_at"]`` may be a datetime or its formatted string; ``fields["data"]``
    must already be normalized.
    """
    occurred_at = fields["occurred_at"]
    if not isinstance(occurred_at, str):
        occurred_at = format_timestamp(occurred_at)
    before_time, before_prev, before_sequence, after_sequence = event_document_parts(fields)
    # Timestamps and hashes need no escaping: they are digits, letters and punctuation.
    return (
        f"{before_time}{occurred_at}{before_prev}{prev_hash}{before_sequence}"
        f"{int(fields['sequence'])}{after_sequence}"
    )


def event_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    """The SHA-256 hex digest of one event chained to its predecessor's hash."""
    return hashlib.sha256(event_document(fields, prev_hash).encode()).hexdigest()
