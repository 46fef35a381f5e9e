"""The first-seen baseline: its pure parts, its logic over a stand-in store, and the rule's real
calls to Panther's key-value store on moto's DynamoDB, with panther-detection-helpers 1.0.x (the
package's) and 0.4.0 (what a panther-analysis fork's Pipfile.lock installs).

Nothing here mocks the rule on moto: ``dynamodb_rule`` (tests/conftest.py) calls the helpers' own
get_string_set and put_string_set. Faults are real botocore failures: a missing table, no
credentials, throttling and timeouts injected as the service's answer before it is sent, a
stored value of the wrong type.
"""

import importlib.util
import os
import sys
import threading
import time
from pathlib import Path

import address_history
import boto3
import botocore.awsrequest
import botocore.exceptions
import pytest
from address_history import NEW, SEEN, UNKNOWN, AddressHistory, Baseline
from moto.core.botocore_stubber import MockRawResponse
from panther_core.enriched_event import PantherEvent
from repo import REPO_ROOT, cloudtrail_time, yaml_test

DAY = 86400
DAYS = 30
GET = yaml_test("Real-shaped GetObject from a public IPv4 address, no requestParameters")["Log"]
CALLER = "123456789012:AROAIOSFODNN7EXAMPLE:etl-nightly"
# The live store checks expiry against the wall clock: events on moto are recent ones.
RECENT = (int(time.time()) // 3600 - 2) * 3600


def event(epoch=RECENT, **changes):
    return PantherEvent({**GET, "eventTime": cloudtrail_time(epoch), **changes})


# --- the pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "network"),
    [
        ("198.199.88.17", "198.199.88.0/24"),
        (" 1.1.1.1 ", "1.1.1.0/24"),
        ("2600:1f18:4a3:6902:8f2e:11d4:70a9:3c5e", "2600:1f18:4a3:6902::/64"),
        ("::ffff:8.8.4.4", "8.8.4.0/24"),
        ("2002:808:404::1", "8.8.4.0/24"),
        ("64:ff9b::808:404", "8.8.4.0/24"),
        ("fe80::1%eth0", "fe80::/64"),
        ("AWS Internal", None),
        ("08.8.8.8", None),
        ("", None),
        (None, None),
        (["8.8.8.8"], None),
    ],
    ids=[
        "ipv4",
        "padded",
        "ipv6",
        "ipv4-mapped",
        "6to4",
        "nat64",
        "zone-index",
        "aws-internal",
        "leading-zero",
        "empty",
        "none",
        "list",
    ],
)
def test_address_network(raw, network):
    assert address_history.address_network(raw) == network


NETWORK = "198.199.88.0/24"
# "<caller>|<network>" is readable up to 512 characters: the caller's part fills the rest.
LONGEST_READABLE_CALLER = "x" * (512 - len(f"|{NETWORK}"))
HISTORY_KEY_CASES = {
    "a caller id": (CALLER, True),
    "exactly 512 characters": (LONGEST_READABLE_CALLER, True),
    "513 characters": (LONGEST_READABLE_CALLER + "x", False),
    "5,000 characters": ("x" * 5000, False),
    "a lone surrogate": ("\ud800 lone surrogate", False),
    "a newline": ("new\nline", False),
}


@pytest.mark.parametrize(("caller", "readable"), HISTORY_KEY_CASES.values(), ids=HISTORY_KEY_CASES)
def test_history_keys_stay_readable_or_are_hashed_to_a_bounded_size(caller, readable):
    key = address_history.history_key(caller, NETWORK)
    if readable:
        assert key == f"vpce-first-seen:{caller}|{NETWORK}"
    else:
        assert key.startswith("vpce-first-seen:sha256-")
        assert len(key) < 100


