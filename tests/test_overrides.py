"""Each override takes effect when a user edits its assignment, and a bad value fails loudly."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from panther_core.enriched_event import PantherEvent
from repo import REPO_ROOT, RULE_FILE, rule_source_with, yaml_test

from detection_replay.kv_store import KeyValueStore

IPV6_TEST = "Public IPv6 address of a dual-stack VPC"
MALFORMED_OVERRIDE = r"is not a valid (CIDR|event name|table name)|must be (a whole number|a list)"
GET = yaml_test("Real-shaped GetObject from a public IPv4 address, no requestParameters")["Log"]


def event(**changes):
    return PantherEvent({**GET, **changes})


def test_s3_data_access_operations_narrows_what_matches(edited_rule):
    rule = edited_rule(S3_DATA_ACCESS_OPERATIONS=["GetObject"])
    assert rule.rule(event(eventName="GetObject")) is True
    assert rule.rule(event(eventName="PutObject")) is False
    assert rule.alert_context(event())["overrides"]["S3_DATA_ACCESS_OPERATIONS"] == ["GetObject"]


def test_s3_data_access_operations_can_add_operations(edited_rule, rule_module):
    assert rule_module.rule(event(eventName="HeadObject")) is False
    rule = edited_rule(S3_DATA_ACCESS_OPERATIONS=["GetObject", "HeadObject"])
    assert rule.rule(event(eventName="HeadObject")) is True


def test_trusted_networks_silence_the_users_own_ranges(edited_rule, rule_module):
    ipv6 = PantherEvent(yaml_test(IPV6_TEST)["Log"])
    assert rule_module.rule(ipv6) is True
    rule = edited_rule(TRUSTED_NETWORKS=["2600:1f18:4a3:6900::/56", "198.199.88.0/24"])
    assert rule.rule(ipv6) is False
    assert rule.rule(event()) is False  # 198.199.88.17
    assert rule.rule(event(sourceIPAddress="8.8.8.8")) is True
    assert rule.alert_context(event(sourceIPAddress="8.8.8.8"))["overrides"][
        "TRUSTED_NETWORKS"
    ] == ["2600:1f18:4a3:6900::/56", "198.199.88.0/24"]


def test_high_severity_operations_choose_what_is_high(edited_rule):
    rule = edited_rule(HIGH_SEVERITY_OPERATIONS=["GetObject"])
    assert rule.severity(event(eventName="GetObject")) == "HIGH"
    assert rule.severity(event(eventName="DeleteObject")) == "DEFAULT"
    assert rule.severity(event(eventName="GetObject", errorCode="VpceAccessDenied")) == "LOW"


def test_bulk_access_overrides_set_the_threshold_and_window(edited_rule):
    rule = edited_rule(BULK_ACCESS_OPERATIONS=3, BULK_ACCESS_WINDOW_MINUTES=10)
    store = KeyValueStore()
    with mock.patch.object(rule, "increment_counter", store.increment_counter):
        severities = [rule.severity(event()) for _ in range(4)]
        later = rule.severity(event(eventTime="2026-11-20T09:20:00Z"))  # the next 10 minutes
    assert severities == ["DEFAULT", "DEFAULT", "CRITICAL", "CRITICAL"]
    assert later == "DEFAULT"
    overrides = rule.alert_context(event())["overrides"]
    assert (overrides["BULK_ACCESS_OPERATIONS"], overrides["BULK_ACCESS_WINDOW_MINUTES"]) == (3, 10)


def test_the_enrichment_in_the_context_stays_bounded_whatever_the_table_names(edited_rule):
    # Alert functions are also called on events that do not match (unit tests, replays).
    table = "t" * 5000
    rule = edited_rule(TRUSTED_LOOKUP_TABLES=[table])
    matched = {table: {"sourceIPAddress": {"cidr": "198.199.88.0/24"}}}
    with mock.patch.object(rule, "increment_counter", KeyValueStore().increment_counter):
        enrichment = rule.alert_context(event(p_enrichment=matched))["sourceIPEnrichment"]
    assert enrichment["trustedLookupTables"] != [table]
    # json_safe's bound: the budget, plus at most one marker per level of nesting.
    assert len(json.dumps(enrichment, separators=(",", ":"))) <= 4096 + 8 * 64


TOR_READ = yaml_test("Tor exit node raises a read to HIGH")["Log"]


@pytest.mark.parametrize(
    ("floor", "operation", "expected"),
    [
        ("LOW", "GetObject", "DEFAULT"),
        ("MEDIUM", "GetObject", "DEFAULT"),
        ("HIGH", "GetObject", "HIGH"),
        ("CRITICAL", "GetObject", "CRITICAL"),
        ("HIGH", "DeleteObject", "HIGH"),
        ("CRITICAL", "DeleteObject", "CRITICAL"),
    ],
)
def test_the_anonymised_floor_raises_only_what_ranks_below_it(
    edited_rule, floor, operation, expected
):
    # DEFAULT is the YAML's Medium: a MEDIUM floor leaves it as it is.
    rule = edited_rule(ANONYMISED_FLOOR=floor)
    with mock.patch.object(rule, "increment_counter", KeyValueStore().increment_counter):
        assert rule.severity(PantherEvent({**TOR_READ, "eventName": operation})) == expected


def test_trusted_lookup_tables_trust_what_panther_matched_in_them(edited_rule, rule_module):
    matched = {"corp_egress": {"sourceIPAddress": {"cidr": "198.199.88.0/24"}}}
    other = {"partner_ranges": {"sourceIPAddress": [{"cidr": "198.199.88.0/24"}]}}
    rule = edited_rule(TRUSTED_LOOKUP_TABLES=["corp_egress"])
    assert rule_module.rule(event(p_enrichment=matched)) is True
    assert rule.rule(event(p_enrichment=matched)) is False
    assert rule.rule(event(p_enrichment=other)) is True
    assert rule.rule(event()) is True
    assert rule.alert_context(event())["overrides"]["TRUSTED_LOOKUP_TABLES"] == ["corp_egress"]


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ({"TRUSTED_NETWORKS": ["10.0.0.0/8", "corp-vpn"]}, "'corp-vpn'"),
        ({"TRUSTED_NETWORKS": ["2600:1f18::/129"]}, "'2600:1f18::/129'"),
        ({"S3_DATA_ACCESS_OPERATIONS": ["GetObject", ""]}, "S3_DATA_ACCESS_OPERATIONS: ''"),
        (
            {"HIGH_SEVERITY_OPERATIONS": ["DeleteObject "]},
            "HIGH_SEVERITY_OPERATIONS: 'DeleteObject '",
        ),
        ({"TRUSTED_LOOKUP_TABLES": ["corp_egress", ""]}, "TRUSTED_LOOKUP_TABLES: ''"),
        ({"TRUSTED_LOOKUP_TABLES": "corp_egress"}, "must be a list of table names"),
        ({"BULK_ACCESS_OPERATIONS": 0}, "BULK_ACCESS_OPERATIONS must be a whole number"),
        ({"BULK_ACCESS_OPERATIONS": "100"}, "got '100'"),
        ({"BULK_ACCESS_OPERATIONS": True}, "got True"),
        ({"BULK_ACCESS_OPERATIONS": 10**9 + 1}, "from 1 to 1000000000, got 1000000001"),
        ({"BULK_ACCESS_WINDOW_MINUTES": 1441}, "from 1 to 1440, got 1441"),
        ({"BULK_ACCESS_WINDOW_MINUTES": 7.5}, "got 7.5"),
    ],
    ids=[
        "cidr-name",
        "cidr-prefix",
        "empty-operation",
        "padded-operation",
        "empty-table",
        "table-not-a-list",
        "zero-operations",
        "operations-as-text",
        "operations-as-bool",
        "operations-over-a-billion",
        "window-over-a-day",
        "window-fraction",
    ],
)
def test_a_malformed_override_fails_at_import_naming_the_entry(edited_rule, assignment, named):
    with pytest.raises(ValueError, match=MALFORMED_OVERRIDE) as error:
        edited_rule(**assignment)
    assert named in str(error.value)


def test_panther_analysis_tool_reports_a_malformed_cidr(tmp_path):
    repo = tmp_path / "repo"
    for folder in ("rules", "global_helpers", "packs"):
        shutil.copytree(REPO_ROOT / folder, repo / folder)
    edited = rule_source_with(tmp_path, TRUSTED_NETWORKS=["corp-vpn"])
    shutil.copy(edited, repo / "rules" / RULE_FILE.name)
    done = subprocess.run(
        [pat(), "--skip-version-check", "test", "--path", "."],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "'corp-vpn' is not a valid CIDR" in done.stdout + done.stderr


def pat():
    return str(Path(sys.executable).with_name("panther_analysis_tool"))
