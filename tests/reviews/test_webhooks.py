"""Webhooks to submitters, delivered to a real HTTP receiver on 127.0.0.1: Standard Webhooks
headers and signatures (checked with the README's own receiver code), retries with back-off
and Retry-After, 410 Gone, refusal of other URL schemes, and every attempt recorded."""

import datetime as dt
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from capabilities import handlers
from capabilities.models import ApiClient
from capabilities.services.clients import WEBHOOK_SECRET_PREFIX, webhook_secret_key
from reviews.models import (
    ExecutionStatus,
    OutboxItem,
    OutboxKind,
    Suggestion,
    WebhookDelivery,
    WebhookState,
)
from reviews.services import decision_record, outbox_sweep
from tests.factories import ApiClientFactory, submit

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
LATER = dt.timedelta(days=365)


# --- A real receiver --------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers from ``script``
    (status, headers) in turn, then 200."""

    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)

    def answer(self) -> tuple[int, dict[str, str]]:
        return self.script.pop(0) if self.script else (200, {})


@pytest.fixture
def receiver(monkeypatch) -> Iterator[Receiver]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # never through a proxy, here
    recorder = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {name.lower(): value for name, value in self.headers.items()}
            recorder.requests.append(Received(self.path, headers, body))
            status, extra = recorder.answer()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_port}/hooks/signoff?tenant=7"
    yield recorder
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def readme_verify() -> Callable[..., bool]:
    """The receiver's ``verify`` function exactly as the README's Webhooks section gives it."""
    section = README.read_text().split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "the README's Webhooks section has no Python block"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(README), "exec"), namespace)  # noqa: S102
    return namespace["verify"]


def secret_of(client: ApiClient, *, rotate: bool = False) -> str:
    """The client's secret as ``manage.py api_client_secret`` prints it (the last line)."""
    out = StringIO()
    call_command("api_client_secret", client.name, *(["--rotate"] if rotate else []), stdout=out)
    return out.getvalue().strip().splitlines()[-1]


@pytest.fixture
def webhook_settings(settings):
    settings.SIGNOFF_WEBHOOK_MAX_ATTEMPTS = 8
    settings.SIGNOFF_WEBHOOK_RETRY_BASE_SECONDS = 30
    settings.SIGNOFF_WEBHOOK_RETRY_CAP_SECONDS = 6 * 60 * 60
    return settings


def submit_rejected(client: ApiClient, capability: Any, url: str, capture: Any) -> Suggestion:
    """A suggestion the policy rejects at once (one ``suggestion.decided`` message), with the
    first delivery attempt made after the commit, as in production."""
    with capture(execute=True):
        return submit(client, capability, confidence=0.1, external_id="ticket-9", callback_url=url)


def retry_due(delivery: WebhookDelivery) -> int:
    """Run the sweep at the moment the delivery's next attempt is due."""
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is not None
    return outbox_sweep(now=delivery.next_attempt_at)


# --- Delivery, retries and signatures ---------------------------------------------------------


def test_a_receiver_failing_three_times_gets_one_message_in_four_signed_attempts(
    capability, api_client_row, receiver, webhook_settings, django_capture_on_commit_callbacks
):
    receiver.script = [(500, {}), (500, {}), (500, {})]
    suggestion = submit_rejected(
        api_client_row, capability, receiver.url, django_capture_on_commit_callbacks
    )
    delivery = WebhookDelivery.objects.get()
    assert len(receiver.requests) == 1  # the first attempt, right after the commit

    for _ in range(3):
        # Not before its time...
        item = OutboxItem.objects.get(kind=OutboxKind.WEBHOOK, done_at__isnull=True)
        assert outbox_sweep(now=item.available_at - dt.timedelta(microseconds=1)) == 0
        # ...then once it is due.
        assert retry_due(delivery) == 1

    delivery.refresh_from_db()
    assert delivery.state == WebhookState.DELIVERED
    assert delivery.attempts == 4
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert [a.status_code for a in delivery.tries.all()] == [500, 500, 500, 200]
    assert [a.error for a in delivery.tries.all()] == ["HTTP 500"] * 3 + [""]
    assert all(a.duration_ms >= 0 for a in delivery.tries.all())
    assert len(receiver.requests) == 4
    assert outbox_sweep(now=timezone.now() + LATER) == 0
    assert len(receiver.requests) == 4  # exactly one successful delivery, nothing after it
    assert OutboxItem.objects.get(kind=OutboxKind.WEBHOOK).done_at is not None

    verify = readme_verify()
    secret = secret_of(api_client_row)
    assert secret.startswith(WEBHOOK_SECRET_PREFIX) and len(webhook_secret_key(secret)) >= 24
    bodies = {request.body for request in receiver.requests}
    assert len(bodies) == 1  # the same bytes on every attempt
    for request in receiver.requests:
        assert request.path == "/hooks/signoff?tenant=7"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"] == delivery.message_id
        assert request.headers["webhook-timestamp"].isdigit()
        assert request.headers["webhook-signature"].startswith("v1,")
        assert verify(secret, request.headers, request.body)
        # One byte changed anywhere in the body, and the signature no longer holds.
        tampered = request.body.replace(b'"ticket-9"', b'"ticket-8"')
        assert tampered != request.body and len(tampered) == len(request.body)
        assert not verify(secret, request.headers, tampered)
        assert not verify(secret, {**request.headers, "webhook-id": "msg_other"}, request.body)
    assert not verify(secret_of(api_client_row, rotate=True), request.headers, request.body)

    message = json.loads(receiver.requests[0].body)
    assert message["type"] == "suggestion.decided"
    assert message["timestamp"].endswith("Z")
    assert message["data"] == {
        "id": str(suggestion.pk),
        "status": "auto_rejected",
        "external_id": "ticket-9",
        "capability": "refunds.issue",
        "execution": {"status": "not_started", "attempts": 0, "error": "", "executed_at": None},
    }
    delivered = AuditEvent.objects.filter(action="webhook.delivered")
    assert [(e.subject_id, e.actor_label) for e in delivered] == [(str(suggestion.pk), "webhooks")]
    assert delivered[0].data == {
        "message_id": delivery.message_id,
        "event_type": "suggestion.decided",
        "state": "delivered",
        "attempts": 4,
        "status_code": 200,
        "error": "",
    }
    assert not AuditEvent.objects.filter(action="webhook.failed").exists()


