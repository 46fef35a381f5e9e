"""A repository of rules that keep state, read Panther's standard fields, use unique() or are
signals (tests/fixtures/.replay_repository), replayed the way Panther runs them: every function
once per event, in eventTime order, the same report for any --jobs, input order or rerun."""

import json
import random
import re
import shutil
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_replay_support import external_get, management, run_cli, write_jsonl

from detection_replay import cli
from detection_replay.engine import Replay
from detection_replay.inputs import discover
from detection_replay.records import parse_event_time
from detection_replay.rules import load_rules
from detection_replay.standard_fields import DEFAULT_SOURCE_ID, DEFAULT_SOURCE_LABEL, row_id

FIXTURE = Path(__file__).parent / "fixtures" / ".replay_repository"
TIMING = ("seconds", "events_per_second")
CALLERS = {
    "etl": "AROAIOSFODNN7EXAMPLE:etl-nightly",
    "export": "AROAEXPORTEREXAMPLE1:export-daily",
}
THRESHOLD = 3  # Fixture.StoreObjects: more distinct objects than this in an hour match
EVERY = 3  # Fixture.ModuleCounter: every third read of a caller matches


@pytest.fixture
def repository(tmp_path):
    """A copy of the fixture repository (a replay reads it only, but a copy keeps it so)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "repo"))


def read(minute, caller, number):
    """A read of object `number` by a caller through the endpoint, from outside."""
    identity = external_get(0)["userIdentity"]
    identity["principalId"] = CALLERS[caller]
    return external_get(
        minute,
        userIdentity=identity,
        eventID=f"{caller}-object-{number:03d}",
        requestID=f"{caller}-{minute}",
    )


def scenario():
    """Two callers' reads over two hours, a few of the same object again, among management
    events; spread over four files, none of them in time order."""
    rng = random.Random(20261120)
    records = []
    for caller, count in (("etl", 14), ("export", 9)):
        minutes = sorted(rng.sample(range(0, 120), count))
        for number, minute in enumerate(minutes):
            records.append(read(minute, caller, number % 7))  # objects 0-6, some read twice
    records += [management(minute) for minute in (5, 50, 95)]
    rng.shuffle(records)
    return records


@pytest.fixture
def inputs(tmp_path):
    """The scenario in four files, and the records in eventTime order."""
    records = scenario()
    directory = tmp_path / "logs"
    for number in range(4):
        write_jsonl(directory / f"part{number}.jsonl", records[number::4])
    return directory, sorted(records, key=lambda record: record["eventTime"])


def report(capsys, *argv):
    """(status, the JSON report without its timings, stderr) of an in-process run."""
    status, out, err = run_cli(capsys, "--format", "json", "--no-progress", *argv)
    document = json.loads(out)
    for key in TIMING:
        document.pop(key)
    return status, document, err


def rule_report(document, rule_id):
    (found,) = [rule for rule in document["rules"] if rule["rule_id"] == rule_id]
    return found


def reads_in_order(records):
    return [record for record in records if record["eventName"] == "GetObject"]


def expected_store_matches(records):
    """Fixture.StoreObjects' matches, worked out plainly: per caller and hour of eventTime, each
    read after which more than THRESHOLD distinct objects were read."""
    seen = defaultdict(set)
    matches = []
    for record in reads_in_order(records):
        key = (record["userIdentity"]["principalId"], record["eventTime"][:13])
        seen[key].add(record["eventID"])
        if len(seen[key]) > THRESHOLD:
            matches.append(record)
    return matches


def expected_counter_alerts(records):
    """Fixture.ModuleCounter's alerts: (title, severity) of every third read of each caller."""
    counts = Counter()
    alerts = []
    for record in reads_in_order(records):
        caller = record["userIdentity"]["principalId"]
        counts[caller] += 1
        if counts[caller] % EVERY == 0:
            severity = "HIGH" if counts[caller] > EVERY else "LOW"
            alerts.append((f"Read number {counts[caller]} by {caller}", severity))
    return alerts


# --- the same report however it is run ----------------------------------------------------------


def test_the_report_is_the_same_for_any_jobs_input_order_and_rerun(capsys, repository, inputs):
    directory, _ = inputs
    files = sorted(str(path) for path in directory.iterdir())
    runs = [
        ("--jobs", "1", *files),
        ("--jobs", "1", *files),  # a rerun
        ("--jobs", "2", *files),
        ("--jobs", "3", *reversed(files)),
    ]
    reports = [report(capsys, "--path", repository, *run)[:2] for run in runs]
    assert all(each == reports[0] for each in reports)
    status, document = reports[0]
    assert status == cli.EXIT_OK
    assert document["rule_errors"] == 0
    assert document["rules_not_loaded"] == []


