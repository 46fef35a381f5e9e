"""The sample dataset: reproducible from its generator, shaped like real CloudTrail, and raising
exactly the planted incidents (and no longer the IPv6 ones once TRUSTED_NETWORKS names their block).
"""

import gzip
import ipaddress
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from panther_core.enriched_event import PantherEvent
from public_ip import is_public_ip
from repo import (
    BULK_RULE_ID,
    REPO_ROOT,
    RULE_FILE,
    RULE_ID,
    family_with,
    importing,
    panther_engine,
    rule_path,
    rule_spec,
)

SAMPLES = REPO_ROOT / "samples"
GENERATOR = SAMPLES / "generate.py"
DATASET = SAMPLES / "cloudtrail"
DAY = "2026-11-20"
IPV6_BLOCK = "2600:1f18:7c2e:4b00::/56"

# The planted incidents, as alerts: dedup string -> (severity, events, first seen, last seen).
# A dedup string ends in its severity: an escalation opens an alert of its own, which pages.
ROLE = "123456789012:AROAEXAMPLE"
EXPORTER = "444455556666:AROAEXAMPLEEXPORTER10:export-daily:146.70.117.35"
EXPECTED_ALERTS = {
    # (a) an outside address reads objects for ~20 minutes with stolen instance-role credentials
    f"{ROLE}RPTBATCH03:i-0f3c2a9e5b7d41a86:198.199.88.17:DEFAULT": (
        "MEDIUM",
        8,
        "03:12:28",
        "03:31:40",
    ),
    # (b) a denied probe by an account outside the organisation
    "777788889999:AKIAEXAMPLEOUTSIDR15:45.33.32.156:LOW": ("LOW", 4, "07:44:38", "07:45:12"),
    # (c) a cross-account caller (redacted identity) from a public address
    "444455556666:AKIAEXAMPLEJRIVERA14:9.9.9.9:DEFAULT": ("MEDIUM", 4, "13:05:52", "13:08:32"),
    # (d) a read, then deletes from an outside address: the deletes page on their own
    "123456789012:AIDAEXAMPLEBACKUPSY09:185.199.108.153:DEFAULT": (
        "MEDIUM",
        1,
        "19:20:14",
        "19:20:14",
    ),
    "123456789012:AIDAEXAMPLEBACKUPSY09:185.199.108.153:HIGH": ("HIGH", 3, "19:20:47", "19:20:50"),
    # (e) two hosts of the dual-stack VPC, from its Amazon-provided IPv6 block
    f"{ROLE}DATAPIPE01:i-0d5b7e2c9a41f3806:2600:1f18:7c2e:4b17:9d3a:5e1:c08f:2b64:DEFAULT": (
        "MEDIUM",
        8,
        "02:03:40",
        "02:09:00",
    ),
    f"{ROLE}DATAPIPE01:i-07c1e94b2f60d8a35:2600:1f18:7c2e:4b42:61c7:e0b:7f15:a93d:DEFAULT": (
        "MEDIUM",
        4,
        "02:04:02",
        "02:07:33",
    ),
    # (f) bulk exfiltration: 300 reads in under five minutes, each a read from outside...
    f"{EXPORTER}:DEFAULT": ("MEDIUM", 300, "22:41:05", "22:45:26"),
}
# ...and, counted by the bulk rule, bulk access: its only alert on the day.
EXPECTED_BULK_ALERTS = {f"{EXPORTER}:succeeded": ("CRITICAL", 300, "22:41:05", "22:45:26")}
# The rest of the VPC endpoint family: one alert per event across the four.
EXPECTED_FAMILY_ALERTS = {
    "AWS.CloudTrail.VPCE.AccessDenied": {
        # a job the endpoint policy forgot, refused all day from inside the VPC: one LOW alert
        "123456789012:AROAEXAMPLELEGACYBT05:i-03b8d6f1e7a2c4905:vpce-0c4d1f29a7be5310e:s3:LOW": (
            "LOW",
            48,
            "00:22:54",
            "23:43:03",
        ),
    },
    "AWS.CloudTrail.VPCE.ExternalPrincipal": {
        # (benign) the analytics account's nightly job reads prod's data lake through prod's
        # endpoint: TRUSTED_ACCOUNTS = ["444455556666"] silences it
        "444455556666:ASIAEXAMPLEEXPORTER01:DEFAULT": ("MEDIUM", 260, "00:36:55", "23:52:35"),
        # (b) the outsider's probe: its listing and its KMS call (its object reads are above)
        "777788889999:AKIAEXAMPLEOUTSIDR15:LOW": ("LOW", 3, "07:44:31", "07:45:26"),
        # (g) a vendor's key reads prod's secrets from a host in prod's VPC
        "210987654321:AKIAEXAMPLEVENDORSY16:DEFAULT": ("MEDIUM", 3, "11:26:09", "11:26:18"),
    },
    "AWS.CloudTrail.VPCE.SensitiveAPICalls": {
        # (h) the data lake's key disabled, then scheduled for deletion, from a prod ETL host
        "123456789012:AROAEXAMPLEDATAPIPE01:etl-nightly:kms:HIGH": (
            "HIGH",
            2,
            "16:40:12",
            "16:40:33",
        ),
    },
    "AWS.CloudTrail.VPCE.ManySecretsRead": {
        # (i) the CI deploy role's keys read 64 of prod's secrets in four minutes from a build
        # host inside the VPC (the secrets its workloads read all day stay far below)
        "123456789012:AROAEXAMPLECIDEPLOY17:build-8213:own": ("MEDIUM", 64, "21:17:43", "21:21:39"),
    },
}
ORGANISATION_ACCOUNTS = ["444455556666"]
ALL_EXPECTED = {
    RULE_ID: EXPECTED_ALERTS,
    BULK_RULE_ID: EXPECTED_BULK_ALERTS,
    **EXPECTED_FAMILY_ALERTS,
}
IPV6_INCIDENTS = {dedup for dedup in EXPECTED_ALERTS if ":2600:1f18:" in dedup}
INCIDENT_ADDRESSES = {
    "198.199.88.17",
    "45.33.32.156",
    "9.9.9.9",
    "185.199.108.153",
    "146.70.117.35",
    "2600:1f18:7c2e:4b17:9d3a:5e1:c08f:2b64",
    "2600:1f18:7c2e:4b42:61c7:e0b:7f15:a93d",
}

