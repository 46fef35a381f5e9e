"""Tiny detection repositories written by tests, and records for their rules.

Not a test module: the threshold, signal and diff tests build repositories of a few rules with
it, as a user's fork would hold them (rules/*.py and *.yml, global_helpers/), and replay
records through the real loader and engine.
"""

import json
import textwrap
from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)

# Keyed by event name, so that one file of records can feed every rule of a repository.
DISTINCT_RULE = """
def rule(event):
    return event.get("eventName") == "Distinct"

def unique(event):
    value = event.get("value")
    if value == "raise":
        raise ValueError("no value for this event")
    return value  # None, "", or an int (a type error) as the record says

def dedup(event):
    return event.get("group", "one group")

def title(event):
    return f"distinct values in {event.get('group', 'one group')}"
"""

COUNTED_RULE = """
def rule(event):
    return event.get("eventName") == "Counted"

def dedup(event):
    return event.get("group", "one group")
"""

SIGNAL_RULE = """
def rule(event):
    return event.get("eventName") == "Signal"

def dedup(event):
    return event.get("group", "one group")

def title(event):
    return f"signal from {event.get('group', 'one group')}"
"""


def rule_files(rule_id, source, **settings):
    """(file stem, Python source, YAML text) of one enabled AWS.CloudTrail rule."""
    stem = rule_id.lower().replace(".", "_")
    yaml = {
        "AnalysisType": "rule",
        "Filename": f"{stem}.py",
        "RuleID": rule_id,
        "Enabled": True,
        "LogTypes": ["AWS.CloudTrail"],
        "Severity": "Medium",
        "DedupPeriodMinutes": 10,
        **settings,
    }
    return stem, textwrap.dedent(source), json.dumps(yaml, indent=2)  # JSON is YAML


def write_repository(root, *rules):
    """A repository at `root` holding `rules` (rule_files() tuples); returns root."""
    (root / "global_helpers").mkdir(parents=True, exist_ok=True)
    (root / "rules").mkdir(parents=True, exist_ok=True)
    for stem, source, yaml in rules:
        (root / "rules" / f"{stem}.py").write_text(source)
        (root / "rules" / f"{stem}.yml").write_text(yaml)
    return root


def standard_repository(root, **overrides):
    """Three rules: Test.Distinct (unique(), Threshold 3), Test.Counted (Threshold 3, events)
    and Test.Signal (CreateAlert: false, Threshold 3), all with 10-minute dedup windows.
    `overrides` maps a rule ID to YAML settings replacing its own."""
    rules = {
        "Test.Distinct": (DISTINCT_RULE, {"Threshold": 3}),
        "Test.Counted": (COUNTED_RULE, {"Threshold": 3}),
        "Test.Signal": (SIGNAL_RULE, {"Threshold": 3, "CreateAlert": False}),
    }
    return write_repository(
        root,
        *(
            rule_files(rule_id, source, **{**settings, **overrides.get(rule_id, {})})
            for rule_id, (source, settings) in rules.items()
        ),
    )


def at(minutes):
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(event_name, minute, **fields):
    """A CloudTrail-shaped record at START + `minute` minutes."""
    return {
        "eventVersion": "1.09",
        "eventTime": at(minute),
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userIdentity": {"type": "IAMUser", "userName": "tester", "accountId": "111122223333"},
        "recipientAccountId": "111122223333",
        **fields,
    }


def distinct(minute, value, group="one group"):
    return record("Distinct", minute, value=value, group=group)


def counted(minute, group="one group"):
    return record("Counted", minute, group=group)


def signal(minute, group="one group"):
    return record("Signal", minute, group=group)


def write_records(path, records):
    path.write_text("".join(json.dumps(item) + "\n" for item in records))
    return path


def rule_document(document, rule_id):
    (rule,) = [rule for rule in document["rules"] if rule["rule_id"] == rule_id]
    return rule
