"""Bulk access: the rule's real calls to Panther's key-value store, against moto's DynamoDB.

Nothing here mocks the rule or its helpers: the rule (``dynamodb_rule``, tests/conftest.py)
calls panther_detection_helpers' own increment_counter, which reaches moto's in-process DynamoDB.
Faults are real botocore failures: a missing table, no credentials, throttling and timeouts
injected as the service's answer before it is sent, a stored value of the wrong type.
"""

import os
from datetime import UTC, datetime
from decimal import Decimal

import boto3
import botocore.exceptions
import pytest
import windowed_counter
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_profiles import fuzz_settings
from moto.core.botocore_stubber import MockRawResponse
from panther_core.enriched_event import PantherEvent
from repo import yaml_test

GET = yaml_test("Real-shaped GetObject from a public IPv4 address, no requestParameters")["Log"]
THRESHOLD = 100


def event(**changes):
    return PantherEvent({**GET, **changes})


def at(clock, **changes):
    return event(eventTime=f"2026-11-20T{clock}Z", **changes)


def alert(rule, evt):
    """Every alert function on one event, in the order Panther calls them."""
    return {
        "title": rule.title(evt),
        "dedup": rule.dedup(evt),
        "severity": rule.severity(evt),
        "context": rule.alert_context(evt),
    }


def stored_counts(table):
    return {item["key"]: int(item["intCount"]) for item in table.scan()["Items"]}


class StoreCalls:
    """Counts the requests the rule's store client sends, and can answer them with a fault."""

    def __init__(self):
        self.sent = 0
        self.answer = None  # None: let moto answer

    def __call__(self, request, **_):
        self.sent += 1
        if self.answer is not None:
            return self.answer(request)
        return None


@pytest.fixture
def store_calls():
    events = windowed_counter.GUARD.table().meta.client.meta.events
    calls = StoreCalls()
    events.register_first("before-send.dynamodb", calls)
    yield calls
    events.unregister("before-send.dynamodb", calls)


def throttled(request):
    body = (
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
        b'"message":"The level of configured provisioned throughput for the table was exceeded"}'
    )
    return botocore.awsrequest.AWSResponse(request.url, 400, {}, MockRawResponse(body))


def timed_out(request):
    raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url)


# --- counting -------------------------------------------------------------------------------------


def test_a_burst_turns_critical_at_the_threshold_and_not_before(dynamodb_rule, kv_table):
    severities = [dynamodb_rule.severity(at(f"09:{n // 60:02d}:{n % 60:02d}")) for n in range(150)]
    assert severities[: THRESHOLD - 1] == ["DEFAULT"] * (THRESHOLD - 1)
    assert set(severities[THRESHOLD - 1 :]) == {"CRITICAL"}
    (count,) = stored_counts(kv_table).values()
    assert count == 150


def test_the_bulk_alert_says_so_and_opens_its_own_alert(dynamodb_rule):
    for n in range(THRESHOLD - 2):
        dynamodb_rule.severity(at(f"09:20:{n % 60:02d}"))
    last_quiet = alert(dynamodb_rule, at("09:21:00", eventName="PutObject"))
    bulk = alert(dynamodb_rule, at("09:21:01"))
    assert last_quiet["severity"] == "DEFAULT"
    assert bulk["severity"] == "CRITICAL"
    assert bulk["title"].startswith("Bulk access (100 operations in 60 min so far): S3 GetObject")
    assert bulk["dedup"] != last_quiet["dedup"]
    assert bulk["context"]["bulkAccess"] == {
        "operationsInWindow": 100,
        "threshold": THRESHOLD,
        "windowMinutes": 60,
        "windowStart": int(datetime(2026, 11, 20, 9, tzinfo=UTC).timestamp()),
        "bulk": True,
        "stateUnavailable": None,
    }


