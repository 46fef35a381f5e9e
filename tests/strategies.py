"""Hypothesis strategies for CloudTrail-shaped events: real keys, realistic and hostile values.

An event is drawn with the keys a CloudTrail network activity record has, each holding either a
realistic value or junk of another type (None, huge numbers, NaN, lists, nested mappings, huge or
exotic strings). Most events are steered towards the deep end of the rule (``AwsVpceEvent`` from
S3 with a monitored operation and a public address) so that ``title``, ``dedup``, ``severity``
and ``alert_context`` see the same hostile values that ``rule`` does.
"""

import ipaddress

import vpce_family
from hypothesis import strategies as st

# --- scalars ----------------------------------------------------------------------------------

# Any character except surrogates (which cannot come out of a JSON decoder as str): includes
# control characters, combining marks, right-to-left marks and astral-plane characters.
ANY_CHAR = st.characters(exclude_categories=("Cs",))
ODD_CHARS = st.sampled_from(
    ["\x00", "\x1b", "\n", "\r", "\t", "\u200b", "\u202e", "\ufeff", "\U0001f600", "\U00010348"]
)
HUGE_STRING_LENGTHS = st.sampled_from([1001, 5000, 70_000, 300_000])

huge_strings = st.builds(lambda char, n: char * n, ANY_CHAR | ODD_CHARS, HUGE_STRING_LENGTHS)
short_text = st.text(ANY_CHAR | ODD_CHARS, max_size=40)
# Integers JSON can carry on CPython 3.11+ (at most 4,300 digits), beyond 64 and 128 bits.
huge_ints = st.sampled_from([2**63, -(2**64), 2**128, 10**400, 10**4299, -(2**14000)])
floats = st.floats(allow_nan=True, allow_infinity=True)

junk_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_ints,
    floats,
    short_text,
    huge_strings,
)

# JSON-shaped junk: nested lists and string-keyed mappings of junk scalars.
nested_junk = st.recursive(
    junk_scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(short_text, children, max_size=6)
    ),
    max_leaves=12,
)


def one_in(n, rare, common):
    """rare about once in n draws, else common (``one_of`` alone would split them evenly)."""
    return st.sampled_from(range(n)).flatmap(lambda pick: rare if pick == 0 else common)


def or_junk(realistic, junk=nested_junk):
    """Mostly realistic (three chances in four), otherwise a value of any shape."""
    return one_in(4, junk, realistic)


# --- source addresses -------------------------------------------------------------------------

# Addresses at the edges of the special-purpose blocks and in every odd written form.
ADDRESS_FORMS = [
    "8.8.8.8",
    "45.33.32.156",
    "10.0.141.54",
    "172.31.255.255",
    "172.32.0.0",
    "192.168.1.1",
    "100.64.0.1",
    "100.127.255.255",
    "100.128.0.0",
    "127.0.0.1",
    "169.254.169.254",
    "192.0.0.9",
    "192.0.0.100",
    "192.0.2.0",
    "192.88.99.1",
    "198.18.0.1",
    "198.20.0.0",
    "224.0.1.1",
    "239.255.255.255",
    "240.0.0.1",
    "255.255.255.255",
    "0.0.0.0",
    "2600:1f18:4a3:6902::10",
    "2001:4860:4860::8888",
    "2001:db8::1",
    "2001:3::1",
    "2001:20::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "3fff::1",
    "5f00::1",
    "fd00::1",
    "fe80::1",
    "fe80::1%eth0",
    "fe80::1%",
    "ff0e::1",
    "::1",
    "::",
    "::ffff:8.8.8.8",
    "::ffff:10.0.0.1",
    "::ffff:100.64.0.1",
    "::ffff:0808:0808",
    "64:ff9b::808:808",
    "64:ff9b::a00:1",
    "64:ff9b:1::808:808",
    "2002:808:808::1",
    "2002:a00:1::1",
    "08.8.8.8",
    "8.8.8.08",
    "010.0.0.1",
    "::ffff:08.8.8.8",
    " 8.8.8.8 ",
    "\t8.8.8.8\n",
    "8.8.8.8:443",
    "[2001:4860:4860::8888]",
    "[2001:4860:4860::8888]:443",
    "8.8.8.8/32",
    "8.8.8",
    "8.8.8.8.8",
    "256.1.1.1",
    "134744072",
    "0x08080808",
    "\uff18.\uff18.\uff18.\uff18",  # full-width digits
    "s3.amazonaws.com",
    "ec2.amazonaws.com",
    "AWS Internal",
    "",
    " ",
]

