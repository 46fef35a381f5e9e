"""The VPC endpoint family: which rule owns an event (one alert per event across the four), what
each alert says, the overrides, and agreement with Panther's managed siblings on every denial
and foreign principal they flag.
"""

import copy
import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import vpce_family
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_profiles import fuzz_settings
from identities import CALLERS
from panther_core.enriched_event import PantherEvent
from repo import (
    REPO_ROOT,
    engine_errors,
    load_module,
    panther_engine,
    sample_records,
    yaml_tests,
)
from strategies import cloudtrail_events
from vpce_family import (
    ACCESS_DENIED,
    EXTERNAL_PRINCIPAL,
    S3_EXTERNAL_IP,
    SENSITIVE_API_CALLS,
    Findings,
)

RULE_FILES = {
    S3_EXTERNAL_IP: "aws_vpce_s3_external_ip",
    ACCESS_DENIED: "aws_vpce_access_denied",
    EXTERNAL_PRINCIPAL: "aws_vpce_external_principal",
    SENSITIVE_API_CALLS: "aws_vpce_sensitive_api_calls",
}
BULK_RULE_ID = "AWS.CloudTrail.VPCE.S3ExternalIPBulkAccess"
FAMILY = {
    rule_id: load_module(REPO_ROOT / "rules" / f"{name}.py") for rule_id, name in RULE_FILES.items()
}
BULK = load_module(REPO_ROOT / "rules" / "aws_vpce_s3_external_ip_bulk_access.py")
# Threshold rules: they count events, and an event they count has its own owner (or none).
MANY_SECRETS_RULE_ID = "AWS.CloudTrail.VPCE.ManySecretsRead"
ALL_RULE_IDS = [*FAMILY, BULK_RULE_ID, MANY_SECRETS_RULE_ID]
SAMPLES = REPO_ROOT / "samples" / "cloudtrail"
OWN, OUTSIDE = "123456789012", "777788889999"


def every_yaml_log():
    return [test["Log"] for rule_id in ALL_RULE_IDS for test in yaml_tests(rule_id)]


def owners(event):
    """The per-event rules that match the event."""
    return sorted(rule_id for rule_id, rule in FAMILY.items() if rule.rule(event))


# --- ownership --------------------------------------------------------------------------------

F, T = False, True
# (external address, foreign principal, endpoint-policy denial, sensitive, S3 data access)
OWNERSHIP_CASES = {
    "private routine read by the owner": ((F, F, F, "routine", F), None),
    "private object read by the owner": ((F, F, F, None, T), None),
    "external object read": ((T, F, F, None, T), S3_EXTERNAL_IP),
    "external object read by a foreign caller, denied": ((T, T, T, None, T), S3_EXTERNAL_IP),
    "protection change inside": ((F, F, F, "change", F), SENSITIVE_API_CALLS),
    "protection change by a foreign caller, denied": ((F, T, T, "change", F), SENSITIVE_API_CALLS),
    "foreign caller's routine read": ((F, T, F, "routine", F), EXTERNAL_PRINCIPAL),
    "foreign caller denied from outside": ((T, T, T, None, F), EXTERNAL_PRINCIPAL),
    "owner denied inside": ((F, F, T, None, F), ACCESS_DENIED),
    "owner's routine read denied from outside": ((T, F, T, "routine", F), ACCESS_DENIED),
    "owner's object read denied inside": ((F, F, T, None, T), ACCESS_DENIED),
    "owner's routine read from outside": ((T, F, F, "routine", F), SENSITIVE_API_CALLS),
    "owner's other call from outside": ((T, F, F, None, F), None),
}


@pytest.mark.parametrize(("flags", "expected"), OWNERSHIP_CASES.values(), ids=OWNERSHIP_CASES)
def test_the_first_rule_whose_condition_holds_owns_the_event(flags, expected):
    found = Findings(*flags)
    owner = next((rule for rule, holds in vpce_family.OWNERSHIP if holds(found)), None)
    assert owner == expected


def test_each_rule_of_the_family_owns_something():
    assert {rule_id for rule_id, _ in vpce_family.OWNERSHIP} == set(FAMILY)


@pytest.mark.slow
def test_one_alert_per_event_on_every_yaml_log_and_the_sample_day():
    logs = every_yaml_log() + sample_records()
    for log in logs:
        event = PantherEvent(log)
        matched = owners(event)
        assert len(matched) <= 1, (matched, log)
        assert matched == ([vpce_family.owner(event)] if vpce_family.owner(event) else [])
        assert BULK.rule(event) is (matched == [S3_EXTERNAL_IP])


