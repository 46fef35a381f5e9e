"""The bulk-access rule: the per-event rule's decision, one caller per identity, Panther's
unique-value thresholding (proven through the replay, since `pat test` runs one event at a time).
"""

import copy

import cloudtrail_fields
import pytest
from identities import CALLERS, IDENTITY_CENTER, OWNER
from panther_core.enriched_event import PantherEvent
from repo import (
    BULK_RULE_FILE,
    BULK_RULE_ID,
    REPO_ROOT,
    RULE_FILE,
    RULE_ID,
    cloudtrail_time,
    load_module,
    sample_records,
    yaml_test,
    yaml_tests,
)

from detection_replay import replay_events

RULE = load_module(RULE_FILE, "per_event_rule_beside_bulk")
BULK = load_module(BULK_RULE_FILE, "bulk_rule_under_test")
GET = yaml_test("Real-shaped GetObject from a public IPv4 address, no requestParameters")["Log"]
SAMPLES = REPO_ROOT / "samples" / "cloudtrail"


def event(**changes):
    return PantherEvent({**GET, **changes})


# --- one decision for both rules ------------------------------------------------------------------


def every_yaml_log():
    return [test["Log"] for rule_id in (RULE_ID, BULK_RULE_ID) for test in yaml_tests(rule_id)]


def test_both_rules_match_the_same_events_of_every_yaml_test_and_the_sample_day():
    logs = every_yaml_log() + sample_records()
    assert len(logs) > 6_000
    per_event = [RULE.rule(PantherEvent(log)) for log in logs]
    bulk = [BULK.rule(PantherEvent(log)) for log in logs]
    assert per_event == bulk
    assert 300 < sum(bulk) < len(logs) / 10  # the sample's incidents, not its routine traffic


# --- the caller: one identity for every userIdentity type ---------------------------------------


@pytest.mark.parametrize(("identity", "key", "name"), CALLERS.values(), ids=CALLERS.keys())
def test_every_identity_type_has_one_caller_named_alike_everywhere(identity, key, name):
    evt = event(userIdentity=copy.deepcopy(identity))
    assert cloudtrail_fields.caller_id(evt) == key
    assert BULK.dedup(evt) == f"{key}:198.199.88.17:succeeded"
    assert RULE.dedup(evt) == f"{key}:198.199.88.17:DEFAULT"
    assert f" by {name} from " in BULK.title(evt)
    assert f" by {name} from " in RULE.title(evt)
    assert BULK.alert_context(evt)["caller"] == RULE.alert_context(evt)["caller"] == key


def test_callers_of_every_type_are_told_apart():
    keys = [cloudtrail_fields.caller_id(event(userIdentity=i)) for i, _, _ in CALLERS.values()]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    "other",
    [
        {"onBehalfOf": {**IDENTITY_CENTER["onBehalfOf"], "userId": "another-user"}},
        {
            "onBehalfOf": {
                **IDENTITY_CENTER["onBehalfOf"],
                "identityStoreArn": f"arn:aws:identitystore::{OWNER}:identitystore/d-other",
            }
        },
        {"accountId": "444455556666"},
    ],
    ids=["another-user", "another-identity-store", "another-account"],
)
def test_identity_center_users_without_a_principal_are_not_merged(other):
    first = event(userIdentity=IDENTITY_CENTER)
    second = event(userIdentity={**IDENTITY_CENTER, **other})
    assert BULK.dedup(first) != BULK.dedup(second)
    assert RULE.dedup(first) != RULE.dedup(second)


# --- unique(): a record delivered twice counts once ---------------------------------------------


def test_unique_is_the_record_delivered_however_often():
    assert BULK.unique(event()) == GET["eventID"]
    record = {**GET, "eventID": None}
    assert BULK.unique(PantherEvent(record)) == cloudtrail_fields.record_id(record)
    assert BULK.unique(PantherEvent(record)).startswith("sha256:")


# --- grouping and severity ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "group", "severity", "title"),
    [
        ({}, "succeeded", "CRITICAL", "Bulk S3 access through a VPC endpoint by "),
        ({"eventName": "DeleteObjects"}, "succeeded", "CRITICAL", "Bulk S3 access "),
        ({"errorCode": "VpceAccessDenied"}, "refused", "MEDIUM", "Bulk refused S3 calls "),
        ({"errorCode": "AccessDenied"}, "refused", "MEDIUM", "Bulk refused S3 calls "),
        ({"errorCode": "NoSuchKey"}, "refused", "MEDIUM", "Bulk refused S3 calls "),
        ({"errorCode": ""}, "succeeded", "CRITICAL", "Bulk S3 access "),
    ],
    ids=["read", "delete", "endpoint-denial", "policy-denial", "failed", "empty-code"],
)
def test_successful_and_refused_calls_are_grouped_and_ranked_apart(changes, group, severity, title):
    evt = event(**changes)
    assert BULK.dedup(evt).endswith(f":198.199.88.17:{group}")
    assert BULK.severity(evt) == severity
    assert BULK.title(evt).startswith(title)
    assert BULK.alert_context(evt)["outcomeClass"] == group


