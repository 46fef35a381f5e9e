"""`detection-replay --baseline REPORT`: what changed in alerts and signals since an earlier run."""

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_profiles import fuzz_settings
from replay_repository import (
    at,
    counted,
    distinct,
    record,
    rule_files,
    signal,
    standard_repository,
    write_records,
    write_repository,
)
from test_replay_support import run_cli

from detection_replay import diff as diff_module
from detection_replay import replay_events
from detection_replay.cli import (
    EXIT_ALERTS,
    EXIT_BAD_RECORDS,
    EXIT_BASELINE,
    EXIT_OK,
    EXIT_UNREADABLE_INPUT,
    EXIT_USAGE,
)
from detection_replay.diff import (
    DIFF_RENDERERS,
    BaselineError,
    check_report,
    diff_reports,
    markdown_text,
    pair_groups,
)

# --- matching groups between two runs (the pure function) --------------------------------------


def group(dedup, first, last=None, events=1, **fields):
    """A listed alert as a report holds it, spanning minutes `first` to `last` after START."""
    return {
        "rule_id": "Test.Rule",
        "severity": "MEDIUM",
        "title": f"alert for {dedup}",
        "dedup": dedup,
        "events": events,
        "first_seen": at(first),
        "last_seen": at(first if last is None else last),
        "first_event_at": f"events.jsonl line {first + 1}",
        "alert_context": {},
        "kind": "alert",
        "unique_values": None,
        "unique_values_capped": False,
        **fields,
    }


def outcome(baseline, current):
    """What pairing made of the two lists: (changed fields per pair, removed, added)."""
    pairs, removed, added = pair_groups(baseline, current)
    changes = [
        sorted(name for name in diff_module.COMPARED_FIELDS if old.get(name) != new.get(name))
        for old, new in pairs
    ]
    return changes, [g["first_seen"] for g in removed], [g["first_seen"] for g in added]


PAIRING_CASES = {
    "the same alert: paired, nothing changed": (
        [group("a", 0, 30, 4)],
        [group("a", 0, 30, 4)],
        ([[]], [], []),
    ),
    "an earlier event joined: one changed alert, not one removed and one added": (
        [group("a", 10, 40, 3)],
        [group("a", 5, 40, 4, first_event_at="events.jsonl line 2")],
        ([["events", "first_seen"]], [], []),
    ),
    "a shorter window splits the alert: the first part changed, the rest added": (
        [group("a", 0, 50, 8)],
        [group("a", 0, 4, 3), group("a", 20, 24, 3), group("a", 46, 50, 2)],
        ([["events", "last_seen"]], [], [at(20), at(46)]),
    ),
    "the same dedup string hours apart: removed and added": (
        [group("a", 0)],
        [group("a", 120, first_event_at="events.jsonl line 9")],
        ([], [at(0)], [at(120)]),
    ),
    "a new dedup string for the alert the same event opened: changed": (
        [group("old dedup", 0, 10, 2, title="t")],
        [group("new dedup", 0, 10, 2, title="t")],
        ([["dedup"]], [], []),
    ),
    "a new dedup string opened by another event: removed and added": (
        [group("old dedup", 0, 10, 2)],
        [group("new dedup", 0, 10, 2, first_event_at="other.jsonl line 1")],
        ([], [at(0)], [at(0)]),
    ),
    "an escalated severity and a new title: changed": (
        [group("a", 0, 5, 2)],
        [group("a", 0, 5, 2, severity="HIGH", title="Bulk access: alert for a")],
        ([["severity", "title"]], [], []),
    ),
    "a report written before unique_values existed: unchanged": (
        [{k: v for k, v in group("a", 0).items() if not k.startswith("unique")}],
        [group("a", 0)],
        ([[]], [], []),
    ),
    "two dedup strings, each matched to its own": (
        [group("a", 0, 5), group("b", 1, 6, 2)],
        [group("b", 1, 6, 3), group("a", 0, 5)],
        ([[], ["events"]], [], []),
    ),
    "an alert that is gone, and one that is new": (
        [group("a", 0)],
        [group("b", 0, first_event_at="events.jsonl line 7")],
        ([], [at(0)], [at(0)]),
    ),
}