@pytest.mark.parametrize(
    ("answer", "epochs"),
    [
        ({"1795165200", "1795168800"}, {1795165200, 1795168800}),
        (frozenset({"1795165200"}), {1795165200}),
        (set(), set()),
        ('["1795165200"]', {1795165200}),
        ("", set()),
        ("  ", set()),
        ("[]", set()),
        ("not-a-set", None),
        ('{"a": 1}', None),
        (True, None),
        (None, None),
        (7, None),
        ({"soon"}, None),
        ({"-5"}, None),
        ({"9" * 12}, {999_999_999_999}),
        ({"1" * 13}, None),
        ([1795165200], None),
        ({"\uff11"}, None),
    ],
    ids=[
        "dynamodb-set",
        "frozenset",
        "empty-set",
        "mock-json",
        "mock-empty",
        "mock-blank",
        "mock-empty-list",
        "garbage-text",
        "json-object",
        "bool",
        "none",
        "number",
        "word",
        "negative",
        "twelve-digits",
        "too-many-digits",
        "numbers-not-strings",
        "fullwidth-digit",
    ],
)
def test_sightings(answer, epochs):
    assert address_history.sightings(answer) == epochs


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"p_event_time": "2026-11-20 09:14:03.123456789"}, "2026-11-20T09:14:03Z"),
        ({"eventTime": "2026-11-20T09:14:03Z"}, "2026-11-20T09:14:03Z"),
        ({"eventTime": "2026-11-20T09:14:03.5Z"}, "2026-11-20T09:14:03Z"),
        ({"eventTime": "2026-11-20T10:14:03+01:00"}, "2026-11-20T09:14:03Z"),
        (
            {"p_event_time": "junk", "eventTime": "2026-11-20T09:14:03Z"},
            "2026-11-20T09:14:03Z",
        ),
        ({"p_event_time": ["x"], "eventTime": "2026-11-20T09:14:03Z"}, "2026-11-20T09:14:03Z"),
        ({"eventTime": "2026-11-20"}, None),
        ({"eventTime": "2026-13-40T09:14:03Z"}, None),
        ({"eventTime": "2026-11-20T24:00:00Z"}, None),
        ({"eventTime": "0001-01-01T00:00:00+01:00"}, None),
        ({"eventTime": "1970-01-01T00:00:00Z"}, None),
        ({"eventTime": "1970-01-01T00:00:01Z"}, "1970-01-01T00:00:01Z"),
        ({"eventTime": "2026-11-20T0\uff19:14:03Z"}, None),
        ({"eventTime": 1_795_165_200}, None),
        ({}, None),
    ],
    ids=[
        "panther",
        "zulu",
        "fraction",
        "offset",
        "junk-panther-time",
        "panther-time-a-list",
        "date-only",
        "impossible-date",
        "hour-24",
        "before-year-one",
        "the-epoch-itself",
        "the-first-second-after-the-epoch",
        "fullwidth-digit",
        "number",
        "none",
    ],
)
@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
def test_event_epoch(fields, expected, wrap):
    epoch = address_history.event_epoch(wrap(fields))
    assert (None if epoch is None else cloudtrail_time(epoch)) == expected


# Panther's event_time_epoch() (dateutil's parser) reads more than the fallback does; any
# positive time it reads is taken as it reads it. (p_event_time, Panther's reading, ours)
PANTHER_READING_CASES = {
    "panthers-format": ("2026-11-20 09:14:03.000000000", 1_795_166_043, 1_795_166_043),
    "a-format-only-panther-reads": ("Nov 20 2026 09:14:03", 1_795_166_043, 1_795_166_043),
    "the-first-second-of-1970-as-only-panther-reads-it": ("Jan 1 1970 00:00:01", 1, 1),
    "a-time-before-1970-as-only-panther-reads-it": ("Dec 31 1969 23:59:59", -1, None),
}


@pytest.mark.parametrize(
    ("p_event_time", "panthers", "ours"), PANTHER_READING_CASES.values(), ids=PANTHER_READING_CASES
)
def test_event_epoch_takes_panthers_own_positive_reading_of_p_event_time(
    p_event_time, panthers, ours
):
    evt = PantherEvent({"p_event_time": p_event_time})
    assert (evt.event_time_epoch(), address_history.event_epoch(evt)) == (panthers, ours)