ipv4_literals = st.ip_addresses(v=4).map(str)
ipv6_literals = st.ip_addresses(v=6).map(str)


def _mapped(v4):
    return f"::ffff:{v4}"


def _nat64(v4):
    return str(ipaddress.IPv6Address((0x64FF9B << 96) | int(ipaddress.IPv4Address(v4))))


def _six_to_four(v4):
    return str(ipaddress.IPv6Address((0x2002 << 112) | (int(ipaddress.IPv4Address(v4)) << 80)))


def _leading_zero(v4):
    first, rest = v4.split(".", 1)
    return f"0{first}.{rest}"


DECORATIONS = [
    lambda a: a,
    lambda a: f" {a}\t",
    lambda a: f"{a}:8080",
    lambda a: f"[{a}]",
    lambda a: f"{a}%eth0",
    lambda a: a.upper(),
]

embedded_forms = st.builds(
    lambda v4, wrap: wrap(v4),
    ipv4_literals,
    st.sampled_from([_mapped, _nat64, _six_to_four, _leading_zero]),
)
address_strings = st.one_of(
    st.sampled_from(ADDRESS_FORMS),
    ipv4_literals,
    ipv6_literals,
    embedded_forms,
    st.builds(
        lambda a, decorate: decorate(a), ipv4_literals | ipv6_literals, st.sampled_from(DECORATIONS)
    ),
    short_text,
)
source_addresses = or_junk(address_strings)
# What a matching event needs: a public address, possibly written oddly.
public_addresses = st.sampled_from(
    [
        "8.8.8.8",
        "45.33.32.156",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
        "64:ff9b::808:808",
        "2600:1f18:4a3:6902::10",
        " 185.199.108.153 ",
        "192.0.0.9",
        "2001:3::1",
    ]
)

# --- identities -------------------------------------------------------------------------------

account_ids = or_junk(st.from_regex(r"\A[0-9]{12}\Z") | st.sampled_from(["123456789012"]))
names = or_junk(st.from_regex(r"\A[A-Za-z0-9+=,.@_-]{1,64}\Z") | short_text)
principal_ids = or_junk(
    st.sampled_from(
        ["AKIAI44QH8DHBEXAMPLE", "AROAIOSFODNN7EXAMPLE:etl-nightly", "AIDAEXAMPLE", "anonymous"]
    )
    | short_text
)
arns = or_junk(
    st.sampled_from(
        [
            "arn:aws:sts::123456789012:assumed-role/DataPipeline/etl-nightly",
            "arn:aws:iam::123456789012:role/DataPipeline",
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:assumed-role/",
            "arn:aws:iam::123456789012:user/",
            "arn:",
            "arn:aws",
            "not-an-arn",
        ]
    )
    | st.builds(lambda s: f"arn:aws:iam::123456789012:{s}", short_text)
)
IDENTITY_TYPES = [
    "AssumedRole",
    "Role",
    "IAMUser",
    "FederatedUser",
    "IdentityCenterUser",
    "AWSService",
    "AWSAccount",
    "Root",
    "Unknown",
    "WebIdentityUser",
    "SAMLUser",
]
identity_types = or_junk(st.sampled_from(IDENTITY_TYPES))

session_issuers = st.fixed_dictionaries(
    {},
    optional={
        "type": or_junk(st.just("Role")),
        "principalId": principal_ids,
        "arn": arns,
        "accountId": account_ids,
        "userName": names,
    },
)
session_contexts = st.fixed_dictionaries(
    {},
    optional={
        "sessionIssuer": or_junk(session_issuers),
        "attributes": or_junk(
            st.fixed_dictionaries(
                {
                    "creationDate": or_junk(st.just("2026-11-20T08:02:11Z")),
                    "mfaAuthenticated": or_junk(st.sampled_from(["false", "true"])),
                }
            )
        ),
    },
)

