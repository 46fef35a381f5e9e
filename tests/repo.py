"""The repository as panther_analysis_tool sees it, for tests and tools alike.

Global helpers are importable by GlobalID (as Panther makes them), the rule module can be loaded
as-is or with an override assignment edited, and the YAML tests are read with the tool's own
loader so they stay the single source of test logs.
"""

import contextlib
import functools
import gzip
import importlib.util
import json
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import MagicMock, patch

from panther_analysis_tool.analysis_utils import load_analysis
from panther_core.rule import Rule

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


def rule_path(rule_id=RULE_ID):
    """The rule's Python file, as its YAML names it."""
    (item,) = [d for d in load_specs().detections if d.analysis_spec.get("RuleID") == rule_id]
    return Path(item.dir_name, item.analysis_spec["Filename"])


def panther_engine(rule_id=RULE_ID, path=None):
    """panther_core's engine for a rule, configured from its YAML as Panther configures it (the
    YAML's severity is what "DEFAULT" resolves to); `path` loads another copy of its code."""
    spec = rule_spec(rule_id)
    return Rule(
        {
            "id": rule_id,
            "analysisType": "RULE",
            "versionId": "0",
            "path": str(path or rule_path(rule_id)),
            "severity": spec["Severity"].upper(),
            "dedupPeriodMinutes": spec.get("DedupPeriodMinutes", 60),
        }
    )


SAMPLES = REPO_ROOT / "samples" / "cloudtrail"


@functools.cache
def _sample_records():
    return tuple(
        record
        for path in sorted(SAMPLES.rglob("*.json.gz"))
        for record in json.loads(gzip.decompress(path.read_bytes()))["Records"]
    )


def sample_records():
    """Every record of the sample day, in file order (a fresh list of the records read once:
    treat the records as read-only)."""
    return list(_sample_records())


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


def engine_errors(result):
    """The exceptions a panther_core DetectionResult holds, by the function that raised them."""
    return {
        name: value
        for name, value in vars(result).items()
        if name.endswith("_exception") and value is not None
    }


def cloudtrail_time(epoch):
    """An epoch as CloudTrail writes eventTime."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
