"""S3 object access through a VPC endpoint from a public source address.

Endpoint clients normally sit inside the VPC, a peered VPC or on-premises behind Direct Connect /
VPN, so they reach the endpoint from private addresses. A public source address on a network
activity record means traffic bridged in from outside the network boundary.
"""

from cloudtrail_context import json_safe, network_activity_context
from cloudtrail_fields import (
    UNKNOWN,
    actor,
    bucket_name,
    caller_account,
    error_kind,
    event_names,
    positive_int,
    principal,
    record_of,
    session_name,
    top_level_field,
)
from ip_enrichment import is_matched, owner_label, source_ip_profile
from panther_detection_helpers.caching import increment_counter
from public_ip import external_address_check
from windowed_counter import WindowCount, count_in_window

# --- Overrides: edit these assignments to tune the rule for your network. ----------------------

# S3 operations that read, write, delete or re-permission objects.
S3_DATA_ACCESS_OPERATIONS = [
    "GetObject",
    "GetObjectVersion",
    "GetObjectAcl",
    "GetObjectVersionAcl",
    "PutObject",
    "PutObjectAcl",
    "PutObjectVersionAcl",
    "CopyObject",
    "DeleteObject",
    "DeleteObjects",
    "DeleteObjectVersion",
]

# Your own public ranges, as CIDR strings: Amazon-provided IPv6 blocks of dual-stack VPCs, BYOIP
# ranges, on-premises egress over Direct Connect / VPN. e.g. ["2600:1f18:abcd:1200::/56"]
TRUSTED_NETWORKS = []

# Successful operations that destroy data or change who can read it: raised to HIGH.
HIGH_SEVERITY_OPERATIONS = [
    "DeleteObject",
    "DeleteObjects",
    "DeleteObjectVersion",
    "PutObjectAcl",
    "PutObjectVersionAcl",
]

# How many monitored operations by one caller from one address, within one window of event
# time, make bulk access: a successful one at or past the count is CRITICAL.
BULK_ACCESS_OPERATIONS = 100
BULK_ACCESS_WINDOW_MINUTES = 60

# Names of your Panther lookup tables of trusted ranges (CIDR primary key, associated with
# AWS.CloudTrail sourceIPAddress): an address Panther matched in one is trusted like
# TRUSTED_NETWORKS. e.g. ["corp_egress_ranges"]
TRUSTED_LOOKUP_TABLES = []

# --- Derived once at import from the overrides above (a bad value fails loudly here). --------

MONITORED_OPERATIONS = event_names(S3_DATA_ACCESS_OPERATIONS, setting="S3_DATA_ACCESS_OPERATIONS")
HIGH_IMPACT_OPERATIONS = event_names(HIGH_SEVERITY_OPERATIONS, setting="HIGH_SEVERITY_OPERATIONS")
is_external_address = external_address_check(TRUSTED_NETWORKS, setting="TRUSTED_NETWORKS")
TRUSTED_TABLES = sorted(
    event_names(TRUSTED_LOOKUP_TABLES, setting="TRUSTED_LOOKUP_TABLES", kind="table name")
)
BULK_THRESHOLD = positive_int(BULK_ACCESS_OPERATIONS, "BULK_ACCESS_OPERATIONS", 10**9)
BULK_WINDOW_MINUTES = positive_int(BULK_ACCESS_WINDOW_MINUTES, "BULK_ACCESS_WINDOW_MINUTES", 1440)