# The redacted form CloudTrail writes for a caller from another account.
redacted_identities = st.fixed_dictionaries(
    {"type": st.just("AWSAccount"), "principalId": principal_ids, "accountId": account_ids}
)
full_identities = st.fixed_dictionaries(
    {"type": identity_types},
    optional={
        "principalId": principal_ids,
        "arn": arns,
        "accountId": account_ids,
        "accessKeyId": or_junk(st.just("ASIAIOSFODNN7EXAMPLE")),
        "userName": names,
        "invokedBy": or_junk(st.sampled_from(["s3.amazonaws.com", "AWS Internal"])),
        "sessionContext": or_junk(session_contexts),
        "onBehalfOf": or_junk(st.fixed_dictionaries({}, optional={"userId": names})),
    },
)
user_identities = st.one_of(redacted_identities, full_identities, nested_junk)

# --- the rest of the record -------------------------------------------------------------------

# The rule's own operations (the fuzz must reach its deep end whatever a user sets there).
MONITORED = vpce_family.S3_DATA_ACCESS_OPERATIONS
event_names = or_junk(st.sampled_from([*MONITORED, "ListObjects", "ListKeys", "getobject"]))
bucket_names = or_junk(st.from_regex(r"\A[a-z0-9.-]{3,63}\Z") | short_text)
s3_arns = st.one_of(
    st.builds(
        lambda b, k: f"arn:aws:s3:::{b}/{k}", st.from_regex(r"\A[a-z0-9.-]{1,63}\Z"), short_text
    ),
    st.sampled_from(["arn:aws:s3:::", "arn:aws:s3:::/key", "arn:aws-cn:s3:::cn-bucket/x"]),
    short_text,
)
# Secrets as calls name them: full ARNs (with the six characters Secrets Manager adds), partial
# ones, names, and the malformed.
secret_ids = st.one_of(
    st.builds(
        lambda name, suffix: f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}{suffix}",
        short_text,
        st.sampled_from(["", "-Xy7Qp2", "-", "-toolong1"]),
    ),
    st.sampled_from(
        ["arn:aws:secretsmanager:::secret:", "arn:aws:secretsmanager:::secret:-abcdef"]
    ),
    short_text,
)
resource_entries = or_junk(
    st.fixed_dictionaries(
        {},
        optional={
            "type": or_junk(st.sampled_from(["AWS::S3::Object", "AWS::S3::Bucket"])),
            "ARN": or_junk(s3_arns | secret_ids),
            "arn": or_junk(s3_arns),
            "accountId": account_ids,
        },
    )
)
resource_lists = or_junk(st.lists(resource_entries, max_size=4))
request_parameters = or_junk(
    st.fixed_dictionaries(
        {},
        optional={
            "bucketName": bucket_names,
            "key": or_junk(short_text),
            "Host": or_junk(short_text),
            "secretId": or_junk(secret_ids),
        },
    )
)
error_codes = or_junk(
    st.sampled_from(["VpceAccessDenied", "AccessDenied", "NoSuchKey", "SlowDown", ""])
)

# p_enrichment as Panther writes it (a match object or a list of them per table and selector),
# and the shapes third-party data and other tests use: bare booleans, address lists, wrong types.
flags = or_junk(st.booleans() | st.sampled_from(["true", "false", "True", "1"]))
asn_matches = st.fixed_dictionaries(
    {},
    optional={
        "asn": or_junk(st.sampled_from(["AS16509", "AS14618", "AS14061", "as9009", "16509"])),
        "name": or_junk(st.sampled_from(["Amazon.com, Inc.", "DigitalOcean, LLC", ""])),
        "domain": or_junk(st.just("digitalocean.com")),
        "route": or_junk(st.just("198.199.64.0/18")),
        "type": or_junk(st.sampled_from(["hosting", "isp", "business"])),
        "p_match": or_junk(st.just("198.199.88.17")),
    },
)
location_matches = st.fixed_dictionaries(
    {},
    optional={
        "country": or_junk(st.sampled_from(["DE", "US", "NL", ""])),
        "city": or_junk(st.sampled_from(["Frankfurt am Main", "Boardman"])),
        "region": or_junk(short_text),
        "lat": or_junk(st.just("50.11552")),
    },
)
privacy_matches = st.fixed_dictionaries(
    {},
    optional={
        "tor": flags,
        "vpn": flags,
        "proxy": flags,
        "relay": flags,
        "hosting": flags,
        "service": or_junk(st.sampled_from(["NordVPN", "Apple Private Relay", ""])),
    },
)
tor_matches = st.one_of(
    st.fixed_dictionaries({"ip": st.just("185.220.101.4"), "p_match": st.just("185.220.101.4")}),
    st.booleans(),
    st.lists(st.just("185.220.101.4"), max_size=2),
    nested_junk,
)


