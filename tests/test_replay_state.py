"""What a rule keeps between events: which module globals count as state, how pass 1 leaves
them and the key-value store as they were, and what is said of state the replay cannot see
coming."""

import json
import types

import pytest
from test_replay_support import external_get, run_cli, scratch_repository, write_jsonl

from detection_replay.kv_store import KeyValueStore
from detection_replay.rules import ModuleState, module_state

STATE_CASES = [
    pytest.param(
        "SEEN = set()\n\ndef rule(e):\n    SEEN.add(e.get('x'))\n    return True\n",
        (["SEEN"], []),
        id="a module-level set added to",
    ),
    pytest.param(
        "COUNT = 0\n\ndef rule(e):\n    global COUNT\n    COUNT += 1\n    return COUNT > 2\n",
        (["COUNT"], []),
        id="a global rebound",
    ),
    pytest.param(
        "TABLE = {}\n\ndef remember(e):\n    TABLE[e.get('k')] = 1\n\n"
        "def rule(e):\n    remember(e)\n    return False\n",
        (["TABLE"], []),
        id="changed by a helper function of the module",
    ),
    pytest.param(
        "HITS = {}\n\ndef rule(e):\n    global HITS\n    HITS = {}\n"
        "    x = 1\n    return bool(HITS)\n",
        (["HITS"], ["HITS"]),
        id="set afresh on entry (panther-analysis's pattern)",
    ),
    pytest.param(
        "def rule(e):\n    global FLAG, CACHE\n    FLAG = False\n    CACHE = ''\n"
        "    CACHE = e.get('k')\n    return True\n",
        (["CACHE", "FLAG"], ["CACHE", "FLAG"]),
        id="globals first defined by rule(), constants first",
    ),
    pytest.param(
        "LAST = None\n\ndef rule(e):\n    global LAST\n    LAST = e\n    return True\n",
        ([], []),
        id="a memo of the event itself",
    ),
    pytest.param(
        "LAST = (None, None)\n\ndef rule(e):\n    global LAST\n"
        "    LAST = (e, 1)\n    return True\n",
        ([], []),
        id="a memo keyed on the event",
    ),
    pytest.param(
        "LAST = None\n\ndef rule(e):\n    global LAST\n    LAST = e.get('k')\n    return True\n",
        (["LAST"], []),
        id="a value from the event is state",
    ),
    pytest.param(
        "NAMES = {'a'}\n\ndef rule(e):\n    NAMES = set()\n    NAMES.add(1)\n"
        "    return 'a' in NAMES\n",
        ([], []),
        id="a local of the same name",
    ),
    pytest.param(
        "LIMITS = {'a': 1}\n\ndef rule(e):\n    return e.get('n', 0) > LIMITS['a']\n",
        ([], []),
        id="read only",
    ),
]


@pytest.mark.parametrize(("source", "expected"), STATE_CASES)
def test_which_globals_are_state(source, expected):
    assert module_state(source) == expected


def module_of(source):
    module = types.ModuleType("scratch_rule")
    exec(compile(source, "scratch_rule.py", "exec"), vars(module))  # our own source
    return module


def state_of(module, source, tmp_path):
    path = tmp_path / "scratch_rule.py"
    path.write_text(source)
    return ModuleState.of(module, path)


def test_pass_1_puts_a_changed_global_back_in_place(tmp_path):
    source = "SEEN = ['first']\n\ndef rule(e):\n    SEEN.append(e)\n    return True\n"
    module = module_of(source)
    state = state_of(module, source, tmp_path)
    held = module.SEEN  # what a function or another module may hold on to
    assert not state.changed()
    module.rule("x")
    assert state.changed()
    assert module.SEEN is held
    assert held == ["first"]
    assert not state.changed()


def test_a_global_first_defined_by_a_call_is_removed_again(tmp_path):
    source = "def rule(e):\n    global SEEN\n    SEEN = e.upper()\n    return True\n"
    module = module_of(source)
    state = state_of(module, source, tmp_path)
    module.rule("x")
    assert state.changed()
    assert not hasattr(module, "SEEN")


def test_a_module_without_state_has_no_module_state(tmp_path):
    source = "def rule(e):\n    return True\n"
    assert state_of(module_of(source), source, tmp_path) is None


# --- the key-value store as a probe ---------------------------------------------------------------


def test_the_probe_answers_as_an_empty_store_and_keeps_nothing():
    store = KeyValueStore(now=1_800_000_000)
    store.put_string_set("kept", ["a"])
    store.start_probing()
    calls = store.calls
    assert store.get_string_set("kept") == set()
    assert store.increment_counter("n") == 1
    assert store.increment_counter("n") == 2  # within one evaluation it is a store
    assert store.calls > calls
    store.forget_probe()
    assert store.increment_counter("n") == 1  # the next evaluation starts from nothing
    store.stop_probing()
    assert store.get_string_set("kept") == {"a"}
    assert store.get_counter("n") == 0


# --- state the replay cannot see coming -----------------------------------------------------------

# Its dict is changed through an argument: no global statement, no method call on the global.
HIDDEN_STATE_RULE = """
SEEN = {"count": 0}


def bump(table):
    table["count"] += 1


def rule(event):
    bump(SEEN)
    return SEEN["count"] % 2 == 0
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_state_found_changed_while_replaying_is_said_on_stderr_and_in_the_report(
    capsys, tmp_path, jobs
):
    repository = scratch_repository(tmp_path, HIDDEN_STATE_RULE)
    logs = tmp_path / "logs"
    for number in range(3):
        write_jsonl(logs / f"{number}.jsonl", [external_get(10 * number + m) for m in range(4)])
    status, out, err = run_cli(
        capsys, "--path", repository, "--format", "json", "--jobs", jobs, logs
    )
    document = json.loads(out)
    assert document["rules_keeping_state"] == [
        {"rule_id": "Scratch.Rule", "globals": ["SEEN"], "handled": False}
    ]
    assert document["helpers_keeping_state"] == []
    assert (
        "detection-replay: rule Scratch.Rule keeps state in module globals: SEEN (found changed "
        "while replaying; its alerts may depend on the order of the events)"
    ) in err
    assert status == 0


def test_state_a_helper_keeps_is_said_too(capsys, tmp_path):
    repository = scratch_repository(
        tmp_path, "from tally import bump\n\ndef rule(event):\n    return bump()\n"
    )
    helpers = repository / "global_helpers"
    (helpers / "tally.py").write_text(
        "CALLS = []\n\ndef bump():\n    CALLS.append(1)\n    return len(CALLS) == 3\n"
    )
    (helpers / "tally.yml").write_text(
        "AnalysisType: global\nFilename: tally.py\nGlobalID: tally\n"
    )
    logs = write_jsonl(tmp_path / "logs.jsonl", [external_get(m) for m in range(4)])
    _, out, err = run_cli(capsys, "--path", repository, "--format", "json", logs)
    assert json.loads(out)["helpers_keeping_state"] == [{"helper": "tally", "globals": ["CALLS"]}]
    assert "helper tally keeps state in module globals: CALLS" in err


def test_the_packages_own_rule_keeps_no_state(capsys):
    status, out, err = run_cli(capsys, "--format", "json")
    document = json.loads(out)
    assert (document["rules_keeping_state"], document["helpers_keeping_state"]) == ([], [])
    assert "keeps state" not in err
    assert status == 0
