"""The production topology, scaled out: two gunicorn web nodes and two RQ workers share one
PostgreSQL database and one Redis, and nothing is lost, done twice or left out of the chain.

Client threads drive a mixed workload through both nodes in turn over real HTTP: API
submissions routed every way (auto-approved, auto-rejected, queued), Idempotency-Keys retried
against the other node and raced on both at once, reads of what was just written from the
other node, and two reviewers who log in on one node and claim, open and decide queued items
on both. Then every approval must be executed once by the workers, every decision and event
recorded once, and the audit chain must verify.

Run it alone: ``.venv/bin/pytest tests/test_scale_out.py`` (needs PostgreSQL and Redis).
"""

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.db import connection
from guardian.shortcuts import assign_perm

from audit.models import AuditCheckpoint, AuditEvent
from capabilities.models import Capability
from reviews.models import (
    Decision,
    ExecutionStatus,
    OutboxItem,
    OutboxKind,
    Suggestion,
    SuggestionStatus,
)
from tests.factories import PASSWORD, ApiClientFactory, CapabilityFactory, UserFactory
from tests.processes import RQ, WAIT_SECONDS, Process, Processes, WebNode, wait_until
from tests.worker_handlers import RUN_TABLE, SCALE_OUT_CAPABILITIES

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),  # the nodes see only what is committed
]

WEB_NODES = 2
WORKERS = 2
# (auto_approve_at, auto_reject_below) of each capability: one mostly approves or rejects by
# itself, one mostly asks a person.
THRESHOLDS = {
    "scale.refund": (Decimal("0.90"), Decimal("0.30")),
    "scale.credit": (Decimal("0.70"), Decimal("0.50")),
    "scale.note": (Decimal("0.99"), Decimal("0.01")),
}
CONFIDENCES = (0.95, 0.6, 0.2, 0.995, 0.4, 0.05, 0.75, 0.005)
SUBMISSIONS = 48
SUBMITTERS = 3
REVIEWERS = 2
# Every REPLAYED_EVERY-th submission carries an Idempotency-Key and is sent again to the other
# node once answered; every RACED_EVERY-th is sent to both nodes at the same moment.
REPLAYED_EVERY = 4
RACED_EVERY = 8
HTTP_TIMEOUT = 15
# A checkpoint is signed every this many events, by the workers, while the load runs.
CHECKPOINT_EVERY = "40"
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
REVIEW_PATH = re.compile(r"^/suggestions/([0-9a-f-]{36})/$")


# --- The topology -----------------------------------------------------------------------------


@dataclass
class Topology:
    processes: Processes
    rq: RQ
    web: list[WebNode]
    workers: list[Process]

    def node(self, index: int) -> WebNode:
        return self.web[index % len(self.web)]


