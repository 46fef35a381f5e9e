"""make add-to-fork: the package copied into a panther-analysis fork (tools/add_to_fork.py).

Against tests/fixtures/.fork (a fork in miniature, written for these tests) with this project's
own panther_analysis_tool; and, where PANTHER_ANALYSIS_CHECKOUT and FORK_TOOLCHAIN_BIN are set,
against a copy of a real checkout with the fork's own pinned toolchain. What the package holds is
read from its YAML here too, never listed by hand.
"""

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from repo import REPO_ROOT, RULE_ID, load_specs

TOOL = REPO_ROOT / "tools" / "add_to_fork.py"
FIXTURE = REPO_ROOT / "tests" / "fixtures" / ".fork"
PAT = Path(sys.executable).with_name("panther_analysis_tool")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _load_tool():
    spec = importlib.util.spec_from_file_location("add_to_fork", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


add_to_fork = _load_tool()


# --- What the package holds, from its own YAML -------------------------------------------------


def package_items(kind):
    specs = load_specs()
    groups = {
        "rule": specs.detections,
        "global": specs.globals,
        "lookup_table": specs.lookup_tables,
        "pack": specs.packs,
    }
    return [item for item in groups[kind] if item.analysis_spec["AnalysisType"] == kind]


def spec_id(item):
    return add_to_fork.get_spec_id(item.analysis_spec)


def item_files(item):
    """The item's spec and its Filename, relative to the repository."""
    spec_file = Path(item.dir_name, item.file_name).relative_to(REPO_ROOT)
    named = item.analysis_spec.get("Filename")
    return [spec_file] + ([spec_file.parent / named] if named else [])


RULE_IDS = sorted(spec_id(item) for item in package_items("rule"))


def per_event_rule():
    (rule,) = [item for item in package_items("rule") if spec_id(item) == RULE_ID]
    return rule


GLOBAL_IDS = sorted(spec_id(item) for item in package_items("global"))
(OUR_PACK,) = package_items("pack")
OUR_PACK_FILE = item_files(OUR_PACK)[0]
(LOOKUP_TABLE,) = package_items("lookup_table")


def python_imports(path):
    """Top-level module names a Python file imports (read with ast, not the tool's regex)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def helpers_imported_by(paths):
    """The package's GlobalIDs the files import, directly or through another helper."""
    found, pending = set(), list(paths)
    while pending:
        for name in python_imports(pending.pop()) & set(GLOBAL_IDS) - found:
            found.add(name)
            pending.append(REPO_ROOT / "global_helpers" / f"{name}.py")
    return sorted(found)


# --- Running things ----------------------------------------------------------------------------


def run_tool(capsys, *args):
    code = add_to_fork.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root):
    """Every file below root and its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(Path(root).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def pat_run(tool, root, *args):
    return subprocess.run(
        [str(tool), "--skip-version-check", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def pat_verdicts(stdout, detection_ids):
    """panther_analysis_tool test's verdicts: {(detection ID, test name): PASS or FAIL}, and its
    summary counts. A detection's heading is its ID alone on a line; rules' own prints land
    among the results too, so only known IDs count as headings."""
    results, summary, detection = {}, {}, None
    lines = iter(ANSI.sub("", stdout).splitlines())
    for line in lines:
        if line.startswith("-----"):
            break
        if match := re.fullmatch(r"\t\[(PASS|FAIL)\] (.*)", line):
            results[(detection, match.group(2))] = match.group(1)
        elif line in detection_ids:
            detection = line
    for line in lines:
        if match := re.fullmatch(r"\t(Passed|Failed|Invalid|Skipped): (\d+)", line):
            summary[match.group(1)] = int(match.group(2))
    return results, summary


@pytest.fixture
def fork(tmp_path):
    """A fresh copy of the fixture fork."""
    root = tmp_path / "fork"
    shutil.copytree(FIXTURE, root)
    return root


# --- Installing into the fixture ---------------------------------------------------------------


def test_every_file_of_the_package_lands_in_the_fork(fork, capsys):
    before = snapshot(fork)
    code, out, err = run_tool(capsys, fork)
    assert (code, err) == (0, "")
    after = snapshot(fork)
    rule_dir = "rules/aws_cloudtrail_rules"  # where the fixture keeps its copy of our RuleID
    for kind in ("rule", "global", "lookup_table"):
        for item in package_items(kind):
            for path in item_files(item):
                placed = f"{rule_dir}/{path.name}" if kind == "rule" else path.as_posix()
                assert after[placed] == (REPO_ROOT / path).read_bytes(), placed
                assert f" {placed}" in out
    schema = next(
        path
        for path in (REPO_ROOT / "schemas").glob("*.yml")
        if yaml.safe_load(path.read_text())["schema"] == LOOKUP_TABLE.analysis_spec["Schema"]
    )
    assert after[f"schemas/{schema.name}"] == schema.read_bytes()
    assert OUR_PACK_FILE.as_posix() in after
    untouched = (
        set(before)
        - {"packs/aws.yml"}
        - {f"{rule_dir}/{path.name}" for item in package_items("rule") for path in item_files(item)}
    )
    assert {path: after[path] for path in untouched} == {path: before[path] for path in untouched}


def test_the_managed_pack_gains_exactly_the_helpers_our_rules_import(fork, capsys):
    old = (fork / "packs" / "aws.yml").read_text()
    run_tool(capsys, fork)
    new = (fork / "packs" / "aws.yml").read_text()
    rule_files = [REPO_ROOT / item_files(rule)[1] for rule in package_items("rule")]
    expected = helpers_imported_by(rule_files)
    assert expected  # the rule imports its helpers by GlobalID
    assert new == old + "".join(f"    - {helper}\n" for helper in expected)


@pytest.mark.parametrize(
    ("data_models", "added_lines"),
    [(True, "    - Standard.AWS.CloudTrail\n"), (False, "")],
    ids=["the fork has Standard.AWS.CloudTrail", "the fork has no data model"],
)
def test_our_pack_lists_the_forks_data_model_for_our_log_types(
    fork, capsys, data_models, added_lines
):
    if not data_models:
        shutil.rmtree(fork / "data_models")
    run_tool(capsys, fork)
    ours = (REPO_ROOT / OUR_PACK_FILE).read_text()
    assert (fork / OUR_PACK_FILE).read_text() == ours + added_lines


def test_the_output_names_every_change_and_what_is_left_to_the_user(fork, capsys):
    _, out, _ = run_tool(capsys, fork)
    assert re.search(r"updated +packs/aws\.yml +\(PantherManaged\.AWS\.Core now also lists", out)
    assert "was the fork's copy of AWS.CloudTrail.VPCE.S3ExternalIP" in out
    assert "note: PantherManaged.AWS.Core (packs/aws.yml) also lists" in out
    assert "panther_analysis_tool update-custom-schemas --path schemas" in out


def test_a_second_run_changes_nothing(fork, capsys):
    run_tool(capsys, fork)
    first = snapshot(fork)
    code, out, _ = run_tool(capsys, fork)
    assert code == 0
    assert snapshot(fork) == first
    assert "nothing to change" in out


def test_a_dry_run_changes_nothing_and_says_what_it_would(fork, capsys):
    before = snapshot(fork)
    code, out, _ = run_tool(capsys, fork, "--dry-run")
    assert code == 0
    assert snapshot(fork) == before
    assert re.search(r"would be updated +packs/aws\.yml", out)


def test_the_make_target_runs_the_tool_and_asks_for_fork(fork):
    make = ["make", "--no-print-directory", "-C", str(REPO_ROOT), "add-to-fork"]
    usage = subprocess.run(make, capture_output=True, text=True, check=False, timeout=300)
    assert usage.returncode == 2
    assert "usage: make add-to-fork FORK=" in usage.stderr
    done = subprocess.run(
        [*make, f"FORK={fork}"], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "added              global_helpers/" in done.stdout


def test_the_fixture_is_invisible_to_this_repositorys_own_tools():
    """panther_analysis_tool skips hidden directories only: the fixture's rules must not be loaded
    (and zipped, and uploaded) beside the package's."""
    loaded = [Path(item.dir_name) for item in load_specs().items()]
    assert loaded
    assert not [path for path in loaded if REPO_ROOT / "tests" in path.parents]


