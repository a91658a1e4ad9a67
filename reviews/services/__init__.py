"""Every change to suggestions and decisions: submit, claim, release, decide, execute, and the
outbox that carries the work they cause. One module per subject; import from here.

Each function runs in one transaction that locks the suggestion it changes, checks permission
through the predicates, writes, and records its audit events; work it causes goes through the
outbox in the same transaction.
"""

from reviews.services.claims import suggestion_claim, suggestion_claim_next, suggestion_release
from reviews.services.common import (
    AlreadyDecided,
    ClaimedByOther,
    DecisionRefused,
    ReviewConflict,
)
from reviews.services.decisions import REFUSALS, decision_record
from reviews.services.execution import suggestion_execute
from reviews.services.outbox import outbox_add, outbox_done, outbox_relay, outbox_sweep
from reviews.services.submission import ModelInfo, Usage, suggestion_submit

__all__ = [
    "REFUSALS",
    "AlreadyDecided",
    "ClaimedByOther",
    "DecisionRefused",
    "ModelInfo",
    "ReviewConflict",
    "Usage",
    "decision_record",
    "outbox_add",
    "outbox_done",
    "outbox_relay",
    "outbox_sweep",
    "suggestion_claim",
    "suggestion_claim_next",
    "suggestion_execute",
    "suggestion_release",
    "suggestion_submit",
]
