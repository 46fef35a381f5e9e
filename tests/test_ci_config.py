"""The users' CI: GitHub workflows and the pre-commit hooks say what the Makefile says."""

import re
import shutil
import subprocess

import pytest
import yaml
from repo import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
BIN = ".venv/bin"


def makefile_recipe(target):
    """The commands of a Makefile target, with $(BIN) spelled out."""
    text = (REPO_ROOT / "Makefile").read_text()
    match = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.M)
    assert match, f"no {target} target"
    return [line.strip().replace("$(BIN)", BIN) for line in match.group(1).splitlines()]


def workflow(name):
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads `on` as true
    return document


def steps(document):
    return [step for job in document["jobs"].values() for step in job["steps"]]


def test_pre_commit_hooks_run_exactly_the_lint_commands():
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    assert all(hook["language"] == "system" for hook in hooks)  # nothing to fetch
    assert all(hook["pass_filenames"] is False for hook in hooks)  # whole tree, as make lint
    assert {"id", "name", "entry"} <= set().union(*hooks)
    assert [hook["entry"] for hook in hooks] == makefile_recipe("lint")


def test_lint_validates_the_workflows_with_actionlint():
    assert f"{BIN}/actionlint" in makefile_recipe("lint")


@pytest.mark.skipif(
    not (REPO_ROOT / BIN / "actionlint").exists() and not shutil.which("actionlint"),
    reason="actionlint is not installed (make install brings it)",
)
def test_workflows_pass_actionlint():
    actionlint = REPO_ROOT / BIN / "actionlint"
    command = str(actionlint) if actionlint.exists() else shutil.which("actionlint")
    result = subprocess.run(
        [command, "-no-color"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_workflow_runs_make_test_on_panthers_python_and_the_newest():
    document = workflow("test.yml")
    assert {"pull_request", "push"} <= set(document["on"])
    (job,) = document["jobs"].values()
    assert job["strategy"]["matrix"]["python-version"] == ["3.11", "3.x"]
    runs = [step.get("run", "") for step in job["steps"]]
    assert any(run.startswith("make test") for run in runs)
    assert any(step.get("uses", "").startswith("actions/setup-python@") for step in job["steps"])


def test_upload_workflow_is_skipped_cleanly_without_the_secrets():
    document = workflow("upload.yml")
    assert "push" in document["on"]
    (job,) = document["jobs"].values()
    assert "github.event.repository.default_branch" in job["if"]
    check, *rest = job["steps"]
    assert set(check["env"]) == {"PANTHER_API_HOST", "PANTHER_API_TOKEN"}
    assert "GITHUB_OUTPUT" in check["run"]
    assert all(step["if"] == "steps.credentials.outputs.configured == 'true'" for step in rest)
    (upload,) = [step for step in rest if "upload" in step.get("run", "")]
    assert "panther_analysis_tool --skip-version-check upload --path ." in upload["run"]
    assert upload["env"] == {
        "PANTHER_API_HOST": "${{ secrets.PANTHER_API_HOST }}",
        "PANTHER_API_TOKEN": "${{ secrets.PANTHER_API_TOKEN }}",
    }


@pytest.mark.parametrize("name", ["test.yml", "upload.yml"])
def test_workflows_read_the_repository_only(name):
    assert workflow(name)["permissions"] == {"contents": "read"}
    assert all("secrets." not in str(step.get("run", "")) for step in steps(workflow(name)))
