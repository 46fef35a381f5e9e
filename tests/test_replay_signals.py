"""Rules with CreateAlert: false raise signals, never alerts: listed apart, grouped like alerts."""

import json

import pytest
from replay_repository import (
    counted,
    rule_document,
    signal,
    standard_repository,
    write_records,
)
from test_replay_support import run_cli

from detection_replay.cli import EXIT_ALERTS, EXIT_OK


def run(capsys, tmp_path, records, *options):
    """The command over `records`, with the rules of replay_repository.standard_repository."""
    repository = standard_repository(tmp_path / "repo")
    events = write_records(tmp_path / "events.jsonl", records)
    return run_cli(capsys, "--path", repository, *options, events)


def groups(rule):
    return [(group["dedup"], group["events"], group["kind"]) for group in rule["signals"]]


SIGNAL_CASES = {
    "signals alone: no alert, --fail-on-alert passes": (
        [signal(0), signal(1), signal(2, "other")],
        [("one group", 2, "signal"), ("other", 1, "signal")],
        0,
    ),
    "the Threshold does not hold signals back": (
        [signal(0)],
        [("one group", 1, "signal")],
        0,
    ),
    "a signal one period after the first opens a new group": (
        [signal(0), signal(9), signal(10)],
        [("one group", 2, "signal"), ("one group", 1, "signal")],
        0,
    ),
    "signals beside an alert: only the alert counts": (
        [signal(0), *(counted(m) for m in range(3))],
        [("one group", 1, "signal")],
        1,
    ),
}


@pytest.mark.parametrize(
    ("records", "expected_groups", "alert_count"),
    SIGNAL_CASES.values(),
    ids=SIGNAL_CASES.keys(),
)
def test_signals_are_listed_apart_from_alerts(
    capsys, tmp_path, records, expected_groups, alert_count
):
    status, out, err = run(capsys, tmp_path, records, "--format", "json", "--fail-on-alert")
    assert status == (EXIT_ALERTS if alert_count else EXIT_OK), err
    document = json.loads(out)
    rule = rule_document(document, "Test.Signal")
    assert (rule["create_alert"], rule["alerts"], rule["alert_count"]) == (False, [], 0)
    assert groups(rule) == expected_groups
    signal_events = sum(events for _, events, _ in expected_groups)
    assert (rule["signal_count"], rule["signal_groups"]) == (signal_events, len(expected_groups))
    assert (document["alert_count"], document["signal_count"]) == (alert_count, signal_events)
    assert rule_document(document, "Test.Counted")["signals"] == []


def test_a_signal_group_carries_what_an_alert_would(capsys, tmp_path):
    _, out, _ = run(capsys, tmp_path, [signal(0), signal(4)], "--format", "json")
    (group,) = rule_document(json.loads(out), "Test.Signal")["signals"]
    assert group == {
        "rule_id": "Test.Signal",
        "severity": "MEDIUM",
        "title": "signal from one group",
        "dedup": "one group",
        "events": 2,
        "first_seen": "2026-11-20T09:00:00Z",
        "last_seen": "2026-11-20T09:04:00Z",
        "first_event_at": f"{tmp_path / 'events.jsonl'} line 1",
        "alert_context": {},
        "kind": "signal",
        "unique_values": None,
        "unique_values_capped": False,
    }


def test_jsonl_lists_alerts_then_signal_groups_each_with_its_kind(capsys, tmp_path):
    records = [signal(0), signal(1, "other"), *(counted(m) for m in range(3))]
    status, out, _ = run(capsys, tmp_path, records, "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert [(line["rule_id"], line["kind"], line["dedup"]) for line in lines] == [
        ("Test.Counted", "alert", "one group"),
        ("Test.Signal", "signal", "one group"),
        ("Test.Signal", "signal", "other"),
    ]


def test_the_text_summary_shows_signals_apart(capsys, tmp_path):
    records = [signal(0), signal(1), signal(2, "other"), *(counted(m) for m in range(3))]
    status, out, _ = run(capsys, tmp_path, records)
    assert status == 0
    assert (
        "Test.Signal (signals only, CreateAlert: false, severity MEDIUM, dedup 10 min): "
        "3 signal(s) in 2 group(s) from 3 matching event(s)"
    ) in out
    assert "  signal [MEDIUM] signal from other\n" in out
    assert "      dedup other\n" in out
    totals = out[out.index("Totals") :]
    counts = [line.split() for line in totals.splitlines()[1:]]
    assert [row for row in counts if row[0] in ("alerts", "signals")] == [
        ["alerts", "1"],
        ["signals", "3"],
    ]


def test_signals_past_max_alerts_are_counted_not_listed(capsys, tmp_path):
    records = [signal(m, f"group {m}") for m in range(5)]
    _, out, _ = run(capsys, tmp_path, records, "--format", "json", "--max-alerts", "2")
    document = json.loads(out)
    rule = rule_document(document, "Test.Signal")
    assert (len(rule["signals"]), rule["signal_groups"], rule["signal_count"]) == (2, 5, 5)
    assert (document["signals_not_listed"], document["alerts_not_listed"]) == (3, 0)
