"""Pure checks of payloads against a capability's JSON Schema (draft 2020-12). No database."""

from typing import Any

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


def schema_errors(schema: dict[str, Any] | None, payload: Any) -> list[str]:
    """What in ``payload`` does not satisfy ``schema``, one ``"path: message"`` per error.

    The path is a JSON Pointer into the payload (``/amount``, ``/items/0``; ``/`` for the
    payload itself). Errors come in a stable order. Empty when the payload is valid or there is
    no schema. ``schema`` must have passed ``check_schema``.
    """
    if schema is None:
        return []
    validator = Draft202012Validator(schema)
    found = [
        (_pointer(error.absolute_path), error.message) for error in validator.iter_errors(payload)
    ]
    return [f"{path}: {message}" for path, message in sorted(found)]


def check_schema(schema: Any) -> None:
    """Refuse what is not a usable JSON Schema (draft 2020-12); ``None`` means no schema.

    Raises ``ValidationError`` naming ``payload_schema``.
    """
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise ValidationError({"payload_schema": ["A payload schema must be a JSON object."]})
    outside = sorted(ref for ref in _refs(schema) if not ref.startswith("#"))
    if outside:
        # Resolving them would fetch from elsewhere at check time, or fail on every payload.
        raise ValidationError(
            {"payload_schema": [f"Only references inside the schema (#…) are allowed: {outside}."]}
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = _pointer(exc.absolute_path)
        raise ValidationError(
            {"payload_schema": [f"Not a valid JSON Schema (draft 2020-12): {where}: {exc.message}"]}
        ) from None


def _refs(node: Any) -> list[str]:
    """Every ``$ref`` and ``$dynamicRef`` value in the schema, at any depth."""
    if isinstance(node, dict):
        found = [str(value) for key, value in node.items() if key in ("$ref", "$dynamicRef")]
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _pointer(path: Any) -> str:
    # RFC 6901 escaping, so a key containing "/" or "~" cannot be mistaken for two steps.
    steps = [str(step).replace("~", "~0").replace("/", "~1") for step in path]
    return "/" + "/".join(steps)