# Severity per outcome, alone and as part of bulk access. "DEFAULT" keeps the YAML's Medium.
# A refused or failed call moved no data: many of them are a probe (MEDIUM), never more.
SEVERITY_BY_OUTCOME = {
    "denied": "LOW",
    "failed": "LOW",
    "high_impact": "HIGH",
    "allowed": "DEFAULT",
}
BULK_SEVERITY_BY_OUTCOME = {
    "denied": "MEDIUM",
    "failed": "MEDIUM",
    "high_impact": "CRITICAL",
    "allowed": "CRITICAL",
}
# Data that moved to a client hiding its address (Tor, VPN, proxy, relay) is at least HIGH.
ANONYMISED_FLOOR = "HIGH"
SUCCESSFUL_OUTCOMES = frozenset({"high_impact", "allowed"})
SEVERITY_RANK = {"INFO": 0, "LOW": 1, "DEFAULT": 2, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
TITLE_VERB = {"denied": "Denied S3", "failed": "Failed S3", "high_impact": "S3", "allowed": "S3"}
COUNTER_PREFIX = "vpce-s3-external"
NOT_COUNTED = WindowCount(None, None, "not counted: the event does not match")
MAX_TITLE_PART_CHARS = 120
# Panther cuts titles and dedup strings longer than this; stay within it ourselves.
PANTHER_FIELD_LIMIT = 1000
OVERRIDES_IN_EFFECT = json_safe(
    {
        "S3_DATA_ACCESS_OPERATIONS": sorted(MONITORED_OPERATIONS),
        "TRUSTED_NETWORKS": [str(net) for net in is_external_address.trusted_networks],
        "HIGH_SEVERITY_OPERATIONS": sorted(HIGH_IMPACT_OPERATIONS),
        "BULK_ACCESS_OPERATIONS": BULK_THRESHOLD,
        "BULK_ACCESS_WINDOW_MINUTES": BULK_WINDOW_MINUTES,
        "TRUSTED_LOOKUP_TABLES": TRUSTED_TABLES,
    },
    max_chars=4096,
)


def rule(event):
    # Most selective tests first: most CloudTrail events are not network activity, and most
    # network activity comes from private addresses (a memoised lookup, nearly free). The
    # decision reads the event only: the key-value store never decides whether it matches.
    record = record_of(event)  # read from the dict the event wraps: cheaper than its lookups
    matched = (
        top_level_field(record, event, "eventType") == "AwsVpceEvent"
        and is_external_address(top_level_field(record, event, "sourceIPAddress"))
        and is_s3_data_access(record, event)
        and not is_in_trusted_lookup_table(event)
    )
    if matched:
        _remember_match(event)
    return matched


# The last read-only event (a PantherEvent) rule() matched. It cannot change, so its alert
# functions, called next by the engine, need not decide again whether to count it.
_matched_event = None


def _remember_match(event):
    global _matched_event  # noqa: PLW0603 (one event, shared with its alert functions)
    if hasattr(event, "raw_view"):
        _matched_event = event


def matches(event):
    """rule(event), answered without deciding again for the event rule() last matched."""
    return event is _matched_event or rule(event)


def is_s3_data_access(record, event):
    return (
        top_level_field(record, event, "eventSource") == "s3.amazonaws.com"
        and top_level_field(record, event, "eventCategory") == "NetworkActivity"
        and is_monitored_operation(top_level_field(record, event, "eventName"))
    )


def is_monitored_operation(name):
    return isinstance(name, str) and name in MONITORED_OPERATIONS


def is_in_trusted_lookup_table(event):
    # No generator set up for the common case of no trusted tables.
    return bool(TRUSTED_TABLES) and any(is_matched(event, table) for table in TRUSTED_TABLES)


def outcome(event, operation):
    kind = error_kind(event)
    if kind is not None:
        return kind
    if isinstance(operation, str) and operation in HIGH_IMPACT_OPERATIONS:
        return "high_impact"
    return "allowed"


# --- What is known about one matching event, worked out once for all alert functions. ---------


class Findings:
    """The operation, outcome, bulk count and address profile of one matching event.

    Panther calls title(), dedup(), severity() and alert_context() on the same event object;
    the store must be counted once per event, so the findings of the latest event are kept.
    Only a matching event is counted: unit tests also call these functions on events that do
    not match.
    """

    def __init__(self, event):
        self.operation = event.get("eventName")
        self.outcome = outcome(event, self.operation)
        self.succeeded = self.outcome in SUCCESSFUL_OUTCOMES
        # Who, from where: the dedup string's parts, and the counter's key with the outcome.
        self.caller = [caller_account(event) or UNKNOWN, principal(event) or UNKNOWN]
        self.address = source_address(event)
        self.profile = source_ip_profile(event, TRUSTED_TABLES)
        self.window = self._count(event) if matches(event) else NOT_COUNTED
        self.bulk = self.window.count is not None and self.window.count >= BULK_THRESHOLD
        self.severity = self._severity()

    def _count(self, event):
        parts = [*self.caller, self.address, "ok" if self.succeeded else "refused"]
        window_seconds = BULK_WINDOW_MINUTES * 60
        return count_in_window(increment_counter, COUNTER_PREFIX, parts, event, window_seconds)

    def _severity(self):
        table = BULK_SEVERITY_BY_OUTCOME if self.bulk else SEVERITY_BY_OUTCOME
        severity = table[self.outcome]
        anonymised = self.profile is not None and self.profile["anonymising"]
        if anonymised and self.succeeded:
            severity = max(severity, ANONYMISED_FLOOR, key=SEVERITY_RANK.__getitem__)
        return severity


_latest = (None, None)


def findings(event):
    global _latest  # noqa: PLW0603 (one event's findings, shared by its alert functions)
    seen, known = _latest
    if seen is not event:
        known = Findings(event)
        _latest = (event, known)
    return known


def source_address(event):
    raw = event.get("sourceIPAddress")
    return _short(raw.strip() if isinstance(raw, str) else None)


def _short(value):
    text = value if isinstance(value, str) and value else UNKNOWN
    return text[:MAX_TITLE_PART_CHARS]


def _caller(event):
    name = _short(actor(event))
    session = session_name(event)
    return f"{name} (session {_short(session)})" if session and session != name else name


def title(event):
    found = findings(event)
    bucket = bucket_name(event)
    target = f"on {_short(bucket)}" if bucket else "(bucket not in record)"
    operation = f"{TITLE_VERB[found.outcome]} {_short(found.operation)}"
    # Only a failure shows its code (a denial says so in its verb): read only then.
    code = event.get("errorCode") if found.outcome == "failed" else None
    if isinstance(code, str):
        operation += f" ({_short(code)})"
    owner = owner_label(found.profile)
    where = f"{found.address} ({owner})" if owner else found.address
    bulk = (
        f"Bulk access ({found.window.count} operations in {BULK_WINDOW_MINUTES} min so far): "
        if found.bulk
        else ""
    )
    text = (
        f"{bulk}{operation} {target} by {_caller(event)} from external IP {where} via VPC endpoint"
    )
    return text[:PANTHER_FIELD_LIMIT]


def dedup(event):
    # One alert per caller, outside address and severity: later objects and operations join it,
    # while an escalation opens (and pages) an alert of its own instead of joining a quieter one.
    found = findings(event)
    account, principal_id = found.caller
    return f"{account}:{principal_id}:{found.address}:{found.severity}"[:PANTHER_FIELD_LIMIT]


def severity(event):
    return findings(event).severity


def alert_context(event):
    found = findings(event)
    context = network_activity_context(event)
    context["denied"] = found.outcome == "denied"
    context["outcome"] = found.outcome
    context["bulkAccess"] = {
        "operationsInWindow": found.window.count,
        "threshold": BULK_THRESHOLD,
        "windowMinutes": BULK_WINDOW_MINUTES,
        "windowStart": found.window.window_start,
        "bulk": found.bulk,
        "stateUnavailable": found.window.unavailable,
    }
    profile = found.profile  # a dict, or None when the enrichment says nothing
    context["sourceIPEnrichment"] = (
        profile if profile is None else json_safe(profile, max_chars=4096)
    )
    context["overrides"] = OVERRIDES_IN_EFFECT
    return context