@pytest.mark.parametrize(
    ("baseline", "current", "expected"), PAIRING_CASES.values(), ids=PAIRING_CASES.keys()
)
def test_groups_are_matched_by_dedup_and_time_then_by_their_first_event(
    baseline, current, expected
):
    assert outcome(baseline, current) == expected


# --- the command: two runs over the same records -------------------------------------------------

RECORDS = [
    # Two distinct values: below Test.Distinct's Threshold of 3.
    *(distinct(minute, value) for minute, value in enumerate("abab")),
    *(counted(minute) for minute in (0, 1, 2, 30)),
    signal(0),
    signal(6),
    signal(7, "other"),
]


def baseline_report(capsys, tmp_path, records=RECORDS, **overrides):
    """The --format json report of `records` through the standard rules (with `overrides`)."""
    repository = standard_repository(tmp_path / "base", **overrides)
    events = write_records(tmp_path / "events.jsonl", records)
    report = tmp_path / "base.json"
    status, _, err = run_cli(capsys, "--path", repository, "--format", "json", "-o", report, events)
    assert status == EXIT_OK, err
    return report


def compare(capsys, tmp_path, baseline, *options, records=RECORDS, **overrides):
    """(status, stdout, stderr) of the head rules' run over `records` against `baseline`."""
    repository = standard_repository(tmp_path / "head", **overrides)
    events = write_records(tmp_path / "events.jsonl", records)
    return run_cli(capsys, "--path", repository, "--baseline", baseline, *options, events)


def summary_of(diff):
    """Per rule, per kind, per change: the groups' (dedup, events) or the changed fields."""
    found = {}
    for rule in diff["rules"]:
        for kind in ("alerts", "signals"):
            for change, items in rule[kind].items():
                for item in items:
                    shown = (
                        sorted(item["changes"])
                        if change == "changed"
                        else (item["dedup"], item["events"])
                    )
                    found.setdefault((rule["rule_id"], kind, change), []).append(shown)
    return found


RULE_CHANGE_CASES = {
    "nothing changed": ({}, {}, {}),
    "a lower Threshold adds an alert": (
        {"Test.Distinct": {"Threshold": 2}},
        {("Test.Distinct", "alerts", "added"): [("one group", 4)]},
        {
            "Test.Distinct": {
                "threshold": {"baseline": 3, "current": 2},
                "alert_count": {"baseline": 0, "current": 1},
            }
        },
    ),
    "a higher Threshold removes one": (
        {"Test.Counted": {"Threshold": 4}},
        {("Test.Counted", "alerts", "removed"): [("one group", 3)]},
        {
            "Test.Counted": {
                "threshold": {"baseline": 3, "current": 4},
                "alert_count": {"baseline": 1, "current": 0},
            }
        },
    ),
    "a longer window changes the alert": (
        {"Test.Counted": {"DedupPeriodMinutes": 60}},
        {("Test.Counted", "alerts", "changed"): [["events", "last_seen"]]},
        {"Test.Counted": {"dedup_period_minutes": {"baseline": 10, "current": 60}}},
    ),
    "a shorter signal window splits a signal group, apart from the alerts": (
        {"Test.Signal": {"DedupPeriodMinutes": 5}},
        {
            ("Test.Signal", "signals", "added"): [("one group", 1)],
            ("Test.Signal", "signals", "changed"): [["events", "last_seen"]],
        },
        {"Test.Signal": {"dedup_period_minutes": {"baseline": 10, "current": 5}}},
    ),
    "signals that become alerts: signals removed, an alert added": (
        {"Test.Signal": {"CreateAlert": True, "Threshold": 2}},
        {
            ("Test.Signal", "alerts", "added"): [("one group", 2)],
            ("Test.Signal", "signals", "removed"): [("one group", 2), ("other", 1)],
        },
        {
            "Test.Signal": {
                "threshold": {"baseline": 3, "current": 2},
                "create_alert": {"baseline": False, "current": True},
                "alert_count": {"baseline": 0, "current": 1},
                "signal_count": {"baseline": 3, "current": 0},
            }
        },
    ),
}


