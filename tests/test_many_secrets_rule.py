"""The many-secrets rule: which reads it counts, how unique() names a secret, its grouping and
severity, its overrides, and Panther's unique-value thresholding (proven through the replay,
since `pat test` runs one event at a time).
"""

import copy
import json
import re

import cloudtrail_fields
import pytest
from identities import CALLERS
from panther_core.enriched_event import PantherEvent
from repo import (
    REPO_ROOT,
    cloudtrail_time,
    engine_errors,
    load_module,
    panther_engine,
    rule_source_with,
    sample_records,
    yaml_test,
    yaml_tests,
)

from detection_replay import replay_events

RULE_ID = "AWS.CloudTrail.VPCE.ManySecretsRead"
RULE_FILE = REPO_ROOT / "rules" / "aws_vpce_many_secrets_read.py"
RULE = load_module(RULE_FILE, "many_secrets_rule_under_test")
ENGINE = panther_engine(RULE_ID)
READ = yaml_test(
    "A secret read by the account's own role inside the network (real-shaped: no secret named)",
    RULE_ID,
)["Log"]
OWN_ROLE = "123456789012:AROAIOSFODNN7EXAMPLE:deploy-4471"
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/payments/stripe-api-key-Xy7Qp2"


def event(**changes):
    return PantherEvent({**copy.deepcopy(READ), **changes})


# --- the YAML tests, through panther_core's engine as Panther runs them -------------------------

TESTS = yaml_tests(RULE_ID)


@pytest.mark.parametrize("test", TESTS, ids=[test["Name"] for test in TESTS])
@pytest.mark.parametrize("batch_mode", [False, True], ids=["test-mode", "batch-mode"])
def test_yaml_case_through_the_engine(test, batch_mode):
    result = ENGINE.run(PantherEvent(test["Log"]), {}, {}, batch_mode=batch_mode)
    assert engine_errors(result) == {}
    assert result.detection_output is test["ExpectedResult"]
    if test["ExpectedResult"]:
        assert result.severity_output in {"MEDIUM", "HIGH"}
        assert 0 < len(result.title_output) <= 1000
        assert result.unique_output.startswith(("secret:", "read:"))
        context = json.loads(result.alert_context_output)
        assert context["caller"] == result.dedup_output.rsplit(":", 1)[0]


def test_most_matching_yaml_cases_look_like_real_network_activity_records():
    logs = [test["Log"] for test in TESTS if test["ExpectedResult"]]
    real_shaped = [log for log in logs if "requestParameters" not in log and "resources" not in log]
    assert len(real_shaped) >= len(logs) - 3
    assert len(TESTS) >= 20


# --- unique(): a secret, however it is named, counts once --------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"requestParameters": {"secretId": ARN}}, "secret:prod/payments/stripe-api-key"),
        (
            {"requestParameters": {"secretId": "prod/payments/stripe-api-key"}},
            "secret:prod/payments/stripe-api-key",
        ),
        (
            {"resources": [{"ARN": "arn:aws:s3:::b"}, {"ARN": ARN}]},
            "secret:prod/payments/stripe-api-key",
        ),
        ({}, f"read:{READ['eventID']}"),
        ({"requestParameters": {"secretId": 7}}, f"read:{READ['eventID']}"),
        ({"requestParameters": "prod/db", "resources": "x"}, f"read:{READ['eventID']}"),
        ({"requestParameters": {"secretId": "s" * 5000}}, "secret:" + "s" * 993),
    ],
    ids=[
        "full-arn",
        "name",
        "resources-arn",
        "unnamed",
        "secret-id-not-text",
        "malformed",
        "cut-to-panthers-limit",
    ],
)
def test_unique_is_the_secret_named_else_the_read(changes, expected):
    assert RULE.unique(event(**changes)) == expected


def test_an_unnamed_read_without_an_event_id_is_its_content():
    record = {**READ, "eventID": None}
    assert RULE.unique(PantherEvent(record)) == "read:" + cloudtrail_fields.record_id(record)
    assert RULE.unique(PantherEvent(record)).startswith("read:sha256:")


# --- reader class, severity and grouping --------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reader", "severity", "origin"),
    [
        ({}, "own", "MEDIUM", " inside the network"),
        (
            {"sourceIPAddress": "185.220.101.4"},
            "external",
            "HIGH",
            " from external IP 185.220.101.4",
        ),
        (
            {
                "userIdentity": {
                    "type": "AWSAccount",
                    "principalId": "AKIAIOSFODNN7EXAMPLE",
                    "accountId": "777788889999",
                }
            },
            "external",
            "HIGH",
            " inside the network",
        ),
    ],
    ids=["own-inside", "own-from-outside", "another-account"],
)
def test_readers_from_outside_or_of_another_account_rank_higher(changes, reader, severity, origin):
    evt = event(**changes)
    assert RULE.severity(evt) == severity
    assert RULE.dedup(evt).endswith(f":{reader}")
    assert RULE.title(evt).endswith(origin)
    assert RULE.alert_context(evt)["reader"] == reader


@pytest.mark.parametrize(("identity", "key", "name"), CALLERS.values(), ids=CALLERS.keys())
def test_every_identity_type_is_one_caller_named_alike(identity, key, name):
    evt = event(userIdentity=copy.deepcopy(identity))
    assert RULE.rule(evt)
    assert RULE.dedup(evt).rsplit(":", 1)[0] == key
    assert f" by {name} " in RULE.title(evt)
    assert RULE.alert_context(evt)["caller"] == key


# --- which reads count --------------------------------------------------------------------------


