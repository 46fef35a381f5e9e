"""Matches grouped into alerts as Panther groups them: rule + dedup string within the period."""

import pytest
from repo import REPO_ROOT
from test_replay_support import (
    EXTERNAL_DELETE,
    alerts,
    at_minute,
    external_get,
    log_of,
    replay,
    scratch_repository,
    write_jsonl,
)

from detection_replay.rules import load_rules


@pytest.fixture(scope="module")
def rule_set():
    with load_rules(REPO_ROOT) as loaded:
        yield loaded


def replay_records(tmp_path, rule_set, records):
    return alerts(replay(rule_set, write_jsonl(tmp_path / "events.jsonl", records)))


@pytest.mark.parametrize(
    ("minutes", "alert_sizes"),
    [
        pytest.param([0, 59], [2], id="59 minutes apart: one alert"),
        pytest.param([0, 60], [1, 1], id="exactly the period apart: two alerts"),
        pytest.param([0, 61], [1, 1], id="61 minutes apart: two alerts"),
        pytest.param([0, 30, 59, 61, 90], [3, 2], id="window anchored at the first event"),
        pytest.param([0, 61, 62, 200], [1, 2, 1], id="three windows"),
    ],
)
def test_dedup_windows_follow_the_rules_period_on_event_time(
    tmp_path, rule_set, minutes, alert_sizes
):
    found = replay_records(tmp_path, rule_set, [external_get(m) for m in minutes])
    assert [alert.events for alert in found] == alert_sizes


def test_an_alert_records_its_first_and_last_event_time(tmp_path, rule_set):
    (alert,) = replay_records(tmp_path, rule_set, [external_get(m) for m in (5, 20, 45)])
    assert (alert.as_dict()["first_seen"], alert.as_dict()["last_seen"]) == (
        at_minute(5),
        at_minute(45),
    )


def test_out_of_order_events_within_the_window_join_and_widen_it(tmp_path, rule_set):
    # A later file holding earlier events: they still belong to the open alert.
    (alert,) = replay_records(tmp_path, rule_set, [external_get(m) for m in (30, 40, 0)])
    assert alert.events == 3
    assert alert.as_dict()["first_seen"] == at_minute(0)
    assert alert.as_dict()["last_seen"] == at_minute(40)


def test_different_dedup_strings_make_different_alerts(tmp_path, rule_set):
    records = [external_get(0), external_get(1, sourceIPAddress="45.33.32.156"), external_get(2)]
    found = replay_records(tmp_path, rule_set, records)
    assert [alert.events for alert in found] == [2, 1]


def test_an_escalation_opens_an_alert_of_its_own(tmp_path, rule_set):
    delete = log_of(EXTERNAL_DELETE, eventTime=at_minute(10), sourceIPAddress="198.199.88.17")
    denied = external_get(20, errorCode="VpceAccessDenied")
    records = [external_get(0), delete, external_get(15), denied]
    found = replay_records(tmp_path, rule_set, records)
    assert [(a.severity, a.events, a.alert_context["eventName"]) for a in found] == [
        ("MEDIUM", 2, "GetObject"),
        ("HIGH", 1, "DeleteObject"),
        ("LOW", 1, "GetObject"),
    ]
    assert found[1].title.startswith("S3 DeleteObject ")


def test_the_replay_keeps_the_first_seen_baseline_on_the_events_clock(tmp_path, rule_set):
    # Replayed years later, a network unused for more than FIRST_SEEN_DAYS is new again.
    day = 24 * 60
    records = [external_get(0), external_get(29 * day), external_get(60 * day)]
    found = replay_records(tmp_path, rule_set, records)
    histories = [alert.alert_context["addressHistory"] for alert in found]
    assert [h["status"] for h in histories] == ["new", "seen", "new"]
    assert histories[1]["firstSeen"] == at_minute(0)
    assert [" from new external IP " in alert.title for alert in found] == [True, False, True]
    assert rule_set.store.calls == 6  # a read and a write each: new, refreshed a day on, new


@pytest.mark.parametrize(
    ("record", "severity"),
    [
        pytest.param(external_get(0), "MEDIUM", id="DEFAULT resolves to the YAML severity"),
        pytest.param(external_get(0, errorCode="VpceAccessDenied"), "LOW", id="denied is LOW"),
        pytest.param(log_of(EXTERNAL_DELETE, eventTime=at_minute(0)), "HIGH", id="delete HIGH"),
    ],
)
def test_severity_is_the_rules_dynamic_severity(tmp_path, rule_set, record, severity):
    (alert,) = replay_records(tmp_path, rule_set, [record])
    assert alert.severity == severity


PLAIN_RULE = """
def rule(event):
    return event.get("eventName") == "GetObject"
"""


@pytest.mark.parametrize(
    ("extra_yaml", "minutes", "alert_sizes"),
    [
        pytest.param("", [0, 59, 61], [2, 1], id="default threshold 1"),
        pytest.param("Threshold: 2\n", [0, 59, 61], [2], id="threshold 2 drops the lone match"),
    ],
)
def test_threshold_and_default_title_follow_the_yaml(tmp_path, extra_yaml, minutes, alert_sizes):
    repository = scratch_repository(tmp_path, PLAIN_RULE, extra_yaml)
    path = write_jsonl(tmp_path / "events.jsonl", [external_get(m) for m in minutes])
    with load_rules(repository) as rule_set:
        found = alerts(replay(rule_set, path))
    assert [alert.events for alert in found] == alert_sizes
    # No title() or dedup(): the title is the rule's name and every match shares one dedup.
    assert {alert.title for alert in found} == {"Scratch.Rule"}
    assert {alert.severity for alert in found} == {"LOW"}
