"""What Panther's ingest-time enrichment says about an address: owner, place, anonymity, trust.

Panther puts lookup-table matches under ``p_enrichment.<table>.<selector>``: one object with the
table's columns plus ``p_match``, or a list of them. The tables are third-party data and optional,
so every reader here accepts any JSON shape (a list, a bare ``true``, a string where a boolean was
expected, a missing column) and answers None or False rather than guessing or raising.
"""

from collections.abc import Mapping, Sequence

from cloudtrail_fields import field

SELECTOR = "sourceIPAddress"

# Panther-managed lookup tables (IPinfo and the Tor exit node list).
ASN_TABLE = "ipinfo_asn"
LOCATION_TABLE = "ipinfo_location"
PRIVACY_TABLE = "ipinfo_privacy"
TOR_TABLE = "tor_exit_nodes"

# Amazon's own address space (EC2, S3 and other AWS services announce from these).
AMAZON_ASNS = frozenset({16509, 14618})
AMAZON_NAME = "Amazon AWS"
# IPinfo privacy flags that say the real client hides behind someone else's address.
ANONYMISING_FLAGS = ("tor", "vpn", "proxy", "relay")
PRIVACY_FLAGS = (*ANONYMISING_FLAGS, "hosting")
MAX_LABEL_CHARS = 48
_TRUE_TEXT = frozenset({"true", "yes", "1"})


def _is_sequence(value):
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def matches(event, table, selector=SELECTOR):
    """The table's match objects for the selector, as a list (empty when there is none)."""
    found = field(event, "p_enrichment", table, selector)
    if isinstance(found, Mapping):
        return [found]
    if _is_sequence(found):
        return [item for item in found if isinstance(item, Mapping)]
    return []


def is_matched(event, table, selector=SELECTOR):
    """Whether the table matched the selector at all, whatever shape the match has."""
    return _present(field(event, "p_enrichment", table, selector))


def _present(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (Mapping, str)):
        return bool(value)
    if _is_sequence(value):
        return any(_present(item) for item in value)
    return False


def _column(rows, name):
    """The first string that is not blank (or number, as text) in the column, or None."""
    for row in rows:
        value = row.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()[:MAX_LABEL_CHARS]
    return None


def _flag(rows, name):
    """True when any row sets the flag (a boolean, or its text form)."""
    for row in rows:
        value = row.get(name)
        if value is True or (isinstance(value, str) and value.strip().lower() in _TRUE_TEXT):
            return True
    return False


def asn_number(rows):
    """The AS number from ipinfo_asn's `asn` ("AS16509" or 16509), or None."""
    raw = _column(rows, "asn")
    if raw is None:
        return None
    digits = raw[2:] if raw[:2].upper() == "AS" else raw
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 10 else None


def _short_name(name):
    """An organisation's name without its legal suffix: "DigitalOcean, LLC" -> "DigitalOcean"."""
    return name.split(",", 1)[0].strip() or name if name else None


def source_ip_profile(event, trusted_tables=()):
    """Everything the enrichment says about sourceIPAddress, or None when it says nothing."""
    if not isinstance(field(event, "p_enrichment"), Mapping):
        return None  # no table matched anything in this event: the common case, said at once
    asn_rows = matches(event, ASN_TABLE)
    location_rows = matches(event, LOCATION_TABLE)
    privacy_rows = matches(event, PRIVACY_TABLE)
    tor = is_matched(event, TOR_TABLE)
    trusted = [name for name in trusted_tables if is_matched(event, name)]
    if not (asn_rows or location_rows or privacy_rows or tor or trusted):
        return None
    number = asn_number(asn_rows)
    privacy = {flag: _flag(privacy_rows, flag) for flag in PRIVACY_FLAGS}
    anonymising = [flag for flag in ANONYMISING_FLAGS if privacy[flag] or (flag == "tor" and tor)]
    return {
        "asn": f"AS{number}" if number is not None else None,
        "organisation": _column(asn_rows, "name"),
        "domain": _column(asn_rows, "domain"),
        "route": _column(asn_rows, "route"),
        "networkType": _column(asn_rows, "type"),
        "amazon": number in AMAZON_ASNS,
        "country": _column(location_rows, "country"),
        "region": _column(location_rows, "region"),
        "city": _column(location_rows, "city"),
        "privacy": privacy if privacy_rows else None,
        "privacyService": _column(privacy_rows, "service"),
        "torExitNode": tor,
        "anonymising": anonymising,
        "trustedLookupTables": trusted,
    }


def owner_label(profile):
    """A brief "who and where" for a title: "Tor exit node, AS14061 DigitalOcean, DE"."""
    if not profile:
        return None
    parts = []
    if profile["torExitNode"]:
        parts.append("Tor exit node")
    elif profile["anonymising"]:
        service = profile["privacyService"]
        kind = "/".join(flag.upper() for flag in profile["anonymising"])
        parts.append(f"{kind} {service}" if service else kind)
    if profile["amazon"]:
        parts.append(f"{profile['asn']} {AMAZON_NAME}")
    elif profile["asn"] or profile["organisation"]:
        owner = " ".join(filter(None, (profile["asn"], _short_name(profile["organisation"]))))
        parts.append(owner)
    if profile["country"]:
        parts.append(profile["country"])
    return ", ".join(parts) or None


def described_address(address, profile):
    """The address with its owner, as a title shows it: "198.51.100.7 (AS14061 DigitalOcean)"."""
    owner = owner_label(profile)
    return f"{address} ({owner})" if owner else address
