"""Mutation testing of the rule and the global helpers with cosmic-ray, in parallel, off-tree.

cosmic-ray mutates source files in place, so nothing here touches the repository: the files the
tests need are copied into one throwaway tree per job, the session's mutants are dealt out among
the trees round-robin, and each tree runs ``cosmic-ray exec`` on its share. The configuration is
``[tool.cosmic-ray]`` in pyproject.toml.

Every surviving mutant must be listed in mutation/equivalent.toml with the reason it cannot
change behaviour. The exit status is non-zero when a survivor is unexplained, a mutant could not
be run, the unmutated tests fail, or a listed equivalent no longer survives (stale entry).

    python mutation/run.py [--jobs N] [--only PATH ...] [--keep]
"""

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

from cosmic_ray.config import ConfigDict, serialize_config
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult
from forkserver import SOCKET_VARIABLE

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS_FILE = ROOT / "mutation" / "equivalent.toml"
# What the tests read: the analysis items, the tests, the settings panther tooling looks for, the
# sample day (the family's one-alert-per-event tests) and panther-detection-helpers 0.4.0 (the
# baseline's tests on a fork's release; skipped, not failed, when absent).
TREE = [
    "rules",
    "global_helpers",
    "packs",
    "tests",
    "samples",
    ".panther_settings.yml",
    "pyproject.toml",
    ".venv/panther-detection-helpers-0.4.0",
]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
PROGRESS_EVERY_SECONDS = 30
FORK_SERVER = ROOT / "mutation" / "forkserver.py"
PLAIN_PYTEST = ["python", "-B", "-m", "pytest"]
MODULE_LEVEL = "<module>"
# Each tree keeps a fork server with the whole toolchain imported: a big CI runner's core
# count would cost memory for little gain on a few hundred mutants.
MAX_DEFAULT_JOBS = 8


def tool_config(only):
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cosmic-ray"]
    config = ConfigDict(config)
    if only:
        unknown = set(only) - set(config["module-path"])
        if unknown:
            sys.exit(f"--only: not in [tool.cosmic-ray] module-path: {sorted(unknown)}")
        config["module-path"] = list(only)
    config["distributor"] = {"name": "local"}
    return config


def tool_env(extra=None):
    """The environment for cosmic-ray and its test command: this interpreter's `python` first."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(extra or {}))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def cosmic_ray(*args, cwd, log=None, extra_env=None):
    command = [str(Path(sys.executable).with_name("cosmic-ray")), *map(str, args)]
    env = tool_env(extra_env)
    if log is None:
        return subprocess.run(command, cwd=cwd, env=env, check=False, capture_output=True)
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


def make_tree(target):
    for name in TREE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=IGNORED)
        elif source.exists():
            shutil.copy2(source, target / name)


def check_baseline(tree, test_command, extra_env):
    """The unmutated tests must pass, or every mutant would count as killed."""
    started = time.monotonic()
    done = subprocess.run(
        shlex.split(test_command),
        cwd=tree,
        env=tool_env(extra_env),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(done.stdout[-5000:], done.stderr[-2000:], sep="\n")
        sys.exit("the unmutated test command fails; fix the tests first")
    return time.monotonic() - started


def deal_out(session, shards):
    """Copy the session once per shard, each with every other shard's mutants marked skipped."""
    with use_db(session, WorkDB.Mode.open) as db:
        jobs = sorted(
            (str(m.module_path), m.start_pos, m.operator_name, m.occurrence, item.job_id)
            for item in db.work_items
            for m in item.mutations
        )
    job_ids = [job[-1] for job in jobs]
    skipped = WorkResult(worker_outcome=WorkerOutcome.SKIPPED)
    for index, shard in enumerate(shards):
        shutil.copy(session, shard)
        others = [job for n, job in enumerate(job_ids) if n % len(shards) != index]
        with use_db(shard, WorkDB.Mode.open) as db:
            db.set_multiple_results(others, skipped)
    return len(job_ids)


def results(shards):
    for shard in shards:
        with use_db(shard, WorkDB.Mode.open) as db:
            for item, result in db.completed_work_items:
                if result.worker_outcome != WorkerOutcome.SKIPPED:
                    yield item, result


