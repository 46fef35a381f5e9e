"""Thresholds as Panther counts them: distinct unique() values when the rule defines unique(),
events otherwise, within each dedup group (rule + dedup string, DedupPeriodMinutes from its
first event)."""

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_profiles import fuzz_settings
from replay_repository import (
    counted,
    distinct,
    rule_document,
    standard_repository,
    write_records,
)
from test_replay_support import run_cli

from detection_replay import alerts as alerts_module
from detection_replay import replay_events
from detection_replay.alerts import DistinctValues
from detection_replay.api import EventNotJSON


def replayed(capsys, tmp_path, records, *options, repository=None):
    """The --format json document of the command run over `records`."""
    repository = repository or standard_repository(tmp_path / "repo")
    events = write_records(tmp_path / "events.jsonl", records)
    status, out, err = run_cli(capsys, "--path", repository, "--format", "json", *options, events)
    assert status == 0, err
    return json.loads(out)


def shapes(rule):
    return [(alert["events"], alert["unique_values"]) for alert in rule["alerts"]]


THRESHOLD_CASES = {
    # Test.Distinct: Threshold 3 on distinct unique() values, 10-minute windows.
    "three distinct values: one alert": (
        [distinct(0, "a"), distinct(1, "b"), distinct(2, "c")],
        [(3, 3)],
    ),
    "one value five times: no alert (events are not values)": (
        [distinct(m, "a") for m in range(5)],
        [],
    ),
    "repeated values count once": (
        [distinct(0, "a"), distinct(1, "a"), distinct(2, "b"), distinct(3, "b"), distinct(4, "c")],
        [(5, 3)],
    ),
    "None adds no value": (
        [distinct(0, "a"), distinct(1, "b"), distinct(2, None), distinct(3, None)],
        [],
    ),
    "an empty string adds no value": (
        [distinct(0, "a"), distinct(1, "b"), distinct(2, ""), distinct(3, "")],
        [],
    ),
    "valueless events still join the alert once it is reached": (
        [distinct(0, "a"), distinct(1, None), distinct(2, "b"), distinct(3, "c")],
        [(4, 3)],
    ),
    "a unique() that raises adds no value": (
        [distinct(0, "a"), distinct(1, "b"), distinct(2, "raise"), distinct(3, "raise")],
        [],
    ),
    "a unique() that returns no string adds no value": (
        [distinct(0, "a"), distinct(1, "b"), distinct(2, 7), distinct(3, 8)],
        [],
    ),
    "values are counted per dedup string": (
        [
            *(distinct(0, "a", "g1"), distinct(1, "b", "g1"), distinct(2, "c", "g2")),
            *(distinct(3, "c", "g1"), distinct(4, "d", "g2")),
        ],
        [(3, 3)],
    ),
    "a value at the window's last second still counts": (
        [distinct(0, "a"), distinct(5, "b"), distinct(9 + 59 / 60, "c")],
        [(3, 3)],
    ),
    "a value exactly one period after the first opens a new window": (
        [distinct(0, "a"), distinct(5, "b"), *(distinct(m, "c") for m in (10, 11, 12))],
        [],
    ),
    "each window counts from nothing": (
        [
            *(distinct(0, "a"), distinct(1, "b"), distinct(2, "c")),
            *(distinct(10, "a"), distinct(11, "b"), distinct(12, "b")),
        ],
        [(3, 3)],
    ),
}


@pytest.mark.parametrize(
    ("records", "expected"), THRESHOLD_CASES.values(), ids=THRESHOLD_CASES.keys()
)
def test_a_unique_rules_threshold_counts_distinct_values(capsys, tmp_path, records, expected):
    document = replayed(capsys, tmp_path, records)
    rule = rule_document(document, "Test.Distinct")
    assert shapes(rule) == expected
    assert (rule["unique"], rule["alert_count"], document["alert_count"]) == (
        True,
        len(expected),
        len(expected),
    )


ERROR_CASES = {
    "raised": ("raise", "ValueError: no value for this event"),
    "returned an int": (7, "FunctionReturnTypeError: detection [Test.Distinct] function [unique]"),
}


