"""The REST API for systems: submit a suggestion, read one, list your own.

Each view validates with a serializer, calls one service or selector, and serializes the
answer. Errors are shaped by ``reviews.api_support.api_exception_handler``.
"""

import json
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet, prefetch_related_objects
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve, reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from capabilities.models import ApiToken
from capabilities.permissions import can_submit_to_capability
from reviews.api_support import (
    CapabilityNotInScope,
    IdempotencyKeyInFlightError,
    IdempotencyKeyReusedError,
    error_body,
)
from reviews.models import Decision, Suggestion
from reviews.selectors import (
    access_suggestion,
    suggestion_list_for_token,
    suggestion_list_for_user,
)
from reviews.serializers import (
    ErrorSerializer,
    SuggestionListQuerySerializer,
    SuggestionSerializer,
    SuggestionSubmitSerializer,
)
from reviews.services import (
    IDEMPOTENCY_HEADER,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IdempotentReplay,
    idempotency_key_check,
    idempotency_key_use,
    suggestion_submit,
)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Describes ``ApiTokenAuthentication`` in the OpenAPI schema as HTTP bearer auth."""

    target_class = "capabilities.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 - the scheme name, not a secret
        )


class SubmitsAsApiClient(BasePermission):
    """Only API clients write, with a token; people signed in to the pages may only read."""

    message = "Only API clients submit suggestions: send Authorization: Bearer <token>."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.method in SAFE_METHODS or isinstance(request.auth, ApiToken)


class SuggestionCursorPagination(CursorPagination):
    """Keyset pagination, newest first: pages stay stable while new suggestions arrive.

    The cursor holds the last ``created_at`` seen (and an offset among rows sharing it).

    A cursor that cannot be decoded, or whose position is not a point in time, is a 400
    naming ``cursor`` (never a database error).
    """

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request: Request) -> Cursor | None:
        invalid = exceptions.ValidationError({self.cursor_query_param: ["Invalid cursor."]})
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise invalid from None
        if cursor is not None and cursor.position is not None:
            try:
                position = parse_datetime(str(cursor.position))
            except ValueError:
                position = None
            if position is None or position.tzinfo is None:
                raise invalid
        return cursor

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paginated = super().get_paginated_response_schema(schema)
        for link in ("next", "previous"):
            paginated["properties"][link]["example"] = (
                "https://signoff.example/api/v1/suggestions/?cursor=cD0yMDI2LTAxLTAx"
            )
        return paginated


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


_INVALID = _error("A field is invalid; `fields` names it (`invalid`, or `parse_error`).")
_UNAUTHENTICATED = _error(
    "No token, or one that does not work: unknown, revoked, expired, or its client deactivated "
    "(`message` says which)."
)
_NOT_FOUND = _error("No such suggestion, or not one the caller may read.")

_SUBMIT_EXAMPLE = OpenApiExample(
    "A refund",
    request_only=True,
    value={
        "capability": "refunds.issue",
        "external_id": "ticket-8812",
        "payload": {"amount": "120.00", "currency": "EUR", "order": "A-1"},
        "confidence": 0.87,
        "model": {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"},
        "prompt": "Customer asks for a refund of order A-1.",
        "context": {"channel": "email"},
        "usage": {"input_tokens": 1200, "output_tokens": 300, "cost": "0.0042"},
        "attempt": 1,
        "callback_url": "https://example.invalid/hooks/signoff",
    },
)


IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"
_IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$"},
    OpenApiParameter.HEADER,
    description=(
        "Makes a retry safe: a key of your choice (a UUID, say), 1 to 255 printable ASCII "
        "characters, new for each new suggestion and the same on every retry of it. Scoped to "
        "your API client; kept at least 24 hours."
    ),
)
_IDEMPOTENT_REPLAYED = OpenApiParameter(
    IDEMPOTENT_REPLAYED_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    enum=["true"],
    description="Present when this answer replays the first answer to the `Idempotency-Key`.",
    response=[201, 400, 403],
)
_LOCATION = OpenApiParameter(
    "Location",
    OpenApiTypes.URI,
    OpenApiParameter.HEADER,
    description="The URL of the suggestion.",
    response=[201],
)
_RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    description="Seconds to wait before retrying.",
    response=[409],
)


class SuggestionListCreateApi(APIView):
    """``/api/v1/suggestions/``: submit a suggestion, or list the ones the caller may read."""

    permission_classes = [IsAuthenticated, SubmitsAsApiClient]
    pagination_class = SuggestionCursorPagination

    @extend_schema(
        summary="List suggestions",
        description=(
            "A token sees the suggestions its client submitted to the capabilities in the "
            "token's scope; a signed-in person sees those of the capabilities they may review. "
            "Newest first, 50 a page (`page_size` up to 200); follow `next` to walk the pages."
        ),
        parameters=[SuggestionListQuerySerializer],
        responses={200: SuggestionSerializer(many=True), 400: _INVALID, 401: _UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        query = SuggestionListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        if isinstance(request.auth, ApiToken):
            suggestions = suggestion_list_for_token(token=request.auth, **query.validated_data)
        else:
            suggestions = suggestion_list_for_user(user=request.user, **query.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(_with_decisions(suggestions), request, view=self)
        return paginator.get_paginated_response(SuggestionSerializer(page, many=True).data)

    @extend_schema(
        summary="Submit a suggestion",
        description=(
            "Validates, redacts the prompt and context, and routes the suggestion by the "
            "capability's active policy: `auto_approved`, `auto_rejected` or `pending_review`. "
            "`route` says why and which policy version decided. A refused request stores "
            "nothing.\n\n"
            "To retry safely, send an `Idempotency-Key`: the same key with the same body "
            "(formatting aside) is done once and its answer, errors included, is replayed; "
            "with another body it is 422; while the first request is still in progress, 409. "
            "Keys belong to the API client and are kept at least 24 hours."
        ),
        request=SuggestionSubmitSerializer,
        parameters=[_IDEMPOTENCY_KEY, _IDEMPOTENT_REPLAYED, _LOCATION, _RETRY_AFTER],
        responses={
            201: OpenApiResponse(
                SuggestionSerializer,
                description=(
                    "Accepted and routed; `Location` is the suggestion's URL. A replay of the "
                    "first answer to the same `Idempotency-Key` and body is the same status "
                    "and the same bytes, with the header `Idempotent-Replayed: true`."
                ),
            ),
            400: _error(
                "A field is invalid; `fields` names it (`invalid`, or `parse_error`); or the "
                "`Idempotency-Key` header is not 1 to 255 printable ASCII characters."
            ),
            401: _UNAUTHENTICATED,
            403: _error(
                "`capability_not_in_scope`: the capability is outside the token's scope (even "
                "if its client may submit to it); `permission_denied`: the caller is not an "
                "API client."
            ),
            409: _error(
                "`idempotency_key_in_flight`: the first request with this `Idempotency-Key` "
                "is still in progress; retry after `Retry-After` seconds to get its answer."
            ),
            413: _error("`payload_too_large`: the body is over the size limit (256 KB)."),
            422: _error(
                "`idempotency_key_reused`: this `Idempotency-Key` was first used with a "
                "different body; nothing was done. Use a new key for a new request."
            ),
        },
        examples=[_SUBMIT_EXAMPLE],
    )
    def post(self, request: Request) -> HttpResponseBase:
        token = request.auth
        assert isinstance(token, ApiToken)  # SubmitsAsApiClient let only token callers through
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return self._submit(request, token)
        idempotency_key_check(key)
        try:
            answer = idempotency_key_use(
                client=token.client,
                token=token,
                key=key,
                method=request.method or "POST",
                path=request.path,
                body=request.data,
                run=lambda: self._rendered(request, token),
            )
        except IdempotencyKeyReused as exc:
            raise IdempotencyKeyReusedError(str(exc)) from None
        except IdempotencyKeyInFlight as exc:
            raise IdempotencyKeyInFlightError(str(exc)) from None
        except PermissionDenied as exc:  # a replay to a token without the capability
            raise CapabilityNotInScope(str(exc)) from None
        if isinstance(answer, IdempotentReplay):
            return _replayed(answer)
        return answer

    def _submit(self, request: Request, token: ApiToken) -> Response:
        serializer = SuggestionSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        capability = serializer.validated_data["capability"]
        if not can_submit_to_capability(token, capability):
            raise CapabilityNotInScope(f"This token may not submit to {capability.key}.")
        try:
            suggestion = suggestion_submit(
                client=token.client, token=token, **serializer.validated_data
            )
        except PermissionDenied as exc:  # the scope changed since the check above
            raise CapabilityNotInScope(str(exc)) from None
        location = reverse("suggestion-detail", kwargs={"suggestion_id": suggestion.pk})
        return Response(
            SuggestionSerializer(suggestion).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )

    def _rendered(self, request: Request, token: ApiToken) -> Response:
        """The submission's answer, errors included, rendered now so that its exact bytes can
        be kept for replays. What the API's error handler leaves to Django is raised."""
        try:
            response = self._submit(request, token)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.finalize_response(request, response)
        response.render()
        return response


