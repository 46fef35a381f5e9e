"""What the VPC endpoint rules share: the settings you tune once for all of them, what one
network activity record shows, and which rule of the family alerts on it.

Every rule of the family decides through the functions below, so a network or an account you
trust is trusted by all of them at once, and an event raises one alert, not one per rule that
would have matched: the rules are tried in OWNERSHIP order and the first whose condition holds
owns the event. The bulk-access rule (a count, not an alert per event) counts exactly the events
AWS.CloudTrail.VPCE.S3ExternalIP owns.
"""

import re
from typing import NamedTuple

from cloudtrail_context import enrichment_context, json_safe, network_activity_context
from cloudtrail_fields import (
    UNKNOWN,
    caller_account,
    error_kind,
    event_names,
    once_per_event,
    record_of,
    source_address,
    text,
    top_level_field,
)
from ip_enrichment import described_address, is_matched, source_ip_profile
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

# Accounts whose callers are not external principals at your endpoints: your organisation's
# other accounts, known partners. e.g. ["444455556666"]
TRUSTED_ACCOUNTS = []

# Names of your Panther lookup tables of trusted accounts (the account id as primary key,
# associated with AWS.CloudTrail userIdentity.accountId): a caller whose account Panther matched
# in one is trusted like TRUSTED_ACCOUNTS. e.g. ["organization_accounts"]
TRUSTED_ACCOUNT_LOOKUP_TABLES = []

# Calls that change or destroy what protects data, per service: AWS.CloudTrail.VPCE.
# SensitiveAPICalls alerts on each, whoever makes it from wherever.
PROTECTION_CHANGES = {
    "cloudtrail.amazonaws.com": [
        "StopLogging",
        "DeleteTrail",
        "UpdateTrail",
        "PutEventSelectors",
        "DeleteEventDataStore",
    ],
    "s3.amazonaws.com": [
        "PutBucketPolicy",
        "DeleteBucketPolicy",
        "PutBucketAcl",
        "PutBucketPublicAccessBlock",
        "DeleteBucketPublicAccessBlock",
        "PutBucketOwnershipControls",
        "DeleteBucketEncryption",
        "PutBucketLogging",
        "PutBucketVersioning",
        "PutBucketLifecycle",
        "DeleteBucket",
    ],
    "kms.amazonaws.com": [
        "ScheduleKeyDeletion",
        "DisableKey",
        "PutKeyPolicy",
        "DisableKeyRotation",
        "DeleteImportedKeyMaterial",
        "CreateGrant",
    ],
    "secretsmanager.amazonaws.com": [
        "DeleteSecret",
        "PutResourcePolicy",
        "DeleteResourcePolicy",
        "StopReplicationToReplica",
    ],
    "ec2.amazonaws.com": [
        "CreateKeyPair",
        "ImportKeyPair",
        "ModifyInstanceAttribute",
        "DeleteFlowLogs",
    ],
}

# Calls a workload makes all day, per service: routine from your own account inside your network,
# worth an alert only from outside it (AWS.CloudTrail.VPCE.SensitiveAPICalls) or by another
# account (AWS.CloudTrail.VPCE.ExternalPrincipal).
ROUTINE_SENSITIVE_CALLS = {
    "kms.amazonaws.com": [
        "Decrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "ReEncrypt",
        "CreateKey",
    ],
    "secretsmanager.amazonaws.com": [
        "GetSecretValue",
        "BatchGetSecretValue",
        "CreateSecret",
        "PutSecretValue",
    ],
    "ec2.amazonaws.com": ["DescribeInstances", "DescribeNetworkInterfaces", "RunInstances"],
    "s3.amazonaws.com": ["ListBuckets"],
}

# --- Derived once at import from the overrides above (a bad value fails loudly here). --------

_ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)


def account_ids(values, setting):
    """A frozenset of 12-digit AWS account ids from an override list, failing loudly."""
    names = event_names(values, setting=setting, kind="account id")
    for name in names:
        if not _ACCOUNT_ID.fullmatch(name):
            raise ValueError(f"{setting}: {name!r} is not a valid account id (12 digits)")
    return names


