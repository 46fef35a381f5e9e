"""Replay the repository's Panther rules over CloudTrail log files and report the alerts.

The rules are loaded with panther_analysis_tool's loader and run with panther_core's engine in
batch mode, so a replay and ``panther_analysis_tool test`` judge every event the same way.
``detection_replay.replay_events(repository, events)`` does it from Python (see
detection_replay.api).
"""

__all__ = ["replay_events"]


def __getattr__(name):
    # Imported on first use, so that importing the package (as every worker does) stays cheap.
    if name == "replay_events":
        from detection_replay.api import replay_events  # noqa: PLC0415

        return replay_events
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
