import time
import uuid

from reviews.identifiers import uuid7
from tests.factories import submit


def test_uuid7_carries_its_version_and_variant():
    for _ in range(100):
        value = uuid7()
        assert value.version == 7
        assert value.variant == uuid.RFC_4122


def test_uuid7_starts_with_the_millisecond_it_was_made_in():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000

    assert before <= value.int >> 80 <= after


def test_uuid7_of_a_later_millisecond_sorts_after():
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()

    assert first < second
    assert str(first) < str(second)  # as the audit trail's subject ids compare


def test_uuid7_is_random_within_a_millisecond():
    values = {uuid7() for _ in range(10_000)}

    assert len(values) == 10_000


def test_new_suggestions_get_time_ordered_ids(capability, api_client_row):
    first = submit(api_client_row, capability)
    time.sleep(0.002)
    second = submit(api_client_row, capability)

    assert first.pk.version == second.pk.version == 7
    assert first.pk < second.pk
