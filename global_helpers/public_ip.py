"""Is a source address public: globally reachable unicast, outside the caller's own networks.

The answer comes from the IANA special-purpose address registries, kept below as data, not from
``ipaddress``'s ``is_global`` / ``is_private``: those changed between CPython patch releases
(CVE-2024-4032 fix, IPv4-mapped handling in 3.10 and 3.13), and a detection must not flip with the
interpreter Panther happens to run.

Sources (checked 2024-2026):
- IPv4: https://www.iana.org/assignments/iana-ipv4-special-registry/
- IPv6: https://www.iana.org/assignments/iana-ipv6-special-registry/
"""

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable

# (block, globally reachable). "N/A" entries in the registry count as not reachable.
# A more specific entry wins over the block around it (e.g. 192.0.0.9/32 inside 192.0.0.0/24).
IPV4_SPECIAL_PURPOSE = (
    ("0.0.0.0/8", False),  # "this network"
    ("10.0.0.0/8", False),  # private use
    ("100.64.0.0/10", False),  # shared address space (CGNAT)
    ("127.0.0.0/8", False),  # loopback
    ("169.254.0.0/16", False),  # link local
    ("172.16.0.0/12", False),  # private use
    ("192.0.0.0/24", False),  # IETF protocol assignments
    ("192.0.0.9/32", True),  # port control protocol anycast
    ("192.0.0.10/32", True),  # traversal using relays around NAT anycast
    ("192.0.2.0/24", False),  # documentation (TEST-NET-1)
    ("192.31.196.0/24", True),  # AS112-v4
    ("192.52.193.0/24", True),  # AMT
    ("192.88.99.0/24", False),  # deprecated 6to4 relay anycast (N/A)
    ("192.168.0.0/16", False),  # private use
    ("192.175.48.0/24", True),  # direct delegation AS112 service
    ("198.18.0.0/15", False),  # benchmarking
    ("198.51.100.0/24", False),  # documentation (TEST-NET-2)
    ("203.0.113.0/24", False),  # documentation (TEST-NET-3)
    ("240.0.0.0/4", False),  # reserved
    ("255.255.255.255/32", False),  # limited broadcast
)

IPV6_SPECIAL_PURPOSE = (
    ("::1/128", False),  # loopback
    ("::/128", False),  # unspecified
    ("64:ff9b:1::/48", False),  # local-use IPv4/IPv6 translation
    ("100::/64", False),  # discard-only
    ("100:0:0:1::/64", False),  # dummy IPv6 prefix
    ("2001::/23", False),  # IETF protocol assignments
    ("2001::/32", False),  # Teredo (N/A)
    ("2001:1::1/128", True),  # port control protocol anycast
    ("2001:1::2/128", True),  # traversal using relays around NAT anycast
    ("2001:1::3/128", True),  # DNS-SD service registration protocol anycast
    ("2001:2::/48", False),  # benchmarking
    ("2001:3::/32", True),  # AMT
    ("2001:4:112::/48", True),  # AS112-v6
    ("2001:10::/28", False),  # deprecated ORCHID (N/A)
    ("2001:20::/28", True),  # ORCHIDv2
    ("2001:30::/28", True),  # drone remote ID protocol entity tags
    ("2001:db8::/32", False),  # documentation
    ("2620:4f:8000::/48", True),  # direct delegation AS112 service
    ("3fff::/20", False),  # documentation
    ("5f00::/16", False),  # segment routing (SRv6) SIDs
    ("fc00::/7", False),  # unique local
    ("fe80::/10", False),  # link-local unicast
)

IPV4_MULTICAST = ipaddress.ip_network("224.0.0.0/4")
IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")

ADDRESS_CACHE_SIZE = 8192

# Python accepted leading zeros in IPv4 octets before 3.9.5; reject them everywhere.
_IPV4_LEADING_ZERO = re.compile(r"(?:^|\.)0\d")


def _by_specificity(table):
    networks = [(ipaddress.ip_network(block), reachable) for block, reachable in table]
    return tuple(sorted(networks, key=lambda row: row[0].prefixlen, reverse=True))


_IPV4_TABLE = _by_specificity(IPV4_SPECIAL_PURPOSE)
_IPV6_TABLE = _by_specificity(IPV6_SPECIAL_PURPOSE)


def ip_address(value):
    """The address a raw sourceIPAddress denotes, or None when it is not a bare IP literal.

    Whitespace around it and an IPv6 zone index (``fe80::1%eth0``) are ignored.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "." in text and _IPV4_LEADING_ZERO.search(text.rsplit(":", 1)[-1]):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6:
        return ipaddress.IPv6Address(int(address))  # drops the zone index
    return address


def embedded_ipv4(address):
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), else None."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _registry_reachable(address, table):
    for network, reachable in table:
        if address in network:
            return reachable
    return True


def _is_public_address(address):
    carried = embedded_ipv4(address)
    if carried is not None:
        address = carried
    if address.version == 4:
        if address in IPV4_MULTICAST:
            return False
        return _registry_reachable(address, _IPV4_TABLE)
    if address not in IPV6_GLOBAL_UNICAST:
        return False
    return _registry_reachable(address, _IPV6_TABLE)


def is_public_ip(value):
    """True when value is a globally reachable unicast address (see module docstring)."""
    address = ip_address(value)
    return address is not None and _is_public_address(address)


def parse_networks(cidrs, setting):
    """Parse a list of CIDR strings, failing loudly with the offending entry named."""
    if isinstance(cidrs, (str, bytes)) or not isinstance(cidrs, Iterable):
        raise ValueError(f"{setting} must be a list of CIDR strings, got {cidrs!r}")
    networks = []
    for entry in cidrs:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except (AttributeError, TypeError, ValueError) as err:
            raise ValueError(f"{setting}: {entry!r} is not a valid CIDR ({err})") from None
    return tuple(networks)


def _in_networks(address, networks):
    # `in` is simply False across IP versions, so both forms can be tried against every network.
    candidates = (address, embedded_ipv4(address))
    return any(
        candidate in network
        for candidate in candidates
        if candidate is not None
        for network in networks
    )


def external_address_check(trusted_cidrs, setting="TRUSTED_NETWORKS") -> Callable[[object], bool]:
    """Build the memoised test "public, and not in one of trusted_cidrs" for raw source strings.

    The same handful of source addresses repeat millions of times a day, so the answer is cached
    per raw string in a bounded LRU; anything that is not a string is never external.
    """
    trusted = parse_networks(trusted_cidrs, setting)

    @functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
    def decide(raw):
        address = ip_address(raw)
        return (
            address is not None
            and _is_public_address(address)
            and not _in_networks(address, trusted)
        )

    def is_external(value):
        return isinstance(value, str) and decide(value)

    is_external.cache_info = decide.cache_info
    is_external.trusted_networks = trusted
    return is_external