@pytest.mark.parametrize(("value", "error"), ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_a_failing_unique_is_a_rule_error_and_the_match_still_counts(
    capsys, tmp_path, value, error
):
    records = [distinct(0, "a"), distinct(1, value), distinct(2, "b"), distinct(3, "c")]
    rule = rule_document(replayed(capsys, tmp_path, records), "Test.Distinct")
    assert rule["errors"] == {"unique": 1}
    assert rule["error_examples"][0]["error"].startswith(error)
    assert rule["error_examples"][0]["where"].endswith("line 2")
    assert shapes(rule) == [(4, 3)]


COUNTED_CASES = {
    "three events: one alert, no unique() count": ([counted(m) for m in range(3)], [(3, None)]),
    "two events: below the threshold": ([counted(0), counted(1)], []),
    "three events across the window edge: none": ([counted(0), counted(9), counted(10)], []),
}


@pytest.mark.parametrize(("records", "expected"), COUNTED_CASES.values(), ids=COUNTED_CASES.keys())
def test_without_unique_the_threshold_counts_events(capsys, tmp_path, records, expected):
    rule = rule_document(replayed(capsys, tmp_path, records), "Test.Counted")
    assert (rule["unique"], shapes(rule)) == (False, expected)


def test_the_stored_values_are_bounded_and_the_count_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(alerts_module, "UNIQUE_VALUES_KEPT", 4)
    records = [distinct(m, value) for m, value in enumerate("abcdefa")]
    (alert,) = rule_document(replayed(capsys, tmp_path, records), "Test.Distinct")["alerts"]
    assert (alert["events"], alert["unique_values"], alert["unique_values_capped"]) == (7, 4, True)


def test_the_text_summary_shows_the_distinct_count(capsys, tmp_path):
    repository = standard_repository(tmp_path / "repo")
    events = write_records(tmp_path / "e.jsonl", [distinct(m, v) for m, v in enumerate("abca")])
    status, out, _ = run_cli(capsys, "--path", repository, events)
    assert status == 0
    assert "threshold 3 distinct unique() values" in out
    assert "events 4, distinct unique() values 3, first seen" in out


@fuzz_settings()
@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "b", "c", "d", "e", "f"]))),
    kept=st.integers(min_value=1, max_value=8),
)
def test_distinct_values_count_exactly_up_to_what_they_keep(values, kept):
    counted_values = DistinctValues(kept=kept)
    for value in values:
        counted_values.add(value)
        assert len(counted_values.values) <= kept
    truth = {value for value in values if value}
    assert counted_values.count == min(len(truth), kept)
    assert counted_values.capped == (len(truth) > kept)
    counted_values.close()
    assert counted_values.values is None
    assert counted_values.count == min(len(truth), kept)


# --- the Python entry point -----------------------------------------------------------------


def distinct_reads(count, duplicates=0):
    """`count` events with distinct values, then `duplicates` repeating the first values."""
    values = [f"object-{n}" for n in range(count)] + [f"object-{n}" for n in range(duplicates)]
    return [distinct(n / 60, value) for n, value in enumerate(values)]


ENTRY_POINT_CASES = {
    "99 distinct values: nothing": (distinct_reads(99), []),
    "100 distinct values: one alert": (distinct_reads(100), [(100, 100)]),
    "99 distinct values read twice: nothing": (distinct_reads(99, duplicates=99), []),
    "100 distinct values and duplicates: one alert": (
        distinct_reads(100, duplicates=50),
        [(150, 100)],
    ),
}


@pytest.fixture(scope="module")
def threshold_100_repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("threshold-100") / "repo"
    return standard_repository(root, **{"Test.Distinct": {"Threshold": 100}})


@pytest.mark.parametrize(
    ("events", "expected"), ENTRY_POINT_CASES.values(), ids=ENTRY_POINT_CASES.keys()
)
def test_replay_events_returns_the_report_document(threshold_100_repository, events, expected):
    document = replay_events(threshold_100_repository, events)
    assert shapes(rule_document(document, "Test.Distinct")) == expected
    assert (document["records_read"], document["alert_count"]) == (len(events), len(expected))


def test_replay_events_gives_the_same_report_with_two_jobs(threshold_100_repository):
    events = distinct_reads(100, duplicates=10) + [counted(m) for m in range(3)]
    one, two = (replay_events(threshold_100_repository, events, jobs=jobs) for jobs in (1, 2))
    for document in (one, two):
        document.pop("seconds")
        document.pop("events_per_second")
    assert one == two
    assert one["alert_count"] == 2


MALFORMED_EVENT_CASES = {
    "not an object": "not a record",
    "no eventTime": {"eventName": "Distinct", "eventSource": "secretsmanager.amazonaws.com"},
    "an eventTime that is no time": distinct(0, "a") | {"eventTime": "yesterday"},
}


