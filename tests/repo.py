"""The repository as panther_analysis_tool sees it, for tests and tools alike.

Global helpers are importable by GlobalID (as Panther makes them), the rule module can be loaded
as-is or with an override assignment edited, and the YAML tests are read with the tool's own
loader so they stay the single source of test logs.
"""

import contextlib
import functools
import importlib.util
import re
import sys
import uuid
from pathlib import Path
from unittest.mock import MagicMock, patch

from panther_analysis_tool.analysis_utils import load_analysis

REPO_ROOT = Path(__file__).resolve().parent.parent
RULE_FILE = REPO_ROOT / "rules" / "aws_vpce_s3_external_ip.py"
HELPERS_DIR = REPO_ROOT / "global_helpers"
RULE_ID = "AWS.CloudTrail.VPCE.S3ExternalIP"

if str(HELPERS_DIR) not in sys.path:
    sys.path.insert(0, str(HELPERS_DIR))


@functools.cache
def load_specs():
    """Every analysis item in the repository, loaded by panther_analysis_tool (once: the loader
    validates every file, and tests ask for the YAML tests often). Treat it as read-only."""
    specs, invalid = load_analysis(str(REPO_ROOT), False, [], [], False)
    assert not invalid, invalid
    return specs


def rule_spec():
    (item,) = [d for d in load_specs().detections if d.analysis_spec.get("RuleID") == RULE_ID]
    return item.analysis_spec


def yaml_tests():
    return rule_spec()["Tests"]


def yaml_test(name):
    (test,) = [t for t in yaml_tests() if t["Name"] == name]
    return test


def yaml_mocks(module, test):
    """The test's Mocks on module, exactly as panther_analysis_tool applies them."""
    mocks = {
        mock["objectName"]: MagicMock(return_value=mock["returnValue"])
        for mock in test.get("Mocks") or []
    }
    return patch.multiple(module, **mocks) if mocks else contextlib.nullcontext()


def load_module(path, name=None):
    spec = importlib.util.spec_from_file_location(name or f"rule_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rule_source_with(tmp_path, **assignments):
    """A copy of the rule file with top-level assignments replaced, as a user would edit it."""
    source = RULE_FILE.read_text()
    for name, value in assignments.items():
        pattern = re.compile(rf"^{name} = (?:\[(?:\]|\n.*?^\])|[^\[\n][^\n]*)$", re.M | re.S)
        source, count = pattern.subn(f"{name} = {value!r}", source)
        assert count == 1, f"no assignment of {name} in {RULE_FILE.name}"
    path = tmp_path / f"edited_{uuid.uuid4().hex}.py"
    path.write_text(source)
    return path
