"""The browser pages of the review loop, one module per audience; ``reviews/urls.py`` names
them from here."""

from reviews.views.queue import claim_next, queue, queue_counts_fragment, queue_taken
from reviews.views.review import (
    approve,
    claim,
    edit,
    escalate,
    reject,
    release,
    review,
    timeline,
)
from reviews.views.staff import failed_executions, retry_execution, submission_retries

__all__ = [
    "approve",
    "claim",
    "claim_next",
    "edit",
    "escalate",
    "failed_executions",
    "queue",
    "queue_counts_fragment",
    "queue_taken",
    "reject",
    "release",
    "retry_execution",
    "review",
    "submission_retries",
    "timeline",
]