def _matched(match):
    """A table's entry for sourceIPAddress: one match, a list of them, or junk instead."""
    return st.fixed_dictionaries(
        {"sourceIPAddress": one_in(4, nested_junk, match | st.lists(match, max_size=3))}
    )


enrichments = or_junk(
    st.fixed_dictionaries(
        {},
        optional={
            "ipinfo_asn": _matched(asn_matches),
            "ipinfo_location": _matched(location_matches),
            "ipinfo_privacy": _matched(privacy_matches),
            "tor_exit_nodes": _matched(tor_matches),
            "trusted_egress_ranges": _matched(st.just({"cidr": "198.199.88.0/24"})),
        },
    )
)

OPTIONAL_KEYS = {
    "userIdentity": user_identities,
    "requestParameters": request_parameters,
    "resources": resource_lists,
    "errorCode": error_codes,
    "errorMessage": or_junk(st.just("The request was denied due to a VPC endpoint policy")),
    "vpcEndpointId": or_junk(st.just("vpce-0a1b2c3d4e5f6a7b8")),
    "vpcEndpointAccountId": account_ids,
    "recipientAccountId": account_ids,
    "awsRegion": or_junk(st.sampled_from(["us-east-1", "eu-west-1"])),
    "userAgent": or_junk(st.sampled_from(["aws-cli/2.15.30", "[S3Console/0.4]"]) | short_text),
    "eventTime": or_junk(st.just("2026-11-20T09:14:03Z")),
    "eventVersion": or_junk(st.sampled_from(["1.09", "1.10"])),
    "sharedEventID": or_junk(st.just("c2d41f7e-5a6b-4c3d-8e9f-EXAMPLE22222")),
    "p_log_type": st.just("AWS.CloudTrail"),
    "p_enrichment": enrichments,
    "p_event_time": or_junk(st.sampled_from(["2026-11-20 09:14:03.000000000", "2026-11-20"])),
}

# Header fields as a matching record has them, each now and then swapped for something else.
free_values = nested_junk | short_text
deep_headers = st.fixed_dictionaries(
    {
        "eventType": one_in(8, free_values, st.just("AwsVpceEvent")),
        "eventCategory": one_in(8, free_values, st.just("NetworkActivity")),
        "eventSource": one_in(8, free_values, st.just("s3.amazonaws.com")),
        "eventName": one_in(6, event_names, st.sampled_from(MONITORED)),
        "sourceIPAddress": one_in(4, source_addresses, public_addresses),
    }
)
# Header fields of the rest of the VPC endpoint family: every service and operation its tables
# name, and a few they do not.
FAMILY_SERVICES = sorted({*vpce_family.CHANGES, *vpce_family.ROUTINE, "sts.amazonaws.com"})
ENDPOINT_OWNER = "123456789012"
# (service, operation) pairs by the kind the family's tables give them.
CALLS_BY_KIND = {
    "change": sorted(
        (service, name) for service, names in vpce_family.CHANGES.items() for name in names
    ),
    "routine": sorted(
        (service, name) for service, names in vpce_family.ROUTINE.items() for name in names
    ),
    "other": [
        ("kms.amazonaws.com", "ListKeys"),
        ("sts.amazonaws.com", "GetCallerIdentity"),
        ("s3.amazonaws.com", "ListObjects"),
        ("s3.amazonaws.com", "GetObject"),
        ("secretsmanager.amazonaws.com", "BatchGetSecretValue"),
    ],
}
family_calls = st.sampled_from(sorted(CALLS_BY_KIND)).flatmap(
    lambda kind: st.sampled_from(CALLS_BY_KIND[kind])
)
# Callers of the endpoint's own account, of another, and of any shape.
family_callers = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("AssumedRole"), "accountId": st.just(ENDPOINT_OWNER)},
        optional={"principalId": principal_ids, "arn": arns},
    ),
    st.fixed_dictionaries(
        {"type": st.just("AWSAccount"), "principalId": principal_ids, "accountId": account_ids}
    ),
    user_identities,
)


