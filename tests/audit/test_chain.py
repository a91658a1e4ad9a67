import datetime as dt
from decimal import Decimal

import pytest

from audit import chain

FIELDS = {
    "sequence": 7,
    "occurred_at": dt.datetime(2026, 11, 27, 8, 0, 0, 123, tzinfo=dt.UTC),
    "actor_type": "user",
    "actor_id": "3",
    "actor_label": "rita",
    "action": "decision.recorded",
    "subject_type": "suggestion",
    "subject_id": "0d9c",
    "capability": "refunds.issue",
    "data": {"outcome": "approved", "amount": "12.50"},
}


def test_canonical_json_sorts_keys_and_drops_whitespace():
    assert chain.canonical_json({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == (
        '{"a":[1,{"c":"é","d":2}],"b":1}'
    )


def test_nan_cannot_be_recorded():
    with pytest.raises(ValueError):
        chain.canonical_json({"x": float("nan")})
    with pytest.raises(ValueError):
        chain.normalize_data({"x": float("inf")})


def test_normalize_data_records_non_integers_and_times_as_strings():
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert chain.normalize_data(
        {"cost": Decimal("0.0042"), "at": moment, "confidence": 0.87, "n": 3, "ok": True, 1: None}
    ) == {
        "cost": "0.0042",
        "at": "2026-01-02T01:04:05.000000Z",
        "confidence": "0.87",
        "n": 3,
        "ok": True,
        "1": None,
    }


def test_objects_that_are_not_json_are_refused():
    with pytest.raises(TypeError):
        chain.normalize_data({"x": object()})


def test_the_hand_built_document_is_the_canonical_encoding_of_the_event():
    document = {**FIELDS, "occurred_at": chain.format_timestamp(FIELDS["occurred_at"])}
    document.update(v=1, prev_hash="ab" * 32)
    assert chain.event_document(FIELDS, "ab" * 32) == chain.canonical_json(document)


def test_strings_escape_only_quotes_backslashes_and_control_characters():
    fields = {**FIELDS, "actor_label": 'Zoë "the" \\ \n\u0001 \u2028'}
    document = chain.event_document(fields, chain.GENESIS_HASH)
    assert '"actor_label":"Zoë \\"the\\" \\\\ \\n\\u0001 \u2028"' in document


def test_hash_changes_with_any_field_and_with_the_predecessor():
    base = chain.event_hash(FIELDS, chain.GENESIS_HASH)
    assert len(base) == 64
    assert chain.event_hash(FIELDS, "1" * 64) != base
    for name, other in [("sequence", 8), ("actor_label", "sam"), ("data", {"outcome": "rejected"})]:
        assert chain.event_hash({**FIELDS, name: other}, chain.GENESIS_HASH) != base


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError):
        chain.format_timestamp(dt.datetime(2026, 1, 1))