class SuggestionDetailApi(APIView):
    """``/api/v1/suggestions/{id}/``: one suggestion with its decisions and execution."""

    @extend_schema(
        summary="Read a suggestion",
        description=(
            "Its status, decisions and execution. Only a token of its submitter whose scope "
            "holds its capability, a person allowed on its capability, or an auditor may read "
            "it; anyone else gets 404, as if it did not exist."
        ),
        parameters=[
            OpenApiParameter("suggestion_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
        ],
        responses={200: SuggestionSerializer, 401: _UNAUTHENTICATED, 404: _NOT_FOUND},
    )
    def get(self, request: Request, suggestion_id: str) -> Response:
        # A token reads within its own scope, not all its client may reach.
        principal = request.auth if isinstance(request.auth, ApiToken) else request.user
        suggestion = access_suggestion(principal, suggestion_id)
        prefetch_related_objects([suggestion], _decisions_with_reviewers())
        return Response(SuggestionSerializer(suggestion).data)


@csrf_exempt  # it changes nothing, whatever the method
def endpoint_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other path under the API: 404 in the API's error shape, not an HTML page.

    A path that exists with a trailing slash says so, instead of being redirected (a redirect
    would turn a POST into a GET and lose its body).
    """
    message = f"There is no API endpoint at {request.path}."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not endpoint_not_found:
            message += f" Did you mean {request.path}/ (with the trailing slash)?"
    return JsonResponse(error_body("not_found", message), status=404)


def _replayed(answer: IdempotentReplay) -> HttpResponse:
    """The stored answer to an ``Idempotency-Key``, byte for byte, marked as a replay."""
    response = HttpResponse(
        answer.content, status=answer.status_code, content_type="application/json"
    )
    response[IDEMPOTENT_REPLAYED_HEADER] = "true"
    if answer.status_code == status.HTTP_201_CREATED:
        suggestion_id = json.loads(answer.content)["id"]
        response["Location"] = reverse("suggestion-detail", kwargs={"suggestion_id": suggestion_id})
    return response


def _decisions_with_reviewers() -> Prefetch:
    return Prefetch("decisions", queryset=Decision.objects.select_related("reviewer"))


def _with_decisions(suggestions: QuerySet[Suggestion]) -> QuerySet[Suggestion]:
    # One query for all decisions of a page, reviewers joined, whatever the page size.
    return suggestions.prefetch_related(_decisions_with_reviewers())
