"""The benchmark runs end to end (a smoke run: it measures, and nothing here judges the timings)."""

import json
import subprocess
import sys

import pytest
from repo import REPO_ROOT

BENCHMARK = REPO_ROOT / "bench" / "benchmark.py"
MIXES = [
    "non-network-activity",
    "S3 network activity, private sources",
    "S3 network activity, public sources",
    "other network activity",
]

MATCHING_EVENTS = ["own account, assumed role, allowed", "other account, redacted, denied"]


@pytest.mark.slow  # about 10 s: `pytest -m "not slow"` leaves it out
def test_quick_benchmark_reports_every_measurement():
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    assert [row["mix"] for row in report["rule_cost"]] == MIXES
    for row in report["rule_cost"]:
        assert row["events"] > 0
        assert row["floor_us"] > 0
        assert row["rule_us"] > 0
        assert row["package_rules"] == 6
        assert row["package_rules_us"] > row["rule_us"]
        assert row["uncached_us"] > 0
    assert [row["event"] for row in report["match_cost"]] == MATCHING_EVENTS
    for row in report["match_cost"]:
        assert 0 < row["constant_us"] < row["rule_us"]
    assert report["replay"]["records"] == report["replay"]["decoded_records"]
    assert report["replay"]["alerts"] == 15  # the sample day's (tests/test_samples.py)
    family = report["family"]
    assert family["records"] > 3_000
    # Routine traffic raises nothing; the incidents planted inside the VPC one alert each.
    assert {rule: found["alerts"] for rule, found in family["ours"].items()} == {
        "AWS.CloudTrail.VPCE.S3ExternalIP": 0,
        "AWS.CloudTrail.VPCE.AccessDenied": 1,
        "AWS.CloudTrail.VPCE.ExternalPrincipal": 2,
        "AWS.CloudTrail.VPCE.SensitiveAPICalls": 1,
        "AWS.CloudTrail.VPCE.ManySecretsRead": 1,
    }
    assert report["replay"]["max_rss_kib"] > 0
    assert report["replay"]["startup_seconds"] > 0
    # Two days of traffic: twice the sample's noise, the incidents only once.
    assert report["scaled"]["records"] > 1.85 * report["replay"]["records"]
    assert report["scaled"]["max_rss_kib"] > 0
    paired = report["scaled"]["paired_speedups"]
    assert len(paired) >= 2
    assert all(speedup > 0 for speedup in paired)
    # Small matching records held between the passes, with one process and with two.
    buffered = report["buffered_matches"]
    assert [row["jobs"] for row in buffered] == [1, 2]
    assert all(row["records"] == 30_000 and row["max_rss_kib"] > 0 for row in buffered)
    assert buffered[0]["matched"] == buffered[1]["matched"] >= 30_000
