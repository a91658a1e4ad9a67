"""Who may read the audit trail.

The trail imports no other app, so this predicate lives here rather than in
``capabilities.permissions``; callers elsewhere (pages, ``can_view_suggestion``) ask it.
"""

from typing import Any

READ_AUDIT_TRAIL = "audit.view_auditevent"


def can_read_audit_trail(user: Any) -> bool:
    """May ``user`` read the whole audit trail (and export it)? Active users with the model
    permission ``audit.view_auditevent`` (auditors; superusers have every permission).

    Reading is all it grants: nothing in the trail can be changed, by anyone.
    """
    return bool(getattr(user, "is_active", False) and user.has_perm(READ_AUDIT_TRAIL))
