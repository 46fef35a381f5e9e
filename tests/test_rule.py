"""The rule, run the way Panther runs it, over the YAML tests (the single source of test logs)."""

import json

import pytest
from panther_core.enriched_event import PantherEvent
from panther_core.rule import Rule
from repo import RULE_FILE, RULE_ID, rule_spec, yaml_test, yaml_tests

# Expected alert for every YAML test that matches: severity, title, dedup string.
# Severity is as Panther shows it: "DEFAULT" from the rule resolves to the YAML's Medium.
ROLE_CALLER = "123456789012:AROAIOSFODNN7EXAMPLE:etl-nightly"
REDACTED_CALLER = "777788889999:AKIAI44QH8DHBEXAMPLE"
REDACTED_ACTOR = "AKIAI44QH8DHBEXAMPLE in account 777788889999"
NO_BUCKET = "(bucket not in record)"
EXPECTED_ALERTS = {
    "External IP Access": (
        "MEDIUM",
        "S3 GetObject on sensitive-data-bucket by AIDAEXAMPLE from external IP 8.8.8.8 "
        "via VPC endpoint",
        "012345678901:AIDAEXAMPLE:8.8.8.8",
    ),
    "Real-shaped GetObject from a public IPv4 address, no requestParameters": (
        "MEDIUM",
        f"S3 GetObject {NO_BUCKET} by DataPipeline from external IP 198.199.88.17 via VPC endpoint",
        f"{ROLE_CALLER}:198.199.88.17",
    ),
    "Denied probe from a public address by a cross-account caller": (
        "LOW",
        f"Denied S3 GetObject {NO_BUCKET} by {REDACTED_ACTOR} from external IP 45.33.32.156 "
        "via VPC endpoint",
        f"{REDACTED_CALLER}:45.33.32.156",
    ),
    "Cross-account caller writes an object from a public address": (
        "MEDIUM",
        f"S3 PutObject {NO_BUCKET} by {REDACTED_ACTOR} from external IP 45.33.32.156 "
        "via VPC endpoint",
        f"{REDACTED_CALLER}:45.33.32.156",
    ),
    "DeleteObject from a public address is high severity": (
        "HIGH",
        f"S3 DeleteObject {NO_BUCKET} by DataPipeline from external IP 185.199.108.153 "
        "via VPC endpoint",
        f"{ROLE_CALLER}:185.199.108.153",
    ),
    "PutObjectAcl from a public address is high severity": (
        "HIGH",
        f"S3 PutObjectAcl {NO_BUCKET} by DataPipeline from external IP 185.199.108.153 "
        "via VPC endpoint",
        f"{ROLE_CALLER}:185.199.108.153",
    ),
    "Denied DeleteObject stays low severity": (
        "LOW",
        f"Denied S3 DeleteObject {NO_BUCKET} by DataPipeline from external IP 185.199.108.153 "
        "via VPC endpoint",
        f"{ROLE_CALLER}:185.199.108.153",
    ),
    "IAM user copies an object, bucket only in resources": (
        "MEDIUM",
        "S3 CopyObject on build-artifacts-prod by ci-deployer from external IP 9.9.9.9 "
        "via VPC endpoint",
        "123456789012:AIDAJQABLZS4A3QDU576Q:9.9.9.9",
    ),
    "Public IPv6 address of a dual-stack VPC": (
        "MEDIUM",
        f"S3 GetObjectVersion {NO_BUCKET} by DataPipeline from external IP "
        "2600:1f18:4a3:6902:8f2e:11d4:70a9:3c5e via VPC endpoint",
        f"{ROLE_CALLER}:2600:1f18:4a3:6902:8f2e:11d4:70a9:3c5e",
    ),
    "IPv4-mapped IPv6 form of a public address": (
        "MEDIUM",
        f"S3 GetObject {NO_BUCKET} by DataPipeline from external IP ::ffff:8.8.4.4 "
        "via VPC endpoint",
        f"{ROLE_CALLER}:::ffff:8.8.4.4",
    ),
    "6to4 address carrying a public IPv4 address": (
        "MEDIUM",
        f"S3 GetObject {NO_BUCKET} by DataPipeline from external IP 2002:808:404::1 "
        "via VPC endpoint",
        f"{ROLE_CALLER}:2002:808:404::1",
    ),
    "Address with surrounding whitespace": (
        "MEDIUM",
        f"S3 GetObject {NO_BUCKET} by DataPipeline from external IP 1.1.1.1 via VPC endpoint",
        f"{ROLE_CALLER}:1.1.1.1",
    ),
}

CONTEXT_KEYS = {
    # The seed's output fields, under exactly these names.
    "eventName",
    "eventSource",
    "awsRegion",
    "recipientAccountId",
    "sourceIPAddress",
    "userAgent",
    "userIdentity",
    "actor_user",
    "bucketName",
    # Where the call came in, and how the rule was tuned.
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "errorCode",
    "crossAccount",
    "denied",
    "overrides",
}

TESTS = yaml_tests()
TEST_NAMES = [t["Name"] for t in TESTS]
MATCHING = [t["Name"] for t in TESTS if t["ExpectedResult"]]


def panther_rule():
    spec = rule_spec()
    return Rule(
        {
            "id": RULE_ID,
            "analysisType": "RULE",
            "versionId": "0",
            "path": str(RULE_FILE),
            "severity": spec["Severity"].upper(),
            "dedupPeriodMinutes": spec["DedupPeriodMinutes"],
        }
    )


ENGINE = panther_rule()


def run(log, batch_mode=False):
    return ENGINE.run(PantherEvent(log), {}, {}, batch_mode=batch_mode)


def errors(result):
    names = ["detection", "title", "dedup", "severity", "alert_context", "setup"]
    return {
        n: getattr(result, f"{n}_exception") for n in names if getattr(result, f"{n}_exception")
    }