# --- panther_analysis_tool's verdict on the fixture -------------------------------------------


def assert_own_results_kept_plus_ours(before, after):
    (old, old_summary), (new, new_summary) = before, after
    theirs = {key: verdict for key, verdict in old.items() if key[0] not in RULE_IDS}
    assert {key: verdict for key, verdict in new.items() if key[0] not in RULE_IDS} == theirs
    ours = {key: verdict for key, verdict in new.items() if key[0] in RULE_IDS}
    expected = {
        (spec_id(rule), test["Name"])
        for rule in package_items("rule")
        for test in rule.analysis_spec["Tests"]
    }
    assert set(ours) == expected
    assert set(ours.values()) == {"PASS"}
    assert (new_summary["Failed"], new_summary["Invalid"]) == (
        old_summary["Failed"],
        old_summary["Invalid"],
    )


def detection_ids(root):
    return {
        item.id
        for item in add_to_fork.load_items(root, [root], strict=False)
        if item.kind in add_to_fork.DETECTION_TYPES
    }


@pytest.mark.slow
def test_the_forks_tests_pass_with_their_results_unchanged_plus_ours(fork, capsys):
    ids = detection_ids(fork) | set(RULE_IDS)
    before = pat_run(PAT, fork, "test")
    assert before.returncode == 0, before.stdout[-3000:]
    assert pat_run(PAT, fork, "check-packs").returncode == 0
    run_tool(capsys, fork)
    after = pat_run(PAT, fork, "test")
    assert after.returncode == 0, after.stdout[-3000:]
    assert_own_results_kept_plus_ours(
        pat_verdicts(before.stdout, ids), pat_verdicts(after.stdout, ids)
    )
    packs = pat_run(PAT, fork, "check-packs")
    assert packs.returncode == 0, packs.stdout + packs.stderr


