"""The REST API for systems: submit a suggestion (or a batch of them), read one, list your own.

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

from capabilities.models import ApiToken, Capability
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
    MAX_BATCH_ITEMS,
    ErrorSerializer,
    SuggestionBatchAnswerSerializer,
    SuggestionBatchSerializer,
    SuggestionListQuerySerializer,
    SuggestionSerializer,
    SuggestionSubmitSerializer,
    shared,
    validated,
)
from reviews.services import (
    IDEMPOTENCY_HEADER,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IdempotentReplay,
    Submission,
    idempotency_key_check,
    idempotency_key_use,
    suggestion_submit,
    suggestions_submit_many,
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


_BATCH_EXAMPLE = OpenApiExample(
    "Two refunds, the second with an invalid confidence",
    request_only=True,
    value={
        "items": [
            _SUBMIT_EXAMPLE.value,
            {
                "capability": "refunds.issue",
                "external_id": "ticket-8813",
                "payload": {"amount": "15.00", "currency": "EUR", "order": "A-7"},
                "confidence": 1.5,
                "model": {"name": "gpt-4o"},
            },
        ]
    },
)
_BATCH_ANSWER_EXAMPLE = OpenApiExample(
    "One created, one refused",
    response_only=True,
    status_codes=["200"],
    value={
        "created": 1,
        "failed": 1,
        "results": [
            {
                "index": 0,
                "status": 201,
                "suggestion": {
                    "id": "0b7c6a8e-3f1d-4c2b-9e5a-7d8f6a1b2c3d",
                    "capability": "refunds.issue",
                    "external_id": "ticket-8812",
                    "status": "pending_review",
                    "route": {"reason": "confidence_between_thresholds", "policy_version": 3},
                    "payload": {"amount": "120.00", "currency": "EUR", "order": "A-1"},
                    "final_payload": None,
                    "confidence": 0.87,
                    "model": {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"},
                    "usage": {"input_tokens": 1200, "output_tokens": 300, "cost": "0.004200"},
                    "attempt": 1,
                    "decisions": [],
                    "execution": {
                        "status": "not_started",
                        "attempts": 0,
                        "error": "",
                        "executed_at": None,
                    },
                    "created_at": "2026-01-05T09:30:00.123456Z",
                    "decided_at": None,
                },
            },
            {
                "index": 1,
                "status": 400,
                "error": {
                    "code": "invalid",
                    "message": "Some fields are invalid: confidence.",
                    "fields": {"confidence": ["Must be between 0 and 1."]},
                },
            },
        ],
    },
)


IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"
_IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$"},
    OpenApiParameter.HEADER,
    description=(
        "Makes a retry safe: a key of your choice (a UUID, say), 1 to 255 printable ASCII "
        "characters, new for each new request and the same on every retry of it. Scoped to "
        "your API client; kept at least 24 hours."
    ),
)


def _idempotent_replayed(*statuses: int) -> OpenApiParameter:
    return OpenApiParameter(
        IDEMPOTENT_REPLAYED_HEADER,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        enum=["true"],
        description="Present when this answer replays the first answer to the `Idempotency-Key`.",
        response=list(statuses),
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
_IDEMPOTENCY_ERRORS = {
    409: _error(
        "`idempotency_key_in_flight`: the first request with this `Idempotency-Key` is still in "
        "progress; retry after `Retry-After` seconds to get its answer."
    ),
    422: _error(
        "`idempotency_key_reused`: this `Idempotency-Key` was first used with a different body; "
        "nothing was done. Use a new key for a new request."
    ),
}
_TOO_LARGE = _error("`payload_too_large`: the body is over the size limit (256 KB).")


class SubmissionApi(APIView):
    """What the endpoints that submit share: only API clients post, with a token, and an
    ``Idempotency-Key`` makes a retry safe (``idempotency_key_use``).

    A subclass answers one request in ``_submit``; ``_check_replay`` may refuse to replay a
    stored answer to a token that may no longer see what it shows.
    """

    permission_classes = [IsAuthenticated, SubmitsAsApiClient]

    def _submit(self, request: Request, token: ApiToken) -> Response:
        raise NotImplementedError

    def _check_replay(self, answer: IdempotentReplay, token: ApiToken) -> None:
        """Nothing by default: ``idempotency_key_use`` checks a single submission's scope."""

    def _submit_once(self, request: Request) -> HttpResponseBase:
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
            self._check_replay(answer, token)
            return _replayed(answer)
        return answer

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