@pytest.mark.parametrize(
    ("head_settings", "expected_groups", "expected_settings"),
    RULE_CHANGE_CASES.values(),
    ids=RULE_CHANGE_CASES.keys(),
)
def test_the_json_diff_lists_what_a_rule_change_does(
    capsys, tmp_path, head_settings, expected_groups, expected_settings
):
    baseline = baseline_report(capsys, tmp_path)
    status, out, err = compare(capsys, tmp_path, baseline, "--format", "json", **head_settings)
    diff = json.loads(out)
    assert status == (EXIT_ALERTS if expected_groups else EXIT_OK), err
    assert diff["differs"] is bool(expected_groups)
    assert summary_of(diff) == expected_groups
    assert {rule["rule_id"]: rule["settings_and_counts"] for rule in diff["rules"]} == (
        expected_settings
    )
    assert diff["baseline"]["report"] == str(baseline)
    assert diff["warnings"] == []


def test_a_rule_only_in_one_run_is_all_added_or_all_removed(capsys, tmp_path):
    baseline = baseline_report(capsys, tmp_path)
    head = tmp_path / "head"
    standard_repository(head)
    for suffix in (".py", ".yml"):  # the pull request deletes Test.Counted
        (head / "rules" / f"test_counted{suffix}").unlink()
    events = tmp_path / "events.jsonl"
    status, out, _ = run_cli(
        capsys, "--path", head, "--baseline", baseline, "--format", "json", events
    )
    (rule,) = json.loads(out)["rules"]
    assert status == EXIT_ALERTS
    assert (rule["rule_id"], rule["presence"]) == ("Test.Counted", "removed")
    assert [alert["events"] for alert in rule["alerts"]["removed"]] == [3]
    assert rule["settings_and_counts"] == {
        "matched": {"baseline": 4, "current": 0},
        "alert_count": {"baseline": 1, "current": 0},
    }


def test_the_text_diff(capsys, tmp_path):
    baseline = baseline_report(capsys, tmp_path)
    status, out, _ = compare(
        capsys, tmp_path, baseline, **{"Test.Counted": {"DedupPeriodMinutes": 60}}
    )
    assert status == EXIT_ALERTS
    assert out == (
        f"Alert diff against {baseline}: alerts: 1 changed\n"
        "  alerts   1 -> 1\n"
        "  signals  3 -> 3\n"
        "\n"
        "Test.Counted\n"
        "  dedup minutes 10 -> 60\n"
        "  ~ [MEDIUM] Test.Counted\n"
        f"      events 3 -> 4; last seen {at(2)} -> {at(30)}\n"
    )


def test_the_markdown_diff_for_a_job_summary(capsys, tmp_path):
    baseline = baseline_report(capsys, tmp_path)
    status, out, _ = compare(
        capsys,
        tmp_path,
        baseline,
        "--format",
        "markdown",
        **{"Test.Counted": {"DedupPeriodMinutes": 60}, "Test.Signal": {"DedupPeriodMinutes": 5}},
    )
    assert status == EXIT_ALERTS
    assert out.startswith("### Alert diff: alerts: 1 changed; signals: 1 added, 1 changed\n")
    assert "| alerts | 1 | 1 |\n| signals | 3 | 3 |\n| records read | 11 | 11 |\n" in out
    assert "#### Test.Counted\n\ndedup minutes: 10 → 60\n" in out
    assert (
        f"| changed | MEDIUM | Test.Counted | 3 → 4 | {at(0)} | {at(2)} → {at(30)} | one group |"
    ) in out
    signals = out[out.index("Signal groups:") :]
    assert f"| added | MEDIUM | signal from one group | 1 | {at(6)} | {at(6)} | one group |" in (
        signals
    )