FIRST = 1_795_165_200
HOUR = 3600  # the latest sighting is refreshed hourly
# (stored sightings, this one) -> (status, first seen, what is written or None)
SIGHTING_CASES = {
    "nothing-stored": ((set(), FIRST), (NEW, FIRST, ({str(FIRST)}, FIRST))),
    "the-same-second-again": (({FIRST}, FIRST), (NEW, FIRST, None)),
    "a-second-short-of-an-hour-after-the-latest": (
        ({FIRST}, FIRST + HOUR - 1),
        (SEEN, FIRST, None),
    ),
    "an-hour-after-the-latest": (
        ({FIRST}, FIRST + HOUR),
        (SEEN, FIRST, ({str(FIRST), str(FIRST + HOUR)}, FIRST + HOUR)),
    ),
    "between-the-first-and-the-latest": (
        ({FIRST, FIRST + 2 * HOUR}, FIRST + HOUR),
        (SEEN, FIRST, None),
    ),
    "older-than-the-first": (
        ({FIRST}, FIRST - 60),
        (NEW, FIRST - 60, ({str(FIRST - 60), str(FIRST)}, FIRST)),
    ),
}


@pytest.mark.parametrize(("stored", "expected"), SIGHTING_CASES.values(), ids=SIGHTING_CASES)
def test_a_sighting_is_written_only_when_first_or_an_hour_past_the_latest(stored, expected):
    seen, epoch = stored
    status, first_seen, update = expected
    assert address_history.sighting(seen, epoch, NETWORK) == (
        AddressHistory(status, NETWORK, first_seen),
        update,
    )


# --- the logic, over a stand-in store -------------------------------------------------------------


class Store:
    """get_string_set and put_string_set over a dict, counting calls; either can be made to fail."""

    def __init__(self):
        self.items = {}
        self.reads = self.writes = 0
        self.read_error = self.write_error = None
        self.answer = None  # a fixed answer to reads, instead of the item

    def read(self, key, force_ttl_check=False):
        assert force_ttl_check is True  # DynamoDB deletes expired items only lazily
        self.reads += 1
        if self.read_error:
            raise self.read_error
        if self.answer is not None:
            return self.answer
        return set(self.items.get(key, ({}, None))[0])

    def write(self, key, val, epoch_seconds=None):
        self.writes += 1
        if self.write_error:
            raise self.write_error
        self.items[key] = (set(val), epoch_seconds)


class Clock:
    def __init__(self, now=1_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def store():
    return Store()


@pytest.fixture
def baseline():
    return Baseline(days=DAYS, clock=Clock())


def look_up(baseline, store, epoch, address="198.199.88.17", caller=CALLER):
    return baseline.look_up(caller, address, epoch, (store.read, store.write))


def test_a_first_sighting_is_new_and_recorded_to_expire_after_the_window(baseline, store):
    history = look_up(baseline, store, RECENT)
    assert history == AddressHistory(NEW, "198.199.88.0/24", RECENT)
    ((times, expiry),) = store.items.values()
    assert (times, expiry) == ({str(RECENT)}, RECENT + DAYS * DAY)
    assert (store.reads, store.writes) == (1, 1)


def test_a_later_sighting_is_seen_since_the_first_and_a_burst_writes_nothing(baseline, store):
    look_up(baseline, store, RECENT)
    later = [look_up(baseline, store, RECENT + 60 * n) for n in range(1, 60)]
    assert set(later) == {AddressHistory(SEEN, "198.199.88.0/24", RECENT)}
    assert (store.reads, store.writes) == (60, 1)


def test_the_latest_sighting_is_refreshed_hourly_so_an_active_network_stays_known(baseline, store):
    for hours in range(0, 24 * 45, 6):  # used every six hours for 45 days: never forgotten
        history = look_up(baseline, store, RECENT + hours * 3600)
    assert history.status == SEEN
    ((times, expiry),) = store.items.values()
    last = RECENT + (24 * 45 - 6) * 3600
    assert (times, expiry) == ({str(RECENT), str(last)}, last + DAYS * DAY)


def test_the_same_event_asked_twice_is_new_both_times_and_written_once(baseline, store):
    assert look_up(baseline, store, RECENT).status == NEW
    assert look_up(baseline, store, RECENT).status == NEW
    assert store.writes == 1


def test_an_older_event_arriving_late_is_the_first_sighting(baseline, store):
    look_up(baseline, store, RECENT)
    older = look_up(baseline, store, RECENT - 3 * DAY)
    assert older == AddressHistory(NEW, "198.199.88.0/24", RECENT - 3 * DAY)
    ((times, expiry),) = store.items.values()
    assert (times, expiry) == ({str(RECENT - 3 * DAY), str(RECENT)}, RECENT + DAYS * DAY)
    assert look_up(baseline, store, RECENT + 60).first_seen == RECENT - 3 * DAY


@pytest.mark.parametrize(
    ("address", "caller", "status"),
    [
        ("198.199.88.200", CALLER, SEEN),
        ("198.199.89.17", CALLER, NEW),
        ("198.199.88.17", "123456789012:AIDAOTHEREXAMPLE", NEW),
        ("::ffff:198.199.88.17", CALLER, SEEN),
    ],
    ids=["same-24", "next-24", "other-caller", "same-address-ipv4-mapped"],
)
def test_history_is_per_caller_and_network(baseline, store, address, caller, status):
    look_up(baseline, store, RECENT)
    assert look_up(baseline, store, RECENT + 60, address=address, caller=caller).status == status


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ("not-a-set", "'not-a-set'"),
        (True, "'True'"),
        ({"soon"}, "\"{'soon'}\""),
        ("x" * 100, repr("x" * 40)),
    ],
    ids=["text", "bool", "word", "long-text-cut-to-40-characters"],
)
def test_an_answer_that_is_no_set_of_times_is_unknown_and_overwrites_nothing(
    baseline, store, answer, shown
):
    store.answer = answer
    history = look_up(baseline, store, RECENT)
    assert history.status == UNKNOWN
    assert history.unavailable == f"the store answered {shown}, not a set of times"
    assert store.writes == 0


