from reviews.diffing import payload_changes, payload_line_diff


def test_changes_name_each_changed_added_and_removed_leaf():
    before = {"amount": "120.00", "items": [{"sku": "A"}, {"sku": "B"}], "gone": 1, "a/b": 1}
    after = {"amount": "100.00", "items": [{"sku": "A"}, {"sku": "C"}], "new": True, "a/b": 1}
    assert payload_changes(before, after) == [
        {"path": "/amount", "before": "120.00", "after": "100.00"},
        {"path": "/gone", "before": 1},
        {"path": "/items/1/sku", "before": "B", "after": "C"},
        {"path": "/new", "after": True},
    ]


def test_identical_payloads_have_no_changes():
    assert payload_changes({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}) == []


def test_a_list_of_another_length_is_one_change():
    assert payload_changes({"a": [1]}, {"a": [1, 2]}) == [
        {"path": "/a", "before": [1], "after": [1, 2]}
    ]


def test_line_diff_marks_added_and_removed_lines():
    lines = payload_line_diff({"amount": "120.00"}, {"amount": "100.00"})
    assert ("removed", '-  "amount": "120.00"') in lines
    assert ("added", '+  "amount": "100.00"') in lines
    assert lines[0][0] == "hunk"
