"""Each override takes effect when a user edits its assignment, and a bad value fails loudly.

The settings every VPC endpoint rule shares live in the global helper vpce_family: edited there,
they change both S3 rules at once. The per-event rule's own overrides live in its file.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from panther_core.enriched_event import PantherEvent
from repo import FAMILY_FILE, REPO_ROOT, rule_source_with, yaml_test

from detection_replay.kv_store import KeyValueStore

IPV6_TEST = "Public IPv6 address of a dual-stack VPC"
MALFORMED_OVERRIDE = r"is not a valid (CIDR|event name|table name)|must be (a whole number|a list)"
GET = yaml_test("Real-shaped GetObject from a public IPv4 address, no requestParameters")["Log"]


def event(**changes):
    return PantherEvent({**GET, **changes})


def test_s3_data_access_operations_narrows_what_matches(edited_family):
    for rule in edited_family(S3_DATA_ACCESS_OPERATIONS=["GetObject"]):
        assert rule.rule(event(eventName="GetObject")) is True
        assert rule.rule(event(eventName="PutObject")) is False
        overrides = rule.alert_context(event())["overrides"]
        assert overrides["S3_DATA_ACCESS_OPERATIONS"] == ["GetObject"]


def test_s3_data_access_operations_can_add_operations(edited_family, rule_module):
    assert rule_module.rule(event(eventName="HeadObject")) is False
    for rule in edited_family(S3_DATA_ACCESS_OPERATIONS=["GetObject", "HeadObject"]):
        assert rule.rule(event(eventName="HeadObject")) is True


def test_trusted_networks_silence_the_users_own_ranges(edited_family, rule_module):
    ipv6 = PantherEvent(yaml_test(IPV6_TEST)["Log"])
    assert rule_module.rule(ipv6) is True
    for rule in edited_family(TRUSTED_NETWORKS=["2600:1f18:4a3:6900::/56", "198.199.88.0/24"]):
        assert rule.rule(ipv6) is False
        assert rule.rule(event()) is False  # 198.199.88.17
        assert rule.rule(event(sourceIPAddress="8.8.8.8")) is True
        assert rule.alert_context(event(sourceIPAddress="8.8.8.8"))["overrides"][
            "TRUSTED_NETWORKS"
        ] == ["2600:1f18:4a3:6900::/56", "198.199.88.0/24"]


def test_editing_the_family_leaves_the_helper_other_tests_import_as_it_was(edited_family):
    import vpce_family

    edited_family(TRUSTED_NETWORKS=["198.199.88.0/24"])
    assert vpce_family.TRUSTED_NETWORKS == []


def test_high_severity_operations_choose_what_is_high(edited_rule):
    rule = edited_rule(HIGH_SEVERITY_OPERATIONS=["GetObject"])
    assert rule.severity(event(eventName="GetObject")) == "HIGH"
    assert rule.severity(event(eventName="DeleteObject")) == "DEFAULT"
    assert rule.severity(event(eventName="GetObject", errorCode="VpceAccessDenied")) == "LOW"


def test_first_seen_days_sets_how_long_a_network_is_remembered(edited_rule):
    rule = edited_rule(FIRST_SEEN_DAYS=7)
    store = KeyValueStore()
    with mock.patch.multiple(
        rule, get_string_set=store.get_string_set, put_string_set=store.put_string_set
    ):
        store.set_clock(1_795_166_043)
        assert rule.alert_context(event())["addressHistory"]["status"] == "new"
        store.set_clock(1_795_166_043 + 6 * 86400)
        later = event(eventTime="2026-11-26T09:14:03Z")
        assert rule.alert_context(later)["addressHistory"]["status"] == "seen"
        store.set_clock(1_795_166_043 + 14 * 86400)
        much_later = event(eventTime="2026-12-04T09:14:03Z")
        assert rule.alert_context(much_later)["addressHistory"]["status"] == "new"
    assert rule.alert_context(event())["overrides"]["FIRST_SEEN_DAYS"] == 7


def test_the_enrichment_in_the_context_stays_bounded_whatever_the_table_names(edited_family):
    # Alert functions are also called on events that do not match (unit tests, replays).
    table = "t" * 5000
    matched = {table: {"sourceIPAddress": {"cidr": "198.199.88.0/24"}}}
    for rule in edited_family(TRUSTED_LOOKUP_TABLES=[table]):
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
    assert rule.severity(PantherEvent({**TOR_READ, "eventName": operation})) == expected


def test_trusted_lookup_tables_trust_what_panther_matched_in_them(edited_family, rule_module):
    matched = {"corp_egress": {"sourceIPAddress": {"cidr": "198.199.88.0/24"}}}
    other = {"partner_ranges": {"sourceIPAddress": [{"cidr": "198.199.88.0/24"}]}}
    assert rule_module.rule(event(p_enrichment=matched)) is True
    for rule in edited_family(TRUSTED_LOOKUP_TABLES=["corp_egress"]):
        assert rule.rule(event(p_enrichment=matched)) is False
        assert rule.rule(event(p_enrichment=other)) is True
        assert rule.rule(event()) is True
        overrides = rule.alert_context(event())["overrides"]
        assert overrides["TRUSTED_LOOKUP_TABLES"] == ["corp_egress"]


FAMILY_SETTINGS = {"TRUSTED_NETWORKS", "S3_DATA_ACCESS_OPERATIONS", "TRUSTED_LOOKUP_TABLES"}


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ({"TRUSTED_NETWORKS": ["10.0.0.0/8", "corp-vpn"]}, "'corp-vpn'"),
        ({"TRUSTED_NETWORKS": ["2600:1f18::/129"]}, "'2600:1f18::/129'"),
        ({"S3_DATA_ACCESS_OPERATIONS": ["GetObject", ""]}, "S3_DATA_ACCESS_OPERATIONS: ''"),
        ({"TRUSTED_LOOKUP_TABLES": ["corp_egress", ""]}, "TRUSTED_LOOKUP_TABLES: ''"),
        ({"TRUSTED_LOOKUP_TABLES": "corp_egress"}, "must be a list of table names"),
        (
            {"HIGH_SEVERITY_OPERATIONS": ["DeleteObject "]},
            "HIGH_SEVERITY_OPERATIONS: 'DeleteObject '",
        ),
        ({"FIRST_SEEN_DAYS": 0}, "FIRST_SEEN_DAYS must be a whole number"),
        ({"FIRST_SEEN_DAYS": "30"}, "got '30'"),
        ({"FIRST_SEEN_DAYS": True}, "got True"),
        ({"FIRST_SEEN_DAYS": 366}, "from 1 to 365, got 366"),
        ({"FIRST_SEEN_DAYS": 7.5}, "got 7.5"),
    ],
    ids=[
        "cidr-name",
        "cidr-prefix",
        "empty-operation",
        "empty-table",
        "table-not-a-list",
        "padded-operation",
        "zero-days",
        "days-as-text",
        "days-as-bool",
        "days-over-a-year",
        "days-fraction",
    ],
)
def test_a_malformed_override_fails_at_import_naming_the_entry(
    edited_rule, edited_family, assignment, named
):
    load = edited_family if set(assignment) <= FAMILY_SETTINGS else edited_rule
    with pytest.raises(ValueError, match=MALFORMED_OVERRIDE) as error:
        load(**assignment)
    assert named in str(error.value)


def test_panther_analysis_tool_reports_a_malformed_cidr(tmp_path):
    repo = tmp_path / "repo"
    for folder in ("rules", "global_helpers", "packs"):
        shutil.copytree(REPO_ROOT / folder, repo / folder)
    edited = rule_source_with(tmp_path, FAMILY_FILE, TRUSTED_NETWORKS=["corp-vpn"])
    shutil.copy(edited, repo / "global_helpers" / FAMILY_FILE.name)
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
