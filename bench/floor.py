"""The ingestion benchmarks' floor: bare Django REST framework endpoints in the same project,
served by the same server, that do the least a submission must do.

They authenticate the same bearer token, validate the same body with the same serializer and
insert one suggestion row per item, and nothing else: no scope check, redaction, routing,
audit, follow-up work or idempotency. What the real endpoint costs beyond them is what those
cost.
"""

from typing import Any

from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from capabilities.models import Capability
from reviews.models import Suggestion, SuggestionStatus
from reviews.serializers import SuggestionSubmitSerializer

_policy_ids: dict[int, int] = {}  # active policy by capability, read once per process


def _row(item: dict[str, Any]) -> Suggestion:
    capability: Capability = item["capability"]
    if capability.pk not in _policy_ids:
        _policy_ids[capability.pk] = capability.policies.order_by("-version").values_list(
            "pk", flat=True
        )[0]
    model = item["model"]
    return Suggestion(
        capability=capability,
        policy_id=_policy_ids[capability.pk],
        external_id=item.get("external_id", ""),
        status=SuggestionStatus.PENDING_REVIEW,
        route_reason="floor",
        payload=item["payload"],
        confidence=item["confidence"],
        model_name=model.name,
        model_version=model.version,
        model_provider=model.provider,
        prompt=item.get("prompt", ""),
        context=item.get("context") or {},
    )


class FloorSubmitApi(APIView):
    """``POST /bench/floor/``: validate one submission and insert one row."""

    permission_classes = [IsAuthenticated]

    def post(self, request: Request) -> Response:
        serializer = SuggestionSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = _row(serializer.validated_data)
        row.save(force_insert=True)
        return Response({"id": str(row.pk)}, status=status.HTTP_201_CREATED)


class _FloorBatchSerializer(serializers.Serializer):
    items = SuggestionSubmitSerializer(many=True, max_length=1000)


class FloorBatchApi(APIView):
    """``POST /bench/floor/batch/``: validate up to 1,000 submissions, insert them at once."""

    permission_classes = [IsAuthenticated]
    max_body_setting = "SIGNOFF_MAX_BATCH_BODY_BYTES"

    def post(self, request: Request) -> Response:
        serializer = _FloorBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rows = Suggestion.objects.bulk_create(
            _row(item) for item in serializer.validated_data["items"]
        )
        return Response({"created": len(rows)}, status=status.HTTP_200_OK)
