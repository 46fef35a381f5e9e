"""The replay runs panther-labs/panther-analysis the way Panther does, on the sample day.

Needs a checkout of panther-analysis named by PANTHER_ANALYSIS_CHECKOUT (never fetched: CI has
none). Its ~130 enabled AWS.CloudTrail rules replay the package's sample day with no rule error
that `panther_analysis_tool test` does not also have, the same report with one process and with
two, and the rules that cannot be loaded here (a third-party module from its Pipfile that this
environment lacks) are named, and cannot be loaded by the tool here either.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from repo import REPO_ROOT

from detection_replay import cli

CHECKOUT = os.environ.get("PANTHER_ANALYSIS_CHECKOUT")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHECKOUT,
        reason="PANTHER_ANALYSIS_CHECKOUT is not set: no panther-analysis checkout to replay",
    ),
]
SAMPLES = REPO_ROOT / "samples" / "cloudtrail"
TIMING = ("seconds", "events_per_second")
TOOL = [str(Path(sys.executable).parent / "panther_analysis_tool"), "--skip-version-check"]


def replayed(jobs, tmp_path):
    """(exit status, JSON report without timings, stderr) of a replay in a process of its own."""
    output = tmp_path / f"jobs{jobs}.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "detection_replay", "--path", CHECKOUT, "--format", "json"),
            *("--no-progress", "--jobs", str(jobs), "-o", str(output), str(SAMPLES)),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    document = json.loads(output.read_text())
    for key in TIMING:
        document.pop(key)
    return done.returncode, document, done.stderr


def tool_test(rule_ids):
    """panther_analysis_tool test of these rules in this environment: (exit status, output)."""
    done = subprocess.run(
        [*TOOL, "test", "--path", ".", "--filter", f"RuleID={','.join(rule_ids)}"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("panther-analysis")
    return replayed(1, scratch), replayed(2, scratch)


def test_one_process_and_two_give_the_same_report(reports):
    (status, document, _), (status_two, document_two, _) = reports
    assert (status_two, document_two) == (status, document)
    assert len(document["rules"]) > 100
    assert document["records_read"] == document["evaluated"] > 0  # no record malformed
    assert document["alert_count"] > 0


def test_no_rule_error_the_tool_does_not_have_too(reports):
    _, document, _ = reports[0]
    erring = sorted(rule["rule_id"] for rule in document["rules"] if rule["errors"])
    if not erring:
        assert document["rule_errors"] == 0
        return
    status, output = tool_test(erring)
    assert status != 0, f"the replay's errors in {erring} are not the tool's: {output[-2000:]}"
    for rule_id in erring:
        assert rule_id in output


def test_the_rules_not_loaded_are_those_the_tool_cannot_load_here_either(reports):
    status, document, stderr = reports[0]
    not_loaded = document["rules_not_loaded"]
    assert status == (cli.EXIT_RULES_NOT_LOADED if not_loaded else cli.EXIT_OK)
    if not not_loaded:
        return
    for entry in not_loaded:
        missing = re.fullmatch(r"ModuleNotFoundError: No module named '([\w.]+)'", entry["error"])
        assert missing, entry
        assert importlib.util.find_spec(missing[1].split(".")[0]) is None
        assert f"rule not loaded: {entry['rule_id']}: {entry['error']}" in stderr
    tool_status, output = tool_test([entry["rule_id"] for entry in not_loaded])
    assert tool_status != 0
    for entry in not_loaded:
        assert Path(entry["file"]).with_suffix(".yml").name in output
        assert entry["error"].split(": ", 1)[1] in output


def test_rules_keeping_state_are_looked_after(reports):
    _, document, stderr = reports[0]
    handled = {entry["rule_id"] for entry in document["rules_keeping_state"] if entry["handled"]}
    assert {"AWS.SSM.DecryptSSMParams", "AWS.CloudTrail.SnapshotMadePublic"} <= handled
    assert "keeps state" not in stderr  # nothing found that the replay could not look after
