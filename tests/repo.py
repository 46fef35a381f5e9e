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
BULK_RULE_FILE = REPO_ROOT / "rules" / "aws_vpce_s3_external_ip_bulk_access.py"
HELPERS_DIR = REPO_ROOT / "global_helpers"
RULE_ID = "AWS.CloudTrail.VPCE.S3ExternalIP"
BULK_RULE_ID = "AWS.CloudTrail.VPCE.S3ExternalIPBulkAccess"

if str(HELPERS_DIR) not in sys.path:
    sys.path.insert(0, str(HELPERS_DIR))


@functools.cache
def load_specs():
    """Every analysis item in the repository, loaded by panther_analysis_tool (once: the loader
    validates every file, and tests ask for the YAML tests often). Treat it as read-only."""
    specs, invalid = load_analysis(str(REPO_ROOT), False, [], [], False)
    assert not invalid, invalid
    return specs


def rule_spec(rule_id=RULE_ID):
    (item,) = [d for d in load_specs().detections if d.analysis_spec.get("RuleID") == rule_id]
    return item.analysis_spec


def yaml_tests(rule_id=RULE_ID):
    return rule_spec(rule_id)["Tests"]


def yaml_test(name, rule_id=RULE_ID):
    (test,) = [t for t in yaml_tests(rule_id) if t["Name"] == name]
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


def rule_source_with(tmp_path, path=RULE_FILE, **assignments):
    """A copy of a rule or helper file with top-level assignments replaced, as a user would
    edit it."""
    source = path.read_text()
    for name, value in assignments.items():
        # A one-line value, or a list or dict spread over lines up to its closing bracket.
        pattern = re.compile(
            rf"^{name} = (?:\[(?:\]|\n.*?^\])|\{{(?:\}}|\n.*?^\}})|[^\[{{\n][^\n]*)$", re.M | re.S
        )
        source, count = pattern.subn(f"{name} = {value!r}", source)
        assert count == 1, f"no assignment of {name} in {path.name}"
    edited = tmp_path / f"edited_{uuid.uuid4().hex}.py"
    edited.write_text(source)
    return edited


FAMILY_FILE = HELPERS_DIR / "vpce_family.py"


def family_with(tmp_path, **assignments):
    """A copy of the vpce_family helper with settings edited, as a module."""
    return load_module(rule_source_with(tmp_path, FAMILY_FILE, **assignments), "vpce_family")


def importing(family):
    """Within the block, rules loaded import `family` as vpce_family (put back afterwards)."""
    return patch.dict(sys.modules, {"vpce_family": family})


def rules_with_family(tmp_path, **assignments):
    """Both rules, loaded against a copy of the vpce_family helper with settings edited."""
    with importing(family_with(tmp_path, **assignments)):
        return load_module(RULE_FILE), load_module(BULK_RULE_FILE)
