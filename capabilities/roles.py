"""The roles people hold, as Django groups, and what each grants.

A role is a group (created by a migration) with model-wide permissions, plus, for the roles that
work on particular capabilities, the object permissions a user receives on each capability they
are given. What a role lets its holder do is decided by the predicates in
``capabilities.permissions``; this module only says which permissions make up each role.

| role | works on | may |
|---|---|---|
| reviewer | granted capabilities | claim and decide pending suggestions |
| senior reviewer | granted capabilities | also decide escalated suggestions |
| manager | granted capabilities | change thresholds and rules (a new policy version); not decide |
| auditor | everything, read-only | read and export the audit trail and every suggestion |
| administrator | everything | manage capabilities, API clients, users and their roles |
"""

from dataclasses import dataclass

REVIEWER = "reviewer"
SENIOR_REVIEWER = "senior reviewer"
MANAGER = "manager"
AUDITOR = "auditor"
ADMINISTRATOR = "administrator"


@dataclass(frozen=True)
class Role:
    name: str
    summary: str
    # app_label.codename, held model-wide through the group
    model_permissions: tuple[str, ...] = ()
    # app_label.codename, granted per capability to each holder
    capability_permissions: tuple[str, ...] = ()
    # the admin site is for managers, auditors and administrators
    staff: bool = False


ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(
            REVIEWER,
            "Claims and decides pending suggestions of the capabilities granted to them.",
            capability_permissions=("capabilities.review_capability",),
        ),
        Role(
            SENIOR_REVIEWER,
            "Reviews, and decides escalated suggestions of the capabilities granted to them.",
            capability_permissions=(
                "capabilities.review_capability",
                "capabilities.resolve_escalations",
            ),
        ),
        Role(
            MANAGER,
            "Owns capabilities: changes their thresholds and rules. Does not decide suggestions.",
            model_permissions=(
                "capabilities.view_capability",
                "capabilities.change_capability",
                "capabilities.view_policy",
                "capabilities.view_apiclient",
            ),
            capability_permissions=("capabilities.manage_capability",),
            staff=True,
        ),
        Role(
            AUDITOR,
            "Reads and exports the audit trail and every suggestion. Changes nothing.",
            model_permissions=(
                "audit.view_auditevent",
                "audit.view_auditcheckpoint",
                "reviews.view_suggestion",
                "reviews.view_decision",
                "capabilities.view_capability",
                "capabilities.view_policy",
            ),
            staff=True,
        ),
        Role(
            ADMINISTRATOR,
            "Manages capabilities, API clients, users and their roles.",
            model_permissions=(
                "capabilities.add_capability",
                "capabilities.view_capability",
                "capabilities.change_capability",
                "capabilities.view_policy",
                "capabilities.view_apiclient",
                "capabilities.change_apiclient",
                "auth.view_user",
                "auth.add_user",
                "auth.change_user",
                "auth.view_group",
            ),
            staff=True,
        ),
    )
}