@pytest.mark.slow
def test_check_packs_fails_without_the_pack_edits(fork, capsys):
    """The edits are what check-packs needs: undone, it names the helpers and the data model."""
    old_pack = (fork / "packs" / "aws.yml").read_bytes()
    run_tool(capsys, fork)
    (fork / "packs" / "aws.yml").write_bytes(old_pack)
    (fork / OUR_PACK_FILE).write_bytes((REPO_ROOT / OUR_PACK_FILE).read_bytes())
    packs = pat_run(PAT, fork, "check-packs")
    assert packs.returncode == 1
    named = set(re.findall(r"^\t(\S+)$", packs.stdout + packs.stderr, re.M))
    # check-packs reads one-line imports only (not `from x import (` lists): it names some of
    # the helpers, all of them ours, and the data model.
    assert "Standard.AWS.CloudTrail" in named
    assert named - {"Standard.AWS.CloudTrail"}
    assert named - {"Standard.AWS.CloudTrail"} <= set(GLOBAL_IDS)


# --- A package with more rules: IDs come from its YAML ----------------------------------------

NEW_RULE = """from {helper} import {name}


def rule(event):
    return event.get("eventType") == "AwsVpceEvent" and bool({name})
"""


def new_rule_spec(rule_id, file_name):
    test_log = {"eventType": "AwsVpceEvent", "p_log_type": "AWS.CloudTrail"}
    return {
        "AnalysisType": "rule",
        "Filename": file_name,
        "RuleID": rule_id,
        "DisplayName": rule_id,
        "Enabled": True,
        "LogTypes": ["AWS.CloudTrail"],
        "Severity": "Low",
        "Tests": [
            {"Name": f"{rule_id} matches", "ExpectedResult": True, "Log": test_log},
            {"Name": f"{rule_id} ignores", "ExpectedResult": False, "Log": {"eventType": "x"}},
        ],
    }


