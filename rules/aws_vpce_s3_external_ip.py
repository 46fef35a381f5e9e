"""S3 object access through a VPC endpoint from a public source address.

Endpoint clients normally sit inside the VPC, a peered VPC or on-premises behind Direct Connect /
VPN, so they reach the endpoint from private addresses. A public source address on a network
activity record means traffic bridged in from outside the network boundary.

What matches is decided in the global helper vpce_family, with the settings every VPC endpoint
rule shares (monitored operations, trusted networks and lookup tables). Many such calls by one
caller are the bulk-access rule's to count (AWS.CloudTrail.VPCE.S3ExternalIPBulkAccess).
"""

from address_history import NEW, Baseline, event_epoch, history_context
from cloudtrail_context import enrichment_context, json_safe, network_activity_context
from cloudtrail_fields import (
    MAX_TITLE_PART_CHARS,
    UNKNOWN,
    bucket_name,
    caller_id,
    caller_name,
    error_kind,
    event_names,
    once_per_event,
    positive_int,
    source_address,
)
from ip_enrichment import described_address, source_ip_profile
from panther_detection_helpers.caching import get_string_set, put_string_set
from vpce_family import (
    SETTINGS_IN_EFFECT,
    TRUSTED_TABLES,
    family_context,
    is_external_s3_data_access,
)

# --- Overrides: edit these assignments to tune this rule. ---------------------------------------

# Successful operations that destroy data or change who can read it: raised to HIGH.
HIGH_SEVERITY_OPERATIONS = [
    "DeleteObject",
    "DeleteObjects",
    "DeleteObjectVersion",
    "PutObjectAcl",
    "PutObjectVersionAcl",
]

# A caller reaching the endpoint from a network (the address's /24, or /64 for IPv6) it has not
# used for this many days is a new address: the title says so.
FIRST_SEEN_DAYS = 30

# --- Derived once at import from the overrides above (a bad value fails loudly here). --------

HIGH_IMPACT_OPERATIONS = event_names(HIGH_SEVERITY_OPERATIONS, setting="HIGH_SEVERITY_OPERATIONS")
HISTORY_DAYS = positive_int(FIRST_SEEN_DAYS, "FIRST_SEEN_DAYS", 365)
ADDRESS_HISTORY = Baseline(days=HISTORY_DAYS)

# Severity per outcome. "DEFAULT" keeps the YAML's Medium. A refused or failed call moved no data.
SEVERITY_BY_OUTCOME = {
    "denied": "LOW",
    "failed": "LOW",
    "high_impact": "HIGH",
    "allowed": "DEFAULT",
}
# Data that moved to a client hiding its address (Tor, VPN, proxy, relay) is at least HIGH.
ANONYMISED_FLOOR = "HIGH"
SUCCESSFUL_OUTCOMES = frozenset({"high_impact", "allowed"})
SEVERITY_RANK = {"INFO": 0, "LOW": 1, "DEFAULT": 2, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
TITLE_VERB = {"denied": "Denied S3", "failed": "Failed S3", "high_impact": "S3", "allowed": "S3"}
# Panther cuts titles and dedup strings longer than this; stay within it ourselves.
PANTHER_FIELD_LIMIT = 1000
OVERRIDES_IN_EFFECT = json_safe(
    {
        **SETTINGS_IN_EFFECT,
        "HIGH_SEVERITY_OPERATIONS": sorted(HIGH_IMPACT_OPERATIONS),
        "FIRST_SEEN_DAYS": HISTORY_DAYS,
    },
    max_chars=4096,
)


def rule(event):
    return is_external_s3_data_access(event)


def outcome(event, operation):
    kind = error_kind(event)
    if kind is not None:
        return kind
    if isinstance(operation, str) and operation in HIGH_IMPACT_OPERATIONS:
        return "high_impact"
    return "allowed"


class Findings:  # pylint: disable=too-few-public-methods
    """What is known about one event, worked out once for all its alert functions."""

    def __init__(self, event):
        self.operation = event.get("eventName")
        self.outcome = outcome(event, self.operation)
        self.caller = caller_id(event)
        self.address = source_address(event)
        self.profile = source_ip_profile(event, TRUSTED_TABLES)
        self.severity = severity_of(self.outcome, self.profile)
        # The baseline is read and written for matching events only: alert functions are also
        # called on events that do not match (unit tests, replays).
        self.history = (
            ADDRESS_HISTORY.look_up(
                self.caller,
                event.get("sourceIPAddress"),
                event_epoch(event),
                # Looked up now, not at import: YAML Mocks replace these names on this module.
                (get_string_set, put_string_set),
            )
            if is_external_s3_data_access(event)
            else None
        )


def severity_of(kind, profile):
    found = SEVERITY_BY_OUTCOME[kind]
    anonymised = profile is not None and profile["anonymising"]
    if anonymised and kind in SUCCESSFUL_OUTCOMES:
        found = max(found, ANONYMISED_FLOOR, key=SEVERITY_RANK.__getitem__)
    return found


# Panther calls title(), dedup(), severity() and alert_context() on one event in turn: its
# findings (and its one look at the store) are shared; a plain dict, which may change between
# calls, is looked at afresh.
findings = once_per_event(Findings)


def _short(value):
    text = value if isinstance(value, str) and value else UNKNOWN
    return text[:MAX_TITLE_PART_CHARS]


def title(event):
    found = findings(event)
    bucket = bucket_name(event)
    target = f"on {_short(bucket)}" if bucket else "(bucket not in record)"
    operation = f"{TITLE_VERB[found.outcome]} {_short(found.operation)}"
    # Only a failure shows its code (a denial says so in its verb): read only then.
    code = event.get("errorCode") if found.outcome == "failed" else None
    if isinstance(code, str):
        operation += f" ({_short(code)})"
    where = described_address(found.address, found.profile)
    new = "new " if found.history is not None and found.history.status == NEW else ""
    caller = caller_name(event)
    text = f"{operation} {target} by {caller} from {new}external IP {where} via VPC endpoint"
    return text[:PANTHER_FIELD_LIMIT]


def dedup(event):
    # One alert per caller, outside address and severity: later objects and operations join it,
    # while an escalation opens (and pages) an alert of its own instead of joining a quieter one.
    found = findings(event)
    return f"{found.caller}:{found.address}:{found.severity}"[:PANTHER_FIELD_LIMIT]


def severity(event):
    return findings(event).severity


def alert_context(event):
    found = findings(event)
    context = network_activity_context(event)
    context["denied"] = found.outcome == "denied"
    context["outcome"] = found.outcome
    context["vpceFamily"] = family_context(event)
    context["addressHistory"] = (
        None if found.history is None else history_context(found.history, HISTORY_DAYS)
    )
    context["sourceIPEnrichment"] = enrichment_context(found.profile)
    context["overrides"] = OVERRIDES_IN_EFFECT
    return context