@pytest.mark.parametrize("test", TESTS, ids=TEST_NAMES)
@pytest.mark.parametrize("batch_mode", [False, True], ids=["test-mode", "batch-mode"])
def test_yaml_case_through_the_engine(test, batch_mode):
    result = run(test["Log"], batch_mode=batch_mode)
    assert errors(result) == {}
    assert result.detection_output is test["ExpectedResult"]
    assert result.trigger_alert is test["ExpectedResult"]


@pytest.mark.parametrize("name", MATCHING)
def test_yaml_alert_outputs(name):
    result = run(yaml_test(name)["Log"])
    severity, title, dedup = EXPECTED_ALERTS[name]
    assert (result.severity_output, result.title_output, result.dedup_output) == (
        severity,
        title,
        dedup,
    )
    context = json.loads(result.alert_context_output)
    assert set(context) == CONTEXT_KEYS
    assert context["denied"] is (severity == "LOW")


def test_every_matching_yaml_case_has_expected_outputs():
    assert sorted(EXPECTED_ALERTS) == sorted(MATCHING)


@pytest.mark.parametrize("test", TESTS, ids=TEST_NAMES)
@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
def test_rule_returns_a_real_bool(rule_module, test, wrap):
    assert rule_module.rule(wrap(test["Log"])) is test["ExpectedResult"]


def test_yaml_has_the_cases_users_rely_on():
    logs = [t["Log"] for t in TESTS]
    assert len(TESTS) >= 20
    assert all(log.get("p_log_type") == "AWS.CloudTrail" for log in logs)
    assert any(
        "requestParameters" not in log for log in logs if log.get("eventType") == "AwsVpceEvent"
    )
    assert {"External IP Access", "Internal IP Access", "Not S3 Service"} <= set(TEST_NAMES)
    severities = {EXPECTED_ALERTS[name][0] for name in MATCHING}
    assert severities == {"LOW", "MEDIUM", "HIGH"}


# --- the alert functions, directly -------------------------------------------------------------

BASE = yaml_test("Real-shaped GetObject from a public IPv4 address, no requestParameters")["Log"]


def event(**changes):
    return PantherEvent({**BASE, **changes})


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "DEFAULT"),
        ({"eventName": "DeleteObject"}, "HIGH"),
        ({"eventName": "DeleteObjects"}, "HIGH"),
        ({"eventName": "DeleteObjectVersion"}, "HIGH"),
        ({"eventName": "PutObjectAcl"}, "HIGH"),
        ({"eventName": "PutObjectVersionAcl"}, "HIGH"),
        ({"eventName": "PutObject"}, "DEFAULT"),
        ({"errorCode": "VpceAccessDenied"}, "LOW"),
        ({"errorCode": "AccessDenied", "eventName": "DeleteObject"}, "LOW"),
        ({"errorCode": ""}, "DEFAULT"),
        ({"errorCode": None, "eventName": "PutObjectAcl"}, "HIGH"),
        ({"eventName": ["DeleteObject"]}, "DEFAULT"),
    ],
    ids=[
        "read",
        "delete",
        "batch-delete",
        "delete-version",
        "acl",
        "version-acl",
        "write",
        "denied",
        "denied-delete",
        "empty-error",
        "null-error-acl",
        "name-is-a-list",
    ],
)
def test_severity(rule_module, changes, expected):
    assert rule_module.severity(event(**changes)) == expected


def test_dedup_groups_by_caller_and_address_not_by_object_or_operation(rule_module):
    first = event(eventName="GetObject", requestParameters={"bucketName": "a", "key": "1"})
    later = event(eventName="PutObject", resources=[{"ARN": "arn:aws:s3:::b/2"}])
    other_address = event(sourceIPAddress="9.9.9.9")
    assert rule_module.dedup(first) == rule_module.dedup(later)
    assert rule_module.dedup(first) != rule_module.dedup(other_address)


def test_dedup_separates_callers(rule_module):
    identity = dict(BASE["userIdentity"], principalId="AROAIOSFODNN7EXAMPLE:other-session")
    assert rule_module.dedup(event()) != rule_module.dedup(event(userIdentity=identity))


@pytest.mark.parametrize(
    "changes",
    [
        {"eventName": "G" * 5000},
        {"sourceIPAddress": "2600:1f18::1%" + "z" * 5000},
        {
            "userIdentity": {
                "type": "AWSAccount",
                "principalId": "p" * 5000,
                "accountId": "a" * 5000,
            }
        },
        {"requestParameters": {"bucketName": "b" * 5000}},
    ],
    ids=["operation", "address-zone", "caller", "bucket"],
)
def test_title_and_dedup_stay_within_panthers_limit(rule_module, changes):
    assert len(rule_module.title(event(**changes))) <= 1000
    assert len(rule_module.dedup(event(**changes))) <= 1000


def test_title_without_any_identity_reads_well(rule_module):
    title = rule_module.title(event(userIdentity=None, sourceIPAddress=None, eventName=None))
    assert title == (
        "S3 <unknown> (bucket not in record) by <unknown> from external IP <unknown> "
        "via VPC endpoint"
    )


def test_alert_context_reports_the_overrides_in_effect(rule_module):
    context = rule_module.alert_context(event())
    assert context["overrides"] == {
        "S3_DATA_ACCESS_OPERATIONS": sorted(rule_module.S3_DATA_ACCESS_OPERATIONS),
        "TRUSTED_NETWORKS": [],
        "HIGH_SEVERITY_OPERATIONS": sorted(rule_module.HIGH_SEVERITY_OPERATIONS),
    }
    assert json.loads(json.dumps(context, allow_nan=False)) == context
