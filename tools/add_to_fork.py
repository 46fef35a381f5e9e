"""Copy this detection package into a panther-analysis fork (`make add-to-fork FORK=path`).

What the package holds is read from its own YAML with panther_analysis_tool's loader: every rule,
global helper, data model, lookup table (with its file and its schema) and pack under rules/,
global_helpers/, data_models/, lookup_tables/ and packs/. In the fork:

- a rule goes where the fork keeps the file holding its RuleID (a Panther-managed copy, or an
  earlier copy of ours), which is removed; a rule the fork has no copy of goes beside the fork's
  rules of its log type. Everything else keeps the path it has here, or the path an earlier run
  gave it.
- every pack that lists one of our rules gets the helpers and data models `check-packs` requires
  for them, inserted as lines at the end of its `IDs:` list (nothing else in the file changes);
  our own pack gets the fork's data models for our log types the same way.

Nothing is written unless all of it can be: a fork file that would be overwritten must be one of
ours (installed by an earlier run: our pack lists it) or a copy of one of our RuleIDs. A second run
changes nothing.
"""

import argparse
import ast
import contextlib
import dataclasses
import json
import os
import re
import sys
import tempfile
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import yaml
from panther_analysis_tool import constants as pat_constants
from panther_analysis_tool.analysis_utils import load_analysis_specs_ex
from panther_analysis_tool.util import get_imports, get_spec_id

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = (
    "rules",
    "correlation_rules",
    "global_helpers",
    "data_models",
    "lookup_tables",
    "packs",
)
SCHEMAS_DIR = "schemas"
DEFAULT_RULES_DIR = "rules"
README_SECTION = "Adding the package to a panther-analysis fork"

# Item IDs share a namespace per family: a rule and a policy cannot both be `X`.
ID_FAMILY = {
    "rule": "detection",
    "scheduled_rule": "detection",
    "correlation_rule": "detection",
    "policy": "detection",
    "global": "global",
    "datamodel": "datamodel",
    "lookup_table": "lookup_table",
    "pack": "pack",
    "saved_query": "query",
    "scheduled_query": "query",
}
DETECTION_TYPES = frozenset(kind for kind, family in ID_FAMILY.items() if family == "detection")
# The directories `panther_analysis_tool test` reads when run at a repository's root.
ANALYSIS_DIR_PATTERNS = tuple(
    value for name, value in vars(pat_constants).items() if name.endswith("_PATH_PATTERN")
)
# The line breaks PyYAML counts lines by (str.splitlines knows more, and would miscount).
BREAK = r"\r\n|[\r\n\x85\u2028\u2029]"
LINE = re.compile(rf"[^\r\n\x85\u2028\u2029]*(?:{BREAK})|[^\r\n\x85\u2028\u2029]+$")
BULLET = re.compile(r"\s*-\s+")


class Refused(Exception):
    """The fork cannot take the package as asked; nothing was written."""


class PackEditError(Exception):
    """A pack file's IDs cannot be extended by inserting lines."""


@dataclasses.dataclass(frozen=True, eq=False)  # one per file read: compared by identity
class Item:
    """An analysis item: its spec, and its files relative to its repository's root."""

    kind: str
    id: str
    spec: dict
    spec_file: PurePosixPath

    @property
    def family(self):
        return ID_FAMILY.get(self.kind, self.kind)

    @property
    def directory(self):
        return self.spec_file.parent

    @property
    def files(self):
        """The spec and the file its `Filename` names (code, or a lookup table's data)."""
        named = self.spec.get("Filename")
        return (self.spec_file,) + ((self.directory / named,) if isinstance(named, str) else ())


@dataclasses.dataclass(frozen=True)
class Write:
    path: PurePosixPath
    content: bytes
    verb: str  # added, replaced, updated
    why: str = ""


@dataclasses.dataclass(frozen=True)
class Remove:
    path: PurePosixPath
    why: str


@dataclasses.dataclass
class Plan:
    writes: list
    removals: list
    notes: list


# --- Reading repositories ---------------------------------------------------------------------


def relative(root, path):
    return PurePosixPath(Path(os.path.relpath(path, root)).as_posix())


def is_analysis_dir(relative_dir):
    """Whether `panther_analysis_tool test`, run at the root, reads this directory's files."""
    return relative_dir == "." or any(
        fnmatch(f"./{relative_dir}", pattern) for pattern in ANALYSIS_DIR_PATTERNS
    )