def table_names(values, setting):
    """Lookup table names from an override list, sorted, failing loudly on a bad entry."""
    return tuple(sorted(event_names(values, setting=setting, kind="table name")))


def calls_by_service(table, setting):
    """{service: frozenset of event names} from an override table, failing loudly."""
    if not isinstance(table, dict):
        raise ValueError(f"{setting} must map services to lists of event names, got {table!r}")
    return {
        service: event_names(names, setting=f"{setting}[{service!r}]")
        for service in event_names(list(table), setting=setting, kind="service")
        for names in (table[service],)
    }


MONITORED_S3_OPERATIONS = event_names(
    S3_DATA_ACCESS_OPERATIONS, setting="S3_DATA_ACCESS_OPERATIONS"
)
is_external_address = external_address_check(TRUSTED_NETWORKS, setting="TRUSTED_NETWORKS")
TRUSTED_TABLES = table_names(TRUSTED_LOOKUP_TABLES, setting="TRUSTED_LOOKUP_TABLES")
TRUSTED_ACCOUNT_IDS = account_ids(TRUSTED_ACCOUNTS, setting="TRUSTED_ACCOUNTS")
TRUSTED_ACCOUNT_TABLES = table_names(
    TRUSTED_ACCOUNT_LOOKUP_TABLES, setting="TRUSTED_ACCOUNT_LOOKUP_TABLES"
)
CHANGES = calls_by_service(PROTECTION_CHANGES, setting="PROTECTION_CHANGES")
ROUTINE = calls_by_service(ROUTINE_SENSITIVE_CALLS, setting="ROUTINE_SENSITIVE_CALLS")
# What an alert context reports as the family's settings in effect.
SETTINGS_IN_EFFECT = json_safe(
    {
        "S3_DATA_ACCESS_OPERATIONS": sorted(MONITORED_S3_OPERATIONS),
        "TRUSTED_NETWORKS": [str(net) for net in is_external_address.trusted_networks],
        "TRUSTED_LOOKUP_TABLES": list(TRUSTED_TABLES),
        "TRUSTED_ACCOUNTS": sorted(TRUSTED_ACCOUNT_IDS),
        "TRUSTED_ACCOUNT_LOOKUP_TABLES": list(TRUSTED_ACCOUNT_TABLES),
    },
    max_chars=4096,
)

NETWORK_ACTIVITY = "AwsVpceEvent"
S3_SOURCE = "s3.amazonaws.com"
ENDPOINT_POLICY_DENIAL = "VpceAccessDenied"
ACCOUNT_SELECTOR = "userIdentity.accountId"

S3_EXTERNAL_IP = "AWS.CloudTrail.VPCE.S3ExternalIP"
SENSITIVE_API_CALLS = "AWS.CloudTrail.VPCE.SensitiveAPICalls"
EXTERNAL_PRINCIPAL = "AWS.CloudTrail.VPCE.ExternalPrincipal"
ACCESS_DENIED = "AWS.CloudTrail.VPCE.AccessDenied"


# --- The decision shared with the bulk rule ---------------------------------------------------


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


# --- What one network activity record shows, and who owns it -------------------------------


class Findings(NamedTuple):
    """What the family sees in one network activity record."""

    external_address: bool  # public, and not one of your networks
    foreign_principal: bool  # a caller of another account you do not trust
    denied: bool  # refused by the endpoint policy
    sensitive: str | None  # "change", "routine" or None (see the tables above)
    s3_data_access: bool  # an object operation of S3_DATA_ACCESS_OPERATIONS


def endpoint_account(record, event):
    """The endpoint's account: vpcEndpointAccountId, else recipientAccountId."""
    return text(top_level_field(record, event, "vpcEndpointAccountId")) or text(
        top_level_field(record, event, "recipientAccountId")
    )


def is_trusted_account(event, account):
    return account in TRUSTED_ACCOUNT_IDS or (
        bool(TRUSTED_ACCOUNT_TABLES)
        and any(is_matched(event, table, ACCOUNT_SELECTOR) for table in TRUSTED_ACCOUNT_TABLES)
    )


