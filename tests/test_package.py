"""The package as Panther receives it: metadata, IDs that clash with nothing, the artifact."""

import csv
import ipaddress
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from repo import BULK_RULE_ID, REPO_ROOT, RULE_ID, load_specs, rule_spec

SEED = REPO_ROOT.parent / "shared" / "seed" / "000_d1f657680c5bba6a.txt"

# Global helpers Panther manages (panther-analysis global_helpers/): an upload replaces by ID.
PANTHER_MANAGED_PREFIXES = ("panther_", "gcp_", "global_filter_", "z_", "crowdstrike_")

SEED_METADATA = {
    "AnalysisType": "rule",
    "Filename": "aws_vpce_s3_external_ip.py",
    "RuleID": "AWS.CloudTrail.VPCE.S3ExternalIP",
    "DisplayName": "S3 Access Via VPC Endpoint From External IP",
    "Enabled": True,
    "LogTypes": ["AWS.CloudTrail"],
    "Severity": "Medium",
    "Tags": [
        "AWS",
        "VPC",
        "S3",
        "Data Exfiltration",
        "CloudTrail",
        "Network Boundary Bridging",
        "Exfiltration Over Alternative Protocol",
    ],
    "Reference": "https://www.wiz.io/blog/aws-vpc-endpoint-cloudtrail",
    "SummaryAttributes": [
        "userIdentity.principalId",
        "sourceIPAddress",
        "eventSource",
        "eventName",
        "requestParameters",
        "resources",
    ],
    "DedupPeriodMinutes": 60,
}