class SuggestionListCreateApi(SubmissionApi):
    """``/api/v1/suggestions/``: submit a suggestion, or list the ones the caller may read."""

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
        parameters=[_IDEMPOTENCY_KEY, _idempotent_replayed(201, 400, 403), _LOCATION, _RETRY_AFTER],
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
            **_IDEMPOTENCY_ERRORS,
            413: _TOO_LARGE,
        },
        examples=[_SUBMIT_EXAMPLE],
    )
    def post(self, request: Request) -> HttpResponseBase:
        return self._submit_once(request)

    def _submit(self, request: Request, token: ApiToken) -> Response:
        submission = validated(shared(SuggestionSubmitSerializer), request.data)
        try:
            # The service checks the token's scope (can_submit_to_capability) before anything
            # else, the payload's schema included, and stores nothing when it refuses.
            suggestion = suggestion_submit(client=token.client, token=token, **submission)
        except PermissionDenied as exc:
            raise CapabilityNotInScope(str(exc)) from None
        location = reverse("suggestion-detail", kwargs={"suggestion_id": suggestion.pk})
        return Response(
            shared(SuggestionSerializer).to_representation(suggestion),
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


class SuggestionBatchApi(SubmissionApi):
    """``/api/v1/suggestions/batch/``: submit up to ``MAX_BATCH_ITEMS`` suggestions at once."""

    max_body_setting = "SIGNOFF_MAX_BATCH_BODY_BYTES"

    @extend_schema(
        summary="Submit suggestions in a batch",
        description=(
            f"Up to {MAX_BATCH_ITEMS} suggestions under `items`, each exactly what "
            "`POST /api/v1/suggestions/` takes, and each checked, redacted, routed and audited "
            "exactly as that endpoint would. An invalid item does not stop the others: "
            "`results` holds one entry per item, in order, with the item's `index` and either "
            "the created `suggestion` (`status` 201) or the `error`, with the `status`, that "
            "the single endpoint would have answered for the item alone (400 `invalid`, 403 "
            "`capability_not_in_scope`). The answer is 200 whenever the batch itself is "
            "well-formed, even if every item was refused: read `created` and `failed`. The "
            "created suggestions are stored in one transaction: all of them or, on a crash, "
            "none.\n\n"
            "400 naming `items` refuses the whole batch, storing nothing: a body that is not an "
            f"object with a list under `items`, an empty list, or more than {MAX_BATCH_ITEMS} "
            "items. The body must also fit the API's size limit.\n\n"
            "An `Idempotency-Key` works as for a single submission: a retry of the batch with "
            "the same key and body replays the first answer and stores nothing again."
        ),
        request=SuggestionBatchSerializer,
        parameters=[_IDEMPOTENCY_KEY, _idempotent_replayed(200, 400, 403), _RETRY_AFTER],
        responses={
            200: OpenApiResponse(
                SuggestionBatchAnswerSerializer,
                description=(
                    "The batch was taken: each item's result, in order. A replay of the first "
                    "answer to the same `Idempotency-Key` and body is the same bytes, with the "
                    "header `Idempotent-Replayed: true`."
                ),
            ),
            400: _error(
                "`items` is missing, not a list, empty or too long (`fields` names `items`); "
                "or the `Idempotency-Key` header is not 1 to 255 printable ASCII characters."
            ),
            401: _UNAUTHENTICATED,
            403: _error(
                "`permission_denied`: the caller is not an API client; "
                "`capability_not_in_scope`: a replay to a token whose scope lacks a capability "
                "of the suggestions the batch created."
            ),
            **_IDEMPOTENCY_ERRORS,
            413: _error(
                "`payload_too_large`: the body is over the batch size limit (4 MB by default)."
            ),
        },
        examples=[_BATCH_EXAMPLE, _BATCH_ANSWER_EXAMPLE],
    )
    def post(self, request: Request) -> HttpResponseBase:
        return self._submit_once(request)

    def _submit(self, request: Request, token: ApiToken) -> Response:
        batch = SuggestionBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        checked = batch.validated_data["items"]
        valid = [item for item in checked if not isinstance(item, exceptions.ValidationError)]
        outcomes = iter(
            suggestions_submit_many(
                client=token.client,
                token=token,
                submissions=[Submission(**item) for item in valid],
            )
        )
        results = [
            self._result(
                index,
                item if isinstance(item, exceptions.ValidationError) else next(outcomes),
            )
            for index, item in enumerate(checked)
        ]
        created = sum(1 for result in results if "suggestion" in result)
        answer = {"created": created, "failed": len(results) - created}
        return Response(SuggestionBatchAnswerSerializer({**answer, "results": results}).data)

    def _result(self, index: int, outcome: Suggestion | Exception) -> dict[str, Any]:
        """One item's entry: its suggestion, or its refusal as the single endpoint answers it."""
        if isinstance(outcome, Suggestion):
            return {"index": index, "status": status.HTTP_201_CREATED, "suggestion": outcome}
        if isinstance(outcome, PermissionDenied):
            outcome = CapabilityNotInScope(str(outcome))
        # The API's own handler, so an item's error is the single endpoint's to the byte. (It
        # would also doom a request-wide transaction; there is none: ATOMIC_REQUESTS is off, as
        # idempotency_key_use needs.)
        error = self.get_exception_handler()(outcome, self.get_exception_handler_context())
        assert error is not None  # it answers every refusal a submission can meet
        return {"index": index, "status": error.status_code, "error": error.data}

    def _check_replay(self, answer: IdempotentReplay, token: ApiToken) -> None:
        """A batch's answer shows the suggestions it created: it is replayed only to a token
        whose scope holds all their capabilities, as a single submission's is."""
        if answer.status_code != status.HTTP_200_OK:
            return
        results = json.loads(answer.content)["results"]
        keys = {result["suggestion"]["capability"] for result in results if "suggestion" in result}
        for capability in Capability.objects.filter(key__in=keys):
            if not can_submit_to_capability(token, capability):
                raise CapabilityNotInScope(f"This token may not submit to {capability.key}.")


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
        return Response(shared(SuggestionSerializer).to_representation(suggestion))


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