def load_items(root, directories, *, strict):
    """The analysis items in `directories` (paths under root), read by the tool's own loader.
    strict: a file the loader cannot read, or an item without its ID, is an error (our own
    package); otherwise it is skipped (a fork's, which the fork's own tests are there to judge)."""
    items, problems = [], []
    for result in load_analysis_specs_ex([str(d) for d in directories], [], roundtrip_yaml=False):
        where = relative(root, result.spec_filename)
        if not is_analysis_dir(str(relative(root, result.relative_path))) and not strict:
            continue
        spec = result.analysis_spec
        try:
            if result.error is not None:
                raise result.error
            items.append(Item(spec["AnalysisType"], get_spec_id(spec), spec, where))
        except Exception as error:  # the loader's errors are YAML's, schema's or KeyError
            problems.append(f"{where}: {type(error).__name__}: {error}")
    if strict and problems:
        raise Refused("this package's own specs cannot be read:\n  " + "\n  ".join(problems))
    return items


def load_package(root):
    directories = [root / name for name in PACKAGE_DIRS if (root / name).is_dir()]
    return load_items(root, directories, strict=True)


def load_schemas(root):
    """Custom log schemas (a lookup table's `Schema`) under schemas/, by their `schema` name."""
    schemas = {}
    directory = root / SCHEMAS_DIR
    for path in sorted(directory.rglob("*.y*ml")) if directory.is_dir() else ():
        with contextlib.suppress(yaml.YAMLError, UnicodeDecodeError, OSError):
            document = yaml.safe_load(path.read_bytes())
            if isinstance(document, dict) and isinstance(document.get("schema"), str):
                schemas.setdefault(document["schema"], relative(root, path))
    return schemas


def read(root, path):
    """A file's bytes, or None where there is no file."""
    target = Path(root, path)
    return target.read_bytes() if target.is_file() else None


# --- Where things go --------------------------------------------------------------------------


def rules_dir_for(rule, fork_items):
    """The fork's directory holding most rules of this rule's kind and log types (ties: first by
    name); for a kind without log types (a correlation rule), most of its kind, else the
    directory it has here."""
    wanted = log_types(rule.spec)
    counts = Counter(
        item.directory
        for item in fork_items
        if item.kind == rule.kind and (wanted & log_types(item.spec) or not wanted)
    )
    if not counts:
        return PurePosixPath(DEFAULT_RULES_DIR) if wanted else rule.directory
    return min(counts, key=lambda directory: (-counts[directory], str(directory)))


def installed_ids(ours, fork_items):
    """IDs an earlier run put in the fork: whatever the fork's copies of our packs list."""
    our_packs = {item.id for item in ours if item.kind == "pack"}
    listed = set()
    for item in fork_items:
        if item.kind == "pack" and item.id in our_packs:
            listed |= {item.id, *pack_ids(item.spec)}
    return listed


def pack_ids(spec):
    definition = spec.get("PackDefinition")
    ids = definition.get("IDs") if isinstance(definition, dict) else None
    return [value for value in ids if isinstance(value, str)] if isinstance(ids, list) else []


