"""Checking the chain: every hash, every link, no gaps, and agreement with signed checkpoints.

Pure functions over rows, so the database, an export file and a test all go through the same
walk. The walk stops at the first problem and names its sequence number.
"""

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
        report.problem = _walk(
            rows, report, from_genesis, checkpoints, head, public_key, progress, progress_every
        )
    finally:
        report.seconds = time.perf_counter() - started
    return report


def _walk(
    rows: Iterable[Mapping[str, Any]],
    report: Report,
    from_genesis: bool,
    checkpoints: Sequence[Checkpoint],
    head: tuple[int, str] | None,
    public_key: str,
    progress: Callable[[int], None] | None,
    progress_every: int,
) -> Problem | None:
    by_sequence: dict[int, Checkpoint] = {}
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
        by_sequence[checkpoint.sequence] = checkpoint

    expected = 1 if from_genesis else None
    last_matched = 0
    previous_hash = chain.GENESIS_HASH
    event_hash = chain.event_hash
    for row in rows:
        sequence = int(row["sequence"])
        if expected is None:  # a slice: start where it starts, trusting its first link
            expected, previous_hash = sequence, row["prev_hash"]
            report.first_sequence = sequence
            last_matched = sequence - 1
        elif report.first_sequence is None:
            report.first_sequence = sequence
        if sequence != expected:
            if sequence < expected:
                return Problem(
                    sequence,
                    "reordered",
                    f"Event #{sequence} appears after #{expected - 1}: the order was changed.",
                )
            missing = (
                f"Event #{expected} is"
                if sequence == expected + 1
                else f"Events #{expected} to #{sequence - 1} are"
            )
            return Problem(expected, "gap", f"{missing} missing (the next is #{sequence}).")
        actual = event_hash(row, row["prev_hash"])
        if actual != row["hash"]:
            return _mismatch(row, sequence)
        if row["prev_hash"] != previous_hash:
            return Problem(
                sequence,
                "broken_link",
                f"Event #{sequence} does not follow #{sequence - 1}: its recorded predecessor "
                "hash differs (an event was forged, inserted or replaced here).",
            )
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
