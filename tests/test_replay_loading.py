"""A rule that cannot be loaded is named with its reason, every other rule is still replayed,
and the exit status says the run was incomplete (8; 5 when no rule at all could be loaded)."""

import json

import pytest
from test_replay_support import mixed_records, run_cli, scratch_repository, write_jsonl

from detection_replay import cli

GOOD_RULE = "AWS.CloudTrail.VPCE.S3ExternalIP"
CLOUDTRAIL_RULE_YAML = (
    "AnalysisType: rule\nFilename: {name}.py\nRuleID: {rule_id}\nEnabled: true\n"
    "LogTypes:\n  - {log_type}\nSeverity: Low\n"
)
BROKEN = [
    pytest.param(
        (
            "import policyuniverse_not_installed\n\ndef rule(event):\n    return True\n",
            "",
            "ModuleNotFoundError: No module named 'policyuniverse_not_installed'",
        ),
        id="a third-party module not installed",
    ),
    pytest.param(("def rule(event)\n    return True\n", "", "SyntaxError"), id="a syntax error"),
    pytest.param(
        (
            "def title(event):\n    return 'no rule'\n",
            "",
            "detection needs to have a method named 'rule'",
        ),
        id="no rule function",
    ),
    pytest.param(
        ("raise RuntimeError('refuses to load')\n", "", "RuntimeError: refuses to load"),
        id="raises on import",
    ),
    pytest.param(
        ("def rule(event):\n    return True\n", "NoSuchKey: 1\n", "invalid analysis item"),
        id="a spec with an unknown key",
    ),
]


def add_rule(repository, name, source, rule_id, *, extra_yaml="", log_type="AWS.CloudTrail"):
    (repository / "rules" / f"{name}.py").write_text(source)
    (repository / "rules" / f"{name}.yml").write_text(
        CLOUDTRAIL_RULE_YAML.format(name=name, rule_id=rule_id, log_type=log_type) + extra_yaml
    )


@pytest.fixture
def events(tmp_path):
    return write_jsonl(tmp_path / "events.jsonl", mixed_records())


@pytest.mark.parametrize("broken", BROKEN)
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_other_rules_are_replayed_and_the_run_says_it_is_incomplete(
    capsys, tmp_path, events, broken, jobs
):
    source, extra_yaml, reason = broken
    repository = scratch_repository(tmp_path)
    add_rule(repository, "broken", source, "Broken.Rule", extra_yaml=extra_yaml)
    status, out, err = run_cli(
        capsys, "--path", repository, "--format", "json", "--jobs", jobs, events, events
    )
    document = json.loads(out)
    assert status == document["exit_status"] == cli.EXIT_RULES_NOT_LOADED
    (entry,) = document["rules_not_loaded"]
    assert entry["rule_id"] == "Broken.Rule"
    assert entry["file"].endswith(("broken.py", "broken.yml"))
    assert reason in entry["error"]
    replayed = {rule["rule_id"]: rule for rule in document["rules"]}
    assert "Broken.Rule" not in replayed
    assert replayed[GOOD_RULE]["alert_count"] == 1  # the package's rules, replayed as ever
    assert f"rule not loaded: Broken.Rule: {entry['error']}" in err


@pytest.mark.parametrize("report_format", ["text", "json", "jsonl"])
def test_every_format_names_the_rule_on_stderr_and_text_in_the_report(
    capsys, tmp_path, events, report_format
):
    repository = scratch_repository(tmp_path)
    add_rule(repository, "broken", "import not_installed_module\n", "Broken.Rule")
    status, out, err = run_cli(capsys, "--path", repository, "--format", report_format, events)
    assert status == cli.EXIT_RULES_NOT_LOADED
    line = "Broken.Rule: ModuleNotFoundError: No module named 'not_installed_module'"
    assert f"detection-replay: rule not loaded: {line}" in err
    if report_format == "text":
        assert f"Rules not loaded: 1\n  {line}\n" in out


def test_an_invalid_item_the_replay_would_not_run_is_not_reported(capsys, tmp_path, events):
    repository = scratch_repository(tmp_path)
    add_rule(
        repository,
        "okta",
        "def rule(e):\n    return 1\n",
        "Okta.Rule",
        extra_yaml="NoSuchKey: 1\n",
        log_type="Okta.SystemLog",
    )
    add_rule(
        repository, "off", "def rule(e):\n    return 1\n", "Off.Rule", extra_yaml="NoSuchKey: 1\n"
    )
    off = repository / "rules" / "off.yml"
    off.write_text(off.read_text().replace("Enabled: true", "Enabled: false"))
    (repository / "packs").mkdir()
    (repository / "packs" / "broken.yml").write_text("AnalysisType: pack\nNoSuchKey: 1\n")
    status, out, _ = run_cli(capsys, "--path", repository, "--format", "json", events)
    assert status == cli.EXIT_OK
    assert json.loads(out)["rules_not_loaded"] == []


def test_an_invalid_helper_is_reported_beside_the_rules_it_takes_down(capsys, tmp_path, events):
    repository = scratch_repository(tmp_path)
    helpers = repository / "global_helpers"
    (helpers / "shared_thing.py").write_text("VALUE = 1\n")
    (helpers / "shared_thing.yml").write_text(
        "AnalysisType: global\nFilename: shared_thing.py\nGlobalID: shared_thing\nNoSuchKey: 1\n"
    )
    add_rule(
        repository,
        "user",
        "from shared_thing import VALUE\n\ndef rule(e):\n    return False\n",
        "Uses.Helper",
    )
    status, out, _ = run_cli(capsys, "--path", repository, "--format", "json", events)
    assert status == cli.EXIT_RULES_NOT_LOADED
    entries = {entry["rule_id"]: entry for entry in json.loads(out)["rules_not_loaded"]}
    assert set(entries) == {None, "Uses.Helper"}
    assert entries[None]["file"].endswith("shared_thing.yml")
    assert "No module named 'shared_thing'" in entries["Uses.Helper"]["error"]


def test_an_unreadable_input_outranks_a_rule_not_loaded(capsys, tmp_path, events):
    repository = scratch_repository(tmp_path)
    add_rule(repository, "broken", "import not_installed_module\n", "Broken.Rule")
    status, _, _ = run_cli(capsys, "--path", repository, events, tmp_path / "missing.jsonl")
    assert status == cli.EXIT_UNREADABLE_INPUT


def test_when_no_rule_can_be_loaded_the_status_is_5_and_every_reason_is_named(
    capsys, tmp_path, events
):
    repository = scratch_repository(tmp_path, "import first_missing\n")
    add_rule(repository, "second", "import second_missing\n", "Second.Rule")
    status, _, err = run_cli(capsys, "--path", repository, events)
    assert status == cli.EXIT_RULES_UNLOADABLE
    assert "no enabled AWS.CloudTrail rule could be loaded" in err
    assert "No module named 'first_missing'" in err
    assert "No module named 'second_missing'" in err