def test_the_back_off_between_attempts_grows_within_its_bounds(
    capability, api_client_row, receiver, webhook_settings, django_capture_on_commit_callbacks
):
    receiver.script = [(500, {})] * 3
    submit_rejected(api_client_row, capability, receiver.url, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    for attempt in (1, 2, 3):
        delivery.refresh_from_db()
        last = delivery.tries.last()
        wait = delivery.next_attempt_at - last.attempted_at
        ceiling = dt.timedelta(seconds=30 * 2 ** (attempt - 1))
        assert dt.timedelta(seconds=-1) <= wait <= ceiling + dt.timedelta(seconds=1), wait
        retry_due(delivery)


def test_410_gone_stops_the_retries(
    capability, api_client_row, receiver, webhook_settings, django_capture_on_commit_callbacks
):
    receiver.script = [(410, {})]
    suggestion = submit_rejected(
        api_client_row, capability, receiver.url, django_capture_on_commit_callbacks
    )
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == WebhookState.GONE
    assert delivery.attempts == 1 and delivery.next_attempt_at is None
    assert outbox_sweep(now=timezone.now() + LATER) == 0
    assert len(receiver.requests) == 1
    failed = AuditEvent.objects.get(action="webhook.failed")
    assert failed.subject_id == str(suggestion.pk)
    assert failed.data["state"] == "gone" and failed.data["status_code"] == 410


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
def test_retry_after_is_honoured_when_it_asks_for_longer(
    capability,
    api_client_row,
    receiver,
    webhook_settings,
    django_capture_on_commit_callbacks,
    as_date,
):
    webhook_settings.SIGNOFF_WEBHOOK_RETRY_BASE_SECONDS = 1
    webhook_settings.SIGNOFF_WEBHOOK_RETRY_CAP_SECONDS = 2
    asked = dt.timedelta(hours=2)
    value = format_datetime(timezone.now() + asked, usegmt=True) if as_date else "7200"
    receiver.script = [(503, {"Retry-After": value})]
    submit_rejected(api_client_row, capability, receiver.url, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    attempted = delivery.tries.get().attempted_at
    # The back-off alone would wait at most 1 s; the receiver asked for two hours.
    assert delivery.next_attempt_at - attempted >= asked - dt.timedelta(seconds=2)
    assert delivery.next_attempt_at - attempted <= asked + dt.timedelta(seconds=2)
    assert outbox_sweep(now=attempted + dt.timedelta(hours=1)) == 0
    assert len(receiver.requests) == 1
    assert retry_due(delivery) == 1
    delivery.refresh_from_db()
    assert delivery.state == WebhookState.DELIVERED and delivery.attempts == 2


def test_a_retry_after_shorter_than_the_back_off_does_not_shorten_it(
    capability, api_client_row, receiver, webhook_settings, django_capture_on_commit_callbacks
):
    webhook_settings.SIGNOFF_WEBHOOK_RETRY_BASE_SECONDS = 600
    webhook_settings.SIGNOFF_WEBHOOK_RETRY_CAP_SECONDS = 600
    receiver.script = [(429, {"Retry-After": "0"})]
    submit_rejected(api_client_row, capability, receiver.url, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    # Still a back-off draw: somewhere in [0, 600] s, not "right now" by decree.
    wait = delivery.next_attempt_at - delivery.tries.get().attempted_at
    assert dt.timedelta(seconds=-1) <= wait <= dt.timedelta(seconds=601)
    assert delivery.state == WebhookState.PENDING


def test_attempts_run_out_and_the_delivery_fails(
    capability, api_client_row, receiver, webhook_settings, django_capture_on_commit_callbacks
):
    webhook_settings.SIGNOFF_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.script = [(500, {})] * 10
    submit_rejected(api_client_row, capability, receiver.url, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    retry_due(delivery)
    retry_due(delivery)
    delivery.refresh_from_db()
    assert delivery.state == WebhookState.FAILED
    assert delivery.attempts == 3 and delivery.next_attempt_at is None
    assert outbox_sweep(now=timezone.now() + LATER) == 0
    assert len(receiver.requests) == 3
    failed = AuditEvent.objects.get(action="webhook.failed")
    assert failed.data["state"] == "failed" and failed.data["attempts"] == 3


def test_an_unreachable_receiver_is_an_error_retried_like_any_other(
    capability, api_client_row, webhook_settings, django_capture_on_commit_callbacks, caplog
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    submit_rejected(
        api_client_row,
        capability,
        f"http://127.0.0.1:{port}/hook?token=sekrit-4711",
        django_capture_on_commit_callbacks,
    )
    delivery = WebhookDelivery.objects.get()
    attempt = delivery.tries.get()
    assert attempt.status_code is None
    assert attempt.error.startswith("ConnectionError")
    # Errors quote the URL: the credential a callback URL carries is not kept.
    assert "/hook?[redacted]" in attempt.error
    assert "sekrit-4711" not in attempt.error and "sekrit-4711" not in delivery.last_error
    assert delivery.message_id in caplog.text and "sekrit-4711" not in caplog.text
    assert delivery.state == WebhookState.PENDING and delivery.next_attempt_at is not None


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/hook", "gopher://127.0.0.1:70/x"]
)
def test_a_callback_url_that_is_not_http_is_refused_unsent(
    capability, api_client_row, receiver, webhook_settings, django_capture_on_commit_callbacks, url
):
    suggestion = submit_rejected(
        api_client_row, capability, url, django_capture_on_commit_callbacks
    )
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == WebhookState.FAILED
    assert delivery.attempts == 1
    attempt = delivery.tries.get()
    assert attempt.status_code is None
    assert attempt.error.startswith("refused:") and "only http and https" in attempt.error
    assert receiver.requests == []
    assert outbox_sweep(now=timezone.now() + LATER) == 0
    failed = AuditEvent.objects.get(action="webhook.failed")
    assert failed.subject_id == str(suggestion.pk)


# --- What is sent, and when -------------------------------------------------------------------


def test_an_approval_sends_decided_then_executed(
    capability, api_client_row, reviewer, receiver, django_capture_on_commit_callbacks
):
    suggestion = submit(api_client_row, capability, callback_url=receiver.url)
    assert not WebhookDelivery.objects.exists()  # pending review: nothing to tell yet
    with django_capture_on_commit_callbacks(execute=True):
        decision_record(
            user=reviewer,
            suggestion_id=suggestion.pk,
            outcome="approved",
            final_payload={"amount": "100.00", "currency": "EUR"},
        )
    messages = [json.loads(request.body) for request in receiver.requests]
    assert [m["type"] for m in messages] == ["suggestion.decided", "suggestion.executed"]
    decided, executed = (m["data"] for m in messages)
    assert decided["status"] == "approved"
    assert decided["final_payload"] == {"amount": "100.00", "currency": "EUR"}
    assert decided["execution"]["status"] == "not_started"
    assert executed["execution"]["status"] == "succeeded"
    assert executed["execution"]["attempts"] == 1
    assert executed["execution"]["executed_at"].endswith("Z")
    ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert len(ids) == 2  # two messages, two ids
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_an_execution_that_fails_for_good_is_reported_once(
    capability,
    api_client_row,
    receiver,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.SIGNOFF_EXECUTION_MAX_ATTEMPTS = 2

    def explode(**kwargs: Any) -> None:
        raise RuntimeError("ledger down")

    handlers.register(capability.key)(explode)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            suggestion = submit(
                api_client_row, capability, confidence=0.95, callback_url=receiver.url
            )
        # The first failure is retried: nothing to report about the execution yet.
        assert [json.loads(r.body)["type"] for r in receiver.requests] == ["suggestion.decided"]
        suggestion.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            outbox_sweep(now=suggestion.execution_next_attempt_at)
    finally:
        handlers._registry.pop(capability.key, None)
    suggestion.refresh_from_db()
    assert suggestion.execution_status == ExecutionStatus.FAILED
    messages = [json.loads(r.body) for r in receiver.requests]
    assert [m["type"] for m in messages] == ["suggestion.decided", "suggestion.executed"]
    assert messages[1]["data"]["status"] == "auto_approved"
    assert messages[1]["data"]["execution"] == {
        "status": "failed",
        "attempts": 2,
        "error": "RuntimeError: ledger down",
        "executed_at": messages[1]["data"]["execution"]["executed_at"],
    }


def test_without_a_callback_url_nothing_is_sent(
    capability, api_client_row, reviewer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        submit(api_client_row, capability, confidence=0.95)
        submit(api_client_row, capability, confidence=0.1)
    assert not WebhookDelivery.objects.exists()
    assert not OutboxItem.objects.filter(kind=OutboxKind.WEBHOOK).exists()


def test_the_delivery_is_written_with_the_decision_and_survives_a_lost_relay(
    capability, api_client_row, receiver, django_capture_on_commit_callbacks
):
    # The process dies after the commit: the relay never runs; the sweep delivers.
    with django_capture_on_commit_callbacks(execute=False):
        suggestion = submit(api_client_row, capability, confidence=0.1, callback_url=receiver.url)
    delivery = WebhookDelivery.objects.get()
    assert delivery.suggestion_id == suggestion.pk
    assert OutboxItem.objects.get(kind=OutboxKind.WEBHOOK).ref == str(delivery.pk)
    assert receiver.requests == []
    assert outbox_sweep() == 1
    delivery.refresh_from_db()
    assert delivery.state == WebhookState.DELIVERED
    assert len(receiver.requests) == 1


# --- Secrets ----------------------------------------------------------------------------------


def test_a_new_client_gets_a_secret_of_at_least_24_random_bytes(api_client_row, capability):
    secret = api_client_row.webhook_secret
    assert secret.startswith("whsec_")
    assert len(webhook_secret_key(secret)) >= 24
    other = ApiClientFactory.create(capabilities=[capability])
    assert other.webhook_secret != secret


def test_a_client_without_a_secret_gets_one_with_its_first_message(
    capability, api_client_row, receiver, django_capture_on_commit_callbacks
):
    ApiClient.objects.filter(pk=api_client_row.pk).update(webhook_secret="")
    submit_rejected(api_client_row, capability, receiver.url, django_capture_on_commit_callbacks)
    api_client_row.refresh_from_db()
    secret = api_client_row.webhook_secret
    assert secret.startswith("whsec_")
    request = receiver.requests[0]
    assert readme_verify()(secret, request.headers, request.body)
    made = AuditEvent.objects.get(action="api_client.updated")
    assert made.data == {"client": api_client_row.name, "webhook_secret": "created"}
    assert secret not in json.dumps(made.data)


def test_the_command_shows_a_secret_and_rotates_it_audited(api_client_row):
    ApiClient.objects.filter(pk=api_client_row.pk).update(webhook_secret="")
    first = secret_of(api_client_row)
    assert first.startswith("whsec_")
    assert secret_of(api_client_row) == first  # showing changes nothing
    rotated = secret_of(api_client_row, rotate=True)
    assert rotated.startswith("whsec_") and rotated != first
    api_client_row.refresh_from_db()
    assert api_client_row.webhook_secret == rotated
    changes = AuditEvent.objects.filter(action="api_client.updated")
    assert [e.data["webhook_secret"] for e in changes] == ["created", "rotated"]
    assert all(
        first not in json.dumps(e.data) and rotated not in json.dumps(e.data) for e in changes
    )


def test_the_command_refuses_an_unknown_client(db):
    with pytest.raises(CommandError, match="no API client named 'nobody'"):
        call_command("api_client_secret", "nobody", stdout=StringIO())


# --- The review page --------------------------------------------------------------------------


def test_the_review_page_lists_deliveries_and_their_attempts(
    client: Client,
    capability,
    api_client_row,
    reviewer,
    receiver,
    webhook_settings,
    django_capture_on_commit_callbacks,
):
    receiver.script = [(500, {})]
    suggestion = submit_rejected(
        api_client_row, capability, receiver.url, django_capture_on_commit_callbacks
    )
    retry_due(WebhookDelivery.objects.get())
    delivery = WebhookDelivery.objects.get()
    client.force_login(reviewer)
    html = client.get(reverse("reviews:review", args=[suggestion.pk])).content.decode()
    assert "Webhooks to the submitter" in html
    assert delivery.message_id in html
    assert "suggestion.decided" in html
    assert "HTTP 500" in html and "HTTP 200" in html
    assert "Delivered" in html