@pytest.mark.parametrize(
    ("address", "epoch", "reason"),
    [("AWS Internal", RECENT, "no address to judge"), ("8.8.8.8", None, "the event has no time")],
    ids=["no-address", "no-time"],
)
def test_without_an_address_or_a_time_the_store_is_not_asked(
    baseline, store, address, epoch, reason
):
    history = look_up(baseline, store, epoch, address=address)
    assert (history.status, history.unavailable) == (UNKNOWN, reason)
    assert store.reads == store.writes == 0


def test_a_failing_read_is_unknown_then_the_store_is_left_alone_for_a_minute(baseline, store):
    store.read_error = TimeoutError("x" * 300)
    first = look_up(baseline, store, RECENT)
    assert first.status == UNKNOWN
    assert first.unavailable == "TimeoutError: " + "x" * 200
    baseline.clock.now += 59.999
    store.read_error = None
    paused = look_up(baseline, store, RECENT + 1)
    assert paused.unavailable == f"{first.unavailable}; not retried for 60 s"
    assert store.reads == 1
    baseline.clock.now += 0.001
    assert look_up(baseline, store, RECENT + 2).status == NEW
    assert store.reads == 2


# Seconds after a failure -> whether the store is asked again.
ASKED_AGAIN_AFTER = {
    "at-once": (0, False),
    "a-minute-less-a-millisecond": (59.999, False),
    "a-minute": (60, True),
    "an-hour": (3600, True),
}


@pytest.mark.parametrize(("later", "asked"), ASKED_AGAIN_AFTER.values(), ids=ASKED_AGAIN_AFTER)
def test_after_a_failure_the_store_is_asked_again_once_a_minute_has_passed(
    baseline, store, later, asked
):
    store.read_error = ConnectionError("gone")
    look_up(baseline, store, RECENT)
    store.read_error = None
    baseline.clock.now += later
    assert (look_up(baseline, store, RECENT + 1).status == NEW) is asked
    assert store.reads == 1 + asked


def test_a_failing_write_keeps_what_the_read_said(baseline, store):
    store.write_error = ConnectionError("gone")
    history = look_up(baseline, store, RECENT)
    assert history == AddressHistory(
        NEW, "198.199.88.0/24", RECENT, "not recorded: ConnectionError: gone"
    )
    assert look_up(baseline, store, RECENT + 1).unavailable.endswith("not retried for 60 s")


