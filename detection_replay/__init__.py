"""Replay the repository's Panther rules over CloudTrail log files and report the alerts.

The rules are loaded with panther_analysis_tool's loader and run with panther_core's engine in
batch mode, so a replay and ``panther_analysis_tool test`` judge every event the same way.
"""
