"""Background jobs of the review loop: take ids, load, call one service."""

from django.tasks import task

from reviews.services import suggestion_execute


@task
def execute_suggestion(suggestion_id: str) -> str:
    """Run the approved suggestion's handler (at most once; see ``suggestion_execute``)."""
    return suggestion_execute(suggestion_id=suggestion_id).execution_status
