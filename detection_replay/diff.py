"""What changed between an earlier report (the baseline) and this run: alerts and signals added,
removed and changed, per rule, for a reviewer deciding whether to merge a rule change.

Matching. Within one rule, two groups (alerts, or signal groups) are the same incident when they
share the dedup string and their time spans [first_seen, last_seen] overlap; within one dedup
string, groups are disjoint in time, so they are paired in time order. A rule change that
moves a window (another DedupPeriodMinutes, an earlier event joining, a Threshold holding back
the first events) therefore shows as one changed alert with its new first_seen, last_seen and
event count, not as one removed and one added. Groups left over are paired when the same event
opened both (same first_seen and first_event_at: the same input and line, as when both runs
read the same corpus), which shows a changed dedup string (a title used as dedup, a new
dedup()) as a change too. The rest are added or removed.

The diff document (`--baseline FILE --format json`; fields are only ever added):

    diff_schema_version  1
    differs             whether anything below differs (the command then exits 1)
    baseline, current   each run's report (the baseline's path), repository, records_read,
                        alert_count, signal_count, rule_errors, exit_status
    alerts, signals     totals over all rules: added, removed, changed, unchanged
    rules               the rules where anything differs: rule_id; presence ("both", "added":
                        only in this run, "removed": only in the baseline); settings and counts
                        ({name: {baseline, current}} for what differs among severity,
                        dedup_period_minutes, threshold, create_alert, unique, and matched,
                        alert_count, signal_count, rule_errors); alerts and signals, each
                        {added: [group], removed: [group], changed: [{baseline, current,
                        changes: {field: {baseline, current}}}]} (groups as in the report)
    warnings            why the comparison may mislead (different corpora, unlisted alerts,
                        a run that did not end cleanly)
"""

import re
from collections import defaultdict

import orjson

from detection_replay.report import SCHEMA_VERSION
from detection_replay.text import printable

DIFF_SCHEMA_VERSION = 1
# A report holds at most --max-alerts alerts of a few KiB each: far below this.
BASELINE_BYTES = 1024 * 1024 * 1024
ISO_SECOND = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
# What a reviewer sees change in a group; the alert context (eventIDs and the like) is left out.
COMPARED_FIELDS = (
    "severity",
    "title",
    "dedup",
    "events",
    "first_seen",
    "last_seen",
    "unique_values",
)
# Rule settings compared when both reports hold them (older reports lack create_alert and
# unique: a guess would show every signal rule as changed), and counts, always compared.
RULE_SETTINGS = ("severity", "dedup_period_minutes", "threshold", "create_alert", "unique")
RULE_COUNTS = ("matched", "alert_count", "signal_count", "rule_errors")
GROUP_KINDS = ("alerts", "signals")
CHANGE_KINDS = ("added", "removed", "changed")
# Rows per table in Markdown (a GitHub job summary holds at most 1 MiB); the JSON lists all.
MARKDOWN_ROWS = 50
MARKDOWN_CELL_CHARACTERS = 200


class BaselineError(Exception):
    """The baseline cannot be used: unreadable, not JSON, or not a detection-replay report."""


# --- reading the baseline ----------------------------------------------------------------------

# (field, type, required): what the diff reads of a report, its rules and their groups.
REPORT_FIELDS = (
    ("repository", str, True),
    ("alert_count", int, True),
    ("rules", list, True),
    ("records_read", int, False),
    ("signal_count", int, False),
    ("rule_errors", int, False),
    ("exit_status", int, False),
    ("alerts_not_listed", int, False),
    ("signals_not_listed", int, False),
)
RULE_FIELDS = (
    ("rule_id", str, True),
    ("alerts", list, True),
    ("alert_count", int, True),
    ("matched", int, True),
    ("signals", list, False),
    ("signal_count", int, False),
    ("errors", dict, False),
)
GROUP_FIELDS = (
    ("rule_id", str, True),
    ("severity", str, True),
    ("title", str, True),
    ("dedup", str, True),
    ("events", int, True),
    ("first_seen", str, True),
    ("last_seen", str, True),
    ("first_event_at", str, False),
)


