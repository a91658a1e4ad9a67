"""Exporting the trail as JSON Lines or CSV, and reading such an export back for verification.

Each exported row carries every hashed field, ``prev_hash`` and ``hash``, so an export verifies
on its own (``manage.py audit_verify --file``, or the dependency-free
``audit/verify_export.py``). Rows are produced one at a time: memory stays flat however long
the trail.

* JSON Lines: one canonical JSON object per line (``chain.EVENT_FIELDS`` plus ``hash``).
* CSV: a header row, then one row per event in the same column order; ``data`` is its
  canonical JSON text.
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

from audit import chain

FORMATS = {"jsonl": "application/jsonl", "csv": "text/csv"}
COLUMNS = (*chain.EVENT_FIELDS, "hash")


def export_lines(rows: Iterable[Mapping[str, Any]], fmt: str) -> Iterator[str]:
    """Yield the export of ``rows`` line by line (each line ends with a newline)."""
    if fmt == "jsonl":
        for row in rows:
            yield chain.canonical_json(_plain(row)) + "\n"
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            plain = _plain(row)
            plain["data"] = chain.canonical_json(plain["data"])
            writer.writerow([plain[column] for column in COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():  # no rows: the header alone
            yield buffer.getvalue()
    else:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


class ExportError(ValueError):
    """The file is not a readable export; ``line`` says where."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def read_export(stream: TextIO, fmt: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the rows of an export file, in file order, ready for ``verify_events``.

    The format is ``fmt``, or guessed from the first character (``{`` for JSON Lines).
    """
    first = stream.read(1)
    rest = stream
    fmt = fmt or ("jsonl" if first == "{" else "csv")
    lines = _prepend(first, rest)
    if fmt == "jsonl":
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ExportError(number, f"not JSON ({exc})") from None
            yield _checked(row, number)
    else:
        reader = csv.DictReader(lines)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ExportError(1, f"the CSV header must be {','.join(COLUMNS)}")
        for row in reader:
            try:
                row["data"] = json.loads(row["data"])
                row["sequence"] = int(row["sequence"])
            except ValueError as exc:
                raise ExportError(reader.line_num, f"unreadable value ({exc})") from None
            yield _checked(row, reader.line_num)


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    plain = {column: row[column] for column in COLUMNS}
    if not isinstance(plain["occurred_at"], str):
        plain["occurred_at"] = chain.format_timestamp(plain["occurred_at"])
    return plain


def _checked(row: Any, line: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ExportError(line, "not an event object")
    missing = [column for column in COLUMNS if column not in row]
    if missing:
        raise ExportError(line, f"missing {', '.join(missing)}")
    if not isinstance(row["sequence"], int) or not isinstance(row["data"], dict):
        raise ExportError(line, "sequence must be an integer and data an object")
    return row


def _prepend(first: str, rest: TextIO) -> Iterator[str]:
    lines = iter(rest)
    head = next(lines, "")
    yield first + head
    yield from lines