def log_types(spec):
    values = spec.get("LogTypes")
    return (
        {value for value in values if isinstance(value, str)} if isinstance(values, list) else set()
    )


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one of our items goes, and the fork items it takes the place of."""

    item: Item
    directory: PurePosixPath
    replaces: tuple


def place(item, fork_items, package_root, fork_root, installed):
    """Where `item` goes in the fork. A rule replaces whatever holds its ID; another item may only
    replace an earlier copy of ours (listed by our pack there, or with our very spec file)."""
    same_id = tuple(f for f in fork_items if f.family == item.family and f.id == item.id)
    if item.kind in DETECTION_TYPES:
        home = same_id[0].directory if same_id else rules_dir_for(item, fork_items)
        return Placement(item, home, same_id)
    foreign = [
        f
        for f in same_id
        if item.id not in installed
        and read(fork_root, f.spec_file) != read(package_root, item.spec_file)
    ]
    if foreign:
        where = ", ".join(str(f.spec_file) for f in foreign)
        raise Refused(
            f"the fork's {where} already defines the {item.kind} {item.id!r}, and it is not this "
            "package's: rename or remove it first"
        )
    return Placement(item, same_id[0].directory if same_id else item.directory, same_id)


# --- Packs: what check-packs requires ---------------------------------------------------------


def dependency_map(items_with_roots):
    """Item ID -> the modules its Python file imports: as check-packs reads them (a regular
    expression, which misses `from x import (` lists) and as Python does, so that a pack holds
    what check-packs asks for and what the code needs when it runs."""
    dependencies = {}
    for item, root in items_with_roots:
        with contextlib.suppress(OSError, UnicodeDecodeError):  # missing code: refused later
            dependencies[item.id] = get_imports(item.spec, root / item.directory) | python_imports(
                item, root
            )
    return dependencies


def python_imports(item, root):
    """Top-level modules the item's Python file imports, read by Python's own parser."""
    named = item.spec.get("Filename")
    if not isinstance(named, str) or not named.endswith(".py"):
        return set()
    try:
        tree = ast.parse(Path(root, item.directory, named).read_bytes())
    except (SyntaxError, ValueError):  # not Python this interpreter reads: the regex's reading
        return set()
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.partition(".")[0])
    return modules


def closure(start, dependencies):
    seen, pending = set(), list(start)
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(dependencies.get(current, ()))
    return seen


def data_models_by_log_type(items):
    models = {}
    for item in items:
        if item.kind == "datamodel":
            for log_type in sorted(log_types(item.spec)):
                models[log_type] = item.id
    return models


def required_ids(listed, ours_by_id, dependencies, models, known):
    """What check-packs demands of a pack for the items of ours it lists: their helpers, imported
    directly or through another helper, and the data model of each of their log types."""
    needed = closure([i for i in listed if i in ours_by_id], dependencies) & known
    used = {
        log_type
        for item_id in needed
        if item_id in ours_by_id
        for log_type in log_types(ours_by_id[item_id].spec)
    }
    needed |= {models[log_type] for log_type in used if log_type in models}
    return needed


# --- Editing a pack's IDs as text -------------------------------------------------------------


def _mapping_value(node, key):
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node
    return None


def _scalar(value, style):
    """value as a YAML scalar in the list's own style, quoted wherever plain would misread it."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style is None and value.strip() == value and _plain_reads_as(value):
        return value
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def _plain_reads_as(value):
    try:
        return yaml.safe_load(f"- {value}\n") == [value]
    except yaml.YAMLError:
        return False


def insert_pack_ids(text, new_ids):
    """text with new_ids appended to its PackDefinition.IDs block list, each on a line of its own
    after the list's last item, in the last item's indentation and quoting. Every other byte stays
    as it was; the result is parsed again to prove it lists exactly the old IDs plus the new."""
    new_ids = list(dict.fromkeys(new_ids))
    if not new_ids:
        return text
    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise PackEditError(f"not valid YAML ({error})") from error
    ids = _mapping_value(_mapping_value(root, "PackDefinition"), "IDs")
    if not isinstance(ids, yaml.SequenceNode) or not ids.value or ids.flow_style:
        raise PackEditError("its PackDefinition.IDs is not a non-empty block list (`- ID` lines)")
    last = ids.value[-1]
    lines = LINE.findall(text)
    bullet = lines[last.start_mark.line][: last.start_mark.column]
    if not BULLET.fullmatch(bullet) or not isinstance(last, yaml.ScalarNode):
        raise PackEditError("its last ID does not stand on a `- ID` line of its own")
    end = last.end_mark.line if last.end_mark.column else last.end_mark.line - 1
    newline = re.search(f"({BREAK})$", lines[end])
    if newline is None:  # the list ends the file without a line break: give it one
        lines[end] += "\n"
    ending = newline.group(1) if newline else "\n"
    added = [f"{bullet}{_scalar(value, last.style)}{ending}" for value in new_ids]
    edited = "".join(lines[: end + 1] + added + lines[end + 1 :])
    expected = dict(document)
    expected["PackDefinition"] = dict(document["PackDefinition"])
    expected["PackDefinition"]["IDs"] = list(document["PackDefinition"]["IDs"]) + new_ids
    if yaml.safe_load(edited) != expected:
        raise PackEditError("inserting lines would change more than its IDs")
    return edited


def with_ids(content, new_ids, where):
    try:
        text = content.decode("utf-8")
        return insert_pack_ids(text, new_ids).encode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(f"{where} is not UTF-8 text, so its IDs cannot be extended") from error
    except PackEditError as error:
        raise Refused(
            f"{where} cannot be extended by inserting lines: {error}. Add these IDs to it by hand, "
            f"then run again: {', '.join(new_ids)}"
        ) from error