def test_only_secret_reads_of_the_sample_day_are_counted():
    matched = [record for record in sample_records() if RULE.rule(PantherEvent(record))]
    assert matched
    assert {(r["eventSource"], r["eventName"]) for r in matched} <= {
        ("secretsmanager.amazonaws.com", "GetSecretValue"),
        ("secretsmanager.amazonaws.com", "BatchGetSecretValue"),
    }
    assert all(r["eventType"] == "AwsVpceEvent" and "errorCode" not in r for r in matched)


@pytest.mark.parametrize(
    "changes",
    [
        {"eventSource": "kms.amazonaws.com"},
        {"eventSource": "sts.amazonaws.com"},
        {"eventSource": "SECRETSMANAGER.amazonaws.com"},
        {"eventType": "AwsApiCall"},
        {"errorCode": "AccessDenied"},
    ],
    ids=[
        "a-service-sorting-before",
        "a-service-sorting-after",
        "another-spelling",
        "no-network-activity",
        "refused",
    ],
)
def test_a_secret_read_is_counted_only_as_itself(changes):
    assert RULE.rule(event())
    assert not RULE.rule(event(**changes))


def test_routine_readers_are_not_counted(tmp_path):
    edited = load_module(
        rule_source_with(tmp_path, RULE_FILE, ROUTINE_SECRET_READERS=[OWN_ROLE]), "routine_readers"
    )
    assert not edited.rule(event())
    assert edited.rule(event(userIdentity=CALLERS["IAMUser"][0]))


def test_the_read_operations_are_an_override(tmp_path):
    edited = load_module(
        rule_source_with(tmp_path, RULE_FILE, SECRET_READ_OPERATIONS=["GetSecretValue"]), "reads"
    )
    assert edited.rule(event())
    assert not edited.rule(event(eventName="BatchGetSecretValue"))


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ({"SECRET_READ_OPERATIONS": "GetSecretValue"}, "must be a list of event names"),
        ({"SECRET_READ_OPERATIONS": ["GetSecretValue", 7]}, "7 is not a valid event name"),
        ({"ROUTINE_SECRET_READERS": [" 123456789012:AROAX:job"]}, "is not a valid caller"),
    ],
    ids=["operations-not-a-list", "operation-not-text", "padded-caller"],
)
def test_a_malformed_override_fails_at_import_naming_the_entry(tmp_path, assignment, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        load_module(rule_source_with(tmp_path, RULE_FILE, **assignment), "malformed")


# --- the threshold, as Panther applies it: through the replay ----------------------------------

START = 1_795_208_400  # 2026-11-20T21:00:00Z


def reads(count, *, first=0, every=1, secret=None, **changes):
    """`count` distinct records of one caller's reads, `every` seconds apart; each names `secret`
    when given ("{n}" in it numbered), else nothing, as real network activity records."""
    records = []
    for n in range(first, first + count):
        record = {
            **READ,
            "eventTime": cloudtrail_time(START + first + (n - first) * every),
            "eventID": f"7d1e5a2b-3c4d-4e5f-8a9b-{n:012d}",
            **changes,
        }
        if secret is not None:
            record["requestParameters"] = {"secretId": secret.format(n=n)}
        records.append(record)
    return records


def alerts(records):
    document = replay_events(REPO_ROOT, records)
    assert document["rule_errors"] == 0
    (rule,) = [rule for rule in document["rules"] if rule["rule_id"] == RULE_ID]
    return [
        (alert["severity"], alert["events"], alert["unique_values"], alert["title"][:33])
        for alert in rule["alerts"]
    ]


MANY = "Many secrets read through a VPC e"


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        pytest.param(reads(49), [], id="49 unnamed reads raise nothing"),
        pytest.param(reads(50), [("MEDIUM", 50, 50, MANY)], id="50 unnamed reads"),
        pytest.param(
            reads(50, secret="prod/app-{n}"), [("MEDIUM", 50, 50, MANY)], id="50 named secrets"
        ),
        pytest.param(reads(200, secret="prod/db"), [], id="one secret read 200 times"),
        pytest.param(
            reads(49, secret="prod/app-{n}") + reads(71, first=49, secret="prod/app-1"),
            [],
            id="49 secrets among 120 reads",
        ),
        pytest.param(reads(40) * 2, [], id="40 reads delivered twice count 40"),
        pytest.param(
            reads(50, sourceIPAddress="185.220.101.4"),
            [("HIGH", 50, 50, MANY)],
            id="from outside: HIGH",
        ),
        pytest.param(
            reads(49, every=72) + reads(1, first=3599), [("MEDIUM", 50, 50, MANY)], id="window edge"
        ),
        pytest.param(reads(49, every=72) + reads(1, first=3600), [], id="a window later"),
        pytest.param(
            reads(50, errorCode="VpceAccessDenied", errorMessage="The request was denied"),
            [],
            id="refused reads are not counted",
        ),
        pytest.param(
            reads(30) + reads(30, first=30, userIdentity=CALLERS["IAMUser"][0]),
            [],
            id="two callers with 30 reads each",
        ),
    ],
)
def test_many_secrets_are_raised_at_the_threshold_of_distinct_secrets(records, expected):
    assert alerts(records) == expected


def test_routine_reads_of_the_sample_day_raise_nothing_but_the_planted_collection():
    routine = [r for r in sample_records() if RULE.rule(PantherEvent(r))]
    callers = {cloudtrail_fields.caller_id(PantherEvent(r)) for r in routine}
    assert len(callers) > 2  # the workloads, the vendor and the build host
    assert alerts(routine) == [("MEDIUM", 64, 64, MANY)]