def load_baseline(path):
    """The report at `path`, checked to be one; BaselineError says what is wrong with it."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(BASELINE_BYTES + 1)
    except OSError as error:
        raise BaselineError(f"cannot read it: {error.strerror or error}") from None
    if len(data) > BASELINE_BYTES:
        raise BaselineError(f"larger than {BASELINE_BYTES // 1024**2:,} MiB: not a report")
    if not data.strip():
        raise BaselineError("it is empty")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise BaselineError(f"not JSON (truncated or not a report?): {error}") from None
    check_report(document)
    return document


def check_report(document):
    """Raise BaselineError unless `document` is a report of this schema (`--format json`)."""
    if not isinstance(document, dict):
        raise BaselineError(f"a JSON {type(document).__name__}, not a report object")
    if "diff_schema_version" in document:
        raise BaselineError("it is an alert diff, not a report: give the --format json report")
    version = document.get("schema_version")
    if version is None:
        raise BaselineError("no schema_version: not a detection-replay --format json report")
    if version != SCHEMA_VERSION:
        raise BaselineError(
            f"schema_version {version!r}; this detection-replay reads {SCHEMA_VERSION}"
        )
    _check_fields(document, REPORT_FIELDS, "the report")
    for number, rule in enumerate(document["rules"], start=1):
        where = f"rule {number}"
        _check_fields(rule, RULE_FIELDS, where)
        if not all(_is_json(count, int) for count in rule.get("errors", {}).values()):
            raise BaselineError(f"{where}: errors holds a count that is not a JSON integer")
        for kind in GROUP_KINDS:
            for position, group in enumerate(rule.get(kind, ()), start=1):
                _check_group(group, f"{where} ({rule['rule_id']}), {kind} {position}")


def _check_fields(item, fields, where):
    if not isinstance(item, dict):
        raise BaselineError(f"{where} is a JSON {type(item).__name__}, not an object")
    for name, kind, required in fields:
        if name not in item:
            if required:
                raise BaselineError(f"{where} has no {name}")
        elif not _is_json(item[name], kind):
            raise BaselineError(f"{where}: {name} is not a JSON {JSON_TYPE_NAMES[kind]}")


JSON_TYPE_NAMES = {str: "string", int: "integer", list: "array", dict: "object"}


def _is_json(value, kind):
    # JSON's true and false are not numbers, though Python's bool is an int.
    return isinstance(value, kind) and not isinstance(value, bool)


def _check_group(group, where):
    _check_fields(group, GROUP_FIELDS, where)
    for name in ("first_seen", "last_seen"):
        if not ISO_SECOND.match(group[name]):
            raise BaselineError(f"{where}: {name} is not a time like 2026-11-20T09:00:00Z")


# --- comparing ---------------------------------------------------------------------------------


def pair_groups(baseline, current):
    """(pairs, removed, added): the groups of one rule in both runs matched as the module
    docstring says. Inputs and outputs are lists of group dicts."""
    pairs, removed, added = [], [], []
    old_by_dedup, new_by_dedup = _by_dedup(baseline), _by_dedup(current)
    for dedup in sorted(old_by_dedup.keys() | new_by_dedup.keys()):
        found, gone, new = _pair_in_time(old_by_dedup.get(dedup, []), new_by_dedup.get(dedup, []))
        pairs += found
        removed += gone
        added += new
    # Leftovers opened by the same event: the same incident under another dedup string.
    opened_by = {_first_event(group): group for group in added if _first_event(group)}
    still_removed, partnered = [], set()
    for group in removed:
        partner = opened_by.pop(_first_event(group), None) if _first_event(group) else None
        if partner is None:
            still_removed.append(group)
        else:
            pairs.append((group, partner))
            partnered.add(id(partner))
    return pairs, still_removed, [group for group in added if id(group) not in partnered]


def _by_dedup(groups):
    by_dedup = defaultdict(list)
    for group in sorted(groups, key=lambda group: (group["first_seen"], group["last_seen"])):
        by_dedup[group["dedup"]].append(group)
    return by_dedup


def _pair_in_time(old, new):
    """Two time-ordered lists of disjoint spans, paired where they overlap."""
    pairs, removed, added = [], [], []
    i = j = 0
    while i < len(old) and j < len(new):
        before, after = old[i], new[j]
        if before["last_seen"] < after["first_seen"]:
            removed.append(before)
            i += 1
        elif after["last_seen"] < before["first_seen"]:
            added.append(after)
            j += 1
        else:
            pairs.append((before, after))
            i += 1
            j += 1
    return pairs, removed + old[i:], added + new[j:]


def _first_event(group):
    where = group.get("first_event_at")
    return (group["first_seen"], where) if where else None


def group_changes(before, after):
    """{field: {baseline, current}} for the compared fields that differ."""
    return {
        name: {"baseline": before.get(name), "current": after.get(name)}
        for name in COMPARED_FIELDS
        if before.get(name) != after.get(name)
    }


def diff_groups(baseline, current):
    """{added, removed, changed} and the number unchanged, for one rule's alerts or signals."""
    pairs, removed, added = pair_groups(baseline, current)
    changed = [
        {"baseline": before, "current": after, "changes": changes}
        for before, after in pairs
        if (changes := group_changes(before, after))
    ]
    return {
        "added": sorted(added, key=_group_order),
        "removed": sorted(removed, key=_group_order),
        "changed": sorted(changed, key=lambda change: _group_order(change["current"])),
    }, len(pairs) - len(changed)