@fuzz_settings()
@given(event=cloudtrail_events)
def test_one_alert_per_event_whatever_the_event(event):
    for view in (dict, PantherEvent):
        matched = owners(view(event))
        assert len(matched) <= 1, matched
        assert BULK.rule(view(event)) is (matched == [S3_EXTERNAL_IP])


DENIED_FOREIGN_READ = {
    **yaml_tests(EXTERNAL_PRINCIPAL)[0]["Log"],
    "eventSource": "s3.amazonaws.com",
    "eventName": "GetObject",
    "sourceIPAddress": "45.33.32.156",
    "errorCode": "VpceAccessDenied",
}
FAMILY_CONTEXT_CASES = {
    "an owner's context names the rules it outranked": (
        DENIED_FOREIGN_READ,
        {
            "owner": S3_EXTERNAL_IP,
            "externalAddress": True,
            "foreignPrincipal": True,
            "endpointPolicyDenied": True,
            "sensitiveCall": None,
            "alsoMatched": [ACCESS_DENIED, EXTERNAL_PRINCIPAL],
        },
    ),
    "network activity no rule owns: no owner, nothing else matched": (
        yaml_tests(SENSITIVE_API_CALLS)[0]["Log"]
        | {"eventSource": "kms.amazonaws.com", "eventName": "Decrypt"},
        {
            "owner": None,
            "externalAddress": False,
            "foreignPrincipal": False,
            "endpointPolicyDenied": False,
            "sensitiveCall": "routine",
            "alsoMatched": [],
        },
    ),
    "no network activity: no family context": (
        yaml_tests(SENSITIVE_API_CALLS)[0]["Log"] | {"eventType": "AwsApiCall"},
        None,
    ),
}


@pytest.mark.parametrize(
    ("log", "expected"), FAMILY_CONTEXT_CASES.values(), ids=FAMILY_CONTEXT_CASES
)
def test_the_family_context_says_what_every_rule_would_have_said(log, expected):
    assert vpce_family.family_context(PantherEvent(log)) == expected


def test_the_owners_alert_carries_the_family_context():
    context = FAMILY[S3_EXTERNAL_IP].alert_context(PantherEvent(DENIED_FOREIGN_READ))
    assert context["vpceFamily"] == vpce_family.family_context(PantherEvent(DENIED_FOREIGN_READ))


PROTECTION_CHANGE = yaml_tests(SENSITIVE_API_CALLS)[0]["Log"]
# Network activity records carry both marks; a management event (AwsApiCall / Management) of
# the same call is the managed CloudTrail rules' to judge, and half a mark is no record of ours.
NETWORK_ACTIVITY_MARK_CASES = {
    "both marks": (("AwsVpceEvent", "NetworkActivity"), SENSITIVE_API_CALLS),
    "a management event": (("AwsApiCall", "Management"), None),
    "network activity category only": (("AwsApiCall", "NetworkActivity"), None),
    "endpoint event type only": (("AwsVpceEvent", "Management"), None),
}


@pytest.mark.parametrize(
    ("marks", "expected"), NETWORK_ACTIVITY_MARK_CASES.values(), ids=NETWORK_ACTIVITY_MARK_CASES
)
def test_only_network_activity_records_belong_to_the_family(marks, expected):
    event_type, category = marks
    event = PantherEvent(PROTECTION_CHANGE | {"eventType": event_type, "eventCategory": category})
    assert vpce_family.owner(event) == expected


def test_the_family_findings_are_worked_out_once_per_event():
    event = PantherEvent(DENIED_FOREIGN_READ)
    # A Findings tuple is new each time it is computed, so `is` shows one computation.
    assert vpce_family.findings(event) is vpce_family.findings(event)


ENDPOINT_OWNER_CASES = {
    "the endpoint's account": ({"vpcEndpointAccountId": OWN, "recipientAccountId": OUTSIDE}, OWN),
    "else the recipient": ({"recipientAccountId": OUTSIDE}, OUTSIDE),
    "an empty endpoint account falls back": (
        {"vpcEndpointAccountId": "", "recipientAccountId": OUTSIDE},
        OUTSIDE,
    ),
    "neither": ({}, "<unknown>"),
    "a long value is cut to a title part's 120 characters": (
        {"vpcEndpointAccountId": "9" * 500},
        "9" * 120,
    ),
}