def test_markdown_lists_a_bounded_number_of_rows(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(diff_module, "MARKDOWN_ROWS", 2)
    records = [counted(minute * 20, f"group {minute}") for minute in range(5) for _ in range(3)]
    baseline = baseline_report(
        capsys, tmp_path, records=records, **{"Test.Counted": {"Threshold": 9}}
    )
    status, out, _ = compare(capsys, tmp_path, baseline, "--format", "markdown", records=records)
    assert status == EXIT_ALERTS
    assert len(re.findall(r"^\| added \|", out, re.M)) == 2
    assert "… and 3 more (the JSON diff lists all)" in out


HOSTILE_TITLE_RULE = """
def rule(event):
    return event.get("eventName") == "Hostile"

def title(event):
    return event.get("text")
"""


@fuzz_settings()
@given(st.text())
def test_markdown_text_cannot_break_out_of_its_cell(text):
    cell = markdown_text(text)
    assert not {"\n", "\r", "<", ">"} & set(cell)
    # Every |, *, _, `, [, ], ~ and backslash is escaped: an even run of backslashes before none.
    assert not re.search(r"(?<!\\)(\\\\)*[|*_`\[\]~]", cell)
    assert len(cell) <= 2 * diff_module.MARKDOWN_CELL_CHARACTERS + 8 * 4


def test_a_title_from_a_log_stays_text_in_the_markdown(capsys, tmp_path):
    title = "x | y <img src=x onerror=alert(1)> **bold** `code` [link](http://e.test)\n| forged |"
    base = write_repository(tmp_path / "base", rule_files("Test.Hostile", HOSTILE_TITLE_RULE))
    head = write_repository(
        tmp_path / "head", rule_files("Test.Hostile", HOSTILE_TITLE_RULE, Severity="High")
    )
    events = write_records(tmp_path / "events.jsonl", [record("Hostile", 0, text=title)])
    report = tmp_path / "base.json"
    run_cli(capsys, "--path", base, "--format", "json", "-o", report, events)
    status, out, _ = run_cli(
        capsys, "--path", head, "--baseline", report, "--format", "markdown", events
    )
    assert status == EXIT_ALERTS
    (row,) = [line for line in out.splitlines() if line.startswith("| changed |")]
    assert len(re.findall(r"(?<!\\)\|", row)) == 8  # seven cells, nothing forged
    assert "<img" not in out
    assert "&lt;img src=x onerror=alert(1)&gt; \\*\\*bold\\*\\* \\`code\\`" in row
    assert "\\x0a\\| forged \\|" in row


# --- a baseline that is not a report -------------------------------------------------------------


def report_with(path, change):
    """The report at `path` with `change` applied to its parsed document, written back."""
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def first_alert(document):
    return next(rule["alerts"][0] for rule in document["rules"] if rule["alerts"])


BAD_BASELINES = {
    "missing": (lambda path: path.unlink(), "cannot read it: No such file or directory"),
    "a directory": (
        lambda path: (path.unlink(), path.mkdir()),
        "cannot read it: Is a directory",
    ),
    "empty": (lambda path: path.write_text(""), "it is empty"),
    "truncated": (
        lambda path: path.write_bytes(path.read_bytes()[:-200]),
        "not JSON (truncated or not a report?)",
    ),
    "not JSON": (lambda path: path.write_text("alerts: 3\n"), "not JSON"),
    "not UTF-8": (lambda path: path.write_bytes(b'{"a": "\xff"}'), "not JSON"),
    "a JSON array": (lambda path: path.write_text("[]"), "a JSON list, not a report object"),
    "no schema_version": (
        lambda path: report_with(path, lambda d: d.pop("schema_version")),
        "no schema_version: not a detection-replay --format json report",
    ),
    "a newer schema_version": (
        lambda path: report_with(path, lambda d: d.update(schema_version=2)),
        "schema_version 2; this detection-replay reads 1",
    ),
    "schema_version as a string": (
        lambda path: report_with(path, lambda d: d.update(schema_version="1")),
        "schema_version '1'; this detection-replay reads 1",
    ),
    "an alert diff": (
        lambda path: path.write_text('{"diff_schema_version": 1, "rules": []}'),
        "it is an alert diff, not a report",
    ),
    "rules not a list": (
        lambda path: report_with(path, lambda d: d.update(rules={})),
        "the report: rules is not a JSON array",
    ),
    "a rule without an ID": (
        lambda path: report_with(path, lambda d: d["rules"][0].pop("rule_id")),
        "rule 1 has no rule_id",
    ),
    "an alert count that is true": (
        lambda path: report_with(path, lambda d: d["rules"][0].update(alert_count=True)),
        "rule 1: alert_count is not a JSON integer",
    ),
    "an alert's time that is no time": (
        lambda path: report_with(path, lambda d: first_alert(d).update(first_seen="yesterday")),
        "first_seen is not a time like 2026-11-20T09:00:00Z",
    ),
    "an alert that is a string": (
        lambda path: report_with(path, lambda d: d["rules"][1]["alerts"].append("alert")),
        "rule 2 (Test.Distinct), alerts 1 is a JSON str, not an object",
    ),
}


@pytest.mark.parametrize(("spoil", "reason"), BAD_BASELINES.values(), ids=BAD_BASELINES.keys())
def test_a_baseline_that_is_not_a_report_is_refused_before_the_replay(
    capsys, tmp_path, spoil, reason
):
    baseline = baseline_report(capsys, tmp_path)
    spoil(baseline)
    output = tmp_path / "diff.md"
    status, out, err = compare(
        capsys, tmp_path, baseline, "--format", "markdown", "-o", output, "/nonexistent"
    )
    assert status == EXIT_BASELINE
    assert (out, err.count("\n")) == ("", 1)
    assert err.startswith(f"detection-replay: error: baseline {baseline} cannot be used: ")
    assert reason in err
    assert not output.exists()


# --- how the diff's status combines with the others ---------------------------------------------

NOT_CLEAN = "the current run ended with exit status {}: not a clean run"
# (head settings, options, (the command's status, the current report's own, the warnings))
STATUS_CASES = {
    "no change": ({}, (), (EXIT_OK, EXIT_OK, [])),
    "no change, --fail-on-alert and alerts: 1 for the alerts": (
        {},
        ("--fail-on-alert",),
        (EXIT_ALERTS, EXIT_ALERTS, []),
    ),
    "a change": ({"Test.Counted": {"Threshold": 2}}, (), (EXIT_ALERTS, EXIT_OK, [])),
    "a change and an unreadable input: 3 wins": (
        {"Test.Counted": {"Threshold": 2}},
        ("/nonexistent/input",),
        (EXIT_UNREADABLE_INPUT, EXIT_UNREADABLE_INPUT, [NOT_CLEAN.format(EXIT_UNREADABLE_INPUT)]),
    ),
    "a change, --strict and a rule error: 4 wins": (
        {"Test.Counted": {"Threshold": 2}},
        ("--strict",),
        (EXIT_BAD_RECORDS, EXIT_BAD_RECORDS, [NOT_CLEAN.format(EXIT_BAD_RECORDS)]),
    ),
}


@pytest.mark.parametrize(
    ("head_settings", "options", "expected"), STATUS_CASES.values(), ids=STATUS_CASES.keys()
)
def test_the_diffs_status_combines_with_the_others(
    capsys, tmp_path, head_settings, options, expected
):
    records = [*RECORDS, distinct(50, "raise")]  # one unique() error in both runs
    baseline = baseline_report(capsys, tmp_path, records=records)
    status, out, _ = compare(
        capsys, tmp_path, baseline, "--format", "json", *options, records=records, **head_settings
    )
    diff = json.loads(out)  # written whatever the status
    assert (status, diff["current"]["exit_status"], diff["warnings"]) == expected


USAGE_CASES = {
    "markdown without a baseline": (("--format", "markdown"), "give --baseline REPORT"),
    "jsonl with a baseline": (("--baseline", "{baseline}", "--format", "jsonl"), "not a diff"),
    "the output is the baseline": (
        ("--baseline", "{baseline}", "-o", "{baseline}"),
        "is the baseline: it would be overwritten",
    ),
}


@pytest.mark.parametrize(("options", "reason"), USAGE_CASES.values(), ids=USAGE_CASES.keys())
def test_diff_usage_errors(capsys, tmp_path, options, reason):
    baseline = baseline_report(capsys, tmp_path)
    repository = standard_repository(tmp_path / "head")
    argv = [option.format(baseline=baseline) for option in options]
    before = baseline.read_bytes()
    status, out, err = run_cli(capsys, "--path", repository, *argv, tmp_path / "events.jsonl")
    assert (status, out) == (EXIT_USAGE, "")
    assert reason in err
    assert baseline.read_bytes() == before


def test_warnings_say_when_the_runs_are_not_comparable(capsys, tmp_path):
    baseline = baseline_report(capsys, tmp_path)
    report_with(baseline, lambda d: d.update(alerts_not_listed=4))
    records = [*RECORDS, counted(90)]
    _, out, _ = compare(capsys, tmp_path, baseline, "--format", "json", records=records)
    assert json.loads(out)["warnings"] == [
        "the runs read different numbers of records (11 in the baseline, 12 now): alerts may "
        "differ for that reason alone",
        "the baseline left 4 alert group(s) unlisted (--max-alerts): only listed ones are "
        "compared, and the counts",
    ]


def test_a_diff_of_unchanged_reports_is_empty(capsys, tmp_path):
    baseline = baseline_report(capsys, tmp_path)
    document = json.loads(baseline.read_text())
    diff = diff_reports(document, document, "same.json")
    assert diff["differs"] is False
    assert diff["rules"] == []
    assert diff["alerts"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 1}
    assert diff["signals"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 2}


def test_settings_an_older_baseline_lacks_are_not_compared(capsys, tmp_path):
    # Reports written before CreateAlert and unique() were reported have neither field.
    baseline = baseline_report(capsys, tmp_path)
    report_with(
        baseline,
        lambda d: [rule.pop(name) for rule in d["rules"] for name in ("create_alert", "unique")],
    )
    status, out, _ = compare(capsys, tmp_path, baseline, "--format", "json")
    diff = json.loads(out)
    assert (status, diff["differs"], diff["rules"]) == (EXIT_OK, False, [])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=6,
)