def pat(*args, cwd=REPO_ROOT):
    tool = str(Path(sys.executable).with_name("panther_analysis_tool"))
    return subprocess.run(
        [tool, "--skip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(("key", "value"), SEED_METADATA.items(), ids=list(SEED_METADATA))
def test_metadata_is_the_seeds(key, value):
    assert rule_spec()[key] == value


def test_description_documents_every_override():
    description = rule_spec()["Description"]
    assert description.startswith(
        "Detects S3 data access through VPC endpoints from external/public IP addresses"
    )
    for name in ("S3_DATA_ACCESS_OPERATIONS", "TRUSTED_NETWORKS", "HIGH_SEVERITY_OPERATIONS"):
        assert f"- {name}:" in description


def test_runbook_has_the_seeds_seven_steps():
    steps = rule_spec()["Runbook"].strip().splitlines()
    assert [s.split(".")[0] for s in steps] == [str(n) for n in range(1, 8)]
    assert steps[0] == "1. Identify the principal and the specific S3 objects being accessed"


def test_reports_name_the_tagged_mitre_techniques():
    assert rule_spec()["Reports"] == {"MITRE ATT&CK": ["TA0010:T1048", "TA0005:T1599"]}


def seed_tests():
    text = SEED.read_text()
    block = text[text.index("Tests:") : text.index("Detection logic")]
    decoder = json.JSONDecoder()
    for match in re.finditer(r"- Name: (.*)\nExpectedResult: (\w+)\nLog:\n", block):
        log, _ = decoder.raw_decode(block[match.end() :])
        yield match.group(1), match.group(2) == "true", log


@pytest.mark.skipif(not SEED.exists(), reason="the seed document is not beside this clone")
def test_seed_tests_are_kept_by_name_log_and_result():
    ours = {t["Name"]: t for t in rule_spec()["Tests"]}
    seeds = list(seed_tests())
    assert len(seeds) == 3
    for name, expected, log in seeds:
        kept = ours[name]
        assert kept["ExpectedResult"] is expected
        assert {k: v for k, v in kept["Log"].items() if k != "p_log_type"} == log


def test_helpers_have_ids_of_their_own():
    helpers = load_specs().globals
    assert helpers, "no global helpers found"
    for item in helpers:
        spec = item.analysis_spec
        global_id = spec["GlobalID"]
        assert not global_id.startswith(PANTHER_MANAGED_PREFIXES), global_id
        assert Path(spec["Filename"]).stem == global_id


def test_no_data_model_clashes_with_panthers():
    assert load_specs().data_models == []


def test_pack_holds_the_rule_and_every_helper():
    specs = load_specs()
    (pack,) = specs.packs
    ids = {item.analysis_spec["RuleID"] for item in specs.detections}
    assert {RULE_ID, BULK_RULE_ID} <= ids
    ids |= {item.analysis_spec["GlobalID"] for item in specs.globals}
    ids |= {item.analysis_spec["LookupName"] for item in specs.lookup_tables}
    assert set(pack.analysis_spec["PackDefinition"]["IDs"]) == ids


def test_settings_demand_a_minimum_number_of_tests():
    settings = yaml.safe_load((REPO_ROOT / ".panther_settings.yml").read_text())
    assert settings["minimum_tests"] >= 20


def test_too_few_tests_fail_panther_analysis_tool(tmp_path):
    repo = tmp_path / "repo"
    for folder in ("rules", "global_helpers", "packs"):
        shutil.copytree(REPO_ROOT / folder, repo / folder)
    shutil.copy(REPO_ROOT / ".panther_settings.yml", repo)
    spec_file = repo / "rules" / "aws_vpce_s3_external_ip.yml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["Tests"] = spec["Tests"][:3]
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = pat("test", cwd=repo)
    assert done.returncode != 0
    assert "Insufficient test coverage" in done.stdout


def test_panther_analysis_tool_test_passes():
    done = pat("test")
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"Failed: 0\b", done.stdout)


def test_zip_artifact_holds_the_package_and_nothing_else(tmp_path):
    done = pat("zip", "--path", ".", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names = set()
    for artifact in tmp_path.glob("*.zip"):
        with zipfile.ZipFile(artifact) as archive:
            names |= {Path(n).as_posix().lstrip("./") for n in archive.namelist()}
    expected = {
        "rules/aws_vpce_s3_external_ip.py",
        "rules/aws_vpce_s3_external_ip.yml",
        "rules/aws_vpce_s3_external_ip_bulk_access.py",
        "rules/aws_vpce_s3_external_ip_bulk_access.yml",
        "rules/aws_vpce_access_denied.py",
        "rules/aws_vpce_access_denied.yml",
        "rules/aws_vpce_external_principal.py",
        "rules/aws_vpce_external_principal.yml",
        "rules/aws_vpce_sensitive_api_calls.py",
        "rules/aws_vpce_sensitive_api_calls.yml",
        "rules/aws_vpce_many_secrets_read.py",
        "rules/aws_vpce_many_secrets_read.yml",
        "correlation_rules/aws_vpce_protection_change_and_bulk_access.yml",
        "packs/aws_vpce_s3_external_ip.yml",
        "lookup_tables/trusted_egress_ranges.yml",
        "lookup_tables/trusted_egress_ranges.csv",
    } | {
        f"global_helpers/{item.analysis_spec['GlobalID']}.{ext}"
        for item in load_specs().globals
        for ext in ("py", "yml")
    }
    assert names == expected


def test_the_example_lookup_table_validates_and_its_rows_are_ranges():
    done = pat("test-lookup-table", "--path", "lookup_tables/trusted_egress_ranges.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    (table,) = load_specs().lookup_tables
    spec = table.analysis_spec
    assert spec["LogTypeMap"]["AssociatedLogTypes"] == [
        {"LogType": "AWS.CloudTrail", "Selectors": ["sourceIPAddress"]}
    ]
    schema = yaml.safe_load((REPO_ROOT / "schemas" / "trusted_egress_ranges.yml").read_text())
    assert schema["schema"] == spec["Schema"]
    key = spec["LogTypeMap"]["PrimaryKey"]
    assert key in {field["name"] for field in schema["fields"]}
    with (REPO_ROOT / "lookup_tables" / spec["Filename"]).open(newline="") as rows:
        ranges = [ipaddress.ip_network(row[key]) for row in csv.DictReader(rows)]
    assert ranges