def test_the_title_names_caller_address_and_the_addresses_owner():
    enriched = yaml_test("Enriched address names its owner and country")["Log"]
    assert BULK.title(PantherEvent(enriched)) == (
        "Bulk S3 access through a VPC endpoint by DataPipeline (session etl-nightly) "
        "from external IP 198.199.88.17 (AS14061 DigitalOcean, DE)"
    )


def test_the_longest_parts_make_titles_and_dedup_strings_under_panthers_1000_characters():
    # Every part is cut first (120 or 256 characters), so the rule's own cut at 1,000 is a
    # safety net no record reaches.
    long_user = {
        **IDENTITY_CENTER,
        "accountId": "1" * 2000,
        "onBehalfOf": {
            "userId": "u" * 2000,
            "identityStoreArn": "arn:aws:identitystore::/" + "d" * 2000,
        },
    }
    evt = event(userIdentity=long_user, sourceIPAddress="2001:db8:" + "f" * 2000)
    assert 500 < len(BULK.dedup(evt)) < 999
    assert 100 < len(BULK.title(evt)) < 999


def test_the_bulk_rule_keeps_no_state():
    source = BULK_RULE_FILE.read_text()
    assert "panther_detection_helpers" not in source
    assert "address_history" not in source


# --- the threshold, as Panther applies it: through the replay ----------------------------------

START = 1_795_165_200  # 2026-11-20T09:00:00Z


def reads(count, *, first=0, every=1, **changes):
    """`count` distinct records (eventIDs of their own) of one caller, `every` seconds apart."""
    return [
        {
            **GET,
            "eventTime": cloudtrail_time(START + first + n * every),
            "eventID": f"3f6e2c1a-8b7d-4e5f-9a0b-{first + n:012d}",
            **changes,
        }
        for n in range(count)
    ]


def bulk_alerts(records):
    document = replay_events(REPO_ROOT, records)
    assert document["rule_errors"] == 0
    (bulk,) = [rule for rule in document["rules"] if rule["rule_id"] == BULK_RULE_ID]
    return [
        (alert["severity"], alert["events"], alert["unique_values"], alert["title"][:22])
        for alert in bulk["alerts"]
    ]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        pytest.param(reads(99), [], id="99 reads raise nothing"),
        pytest.param(reads(100), [("CRITICAL", 100, 100, "Bulk S3 access through")], id="100"),
        pytest.param(reads(300), [("CRITICAL", 300, 300, "Bulk S3 access through")], id="300"),
        pytest.param(reads(60) * 2, [], id="60 reads delivered twice count 60"),
        pytest.param(
            reads(100) + reads(100),
            [("CRITICAL", 200, 100, "Bulk S3 access through")],
            id="100 reads delivered twice: one alert of 100 distinct records",
        ),
        pytest.param(
            reads(99, every=36) + reads(1, first=3599),
            [("CRITICAL", 100, 100, "Bulk S3 access through")],
            id="the 100th read at the window's last second",
        ),
        pytest.param(
            reads(99, every=36) + reads(1, first=3600), [], id="the 100th read a window later"
        ),
        pytest.param(
            reads(100, errorCode="VpceAccessDenied"),
            [("MEDIUM", 100, 100, "Bulk refused S3 calls ")],
            id="100 refused calls: MEDIUM",
        ),
        pytest.param(
            reads(60) + reads(60, first=60, errorCode="VpceAccessDenied"),
            [],
            id="60 successful and 60 refused are counted apart",
        ),
        pytest.param(
            reads(60, userIdentity=IDENTITY_CENTER)
            + reads(
                60,
                first=60,
                userIdentity={**IDENTITY_CENTER, "onBehalfOf": {"userId": "another-user"}},
            ),
            [],
            id="two Identity Center users with 60 reads each",
        ),
    ],
)
def test_bulk_access_is_raised_at_the_threshold_of_distinct_records(records, expected):
    assert bulk_alerts(records) == expected


def test_the_per_event_rule_raises_its_own_alerts_beside_the_bulk_one():
    document = replay_events(REPO_ROOT, reads(100))
    alerts = {rule["rule_id"]: rule["alerts"] for rule in document["rules"]}
    (per_event,) = alerts[RULE_ID]
    assert (per_event["severity"], per_event["events"]) == ("MEDIUM", 100)
    assert [alert["severity"] for alert in alerts[BULK_RULE_ID]] == ["CRITICAL"]
