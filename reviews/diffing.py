"""What a reviewer changed in a payload: field-level changes and a line diff for display."""

import difflib
import hashlib
import json
from typing import Any

from audit.chain import canonical_json

_MISSING = object()


def payload_fingerprint(payload: Any) -> str:
    """The lowercase hex SHA-256 of ``payload``'s canonical JSON: equal for equal proposals,
    whatever their key order or whitespace (``Suggestion.fingerprint``)."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def payload_changes(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """List the leaf values that differ, as ``{"path", "before", "after"}`` (absent is omitted).

    Paths are JSON Pointers (``/items/0/amount``), so they are unambiguous for any key.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            child = f"{path}/{_escape(str(key))}"
            changes += payload_changes(before.get(key, _MISSING), after.get(key, _MISSING), child)
        return changes
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            change
            for index, (old, new) in enumerate(zip(before, after, strict=True))
            for change in payload_changes(old, new, f"{path}/{index}")
        ]
    if before == after and type(before) is type(after):
        return []
    change: dict[str, Any] = {"path": path or "/"}
    if before is not _MISSING:
        change["before"] = before
    if after is not _MISSING:
        change["after"] = after
    return [change]


def payload_line_diff(before: Any, after: Any) -> list[tuple[str, str]]:
    """A unified line diff of the two payloads, pretty-printed, as ``(kind, line)`` pairs.

    ``kind`` is ``"added"``, ``"removed"``, ``"context"`` or ``"hunk"``: templates style by it.
    """
    old = pretty_json(before).splitlines()
    new = pretty_json(after).splitlines()
    lines = []
    for line in difflib.unified_diff(old, new, "proposed", "final", n=3, lineterm=""):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "added", "-": "removed", "@": "hunk"}.get(line[:1], "context")
        lines.append((kind, line))
    return lines


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