def pending(shards):
    count = 0
    for shard in shards:
        with use_db(shard, WorkDB.Mode.open) as db:
            count += db.num_work_items - db.num_results
    return count


def mutated_lines(diff):
    """The changed source lines of a mutant, as they read after the mutation."""
    lines = diff.splitlines()
    return " / ".join(
        line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")
    )


def mutant_key(item, result):
    """(file, enclosing function or <module>, operator, mutated line): stable across line moves."""
    (mutation,) = item.mutations
    return (
        str(mutation.module_path),
        mutation.definition_name or MODULE_LEVEL,
        mutation.operator_name,
        mutated_lines(result.diff or ""),
    )


def load_equivalents():
    if not EQUIVALENTS_FILE.exists():
        return {}
    entries = tomllib.loads(EQUIVALENTS_FILE.read_text()).get("mutant", [])
    equivalents = {}
    for entry in entries:
        key = (entry["file"], entry["function"], entry["operator"], entry["mutated"].strip())
        if not entry.get("reason", "").strip():
            sys.exit(f"{EQUIVALENTS_FILE.name}: no reason given for {key}")
        if key in equivalents:
            sys.exit(f"{EQUIVALENTS_FILE.name}: listed twice: {key}")
        equivalents[key] = entry["reason"]
    return equivalents


def describe(item, result):
    (mutation,) = item.mutations
    line, column = mutation.start_pos
    return (
        f"--- {mutation.module_path}:{line}:{column} {mutation.operator_name}\n"
        f"{(result.diff or '').rstrip()}\n"
    )


def entry_for(item, result):
    path, function, operator, mutated = mutant_key(item, result)
    return (
        f"[[mutant]]\nfile = {toml_string(path)}\nfunction = {toml_string(function)}\n"
        f"operator = {toml_string(operator)}\nmutated = {toml_string(mutated)}\n"
        'reason = "..."\n'
    )


def toml_string(text):
    """A TOML literal string when text allows one (no quote to escape), else a basic string."""
    return f"'{text}'" if "'" not in text else json.dumps(text)


def report(outcomes, equivalents, only, elapsed):
    counts = Counter()
    unexplained, broken, surviving_keys, timed_out_keys = [], [], set(), set()
    for item, result in outcomes:
        if result.worker_outcome != WorkerOutcome.NORMAL or result.test_outcome not in (
            TestOutcome.KILLED,
            TestOutcome.SURVIVED,
        ):
            counts["not run"] += 1
            broken.append((item, result))
        elif result.test_outcome == TestOutcome.KILLED:
            counts["killed"] += 1
            counts["timed out"] += result.output == "timeout"
            if result.output == "timeout" and mutant_key(item, result) in equivalents:
                # A listed equivalent that only ran out of time was slowed, not killed: on a
                # loaded machine that says nothing about whether its entry is still needed.
                timed_out_keys.add(mutant_key(item, result))
        elif mutant_key(item, result) in equivalents:
            counts["equivalent"] += 1
            surviving_keys.add(mutant_key(item, result))
        else:
            counts["survived"] += 1
            unexplained.append((item, result))
    in_scope = [key for key in equivalents if not only or key[0] in only]
    stale = sorted(key for key in in_scope if key not in surviving_keys | timed_out_keys)

    for item, result in broken:
        print(f"NOT RUN ({result.worker_outcome}, {result.test_outcome})\n{describe(item, result)}")
        print((result.output or "")[-2000:])
    for item, result in sorted(unexplained, key=lambda pair: describe(*pair)):
        print(f"SURVIVED\n{describe(item, result)}")
    if unexplained:
        print("Kill them with a test, or if behaviour cannot differ, list them in")
        print(f"{EQUIVALENTS_FILE.relative_to(ROOT)} with the reason:\n")
        for item, result in unexplained:
            print(entry_for(item, result))
    for key in stale:
        print(f"STALE equivalent entry (no longer a surviving mutant): {key}")
    for key in sorted(timed_out_keys):
        print(f"listed equivalent ran out of time (not counted stale): {key}")

    total = sum(counts[k] for k in ("killed", "equivalent", "survived", "not run"))
    print(
        f"\nmutants: {total}  killed: {counts['killed']} (timed out: {counts['timed out']})  "
        f"equivalent: {counts['equivalent']}  survived (unexplained): {counts['survived']}  "
        f"not run: {counts['not run']}  stale equivalents: {len(stale)}  "
        f"time: {elapsed:.0f}s"
    )
    return not (unexplained or broken or stale)