def test_a_reset_baseline_asks_at_once(baseline, store):
    store.read_error = TimeoutError()
    look_up(baseline, store, RECENT)
    baseline.reset()
    store.read_error = None
    assert look_up(baseline, store, RECENT).status == NEW


# Only the store's own functions (a network call) are bounded in a thread of their own; a YAML
# Mock, the replay's in-memory store or a test's stand-in is called as it is, in the rule's thread.
CALLED_IN_ITS_OWN_THREAD = {
    "the store's own function": (address_history.STORE_MODULE, True),
    "the replay's in-memory store": ("detection_replay.kv_store", False),
    "a YAML mock": ("unittest.mock", False),
    "a test's stand-in": (__name__, False),
}


@pytest.mark.parametrize(
    ("module", "own_thread"), CALLED_IN_ITS_OWN_THREAD.values(), ids=CALLED_IN_ITS_OWN_THREAD
)
def test_only_the_stores_own_functions_run_in_a_thread_of_their_own(baseline, module, own_thread):
    threads = []

    def read(key, force_ttl_check=False):
        threads.append(threading.current_thread())
        return set()

    read.__module__ = module
    history = baseline.look_up(CALLER, "198.199.88.17", RECENT, (read, lambda *_, **__: None))
    assert history.status == NEW
    assert (threads != [threading.current_thread()]) is own_thread
    # A call given up on never keeps the process from exiting.
    assert all(thread.daemon for thread in threads if thread is not threading.main_thread())


def test_the_context_says_new_seen_or_unknown_and_since_when():
    seen = AddressHistory(SEEN, "198.199.88.0/24", 1_795_166_043)
    assert address_history.history_context(seen, 30) == {
        "status": "seen",
        "network": "198.199.88.0/24",
        "firstSeen": "2026-11-20T09:14:03Z",
        "windowDays": 30,
        "unavailable": None,
    }
    unknown = AddressHistory(UNKNOWN, None, unavailable="no address to judge")
    assert address_history.history_context(unknown, 7)["firstSeen"] is None


# --- the rule's real calls on moto's DynamoDB ---------------------------------------------------


class Requests:
    """Counts the requests the helpers' table client sends; can answer them with a fault."""

    def __init__(self):
        self.sent = []
        self.answer = None  # None: let moto answer

    def __call__(self, request, **_):
        self.sent.append(request.headers.get("X-Amz-Target", b"").decode().split(".")[-1])
        return None if self.answer is None else self.answer(request)


@pytest.fixture
def requests(genuine_caching):
    events = genuine_caching.kv_table().meta.client.meta.events
    sent = Requests()
    events.register_first("before-send.dynamodb", sent)
    yield sent
    events.unregister("before-send.dynamodb", sent)


def throttled(request):
    body = (
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
        b'"message":"The level of configured provisioned throughput for the table was exceeded"}'
    )
    return botocore.awsrequest.AWSResponse(request.url, 400, {}, MockRawResponse(body))


def timed_out(request):
    raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url)


def alert(rule, evt):
    """Every alert function on one event, in the order Panther calls them."""
    return {
        "title": rule.title(evt),
        "dedup": rule.dedup(evt),
        "severity": rule.severity(evt),
        "history": rule.alert_context(evt)["addressHistory"],
    }


def test_the_first_call_from_a_network_is_new_and_the_next_is_seen(dynamodb_rule, requests):
    first = alert(dynamodb_rule, event())
    assert first["history"]["status"] == "new"
    assert " from new external IP 198.199.88.17 " in first["title"]
    assert requests.sent == ["GetItem", "PutItem"]
    later = alert(dynamodb_rule, event(RECENT + 60, sourceIPAddress="198.199.88.40"))
    assert later["history"] == {
        "status": "seen",
        "network": "198.199.88.0/24",
        "firstSeen": cloudtrail_time(RECENT),
        "windowDays": DAYS,
        "unavailable": None,
    }
    assert " from external IP 198.199.88.40 " in later["title"]
    assert requests.sent == ["GetItem", "PutItem", "GetItem"]
    # The history changes the title only: severity and grouping are those of any call.
    assert (first["severity"], later["severity"]) == ("DEFAULT", "DEFAULT")


