"""Checking the chain: every hash, every link, no gaps, and agreement with signed checkpoints.

Pure functions over rows, so the database, an export file and a test all go through the same
walk. The walk stops at the first problem and names its sequence number.
"""

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit import chain, signing


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong: where, what kind, and a sentence for people.

    Kinds: ``altered`` (content no longer matches its hash), ``reordered`` (an event carries
    another position's number), ``gap`` (events missing), ``broken_link`` (an event does not
    follow its predecessor: forged, inserted or replaced), ``head_mismatch`` (the chain ends
    before the recorded head), ``truncated`` and ``rewritten`` (a signed checkpoint disagrees),
    ``bad_checkpoint`` (a checkpoint's own signature is invalid).
    """

    sequence: int
    kind: str
    message: str


@dataclass(frozen=True)
class Checkpoint:
    sequence: int
    head_hash: str
    signed_at: str
    algorithm: str
    key_id: str
    signature: str

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> "Checkpoint":
        signed_at = row["signed_at"]
        if not isinstance(signed_at, str):
            signed_at = chain.format_timestamp(signed_at)
        return cls(
            sequence=int(row["sequence"]),
            head_hash=str(row["head_hash"]),
            signed_at=signed_at,
            algorithm=str(row["algorithm"]),
            key_id=str(row["key_id"]),
            signature=str(row["signature"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "head_hash": self.head_hash,
            "signed_at": self.signed_at,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": self.signature,
        }


@dataclass
class Report:
    """What a verification walked, and the first problem, if any."""

    events: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    last_hash: str = chain.GENESIS_HASH
    first_prev_hash: str | None = None  # the link a slice took on trust (see ``join_slices``)
    checkpoints_checked: int = 0
    problem: Problem | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def verify_events(
    rows: Iterable[Mapping[str, Any]],
    *,
    from_genesis: bool = True,
    checkpoints: Sequence[Checkpoint] = (),
    head: tuple[int, str] | None = None,
    public_key: str = "",
    progress: Callable[[int], None] | None = None,
    progress_every: int = 100_000,
) -> Report:
    """Walk ``rows`` (events in sequence order, each with ``chain.EVENT_FIELDS`` and ``hash``).

    ``from_genesis``: the rows start at event 1 (the whole chain); otherwise the first row's
    ``prev_hash`` is taken on trust (an export of a time range). ``checkpoints``: signed
    checkpoints to hold the chain to; each is first checked against its own signature.
    ``head``: the (sequence, hash) the database records as the chain's end.
    """
    report = Report()
    started = time.perf_counter()
    try:
        report.problem = (
            checkpoint_problem(checkpoints, public_key=public_key)
            or _walk(rows, report, from_genesis, checkpoints, None, progress, progress_every)
            or _end_problem(report, checkpoints, head)
        )
    finally:
        report.seconds = time.perf_counter() - started
    return report


def checkpoint_problem(
    checkpoints: Sequence[Checkpoint], *, public_key: str = ""
) -> Problem | None:
    """The first of ``checkpoints`` whose own signature is invalid, as a ``bad_checkpoint``."""
    for checkpoint in checkpoints:
        message = signing.checkpoint_message(
            sequence=checkpoint.sequence,
            head_hash=checkpoint.head_hash,
            signed_at=checkpoint.signed_at,
        )
        wrong = signing.verify(
            message,
            signing.Signature(checkpoint.algorithm, checkpoint.key_id, checkpoint.signature),
            public_key=public_key,
        )
        if wrong:
            return Problem(
                checkpoint.sequence,
                "bad_checkpoint",
                f"Checkpoint #{checkpoint.sequence}: {wrong}.",
            )
    return None


# --- A walk split into slices -----------------------------------------------------------------
#
# Each event's hash depends on its own fields and its recorded predecessor hash only, so
# consecutive slices of the chain can be walked at once (in several processes) and joined:
# ``verify_slice`` walks one, taking its first link on trust; ``join_slices`` checks what no
# slice could see, the links and gaps between them and the chain's end. The joined report
# names the problem a single walk would have stopped at first.


@dataclass(frozen=True)
class Slice:
    """Events ``low`` to ``high`` of a walk split into slices, with the checkpoints among
    them and the last one before them (0 if none)."""

    low: int
    high: int
    checkpoints: tuple[Checkpoint, ...]
    matched_before: int


def slices(last: int, parts: int, checkpoints: Sequence[Checkpoint] = ()) -> list[Slice]:
    """Events 1 to ``last`` cut into ``parts`` slices of consecutive numbers (fewer when
    there are fewer events), each with its share of the ``checkpoints``."""
    cuts = sorted({1 + last * part // parts for part in range(parts)} | {last + 1})
    return [
        Slice(
            low,
            next_low - 1,
            tuple(c for c in checkpoints if low <= c.sequence < next_low),
            max((c.sequence for c in checkpoints if c.sequence < low), default=0),
        )
        for low, next_low in itertools.pairwise(cuts)
    ]


def verify_slice(rows: Iterable[Mapping[str, Any]], part: Slice) -> Report:
    """Walk the events of ``part`` (``rows``, in sequence order): their hashes, their links
    but the first, their gaps, and the checkpoints among them, whose signatures the caller
    has checked. The first slice must start at event 1; a rewrite found in a slice is
    reported as starting after the last checkpoint before it."""
    report = Report()
    started = time.perf_counter()
    try:
        report.problem = _walk(
            rows, report, part.low == 1, part.checkpoints, part.matched_before, None, 0
        )
    finally:
        report.seconds = time.perf_counter() - started
    return report


def verify_in_slices(
    last: int,
    parts: int,
    walk: Callable[[list[Slice]], list[Report]],
    *,
    checkpoints: Sequence[Checkpoint] = (),
    head: tuple[int, str] | None = None,
    public_key: str = "",
) -> Report:
    """``verify_events`` of events 1 to ``last``, made as ``parts`` slices: the checkpoints'
    signatures checked once, the slices walked by ``walk`` (each with ``verify_slice``, in
    any order or at once; it returns their reports in slice order), the reports joined."""
    if problem := checkpoint_problem(checkpoints, public_key=public_key):
        return Report(problem=problem)
    reports = walk(slices(last, parts, checkpoints))
    return join_slices(reports, checkpoints=checkpoints, head=head)


def join_slices(
    reports: Sequence[Report],
    *,
    checkpoints: Sequence[Checkpoint] = (),
    head: tuple[int, str] | None = None,
) -> Report:
    """The reports of consecutive slices (in chain order, each from ``verify_slice``) as one:
    the first problem within or between them, else the end's checks against all the
    ``checkpoints`` and the ``head``, as ``verify_events`` makes them."""
    joined = Report(seconds=max((report.seconds for report in reports), default=0.0))
    for report in reports:
        if report.first_sequence is not None:
            if joined.first_sequence is None:
                joined.first_sequence = report.first_sequence
            elif problem := _between(joined, report):
                joined.problem = problem
                return joined
        joined.events += report.events
        joined.checkpoints_checked += report.checkpoints_checked
        if report.last_sequence is not None:
            joined.last_sequence, joined.last_hash = report.last_sequence, report.last_hash
        if report.problem is not None:
            joined.problem = report.problem
            return joined
    joined.problem = _end_problem(joined, checkpoints, head)
    return joined


# Problems a walk finds in an event's own content, before it looks at the event's link.
_OF_CONTENT = ("altered", "reordered")


def _between(before: Report, report: Report) -> Problem | None:
    """What is wrong where the walk of ``before`` ended and ``report``'s slice began, in the
    order a single walk checks an event: its number, its content, then its link."""
    assert report.first_sequence is not None
    expected = (before.last_sequence or 0) + 1
    if report.first_sequence != expected:
        return _gap(expected, report.first_sequence)
    problem = report.problem
    if problem and problem.sequence == report.first_sequence and problem.kind in _OF_CONTENT:
        return problem
    if report.first_prev_hash != before.last_hash:
        return _broken_link(report.first_sequence)
    return None


# --- The walk ---------------------------------------------------------------------------------


def _walk(
    rows: Iterable[Mapping[str, Any]],
    report: Report,
    from_genesis: bool,
    checkpoints: Sequence[Checkpoint],
    matched_before: int | None,
    progress: Callable[[int], None] | None,
    progress_every: int,
) -> Problem | None:
    by_sequence = {checkpoint.sequence: checkpoint for checkpoint in checkpoints}
    expected = 1 if from_genesis else None
    last_matched = 0
    previous_hash = chain.GENESIS_HASH
    event_hash = chain.event_hash
    for row in rows:
        sequence = int(row["sequence"])
        if expected is None:  # a slice: start where it starts, trusting its first link
            expected, previous_hash = sequence, row["prev_hash"]
            report.first_sequence, report.first_prev_hash = sequence, previous_hash
            last_matched = sequence - 1 if matched_before is None else matched_before
        elif report.first_sequence is None:
            report.first_sequence, report.first_prev_hash = sequence, row["prev_hash"]
        if sequence != expected:
            if sequence < expected:
                return Problem(
                    sequence,
                    "reordered",
                    f"Event #{sequence} appears after #{expected - 1}: the order was changed.",
                )
            return _gap(expected, sequence)
        actual = event_hash(row, row["prev_hash"])
        if actual != row["hash"]:
            return _mismatch(row, sequence)
        if row["prev_hash"] != previous_hash:
            return _broken_link(sequence)
        signed = by_sequence.get(sequence)
        if signed is not None:
            if signed.head_hash != actual:
                # Everything up to the last matching checkpoint is proven; the rewrite starts
                # somewhere after it.
                start = last_matched + 1
                return Problem(
                    start,
                    "rewritten",
                    f"Events #{start} to #{sequence} were rewritten: #{sequence} differs from the "
                    f"checkpoint signed at {signed.signed_at}.",
                )
            report.checkpoints_checked += 1
            last_matched = sequence
        previous_hash = actual
        expected = sequence + 1
        report.events += 1
        report.last_sequence, report.last_hash = sequence, actual
        if progress is not None and report.events % progress_every == 0:
            progress(report.events)
    return None


def _end_problem(
    report: Report, checkpoints: Sequence[Checkpoint], head: tuple[int, str] | None
) -> Problem | None:
    """What is wrong at the end of a walk that found nothing wrong on its way: checkpoints
    beyond its last event, or a recorded head it did not end at."""
    last = report.last_sequence or 0
    beyond = [c for c in checkpoints if c.sequence > last]
    if beyond:
        latest = max(beyond, key=lambda c: c.sequence)
        return Problem(
            last + 1,
            "truncated",
            f"A checkpoint signed at {latest.signed_at} covers event #{latest.sequence}, but "
            f"the chain ends at #{last}: events after #{last} were removed.",
        )
    if head is not None and head != (last, report.last_hash):
        head_sequence, head_hash = head
        if head_sequence > last:
            return Problem(
                last + 1,
                "head_mismatch",
                f"The chain head records event #{head_sequence}, but the chain ends at #{last}: "
                f"events after #{last} were removed.",
            )
        return Problem(
            head_sequence,
            "head_mismatch",
            f"The chain head records #{head_sequence} with hash {head_hash[:12]}…, which is not "
            f"the last event (#{last}, {report.last_hash[:12]}…).",
        )
    unchecked = [c.sequence for c in checkpoints if c.sequence < (report.first_sequence or 0)]
    if unchecked:
        report.notes.append(f"{len(unchecked)} checkpoint(s) precede these events, not checked.")
    return None


def _gap(expected: int, sequence: int) -> Problem:
    missing = (
        f"Event #{expected} is"
        if sequence == expected + 1
        else f"Events #{expected} to #{sequence - 1} are"
    )
    return Problem(expected, "gap", f"{missing} missing (the next is #{sequence}).")


def _broken_link(sequence: int) -> Problem:
    return Problem(
        sequence,
        "broken_link",
        f"Event #{sequence} does not follow #{sequence - 1}: its recorded predecessor "
        "hash differs (an event was forged, inserted or replaced here).",
    )


def _mismatch(row: Mapping[str, Any], sequence: int) -> Problem:
    # Content that hashes correctly under a nearby number was moved there from elsewhere.
    for offset in (-3, -2, -1, 1, 2, 3):
        if sequence + offset < 1:
            continue
        moved = {**row, "sequence": sequence + offset}
        if chain.event_hash(moved, row["prev_hash"]) == row["hash"]:
            return Problem(
                sequence,
                "reordered",
                f"Event #{sequence} holds the content recorded as #{sequence + offset}: "
                "events were swapped or renumbered.",
            )
    return Problem(
        sequence,
        "altered",
        f"Event #{sequence} was altered: its content no longer matches its hash.",
    )