# --- The plan ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """A file the fork must end up holding, and whether a different file there may be replaced."""

    path: PurePosixPath
    content: bytes
    may_replace: bool
    why: str = ""
    replacing: str = "replaced"  # what replacing the fork's file is called


def check_fork_root(fork_root, package_root):
    if not fork_root.exists():
        raise Refused(f"{fork_root} does not exist")
    if not fork_root.is_dir():
        raise Refused(f"{fork_root} is not a directory")
    fork, package = fork_root.resolve(), package_root.resolve()
    if fork == package or package in fork.parents:
        raise Refused(f"{fork_root} is this package's own repository (or inside it), not a fork")
    missing = [name + "/" for name in ("rules", "global_helpers") if not (fork / name).is_dir()]
    if missing:
        raise Refused(
            f"{fork_root} is not a detection repository (it has no {' or '.join(missing)}): "
            "give the root of your panther-analysis fork"
        )


def plan_install(package_root, fork_root):
    """Everything add-to-fork would write and remove, or Refused (nothing is written)."""
    package_root, fork_root = Path(package_root), Path(fork_root)
    check_fork_root(fork_root, package_root)
    ours = load_package(package_root)
    fork_items = load_items(fork_root, [fork_root], strict=False)
    installed = installed_ids(ours, fork_items)
    placements = [place(item, fork_items, package_root, fork_root, installed) for item in ours]
    replaced = [f for p in placements for f in p.replaces]
    kept = [f for f in fork_items if f not in replaced]
    missing_ids = pack_completion(ours, kept, package_root, fork_root)

    targets = [
        target
        for placement in placements
        for target in item_targets(placement, package_root, missing_ids)
    ]
    notes, our_rules = [], {item.id for item in ours if item.kind in DETECTION_TYPES}
    for pack in (f for f in kept if f.kind == "pack"):
        listed = [i for i in pack_ids(pack.spec) if i in our_rules]
        if listed:
            targets.append(managed_pack_target(pack, fork_root, missing_ids))
            notes.append(
                f"{pack.id} ({pack.spec_file}) also lists {', '.join(listed)}. Rules in a pack "
                "enabled in Panther are managed by Panther: make sure this pack is not enabled in "
                f"your Panther Console before you upload (README: {README_SECTION})."
            )
    for target, name in schema_targets(ours, package_root, fork_root, installed):
        targets.append(target)
        notes.append(
            f"create the lookup table's schema {name} in Panther before the first upload: "
            f"panther_analysis_tool update-custom-schemas --path {target.path.parent}"
        )
    return assemble(fork_root, targets, replaced, kept, notes)


def pack_completion(ours, kept, package_root, fork_root):
    """A function: a pack's IDs -> the IDs check-packs will want added, ours first."""
    ours_by_id = {item.id: item for item in ours}
    dependencies = dependency_map(
        [(item, package_root) for item in ours]
        + [(f, fork_root) for f in kept if f.kind == "global"]
    )
    models = data_models_by_log_type(kept + ours)
    known = {item.id for item in kept + ours}

    def missing_ids(listed):
        needed = required_ids(listed, ours_by_id, dependencies, models, known)
        return sorted(needed - set(listed), key=lambda i: (i not in ours_by_id, i))

    return missing_ids


def item_targets(placement, package_root, missing_ids):
    """One of our items' files at its place in the fork (a pack with the IDs it needs there)."""
    item = placement.item
    replaceable = {path for replaced in placement.replaces for path in replaced.files}
    for path in item.files:
        content = read(package_root, path)
        if content is None:
            raise Refused(f"this package's {path} is missing (named by {item.id})")
        if item.kind == "pack":
            content = with_ids(content, missing_ids(pack_ids(item.spec)), path)
        target = placement.directory / path.relative_to(item.directory)
        holders = [r.id for r in placement.replaces if target in r.files]
        why = f"was the fork's copy of {holders[0]}" if holders else ""
        yield Target(target, content, target in replaceable, why)


def managed_pack_target(pack, fork_root, missing_ids):
    new_ids = missing_ids(pack_ids(pack.spec))
    content = with_ids(read(fork_root, pack.spec_file), new_ids, pack.spec_file)
    why = f"{pack.id} now also lists {', '.join(new_ids)}" if new_ids else ""
    return Target(pack.spec_file, content, may_replace=True, why=why, replacing="updated")