def test_the_stored_sightings_expire_thirty_days_after_the_latest(dynamodb_rule, kv_table):
    alert(dynamodb_rule, event())
    (item,) = kv_table.scan()["Items"]
    assert item["key"] == f"vpce-first-seen:{CALLER}|198.199.88.0/24"
    assert (item["stringSet"], int(item["expiresAt"])) == ({str(RECENT)}, RECENT + DAYS * DAY)


def test_events_that_do_not_match_never_touch_the_store(dynamodb_rule, requests):
    for evt in (event(sourceIPAddress="10.0.141.54"), event(eventName="ListObjects")):
        assert dynamodb_rule.rule(evt) is False
        alert(dynamodb_rule, evt)  # unit tests call the alert functions on misses too
    assert requests.sent == []


def test_one_event_looks_at_the_store_once_whatever_functions_run(dynamodb_rule, requests):
    evt = event()
    alert(dynamodb_rule, evt)
    dynamodb_rule.title(evt)
    assert requests.sent == ["GetItem", "PutItem"]


def test_a_plain_dict_edited_between_calls_gets_fresh_answers(dynamodb_rule, requests):
    record = {**GET, "eventTime": cloudtrail_time(RECENT)}
    assert dynamodb_rule.alert_context(record)["addressHistory"]["status"] == "new"
    record["sourceIPAddress"] = "10.0.141.54"
    assert dynamodb_rule.alert_context(record)["addressHistory"] is None
    record["sourceIPAddress"] = "9.9.9.9"
    assert dynamodb_rule.title(record).startswith("S3 GetObject (bucket not in record) by ")
    assert " from new external IP 9.9.9.9 " in dynamodb_rule.title(record)


def assert_fires_as_without_history(rule, evt, reason):
    assert rule.rule(evt) is True
    outputs = alert(rule, evt)
    assert outputs["severity"] == "DEFAULT"
    assert outputs["dedup"] == f"{CALLER}:198.199.88.17:DEFAULT"
    assert " from external IP 198.199.88.17 via VPC endpoint" in outputs["title"]
    assert outputs["history"]["status"] == "unknown"
    assert reason in outputs["history"]["unavailable"]


def test_a_missing_table(dynamodb_rule, kv_table):
    kv_table.delete()
    assert_fires_as_without_history(dynamodb_rule, event(), "ResourceNotFoundException")