@pytest.mark.parametrize("event", MALFORMED_EVENT_CASES.values(), ids=MALFORMED_EVENT_CASES.keys())
def test_replay_events_counts_bad_events_as_the_command_does(threshold_100_repository, event):
    document = replay_events(threshold_100_repository, [event, counted(0)])
    assert (document["records_read"], document["malformed"], document["evaluated"]) == (2, 1, 1)
    assert document["malformed_examples"][0]["where"] == "events line 1"


def test_replay_events_refuses_an_event_that_is_not_json(threshold_100_repository):
    with pytest.raises(EventNotJSON, match="event 2 cannot be written as JSON"):
        replay_events(threshold_100_repository, [counted(0), {"eventTime": object()}])


# --- panther-analysis's own rules ------------------------------------------------------------

PANTHER_ANALYSIS = os.environ.get("PANTHER_ANALYSIS_CHECKOUT")
needs_panther_analysis = pytest.mark.skipif(
    not PANTHER_ANALYSIS,
    reason="set PANTHER_ANALYSIS_CHECKOUT to a checkout of panther-labs/panther-analysis",
)
CLOUDTRAIL_RULES = Path("rules", "aws_cloudtrail_rules")
SECRETS = "aws_secretsmanager_retrieve_secrets_multiregion"
SSH_KEYS = "aws_ec2_multi_instance_connect"


@pytest.fixture(scope="module")
def panther_analysis_subset(tmp_path_factory):
    """The checkout's helpers and data models with the two rules, as a fork would hold them.

    A subset, copied at test time outside the project: the whole checkout also needs its
    Pipfile's packages (pycountry, policyuniverse) for rules these tests are not about.
    """
    checkout = Path(PANTHER_ANALYSIS)
    root = tmp_path_factory.mktemp("panther-analysis")
    for directory in ("global_helpers", "data_models"):
        shutil.copytree(checkout / directory, root / directory)
    (root / "rules").mkdir()
    for stem in (SECRETS, SSH_KEYS):
        for suffix in (".py", ".yml"):
            shutil.copy(checkout / CLOUDTRAIL_RULES / f"{stem}{suffix}", root / "rules")
    return root


def yaml_test_log(root, stem):
    """The rule's first true YAML test log, as a trail delivers it (no p_ fields)."""
    spec = yaml.safe_load((root / "rules" / f"{stem}.yml").read_text())
    log = next(test["Log"] for test in spec["Tests"] if test["ExpectedResult"])
    return {key: value for key, value in log.items() if not key.startswith("p_")}


def calls(root, stem, changes):
    """One call per entry of `changes` (fields to set), a minute apart."""
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    records = []
    for minute, fields in enumerate(changes):
        event = {**yaml_test_log(root, stem), **fields}
        event["eventTime"] = (start + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
        records.append(event)
    return records


def instance(instance_id):
    return {
        "requestParameters": {
            "instanceId": instance_id,
            "instanceOSUser": "ec2-user",
            "sSHPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStolenKey",
        }
    }


REGIONS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1"]
PANTHER_ANALYSIS_CASES = {
    "Secrets Manager: five calls in one region: no alert": (
        SECRETS,
        [{"awsRegion": "us-east-1"}] * 5,
        [],
    ),
    "Secrets Manager: four regions: no alert": (
        SECRETS,
        [{"awsRegion": region} for region in REGIONS[:4]] * 2,
        [],
    ),
    "Secrets Manager: five regions: one alert": (
        SECRETS,
        [{"awsRegion": region} for region in REGIONS],
        [(5, 5)],
    ),
    "EC2 Instance Connect: one key to one instance four times: no alert": (
        SSH_KEYS,
        [instance("i-0a1b2c3d4e5f60718")] * 4,
        [],
    ),
    "EC2 Instance Connect: one key to two instances: one alert": (
        SSH_KEYS,
        [*[instance("i-0a1b2c3d4e5f60718")] * 2, instance("i-09f8e7d6c5b4a3928")],
        [(3, 2)],
    ),
}


@needs_panther_analysis
@pytest.mark.parametrize(
    ("stem", "changes", "expected"),
    PANTHER_ANALYSIS_CASES.values(),
    ids=PANTHER_ANALYSIS_CASES.keys(),
)
def test_panther_analysis_unique_rules(panther_analysis_subset, stem, changes, expected):
    document = replay_events(panther_analysis_subset, calls(panther_analysis_subset, stem, changes))
    (rule,) = [rule for rule in document["rules"] if rule["matched"]]
    assert (rule["unique"], rule["errors"]) == (True, {})
    assert shapes(rule) == expected
