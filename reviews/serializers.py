"""What the REST API accepts and answers: suggestions in, suggestions with their decisions out.

Input serializers check every field a system sends before anything is stored, more strictly
than DRF's defaults: a confidence must be a real JSON number, counts must be JSON integers, and
JSON objects must be objects the database can store (no NUL characters, lone surrogates or
non-finite numbers, and nested at most ``MAX_JSON_DEPTH`` levels).
"""

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.validators import URLValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from capabilities.models import Capability
from reviews.models import Decision, DecisionOutcome, ExecutionStatus, Suggestion, SuggestionStatus
from reviews.services import ModelInfo, Usage
from reviews.services.common import storable_text

MAX_JSON_DEPTH = 32
MAX_BATCH_ITEMS = 1000
# PostgreSQL's integer column, which PositiveIntegerField uses.
MAX_DB_INTEGER = 2**31 - 1

_shared: dict[type[serializers.BaseSerializer], Any] = {}


def shared[S: serializers.BaseSerializer](serializer_class: type[S]) -> S:
    """The one unbound instance of ``serializer_class`` this process checks bodies with
    (``validated``) and represents objects with (``to_representation``).

    Building a serializer deep-copies its declared fields, nested serializers included, which
    costs more than one use of them: for one suggestion in or out, more than the checking or
    representing itself. Neither call keeps anything on the instance, so one serves every
    request, on any thread.
    """
    if serializer_class not in _shared:
        _shared[serializer_class] = serializer_class()
    return _shared[serializer_class]


