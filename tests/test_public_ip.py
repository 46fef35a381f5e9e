"""The address classifier: every registry row, every odd form, on every installed CPython."""

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import public_ip
import pytest
from address_cases import ALL_CASES, IPV4_CASES, IPV6_CASES
from repo import HELPERS_DIR

TESTS_DIR = Path(__file__).resolve().parent
SUPPORTED_PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]


def case_id(case):
    return f"{case[0]!r}-{case[2]}"


@pytest.mark.parametrize(("raw", "expected", "why"), ALL_CASES, ids=[case_id(c) for c in ALL_CASES])
def test_is_public_ip(raw, expected, why):
    assert public_ip.is_public_ip(raw) is expected, why


@pytest.mark.parametrize(
    "table",
    [public_ip.IPV4_SPECIAL_PURPOSE, public_ip.IPV6_SPECIAL_PURPOSE],
    ids=["ipv4", "ipv6"],
)
def test_every_registry_row_has_a_case_inside_it(table):
    addresses = [public_ip.ip_address(raw) for raw, _, _ in IPV4_CASES + IPV6_CASES]
    for block, _ in table:
        network = ipaddress.ip_network(block)
        assert any(a is not None and a in network for a in addresses), f"no case in {block}"


@pytest.mark.parametrize(
    "value",
    [None, 134744072, 8.8, True, ["8.8.8.8"], {"ip": "8.8.8.8"}, b"8.8.8.8"],
    ids=["none", "int", "float", "bool", "list", "dict", "bytes"],
)
def test_non_strings_are_never_public(value):
    assert public_ip.ip_address(value) is None
    assert public_ip.is_public_ip(value) is False


@pytest.mark.parametrize(
    ("raw", "carried"),
    [
        ("::ffff:8.8.8.8", "8.8.8.8"),
        ("64:ff9b::808:808", "8.8.8.8"),
        ("2002:808:404::1", "8.8.4.4"),
        ("2600:1f18::1", None),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", None),  # Teredo: deliberately not unwrapped
        ("8.8.8.8", None),
    ],
)
def test_embedded_ipv4(raw, carried):
    expected = ipaddress.ip_address(carried) if carried else None
    assert public_ip.embedded_ipv4(public_ip.ip_address(raw)) == expected


def test_zone_index_is_dropped():
    assert public_ip.ip_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")


# --- trusted networks and the memoised check ---------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "raw", "external"),
    [
        ([], "8.8.8.8", True),
        (["8.8.8.0/24"], "8.8.8.8", False),
        (["8.8.8.0/24"], "8.8.9.1", True),
        (["8.8.8.0/24"], "::ffff:8.8.8.8", False),  # judged by the IPv4 it carries
        (["8.8.8.0/24"], "2002:808:808::1", False),
        (["2600:1f18:4a3:6900::/56"], "2600:1f18:4a3:6902::10", False),
        (["2600:1f18:4a3:6900::/56"], "2600:1f18:4a3:6a00::10", True),
        (["2600:1f18:4a3:6900::/56"], "8.8.8.8", True),
        ([" 9.9.9.9/32 "], "9.9.9.9", False),
        (["10.0.0.0/8"], "10.1.2.3", False),  # private is never external anyway
        (["8.8.8.1/24"], "8.8.8.200", False),  # host bits are tolerated
    ],
)
def test_external_address_check(trusted, raw, external):
    assert public_ip.external_address_check(trusted)(raw) is external


@pytest.mark.parametrize(
    ("trusted", "named"),
    [
        (["8.8.8.0/33"], "'8.8.8.0/33'"),
        (["10.0.0.0/8", "corp-vpn"], "'corp-vpn'"),
        ([None], "None"),
        ([42], "42"),
        ("10.0.0.0/8", "must be a list"),
        (None, "must be a list"),
    ],
    ids=["bad-prefix", "name", "none-entry", "int-entry", "bare-string", "none"],
)
def test_malformed_trusted_networks_fail_loudly_naming_the_entry(trusted, named):
    with pytest.raises(ValueError, match="TRUSTED_NETWORKS") as error:
        public_ip.external_address_check(trusted, setting="TRUSTED_NETWORKS")
    assert named in str(error.value)


@pytest.mark.parametrize("value", [None, 1, ["8.8.8.8"], {"a": 1}])
def test_external_check_is_false_and_uncached_for_non_strings(value):
    is_external = public_ip.external_address_check([])
    assert is_external(value) is False
    assert is_external.cache_info().currsize == 0


def test_external_check_memoises_by_raw_string_within_a_bound():
    is_external = public_ip.external_address_check([])
    for _ in range(3):
        assert is_external("8.8.8.8") is True
    info = is_external.cache_info()
    assert (info.hits, info.misses) == (2, 1)
    for n in range(public_ip.ADDRESS_CACHE_SIZE + 100):
        is_external(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    assert is_external.cache_info().currsize == public_ip.ADDRESS_CACHE_SIZE


# --- the same answers on every CPython ---------------------------------------------------------

ANSWER_SCRIPT = """
import json, sys
sys.path[:0] = sys.argv[1:3]
import public_ip
from address_cases import ALL_CASES
print(json.dumps([public_ip.is_public_ip(raw) for raw, _, _ in ALL_CASES]))
"""


def installed_python(version):
    """An interpreter for version from pyenv or PATH, or None."""
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    for root in filter(None, roots):
        for candidate in sorted(Path(root, "versions").glob(f"{version}.*/bin/python{version}")):
            return str(candidate)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory, f"python{version}")
        if candidate.is_file() and "shims" not in directory:
            return str(candidate)
    if sys.version_info[:2] == tuple(int(p) for p in version.split(".")):
        return sys.executable
    return None


@pytest.mark.parametrize("version", SUPPORTED_PYTHONS)
def test_same_answers_on_every_installed_cpython(version):
    python = installed_python(version)
    if python is None:
        pytest.skip(f"CPython {version} is not installed")
    output = subprocess.run(
        [python, "-I", "-c", ANSWER_SCRIPT, str(HELPERS_DIR), str(TESTS_DIR)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    answers = json.loads(output)
    wrong = [
        (raw, why)
        for (raw, expected, why), answer in zip(ALL_CASES, answers, strict=True)
        if answer is not expected
    ]
    assert wrong == [], f"CPython {version} disagrees"
