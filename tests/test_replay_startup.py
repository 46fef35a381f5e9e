"""Start-up: a replay imports only what it runs, and what it defers still works when used."""

import json
import subprocess
import sys
import textwrap

import pytest
from repo import REPO_ROOT
from test_replay_support import external_get, run_cli, scratch_repository, write_jsonl

from detection_replay import deferred_imports
from detection_replay.kv_store import CACHING_MODULE, CACHING_PACKAGE, KeyValueStore

# What panther_analysis_tool and panther_detection_helpers import for clients a replay never
# uses: a second and a half of start-up between them.
NOT_IMPORTED_BY_A_REPLAY = (
    "aiohttp",
    "boto3",
    "botocore",
    "datadog",
    "gql",
    "requests",
    "textual",
    "panther_analysis_tool.main",
    CACHING_MODULE,  # the real one: a stand-in answers from the replay's store
)

REPLAY_IN_A_FRESH_PROCESS = """
import json, sys
from detection_replay.cli import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def test_a_replay_of_the_sample_imports_none_of_the_unused_clients(tmp_path):
    report = tmp_path / "report.json"
    argv = ["--path", REPO_ROOT, "--format", "json", "-o", report, "--no-progress"]
    completed = subprocess.run(
        [sys.executable, "-c", REPLAY_IN_A_FRESH_PROCESS, *map(str, argv)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    outcome = json.loads(completed.stdout)
    assert outcome["status"] == 0, completed.stderr
    loaded = set(outcome["modules"])
    assert loaded.isdisjoint(NOT_IMPORTED_BY_A_REPLAY), loaded & set(NOT_IMPORTED_BY_A_REPLAY)
    rules = {rule["rule_id"]: rule for rule in json.loads(report.read_text())["rules"]}
    per_event = rules["AWS.CloudTrail.VPCE.S3ExternalIP"]
    bulk = rules["AWS.CloudTrail.VPCE.S3ExternalIPBulkAccess"]
    # The stand-in store answered the baseline: the first call from each network is new.
    assert len(per_event["alerts"]) == 8
    assert any(" from new external IP " in alert["title"] for alert in per_event["alerts"])
    (exfiltration,) = bulk["alerts"]
    assert exfiltration["severity"] == "CRITICAL"


# --- data models: set up by the tool's CLI module, imported only when a repository has one ----

UDM_RULE = """
def rule(event):
    return event.udm("actor_ip") == "198.51.100.7"
"""

DATA_MODEL = """\
AnalysisType: datamodel
DataModelID: Scratch.CloudTrail
LogTypes:
  - AWS.CloudTrail
Enabled: true
Mappings:
  - Name: actor_ip
    Path: sourceIPAddress
"""


def test_a_repository_with_a_data_model_gets_it(capsys, tmp_path):
    repository = scratch_repository(tmp_path, UDM_RULE)
    (repository / "data_models").mkdir()
    (repository / "data_models" / "scratch_cloudtrail.yml").write_text(DATA_MODEL)
    logs = write_jsonl(
        tmp_path / "logs.jsonl",
        [external_get(0, sourceIPAddress="198.51.100.7"), external_get(1)],
    )
    status, out, err = run_cli(capsys, "--path", repository, "--format", "json", logs)
    assert status == 0, err
    assert json.loads(out)["matched"] == 1


# --- deferred imports -----------------------------------------------------------------------


@pytest.fixture
def packages(tmp_path, monkeypatch):
    """A heavy package and a module importing names from it, on a path of their own."""
    (tmp_path / "heavy").mkdir()
    (tmp_path / "heavy" / "__init__.py").write_text(
        textwrap.dedent(
            """
            IMPORTS = []
            IMPORTS.append(1)

            class Client:
                def __init__(self, name):
                    self.name = name

            class Failure(Exception):
                pass

            def make(name):
                return Client(name)
            """
        )
    )
    (tmp_path / "heavy" / "sub.py").write_text("VALUE = 42\n")
    (tmp_path / "user.py").write_text(
        textwrap.dedent(
            """
            import heavy.sub
            from typing import Optional

            from heavy import Client, make

            # Python's probes at import time (typing, inspect) are not uses.
            PROBED = getattr(Client, "__wrapped__", None)

            def annotated(client: Optional[Client]) -> None:
                pass

            def build():
                class Special(Client):
                    pass

                return make("built"), Special("special"), heavy.sub.VALUE, Special
            """
        )
    )
    (tmp_path / "eager_user.py").write_text("from heavy import make\nMADE = make('now')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("heavy", "heavy.sub", "user", "eager_user"):
        sys.modules.pop(name, None)


def test_a_deferred_package_is_imported_only_when_used(packages):
    user = deferred_imports.import_deferring("user", {"heavy"})
    assert "heavy" not in sys.modules  # neither the real package nor its placeholder
    made, special, value, special_class = user.build()
    heavy = sys.modules["heavy"]
    assert heavy.IMPORTS == [1]  # imported once, for real
    assert isinstance(made, heavy.Client)
    assert isinstance(special, user.Client)  # isinstance against a deferred name
    assert issubclass(special_class, heavy.Client)  # subclassing a deferred name
    assert (made.name, special.name, value) == ("built", "special", 42)


def test_a_module_using_a_deferred_name_at_import_is_imported_normally(packages):
    eager = deferred_imports.import_deferring("eager_user", {"heavy"})
    assert eager.MADE.name == "now"
    assert isinstance(eager.MADE, sys.modules["heavy"].Client)
    assert not any(type(m) is deferred_imports.Placeholder for m in sys.modules.values())


# --- the store's stand-in for panther_detection_helpers.caching ------------------------------


def test_without_the_real_caching_module_a_stand_in_answers_from_the_store(monkeypatch):
    package = sys.modules[CACHING_PACKAGE]
    real = sys.modules[CACHING_MODULE]
    monkeypatch.delitem(sys.modules, CACHING_MODULE)
    monkeypatch.delattr(package, "caching")
    store = KeyValueStore(now=1_800_000_000)
    with store.installed():
        from panther_detection_helpers import caching
        from panther_detection_helpers.caching import increment_counter

        assert caching is not real
        assert increment_counter("key") == 1
        assert caching.get_counter("key") == 1
        # Names the store does not answer come from a private copy of the real module.
        assert caching.FIPS_ENABLED == real.FIPS_ENABLED
    assert CACHING_MODULE not in sys.modules
    assert not hasattr(package, "caching")