def test_each_matching_event_is_counted_once_whatever_functions_run(dynamodb_rule, kv_table):
    first, second = at("09:14:03"), at("09:14:03")  # equal content, two events
    alert(dynamodb_rule, first)
    dynamodb_rule.title(first)
    alert(dynamodb_rule, second)
    assert list(stored_counts(kv_table).values()) == [2]
    assert dynamodb_rule.alert_context(second)["bulkAccess"]["operationsInWindow"] == 2


def test_events_that_do_not_match_never_touch_the_store(dynamodb_rule, kv_table, store_calls):
    for evt in (event(sourceIPAddress="10.0.141.54"), event(eventName="ListObjects"), event()):
        dynamodb_rule.rule(evt)
    alert(dynamodb_rule, event(sourceIPAddress="10.0.141.54"))  # unit tests call these too
    assert stored_counts(kv_table) == {}
    assert store_calls.sent == 0


def test_the_alert_functions_take_the_engines_match_as_decided(
    dynamodb_rule, kv_table, monkeypatch
):
    matched, unseen = at("09:14:03"), at("09:14:04")
    assert dynamodb_rule.rule(matched)
    decided = []
    rule = dynamodb_rule.rule
    monkeypatch.setattr(dynamodb_rule, "rule", lambda evt: decided.append(evt) or rule(evt))
    alert(dynamodb_rule, matched)
    assert decided == []
    alert(dynamodb_rule, unseen)
    assert decided == [unseen]
    assert sorted(stored_counts(kv_table).values()) == [2]


def test_a_plain_dict_edited_after_its_match_is_decided_again(dynamodb_rule, kv_table):
    record = {**GET, "eventTime": "2026-11-20T09:14:03Z"}
    assert dynamodb_rule.rule(record)
    record["sourceIPAddress"] = "10.0.141.54"
    alert(dynamodb_rule, record)
    assert stored_counts(kv_table) == {}


@pytest.mark.parametrize(
    ("other", "separate"),
    [
        ({"errorCode": "VpceAccessDenied"}, "a refused call"),
        ({"sourceIPAddress": "198.199.88.18"}, "another address"),
        ({"userIdentity": {**GET["userIdentity"], "principalId": "AROAIOSFODNN7EXAMPLE:x"}}, "x"),
    ],
    ids=["refused", "address", "caller"],
)
def test_counts_are_kept_per_caller_address_and_success(dynamodb_rule, kv_table, other, separate):
    alert(dynamodb_rule, at("09:14:03"))
    alert(dynamodb_rule, at("09:14:04", **other))
    assert sorted(stored_counts(kv_table).values()) == [1, 1], separate


# --- the window is event time --------------------------------------------------------------------


def test_the_window_boundary_restarts_the_count(dynamodb_rule, kv_table):
    counts = [
        dynamodb_rule.alert_context(at(clock))["bulkAccess"]["operationsInWindow"]
        for clock in ("09:00:00", "09:59:59", "10:00:00", "10:00:01")
    ]
    assert counts == [1, 2, 1, 2]
    assert len(stored_counts(kv_table)) == 2


def test_old_events_count_exactly_as_they_did_live(dynamodb_rule):
    # Events from years ago: a TTL taken from their time would have expired at once.
    counts = [
        dynamodb_rule.alert_context(event(eventTime=f"2019-03-04T05:06:{s:02d}Z"))["bulkAccess"][
            "operationsInWindow"
        ]
        for s in range(3)
    ]
    assert counts == [1, 2, 3]


def test_p_event_time_is_preferred_to_event_time(dynamodb_rule):
    evt = event(p_event_time="2026-11-20 10:30:00.000000000", eventTime="2026-11-20T09:14:03Z")
    start = dynamodb_rule.alert_context(evt)["bulkAccess"]["windowStart"]
    assert start == int(datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp())


def test_the_counter_expires_by_ttl_measured_from_now(dynamodb_rule, kv_table):
    alert(dynamodb_rule, event())
    (item,) = kv_table.scan()["Items"]
    expires_in = int(item["expiresAt"]) - datetime.now(UTC).timestamp()
    assert 2 * 3600 - 60 < expires_in <= 2 * 3600


