"""A replay and `panther_analysis_tool test` judge every YAML test log the same way."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from panther_core.enriched_event import PantherEvent
from repo import BULK_RULE_ID, REPO_ROOT, RULE_ID, yaml_mocks, yaml_tests
from test_replay_support import alerts, replay, write_jsonl

from detection_replay.records import record_problem
from detection_replay.rules import load_rules

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
TEST_LINE = re.compile(r"^\t\[(?:PASS|FAIL)\] (?P<name>.+)$")
OUTPUT_LINE = re.compile(r"^\t\t\[(?:PASS|FAIL)\] \[(?P<function>\w+)\] (?P<value>.*)$")
RULE_IDS = (
    RULE_ID,
    BULK_RULE_ID,
    "AWS.CloudTrail.VPCE.AccessDenied",
    "AWS.CloudTrail.VPCE.ExternalPrincipal",
    "AWS.CloudTrail.VPCE.SensitiveAPICalls",
    "AWS.CloudTrail.VPCE.ManySecretsRead",
)
TESTS = {(rule_id, test["Name"]): test for rule_id in RULE_IDS for test in yaml_tests(rule_id)}


@pytest.fixture(scope="module")
def rule_set():
    with load_rules(REPO_ROOT) as loaded:
        yield loaded


def verdicts_of(rule_id):
    """{test name: {function: printed output}} from `panther_analysis_tool test` of one rule."""
    tool = Path(sys.executable).with_name("panther_analysis_tool")
    completed = subprocess.run(
        [tool, "--skip-version-check", "test", "--filter", f"RuleID={rule_id}"],
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
            current = verdicts.setdefault((rule_id, match["name"]), {})
        elif (match := OUTPUT_LINE.match(line)) and current is not None:
            current[match["function"]] = match["value"]
    return verdicts


@pytest.fixture(scope="module")
def tool_verdicts():
    """{(rule id, test name): {function: printed output}} for both rules."""
    verdicts = {key: value for rule_id in RULE_IDS for key, value in verdicts_of(rule_id).items()}
    assert set(verdicts) == set(TESTS)  # each filter matched: every test ran
    return verdicts


def is_malformed(log):
    return record_problem(dict(log)) is not None


@pytest.mark.parametrize("key", list(TESTS), ids=[f"{rule}: {name}" for rule, name in TESTS])
def test_replay_matches_exactly_when_the_tool_says_the_rule_fires(
    tmp_path, rule_set, tool_verdicts, key
):
    rule_id, _ = key
    log = TESTS[key]["Log"]
    (rule,) = [rule for rule in rule_set.rules if rule.rule_id == rule_id]
    matched_before = rule.matched  # the rule set is shared by this module's replays
    with yaml_mocks(rule.engine.module, TESTS[key]):  # the store's answer, as the tool gives it
        result = replay(rule_set, write_jsonl(tmp_path / "log.jsonl", [log]))
    verdict = tool_verdicts[key]
    fired = verdict["rule"] == "true"
    assert fired is TESTS[key]["ExpectedResult"]
    assert rule.matched - matched_before == int(fired)
    if is_malformed(log):
        # Logs Panther's CloudTrail parser would reject never reach a rule in a replay; the
        # YAML keeps them as unit tests of the rule's defensiveness, all non-matching.
        assert not fired
        assert result.malformed.count == 1
        return
    assert result.totals.evaluated == 1
    if fired and rule.threshold == 1:  # one event never reaches the bulk rule's threshold
        (alert,) = [alert for alert in alerts(result) if alert.rule_id == rule_id]
        assert alert.title == verdict["title"]
        assert alert.dedup == verdict["dedup"]


def test_the_yaml_logs_are_mostly_replayable_records():
    malformed = [key for key, test in TESTS.items() if is_malformed(test["Log"])]
    assert len(malformed) <= len(TESTS) // 20, malformed
    assert all(not TESTS[key]["ExpectedResult"] for key in malformed)


def test_the_fast_path_and_full_runs_agree_on_every_yaml_log(tmp_path, rule_set):
    logs = [test["Log"] for test in yaml_tests(RULE_ID)]
    path = write_jsonl(tmp_path / "logs.jsonl", logs)
    fast, full = (replay(rule_set, path, quick_miss=quick) for quick in (True, False))
    # What each rule's own rule() says of each log (the logs that are records at all).
    records = [log for log in logs if not is_malformed(log)]
    expected_matches = sum(
        rule.engine.module.rule(PantherEvent(log)) for rule in rule_set.rules for log in records
    )
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
