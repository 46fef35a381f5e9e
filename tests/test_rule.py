"""The rule, run the way Panther runs it, over the YAML tests (the single source of test logs)."""

import json

import pytest
import vpce_family
from panther_core.enriched_event import PantherEvent
from repo import engine_errors, panther_engine, yaml_mocks, yaml_test, yaml_tests

# Expected alert for every YAML test that matches: severity, title, dedup string. Severity is as
# Panther shows it: "DEFAULT" from the rule resolves to the YAML's Medium. Each test's Mocks (the
# key-value store's answer) apply, as in panther_analysis_tool.
ROLE_CALLER = "123456789012:AROAIOSFODNN7EXAMPLE:etl-nightly"
REDACTED_CALLER = "777788889999:AKIAI44QH8DHBEXAMPLE"
REDACTED_ACTOR = "AKIAI44QH8DHBEXAMPLE in account 777788889999"
PIPELINE = "DataPipeline (session etl-nightly)"
NO_BUCKET = "(bucket not in record)"
VIA = "via VPC endpoint"


def _get(
    operation="GetObject",
    address="198.199.88.17",
    verb="S3",
    by=PIPELINE,
    target=NO_BUCKET,
    *,
    new="",
):
    return f"{verb} {operation} {target} by {by} from {new}external IP {address} {VIA}"


NEW = "new "