@pytest.fixture
def bigger_package(tmp_path):
    """This package plus a new rule, and its AccessDenied (a RuleID of a managed rule the fixture
    holds) replaced by a rule under a file name of its own."""
    root = tmp_path / "package"
    for name in (*add_to_fork.PACKAGE_DIRS, add_to_fork.SCHEMAS_DIR):
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, root / name)
    new_rules = {
        "aws_vpce_s3_bulk_access": ("AWS.CloudTrail.VPCE.S3BulkAccess", "public_ip", "ip_address"),
        "aws_vpce_denied_strict": (
            "AWS.CloudTrail.VPCE.AccessDenied",
            "cloudtrail_context",
            "json_safe",
        ),
    }
    for suffix in (".py", ".yml"):  # the package's own AccessDenied, under another file name
        (root / "rules" / f"aws_vpce_access_denied{suffix}").unlink()
    for stem, (rule_id, helper, name) in new_rules.items():
        (root / "rules" / f"{stem}.py").write_text(NEW_RULE.format(helper=helper, name=name))
        spec = new_rule_spec(rule_id, f"{stem}.py")
        (root / "rules" / f"{stem}.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    pack_file = root / OUR_PACK_FILE
    pack = yaml.safe_load(pack_file.read_text())
    ids = pack["PackDefinition"]["IDs"]
    ids += [rule_id for rule_id, _, _ in new_rules.values() if rule_id not in ids]
    pack_file.write_text(yaml.safe_dump(pack, sort_keys=False))
    return root


def test_every_rule_of_a_bigger_package_is_placed_by_its_own_id(fork, bigger_package, capsys):
    denied_only = "AnalysisType: pack\nPackID: Fixture.Denied\nDisplayName: Denied\n"
    denied_only += "Description: Lists one managed rule\nPackDefinition:\n  IDs:\n"
    denied_only += "    - AWS.CloudTrail.VPCE.AccessDenied\n"
    (fork / "packs" / "denied.yml").write_text(denied_only)
    code, out, err = run_tool(capsys, fork, "--package", bigger_package)
    assert (code, err) == (0, ""), out
    rules = fork / "rules" / "aws_cloudtrail_rules"
    for stem in ("aws_vpce_s3_bulk_access", "aws_vpce_denied_strict", "aws_vpce_s3_external_ip"):
        for suffix in (".py", ".yml"):
            assert (rules / f"{stem}{suffix}").read_bytes() == (
                bigger_package / "rules" / f"{stem}{suffix}"
            ).read_bytes()
    assert not (rules / "aws_vpce_access_denied.py").exists()
    assert not (rules / "aws_vpce_access_denied.yml").exists()
    assert "removed            rules/aws_cloudtrail_rules/aws_vpce_access_denied.py" in out
    # Only the helpers its one rule of ours imports, through cloudtrail_context: cloudtrail_fields.
    assert (fork / "packs" / "denied.yml").read_text() == (
        denied_only
        + "    - cloudtrail_context\n    - cloudtrail_fields\n    - Standard.AWS.CloudTrail\n"
    )
    assert "note: Fixture.Denied (packs/denied.yml) also lists" in out


@pytest.mark.slow
def test_a_bigger_package_passes_the_forks_checks(fork, bigger_package, capsys):
    before = pat_run(PAT, fork, "test")
    run_tool(capsys, fork, "--package", bigger_package)
    after = pat_run(PAT, fork, "test")
    assert after.returncode == 0, after.stdout[-3000:]
    ids = detection_ids(fork) | {"AWS.CloudTrail.VPCE.AccessDenied"}
    old, _ = pat_verdicts(before.stdout, ids)
    new, _ = pat_verdicts(after.stdout, ids)
    assert ("AWS.CloudTrail.VPCE.S3BulkAccess", "AWS.CloudTrail.VPCE.S3BulkAccess matches") in new
    assert not [key for key in new if key[1].startswith("Managed copy")]
    assert {k: v for k, v in new.items() if k[0] == "Fixture.AWS.Console.RootLogin"} == {
        k: v for k, v in old.items() if k[0] == "Fixture.AWS.Console.RootLogin"
    }
    packs = pat_run(PAT, fork, "check-packs")
    assert packs.returncode == 0, packs.stdout + packs.stderr


def test_an_earlier_copy_of_ours_is_updated_in_place(fork, bigger_package, capsys):
    run_tool(capsys, fork, "--package", bigger_package)
    helper = bigger_package / "global_helpers" / "public_ip.py"
    helper.write_text(helper.read_text() + "\n# a later version of the helper\n")
    code, out, err = run_tool(capsys, fork, "--package", bigger_package)
    assert (code, err) == (0, "")
    assert (fork / "global_helpers" / "public_ip.py").read_bytes() == helper.read_bytes()
    assert [line.split()[0:2] for line in out.splitlines()[1:] if not line.startswith("note")] == [
        ["replaced", "global_helpers/public_ip.py"]
    ]


# --- Refusals: a clear message, and nothing touched --------------------------------------------


def _schema_name():
    return LOOKUP_TABLE.analysis_spec["Schema"]


def _lookup_name():
    return spec_id(LOOKUP_TABLE)


def _write(root, path, text):
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _not_there(fork, package):
    return fork / "no-such-fork", package


def _a_file(fork, package):
    _write(fork, "README.txt", "not a repository")
    return fork / "README.txt", package


def _an_empty_directory(fork, package):
    (fork / "empty").mkdir()
    return fork / "empty", package


def _the_package_itself(fork, package):
    return package, package


def _inside_the_package(fork, package):
    for name in ("rules", "global_helpers"):
        (package / "tests" / "fixture" / name).mkdir(parents=True)
    return package / "tests" / "fixture", package


def _another_helper_with_our_global_id(fork, package):
    helper = GLOBAL_IDS[0]
    _write(
        fork,
        f"global_helpers/{helper}.yml",
        f"AnalysisType: global\nGlobalID: {helper}\n"
        f"Filename: {helper}.py\nDescription: the fork's own\n",
    )
    _write(fork, f"global_helpers/{helper}.py", "def mine():\n    return 1\n")
    return fork, package


def _our_global_id_under_another_name(fork, package):
    _write(
        fork,
        "global_helpers/ip_tools.yml",
        f"AnalysisType: global\nGlobalID: {GLOBAL_IDS[0]}\nFilename: ip_tools.py\n",
    )
    _write(fork, "global_helpers/ip_tools.py", "def mine():\n    return 1\n")
    return fork, package


def _an_unrelated_rule_where_ours_goes(fork, package):
    rules = fork / "rules" / "aws_cloudtrail_rules"
    for path in rules.glob("aws_vpce_s3_external_ip.*"):
        path.unlink()
    rule = per_event_rule()
    code_name = rule.analysis_spec["Filename"]
    spec = yaml.safe_load((rules / "aws_console_root_login.yml").read_text())
    spec.update(RuleID="Fixture.Other", Filename=code_name, Tests=spec["Tests"][:1])
    _write(rules, "other.yml", yaml.safe_dump(spec))
    _write(rules, code_name, (rules / "aws_console_root_login.py").read_text())
    return fork, package


def _a_pack_in_flow_style(fork, package):
    text = (fork / "packs" / "aws.yml").read_text()
    ids = yaml.safe_load(text)["PackDefinition"]["IDs"]
    head = text[: text.index("PackDefinition:")]
    _write(fork, "packs/aws.yml", head + f"PackDefinition:\n  IDs: [{', '.join(ids)}]\n")
    return fork, package


def _our_schema_name_in_another_file(fork, package):
    _write(fork, "schemas/theirs.yml", f"schema: {_schema_name()}\nfields: []\n")
    return fork, package


def _another_file_at_our_schemas_path(fork, package):
    schema = next((REPO_ROOT / "schemas").glob("*.yml"))
    _write(fork, f"schemas/{schema.name}", "schema: Custom.Theirs\nfields: []\n")
    return fork, package


def _another_lookup_table_with_our_name(fork, package):
    _write(
        fork,
        "lookup_tables/theirs/theirs.yml",
        f"AnalysisType: lookup_table\n"
        f"LookupName: {_lookup_name()}\nSchema: Custom.Theirs\nEnabled: false\n"
        "LogTypeMap:\n  PrimaryKey: ip\n  AssociatedLogTypes: []\n",
    )
    return fork, package


def _two_of_our_files_on_one_path(fork, package):
    spec_file, code_file = item_files(per_event_rule())
    twin = package / "rules" / "twin"
    twin.mkdir()
    spec = yaml.safe_load((REPO_ROOT / spec_file).read_text())
    spec["RuleID"] = "AWS.CloudTrail.VPCE.Twin"
    _write(twin, spec_file.name, yaml.safe_dump(spec))
    _write(twin, code_file.name, (REPO_ROOT / code_file).read_text())
    return fork, package


def _an_unreadable_spec_of_ours(fork, package):
    _write(package, "rules/broken.yml", "AnalysisType: rule\nRuleID: [unclosed\n")
    return fork, package


REFUSALS = {
    "fork does not exist": (_not_there, "does not exist"),
    "fork is a file": (_a_file, "is not a directory"),
    "not a detection repository": (_an_empty_directory, "is not a detection repository"),
    "this package's own repository": (_the_package_itself, "this package's own repository"),
    "a directory inside the package": (_inside_the_package, "this package's own repository"),
    "another helper with our GlobalID": (
        _another_helper_with_our_global_id,
        "already defines the global",
    ),
    "our GlobalID in another file": (
        _our_global_id_under_another_name,
        "ip_tools.yml already defines",
    ),
    "an unrelated file where our rule goes": (
        _an_unrelated_rule_where_ours_goes,
        "would overwrite fork files",
    ),
    "a managed pack in flow style": (
        _a_pack_in_flow_style,
        "cannot be extended by inserting lines",
    ),
    "our schema's name in another file": (
        _our_schema_name_in_another_file,
        "theirs.yml already defines the schema",
    ),
    "another file at our schema's path": (
        _another_file_at_our_schemas_path,
        "would overwrite fork files",
    ),
    "two of our files on one path": (_two_of_our_files_on_one_path, "would land on"),
    "an unreadable spec of ours": (_an_unreadable_spec_of_ours, "own specs cannot be read"),
    "a lookup table of our name": (
        _another_lookup_table_with_our_name,
        "already defines the lookup_table",
    ),
}


@pytest.fixture
def fork_and_package(fork, bigger_package):
    return fork, bigger_package


@pytest.mark.parametrize(("prepare", "message"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refusals_say_why_and_touch_nothing(tmp_path, fork_and_package, capsys, prepare, message):
    target, package = prepare(*fork_and_package)
    before = snapshot(tmp_path)
    code, out, err = run_tool(capsys, target, "--package", package)
    assert code == 2
    assert out == ""
    assert err.startswith("add-to-fork: refused, nothing was changed: ")
    assert message in err
    assert snapshot(tmp_path) == before


def test_malformed_fork_specs_are_left_alone(fork, capsys):
    """The fork's own broken files are the fork's tests' business: read around, never touched."""
    one_id = f"{{IDs: {RULE_IDS[0]}}}\n"  # a string where the list goes
    broken = {
        "packs/broken.yml": "AnalysisType: pack\nPackID: Broken\nPackDefinition: [x]\n",
        "packs/no_list.yml": "AnalysisType: pack\nPackID: NoList\nPackDefinition: " + one_id,
        "rules/odd/odd.yml": "AnalysisType: rule\nRuleID: Odd\nLogTypes: AWS.CloudTrail\n",
        "rules/odd/bad.yml": "AnalysisType: rule\nRuleID: [unclosed\n",
        "rules/odd/no_id.yml": "AnalysisType: rule\nFilename: x.py\n",
    }
    for path, text in broken.items():
        _write(fork, path, text)
    code, _, err = run_tool(capsys, fork)
    assert (code, err) == (0, "")
    assert {path: (fork / path).read_text() for path in broken} == broken


# --- Inserting IDs into a pack: only lines added ----------------------------------------------

PACK_HEAD = "AnalysisType: pack\nPackID: P\nPackDefinition:\n  IDs:\n"
INSERTIONS = {
    "plain list, comments and a key after it": (
        PACK_HEAD
        + "    # rules\n    - A.B\n    - c_d  # trailing comment\n    # end\nDisplayName: x\n",
        ["e_f"],
        PACK_HEAD + "    # rules\n    - A.B\n    - c_d  # trailing comment\n    - e_f\n    # end\n"
        "DisplayName: x\n",
    ),
    "double-quoted items": (
        PACK_HEAD + '    - "A.B"\n',
        ["c", "d"],
        PACK_HEAD + '    - "A.B"\n    - "c"\n    - "d"\n',
    ),
    "single-quoted items": (
        PACK_HEAD + "    - 'A.B'\n",
        ["it's"],
        PACK_HEAD + "    - 'A.B'\n    - 'it''s'\n",
    ),
    "an indentless list": (
        "PackDefinition:\n  IDs:\n  - a\n  - b\nPackID: P\n",
        ["c"],
        "PackDefinition:\n  IDs:\n  - a\n  - b\n  - c\nPackID: P\n",
    ),
    "CRLF line ends": (
        PACK_HEAD.replace("\n", "\r\n") + "    - a\r\n",
        ["b"],
        PACK_HEAD.replace("\n", "\r\n") + "    - a\r\n    - b\r\n",
    ),
    "no line break at the end": (PACK_HEAD + "    - a", ["b"], PACK_HEAD + "    - a\n    - b\n"),
    "IDs plain YAML would misread": (
        PACK_HEAD + "    - a\n",
        ["yes", "1.10", "x: y", "#z"],
        PACK_HEAD + '    - a\n    - "yes"\n    - "1.10"\n    - "x: y"\n    - "#z"\n',
    ),
    "nothing to add": (PACK_HEAD + "    - a\n", [], PACK_HEAD + "    - a\n"),
}


@pytest.mark.parametrize(
    ("text", "new_ids", "expected"), INSERTIONS.values(), ids=INSERTIONS.keys()
)
def test_ids_are_inserted_as_lines_after_the_last_item(text, new_ids, expected):
    assert add_to_fork.insert_pack_ids(text, new_ids) == expected


UNEDITABLE = {
    "flow style": "PackDefinition:\n  IDs: [a, b]\n",
    "empty list": "PackDefinition:\n  IDs: []\n",
    "no IDs": "PackDefinition:\n  Other: [a]\n",
    "last ID is a mapping": "PackDefinition:\n  IDs:\n    - a\n    - b: c\n",
    "last ID below its dash": "PackDefinition:\n  IDs:\n    - a\n    -\n      b\n",
    "not YAML": "PackDefinition: [\n",
}


@pytest.mark.parametrize("text", UNEDITABLE.values(), ids=UNEDITABLE.keys())
def test_a_pack_that_cannot_take_lines_is_refused(text):
    with pytest.raises(add_to_fork.PackEditError):
        add_to_fork.insert_pack_ids(text, ["new"])


ids_text = st.text(st.sampled_from("abAB._-: #'\"1y"), min_size=1, max_size=8)


@st.composite
def pack_texts(draw):
    """(a pack's text, its IDs): any quoting, indentation, line end and what follows the list."""
    ids = draw(st.lists(ids_text, min_size=1, max_size=5))
    style = draw(st.sampled_from([None, "'", '"']))
    indent = draw(st.sampled_from(["", "  ", "    "]))
    tail = draw(st.sampled_from(["", "    # a comment\n", "DisplayName: x\n"]))
    body = "".join(f"  {indent}- {add_to_fork._scalar(value, style)}\n" for value in ids)
    text = "PackID: P\nPackDefinition:\n  IDs:\n" + body + tail
    return text.replace("\n", draw(st.sampled_from(["\n", "\r\n"]))), ids


@given(pack=pack_texts(), new=st.lists(ids_text, min_size=1, max_size=4))
def test_insertion_only_adds_lines_and_lists_old_then_new(pack, new):
    text, old = pack
    new = [value for value in new if value not in old]
    edited = add_to_fork.insert_pack_ids(text, new)
    assert yaml.safe_load(edited)["PackDefinition"]["IDs"] == old + list(dict.fromkeys(new))
    kept = [line for line in edited.splitlines(keepends=True) if line in text.splitlines(True)]
    assert "".join(kept) == text


# --- A real checkout, with the fork's own toolchain ---------------------------------------------

CHECKOUT = os.environ.get("PANTHER_ANALYSIS_CHECKOUT")
TOOLCHAIN = os.environ.get("FORK_TOOLCHAIN_BIN")
real_checkout = pytest.mark.skipif(
    not CHECKOUT or not TOOLCHAIN,
    reason="set PANTHER_ANALYSIS_CHECKOUT (a panther-analysis checkout) and FORK_TOOLCHAIN_BIN "
    "(the bin directory of its pinned toolchain: pat, pylint, black, isort, bandit)",
)


@pytest.fixture(scope="module")
def real_fork(tmp_path_factory):
    """A copy of the checkout, its test results before and after add-to-fork, and the files we
    added; the checkout itself is only read."""
    root = tmp_path_factory.mktemp("real") / "panther-analysis"
    shutil.copytree(CHECKOUT, root, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    pat = Path(TOOLCHAIN) / "panther_analysis_tool"
    ids = detection_ids(root) | set(RULE_IDS)
    before = pat_run(pat, root, "test")
    plan = add_to_fork.plan_install(REPO_ROOT, root)
    assert add_to_fork.main([str(root)]) == 0
    after = pat_run(pat, root, "test")
    verdicts = pat_verdicts(before.stdout, ids), pat_verdicts(after.stdout, ids)
    return root, pat, before, after, verdicts, [write.path for write in plan.writes]


@pytest.mark.slow
@real_checkout
def test_real_fork_keeps_its_results_and_passes_ours(real_fork):
    _, _, before, after, verdicts, _ = real_fork
    assert after.returncode == before.returncode == 0, after.stdout[-3000:]
    assert_own_results_kept_plus_ours(*verdicts)


@pytest.mark.slow
@real_checkout
def test_real_fork_check_packs_is_clean(real_fork):
    root, pat, *_ = real_fork
    packs = pat_run(pat, root, "check-packs")
    assert packs.returncode == 0, packs.stdout + packs.stderr


FORK_LINTERS = {
    "pylint": ["pylint"],
    "bandit": ["bandit", "-q", "--ini", ".bandit"],
    "isort": ["isort", "--profile=black", "--check-only"],
    "black": ["black", "--line-length=100", "--check"],
}


@pytest.mark.slow
@real_checkout
@pytest.mark.parametrize("linter", FORK_LINTERS)
def test_real_fork_linters_pass_on_every_file_we_add(real_fork, linter):
    root, *_, written = real_fork
    ours = [str(path) for path in written if path.suffix == ".py"]
    assert ours
    command = [str(Path(TOOLCHAIN) / FORK_LINTERS[linter][0]), *FORK_LINTERS[linter][1:], *ours]
    done = subprocess.run(
        command, cwd=root, capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_correlation_rule_goes_where_the_fork_keeps_them_else_where_it_is_here(fork, capsys):
    name = "aws_vpce_protection_change_and_bulk_access.yml"
    run_tool(capsys, fork)
    assert (fork / "correlation_rules" / name).read_bytes() == (
        REPO_ROOT / "correlation_rules" / name
    ).read_bytes()
    elsewhere = fork.parent / "fork-with-correlations"
    shutil.copytree(FIXTURE, elsewhere)
    (elsewhere / "correlation_rules" / "theirs").mkdir(parents=True)
    (elsewhere / "correlation_rules" / "theirs" / "existing.yml").write_text(
        "AnalysisType: correlation_rule\nRuleID: Fixture.Correlation\nEnabled: false\n"
        "Severity: Low\nDetection: []\n"
    )
    run_tool(capsys, elsewhere)
    assert (elsewhere / "correlation_rules" / "theirs" / name).is_file()