def sensitivity(service, operation):
    if not (isinstance(service, str) and isinstance(operation, str)):
        return None
    if operation in CHANGES.get(service, ()):
        return "change"
    if operation in ROUTINE.get(service, ()):
        return "routine"
    return None


def _findings(event):
    record = record_of(event)
    service = top_level_field(record, event, "eventSource")
    operation = top_level_field(record, event, "eventName")
    caller = caller_account(event)
    endpoint_holder = endpoint_account(record, event)
    external = is_external_address(
        top_level_field(record, event, "sourceIPAddress")
    ) and not is_in_trusted_lookup_table(event)
    return Findings(
        external_address=external,
        foreign_principal=caller is not None
        and endpoint_holder is not None
        and caller != endpoint_holder
        and not is_trusted_account(event, caller),
        denied=top_level_field(record, event, "errorCode") == ENDPOINT_POLICY_DENIAL,
        sensitive=sensitivity(service, operation),
        s3_data_access=service == S3_SOURCE and is_monitored_s3_operation(operation),
    )


def is_network_activity(event):
    record = record_of(event)
    return (
        top_level_field(record, event, "eventType") == NETWORK_ACTIVITY
        and top_level_field(record, event, "eventCategory") == "NetworkActivity"
    )


@once_per_event  # the four rules ask of one event in turn
def findings(event):
    """The record's Findings, or None when it is no VPC endpoint network activity record."""
    return _findings(event) if is_network_activity(event) else None


# Which rule alerts on an event: the first whose condition holds, in this order. External S3
# data access is the package's own case (and what the bulk rule counts); a change to what
# protects data matters whoever makes it; a caller of another account comes next, whatever it
# calls; then an endpoint-policy denial (nothing got through: a policy to fix, or a probe); and
# last a routine sensitive call that got past the endpoint from outside your network.
OWNERSHIP = (
    (S3_EXTERNAL_IP, lambda found: found.s3_data_access and found.external_address),
    (SENSITIVE_API_CALLS, lambda found: found.sensitive == "change"),
    (EXTERNAL_PRINCIPAL, lambda found: found.foreign_principal),
    (ACCESS_DENIED, lambda found: found.denied),
    (SENSITIVE_API_CALLS, lambda found: found.sensitive == "routine" and found.external_address),
)


def owner(event):
    """The RuleID of the family rule that alerts on the event, or None."""
    found = findings(event)
    if found is None:
        return None
    return next((rule_id for rule_id, holds in OWNERSHIP if holds(found)), None)


def place(event):
    """ "outside" when the caller's address is outside your network, else "inside"."""
    found = findings(event)
    return "outside" if found is not None and found.external_address else "inside"


def origin(event):
    """Where a call came from, as a title says it."""
    if place(event) == "inside":
        return "inside the network"
    address = described_address(source_address(event), source_ip_profile(event, TRUSTED_TABLES))
    return f"from external IP {address}"


def endpoint_owner(event):
    """The endpoint's account as a title shows it."""
    return (endpoint_account(record_of(event), event) or UNKNOWN)[:120]


def family_context(event):
    """What each rule of the family sees in the event: the owner's alert says what the others
    would have said."""
    found = findings(event)
    if found is None:
        return None
    matching = [rule_id for rule_id, holds in OWNERSHIP if holds(found)]
    first = matching[0] if matching else None
    return {
        "owner": first,
        "externalAddress": found.external_address,
        "foreignPrincipal": found.foreign_principal,
        "endpointPolicyDenied": found.denied,
        "sensitiveCall": found.sensitive,
        "alsoMatched": sorted(set(matching) - {first}),
    }


def outcome(event):
    """ "succeeded", or "refused" when the call was denied or failed: it moved no data."""
    return "succeeded" if error_kind(event) is None else "refused"


def family_alert_context(event, **rule_keys):
    """A family rule's alert context: the record's fields, the rule's own keys, what the family
    saw in the event, the enrichment of its address and the settings in effect."""
    context = network_activity_context(event)
    context.update(rule_keys)
    context["vpceFamily"] = family_context(event)
    context["sourceIPEnrichment"] = enrichment_context(source_ip_profile(event, TRUSTED_TABLES))
    context["overrides"] = SETTINGS_IN_EFFECT
    return context