def test_no_credentials(dynamodb_rule, genuine_caching, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    # A session and client made now, not the ones that found moto's credentials earlier.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setattr(genuine_caching, "_KV_TABLE", None)
    assert_fires_as_without_history(dynamodb_rule, event(), "NoCredentialsError")


def test_a_garbled_stored_value(dynamodb_rule, kv_table):
    key = f"vpce-first-seen:{CALLER}|198.199.88.0/24"
    kv_table.put_item(Item={"key": key, "stringSet": "many", "expiresAt": RECENT + DAY})
    assert_fires_as_without_history(dynamodb_rule, event(), "the store answered 'many'")
    assert kv_table.get_item(Key={"key": key})["Item"]["stringSet"] == "many"


@pytest.fixture
def quick_retries(monkeypatch):
    """Two attempts per call, for the table client made next: botocore's retries are the
    runtime's to configure (AWS_MAX_ATTEMPTS), and its default for DynamoDB is ten."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(throttled, "ProvisionedThroughputExceededException"), (timed_out, "ReadTimeoutError")],
    ids=["throttled", "timeout"],
)
@pytest.mark.usefixtures("quick_retries")
def test_a_failing_store_is_asked_once_then_left_alone(
    dynamodb_rule, requests, monkeypatch, fault, reason
):
    baseline = dynamodb_rule.ADDRESS_HISTORY
    monkeypatch.setattr(baseline, "clock", Clock())
    requests.answer = fault
    assert_fires_as_without_history(dynamodb_rule, event(), reason)
    assert requests.sent == ["GetItem", "GetItem"]  # one call, one retry
    for second in range(50):  # the rest of a large batch: the store is not asked again
        assert_fires_as_without_history(dynamodb_rule, event(RECENT + second), reason)
    assert len(requests.sent) == 2
    requests.answer = None
    baseline.clock.now += 60
    assert alert(dynamodb_rule, event(RECENT + 60))["history"]["status"] == "new"


def test_a_call_past_its_time_is_abandoned_and_no_other_starts_until_it_returns(
    dynamodb_rule, requests, monkeypatch
):
    # With botocore's default retries a throttled call goes on for about 25 s.
    baseline = dynamodb_rule.ADDRESS_HISTORY
    monkeypatch.setattr(baseline, "clock", Clock())
    requests.answer = throttled
    started = time.monotonic()
    assert_fires_as_without_history(dynamodb_rule, event(), "did not answer within 2 s")
    assert time.monotonic() - started < 4
    baseline.clock.now += 60  # the pause is over, the call is not
    assert_fires_as_without_history(dynamodb_rule, event(RECENT + 60), "has not returned")
    requests.answer = None  # the abandoned call's next retry succeeds
    baseline._abandoned.join(30)
    baseline.clock.now += 60
    assert alert(dynamodb_rule, event(RECENT + 120))["history"]["status"] == "new"


def test_the_rule_and_helpers_use_only_the_stores_public_functions():
    # Nothing the package ships reads or writes a module global of panther_detection_helpers.
    for path in [*REPO_ROOT.glob("rules/*.py"), *REPO_ROOT.glob("global_helpers/*.py")]:
        source = path.read_text()
        assert "caching." not in source, path
        assert "_KV_TABLE" not in source, path
        assert "FIPS_" not in source, path


# --- panther-detection-helpers 0.4.0 and 1.0.x mean the same expiry --------------------------

HELPERS_0_4 = REPO_ROOT / ".venv" / "panther-detection-helpers-0.4.0"


def helpers_0_4_caching():
    """panther_detection_helpers 0.4.0's caching module, imported under a name of its own."""
    package_dir = HELPERS_0_4 / "panther_detection_helpers"
    if not package_dir.is_dir():
        pytest.skip(
            f"panther-detection-helpers 0.4.0 is not installed in {HELPERS_0_4} (make install)"
        )
    name = "panther_detection_helpers_0_4"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    module = importlib.import_module(f"{name}.caching")
    module._KV_TABLE = None  # a table client made under this test's moto
    return module


def test_the_package_runs_on_helpers_1_0():
    from importlib.metadata import version

    assert version("panther-detection-helpers").startswith("1.0.")
    assert Path(helpers_0_4_caching().__file__).parent.parent == HELPERS_0_4


@pytest.mark.parametrize("helpers", ["1.0.x", "0.4.0"])
def test_the_baseline_means_the_same_on_both_helper_releases(genuine_caching, kv_table, helpers):
    caching = genuine_caching if helpers == "1.0.x" else helpers_0_4_caching()
    baseline = Baseline(days=DAYS)
    found = [
        baseline.look_up(CALLER, address, epoch, (caching.get_string_set, caching.put_string_set))
        for address, epoch in [
            ("198.199.88.17", RECENT),
            ("198.199.88.18", RECENT + 60),
            ("198.199.88.19", RECENT + 2 * 3600),
        ]
    ]
    assert [h.status for h in found] == ["new", "seen", "seen"]
    (item,) = kv_table.scan()["Items"]
    assert item["stringSet"] == {str(RECENT), str(RECENT + 2 * 3600)}
    assert int(item["expiresAt"]) == RECENT + 2 * 3600 + DAYS * DAY


def test_a_relative_expiry_would_not_mean_the_same_on_both_releases(genuine_caching):
    # Why the baseline writes absolute epochs: thirty days as "seconds from now" is relative in
    # 1.0.x (below 1,000,000,000) but an absolute time in January 1970 in 0.4.0 (above 604,800).
    old, new = helpers_0_4_caching(), genuine_caching
    assert old._finalize_epoch_seconds(DAYS * DAY) == DAYS * DAY
    assert new._finalize_epoch_seconds(DAYS * DAY) > time.time()
    absolute = RECENT + DAYS * DAY
    assert old._finalize_epoch_seconds(absolute) == new._finalize_epoch_seconds(absolute)