@pytest.mark.parametrize(
    ("fields", "expected"), ENDPOINT_OWNER_CASES.values(), ids=ENDPOINT_OWNER_CASES
)
def test_the_endpoint_owner_as_a_title_shows_it(fields, expected):
    assert vpce_family.endpoint_owner(PantherEvent(fields)) == expected


# --- every rule's YAML tests through panther_core's engine ---------------------------------------


ENGINES = {
    rule_id: panther_engine(rule_id)
    for rule_id in (ACCESS_DENIED, EXTERNAL_PRINCIPAL, SENSITIVE_API_CALLS)
}
CASES = [(rule_id, test) for rule_id in ENGINES for test in yaml_tests(rule_id)]
# Context keys the family's alerts share, named as panther-analysis's AWS rules name them in
# p_alert_context (aws_rule_context, the S3 signals' bucketName), for correlation rules.
SHARED_CONTEXT_KEYS = {
    "caller",
    "actor_user",
    "userIdentity",
    "recipientAccountId",
    "vpcEndpointAccountId",
    "sourceIPAddress",
    "vpcEndpointId",
    "bucketName",
    "eventSource",
    "eventName",
    "awsRegion",
    "vpceFamily",
    "sourceIPEnrichment",
    "overrides",
}


@pytest.mark.parametrize(
    ("rule_id", "test"), CASES, ids=[f"{rule_id}: {test['Name']}" for rule_id, test in CASES]
)
@pytest.mark.parametrize("batch_mode", [False, True], ids=["test-mode", "batch-mode"])
def test_yaml_case_through_the_engine(rule_id, test, batch_mode):
    result = ENGINES[rule_id].run(PantherEvent(test["Log"]), {}, {}, batch_mode=batch_mode)
    assert engine_errors(result) == {}
    assert result.detection_output is test["ExpectedResult"]
    if test["ExpectedResult"]:
        assert result.severity_output in {"LOW", "MEDIUM", "HIGH", "CRITICAL"}
        assert 0 < len(result.title_output) <= 1000
        assert 0 < len(result.dedup_output) <= 1000
        context = json.loads(result.alert_context_output)
        assert set(context) >= SHARED_CONTEXT_KEYS
        assert context["vpceFamily"]["owner"] == rule_id


@pytest.mark.parametrize("rule_id", ALL_RULE_IDS)
def test_every_rule_has_realistic_true_and_false_cases(rule_id):
    tests = yaml_tests(rule_id)
    assert len(tests) >= 20
    assert {t["ExpectedResult"] for t in tests} == {True, False}
    logs = [t["Log"] for t in tests if t["ExpectedResult"]]
    # Shaped like real network activity records: none carries what they never carry.
    real_shaped = [log for log in logs if "requestParameters" not in log and "userAgent" not in log]
    assert len(real_shaped) >= len(logs) - 3


def alert(rule_id, log):
    rule = FAMILY[rule_id]
    event = PantherEvent(log)
    return rule.severity(event), rule.title(event), rule.dedup(event)


def yaml_log(rule_id, name):
    (test,) = [t for t in yaml_tests(rule_id) if t["Name"] == name]
    return test["Log"]