# --- the store failing never costs the alert ------------------------------------------------------


def assert_fires_as_without_state(dynamodb_rule, evt, reason):
    assert dynamodb_rule.rule(evt) is True
    outputs = alert(dynamodb_rule, evt)
    assert outputs["severity"] == "DEFAULT"
    assert outputs["title"].startswith("S3 GetObject")
    assert outputs["dedup"].endswith(":DEFAULT")
    unavailable = outputs["context"]["bulkAccess"]["stateUnavailable"]
    assert unavailable is not None
    assert reason in unavailable
    assert outputs["context"]["bulkAccess"]["operationsInWindow"] is None


def test_a_missing_table(dynamodb_rule, kv_table):
    kv_table.delete()
    assert_fires_as_without_state(dynamodb_rule, event(), "ResourceNotFoundException")


def test_no_credentials(dynamodb_rule, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    # A session and client made now, not the ones that found moto's credentials earlier.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setattr(windowed_counter.GUARD, "_table", None)
    assert_fires_as_without_state(dynamodb_rule, event(), "NoCredentialsError")


def test_a_garbled_stored_value(dynamodb_rule, kv_table):
    key = windowed_counter.counter_key(
        dynamodb_rule.COUNTER_PREFIX,
        ["123456789012", "AROAIOSFODNN7EXAMPLE:etl-nightly", "198.199.88.17", "ok"],
        int(datetime(2026, 11, 20, 9, tzinfo=UTC).timestamp()),
    )
    kv_table.put_item(Item={"key": key, "intCount": "many", "expiresAt": 4_102_444_800})
    assert_fires_as_without_state(dynamodb_rule, event(), "ValidationException")


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(throttled, "ProvisionedThroughputExceededException"), (timed_out, "ReadTimeoutError")],
    ids=["throttled", "timeout"],
)
def test_a_failing_store_is_tried_briefly_then_left_alone(
    dynamodb_rule, store_calls, fault, reason
):
    store_calls.answer = fault
    assert_fires_as_without_state(dynamodb_rule, event(), reason)
    assert store_calls.sent == 2  # one call, one retry
    for second in range(50):  # the rest of a large batch: the store is not asked again
        assert_fires_as_without_state(dynamodb_rule, at(f"09:15:{second:02d}"), reason)
    assert store_calls.sent == 2


def test_the_store_is_asked_again_after_the_pause(dynamodb_rule, store_calls, monkeypatch):
    store_calls.answer = throttled
    alert(dynamodb_rule, event())
    store_calls.answer = None
    guard = windowed_counter.GUARD
    resumed = guard.closed_until + 0.001
    monkeypatch.setattr(guard, "clock", lambda: resumed)
    assert dynamodb_rule.alert_context(at("09:16:00"))["bulkAccess"]["operationsInWindow"] == 1


def test_the_table_other_rules_use_is_left_as_it_was(dynamodb_rule):
    from panther_detection_helpers import caching

    shared = object()
    caching._KV_TABLE = shared
    try:
        alert(dynamodb_rule, event())
        assert caching._KV_TABLE is shared
    finally:
        caching._KV_TABLE = None