@pytest.fixture
def topology(transactional_db: Any, tmp_path: Path) -> Iterator[Topology]:
    """Two web nodes and two workers on the test database and one Redis queue of their own."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {RUN_TABLE} (suggestion_id text NOT NULL, capability text NOT NULL,"
            " pid integer NOT NULL, parent_pid integer NOT NULL)"
        )
    processes = Processes.within(tmp_path)
    rq = RQ(processes)
    try:
        with processes:
            env = rq.env(SIGNOFF_AUDIT_CHECKPOINT_EVERY=CHECKPOINT_EVERY)
            workers = [
                rq.start_worker(SIGNOFF_AUDIT_CHECKPOINT_EVERY=CHECKPOINT_EVERY)
                for _ in range(WORKERS)
            ]
            web = [processes.start_web(env, workers=2) for _ in range(WEB_NODES)]
            wait_until(lambda: rq.listening() == WORKERS, "both workers to listen", processes)
            try:
                yield Topology(processes, rq, web, workers)
            finally:
                # Shown by pytest when the test failed: what every process said.
                print(processes.logs())
    finally:
        rq.cleanup()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {RUN_TABLE}")


# --- What the clients saw ---------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One logical submission: what is sent, and how its capability's policy must route it."""

    index: int
    capability: str
    confidence: float
    expected: str
    key: str | None
    raced: bool

    def body(self, run: str) -> dict[str, Any]:
        return {
            "capability": self.capability,
            "external_id": f"{run}-{self.index}",
            "payload": {"n": self.index, "amount": f"{self.index}.00", "currency": "EUR"},
            "confidence": self.confidence,
            "model": {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"},
        }


def plan() -> list[Planned]:
    planned = []
    for index in range(SUBMISSIONS):
        capability = SCALE_OUT_CAPABILITIES[index % len(SCALE_OUT_CAPABILITIES)]
        confidence = CONFIDENCES[(index // len(SCALE_OUT_CAPABILITIES)) % len(CONFIDENCES)]
        approve_at, reject_below = THRESHOLDS[capability]
        if confidence >= float(approve_at):
            expected = SuggestionStatus.AUTO_APPROVED
        elif confidence < float(reject_below):
            expected = SuggestionStatus.AUTO_REJECTED
        else:
            expected = SuggestionStatus.PENDING_REVIEW
        raced = index % RACED_EVERY == RACED_EVERY - 1
        replayed = index % REPLAYED_EVERY == 1
        key = str(uuid.uuid4()) if raced or replayed else None
        planned.append(Planned(index, capability, confidence, expected, key, raced))
    return planned


@dataclass
class Ledger:
    """Everything the clients were told, collected from every thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # index -> 201s
    replays: list[tuple[int, str]] = field(default_factory=list)  # (index, node) of replays
    in_flight: int = 0  # 409s while a raced key's first request was still running
    decisions: list[tuple[str, str, str]] = field(default_factory=list)  # (id, outcome, node)
    reviewer_pages: Counter[str] = field(default_factory=Counter)  # node -> review pages seen

    def accept(self, index: int, answer: dict[str, Any]) -> None:
        with self.lock:
            self.accepted.setdefault(index, []).append(answer)


def human_outcome(suggestion_id: str) -> str:
    """What the reviewers decide for a queued suggestion: a fixed rule, checked afterwards."""
    return "reject" if uuid.UUID(suggestion_id).int % 3 == 0 else "approve"


def expect(response: requests.Response, status: int, what: str) -> requests.Response:
    assert response.status_code == status, (
        f"{what}: {response.request.method} {response.url} answered {response.status_code}, "
        f"not {status}: {response.text[:2000]}"
    )
    return response


# --- The API clients --------------------------------------------------------------------------


class ApiCaller:
    """One system calling the API with its token, alternating between the web nodes."""

    def __init__(self, topology: Topology, token: str, run: str, ledger: Ledger) -> None:
        self.topology = topology
        self.run = run
        self.ledger = ledger
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def post(self, node: WebNode, item: Planned) -> requests.Response:
        headers = {"Idempotency-Key": item.key} if item.key else {}
        return self.session.post(
            f"{node.url}/api/v1/suggestions/",
            json=item.body(self.run),
            headers=headers,
            timeout=HTTP_TIMEOUT,
        )

    def submit(self, item: Planned) -> None:
        first, other = self.topology.node(item.index), self.topology.node(item.index + 1)
        if item.raced:
            self._race(item)
        else:
            answer = expect(self.post(first, item), 201, f"submission {item.index}").json()
            self.ledger.accept(item.index, answer)
            if item.key:
                self._replay(other, item, answer)
        (answer, *_) = self.ledger.accepted[item.index]
        assert answer["status"] == item.expected, (item, answer)
        # Written through one node, read at once through the other: the 201 came after the
        # commit, so no node may answer 404 for it.
        read = expect(
            self.session.get(
                f"{other.url}/api/v1/suggestions/{answer['id']}/", timeout=HTTP_TIMEOUT
            ),
            200,
            f"reading submission {item.index} back",
        ).json()
        assert (read["id"], read["external_id"]) == (answer["id"], f"{self.run}-{item.index}")

    def _replay(self, node: WebNode, item: Planned, first: dict[str, Any]) -> None:
        response = expect(self.post(node, item), 201, f"replay of submission {item.index}")
        assert response.headers.get("Idempotent-Replayed") == "true", response.headers
        assert response.json() == first
        with self.ledger.lock:
            self.ledger.replays.append((item.index, node.url))

    def _race(self, item: Planned) -> None:
        """Send the same key to both nodes at the same moment; each retries its 409 (first
        request still in flight) as told, until it gets the one answer."""
        start = threading.Barrier(WEB_NODES)

        def send(node: WebNode) -> dict[str, Any]:
            session = requests.Session()
            session.headers.update(self.session.headers)
            start.wait(timeout=HTTP_TIMEOUT)
            deadline = time.monotonic() + HTTP_TIMEOUT
            while True:
                response = session.post(
                    f"{node.url}/api/v1/suggestions/",
                    json=item.body(self.run),
                    headers={"Idempotency-Key": item.key or ""},
                    timeout=HTTP_TIMEOUT,
                )
                if response.status_code != 409 or time.monotonic() > deadline:
                    break
                with self.ledger.lock:
                    self.ledger.in_flight += 1
                time.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0))
            return expect(response, 201, f"raced submission {item.index}").json()

        with ThreadPoolExecutor(WEB_NODES) as pool:
            answers = list(pool.map(send, self.topology.web))
        assert all(answer == answers[0] for answer in answers), answers
        for answer in answers:
            self.ledger.accept(item.index, answer)

    def listed(self) -> list[dict[str, Any]]:
        """Every suggestion of this client, page by page, each page from the next node."""
        rows: list[dict[str, Any]] = []
        url: str | None = f"{self.topology.node(0).url}/api/v1/suggestions/?page_size=20"
        page = 0
        while url:
            page += 1
            node = self.topology.node(page)
            url = url.replace(url.split("/api/")[0], node.url)  # the next page, on the next node
            body = expect(self.session.get(url, timeout=HTTP_TIMEOUT), 200, "the list").json()
            rows += body["results"]
            url = body["next"]
        return rows


# --- The reviewers ----------------------------------------------------------------------------


class Reviewer:
    """A person in a browser: logs in on one node, then claims, reads and decides queued items
    on both (the session and CSRF cookies serve every node): each item is read on one node and
    decided on the other, the next item the other way round."""

    def __init__(self, topology: Topology, username: str, home: int, ledger: Ledger) -> None:
        self.topology = topology
        self.username = username
        self.home = home
        self.ledger = ledger
        self.session = requests.Session()
        self.csrf = ""
        self.decided = 0

    def get(self, node: WebNode, path: str) -> requests.Response:
        response = expect(
            self.session.get(f"{node.url}{path}", timeout=HTTP_TIMEOUT), 200, self.username
        )
        if match := CSRF_INPUT.search(response.text):
            self.csrf = match.group(1)
        return response

    def post(self, node: WebNode, path: str, **data: str) -> str:
        """POST a form; returns where it redirected to."""
        response = self.session.post(
            f"{node.url}{path}",
            data={"csrfmiddlewaretoken": self.csrf, **data},
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        expect(response, 302, f"{self.username} posting {path}")
        return response.headers["Location"]

    def log_in(self) -> None:
        home = self.topology.node(self.home)
        self.get(home, "/accounts/login/")
        location = self.post(
            home, "/accounts/login/", username=self.username, password=PASSWORD, next="/"
        )
        assert location == "/", f"{self.username} was not logged in: redirected to {location}"
        self.get(self.topology.node(self.home + 1), "/")  # logging in rotated the CSRF token

    def work(self, submissions_done: threading.Event, deadline: float) -> None:
        """Decide queued items until every submission is in and nothing waits any more."""
        self.log_in()
        current: str | None = None
        while time.monotonic() < deadline:
            read_on = self.topology.node(self.home + self.decided)
            decide_on = self.topology.node(self.home + self.decided + 1)
            if current is None:
                # Read before claiming: once every submission had been answered (so committed),
                # an empty claim means nothing is left that another reviewer does not hold.
                all_submitted = submissions_done.is_set()
                current = _review_id(self.post(decide_on, "/claim-next/"))
                if current is None:
                    if all_submitted:
                        return
                    time.sleep(0.1)
                    continue
            page = self.get(read_on, f"/suggestions/{current}/")
            assert 'id="approve-form"' in page.text, f"{self.username} may not decide {current}"
            with self.ledger.lock:
                self.ledger.reviewer_pages[read_on.url] += 1
            outcome = human_outcome(current)
            reason = "Checked by hand." if outcome == "reject" else ""
            location = self.post(decide_on, f"/suggestions/{current}/{outcome}/", reason=reason)
            following = _review_id(location)
            # A refused decision redirects back to the same item; a recorded one opens the next
            # item (claimed for this reviewer) or the queue.
            assert following != current, f"{self.username}'s decision on {current} was refused"
            with self.ledger.lock:
                self.ledger.decisions.append((current, outcome, decide_on.url))
            self.decided += 1
            current = following
        pytest.fail(f"{self.username} was still deciding at the deadline")


def _review_id(location: str) -> str | None:
    match = REVIEW_PATH.match(location)
    return match.group(1) if match else None


# --- What the database holds ------------------------------------------------------------------


def runs_by_suggestion() -> dict[str, list[tuple[str, int]]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT suggestion_id, capability, parent_pid FROM {RUN_TABLE}")  # noqa: S608
        rows = cursor.fetchall()
    runs: dict[str, list[tuple[str, int]]] = {}
    for suggestion_id, capability, parent_pid in rows:
        runs.setdefault(suggestion_id, []).append((capability, parent_pid))
    return runs


def all_executed() -> bool:
    approved = Suggestion.objects.filter(
        status__in=[SuggestionStatus.APPROVED, SuggestionStatus.AUTO_APPROVED]
    )
    return (
        not approved.exclude(execution_status=ExecutionStatus.SUCCEEDED).exists()
        and not OutboxItem.objects.filter(kind=OutboxKind.EXECUTE, done_at__isnull=True).exists()
    )


EXPECTED_EVENTS = {
    SuggestionStatus.AUTO_APPROVED: ["suggestion.received", "suggestion.routed"],
    SuggestionStatus.AUTO_REJECTED: ["suggestion.received", "suggestion.routed"],
    SuggestionStatus.APPROVED: [
        "suggestion.received",
        "suggestion.routed",
        "suggestion.claimed",
        "decision.recorded",
    ],
    SuggestionStatus.REJECTED: [
        "suggestion.received",
        "suggestion.routed",
        "suggestion.claimed",
        "decision.recorded",
    ],
}
EXECUTED = {SuggestionStatus.APPROVED, SuggestionStatus.AUTO_APPROVED}


# --- The test ---------------------------------------------------------------------------------


def test_two_web_nodes_and_two_workers_lose_nothing_and_do_nothing_twice(topology):
    started = time.monotonic()
    capabilities: dict[str, Capability] = {
        key: CapabilityFactory(key=key, auto_approve_at=approve_at, auto_reject_below=reject_below)
        for key, (approve_at, reject_below) in THRESHOLDS.items()
    }
    issued = ApiClientFactory.issue(capabilities=list(capabilities.values()))
    for number in range(REVIEWERS):
        user = UserFactory(username=f"scale-reviewer-{number}")
        for capability in capabilities.values():
            assign_perm("capabilities.review_capability", user, capability)
    planned = plan()
    routes = Counter(item.expected for item in planned)
    assert set(routes) == {"auto_approved", "auto_rejected", "pending_review"}, routes
    run = f"scale-{uuid.uuid4().hex[:8]}"
    ledger = Ledger()
    submissions_done = threading.Event()
    deadline = time.monotonic() + WAIT_SECONDS

    def submitter(number: int) -> Callable[[], None]:
        def submit_share() -> None:
            caller = ApiCaller(topology, issued.secret, run, ledger)
            for item in planned[number::SUBMITTERS]:
                caller.submit(item)

        return submit_share

    with ThreadPoolExecutor(SUBMITTERS + REVIEWERS) as pool:
        reviewers = [
            pool.submit(
                Reviewer(topology, f"scale-reviewer-{number}", number, ledger).work,
                submissions_done,
                deadline,
            )
            for number in range(REVIEWERS)
        ]
        submitters = [pool.submit(submitter(number)) for number in range(SUBMITTERS)]
        try:
            for future in submitters:
                future.result()
        finally:
            submissions_done.set()
        for future in reviewers:
            future.result()
    workload_seconds = time.monotonic() - started

    wait_until(
        lambda: all_executed() and topology.rq.idle() and AuditCheckpoint.objects.exists(),
        "the workers to execute every approval and sign a checkpoint",
        topology.processes,
    )

    # Nothing lost: every logical submission was accepted, each under one id, and exists once.
    assert sorted(ledger.accepted) == list(range(SUBMISSIONS))
    ids = {}
    for index, answers in ledger.accepted.items():
        assert len({answer["id"] for answer in answers}) == 1, (index, answers)
        ids[answers[0]["id"]] = planned[index]
    suggestions = {str(s.pk): s for s in Suggestion.objects.select_related("capability")}
    assert set(suggestions) == set(ids), "the database holds other suggestions than were accepted"
    assert sorted(s.external_id for s in suggestions.values()) == sorted(
        f"{run}-{index}" for index in range(SUBMISSIONS)
    )
    caller = ApiCaller(topology, issued.secret, run, ledger)
    assert sorted(row["id"] for row in caller.listed()) == sorted(ids)
    # Idempotent retries, replayed or raced across the nodes, made one suggestion each.
    assert len(ledger.replays) == sum(1 for item in planned if item.key and not item.raced)
    assert all(len(ledger.accepted[item.index]) == WEB_NODES for item in planned if item.raced)

    # Routed as the policies say, and decided once: by the policy, or by one reviewer.
    decided = Counter(suggestion_id for suggestion_id, _outcome, _node in ledger.decisions)
    assert all(count == 1 for count in decided.values()), decided
    queued = {i for i, item in ids.items() if item.expected == SuggestionStatus.PENDING_REVIEW}
    assert set(decided) == queued
    assert {node for _id, _outcome, node in ledger.decisions} == {n.url for n in topology.web}
    assert set(ledger.reviewer_pages) == {node.url for node in topology.web}
    for suggestion_id, suggestion in suggestions.items():
        item = ids[suggestion_id]
        if item.expected == SuggestionStatus.PENDING_REVIEW:
            outcome = human_outcome(suggestion_id)
            wanted = (
                SuggestionStatus.APPROVED if outcome == "approve" else SuggestionStatus.REJECTED
            )
        else:
            wanted = item.expected
        assert (suggestion.capability.key, suggestion.status) == (item.capability, wanted)
    finals = Counter(
        str(pk)
        for pk in Decision.objects.filter(is_final=True).values_list("suggestion_id", flat=True)
    )
    assert finals == Counter(set(suggestions)), "a suggestion without, or with two, final decisions"
    assert Decision.objects.count() == len(suggestions)

    # Each approval executed exactly once, by one of the two workers, and nothing else ran.
    runs = runs_by_suggestion()
    approved = {i for i, s in suggestions.items() if s.status in EXECUTED}
    assert set(runs) == approved
    assert all(len(each) == 1 for each in runs.values()), runs
    assert all(runs[i][0][0] == suggestions[i].capability.key for i in approved)
    worker_pids = {worker.pid for worker in topology.workers}
    assert {parent for each in runs.values() for _key, parent in each} == worker_pids
    assert all(suggestions[i].execution_attempts == 1 for i in approved)

    # The audit trail: every suggestion's events exactly once each, and the chain verifies.
    events: dict[str, list[str]] = {}
    for subject_id, action in AuditEvent.objects.filter(subject_type="suggestion").values_list(
        "subject_id", "action"
    ):
        events.setdefault(subject_id, []).append(action)
    assert set(events) == set(suggestions)
    for suggestion_id, suggestion in suggestions.items():
        wanted_events = EXPECTED_EVENTS[suggestion.status]
        if suggestion.status in EXECUTED:
            wanted_events = [*wanted_events, "execution.succeeded"]
        assert sorted(events[suggestion_id]) == sorted(wanted_events), (
            suggestion,
            events[suggestion_id],
        )
    out = StringIO()
    try:
        call_command("audit_verify", stdout=out, stderr=StringIO())
    except SystemExit:  # how the command says the chain is broken
        pytest.fail(f"audit_verify: {out.getvalue()}")
    verdict = out.getvalue()
    assert verdict.startswith("OK: the chain is intact"), verdict
    assert "(0 checkpoint(s) matched)" not in verdict, verdict

    # Nothing went wrong on the way, in any process: no traceback, no 5xx in an access log.
    troubled = {
        process.name: text
        for process in topology.processes.started
        if "Traceback" in (text := process.log.read_text(errors="replace"))
        or re.search(r'" 5\d\d ', text)
    }
    assert not troubled, troubled
    routed = ", ".join(f"{count} {status}" for status, count in routes.items())
    print(
        f"{len(suggestions)} suggestions ({routed}), {len(ledger.decisions)} human "
        f"decisions, {len(approved)} executions, {ledger.in_flight} in-flight 409s; workload "
        f"{workload_seconds:.1f} s, total {time.monotonic() - started:.1f} s"
    )