ROLE_CALLER = f"{OWN}:AROAIOSFODNN7EXAMPLE:etl-nightly"
PIPELINE = "DataPipeline (session etl-nightly)"
VPCE = "vpce-0a1b2c3d4e5f6a7b8"
EXPECTED = {
    (ACCESS_DENIED, "A job the endpoint policy forgot: own account, inside, LOW"): (
        "LOW",
        f"VPC endpoint {VPCE} denied s3 PutObject by {PIPELINE} inside the network",
        f"{ROLE_CALLER}:{VPCE}:s3:LOW",
    ),
    (ACCESS_DENIED, "A key listing denied from outside the network"): (
        "MEDIUM",
        f"VPC endpoint {VPCE} denied kms ListKeys by {PIPELINE} from external IP 198.51.101.7",
        f"{ROLE_CALLER}:{VPCE}:kms:MEDIUM",
    ),
    (EXTERNAL_PRINCIPAL, "Cross-account caller, redacted identity (AWS published example shape)"): (
        "DEFAULT",
        f"External principal AKIAIOSFODNN7EXAMPLE in account {OUTSIDE} called kms ListKeys "
        f"through VPC endpoint {VPCE} of account {OWN}, inside the network",
        f"{OUTSIDE}:AKIAIOSFODNN7EXAMPLE:DEFAULT",
    ),
    (EXTERNAL_PRINCIPAL, "A foreign caller refused by the endpoint policy is LOW"): (
        "LOW",
        f"External principal AKIAI44QH8DHBEXAMPLE in account {OUTSIDE} called s3 ListObjects "
        f"(refused) through VPC endpoint {VPCE} of account {OWN}, from external IP 45.33.32.156",
        f"{OUTSIDE}:AKIAI44QH8DHBEXAMPLE:LOW",
    ),
    (EXTERNAL_PRINCIPAL, "An assumed role of another account (unredacted) is foreign too"): (
        "DEFAULT",
        "External principal DataPipeline (session nb-1) of account 444455556666 called ec2 "
        f"DescribeInstances through VPC endpoint {VPCE} of account {OWN}, inside the network",
        "444455556666:AROAEXAMPLEANALYTIC1:nb-1:DEFAULT",
    ),
    (SENSITIVE_API_CALLS, "Scheduling a key's deletion from inside is HIGH"): (
        "HIGH",
        f"Protection change kms ScheduleKeyDeletion through VPC endpoint {VPCE} by {PIPELINE} "
        "inside the network",
        f"{ROLE_CALLER}:kms:HIGH",
    ),
    (SENSITIVE_API_CALLS, "A refused key deletion ranks below a successful one"): (
        "DEFAULT",
        f"Protection change kms ScheduleKeyDeletion (refused) through VPC endpoint {VPCE} by "
        f"{PIPELINE} inside the network",
        f"{ROLE_CALLER}:kms:DEFAULT",
    ),
    (SENSITIVE_API_CALLS, "A secret read from a Tor exit node"): (
        "DEFAULT",
        f"Sensitive call secretsmanager GetSecretValue through VPC endpoint {VPCE} by {PIPELINE} "
        "from external IP 185.220.101.4 (Tor exit node, AS60729 Stiftung Erneuerbare Freiheit, DE)",
        f"{ROLE_CALLER}:secretsmanager:DEFAULT",
    ),
    (SENSITIVE_API_CALLS, "A decrypt from outside that failed is LOW"): (
        "LOW",
        f"Sensitive call kms Decrypt (refused) through VPC endpoint {VPCE} by {PIPELINE} "
        "from external IP 198.51.101.7",
        f"{ROLE_CALLER}:kms:LOW",
    ),
}


@pytest.mark.parametrize(("key", "expected"), EXPECTED.items(), ids=[n for _, n in EXPECTED])
def test_alert_outputs(key, expected):
    assert alert(key[0], yaml_log(*key)) == expected


def longest_parts(account=OWN, **changes):
    """The Tor exit node's secret read with every part a title shows as long as can be."""
    log = copy.deepcopy(yaml_log(SENSITIVE_API_CALLS, "A secret read from a Tor exit node"))
    long = 2000
    identity = log["userIdentity"]
    identity["arn"] = f"arn:aws:sts::{account}:assumed-role/{'R' * long}/{'s' * long}"
    identity["accountId"] = account
    identity["sessionContext"]["sessionIssuer"]["userName"] = "N" * long
    enrichment = log["p_enrichment"]
    enrichment["ipinfo_asn"]["sourceIPAddress"] |= {"asn": "AS" + "1" * long, "name": "O" * long}
    enrichment["ipinfo_location"]["sourceIPAddress"]["country"] = "C" * long
    return log | {"vpcEndpointId": "vpce-" + "0" * long} | changes