def fork_server_command(config):
    """The configured pytest command, sent to the fork server of the tree it runs in."""
    words = shlex.split(config.test_command)
    if words[:4] != PLAIN_PYTEST:
        sys.exit(
            f"test-command must start with {shlex.join(PLAIN_PYTEST)!r} to use the fork server"
        )
    client = [sys.executable, "-I", "-S", str(FORK_SERVER), "run"]
    return shlex.join(client + words[4:])


def start_fork_server(tree, stack):
    sock = tree.with_suffix(".sock")
    server = subprocess.Popen(
        [sys.executable, "-B", str(FORK_SERVER), "serve", str(sock)],
        cwd=tree,
        env=tool_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    stack.callback(stop, server)
    if not server.stdout.readline().startswith("forkserver ready"):
        sys.exit(f"the fork server for {tree} did not start")
    return {SOCKET_VARIABLE: str(sock)}


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def execute(work, *, trees, shards, config_file, servers, stack):
    runs = []
    for tree, shard, server_env in zip(trees, shards, servers, strict=True):
        log = stack.enter_context((work / f"{shard.stem}.log").open("wb"))
        run = cosmic_ray("exec", config_file, shard, cwd=tree, log=log, extra_env=server_env)
        stack.callback(stop, run)
        runs.append((run, log))
    total = sum(1 for _ in results(shards)) + pending(shards)
    last = time.monotonic()
    while any(run.poll() is None for run, _ in runs):
        time.sleep(1)
        if time.monotonic() - last >= PROGRESS_EVERY_SECONDS:
            last = time.monotonic()
            print(f"  {total - pending(shards)}/{total} mutants run", flush=True)
    for run, log in runs:
        if run.returncode != 0:
            sys.exit(f"cosmic-ray exec failed; see {log.name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(os.cpu_count() or 1, MAX_DEFAULT_JOBS),
        help="parallel trees",
    )
    parser.add_argument("--only", nargs="+", metavar="PATH", help="mutate only these files")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--no-fork-server", action="store_true", help="run the test command as configured"
    )
    args = parser.parse_args()
    started = time.monotonic()
    config = tool_config(args.only)
    equivalents = load_equivalents()

    work = Path(tempfile.mkdtemp(prefix="mutation-"))
    with contextlib.ExitStack() as stack:
        if args.keep:
            stack.callback(print, f"work directory kept: {work}")
        else:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        trees = [work / f"tree{n}" for n in range(max(args.jobs, 1))]
        for tree in trees:
            make_tree(tree)
        baseline = check_baseline(trees[0], config.test_command, {})
        if args.no_fork_server:
            servers = [{} for _ in trees]
        else:
            servers = [start_fork_server(tree, stack) for tree in trees]
            config["test-command"] = fork_server_command(config)
            baseline = check_baseline(trees[0], config.test_command, servers[0])
        config_file = work / "cosmic-ray.toml"
        config_file.write_text(serialize_config(config))
        session = work / "session.sqlite"
        done = cosmic_ray("init", config_file, session, cwd=trees[0])
        if done.returncode != 0:
            sys.exit(done.stdout.decode() + done.stderr.decode())
        shards = [work / f"shard{n}.sqlite" for n in range(len(trees))]
        total = deal_out(session, shards)
        print(
            f"{total} mutants over {len(trees)} jobs; unmutated tests take {baseline:.1f}s",
            flush=True,
        )
        execute(
            work, trees=trees, shards=shards, config_file=config_file, servers=servers, stack=stack
        )
        ok = report(list(results(shards)), equivalents, args.only, time.monotonic() - started)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
