"""A replay and `panther_analysis_tool test` judge every YAML test log the same way."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from repo import REPO_ROOT, RULE_ID, yaml_mocks, yaml_tests
from test_replay_support import alerts, replay, write_jsonl

from detection_replay.records import record_problem
from detection_replay.rules import load_rules

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
TEST_LINE = re.compile(r"^\t\[(?:PASS|FAIL)\] (?P<name>.+)$")
OUTPUT_LINE = re.compile(r"^\t\t\[(?:PASS|FAIL)\] \[(?P<function>\w+)\] (?P<value>.*)$")
TESTS = {test["Name"]: test for test in yaml_tests()}


@pytest.fixture(scope="module")
def rule_set():
    with load_rules(REPO_ROOT) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def tool_verdicts():
    """{test name: {function: printed output}} from `panther_analysis_tool test`."""
    tool = Path(sys.executable).with_name("panther_analysis_tool")
    completed = subprocess.run(
        [tool, "--skip-version-check", "test", "--filter", f"RuleID={RULE_ID}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    verdicts, current = {}, None
    for line in ANSI_ESCAPE.sub("", completed.stdout).splitlines():
        if match := TEST_LINE.match(line):
            current = verdicts.setdefault(match["name"], {})
        elif (match := OUTPUT_LINE.match(line)) and current is not None:
            current[match["function"]] = match["value"]
    assert set(verdicts) == set(TESTS)  # the filter matched: every test ran
    return verdicts


def is_malformed(log):
    return record_problem(dict(log)) is not None


@pytest.mark.parametrize("name", list(TESTS))
def test_replay_matches_exactly_when_the_tool_says_the_rule_fires(
    tmp_path, rule_set, tool_verdicts, name
):
    log = TESTS[name]["Log"]
    (rule,) = rule_set.rules
    with yaml_mocks(rule.engine.module, TESTS[name]):  # the store's answer, as the tool gives it
        result = replay(rule_set, write_jsonl(tmp_path / "log.jsonl", [log]))
    verdict = tool_verdicts[name]
    fired = verdict["rule"] == "true"
    assert fired is TESTS[name]["ExpectedResult"]
    assert result.totals.matched == int(fired)
    if is_malformed(log):
        # Logs Panther's CloudTrail parser would reject never reach a rule in a replay; the
        # YAML keeps them as unit tests of the rule's defensiveness, all non-matching.
        assert not fired
        assert result.malformed.count == 1
        return
    assert result.totals.evaluated == 1
    if fired:
        (alert,) = alerts(result)
        assert alert.title == verdict["title"]
        assert alert.dedup == verdict["dedup"]


def test_the_yaml_logs_are_mostly_replayable_records():
    malformed = [name for name, test in TESTS.items() if is_malformed(test["Log"])]
    assert len(malformed) <= 3, malformed
    assert all(not TESTS[name]["ExpectedResult"] for name in malformed)


def test_the_fast_path_and_full_runs_agree_on_every_yaml_log(tmp_path, rule_set):
    path = write_jsonl(tmp_path / "logs.jsonl", [test["Log"] for test in TESTS.values()])
    fast, full = (replay(rule_set, path, quick_miss=quick) for quick in (True, False))
    expected_matches = sum(bool(test["ExpectedResult"]) for test in TESTS.values())
    assert fast.totals.matched == full.totals.matched == expected_matches
    assert fast.totals.evaluated == full.totals.evaluated
    assert [a.as_dict() for a in alerts(fast)] == [a.as_dict() for a in alerts(full)]


SAMPLES = REPO_ROOT / "samples" / "cloudtrail"


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="no sample dataset in this checkout")
def test_the_fast_path_and_full_runs_agree_on_the_sample_dataset(rule_set):
    fast, full = (replay(rule_set, SAMPLES, quick_miss=quick) for quick in (True, False))
    assert fast.totals.records_read == full.totals.records_read > 0
    assert fast.totals.matched == full.totals.matched
    assert [a.as_dict() for a in alerts(fast)] == [a.as_dict() for a in alerts(full)]
    assert fast.rule_errors == full.rule_errors
