"""Alerts do not depend on the order of the inputs; rules' auxiliary functions run once per match.

The replay groups matches after reading every input, in eventTime order, and only then runs
each matching event's title(), dedup(), severity() and alert_context(), through an optional
`before_match(event_time_seconds)` hook (for a key-value store's clock).
"""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from repo import REPO_ROOT
from test_replay_support import (
    alerts,
    external_get,
    management,
    private_get,
    replay,
    scratch_repository,
    write_jsonl,
)

from detection_replay.cli import main as cli_main
from detection_replay.engine import Replay
from detection_replay.inputs import discover
from detection_replay.records import parse_event_time
from detection_replay.rules import load_rules


@pytest.fixture(scope="module")
def rule_set():
    with load_rules(REPO_ROOT) as loaded:
        yield loaded


def summaries(result):
    return [alert.as_dict() for alert in alerts(result)]


def test_four_files_of_one_caller_in_two_regions_give_the_same_alerts_in_any_order(
    tmp_path, rule_set
):
    # The directory walk reads eu-west-1 before us-east-1; time order interleaves them.
    east, west = "us-east-1", "eu-west-1"
    files = {
        f"{west}/a.json": [external_get(50, awsRegion=west)],
        f"{west}/b.json": [external_get(130, awsRegion=west)],
        f"{east}/a.json": [external_get(0, awsRegion=east)],
        f"{east}/b.json": [external_get(100, awsRegion=east)],
    }
    paths = {
        name: write_jsonl(tmp_path / "logs" / name, records) for name, records in files.items()
    }
    walked = replay(rule_set, tmp_path / "logs")
    assert [alert.events for alert in alerts(walked)] == [2, 2]
    for order in (sorted(paths), sorted(paths, reverse=True)):
        assert summaries(replay(rule_set, *(paths[name] for name in order))) == summaries(walked)


def test_an_out_of_order_file_cannot_stretch_a_window(tmp_path, rule_set):
    later = write_jsonl(tmp_path / "later.jsonl", [external_get(40)])
    earlier = write_jsonl(tmp_path / "earlier.jsonl", [external_get(0), external_get(99)])
    found = alerts(replay(rule_set, later, earlier))
    # [0, 60) holds 0 and 40; 99 opens the next alert. Before, 40 anchored one 99-minute alert.
    assert [(alert.events, alert.as_dict()["first_seen"][11:16]) for alert in found] == [
        (2, "09:00"),
        (1, "10:39"),
    ]


CALLERS = ["198.199.88.17", "45.33.32.156", "9.9.9.9"]


@st.composite
def corpora(draw):
    """A few files of matching and non-matching records at random times over three hours."""
    files = []
    for number in range(draw(st.integers(2, 5))):
        records = []
        for position in range(draw(st.integers(1, 6))):
            minute = draw(st.integers(0, 180))
            if draw(st.booleans()):
                address = draw(st.sampled_from(CALLERS))
                severity_changer = draw(st.sampled_from([{}, {"errorCode": "VpceAccessDenied"}]))
                record = external_get(minute, sourceIPAddress=address, **severity_changer)
            else:
                record = private_get(minute)
            record["eventID"] = f"{number}-{position}"
            records.append(record)
        files.append(records)
    return files


@settings(max_examples=25, deadline=None)
@given(corpus=corpora(), seed=st.integers(0, 2**32 - 1))
def test_any_permutation_of_the_inputs_gives_the_same_report(tmp_path_factory, corpus, seed):
    directory = tmp_path_factory.mktemp("corpus")
    paths = [write_jsonl(directory / f"f{n}.jsonl", records) for n, records in enumerate(corpus)]
    shuffled = paths[:]
    random.Random(seed).shuffle(shuffled)
    reports = []
    for order in (paths, shuffled):
        output = directory / f"report{len(reports)}.json"
        cli_main(
            ["--path", str(REPO_ROOT), "--format", "json", "-o", str(output)]
            + [str(path) for path in order]
        )
        document = json.loads(output.read_text())
        reports.append(
            {k: v for k, v in document.items() if k not in ("seconds", "events_per_second")}
        )
    assert reports[0] == reports[1]


COUNTING_RULE = """
CALLS = []


def rule(event):
    return event.get("eventName") == "GetObject"


def title(event):
    CALLS.append(("title", event.get("eventTime")))
    return f"call {len(CALLS)}"


def dedup(event):
    CALLS.append(("dedup", event.get("eventTime")))
    return "one"


def severity(event):
    CALLS.append(("severity", event.get("eventTime")))
    return "DEFAULT"


def alert_context(event):
    CALLS.append(("alert_context", event.get("eventTime")))
    return {}
"""


@pytest.mark.parametrize("quick_miss", [True, False], ids=["fast path", "full run"])
def test_auxiliary_functions_run_once_per_match_in_event_time_order_after_the_hook(
    tmp_path, quick_miss
):
    repository = scratch_repository(tmp_path, COUNTING_RULE)
    later = write_jsonl(tmp_path / "later.jsonl", [external_get(30), management(31)])
    earlier = write_jsonl(tmp_path / "earlier.jsonl", [external_get(10), external_get(20)])
    hook_calls = []
    with load_rules(repository) as loaded:
        (rule,) = loaded.rules
        calls = rule.engine.module.CALLS

        def before_match(seconds):
            hook_calls.append((seconds, len(calls)))

        result = Replay(loaded, quick_miss=quick_miss, before_match=before_match).run(
            discover([str(later), str(earlier)])
        )
    times = [external_get(minute)["eventTime"] for minute in (10, 20, 30)]
    per_event = ["title", "dedup", "severity", "alert_context"]
    functions = {function for function, _ in calls}
    assert functions == set(per_event)
    # Each function once per matching event, the events in eventTime order.
    assert sorted(calls, key=lambda call: times.index(call[1])) == calls
    assert sorted(calls) == sorted((function, time) for time in times for function in per_event)
    # The hook sees each event's time right before that event's functions run.
    assert [seconds for seconds, _ in hook_calls] == [parse_event_time(t) for t in times]
    assert [before for _, before in hook_calls] == [0, 4, 8]
    (alert,) = alerts(result)
    assert alert.events == 3
    assert alert.title == "call 1"