def _group_order(group):
    return group["first_seen"], group["dedup"], group["title"]


def rule_summary(rule):
    """A rule's settings (those its report holds) and counts, as the diff compares them."""
    summary = {name: rule[name] for name in RULE_SETTINGS if name in rule}
    summary["matched"] = rule["matched"]
    summary["alert_count"] = rule["alert_count"]
    summary["signal_count"] = rule.get("signal_count", 0)
    summary["rule_errors"] = sum((rule.get("errors") or {}).values())
    return summary


# A rule missing from one of the runs: nothing matched, nothing raised.
EMPTY_RULE = {"matched": 0, "alert_count": 0, "alerts": [], "signals": []}


def diff_rule(rule_id, before, after):
    """The rule's differences, and per kind the number of unchanged groups. `before` or
    `after` is None for a rule missing from that run."""
    presence = "both" if before and after else ("added" if after else "removed")
    before, after = before or EMPTY_RULE, after or EMPTY_RULE
    old, new = rule_summary(before), rule_summary(after)
    compared = [*RULE_SETTINGS, *RULE_COUNTS] if presence == "both" else RULE_COUNTS
    rule = {
        "rule_id": rule_id,
        "presence": presence,
        "settings_and_counts": {
            name: {"baseline": old[name], "current": new[name]}
            for name in compared
            if name in old and name in new and old[name] != new[name]
        },
    }
    unchanged = {}
    for kind in GROUP_KINDS:
        rule[kind], unchanged[kind] = diff_groups(before.get(kind, []), after.get(kind, []))
    return rule, unchanged


def _has_differences(rule):
    return (
        rule["presence"] != "both"
        or rule["settings_and_counts"]
        or any(rule[kind][change] for kind in GROUP_KINDS for change in CHANGE_KINDS)
    )


def run_summary(document, report=None):
    summary = {
        "repository": document["repository"],
        "records_read": document.get("records_read"),
        "alert_count": document["alert_count"],
        "signal_count": document.get("signal_count", 0),
        "rule_errors": document.get("rule_errors"),
        "exit_status": document.get("exit_status"),
    }
    return {"report": report, **summary} if report is not None else summary


