"""Identifiers of rows that are written at a high rate and looked up by id.

A suggestion's id is a version 7 UUID (RFC 9562, section 5.7): 48 bits of Unix time in
milliseconds, then 74 random bits. Random (version 4) ids scatter every insert across the
whole primary key and across the audit trail's subject index, so each new row dirties a page
that is rarely in memory once those indexes outgrow it; time-ordered ids append at their
right-hand edge, next to the rows written just before. Measured on a million suggestions
and three million events: appending a batch's audit events took about a sixth less.

The ids stay unguessable (74 random bits); what they disclose is their creation time to the
millisecond, which the suggestion shows anyway to whoever may read it.
"""

import os
import time
import uuid

_VERSION = 7
_VARIANT = 0b10  # RFC 9562's variant


def uuid7() -> uuid.UUID:
    """A new version 7 UUID: ordered by the millisecond it was made in, random within it."""
    milliseconds = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10))  # 80 bits: 12 + 62 are used
    value = (
        (milliseconds & (2**48 - 1)) << 80
        | _VERSION << 76
        | (random >> 62 & 0xFFF) << 64
        | _VARIANT << 62
        | random & (2**62 - 1)
    )
    return uuid.UUID(int=value)