class ConfidenceField(serializers.FloatField):
    """A JSON number in [0, 1]. Strings, booleans, NaN and infinities are refused.

    DRF's ``FloatField`` would accept ``"0.5"``, ``"NaN"`` and ``true``; a confidence that
    arrives as anything but a number is a bug in the caller, and routing must not guess.
    """

    default_error_messages = {
        "invalid": "Must be a number between 0 and 1.",
        "range": "Must be between 0 and 1.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_value=1, **kwargs)

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not math.isfinite(data):
            self.fail("invalid")
        # Compared before converting: a huge JSON integer would overflow float().
        if not 0 <= data <= 1:
            self.fail("range")
        return float(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: ``"3"``, ``3.0`` and ``true`` are refused."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(serializers.JSONField):
    """A JSON object (not a list, string or number) that the database can store as sent."""

    default_error_messages = {
        "not_an_object": "Must be a JSON object.",
        "too_deep": f"Must not be nested more than {MAX_JSON_DEPTH} levels deep.",
        "bad_character": "Must not contain NUL characters or unpaired surrogates.",
        "not_finite": "Must not contain infinite numbers.",
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("not_an_object")
        self._check_storable(data)
        return data

    def _check_storable(self, data: dict[str, Any]) -> None:
        # Iterative on purpose: the value may be nested deeper than Python's recursion limit.
        pending: list[tuple[Any, int]] = [(data, 1)]
        while pending:
            value, depth = pending.pop()
            if isinstance(value, dict | list):
                if depth > MAX_JSON_DEPTH:
                    self.fail("too_deep")
                items = value.values() if isinstance(value, dict) else value
                pending.extend((item, depth + 1) for item in items)
                if isinstance(value, dict):
                    pending.extend((key, depth) for key in value)
            elif isinstance(value, str):
                if not storable_text(value):
                    self.fail("bad_character")
            elif isinstance(value, float) and not math.isfinite(value):
                self.fail("not_finite")


class HttpUrlField(serializers.URLField):
    """An absolute ``http`` or ``https`` URL."""

    default_error_messages = {"invalid": "Enter a valid http or https URL."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # URLField's own validator also allows ftp: replace it with one limited to the web.
        self.validators = [v for v in self.validators if not isinstance(v, URLValidator)]
        self.validators.append(
            URLValidator(schemes=["http", "https"], message=self.error_messages["invalid"])
        )


# --- Input ------------------------------------------------------------------------------------


def validated(serializer: serializers.Serializer, data: Any) -> Any:
    """``data`` checked by ``serializer``: its validated data, or the ``ValidationError`` that
    ``is_valid(raise_exception=True)`` would raise, with the same details. Nothing is kept on
    ``serializer``, so one instance can check many bodies (see ``shared``)."""
    try:
        return serializer.run_validation(data)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError(serializers.as_serializer_error(exc)) from None


class SubmittedModelSerializer(serializers.Serializer):
    """The model that produced a suggestion."""

    name = serializers.CharField(max_length=200)
    version = serializers.CharField(max_length=200, allow_blank=True, default="")
    provider = serializers.CharField(max_length=100, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> ModelInfo:
        return ModelInfo(**attrs)


class SubmittedUsageSerializer(serializers.Serializer):
    """What producing a suggestion cost."""

    input_tokens = StrictIntegerField(min_value=0, max_value=MAX_DB_INTEGER, required=False)
    output_tokens = StrictIntegerField(min_value=0, max_value=MAX_DB_INTEGER, required=False)
    cost = serializers.DecimalField(
        max_digits=12,
        decimal_places=6,
        min_value=Decimal(0),
        required=False,
        help_text='In the caller\'s currency; a decimal string such as "0.0042" or a number.',
    )

    def validate(self, attrs: dict[str, Any]) -> Usage:
        return Usage(**attrs)


class SuggestionSubmitSerializer(serializers.Serializer):
    """A suggestion as a system submits it."""

    # validated_data holds exactly the keyword arguments of suggestion_submit() but ``client``:
    # ``capability`` is the Capability row, ``model`` a ModelInfo and ``usage`` a Usage.

    capability = serializers.CharField(
        max_length=100, help_text="The key of a capability in the token's scope."
    )
    external_id = serializers.CharField(
        max_length=200,
        allow_blank=True,
        default="",
        help_text="The caller's own reference, to find the suggestion again.",
    )
    payload = JSONObjectField(help_text="The proposed action, as the capability expects it.")
    confidence = ConfidenceField(help_text="The model's confidence, from 0 to 1.")
    model = SubmittedModelSerializer()
    prompt = serializers.CharField(
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="Redacted before it is stored.",
    )
    # The metaclass moves declared fields off the class, so ``self.context`` stays DRF's own.
    context = JSONObjectField(  # type: ignore[assignment]
        required=False, help_text="Redacted before it is stored."
    )
    usage = SubmittedUsageSerializer(required=False)
    attempt = StrictIntegerField(
        min_value=1,
        max_value=MAX_DB_INTEGER,
        default=1,
        help_text="1 for a first try, 2 for the first retry, and so on.",
    )
    callback_url = HttpUrlField(
        max_length=500,
        allow_blank=True,
        default="",
        help_text="Where to tell the caller about the decision.",
    )

    def __init__(
        self, *args: Any, capabilities: Mapping[str, Capability] | None = None, **kwargs: Any
    ) -> None:
        """``capabilities``, when given, are where ``capability`` keys are looked up (read
        beforehand: a batch reads all its items' in one query, not one per item)."""
        super().__init__(*args, **kwargs)
        self.capabilities = capabilities

    def validate_capability(self, key: str) -> Capability:
        if self.capabilities is not None:
            capability = self.capabilities.get(key)
        else:
            capability = Capability.objects.filter(key=key).first()
        if capability is None:
            raise serializers.ValidationError(f"No capability has the key {key!r}.")
        return capability


@extend_schema_field(SuggestionSubmitSerializer(many=True))
class SubmissionsField(serializers.ListField):
    """1 to ``MAX_BATCH_ITEMS`` suggestions, each checked on its own exactly as the single
    endpoint checks its body: a valid item becomes its validated data, an invalid one the
    ``ValidationError`` the single endpoint would answer with, so one bad item does not refuse
    the others."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_empty=False, min_length=1, max_length=MAX_BATCH_ITEMS, **kwargs)

    def run_child_validation(self, data: list[Any]) -> list[Any]:
        if len(data) > MAX_BATCH_ITEMS:  # refused before checking any item
            self.fail("max_length", max_length=MAX_BATCH_ITEMS)
        # One serializer for every item: building one costs more than checking an item.
        item_serializer = SuggestionSubmitSerializer(capabilities=_capabilities_named_in(data))
        checked: list[Any] = []
        for item in data:
            try:
                checked.append(validated(item_serializer, item))
            except serializers.ValidationError as exc:
                checked.append(exc)
        return checked


def _capabilities_named_in(items: list[Any]) -> dict[str, Capability]:
    # Read before the items are checked, so only keys that could be stored are looked up (a
    # NUL character would fail the query); the item's own check refuses the others.
    keys = {
        item["capability"]
        for item in items
        if isinstance(item, Mapping)
        and isinstance(item.get("capability"), str)
        and storable_text(item["capability"])
    }
    return {capability.key: capability for capability in Capability.objects.filter(key__in=keys)}


class SuggestionBatchSerializer(serializers.Serializer):
    """Suggestions submitted together, as a list under `items`."""

    default_error_messages = {
        "not_an_object": 'Send a JSON object with the suggestions as a list under "items".'
    }

    items = SubmissionsField(
        help_text=(
            f"1 to {MAX_BATCH_ITEMS} suggestions, each what `POST /api/v1/suggestions/` takes."
        )
    )

    def run_validation(self, data: Any = serializers.empty) -> Any:
        # Any body but an object is refused naming ``items``, the field the caller must send.
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"items": [self.error_messages["not_an_object"]]})
        return super().run_validation(data)


class SuggestionListQuerySerializer(serializers.Serializer):
    """Filters of a suggestion list; an empty value means no filter."""

    status = serializers.ChoiceField(
        choices=SuggestionStatus.choices, required=False, allow_blank=True
    )
    capability = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text="A capability key."
    )
    external_id = serializers.CharField(max_length=200, required=False, allow_blank=True)


# --- Output -----------------------------------------------------------------------------------


class RouteSerializer(serializers.Serializer):
    """Which way the policy sent the suggestion, and which policy version did."""

    reason = serializers.CharField(source="route_reason")
    policy_version = serializers.IntegerField(source="policy.version")


class ModelInfoSerializer(serializers.Serializer):
    name = serializers.CharField(source="model_name")
    version = serializers.CharField(source="model_version")
    provider = serializers.CharField(source="model_provider")


class UsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField(allow_null=True)
    output_tokens = serializers.IntegerField(allow_null=True)
    cost = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True)


class DecisionSerializer(serializers.ModelSerializer):
    """A decision: a person's (`reviewer` is their username) or the policy's (`reviewer` null)."""

    outcome = serializers.ChoiceField(choices=DecisionOutcome.choices)
    reviewer = serializers.SerializerMethodField()

    class Meta:
        model = Decision
        fields = ["outcome", "reviewer", "reason", "is_override", "created_at"]
        read_only_fields = fields

    def get_reviewer(self, decision: Decision) -> str | None:
        return decision.reviewer.get_username() if decision.reviewer is not None else None


class ExecutionSerializer(serializers.Serializer):
    """Whether the approved action has run, kept apart from the decision."""

    status = serializers.ChoiceField(source="execution_status", choices=ExecutionStatus.choices)
    attempts = serializers.IntegerField(source="execution_attempts")
    error = serializers.CharField(source="execution_error")
    executed_at = serializers.DateTimeField(allow_null=True)


class SuggestionSerializer(serializers.ModelSerializer):
    """A suggestion as its submitter, or a person allowed on its capability, sees it.

    Reviewers appear by username only.
    """

    # Reading ``decisions`` costs a query per suggestion, and one per reviewer, unless they were
    # prefetched with their reviewers (as the API's views do).

    capability = serializers.CharField(source="capability.key")
    status = serializers.ChoiceField(choices=SuggestionStatus.choices)
    route = RouteSerializer(source="*")
    payload = JSONObjectField()
    final_payload = JSONObjectField(allow_null=True)
    model = ModelInfoSerializer(source="*")
    usage = UsageSerializer(source="*")
    decisions = DecisionSerializer(many=True)
    execution = ExecutionSerializer(source="*")

    class Meta:
        model = Suggestion
        fields = [
            "id",
            "capability",
            "external_id",
            "status",
            "route",
            "payload",
            "final_payload",
            "confidence",
            "model",
            "usage",
            "attempt",
            "decisions",
            "execution",
            "created_at",
            "decided_at",
        ]
        read_only_fields = fields


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer."""

    code = serializers.CharField(
        help_text=(
            "Machine-readable: invalid, parse_error, not_authenticated, authentication_failed, "
            "capability_not_in_scope, permission_denied, not_found, method_not_allowed, "
            "unsupported_media_type, payload_too_large, idempotency_key_reused, "
            "idempotency_key_in_flight, throttled."
        )
    )
    message = serializers.CharField(help_text="What went wrong, for people.")
    # Safe to name ``fields``: the metaclass moves declared fields off the class.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors only: messages by field; nested fields as `model.name`.",
    )


class SuggestionBatchResultSerializer(serializers.Serializer):
    """What became of one item of a batch: the suggestion it created, or why it was refused."""

    index = serializers.IntegerField(help_text="The item's position in `items`, from 0.")
    status = serializers.IntegerField(
        help_text=(
            "201 when it was created; otherwise the status `POST /api/v1/suggestions/` would "
            "have answered for the item alone: 400 (`invalid`) or 403 "
            "(`capability_not_in_scope`)."
        )
    )
    suggestion = SuggestionSerializer(
        required=False,
        help_text="When created: the suggestion, as `POST /api/v1/suggestions/` answers it.",
    )
    error = ErrorSerializer(
        required=False,
        help_text="When refused: the error body `POST /api/v1/suggestions/` would have answered.",
    )


class SuggestionBatchAnswerSerializer(serializers.Serializer):
    """The answer to a batch: how many items were created and refused, and each one's result."""

    created = serializers.IntegerField(help_text="How many items were created.")
    failed = serializers.IntegerField(help_text="How many items were refused.")
    results = SuggestionBatchResultSerializer(
        many=True, help_text="One per item, in the order of `items`."
    )
