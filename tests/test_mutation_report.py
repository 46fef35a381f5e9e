"""mutation/run.py's verdict on a session: what fails it and what does not."""

import importlib.util
import sys

import pytest
from cosmic_ray import work_item
from cosmic_ray.work_item import MutationSpec, WorkerOutcome, WorkItem, WorkResult
from repo import REPO_ROOT

Outcome = work_item.TestOutcome  # by another name: pytest would collect a Test* class

MUTATION_DIR = REPO_ROOT / "mutation"


@pytest.fixture(scope="module")
def run():
    sys.path.insert(0, str(MUTATION_DIR))  # run.py imports its fork server's module by name
    try:
        spec = importlib.util.spec_from_file_location("mutation_run", MUTATION_DIR / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(MUTATION_DIR))


FILE = "global_helpers/example.py"
DIFF = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-    if a is None:\n+    if a == None:\n"
KEY = (FILE, "check", "core/ReplaceComparisonOperator_Is_Eq", "if a == None:")


def outcome(test_outcome, output=None):
    item = WorkItem.single(
        "job",
        MutationSpec(
            module_path=FILE,
            operator_name=KEY[2],
            occurrence=0,
            start_pos=(1, 4),
            end_pos=(1, 15),
            definition_name="check",
        ),
    )
    result = WorkResult(
        worker_outcome=WorkerOutcome.NORMAL, output=output, test_outcome=test_outcome, diff=DIFF
    )
    return item, result


LISTED = {KEY: "a is None or an int, and no int equals None"}

VERDICTS = {
    # case: (outcome, equivalents, whether the session passes, whether an entry is stale)
    "killed": (outcome(Outcome.KILLED), {}, True, False),
    "survivor listed": (outcome(Outcome.SURVIVED), LISTED, True, False),
    "survivor not listed": (outcome(Outcome.SURVIVED), {}, False, False),
    "listed but killed": (outcome(Outcome.KILLED), LISTED, False, True),
    "listed, only out of time": (outcome(Outcome.KILLED, "timeout"), LISTED, True, False),
    "not listed, out of time": (outcome(Outcome.KILLED, "timeout"), {}, True, False),
}


@pytest.mark.parametrize("case", VERDICTS)
def test_report_verdict(run, capsys, case):
    result, equivalents, passes, stale = VERDICTS[case]
    assert run.report([result], equivalents, only=None, elapsed=1.0) is passes
    assert ("STALE" in capsys.readouterr().out) is stale