def schema_targets(ours, package_root, fork_root, installed):
    """Our lookup tables' schemas, at the path they have here: (Target, schema name). A schema of
    that name elsewhere in the fork is refused; a different file at that path may be replaced
    only when its table was installed by an earlier run."""
    ours_by_name, theirs_by_name = load_schemas(package_root), load_schemas(fork_root)
    for table in (item for item in ours if item.kind == "lookup_table"):
        name = table.spec.get("Schema")
        if not isinstance(name, str) or name not in ours_by_name:
            continue  # a schema Panther or the user provides
        path = ours_by_name[name]
        theirs = theirs_by_name.get(name)
        if theirs is not None and theirs != path:
            raise Refused(f"the fork's {theirs} already defines the schema {name!r}")
        yield Target(path, read(package_root, path), table.id in installed), name


def assemble(fork_root, targets, replaced, kept, notes):
    """The plan's file operations, once every file to be overwritten may be overwritten."""
    landing = Counter(target.path for target in targets)
    if twice := sorted(str(path) for path, count in landing.items() if count > 1):
        raise Refused("two of the package's files would land on " + ", ".join(twice))
    writes, conflicts = [], []
    for target in targets:
        existing = read(fork_root, target.path)
        if Path(fork_root, target.path).is_dir() or not stays_inside(target.path):
            conflicts.append(str(target.path))
        elif existing is None:
            writes.append(Write(target.path, target.content, "added", target.why))
        elif existing != target.content and not target.may_replace:
            conflicts.append(str(target.path))
        elif existing != target.content:
            writes.append(Write(target.path, target.content, target.replacing, target.why))
    if conflicts:
        raise Refused(
            "the package would overwrite fork files that are neither its own (from an earlier run) "
            "nor a copy of one of its rules: " + ", ".join(conflicts)
        )
    keep = {t.path for t in targets} | {path for item in kept for path in item.files}
    removals = [
        Remove(path, f"the fork's copy of {item.id}")
        for item in sorted(replaced, key=lambda item: str(item.spec_file))
        for path in item.files
        if path not in keep and read(fork_root, path) is not None
    ]
    outside = [str(removal.path) for removal in removals if not stays_inside(removal.path)]
    if outside:
        raise Refused("these files to remove lie outside the fork: " + ", ".join(outside))
    return Plan(writes, removals, notes)


def stays_inside(path):
    return not path.is_absolute() and ".." not in path.parts


# --- Doing it ---------------------------------------------------------------------------------


def write_atomically(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def operations(plan):
    """(line describing it, the change itself) for every write, then every removal."""
    for write in plan.writes:
        yield (write.verb, write.path, write.why), write
    for removal in plan.removals:
        yield ("removed", removal.path, removal.why), removal


def perform(operation, fork_root):
    target = Path(fork_root, operation.path)
    if isinstance(operation, Write):
        write_atomically(target, operation.content)
    else:
        target.unlink()


def line(verb, path, why, *, dry_run):
    verb = f"would be {verb}" if dry_run else verb
    return f"  {verb:<18} {path}" + (f"  ({why})" if why else "")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="add_to_fork.py",
        description="Copy this detection package into a panther-analysis fork.",
    )
    parser.add_argument("fork", type=Path, help="the root of the fork (a detection repository)")
    parser.add_argument(
        "--package",
        type=Path,
        default=PACKAGE_ROOT,
        help="the package to copy (default: the repository holding this script)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would change, and change nothing"
    )
    args = parser.parse_args(argv)
    try:
        plan = plan_install(args.package, args.fork)
    except Refused as refusal:
        print(f"add-to-fork: refused, nothing was changed: {refusal}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"add-to-fork: nothing was changed: {error}", file=sys.stderr)
        return 2
    print(f"add-to-fork: {args.package} into {args.fork}" + (" (dry run)" if args.dry_run else ""))
    done = 0
    for (verb, path, why), operation in operations(plan):
        if not args.dry_run:
            try:
                perform(operation, args.fork)
            except OSError as error:
                print(f"add-to-fork: failed at {path}: {error}", file=sys.stderr)
                print(f"add-to-fork: {done} change(s) above were made before it", file=sys.stderr)
                return 1
        done += 1
        print(line(verb, path, why, dry_run=args.dry_run))
    if not done:
        print("  nothing to change: the fork already holds this package as it is here")
    for note in plan.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