OBJECT_PATH = re.compile(
    r"AWSLogs/(?P<account>\d{12})/CloudTrail/(?P<region>[a-z]{2}-[a-z]+-\d)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=account)_CloudTrail_(?P=region)_(?P=y)(?P=m)(?P=d)T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz"
)
ABSENT_FROM_NETWORK_ACTIVITY = {
    "userAgent",
    "requestParameters",
    "responseElements",
    "resources",
    "readOnly",
    "managementEvent",
    "tlsDetails",
    "eventContext",
}
NETWORK_ACTIVITY_FIELDS = {
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "requestID",
    "eventID",
    "eventType",
    "recipientAccountId",
    "sharedEventID",
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "eventCategory",
}
DENIED_MESSAGE = "The request was denied due to a VPC endpoint policy"
DOCUMENTATION_RANGES = [
    ipaddress.ip_network(block)
    for block in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]
SEVERITY_ORDER = ["INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]


def delivery_files(root):
    return sorted(path.relative_to(root) for path in root.rglob("*.json.gz"))


def read_records(path):
    document = json.loads(gzip.decompress(path.read_bytes()))
    assert set(document) == {"Records"}, path
    return document["Records"]


@pytest.fixture(scope="module")
def records_by_file():
    return {path: read_records(DATASET / path) for path in delivery_files(DATASET)}


@pytest.fixture(scope="module")
def records(records_by_file):
    return [record for batch in records_by_file.values() for record in batch]


def network_activity(records):
    return [r for r in records if r.get("eventCategory") == "NetworkActivity"]


# --- reproducible ---------------------------------------------------------------------------------


def test_generator_rewrites_the_checked_in_dataset_byte_for_byte(tmp_path):
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True)
    assert delivery_files(tmp_path) == delivery_files(DATASET)
    for path in delivery_files(DATASET):
        fresh, shipped = (tmp_path / path).read_bytes(), (DATASET / path).read_bytes()
        # Same records first (a clearer failure), then the same gzip bytes.
        assert gzip.decompress(fresh) == gzip.decompress(shipped), path
        assert fresh == shipped, path