ANY_SERVICE = {"eventSource": "x" * 2000 + ".amazonaws.com", "eventName": "E" * 2000}
# An Identity Center user has the longest caller id: account, identity store and user, each cut.
IDENTITY_CENTER_USER = {
    "type": "IdentityCenterUser",
    "accountId": "1" * 2000,
    "onBehalfOf": {
        "userId": "u" * 2000,
        "identityStoreArn": "arn:aws:identitystore::" + "d" * 2000,
    },
}
# Every part of a title or dedup string is cut (120 or 256 characters); Panther cuts either at
# 1,000 characters and the rules cut theirs there themselves. Only these two can get that long.
LONGEST_OUTPUT_CASES = {
    "external principal's title: cut at 1,000": (
        EXTERNAL_PRINCIPAL,
        "title",
        longest_parts("7" * 2000, **ANY_SERVICE, vpcEndpointAccountId="9" * 2000),
        range(1000, 1001),
    ),
    "access denied's dedup: cut at 1,000": (
        ACCESS_DENIED,
        "dedup",
        longest_parts(
            **ANY_SERVICE,
            errorCode="VpceAccessDenied",
            userIdentity=IDENTITY_CENTER_USER,
            vpcEndpointAccountId="1" * 2000,
        ),
        range(1000, 1001),
    ),
    "access denied's title: under 1,000": (
        ACCESS_DENIED,
        "title",
        longest_parts(**ANY_SERVICE, errorCode="VpceAccessDenied"),
        range(999),
    ),
    "sensitive call's title: under 1,000": (
        SENSITIVE_API_CALLS,
        "title",
        longest_parts(),
        range(999),
    ),
    "sensitive call's dedup: under 1,000": (
        SENSITIVE_API_CALLS,
        "dedup",
        longest_parts(userIdentity=IDENTITY_CENTER_USER, vpcEndpointAccountId="1" * 2000),
        range(999),
    ),
}


@pytest.mark.parametrize(
    ("rule_id", "output", "log", "lengths"), LONGEST_OUTPUT_CASES.values(), ids=LONGEST_OUTPUT_CASES
)
def test_outputs_of_the_longest_parts_stay_within_panthers_1000_characters(
    rule_id, output, log, lengths
):
    event = PantherEvent(log)
    assert owners(event) == [rule_id]
    assert len(getattr(FAMILY[rule_id], output)(event)) in lengths


def test_an_external_principals_long_account_is_cut_like_any_title_part():
    log = yaml_log(
        EXTERNAL_PRINCIPAL, "An assumed role of another account (unredacted) is foreign too"
    )
    log = log | {"userIdentity": log["userIdentity"] | {"accountId": "7" * 500}}
    title = FAMILY[EXTERNAL_PRINCIPAL].title(PantherEvent(log))
    assert f" of account {'7' * 120} called " in title


# --- overrides -----------------------------------------------------------------------------------

FOREIGN = yaml_log(EXTERNAL_PRINCIPAL, "A partner's key reads a secret from inside the network")


def family_rules(tmp_path, **assignments):
    """The four rules loaded against a copy of vpce_family with settings edited."""
    from repo import family_with, importing

    with importing(family_with(tmp_path, **assignments)):
        return {
            rule_id: load_module(REPO_ROOT / "rules" / f"{name}.py")
            for rule_id, name in RULE_FILES.items()
        }


def owned_by(rules, log):
    return [rule_id for rule_id, rule in rules.items() if rule.rule(PantherEvent(log))]


def test_trusted_accounts_are_no_external_principals(tmp_path):
    assert owners(PantherEvent(FOREIGN)) == [EXTERNAL_PRINCIPAL]
    rules = family_rules(tmp_path, TRUSTED_ACCOUNTS=["210987654321"])
    assert owned_by(rules, FOREIGN) == []
    # Trusted, the partner is an insider: its calls from outside are judged as the owner's.
    assert owned_by(rules, {**FOREIGN, "sourceIPAddress": "198.51.101.7"}) == [SENSITIVE_API_CALLS]
    context = rules[SENSITIVE_API_CALLS].alert_context(
        PantherEvent({**FOREIGN, "sourceIPAddress": "198.51.101.7"})
    )
    assert context["overrides"]["TRUSTED_ACCOUNTS"] == ["210987654321"]


def test_a_trusted_account_lookup_table_trusts_what_panther_matched_in_it(tmp_path):
    matched = {"org_accounts": {"userIdentity.accountId": {"accountId": "210987654321"}}}
    rules = family_rules(tmp_path, TRUSTED_ACCOUNT_LOOKUP_TABLES=["org_accounts"])
    assert owned_by(rules, {**FOREIGN, "p_enrichment": matched}) == []
    assert owned_by(rules, FOREIGN) == [EXTERNAL_PRINCIPAL]
    other = {"partners": {"userIdentity.accountId": {"accountId": "210987654321"}}}
    assert owned_by(rules, {**FOREIGN, "p_enrichment": other}) == [EXTERNAL_PRINCIPAL]