def test_a_rule_reading_and_writing_the_store_in_rule_matches_as_it_would_in_time_order(
    capsys, repository, inputs
):
    directory, records = inputs
    expected = expected_store_matches(records)
    for jobs in ("1", "2"):
        _, document, _ = report(capsys, "--path", repository, "--jobs", jobs, directory)
        store = rule_report(document, "Fixture.StoreObjects")
        assert store["errors"] == {}
        assert store["matched"] == len(expected) > 0
        # One alert per caller and hour that went past the threshold, from its first match.
        first_matches = {}
        for record in expected:
            key = (record["userIdentity"]["principalId"], record["eventTime"][:13])
            first_matches.setdefault(key, record["eventTime"])
        assert sorted(alert["first_seen"] for alert in store["alerts"]) == sorted(
            first_matches.values()
        )


def test_a_rule_keeping_state_in_module_globals_counts_in_time_order(capsys, repository, inputs):
    directory, records = inputs
    expected = expected_counter_alerts(records)
    for jobs in ("1", "2"):
        _, document, err = report(capsys, "--path", repository, "--jobs", jobs, directory)
        counter = rule_report(document, "Fixture.ModuleCounter")
        assert counter["errors"] == {}
        assert sorted((alert["title"], alert["severity"]) for alert in counter["alerts"]) == sorted(
            expected
        )
        assert {"rule_id": "Fixture.ModuleCounter", "globals": ["LAST_COUNT", "READS"]} in [
            {key: entry[key] for key in ("rule_id", "globals")}
            for entry in document["rules_keeping_state"]
            if entry["handled"]
        ]
        assert "keeps state" not in err  # looked after, so nothing to warn about


def test_signals_and_unique_rules_are_replayed_once_per_matching_event(capsys, repository, inputs):
    directory, records = inputs
    _, document, _ = report(capsys, "--path", repository, directory)
    reads = len(reads_in_order(records))
    for rule_id in ("Fixture.Signal", "Fixture.UniqueObjects"):
        replayed = rule_report(document, rule_id)
        assert (replayed["matched"], replayed["errors"]) == (reads, {})
    assert rule_report(document, "Fixture.UniqueObjects")["threshold"] == 3


# --- every function once per event, in eventTime order -------------------------------------------


def counting(function, calls, name, phase):
    def counted(event):
        calls.append((phase[0], name, event.get("eventTime")))
        return function(event)

    return counted


def test_each_function_runs_once_per_event_and_pass_2_runs_in_event_time_order(repository, inputs):
    directory, records = inputs
    calls, phase = [], ["pass 1"]
    with load_rules(repository) as rule_set:
        for rule in rule_set.rules:
            module = rule.engine.module
            for name in ("rule", "title", "severity", "dedup", "alert_context", "unique"):
                if hasattr(module, name):
                    wrapped = counting(getattr(module, name), calls, (rule.rule_id, name), phase)
                    setattr(module, name, wrapped)
        hook = []

        def before_match(seconds):
            phase[0] = "pass 2"
            hook.append(seconds)

        Replay(rule_set, before_match=before_match).run(discover([str(directory)]))
    reads = [record["eventTime"] for record in reads_in_order(records)]
    in_pass = defaultdict(list)
    for when, (rule_id, name), event_time in calls:
        in_pass[when, rule_id, name].append(event_time)
    # Pass 2 runs in eventTime order, whatever the inputs' order.
    assert hook == sorted(hook)
    assert [parse_event_time(time) for _, _, time in calls if _ == "pass 2"] == sorted(
        parse_event_time(time) for _, _, time in calls if _ == "pass 2"
    )
    # A rule that keeps no state: rule() in pass 1 alone, its other functions once per match.
    assert sorted(in_pass["pass 1", "Fixture.Signal", "rule"]) == sorted(
        record["eventTime"] for record in records
    )
    assert in_pass["pass 2", "Fixture.Signal", "rule"] == []
    assert in_pass["pass 2", "Fixture.UniqueObjects", "unique"] == reads
    assert in_pass["pass 2", "Fixture.UniqueObjects", "title"] == reads
    # Rules keeping state (the store, module globals): every read evaluated in full once more,
    # in time order, rule() first and once; pass 1's calls only probed (nothing they did stayed).
    counter_matches = len(expected_counter_alerts(records))
    store_matches = len(expected_store_matches(records))
    for rule_id, matches in (
        ("Fixture.StoreObjects", store_matches),
        ("Fixture.ModuleCounter", counter_matches),
    ):
        assert in_pass["pass 2", rule_id, "rule"] == reads
        assert len(in_pass["pass 2", rule_id, "title"]) == matches
        assert len(in_pass["pass 2", rule_id, "dedup"]) == matches