def diff_reports(baseline, current, baseline_name):
    """The diff document of two reports (see the module docstring)."""
    old_rules = {rule["rule_id"]: rule for rule in baseline["rules"]}
    new_rules = {rule["rule_id"]: rule for rule in current["rules"]}
    totals = {kind: dict.fromkeys((*CHANGE_KINDS, "unchanged"), 0) for kind in GROUP_KINDS}
    rules = []
    for rule_id in sorted(old_rules.keys() | new_rules.keys()):
        rule, unchanged = diff_rule(rule_id, old_rules.get(rule_id), new_rules.get(rule_id))
        for kind in GROUP_KINDS:
            totals[kind]["unchanged"] += unchanged[kind]
            for change in CHANGE_KINDS:
                totals[kind][change] += len(rule[kind][change])
        if _has_differences(rule):
            rules.append(rule)
    return {
        "diff_schema_version": DIFF_SCHEMA_VERSION,
        "differs": bool(rules),
        "baseline": run_summary(baseline, report=baseline_name),
        "current": run_summary(current),
        **totals,
        "rules": rules,
        "warnings": warnings(baseline, current),
    }


def warnings(baseline, current):
    found = []
    read = (baseline.get("records_read"), current.get("records_read"))
    if read[0] != read[1]:
        found.append(
            f"the runs read different numbers of records ({_count(read[0])} in the baseline, "
            f"{_count(read[1])} now): alerts may differ for that reason alone"
        )
    for name, document in (("baseline", baseline), ("current run", current)):
        for kind in GROUP_KINDS:
            unlisted = document.get(f"{kind}_not_listed") or 0
            if unlisted:
                found.append(
                    f"the {name} left {unlisted:,} {kind[:-1]} group(s) unlisted (--max-alerts): "
                    "only listed ones are compared, and the counts"
                )
        status = document.get("exit_status")
        if status not in (0, 1, None):
            found.append(f"the {name} ended with exit status {status}: not a clean run")
    return found


def _count(value):
    return f"{value:,}" if isinstance(value, int) else "unknown"


# --- rendering ---------------------------------------------------------------------------------

SIGNS = {"added": "+", "removed": "-", "changed": "~"}
LABELS = {
    "matched": "matched",
    "alert_count": "alerts",
    "signal_count": "signals",
    "rule_errors": "rule errors",
    "severity": "severity",
    "dedup_period_minutes": "dedup minutes",
    "threshold": "threshold",
    "create_alert": "CreateAlert",
    "unique": "defines unique()",
    "title": "title",
    "dedup": "dedup",
    "events": "events",
    "first_seen": "first seen",
    "last_seen": "last seen",
    "unique_values": "distinct values",
}


def headline(diff):
    """One line: what changed, alerts and signals apart."""
    parts = []
    for kind in GROUP_KINDS:
        counts = diff[kind]
        changes = [f"{counts[change]} {change}" for change in CHANGE_KINDS if counts[change]]
        if changes:
            parts.append(f"{kind}: {', '.join(changes)}")
    if not parts:
        return "no change in alerts or signals" + (
            " (rule settings or counts changed)" if diff["differs"] else ""
        )
    return "; ".join(parts)


def render_diff_json(diff):
    return orjson.dumps(diff, option=orjson.OPT_INDENT_2).decode() + "\n"


def render_diff_text(diff):
    old, new = diff["baseline"], diff["current"]
    lines = [
        f"Alert diff against {printable(old['report'])}: {headline(diff)}",
        f"  alerts   {old['alert_count']:,} -> {new['alert_count']:,}",
        f"  signals  {old['signal_count']:,} -> {new['signal_count']:,}",
        "",
    ]
    for rule in diff["rules"]:
        lines.append(f"{printable(rule['rule_id'])}{_presence_note(rule['presence'])}")
        changed = rule["settings_and_counts"]
        if changed:
            lines.append("  " + "; ".join(_arrow(name, values) for name, values in changed.items()))
        for kind in GROUP_KINDS:
            for change in CHANGE_KINDS:
                for item in rule[kind][change]:
                    lines.extend(_text_group(kind, change, item))
        lines.append("")
    lines.extend(f"warning: {printable(text)}" for text in diff["warnings"])
    return "\n".join(lines).rstrip("\n") + "\n"


def _presence_note(presence):
    return {"both": "", "added": " (only in this run)", "removed": " (only in the baseline)"}[
        presence
    ]


def _arrow(name, values):
    return f"{LABELS[name]} {printable(str(values['baseline']))} -> " + printable(
        str(values["current"])
    )