EXPECTED_ALERTS = {
    "External IP Access": (
        "MEDIUM",
        _get(address="8.8.8.8", by="AIDAEXAMPLE", target="on sensitive-data-bucket"),
        "012345678901:AIDAEXAMPLE:8.8.8.8:DEFAULT",
    ),
    "Real-shaped GetObject from a public IPv4 address, no requestParameters": (
        "MEDIUM",
        _get(),
        f"{ROLE_CALLER}:198.199.88.17:DEFAULT",
    ),
    "Denied probe from a public address by a cross-account caller": (
        "LOW",
        _get(verb="Denied S3", by=REDACTED_ACTOR, address="45.33.32.156"),
        f"{REDACTED_CALLER}:45.33.32.156:LOW",
    ),
    "Cross-account caller writes an object from a public address": (
        "MEDIUM",
        _get("PutObject", by=REDACTED_ACTOR, address="45.33.32.156"),
        f"{REDACTED_CALLER}:45.33.32.156:DEFAULT",
    ),
    "DeleteObject from a public address is high severity": (
        "HIGH",
        _get("DeleteObject", address="185.199.108.153"),
        f"{ROLE_CALLER}:185.199.108.153:HIGH",
    ),
    "PutObjectAcl from a public address is high severity": (
        "HIGH",
        _get("PutObjectAcl", address="185.199.108.153"),
        f"{ROLE_CALLER}:185.199.108.153:HIGH",
    ),
    "Denied DeleteObject stays low severity": (
        "LOW",
        _get("DeleteObject", verb="Denied S3", address="185.199.108.153"),
        f"{ROLE_CALLER}:185.199.108.153:LOW",
    ),
    "IAM user copies an object, bucket only in resources": (
        "MEDIUM",
        _get("CopyObject", address="9.9.9.9", by="ci-deployer", target="on build-artifacts-prod"),
        "123456789012:AIDAJQABLZS4A3QDU576Q:9.9.9.9:DEFAULT",
    ),
    "Public IPv6 address of a dual-stack VPC": (
        "MEDIUM",
        _get("GetObjectVersion", address="2600:1f18:4a3:6902:8f2e:11d4:70a9:3c5e"),
        f"{ROLE_CALLER}:2600:1f18:4a3:6902:8f2e:11d4:70a9:3c5e:DEFAULT",
    ),
    "IPv4-mapped IPv6 form of a public address": (
        "MEDIUM",
        _get(address="::ffff:8.8.4.4"),
        f"{ROLE_CALLER}:::ffff:8.8.4.4:DEFAULT",
    ),
    "6to4 address carrying a public IPv4 address": (
        "MEDIUM",
        _get(address="2002:808:404::1"),
        f"{ROLE_CALLER}:2002:808:404::1:DEFAULT",
    ),
    "Address with surrounding whitespace": (
        "MEDIUM",
        _get(address="1.1.1.1"),
        f"{ROLE_CALLER}:1.1.1.1:DEFAULT",
    ),
    "A caller's first call from a network is titled as a new address": (
        "MEDIUM",
        _get(new=NEW),
        f"{ROLE_CALLER}:198.199.88.17:DEFAULT",
    ),
    "An address seen before in the window is not new": (
        "MEDIUM",
        _get(),
        f"{ROLE_CALLER}:198.199.88.17:DEFAULT",
    ),
    "The store answers an empty set of sightings, so the address is new": (
        "MEDIUM",
        _get(new=NEW),
        f"{ROLE_CALLER}:198.199.88.17:DEFAULT",
    ),
    "A delete from a new address is HIGH, as from any address": (
        "HIGH",
        _get("DeleteObject", new=NEW),
        f"{ROLE_CALLER}:198.199.88.17:HIGH",
    ),
    "A denied call from a new address stays LOW": (
        "LOW",
        _get(verb="Denied S3", new=NEW),
        f"{ROLE_CALLER}:198.199.88.17:LOW",
    ),
    "The store answers garbage: history unknown, alert unchanged": (
        "MEDIUM",
        _get(),
        f"{ROLE_CALLER}:198.199.88.17:DEFAULT",
    ),
    "The store fails (an answer no call returns): history unknown, alert unchanged": (
        "MEDIUM",
        _get(),
        f"{ROLE_CALLER}:198.199.88.17:DEFAULT",
    ),
    "A failed read (NoSuchKey) is titled failed and stays LOW": (
        "LOW",
        _get("GetObject (NoSuchKey)", verb="Failed S3"),
        f"{ROLE_CALLER}:198.199.88.17:LOW",
    ),
    "A bucket policy denial (AccessDenied) is a denial": (
        "LOW",
        _get(verb="Denied S3"),
        f"{ROLE_CALLER}:198.199.88.17:LOW",
    ),
    "Assumed role with a person's session name": (
        "MEDIUM",
        _get(address="81.2.69.160", by="DataEngineer (session jdoe@example.com)"),
        "123456789012:AROA3EXAMPLEPERSON01:jdoe@example.com:81.2.69.160:DEFAULT",
    ),
    "Enriched address names its owner and country": (
        "MEDIUM",
        _get(address="198.199.88.17 (AS14061 DigitalOcean, DE)"),
        f"{ROLE_CALLER}:198.199.88.17:DEFAULT",
    ),
    "Tor exit node raises a read to HIGH": (
        "HIGH",
        _get(address="185.220.101.4 (Tor exit node, AS60729 Stiftung Erneuerbare Freiheit, DE)"),
        f"{ROLE_CALLER}:185.220.101.4:HIGH",
    ),
    "Tor exit node list matched as a bare true": (
        "HIGH",
        _get(address="185.220.101.4 (Tor exit node)"),
        f"{ROLE_CALLER}:185.220.101.4:HIGH",
    ),
    "Denied call from a Tor exit node stays LOW": (
        "LOW",
        _get(verb="Denied S3", address="185.220.101.4 (Tor exit node)"),
        f"{ROLE_CALLER}:185.220.101.4:LOW",
    ),
    "Commercial VPN address raises a write to HIGH": (
        "HIGH",
        _get("PutObject", address="146.70.117.35 (VPN NordVPN, AS9009 M247 Europe SRL, NL)"),
        f"{ROLE_CALLER}:146.70.117.35:HIGH",
    ),
    "Amazon's own address space is named in the title": (
        "MEDIUM",
        _get(address="52.42.146.205 (AS16509 Amazon AWS, US)"),
        f"{ROLE_CALLER}:52.42.146.205:DEFAULT",
    ),
    "Enrichment of odd shapes is read defensively": (
        "MEDIUM",
        _get(address="198.199.88.17 (AS14061 DigitalOcean)"),
        f"{ROLE_CALLER}:198.199.88.17:DEFAULT",
    ),
    "A match in a lookup table not named in TRUSTED_LOOKUP_TABLES still alerts": (
        "MEDIUM",
        _get(),
        f"{ROLE_CALLER}:198.199.88.17:DEFAULT",
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
    # Where the call came in, what became of it, and the pivots an analyst searches with next.
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "errorCode",
    "errorMessage",
    "eventTime",
    "eventID",
    "requestID",
    "sharedEventID",
    "crossAccount",
    "caller",
    "denied",
    "outcome",
    "vpceFamily",
    # What the baseline and enrichment said, and how the rule was tuned.
    "addressHistory",
    "sourceIPEnrichment",
    "overrides",
}

TESTS = yaml_tests()
TEST_NAMES = [t["Name"] for t in TESTS]
MATCHING = [t["Name"] for t in TESTS if t["ExpectedResult"]]


ENGINE = panther_engine()


def run(test, batch_mode=False):
    """The YAML test through the engine, its Mocks applied as panther_analysis_tool applies them."""
    with yaml_mocks(ENGINE.module, test):
        return ENGINE.run(PantherEvent(test["Log"]), {}, {}, batch_mode=batch_mode)


@pytest.mark.parametrize("test", TESTS, ids=TEST_NAMES)
@pytest.mark.parametrize("batch_mode", [False, True], ids=["test-mode", "batch-mode"])
def test_yaml_case_through_the_engine(test, batch_mode):
    result = run(test, batch_mode=batch_mode)
    assert engine_errors(result) == {}
    assert result.detection_output is test["ExpectedResult"]
    assert result.trigger_alert is test["ExpectedResult"]


@pytest.mark.parametrize("name", MATCHING)
def test_yaml_alert_outputs(name):
    result = run(yaml_test(name))
    severity, title, dedup = EXPECTED_ALERTS[name]
    assert (result.severity_output, result.title_output, result.dedup_output) == (
        severity,
        title,
        dedup,
    )
    context = json.loads(result.alert_context_output)
    assert set(context) == CONTEXT_KEYS
    assert context["denied"] is title.startswith("Denied")


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


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("NoSuchKey", "Failed S3 DeleteObject (NoSuchKey) "),
        ("", "S3 DeleteObject on "),
        (None, "S3 DeleteObject on "),
    ],
    ids=["failed", "empty-code", "no-code"],
)
def test_only_a_failure_shows_its_error_code(rule_module, code, shown):
    changes = {"eventName": "DeleteObject", "errorCode": code}
    title = rule_module.title(event(requestParameters={"bucketName": "b"}, **changes))
    assert title.startswith(shown)