def json_paths(value, prefix=()):
    """Every path into a JSON value: keys of objects, indexes of arrays."""
    yield prefix
    children = {dict: dict.items, list: enumerate}.get(type(value), lambda _: ())(value)
    for key, child in children:
        yield from json_paths(child, (*prefix, key))


def spoiled(document, path, value):
    """A copy of `document` with the value at `path` replaced (None: removed)."""
    copy = json.loads(json.dumps(document))
    if not path:
        return value
    *parents, last = path
    holder = copy
    for key in parents:
        holder = holder[key]
    if value is None and isinstance(holder, dict):
        del holder[last]
    else:
        holder[last] = value
    return copy


@pytest.fixture(scope="module")
def report_document(tmp_path_factory):
    repository = standard_repository(tmp_path_factory.mktemp("fuzz") / "repo")
    return replay_events(repository, [*RECORDS, distinct(20, "c")])


@fuzz_settings()
@given(data=st.data())
def test_any_spoiled_report_is_refused_or_compared_without_a_crash(report_document, data):
    path = data.draw(st.sampled_from(list(json_paths(report_document))))
    baseline = spoiled(report_document, path, data.draw(JSON_VALUES))
    try:
        check_report(baseline)
    except BaselineError:
        return
    diff = diff_reports(baseline, report_document, "spoiled.json")
    for render in DIFF_RENDERERS.values():
        assert render(diff).endswith("\n")