# --- shaped like the real thing -------------------------------------------------------------------


def test_files_follow_the_s3_delivery_layout(records_by_file):
    for path, batch in records_by_file.items():
        match = OBJECT_PATH.fullmatch(path.as_posix())
        assert match, path
        assert batch, path
        assert {r["recipientAccountId"] for r in batch} == {match["account"]}, path
        assert {r["awsRegion"] for r in batch} == {match["region"]}, path
    streams = {path.parts[1:4] for path in records_by_file}
    assert {(account, region) for account, _, region in streams} == {
        (account, region)
        for account in ("123456789012", "444455556666")
        for region in ("us-east-1", "eu-west-1")
    }


def test_one_day_of_several_thousand_records_under_a_megabyte(records):
    assert 5_000 <= len(records) <= 8_000
    assert sum(path.stat().st_size for path in DATASET.rglob("*.json.gz")) < 1_000_000
    assert {r["eventTime"][:10] for r in records} == {DAY}
    assert len({r["eventID"] for r in records}) == len(records)


def test_the_mix_has_every_kind_of_event(records):
    kinds = Counter(
        (r["eventType"], r["eventCategory"], r["eventSource"].split(".")[0] == "s3")
        for r in records
    )
    assert kinds[("AwsVpceEvent", "NetworkActivity", True)] >= 2_500
    assert kinds[("AwsVpceEvent", "NetworkActivity", False)] >= 300
    assert kinds[("AwsApiCall", "Data", True)] >= 400
    assert kinds[("AwsApiCall", "Management", False)] >= 1_000
    assert kinds[("AwsConsoleSignIn", "Management", False)] >= 1
    services = {r["eventSource"] for r in network_activity(records)}
    assert {"s3.amazonaws.com", "kms.amazonaws.com", "secretsmanager.amazonaws.com"} <= services


def test_network_activity_records_carry_only_what_real_ones_carry(records):
    for record in network_activity(records):
        assert not ABSENT_FROM_NETWORK_ACTIVITY & set(record), record["eventID"]
        assert set(record) >= NETWORK_ACTIVITY_FIELDS, record["eventID"]
        assert record["eventType"] == "AwsVpceEvent"
        assert record["recipientAccountId"] == record["vpcEndpointAccountId"]
        assert record["vpcEndpointId"].startswith("vpce-")


def test_callers_from_other_accounts_are_redacted(records):
    foreign = 0
    for record in network_activity(records):
        identity = record["userIdentity"]
        if identity["accountId"] != record["vpcEndpointAccountId"]:
            foreign += 1
            assert set(identity) == {"type", "principalId", "accountId"}
            assert identity["type"] == "AWSAccount"
        else:
            assert identity["type"] != "AWSAccount"
            assert "arn" in identity
    assert foreign >= 100


def test_denials_look_like_endpoint_policy_denials(records):
    denied = [r for r in records if "errorCode" in r or "errorMessage" in r]
    assert denied
    for record in denied:
        assert record["eventType"] == "AwsVpceEvent"
        assert (record["errorCode"], record["errorMessage"]) == ("VpceAccessDenied", DENIED_MESSAGE)


def test_data_and_management_events_carry_their_usual_fields(records):
    for record in records:
        if record["eventCategory"] == "Data":
            assert record["eventType"] == "AwsApiCall"
            assert record["managementEvent"] is False
            assert isinstance(record["readOnly"], bool)
            assert record["requestParameters"]["bucketName"]
            assert record["resources"][0]["ARN"].startswith("arn:aws:s3:::")
            assert record["userAgent"]
        elif record["eventCategory"] == "Management":
            assert record["eventType"] in {"AwsApiCall", "AwsConsoleSignIn"}
            assert record["managementEvent"] is True
            assert "userAgent" in record