# --- the helper's pure parts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (7, 7),
        ("150", 150),
        (" 12 ", 12),
        (Decimal("101"), 101),
        (Decimal("1.5"), None),
        (Decimal("2.4"), None),
        (Decimal("NaN"), None),
        ("not-a-count", None),
        ("", None),
        (True, None),
        (0, None),
        (-3, None),
        (10**12, 10**12),
        (10**12 + 1, None),
        (str(10**12), 10**12),
        ("0" * 13 + "1", None),  # digits, but more than a count this code writes
        (10**13, None),
        ("9" * 14, None),
        (None, None),
        ([1], None),
    ],
)
def test_as_count(value, count):
    assert windowed_counter.as_count(value) == count


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"eventTime": "2026-11-20T09:14:03Z"}, "2026-11-20T09:14:03+00:00"),
        ({"eventTime": "2026-11-20T09:14:03.123456789Z"}, "2026-11-20T09:14:03.123456+00:00"),
        ({"eventTime": "2026-11-20T10:14:03+01:00"}, "2026-11-20T09:14:03+00:00"),
        ({"p_event_time": "2026-11-20 09:14:03.000000000"}, "2026-11-20T09:14:03+00:00"),
        (
            {"p_event_time": "junk", "eventTime": "2026-11-20T09:14:03Z"},
            "2026-11-20T09:14:03+00:00",
        ),
        ({"eventTime": "2026-11-20"}, None),
        ({"eventTime": "2026-W47-5"}, None),
        ({"eventTime": "2026-13-40T09:14:03Z"}, None),
        ({"eventTime": "0001-01-01T00:00:00+01:00"}, None),
        ({"eventTime": "2026-11-20T23:59:59Z"}, "2026-11-20T23:59:59+00:00"),
        ({"eventTime": "2026-11-20T24:00:00Z"}, None),
        ({"eventTime": "2026-11-20T09:60:00Z"}, None),
        ({"eventTime": "2026-11-20T09:14:60Z"}, None),
        ({"eventTime": "2026-11-20T09:14:03.5Z"}, "2026-11-20T09:14:03.500000+00:00"),
        ({"eventTime": "2026-11-20T0\uff19:14:03Z"}, None),
        ({"eventTime": 1_795_165_200}, None),
        ({}, None),
    ],
    ids=[
        "zulu",
        "nanoseconds",
        "offset",
        "panther",
        "junk-then-event-time",
        "date-only",
        "week-date",
        "impossible-date",
        "before-year-one",
        "last-second-of-the-day",
        "hour-24",
        "minute-60",
        "second-60",
        "one-fraction-digit",
        "fullwidth-digit",
        "number",
        "none",
    ],
)
def test_event_epoch(fields, expected):
    seconds = windowed_counter.event_epoch(fields)
    shown = None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()
    assert shown == expected


def _epoch_by_datetime(text):
    """What an event time means, read by datetime itself: the reference for event_epoch()."""
    found = windowed_counter._EVENT_TIME.fullmatch(text.strip())
    if found is None:
        return None
    day, clock, fraction, zone = found.groups()
    stamp = f"{day}T{clock}.{fraction or '0'}{'+00:00' if zone in (None, 'Z') else zone}"
    try:
        return datetime.fromisoformat(stamp).astimezone(UTC).timestamp()
    except (ValueError, OverflowError):
        return None


def _two_digits(last):
    """Two digits, mostly from 00 to just past the last valid value, sometimes anything."""
    return st.one_of(st.integers(0, last + 1), st.integers(0, 99)).map("{:02d}".format)


# Every part of the form inside, at and past its bounds: impossible dates and clocks, years 0
# and 1, fractions longer than microseconds, zones that overflow.
EVENT_TIMES = st.tuples(
    st.sampled_from(["0000", "0001", "1969", "1970", "2026", "2028", "9999"]),
    st.tuples(_two_digits(12), _two_digits(31)).map(lambda month_day: "-" + "-".join(month_day)),
    st.sampled_from("T "),
    st.tuples(_two_digits(23), _two_digits(59), _two_digits(59)).map(":".join),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True)),
    st.sampled_from(["", "Z", "+00:00", "+01:00", "-05:30", "+23:59"]),
).map("".join)


@fuzz_settings()
@given(text=EVENT_TIMES)
def test_event_epoch_reads_every_time_as_datetime_does(text):
    assert windowed_counter.event_epoch({"eventTime": text}) == _epoch_by_datetime(text)


@pytest.mark.parametrize(
    ("length", "hashed"), [(511, False), (512, False), (513, True)], ids=["511", "512", "513"]
)
def test_counter_keys_up_to_512_characters_stay_readable(length, hashed):
    key = windowed_counter.counter_key("p", ["a" * (length - 2), "b"], 60)
    assert key.startswith("p:sha256-") is hashed