def test_a_session_named_as_its_role_is_not_named_twice(rule_module):
    identity = {
        "type": "AssumedRole",
        "principalId": "AROAIOSFODNN7EXAMPLE:DataPipeline",
        "arn": "arn:aws:sts::123456789012:assumed-role/DataPipeline/DataPipeline",
        "accountId": "123456789012",
        "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "DataPipeline"}},
    }
    title = rule_module.title(event(userIdentity=identity))
    assert " by DataPipeline from " in title


def test_severities_rank_as_panther_orders_them_with_default_as_medium(rule_module):
    rank = rule_module.SEVERITY_RANK
    assert sorted(rank, key=rank.__getitem__) == [
        "INFO",
        "LOW",
        "DEFAULT",
        "MEDIUM",
        "HIGH",
        "CRITICAL",
    ]
    assert len(set(rank.values())) == 5
    assert rank["DEFAULT"] == rank["MEDIUM"]


def test_alert_context_reports_the_overrides_in_effect(rule_module):
    context = rule_module.alert_context(event())
    assert context["overrides"] == {
        "S3_DATA_ACCESS_OPERATIONS": sorted(vpce_family.S3_DATA_ACCESS_OPERATIONS),
        "TRUSTED_NETWORKS": [],
        "TRUSTED_LOOKUP_TABLES": [],
        "TRUSTED_ACCOUNTS": [],
        "TRUSTED_ACCOUNT_LOOKUP_TABLES": [],
        "HIGH_SEVERITY_OPERATIONS": sorted(rule_module.HIGH_SEVERITY_OPERATIONS),
        "FIRST_SEEN_DAYS": 30,
    }
    assert json.loads(json.dumps(context, allow_nan=False)) == context
