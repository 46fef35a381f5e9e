"""Shared builders for the replay tests: realistic CloudTrail records and files holding them.

Not a test module itself (it defines no tests); the replay test modules import from it.
"""

import copy
import functools
import gzip
import json
import shutil
from datetime import UTC, datetime, timedelta

from repo import REPO_ROOT, yaml_tests

from detection_replay.cli import main
from detection_replay.engine import Replay
from detection_replay.inputs import discover

START = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
# A real-shaped S3 network activity record from a public address: the rule matches it.
EXTERNAL_GET = "Real-shaped GetObject from a public IPv4 address, no requestParameters"
EXTERNAL_DELETE = "DeleteObject from a public address is high severity"
MANAGEMENT = "Management event from a public address"
# The package's per-event rule and its bulk-access rule decide alike: every matching record
# is a match of each.
RULES_PER_MATCH = 2
# What the replay of the sample day reports (tests/test_samples.py checks each alert).
SAMPLE_RECORDS, SAMPLE_ALERTS, SAMPLE_INPUTS = 6_594, 15, 334


@functools.cache
def yaml_logs():
    """The rule's YAML test logs by test name, loaded once (the tool's loader is not free)."""
    return {test["Name"]: test["Log"] for test in yaml_tests()}


def log_of(test_name, **overrides):
    """A YAML test log as a trail would deliver it (no p_log_type), with fields replaced."""
    record = copy.deepcopy(yaml_logs()[test_name])
    record.pop("p_log_type", None)
    record.update(overrides)
    return record


def at_minute(minutes):
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def external_get(minute=0, **overrides):
    return log_of(EXTERNAL_GET, **{"eventTime": at_minute(minute), **overrides})


def private_get(minute=0):
    return external_get(minute, sourceIPAddress="10.0.141.54")


def management(minute=0):
    return log_of(MANAGEMENT, eventTime=at_minute(minute))


def mixed_records():
    """Two matching records (one alert), one private-address and one management record."""
    return [external_get(0), private_get(1), management(2), external_get(3)]


def _write(path, data, compress):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_jsonl(path, records, compress=False):
    text = "".join(json.dumps(record) + "\n" for record in records)
    return _write(path, text.encode(), compress)


def write_delivery_object(path, records, compress=False, indent=None):
    """A CloudTrail delivery object {"Records": [...]}, on one line as a trail writes it."""
    return _write(path, json.dumps({"Records": records}, indent=indent).encode(), compress)


def write_array(path, records, compress=False, indent=None):
    return _write(path, json.dumps(records, indent=indent).encode(), compress)


def write_lines(path, lines, compress=False):
    return _write(path, "".join(f"{line}\n" for line in lines).encode(), compress)


def replay(rule_set, *inputs, **options):
    return Replay(rule_set, **options).run(discover([str(path) for path in inputs]))


def rule_report(document, rule_id="AWS.CloudTrail.VPCE.S3ExternalIP"):
    """One rule's part of a --format json document (the per-event rule's by default)."""
    (found,) = [rule for rule in document["rules"] if rule["rule_id"] == rule_id]
    return found


def alerts(replay_result):
    return [
        alert for rule in replay_result.rules for alert in replay_result.grouper.alerts_of(rule)
    ]


def assert_balanced(replay_result):
    totals = replay_result.totals
    assert totals.records_read == totals.evaluated + replay_result.malformed.count


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of the command run in this process."""
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def scratch_repository(tmp_path, rule_source=None, rule_yaml_extra=""):
    """A copy of this repository's rules and helpers, or a throwaway rule in their place."""
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "global_helpers", root / "global_helpers")
    rules = root / "rules"
    if rule_source is None:
        shutil.copytree(REPO_ROOT / "rules", rules)
        return root
    rules.mkdir(parents=True)
    (rules / "scratch_rule.py").write_text(rule_source)
    (rules / "scratch_rule.yml").write_text(
        "AnalysisType: rule\n"
        "Filename: scratch_rule.py\n"
        "RuleID: Scratch.Rule\n"
        "Enabled: true\n"
        "LogTypes:\n  - AWS.CloudTrail\n"
        "Severity: Low\n"
        "DedupPeriodMinutes: 60\n" + rule_yaml_extra
    )
    return root


def truncated_json(path):
    """A pretty-printed delivery object cut short: not a JSON document at all."""
    path.write_text(json.dumps({"Records": mixed_records()}, indent=2)[:-40])
    return path