def test_counter_keys_stay_readable_or_are_hashed_to_a_bounded_size():
    readable = windowed_counter.counter_key("p", ["123456789012", "AIDAEXAMPLE", "8.8.8.8"], 60)
    assert readable == "p:123456789012:AIDAEXAMPLE:8.8.8.8:60"
    for parts in (["x" * 5000], ["\ud800 lone surrogate"], ["new\nline"]):
        key = windowed_counter.counter_key("p", parts, 60)
        assert key.startswith("p:sha256-")
        assert key.endswith(":60")
        assert len(key) < 100


def test_a_hostile_field_does_not_disable_the_store(dynamodb_rule):
    huge = {**GET["userIdentity"], "principalId": "AROAIOSFODNN7EXAMPLE:" + "s" * 5000}
    first = dynamodb_rule.alert_context(event(userIdentity=huge))["bulkAccess"]
    assert (first["operationsInWindow"], first["stateUnavailable"]) == (1, None)
    assert dynamodb_rule.alert_context(event())["bulkAccess"]["stateUnavailable"] is None


# --- the guard: bounded calls, and a pause after a failure ---------------------------------------


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_after_a_failure_the_store_is_left_alone_for_exactly_a_minute():
    clock = Clock(1_000.0)
    guard = windowed_counter.StoreGuard(clock=clock)
    assert guard.refusal() is None
    guard.failed(TimeoutError("x" * 300))
    assert guard.last_failure == "TimeoutError: " + "x" * 200
    clock.now = 1_059.999
    assert guard.refusal() == f"{guard.last_failure}; not retried for 60 s"
    clock.now = 1_060.0
    assert guard.refusal() is None
    guard.failed(TimeoutError())
    guard.reset()
    assert guard.refusal() is None


def test_a_new_or_reset_guard_refuses_nothing_from_the_clocks_start():
    guard = windowed_counter.StoreGuard(clock=Clock(0.5))
    assert guard.refusal() is None
    guard.failed(TimeoutError())
    guard.reset()
    assert guard.refusal() is None


def test_the_guards_client_gives_up_within_two_short_attempts():
    config = windowed_counter.StoreGuard().table().meta.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 1.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}


class Table:
    """Stands in for the guard's bounded table; records that it was used."""

    def __init__(self):
        self.used = False

    def update_item(self, **_):
        self.used = True
        return {"Attributes": {"intCount": Decimal(1)}}


def test_the_stores_own_functions_run_on_the_guards_bounded_table(genuine_caching, monkeypatch):
    caching = genuine_caching
    guard = windowed_counter.StoreGuard()
    table = Table()
    monkeypatch.setattr(guard, "table", lambda: table)
    assert guard.call(caching.increment_counter, "key", 1, 60) == 1
    assert table.used


@pytest.mark.parametrize("module", ["aaa.stand_in", "zzz.stand_in", "unittest.mock"])
def test_stand_ins_are_called_as_they_are(monkeypatch, module):
    def increment(key, val, epoch_seconds):
        return 5

    increment.__module__ = module
    guard = windowed_counter.StoreGuard()
    monkeypatch.setattr(guard, "table", lambda: pytest.fail("a stand-in needs no table"))
    assert guard.call(increment, "key", 1, 60) == 5


def test_a_store_answer_that_is_no_count_is_named_briefly():
    def increment(key, val, epoch_seconds):
        return "x" * 100

    found = windowed_counter.count_in_window(
        increment, "p", ["a"], {"eventTime": "2026-11-20T09:14:03Z"}, 3600,
        guard=windowed_counter.StoreGuard(),
    )  # fmt: skip
    assert found.unavailable == f"the store answered {'x' * 40!r}, not a count"


def test_the_guard_is_a_keyword_and_a_window_count_a_value():
    with pytest.raises(TypeError):
        windowed_counter.count_in_window(None, "p", [], {}, 60, windowed_counter.StoreGuard())
    with pytest.raises(AttributeError):
        windowed_counter.WindowCount(1, 0).count = 2
