"""The pull-request alert diff workflow: what it runs, and its replay steps run for real.

The steps that replay are run here with bash, as GitHub runs them (`bash -e -o pipefail`), in a
workspace holding two checkouts of this repository, `base/` and `head/`, with a stand-in for
$GITHUB_STEP_SUMMARY; detection-replay is this checkout's. Checking out and installing are
GitHub's and pip's, and are only read.
"""

import os
import re
import shutil
import subprocess

import pytest
from repo import REPO_ROOT, RULE_FILE
from test_ci_config import BIN, steps, workflow

NAME = "alert-diff.yml"
RULE_YAML = RULE_FILE.with_suffix(".yml")
# What a checkout of this repository holds that a replay reads.
CHECKOUT = ("rules", "global_helpers", "packs", "lookup_tables", "schemas", "samples/cloudtrail")


@pytest.fixture(scope="module")
def document():
    return workflow(NAME)


@pytest.fixture(scope="module")
def job(document):
    (only,) = document["jobs"].values()
    return only


def step(job, step_id):
    (found,) = [item for item in job["steps"] if item.get("id") == step_id]
    return found


def test_it_runs_on_pull_requests_reading_the_repository_only(document):
    assert set(document["on"]) == {"pull_request"}
    assert document["permissions"] == {"contents": "read"}
    assert all("secrets." not in str(item) for item in steps(document))


def test_it_checks_out_the_pull_request_and_its_base_side_by_side(job):
    checkouts = [item for item in job["steps"] if item.get("uses", "").startswith("actions/")]
    by_path = {item["with"]["path"]: item["with"] for item in checkouts if "path" in item["with"]}
    assert by_path == {
        "head": {"path": "head"},
        "base": {"ref": "${{ github.event.pull_request.base.sha }}", "path": "base"},
    }
    assert any(item["uses"].startswith("actions/setup-python@") for item in checkouts)
    assert "python -m pip install ./head" in [item.get("run") for item in job["steps"]]


def test_its_scripts_take_nothing_from_the_event(job):
    # Values from the pull request reach a script only through env (no script injection).
    assert all("${{" not in item.get("run", "") for item in job["steps"])


def test_the_corpus_is_the_sample_day_by_default(job):
    assert job["env"]["CORPUS"] == "samples/cloudtrail"


def workspace(tmp_path, change_head=None, change_base=None):
    """base/ and head/ checkouts of this repository, each changed as the case says."""
    for side, change in (("base", change_base), ("head", change_head)):
        for name in CHECKOUT:
            shutil.copytree(REPO_ROOT / name, tmp_path / side / name)
        shutil.copy(REPO_ROOT / ".panther_settings.yml", tmp_path / side)
        if change is not None:
            change(tmp_path / side)
    return tmp_path


def edit_rule_yaml(old, new):
    def change(root):
        path = root / RULE_YAML.relative_to(REPO_ROOT)
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    return change


def break_rule(root):
    path = root / RULE_FILE.relative_to(REPO_ROOT)
    path.write_text(path.read_text() + "\ndef broken(:\n")


def run_step(job, step_id, cwd, summary):
    """The step's script as GitHub's bash runs it, in the workspace: (status, stderr)."""
    environment = {
        **os.environ,
        **job["env"],
        "GITHUB_STEP_SUMMARY": str(summary),
        "PATH": f"{REPO_ROOT / BIN}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", step(job, step_id)["run"]],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, result.stderr


WORKFLOW_CASES = {
    "the pull request changes nothing": (
        {},
        (0, 0),
        ["### Alert diff: no change in alerts or signals"],
    ),
    "the pull request shortens the dedup window": (
        {"change_head": edit_rule_yaml("DedupPeriodMinutes: 60", "DedupPeriodMinutes: 5")},
        (0, 0),
        [
            "### Alert diff: alerts: 4 added, 2 changed",
            "dedup minutes: 60 → 5 · alerts: 8 → 12",
            "| changed | MEDIUM | S3 GetObject (bucket not in record) by ReportingBatch",
        ],
    ),
    "the pull request breaks one rule: the job fails, the summary shows its alerts gone": (
        {"change_head": break_rule},
        (0, 10),  # some rules not loaded: the others replayed, the run incomplete
        ["### Alert diff: alerts: 8 removed", "exit status 10"],
    ),
    "the base branch's rule is broken: the job fails before the diff": (
        {"change_base": break_rule},
        (10, None),
        [],
    ),
}


@pytest.mark.parametrize(
    ("changes", "statuses", "summary_lines"),
    WORKFLOW_CASES.values(),
    ids=WORKFLOW_CASES.keys(),
)
def test_the_replay_steps_write_the_diff_to_the_job_summary(
    tmp_path, job, changes, statuses, summary_lines
):
    root = workspace(tmp_path, **changes)
    summary = root / "summary.md"
    base_status, err = run_step(job, "base-replay", root, summary)
    diff_status = run_step(job, "alert-diff", root, summary)[0] if base_status == 0 else None
    assert (base_status, diff_status) == statuses, err
    text = summary.read_text() if summary.exists() else ""
    assert all(line in text for line in summary_lines), text
    assert bool(text) is bool(summary_lines)


def readme_fork_example():
    text = (REPO_ROOT / "README.md").read_text()
    after = text[text.index("**In a fork of panther-analysis**") :]
    return re.search(r"```yaml\n(.*?)```", after, re.S).group(1)


@pytest.mark.skipif(
    not (REPO_ROOT / BIN / "actionlint").exists(),
    reason="actionlint is not installed (make install brings it)",
)
def test_the_readmes_fork_example_is_a_valid_workflow_doing_the_same(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "alert-diff.yml").write_text(readme_fork_example())
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    result = subprocess.run(
        [str(REPO_ROOT / BIN / "actionlint"), "-no-color"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ours = [item.get("run", "") for item in workflow(NAME)["jobs"]["alert-diff"]["steps"]]
    theirs = readme_fork_example()
    for option in ("--path ../base", "--format json", "--baseline", "--format markdown"):
        assert any(option in run for run in ours)
        assert option in theirs