def test_the_operation_lists_are_overrides(tmp_path):
    decrypt = yaml_log(
        SENSITIVE_API_CALLS, "A routine decrypt by the endpoint's own account inside is routine"
    )
    rules = family_rules(
        tmp_path,
        PROTECTION_CHANGES={"kms.amazonaws.com": ["GenerateDataKey"]},
        ROUTINE_SENSITIVE_CALLS={},
    )
    assert owned_by(rules, decrypt) == [SENSITIVE_API_CALLS]
    deletion = yaml_log(SENSITIVE_API_CALLS, "Stopping a trail through the endpoint")
    assert owned_by(rules, deletion) == []


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ({"TRUSTED_ACCOUNTS": ["12345678901"]}, "'12345678901' is not a valid account id"),
        ({"TRUSTED_ACCOUNTS": ["123456789012 "]}, "TRUSTED_ACCOUNTS: '123456789012 '"),
        ({"TRUSTED_ACCOUNTS": "123456789012"}, "must be a list of account ids"),
        ({"TRUSTED_ACCOUNT_LOOKUP_TABLES": [""]}, "TRUSTED_ACCOUNT_LOOKUP_TABLES: ''"),
        ({"PROTECTION_CHANGES": ["StopLogging"]}, "must map services to lists of event names"),
        ({"PROTECTION_CHANGES": {"kms.amazonaws.com": "DisableKey"}}, "must be a list"),
        ({"ROUTINE_SENSITIVE_CALLS": {"": ["Decrypt"]}}, "ROUTINE_SENSITIVE_CALLS: ''"),
        ({"ROUTINE_SENSITIVE_CALLS": {"kms.amazonaws.com": ["Decrypt", 7]}}, "7 is not a valid"),
    ],
    ids=[
        "eleven-digits",
        "padded-account",
        "accounts-not-a-list",
        "empty-table",
        "changes-not-a-table",
        "operations-not-a-list",
        "empty-service",
        "operation-not-text",
    ],
)
def test_a_malformed_family_override_fails_at_import_naming_the_entry(tmp_path, assignment, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        family_rules(tmp_path, **assignment)


# --- Panther's managed siblings: whatever they flag as a denial or a foreign principal, one of
# ours flags too (the routine reads SensitiveAPICalls flagged are what ours leave out on purpose)


def managed_denial(event):
    """AWS.CloudTrail.VPCE.AccessDenied's condition (panther-analysis, mid-2026)."""
    return (
        event.get("eventType") == "AwsVpceEvent"
        and event.get("eventCategory") == "NetworkActivity"
        and event.get("errorCode") == "VpceAccessDenied"
    )


def managed_foreign_principal(event):
    """AWS.CloudTrail.VPCE.ExternalPrincipal's condition (panther-analysis, mid-2026)."""
    identity = event.get("userIdentity") or {}
    if event.get("eventType") != "AwsVpceEvent" or event.get("eventCategory") != "NetworkActivity":
        return False
    if not isinstance(identity, Mapping) or identity.get("type") != "AWSAccount":
        return False
    if "arn" in identity or "principalId" not in identity:
        return False
    account, recipient = identity.get("accountId"), event.get("recipientAccountId")
    return bool(account and recipient and account != recipient)


SERVICES = sorted(
    {*vpce_family.CHANGES, *vpce_family.ROUTINE, "s3.amazonaws.com", "sts.amazonaws.com"}
)
OPERATIONS = sorted(
    {
        name
        for table in (vpce_family.CHANGES, vpce_family.ROUTINE)
        for names in table.values()
        for name in names
    }
    | vpce_family.MONITORED_S3_OPERATIONS
    | {"ListKeys", "ListObjects", "GetCallerIdentity"}
)
ACCOUNTS = [OWN, OUTSIDE, "444455556666"]
network_activity = st.builds(
    lambda service, name, source, account, identity_type, owner, error: {
        "eventVersion": "1.10",
        "eventType": "AwsVpceEvent",
        "eventCategory": "NetworkActivity",
        "eventSource": service,
        "eventName": name,
        "sourceIPAddress": source,
        "userIdentity": (
            {"type": "AWSAccount", "principalId": "AKIAI44QH8DHBEXAMPLE", "accountId": account}
            if identity_type == "AWSAccount"
            else {
                "type": identity_type,
                "principalId": "AROAIOSFODNN7EXAMPLE:s",
                "arn": f"arn:aws:sts::{account}:assumed-role/R/s",
                "accountId": account,
            }
        ),
        "recipientAccountId": owner,
        "vpcEndpointAccountId": owner,
        "vpcEndpointId": "vpce-0a1b2c3d4e5f6a7b8",
        "eventTime": "2026-11-20T09:14:03Z",
        **({"errorCode": error} if error else {}),
    },
    st.sampled_from(SERVICES),
    st.sampled_from(OPERATIONS),
    st.sampled_from(["10.0.141.54", "198.199.88.17", "2600:1f18::1", "AWS Internal"]),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(["AWSAccount", "AssumedRole"]),
    st.sampled_from(ACCOUNTS),
    st.sampled_from([None, "VpceAccessDenied", "AccessDenied"]),
)


@fuzz_settings()
@given(record=network_activity)
def test_what_the_managed_siblings_flag_as_denied_or_foreign_one_of_ours_flags(record):
    event = PantherEvent(record)
    if managed_denial(event) or managed_foreign_principal(event):
        assert len(owners(event)) == 1, record


CHECKOUT = os.environ.get("PANTHER_ANALYSIS_CHECKOUT")
real_checkout = pytest.mark.skipif(
    not CHECKOUT, reason="PANTHER_ANALYSIS_CHECKOUT is not set (a panther-analysis checkout)"
)
MANAGED = {
    ACCESS_DENIED: "aws_vpce_access_denied",
    EXTERNAL_PRINCIPAL: "aws_vpce_external_principal",
}


def managed_rules():
    helpers = str(Path(CHECKOUT) / "global_helpers")
    sys.path.insert(0, helpers)
    try:
        loaded = {}
        for rule_id, name in MANAGED.items():
            path = Path(CHECKOUT) / "rules" / "aws_cloudtrail_rules" / f"{name}.py"
            spec = importlib.util.spec_from_file_location(f"managed_{name}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[rule_id] = module
        return loaded
    finally:
        sys.path.remove(helpers)


@real_checkout
def test_the_oracles_are_the_managed_rules_conditions():
    managed = managed_rules()
    records = (
        sample_records() + every_yaml_log() + [copy.deepcopy(r) for r in sample_records()[:10]]
    )
    raised = 0
    for record in records:
        event = PantherEvent(record)
        assert managed[ACCESS_DENIED].rule(event) is managed_denial(event)
        try:
            flagged = managed[EXTERNAL_PRINCIPAL].rule(event)
        except AttributeError:  # the managed rule reads a userIdentity that is no object
            assert not isinstance(record.get("userIdentity"), dict), record
            raised += 1
            continue
        assert flagged is managed_foreign_principal(event)
    assert raised <= sum(not isinstance(r.get("userIdentity", {}), dict) for r in records)


@real_checkout
def test_every_managed_denial_and_foreign_principal_of_the_sample_is_flagged_by_ours():
    managed = managed_rules()
    flagged = 0
    for record in sample_records():
        event = PantherEvent(record)
        if any(rule.rule(event) for rule in managed.values()):
            flagged += 1
            assert len(owners(event)) == 1, record
    assert flagged > 0


# --- one caller for every userIdentity type, in every rule --------------------------------------


@pytest.mark.parametrize(("identity", "key", "name"), CALLERS.values(), ids=CALLERS)
def test_every_identity_type_is_named_alike_by_every_rule(identity, key, name):
    deletion = yaml_log(SENSITIVE_API_CALLS, "Scheduling a key's deletion from inside is HIGH")
    account = identity.get("accountId") if isinstance(identity, dict) else None
    foreign = account not in (None, OWN)
    cases = [
        ({**deletion, "userIdentity": identity}, SENSITIVE_API_CALLS),
        (
            {**deletion, "eventName": "ListKeys", "userIdentity": identity, **DENIAL},
            EXTERNAL_PRINCIPAL if foreign else ACCESS_DENIED,
        ),
    ]
    for log, owner in cases:
        event = PantherEvent(copy.deepcopy(log))
        assert owners(event) == [owner]
        rule = FAMILY[owner]
        assert rule.dedup(event).startswith(f"{key}:")
        assert f" {name} " in rule.title(event)
        assert rule.alert_context(event)["caller"] == key


DENIAL = {
    "errorCode": "VpceAccessDenied",
    "errorMessage": "The request was denied due to a VPC endpoint policy",
}