# --- Panther's standard fields -------------------------------------------------------------------


def panther_time(event_time):
    moment = datetime.fromisoformat(event_time).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.000000000")


def test_rules_see_the_standard_fields_panther_adds(capsys, repository, inputs):
    directory, records = inputs
    _, document, _ = report(capsys, "--path", repository, directory)
    alerts = rule_report(document, "Fixture.StandardFields")["alerts"]
    assert len(alerts) == len(reads_in_order(records))
    by_request = {record["requestID"]: record for record in records}
    row_ids = set()
    for alert in alerts:
        context = alert["alert_context"]
        source, line = re.fullmatch(r"(.*) line (\d+)", alert["first_event_at"]).groups()
        assert context["p_row_id"] == row_id(source, int(line), 0)
        row_ids.add(context["p_row_id"])
        assert context["p_event_time"] == panther_time(alert["first_seen"])
        assert context["p_parse_time"] == context["p_event_time"]  # by default
        assert context["p_log_type"] == "AWS.CloudTrail"
        assert context["p_source_id"] == DEFAULT_SOURCE_ID
        assert context["p_source_label"] == DEFAULT_SOURCE_LABEL
        record = by_request[context["requestID"]]
        assert record["eventTime"] == alert["first_seen"]
        assert context["p_any_ip_addresses"] == [record["sourceIPAddress"]]
        assert context["p_any_aws_account_ids"] == ["123456789012"]
        assert context["p_any_trace_ids"] == ["ASIAIOSFODNN7EXAMPLE"]
        assert context["p_any_usernames"] == ["DataPipeline"]
        assert context["p_any_aws_arns"] == [
            "arn:aws:iam::123456789012:role/DataPipeline",
            "arn:aws:sts::123456789012:assumed-role/DataPipeline/etl-nightly",
        ]
        assert record["userIdentity"]["principalId"] in context["p_any_actor_ids"]
    assert len(row_ids) == len(alerts)  # one per record


def test_source_and_parse_time_are_options(capsys, repository, inputs):
    directory, _ = inputs
    _, document, _ = report(
        capsys,
        "--path",
        repository,
        "--source-label",
        "org-trail",
        "--source-id",
        "3f9a7c1e-5b2d-4e8f-9a6c-0d4b2e8f1a7c",
        "--parse-time",
        "2026-11-21T06:30:00+01:00",
        directory,
    )
    contexts = [
        alert["alert_context"]
        for alert in rule_report(document, "Fixture.StandardFields")["alerts"]
    ]
    assert {context["p_source_label"] for context in contexts} == {"org-trail"}
    assert {context["p_source_id"] for context in contexts} == {
        "3f9a7c1e-5b2d-4e8f-9a6c-0d4b2e8f1a7c"
    }
    assert {context["p_parse_time"] for context in contexts} == {"2026-11-21 05:30:00.000000000"}


def test_a_field_the_record_carries_is_kept_as_it_is(capsys, repository, tmp_path):
    exported = read(0, "etl", 1) | {
        "p_event_time": "2026-11-20 09:00:00.123",
        "p_row_id": "d66379c617d1f7b3b2e7ce9623c104",
        "P_Source_Label": "exported-trail",  # in another case: still the record's own
        "p_any_ip_addresses": ["198.199.88.17", "10.0.0.1"],
    }
    logs = write_jsonl(tmp_path / "exported.jsonl", [exported])
    _, document, _ = report(capsys, "--path", repository, logs)
    (alert,) = rule_report(document, "Fixture.StandardFields")["alerts"]
    context = alert["alert_context"]
    assert context["p_event_time"] == "2026-11-20 09:00:00.123"
    assert context["p_row_id"] == "d66379c617d1f7b3b2e7ce9623c104"
    assert context["p_source_label"] == "exported-trail"
    assert context["p_any_ip_addresses"] == ["198.199.88.17", "10.0.0.1"]
    assert context["p_any_trace_ids"] == ["ASIAIOSFODNN7EXAMPLE"]  # the missing ones added


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-13-01T00:00:00Z", ""], ids=["words", "month 13", "empty"]
)
def test_a_parse_time_that_is_no_time_is_a_usage_error(capsys, repository, inputs, value):
    directory, _ = inputs
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--path", str(repository), "--parse-time", value, str(directory)])
    assert exit_info.value.code == cli.EXIT_USAGE
    assert "expected an ISO 8601 date-time" in capsys.readouterr().err
