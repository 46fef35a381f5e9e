"""Replaying events from Python: what tests of rules use to check thresholds and grouping.

    from detection_replay import replay_events

    document = replay_events("path/to/repository", [record, ...])
    document["alert_count"], document["rules"][0]["alerts"]

The events go through exactly what `detection-replay --format json` does with a file holding
them (the same checks of each record, both passes, grouping, thresholds, signals), and the
report document comes back as plain data (its fields: detection_replay.report).
"""

import tempfile
from pathlib import Path
from types import SimpleNamespace

import orjson

from detection_replay.cli import exit_status
from detection_replay.engine import Replay
from detection_replay.inputs import Source
from detection_replay.report import build_document
from detection_replay.rules import load_rules

# How the events are named in the report (first_event_at, malformed_examples): "events line 3"
# is the third event.
EVENTS_NAME = "events"


class EventNotJSON(TypeError):
    """An event that cannot be written as JSON (a CloudTrail record always can)."""


def replay_events(repository, events, jobs=1):
    """Replay `events` (CloudTrail records as dicts, in any order) through the enabled
    AWS.CloudTrail rules of `repository`; return the report document (`--format json`).

    An event that is not a valid CloudTrail record is counted as malformed, as on the command
    line; an event that cannot be written as JSON raises EventNotJSON. Raises
    detection_replay.rules.RuleRepositoryError when the rules cannot be loaded. The document's
    exit_status is the command's without options: 0, or 3 when no event was read or none was a
    valid CloudTrail record.
    """
    repository = Path(repository).resolve()
    with tempfile.TemporaryDirectory(prefix="detection-replay-events-") as directory:
        path = Path(directory, EVENTS_NAME)
        _write_jsonl(path, events)
        with load_rules(repository) as rule_set:
            replay = Replay(rule_set).run([Source(EVENTS_NAME, str(path))], jobs=jobs)
            no_options = SimpleNamespace(strict=False, fail_on_alert=False)
            return build_document(replay, repository, exit_status(replay, no_options))


def _write_jsonl(path, events):
    with path.open("wb") as stream:
        for number, event in enumerate(events, start=1):
            try:
                stream.write(orjson.dumps(event) + b"\n")
            except orjson.JSONEncodeError as error:
                raise EventNotJSON(f"event {number} cannot be written as JSON: {error}") from None