def test_no_documentation_addresses(records):
    for record in records:
        try:
            address = ipaddress.ip_address(record["sourceIPAddress"])
        except ValueError:  # service names such as ec2.amazonaws.com
            continue
        assert not any(address in block for block in DOCUMENTATION_RANGES), record["eventID"]


def test_public_sources_on_s3_endpoints_are_only_the_incidents(records):
    public = {
        r["sourceIPAddress"]
        for r in network_activity(records)
        if r["eventSource"] == "s3.amazonaws.com" and is_public_ip(r["sourceIPAddress"])
    }
    assert public == INCIDENT_ADDRESSES
    assert all(any(f":{a}:" in dedup for dedup in EXPECTED_ALERTS) for a in public)


# --- what the rule raises on it -------------------------------------------------------------------


def parse_time(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def alerts(rule_id, path, records):
    """Matches grouped as Panther groups them: same dedup string within the dedup period, kept
    when the distinct unique() values (each sample record's is its own) reach the Threshold."""
    rule = panther_engine(rule_id, path)
    spec = rule_spec(rule_id)
    period = timedelta(minutes=spec["DedupPeriodMinutes"])
    matches = []
    for record in sorted(records, key=lambda r: r["eventTime"]):
        result = rule.run(PantherEvent({**record, "p_log_type": "AWS.CloudTrail"}), {}, {}, True)
        assert result.errored is False, (record["eventID"], result)
        if result.detection_output:
            matches.append((parse_time(record["eventTime"]), result))
    grouped, open_alerts = [], {}
    for when, result in matches:
        alert = open_alerts.get(result.dedup_output)
        if alert is None or when - alert["first"] >= period:
            alert = {"dedup": result.dedup_output, "first": when, "severities": [], "last": when}
            open_alerts[result.dedup_output] = alert
            grouped.append(alert)
        alert["severities"].append(result.severity_output)
        alert["last"] = when
    return {
        alert["dedup"]: (
            max(alert["severities"], key=SEVERITY_ORDER.index),
            len(alert["severities"]),
            f"{alert['first']:%H:%M:%S}",
            f"{alert['last']:%H:%M:%S}",
        )
        for alert in grouped
        if len(alert["severities"]) >= spec.get("Threshold", 1)
    }


@pytest.mark.parametrize("rule_id", ALL_EXPECTED)
def test_exactly_the_planted_incidents_alert(records, rule_id):
    assert alerts(rule_id, rule_path(rule_id), records) == ALL_EXPECTED[rule_id]


def test_trusting_the_organisations_accounts_silences_its_nightly_job(records, tmp_path):
    rule_id = "AWS.CloudTrail.VPCE.ExternalPrincipal"
    with importing(family_with(tmp_path, TRUSTED_ACCOUNTS=ORGANISATION_ACCOUNTS)):
        trusting = alerts(rule_id, rule_path(rule_id), records)
    expected = EXPECTED_FAMILY_ALERTS[rule_id]
    assert trusting == {k: v for k, v in expected.items() if not k.startswith("444455556666:")}


def test_trusting_the_dual_stack_block_silences_the_ipv6_incidents(records, tmp_path):
    with importing(family_with(tmp_path, TRUSTED_NETWORKS=[IPV6_BLOCK])):
        trusting = alerts(RULE_ID, RULE_FILE, records)
    assert trusting == {k: v for k, v in EXPECTED_ALERTS.items() if k not in IPV6_INCIDENTS}


REPLAY = [sys.executable, "-m", "detection_replay", "--format", "json", "--no-progress"]


def test_the_replay_command_reports_the_same_alerts():
    # No input: the replay's default is this dataset.
    done = subprocess.run(
        [*REPLAY, "--path", str(REPO_ROOT)], capture_output=True, check=True, cwd=REPO_ROOT
    )
    document = json.loads(done.stdout)
    reported = {
        rule["rule_id"]: {
            alert["dedup"]: (
                alert["severity"],
                alert["events"],
                alert["first_seen"][11:19],
                alert["last_seen"][11:19],
            )
            for alert in rule["alerts"]
        }
        for rule in document["rules"]
    }
    assert reported == ALL_EXPECTED
    assert document["records_read"] == document["evaluated"] == 6_594
    assert document["malformed"] == document["rule_errors"] == 0
