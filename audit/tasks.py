"""Background jobs of the audit trail."""

from django.tasks import task

from audit.services import audit_checkpoint_write


@task
def write_checkpoint() -> int | None:
    """Sign a checkpoint of the chain's head; returns its sequence number, if one was written."""
    checkpoint = audit_checkpoint_write()
    return checkpoint.sequence if checkpoint else None
