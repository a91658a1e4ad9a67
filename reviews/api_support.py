"""The REST API's plumbing: a size-limited JSON parser and one JSON shape for every error.

Every error the API answers has the body ``{"code": ..., "message": ..., "fields": ...}``:
``code`` is a stable machine-readable name, ``message`` a sentence for people, and ``fields``
(validation errors only) maps each invalid field, nested ones by dotted name such as
``model.name``, to its messages.
"""

import math
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core import exceptions as django_exceptions
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser, get_encoding  # type: ignore[attr-defined]
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils import json


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than this API accepts."
    default_code = "payload_too_large"


class CapabilityNotInScope(exceptions.PermissionDenied):
    default_detail = "This token may not submit to that capability."
    default_code = "capability_not_in_scope"


class IdempotencyKeyReusedError(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used with a different request."
    default_code = "idempotency_key_reused"


class IdempotencyKeyInFlightError(exceptions.APIException):
    """Answered with ``Retry-After: 1``: the first request with the key is about to finish."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The first request with this Idempotency-Key is still in progress."
    default_code = "idempotency_key_in_flight"
    wait = 1


class LimitedJSONParser(JSONParser):
    """Strict JSON (no ``NaN`` or ``Infinity`` literals) from bodies of at most
    ``settings.SIGNOFF_MAX_BODY_BYTES`` (or the setting the view names in
    ``max_body_setting``); a larger body is refused with 413.

    The declared ``Content-Length`` is checked first, so an honest large request is refused
    before anything is read. The stream is then read up to one byte past the limit, never more,
    so a body whose length was not declared, or was declared wrongly, cannot get through either.
    """

    strict = True

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        parser_context = parser_context or {}
        setting = getattr(parser_context.get("view"), "max_body_setting", "SIGNOFF_MAX_BODY_BYTES")
        limit: int = getattr(settings, setting)
        request = parser_context.get("request")
        declared = _declared_length(request.META if request is not None else {})
        if declared is not None and declared > limit:
            raise PayloadTooLarge(_too_large_message(limit))
        body = _read_at_most(stream, limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge(_too_large_message(limit))
        encoding = get_encoding(parser_context)
        try:
            return json.loads(body.decode(encoding), parse_constant=json.strict_constant)
        except ValueError as exc:  # also UnicodeDecodeError
            raise exceptions.ParseError(f"The body is not valid JSON: {exc}") from None
        except RecursionError:
            raise exceptions.ParseError("The body is not valid JSON: nested too deeply.") from None


def api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    """Answer any error a request can cause with the API's JSON error body.

    DRF's exceptions keep their status code and headers (``WWW-Authenticate`` on 401,
    ``Retry-After`` on 429); Django's ``Http404``, ``PermissionDenied``, ``ValidationError``
    and ``RequestDataTooBig`` become 404, 403, 400 and 413. Anything else is a bug and is left
    to Django's 500 handling. The transaction, if any, is marked for rollback.
    """
    # Imported here: rest_framework.views reads the parser setting, which names this module.
    from rest_framework.views import set_rollback

    exc = _as_api_exception(exc)
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if wait:
        headers["Retry-After"] = str(math.ceil(wait))
    set_rollback()
    return Response(_error_body(exc), status=exc.status_code, headers=headers)


def error_body(code: str, message: str) -> dict[str, Any]:
    """The error body for an answer given outside DRF's exception handling."""
    return {"code": code, "message": message}


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, Http404):
        return exceptions.NotFound(*exc.args)
    if isinstance(exc, django_exceptions.PermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, django_exceptions.RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, django_exceptions.ValidationError):
        if hasattr(exc, "error_dict"):
            return exceptions.ValidationError(exc.message_dict)
        return exceptions.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: exc.messages})
    return exc


def _error_body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        names = ", ".join(name for name in fields if name != api_settings.NON_FIELD_ERRORS_KEY)
        message = (
            f"Some fields are invalid: {names}."
            if names
            else " ".join(" ".join(messages) for messages in fields.values())
        )
        return {
            "code": "invalid",
            "message": message or "The request is invalid.",
            "fields": fields,
        }
    detail = exc.detail
    code = getattr(detail, "code", None) or exc.default_code
    if isinstance(detail, list | dict):  # an APIException raised with structured detail
        message = " ".join(" ".join(messages) for messages in _flatten(detail).values())
    else:
        message = str(detail)
    return error_body(str(code), message or str(exc.default_detail))


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"model": {"name": ["Required."]}}`` as ``{"model.name": ["Required."]}``.

    Errors a nested serializer raises about itself (``non_field_errors``) are filed under the
    nested field's own name; list items are numbered (``items.0.name``).
    """
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                name = prefix or key
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in _flatten(value, name).items():
                fields.setdefault(field, []).extend(messages)
    elif isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        for index, item in enumerate(detail):
            name = f"{prefix}.{index}" if prefix else str(index)
            for field, messages in _flatten(item, name).items():
                fields.setdefault(field, []).extend(messages)
    elif isinstance(detail, list):
        fields[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(item) for item in detail]
    else:
        fields[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(detail)]
    return fields


def _declared_length(meta: Mapping[str, Any]) -> int | None:
    try:
        return int(meta.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    # A single read may return less than asked even when more is coming; keep reading until the
    # stream ends or the cap is reached, and never ask for more than the cap.
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _too_large_message(limit: int) -> str:
    return f"The request body is larger than this API accepts ({limit} bytes)."