def _text_group(kind, change, item):
    marker = f"  {SIGNS[change]} {'signal ' if kind == 'signals' else ''}"
    if change == "changed":
        group = item["current"]
        return [
            f"{marker}[{printable(group['severity'])}] {printable(group['title'])}",
            "      " + "; ".join(_arrow(name, v) for name, v in item["changes"].items()),
        ]
    return [
        f"{marker}[{printable(item['severity'])}] {printable(item['title'])}",
        f"      events {item['events']}, first seen {item['first_seen']}, last seen "
        f"{item['last_seen']}, dedup {printable(item['dedup'])}",
    ]


# Characters that would make text from logs into Markdown or HTML in a job summary. Text is
# only ever put inside a line (a table cell, after a heading's #), never at a line's start, so
# the characters that matter only there (#, +, -, 1.) need nothing.
MARKDOWN_ESCAPES = str.maketrans(
    {
        **{character: f"\\{character}" for character in "\\`*_[]|~"},
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
    }
)


def markdown_text(value, limit=MARKDOWN_CELL_CHARACTERS):
    """Text from a report, safe in a Markdown table cell: printable, escaped, bounded."""
    text = printable(str(value))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.translate(MARKDOWN_ESCAPES)


def render_diff_markdown(diff):
    old, new = diff["baseline"], diff["current"]
    lines = [
        f"### Alert diff: {markdown_text(headline(diff))}",
        "",
        f"Baseline {markdown_text(old['report'])} against this run.",
        "",
        "| | baseline | this run |",
        "|---|---:|---:|",
        f"| alerts | {old['alert_count']:,} | {new['alert_count']:,} |",
        f"| signals | {old['signal_count']:,} | {new['signal_count']:,} |",
        f"| records read | {_count(old['records_read'])} | {_count(new['records_read'])} |",
        "",
    ]
    for rule in diff["rules"]:
        note = _presence_note(rule["presence"])
        lines.append(f"#### {markdown_text(rule['rule_id'])}{markdown_text(note)}")
        lines.append("")
        changed = rule["settings_and_counts"]
        if changed:
            lines.append(" · ".join(_markdown_arrow(name, v) for name, v in changed.items()))
            lines.append("")
        for kind in GROUP_KINDS:
            lines.extend(_markdown_table(kind, rule[kind]))
    if diff["warnings"]:
        lines.extend(f"> **Warning:** {markdown_text(text, 1000)}" for text in diff["warnings"])
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _markdown_arrow(name, values):
    return (
        f"{LABELS[name]}: {markdown_text(values['baseline'])} → {markdown_text(values['current'])}"
    )


def _markdown_table(kind, changes):
    rows = [(change, item) for change in CHANGE_KINDS for item in changes[change]]
    if not rows:
        return []
    lines = [
        f"{'Signal groups' if kind == 'signals' else 'Alerts'}:",
        "",
        "| change | severity | title | events | first seen | last seen | dedup |",
        "|---|---|---|---:|---|---|---|",
    ]
    for change, item in rows[:MARKDOWN_ROWS]:
        lines.append(_markdown_row(change, item))
    if len(rows) > MARKDOWN_ROWS:
        lines.append(f"\n… and {len(rows) - MARKDOWN_ROWS:,} more (the JSON diff lists all)")
    lines.append("")
    return lines


def _markdown_row(change, item):
    if change != "changed":
        cells = [item.get(name) for name in ("severity", "title", "events")]
        cells += [item.get(name) for name in ("first_seen", "last_seen", "dedup")]
        return "| " + " | ".join([change, *(markdown_text(cell) for cell in cells)]) + " |"
    before, after, changes = item["baseline"], item["current"], item["changes"]
    cells = []
    for name in ("severity", "title", "events", "first_seen", "last_seen", "dedup"):
        if name in changes:
            cells.append(f"{markdown_text(before.get(name))} → {markdown_text(after.get(name))}")
        else:
            cells.append(markdown_text(after.get(name)))
    return "| " + " | ".join([change, *cells]) + " |"


DIFF_RENDERERS = {
    "text": render_diff_text,
    "markdown": render_diff_markdown,
    "json": render_diff_json,
}
