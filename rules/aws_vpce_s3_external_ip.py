"""S3 object access through a VPC endpoint from a public source address.

Endpoint clients normally sit inside the VPC, a peered VPC or on-premises behind Direct Connect /
VPN, so they reach the endpoint from private addresses. A public source address on a network
activity record means traffic bridged in from outside the network boundary.
"""

from cloudtrail_context import json_safe, network_activity_context
from cloudtrail_fields import UNKNOWN, actor, bucket_name, caller_account, event_names, principal
from public_ip import external_address_check

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

# --- Derived once at import from the overrides above (a bad CIDR fails loudly here). -----------

MONITORED_OPERATIONS = event_names(S3_DATA_ACCESS_OPERATIONS, setting="S3_DATA_ACCESS_OPERATIONS")
HIGH_IMPACT_OPERATIONS = event_names(HIGH_SEVERITY_OPERATIONS, setting="HIGH_SEVERITY_OPERATIONS")
is_external_address = external_address_check(TRUSTED_NETWORKS, setting="TRUSTED_NETWORKS")
# The overrides as every alert context reports them: the same for every event, so built once.
OVERRIDES_CONTEXT = json_safe(
    {
        "S3_DATA_ACCESS_OPERATIONS": sorted(MONITORED_OPERATIONS),
        "TRUSTED_NETWORKS": [str(net) for net in is_external_address.trusted_networks],
        "HIGH_SEVERITY_OPERATIONS": sorted(HIGH_IMPACT_OPERATIONS),
    },
    max_chars=4096,
)

# "DEFAULT" keeps the YAML's Severity (Medium).
SEVERITY_BY_OUTCOME = {"denied": "LOW", "high_impact": "HIGH", "allowed": "DEFAULT"}
MAX_TITLE_PART_CHARS = 120
# Panther cuts titles and dedup strings longer than this; stay within it ourselves.
PANTHER_FIELD_LIMIT = 1000


def rule(event):
    # Most selective tests first: most CloudTrail events are not network activity, and most
    # network activity comes from private addresses (a memoised lookup, nearly free).
    return (
        event.get("eventType") == "AwsVpceEvent"
        and is_external_address(event.get("sourceIPAddress"))
        and event.get("eventSource") == "s3.amazonaws.com"
        and event.get("eventCategory") == "NetworkActivity"
        and is_monitored_operation(event.get("eventName"))
    )


def is_monitored_operation(name):
    return isinstance(name, str) and name in MONITORED_OPERATIONS


def outcome(event):
    if event.get("errorCode"):
        return "denied"
    name = event.get("eventName")
    if isinstance(name, str) and name in HIGH_IMPACT_OPERATIONS:
        return "high_impact"
    return "allowed"


def source_address(event):
    raw = event.get("sourceIPAddress")
    return _short(raw.strip() if isinstance(raw, str) else None)


def _short(value):
    text = value if isinstance(value, str) and value else UNKNOWN
    return text[:MAX_TITLE_PART_CHARS]


def title(event):
    bucket = bucket_name(event)
    target = f"on {_short(bucket)}" if bucket else "(bucket not in record)"
    verb = "Denied S3" if outcome(event) == "denied" else "S3"
    text = (
        f"{verb} {_short(event.get('eventName'))} {target} by {_short(actor(event))} "
        f"from external IP {source_address(event)} via VPC endpoint"
    )
    return text[:PANTHER_FIELD_LIMIT]


def dedup(event):
    # One alert per outside address per caller: later objects and operations join it.
    caller = f"{caller_account(event) or UNKNOWN}:{principal(event) or UNKNOWN}"
    return f"{caller}:{source_address(event)}"[:PANTHER_FIELD_LIMIT]


def severity(event):
    return SEVERITY_BY_OUTCOME[outcome(event)]


def alert_context(event):
    context = network_activity_context(event)
    context["denied"] = outcome(event) == "denied"
    context["overrides"] = OVERRIDES_CONTEXT
    return context
