"""Reading Panther's p_enrichment for the source address: every shape, never a guess."""

import ip_enrichment as enrich
import pytest
from panther_core.enriched_event import PantherEvent

IP = "198.199.88.17"
DO_ASN = {"asn": "AS14061", "name": "DigitalOcean, LLC", "type": "hosting", "p_match": IP}
DE = {"country": "DE", "city": "Frankfurt am Main", "region": "Hesse", "p_match": IP}


def enriched(**tables):
    return {"p_enrichment": {name: {"sourceIPAddress": m} for name, m in tables.items()}}


@pytest.mark.parametrize("wrap", [dict, PantherEvent], ids=["dict", "PantherEvent"])
@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({}, []),
        ({"p_enrichment": None}, []),
        ({"p_enrichment": {"ipinfo_asn": True}}, []),
        (enriched(ipinfo_asn=DO_ASN), [DO_ASN]),
        (enriched(ipinfo_asn=[DO_ASN, "x", None]), [DO_ASN]),
        (enriched(ipinfo_asn="AS14061"), []),
        ({"p_enrichment": {"ipinfo_asn": {"userIdentity": DO_ASN}}}, []),
    ],
    ids=["none", "null", "table-is-true", "one", "list-with-junk", "string", "other-selector"],
)
def test_matches(wrap, event, expected):
    assert [dict(m) for m in enrich.matches(wrap(event), enrich.ASN_TABLE)] == expected


@pytest.mark.parametrize(
    ("match", "present"),
    [
        ({"ip": "185.220.101.4"}, True),
        ([{"ip": "185.220.101.4"}], True),
        (["185.220.101.4"], True),
        (True, True),
        ("185.220.101.4", True),
        (False, False),
        ([], False),
        ({}, False),
        ([None, 0], False),
        (None, False),
        (1, False),
    ],
)
def test_is_matched_accepts_every_shape_a_tor_list_takes(match, present):
    assert enrich.is_matched(enriched(tor_exit_nodes=match), enrich.TOR_TABLE) is present


@pytest.mark.parametrize(
    ("asn", "number"),
    [("AS16509", 16509), ("as14618", 14618), (14061, 14061), ("16509", 16509), ("ASX", None),
     (True, None), ("AS" + "9" * 11, None), ("AS\uff11\uff12", None), (None, None),
     # The largest 32-bit AS number has ten digits; only "AS" is a prefix.
     ("AS4294967295", 4294967295), ("ZZ123", None), ("BT123", None)],
)  # fmt: skip
def test_asn_number(asn, number):
    assert enrich.asn_number([{"asn": asn}]) == number


def test_no_enrichment_is_no_profile():
    assert enrich.source_ip_profile({}) is None
    assert enrich.source_ip_profile(enriched(ipinfo_asn=[])) is None
    assert enrich.owner_label(None) is None


def test_a_full_profile():
    profile = enrich.source_ip_profile(
        enriched(
            ipinfo_asn=DO_ASN,
            ipinfo_location=DE,
            ipinfo_privacy={"vpn": True, "hosting": "true", "tor": "no", "service": "NordVPN"},
            corp_egress={"cidr": "198.199.88.0/24"},
        ),
        trusted_tables=["corp_egress", "partner_ranges"],
    )
    assert profile == {
        "asn": "AS14061",
        "organisation": "DigitalOcean, LLC",
        "domain": None,
        "route": None,
        "networkType": "hosting",
        "amazon": False,
        "country": "DE",
        "region": "Hesse",
        "city": "Frankfurt am Main",
        "privacy": {"tor": False, "vpn": True, "proxy": False, "relay": False, "hosting": True},
        "privacyService": "NordVPN",
        "torExitNode": False,
        "anonymising": ["vpn"],
        "trustedLookupTables": ["corp_egress"],
    }
    assert enrich.owner_label(profile) == "VPN NordVPN, AS14061 DigitalOcean, DE"


@pytest.mark.parametrize(
    ("tables", "label"),
    [
        ({"ipinfo_asn": DO_ASN, "ipinfo_location": DE}, "AS14061 DigitalOcean, DE"),
        ({"ipinfo_asn": {"asn": "AS16509", "name": "Amazon.com, Inc."}}, "AS16509 Amazon AWS"),
        ({"ipinfo_asn": {"asn": 14618, "name": "Amazon.com, Inc."}}, "AS14618 Amazon AWS"),
        ({"ipinfo_asn": {"name": "Example ISP"}}, "Example ISP"),
        ({"ipinfo_location": DE}, "DE"),
        ({"tor_exit_nodes": True, "ipinfo_privacy": {"tor": True}}, "Tor exit node"),
        ({"ipinfo_privacy": {"proxy": True, "relay": True}}, "PROXY/RELAY"),
        ({"ipinfo_privacy": {"hosting": True}}, None),
        ({"corp_egress": {"cidr": "198.199.88.0/24"}}, None),
    ],
    ids=["owner", "amazon", "amazon-int", "name-only", "country", "tor", "proxy", "hosting",
         "trusted-only"],
)  # fmt: skip
def test_owner_label(tables, label):
    profile = enrich.source_ip_profile(enriched(**tables), trusted_tables=["corp_egress"])
    assert enrich.owner_label(profile) == label


def test_labels_stay_short():
    long_name = {"asn": "AS1", "name": "N" * 5000, "p_match": IP}
    label = enrich.owner_label(enrich.source_ip_profile(enriched(ipinfo_asn=long_name)))
    assert len(label) <= 2 * enrich.MAX_LABEL_CHARS


@pytest.mark.parametrize(
    ("tables", "anonymising"),
    [
        ({"tor_exit_nodes": True}, ["tor"]),
        ({"tor_exit_nodes": ["185.220.101.4"], "ipinfo_privacy": {"vpn": True}}, ["tor", "vpn"]),
        ({"ipinfo_privacy": {"tor": True}}, ["tor"]),
        ({"ipinfo_privacy": {"relay": "yes", "proxy": "1"}}, ["proxy", "relay"]),
        ({"ipinfo_privacy": {"hosting": True}}, []),
    ],
    ids=["tor-list-only", "tor-list-and-vpn", "privacy-tor", "text-flags", "hosting-is-not"],
)
def test_anonymising_flags_in_their_table_order(tables, anonymising):
    assert enrich.source_ip_profile(enriched(**tables))["anonymising"] == anonymising


@pytest.mark.parametrize(
    ("rows", "value"),
    [
        ([{"name": True}, {"name": "Acme"}], "Acme"),  # a boolean is skipped, not the end
        ([{"name": "  "}, {"name": "Acme"}], "Acme"),  # so is a blank string
        ([{"name": 7}], "7"),
        ([{"name": "N" * 60}], "N" * 48),
    ],
    ids=["boolean-then-text", "blank-then-text", "number", "cut-to-48"],
)
def test_column_takes_the_first_usable_value(rows, value):
    assert enrich.MAX_LABEL_CHARS == 48
    assert enrich._column(rows, "name") == value
