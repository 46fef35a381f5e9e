"""What the VPC endpoint rules share: the settings you tune once for all of them, and the match
decisions built on them.

Every rule of the family decides through the functions below, so a network you trust or an
operation you stop watching is trusted or dropped by all of them at once: a per-event alert and
the bulk-access count can never disagree about which events count.
"""

from cloudtrail_context import json_safe
from cloudtrail_fields import event_names, record_of, top_level_field
from ip_enrichment import is_matched
from public_ip import external_address_check

# --- Overrides: edit these assignments to tune every rule of the family. --------------------

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

# Names of your Panther lookup tables of trusted ranges (CIDR primary key, associated with
# AWS.CloudTrail sourceIPAddress): an address Panther matched in one is trusted like
# TRUSTED_NETWORKS. e.g. ["corp_egress_ranges"]
TRUSTED_LOOKUP_TABLES = []

# --- Derived once at import from the overrides above (a bad value fails loudly here). --------

MONITORED_S3_OPERATIONS = event_names(
    S3_DATA_ACCESS_OPERATIONS, setting="S3_DATA_ACCESS_OPERATIONS"
)
is_external_address = external_address_check(TRUSTED_NETWORKS, setting="TRUSTED_NETWORKS")
TRUSTED_TABLES = tuple(
    sorted(event_names(TRUSTED_LOOKUP_TABLES, setting="TRUSTED_LOOKUP_TABLES", kind="table name"))
)
# What an alert context reports as the family's settings in effect.
SETTINGS_IN_EFFECT = json_safe(
    {
        "S3_DATA_ACCESS_OPERATIONS": sorted(MONITORED_S3_OPERATIONS),
        "TRUSTED_NETWORKS": [str(net) for net in is_external_address.trusted_networks],
        "TRUSTED_LOOKUP_TABLES": list(TRUSTED_TABLES),
    },
    max_chars=4096,
)

NETWORK_ACTIVITY = "AwsVpceEvent"
S3_SOURCE = "s3.amazonaws.com"


def is_external_s3_data_access(event):
    """S3 object access through a VPC endpoint from a public address you do not trust.

    Most selective tests first: most CloudTrail events are not network activity, and most
    network activity comes from private addresses (a memoised lookup, nearly free). The decision
    reads the event only, never state, so nothing can hide a match.
    """
    record = record_of(event)  # the dict the event wraps: cheaper than the event's own lookups
    return (
        top_level_field(record, event, "eventType") == NETWORK_ACTIVITY
        and is_external_address(top_level_field(record, event, "sourceIPAddress"))
        and top_level_field(record, event, "eventSource") == S3_SOURCE
        and top_level_field(record, event, "eventCategory") == "NetworkActivity"
        and is_monitored_s3_operation(top_level_field(record, event, "eventName"))
        and not is_in_trusted_lookup_table(event)
    )


def is_monitored_s3_operation(name):
    return isinstance(name, str) and name in MONITORED_S3_OPERATIONS


def is_in_trusted_lookup_table(event):
    # No generator set up for the common case of no trusted tables.
    return bool(TRUSTED_TABLES) and any(is_matched(event, table) for table in TRUSTED_TABLES)
