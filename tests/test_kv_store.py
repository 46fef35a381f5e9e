"""The replay's in-memory key-value store answers as panther_detection_helpers does on DynamoDB.

Each scenario runs the same calls against the real helpers on moto's DynamoDB and against the
replay's store, and compares every answer; the store's own clock (the replayed events' time)
and its installation over panther_detection_helpers.caching are checked separately.
"""

import pytest
from panther_detection_helpers import caching

from detection_replay.kv_store import DEFAULT_TTL_SECONDS, KeyValueStore, ReplayStoreError

NOW = 1_795_165_200  # 2026-11-20T09:00:00Z

SCENARIOS = {
    "counter": [
        ("get_counter", "c"),
        ("increment_counter", "c"),
        ("increment_counter", "c", 5),
        ("increment_counter", "c", 1, 3600),
        ("get_counter", "c"),
        ("reset_counter", "c"),
        ("get_counter", "c"),
        ("increment_counter", "c"),
    ],
    "threshold": [("evaluate_threshold", "t", 3)] * 7,
    "string set": [
        ("get_string_set", "s"),
        ("add_to_string_set", "s", "a"),
        ("add_to_string_set", "s", ["b", "c"]),
        ("add_to_string_set", "s", []),
        ("remove_from_string_set", "s", "b"),
        ("get_string_set", "s"),
        ("put_string_set", "s", ["x", "y"]),
        ("get_string_set", "s"),
        ("reset_string_set", "s"),
        ("get_string_set", "s"),
        ("check_account_age", "s"),
        ("add_to_string_set", "s", "z"),
        ("check_account_age", "s"),
    ],
    "dictionary": [
        ("get_dictionary", "d"),
        ("put_dictionary", "d", {"first": "2026-11-20", "n": 3, "tags": ["a"]}),
        ("get_dictionary", "d"),
        ("put_dictionary", "d", {}),
        ("get_dictionary", "d"),
    ],
}


def normalised(value):
    if isinstance(value, set):
        return sorted(value)
    if hasattr(value, "to_integral_value"):  # DynamoDB numbers are Decimals
        return int(value)
    return value


@pytest.mark.parametrize("calls", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_the_store_answers_as_the_helpers_do_on_dynamodb(genuine_caching, calls):
    store = KeyValueStore(now=NOW)
    for name, *args in calls:
        expected = normalised(getattr(genuine_caching, name)(*args))
        assert normalised(getattr(store, name)(*args)) == expected, (name, args)


def test_time_is_the_replayed_events_time():
    store = KeyValueStore(now=NOW)
    assert store.increment_counter("k", 1, 3600) == 1
    store.set_clock(NOW + 3600)
    assert store.increment_counter("k", 1, 3600) == 2  # an hour later, not yet expired
    store.set_clock(NOW + 2 * 3600 + 1)
    assert store.get_counter("k") == 0  # expired an hour after the last increment
    assert store.increment_counter("k", 1, 3600) == 1


def test_absolute_and_default_expiry():
    store = KeyValueStore(now=NOW)
    store.increment_counter("absolute", 1, NOW + 60)
    store.increment_counter("default")
    store.set_clock(NOW + 61)
    assert store.get_counter("absolute") == 0
    store.set_clock(NOW + DEFAULT_TTL_SECONDS)
    assert store.get_counter("default") == 1
    store.set_clock(NOW + DEFAULT_TTL_SECONDS + 1)
    assert store.get_counter("default") == 0


def test_ttl_expired_reads_the_clock():
    store = KeyValueStore(now=NOW)
    assert store.ttl_expired({"Item": {"expiresAt": NOW}}) is True
    assert store.ttl_expired({"Item": {"expiresAt": NOW + 1}}) is False
    assert store.ttl_expired({}) is False


def test_put_dictionary_refuses_what_the_helpers_refuse():
    store = KeyValueStore(now=NOW)
    with pytest.raises(TypeError):
        store.put_dictionary("d", ["not", "a", "dict"])
    with pytest.raises(ValueError, match="not JSON serializable"):
        store.put_dictionary("d", {"when": object()})


def test_installed_replaces_the_helpers_and_puts_them_back(genuine_caching):
    original = caching.increment_counter
    store = KeyValueStore(now=NOW)
    with store.installed():
        assert caching.increment_counter("k") == 1
        assert caching.get_counter("k") == 1
        with pytest.raises(ReplayStoreError, match="no DynamoDB table"):
            caching.kv_table()
    assert caching.increment_counter is original
    assert store.calls == 2