def _family_record(call, fields):
    service, name = call
    return {"eventSource": service, "eventName": name, **fields}


family_headers = st.builds(
    _family_record,
    family_calls,
    st.fixed_dictionaries(
        {
            "eventType": one_in(8, free_values, st.just("AwsVpceEvent")),
            "eventCategory": one_in(8, free_values, st.just("NetworkActivity")),
            "sourceIPAddress": st.one_of(source_addresses, public_addresses),
            "userIdentity": family_callers,
            "vpcEndpointAccountId": one_in(8, account_ids, st.just(ENDPOINT_OWNER)),
            "errorCode": st.sampled_from([None, "VpceAccessDenied", "AccessDenied"]),
        }
    ),
)
# Header fields drawn freely: any value, any address form.
free_headers = st.fixed_dictionaries(
    {},
    optional={
        "eventType": or_junk(st.sampled_from(["AwsVpceEvent", "AwsVpceEvents", "AwsApiCall"])),
        "eventCategory": or_junk(st.sampled_from(["NetworkActivity", "Data", "Management"])),
        "eventSource": or_junk(st.sampled_from(["s3.amazonaws.com", "kms.amazonaws.com"])),
        "eventName": event_names,
        "sourceIPAddress": source_addresses,
    },
)
# Keys a parser might add, in other cases (PantherEvent looks keys up case-insensitively).
extra_fields = st.dictionaries(
    st.sampled_from(["EVENTTYPE", "SourceIpAddress", "eventtype", "p_any_ip_addresses", "x"])
    | short_text,
    nested_junk,
    max_size=3,
)


def _merge(headers, rest, extra):
    event = dict(extra)
    event.update(rest)
    event.update(headers)
    return event


# Network activity of the rest of the VPC endpoint family: every kind of call, caller, address
# and outcome its rules tell apart.
family_events = st.builds(
    _merge, family_headers, st.fixed_dictionaries({}, optional=OPTIONAL_KEYS), extra_fields
)
# S3 network activity, and anything else: what the S3 rules tell apart.
s3_events = st.builds(
    _merge,
    one_in(4, free_headers, deep_headers),
    st.fixed_dictionaries({}, optional=OPTIONAL_KEYS),
    extra_fields,
)
cloudtrail_events = st.one_of(s3_events, family_events)
"""CloudTrail-shaped events: three in four steered to reach the rules' title, dedup, severity and
context (of the S3 rules, or of the rest of the family)."""

# The same without the extra keys, for comparing a plain dict with a PantherEvent.
canonical_events = st.one_of(
    st.builds(
        _merge,
        one_in(4, free_headers, deep_headers),
        st.fixed_dictionaries({}, optional=OPTIONAL_KEYS),
        st.just({}),
    ),
    st.builds(
        _merge, family_headers, st.fixed_dictionaries({}, optional=OPTIONAL_KEYS), st.just({})
    ),
)
# Every field name the rule and helpers read, as CloudTrail spells it.
FIELD_NAMES = frozenset(
    [
        *OPTIONAL_KEYS,
        "eventType",
        "eventCategory",
        "eventSource",
        "eventName",
        "sourceIPAddress",
        "type",
        "principalId",
        "arn",
        "accountId",
        "userName",
        "invokedBy",
        "sessionContext",
        "sessionIssuer",
        "onBehalfOf",
        "userId",
        "bucketName",
        "ARN",
        "ipinfo_asn",
        "ipinfo_location",
        "ipinfo_privacy",
        "tor_exit_nodes",
        "trusted_egress_ranges",
        "asn",
        "name",
        "domain",
        "route",
        "country",
        "city",
        "region",
        "lat",
        "tor",
        "vpn",
        "proxy",
        "relay",
        "hosting",
        "service",
        "ip",
        "p_match",
        "cidr",
    ]
)

# Anything at all where an event is expected, for helpers that take a mapping.
any_events = one_in(3, nested_junk, cloudtrail_events)
