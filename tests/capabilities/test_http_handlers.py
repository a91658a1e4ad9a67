"""A capability's action as an HTTP call: sent once per success, retried until it succeeds."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from capabilities.handlers import HandlerFailed, call_http_handler, handler_for, record_only
from reviews.models import ExecutionStatus
from reviews.services import decision_record, outbox_sweep
from tests.factories import submit


@pytest.fixture
def endpoint():
    """A real HTTP endpoint on loopback that answers with the next status of ``plan``."""
    received: list[dict] = []
    plan: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(
                {
                    "body": json.loads(self.rfile.read(length)),
                    "key": self.headers["Idempotency-Key"],
                }
            )
            self.send_response(plan.pop(0) if plan else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/act", received, plan
    server.shutdown()
    server.server_close()


def test_the_configured_endpoint_is_the_handler(settings):
    settings.SIGNOFF_HTTP_HANDLERS = ["refunds.issue=https://erp.example/refunds"]
    assert handler_for("refunds.issue") is not record_only
    assert handler_for("content.moderate") is record_only


def test_a_non_2xx_answer_is_a_failure(endpoint):
    url, received, plan = endpoint
    plan.append(503)
    with pytest.raises(HandlerFailed, match="503"):
        call_http_handler(url, capability="refunds.issue", suggestion_id="s-1", payload={})
    assert received[0]["key"] == "s-1"


@pytest.mark.django_db
def test_an_approved_action_is_posted_and_retried_until_it_succeeds(
    settings, endpoint, capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    url, received, plan = endpoint
    settings.SIGNOFF_HTTP_HANDLERS = [f"{capability.key}={url}"]
    settings.SIGNOFF_EXECUTION_RETRY_BASE_SECONDS = 0
    plan.append(500)
    suggestion = submit(api_client_row, capability, payload={"amount": "12.00"})
    with django_capture_on_commit_callbacks(execute=True):
        decision_record(user=reviewer, suggestion_id=suggestion.pk, outcome="approved")
    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.FAILED
    assert "answered 500" in suggestion.execution_error

    with django_capture_on_commit_callbacks(execute=True):
        outbox_sweep(now=suggestion.execution_next_attempt_at)
    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.SUCCEEDED
    assert suggestion.execution_result == {"handler": "http", "status": 200}
    assert [r["body"] for r in received] == [
        {
            "capability": capability.key,
            "suggestion_id": str(suggestion.pk),
            "payload": {"amount": "12.00"},
        }
    ] * 2
    assert {r["key"] for r in received} == {str(suggestion.pk)}
