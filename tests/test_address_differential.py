"""Differential test of the address classifier against a second, deliberately plain one.

The reference below knows nothing of ``ipaddress`` classification or of ``public_ip``'s tables: it
holds its own copy of the IANA special-purpose blocks (as written in the project's public-ip
reference), turns each into an integer range, and answers by longest-prefix match on integers.
Thousands of seeded addresses, crowded at the edges of every block, are classified by
``public_ip.is_public_ip`` on every installed CPython 3.9-3.13 (each in its own subprocess) and
compared with the reference.
"""

import ipaddress
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from repo import HELPERS_DIR

SEED = 20261128
RANDOM_ADDRESSES_PER_FAMILY = 6000
SUPPORTED_PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]

# --- the reference: its own table, integers and prefix masks ----------------------------------

# (block, globally reachable); N/A entries are not reachable.
REFERENCE_IPV4_BLOCKS = """
0.0.0.0/8 no
10.0.0.0/8 no
100.64.0.0/10 no
127.0.0.0/8 no
169.254.0.0/16 no
172.16.0.0/12 no
192.0.0.0/24 no
192.0.0.9/32 yes
192.0.0.10/32 yes
192.0.2.0/24 no
192.31.196.0/24 yes
192.52.193.0/24 yes
192.88.99.0/24 no
192.168.0.0/16 no
192.175.48.0/24 yes
198.18.0.0/15 no
198.51.100.0/24 no
203.0.113.0/24 no
240.0.0.0/4 no
255.255.255.255/32 no
"""
REFERENCE_IPV6_BLOCKS = """
::1/128 no
::/128 no
64:ff9b:1::/48 no
100::/64 no
100:0:0:1::/64 no
2001::/23 no
2001:1::1/128 yes
2001:1::2/128 yes
2001:1::3/128 yes
2001:2::/48 no
2001:3::/32 yes
2001:4:112::/48 yes
2001:10::/28 no
2001:20::/28 yes
2001:30::/28 yes
2001:db8::/32 no
2620:4f:8000::/48 yes
3fff::/20 no
5f00::/16 no
fc00::/7 no
fe80::/10 no
"""
IPV4_BITS, IPV6_BITS = 32, 128
IPV4_MULTICAST = ("224.0.0.0/4", IPV4_BITS)
IPV6_GLOBAL_UNICAST = ("2000::/3", IPV6_BITS)
IPV4_MAPPED = ("::ffff:0:0/96", IPV6_BITS)
NAT64 = ("64:ff9b::/96", IPV6_BITS)
SIX_TO_FOUR = ("2002::/16", IPV6_BITS)


def v4_to_int(text):
    first, second, third, fourth = (int(part) for part in text.split("."))
    return first << 24 | second << 16 | third << 8 | fourth


def v6_to_int(text):
    """Parse the IPv6 notation the tables use: hex groups with at most one '::'."""
    head, _, tail = text.partition("::")
    head_groups = [int(g, 16) for g in head.split(":") if g]
    tail_groups = [int(g, 16) for g in tail.split(":") if g]
    groups = head_groups + [0] * (8 - len(head_groups) - len(tail_groups)) + tail_groups
    value = 0
    for group in groups:
        value = value << 16 | group
    return value


def block_range(block, bits):
    """(first, last) integers of a CIDR block."""
    prefix, length = block.split("/")
    start = v4_to_int(prefix) if bits == IPV4_BITS else v6_to_int(prefix)
    size = 1 << (bits - int(length))
    return start, start + size - 1, int(length)


def parse_reference(table, bits):
    rows = []
    for line in table.strip().splitlines():
        block, answer = line.split()
        first, last, length = block_range(block, bits)
        rows.append((first, last, length, answer == "yes"))
    return rows


REFERENCE_IPV4 = parse_reference(REFERENCE_IPV4_BLOCKS, IPV4_BITS)
REFERENCE_IPV6 = parse_reference(REFERENCE_IPV6_BLOCKS, IPV6_BITS)


def inside(value, block):
    first, last, _ = block_range(*block)
    return first <= value <= last


def reachable(value, rows):
    """The answer of the longest block holding value; True when no block does."""
    best_length, answer = -1, True
    for first, last, length, row_answer in rows:
        if first <= value <= last and length > best_length:
            best_length, answer = length, row_answer
    return answer


def reference_v4_public(value):
    return not inside(value, IPV4_MULTICAST) and reachable(value, REFERENCE_IPV4)


def reference_v6_public(value):
    if inside(value, IPV4_MAPPED) or inside(value, NAT64):
        return reference_v4_public(value & 0xFFFFFFFF)
    if inside(value, SIX_TO_FOUR):
        return reference_v4_public(value >> 80 & 0xFFFFFFFF)
    return inside(value, IPV6_GLOBAL_UNICAST) and reachable(value, REFERENCE_IPV6)


def reference_answer(sample):
    version, value = sample
    return reference_v4_public(value) if version == 4 else reference_v6_public(value)


# --- the seeded addresses -----------------------------------------------------------------------


def edges(first, last, bits, rng):
    """Both ends of a block, the addresses just outside it, and a few inside."""
    candidates = [first, last, first - 1, last + 1, first + 1, last - 1]
    candidates += [rng.randint(first, last) for _ in range(3)]
    return [value for value in candidates if 0 <= value < 1 << bits]


def seeded_samples():
    """(version, integer) pairs: random bits, every block's edges, and embedded IPv4 forms."""
    rng = random.Random(SEED)
    samples = [(4, rng.getrandbits(IPV4_BITS)) for _ in range(RANDOM_ADDRESSES_PER_FAMILY)]
    samples += [(6, rng.getrandbits(IPV6_BITS)) for _ in range(RANDOM_ADDRESSES_PER_FAMILY // 2)]
    # Random IPv6 bits almost never land in 2000::/3's special blocks: aim half of them there.
    samples += [
        (6, 0x2 << 124 | rng.getrandbits(125)) for _ in range(RANDOM_ADDRESSES_PER_FAMILY // 2)
    ]
    v4_blocks = [row[:2] for row in REFERENCE_IPV4] + [block_range(*IPV4_MULTICAST)[:2]]
    v6_blocks = [row[:2] for row in REFERENCE_IPV6] + [
        block_range(*block)[:2] for block in (IPV6_GLOBAL_UNICAST, IPV4_MAPPED, NAT64, SIX_TO_FOUR)
    ]
    v4_edges = [value for first, last in v4_blocks for value in edges(first, last, IPV4_BITS, rng)]
    samples += [(4, value) for value in v4_edges]
    samples += [
        (6, value) for first, last in v6_blocks for value in edges(first, last, IPV6_BITS, rng)
    ]
    # Every IPv4 edge again, carried in each IPv6 form that embeds an IPv4 address.
    for value in v4_edges:
        samples.append((6, 0xFFFF << 32 | value))
        samples.append((6, v6_to_int("64:ff9b::") | value))
        samples.append((6, 0x2002 << 112 | value << 80 | rng.getrandbits(80)))
    return samples


def written(sample, rng):
    """The text of a sample: dotted quad, or IPv6 in compressed, exploded or mixed notation."""
    version, value = sample
    if version == 4:
        return ".".join(str(value >> shift & 0xFF) for shift in (24, 16, 8, 0))
    groups = [f"{value >> shift & 0xFFFF:x}" for shift in range(112, -16, -16)]
    style = rng.randrange(3)
    if style == 0:
        return str(ipaddress.IPv6Address(value))  # formatting only; classification is ours
    if style == 1:
        return ":".join(group.zfill(4) for group in groups)
    low = written((4, value & 0xFFFFFFFF), rng)
    return ":".join(groups[:6]) + ":" + low


SAMPLES = seeded_samples()
ADDRESS_TEXTS = [written(sample, random.Random(SEED + n)) for n, sample in enumerate(SAMPLES)]
EXPECTED = [reference_answer(sample) for sample in SAMPLES]


# --- the reference checks itself on known answers ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "public"),
    [
        ("8.8.8.8", True),
        ("192.0.0.100", False),
        ("192.0.0.9", True),
        ("224.0.1.1", False),
        ("100.63.255.255", True),
        ("100.64.0.0", False),
        ("2001:3::1", True),
        ("2001:20::1", True),
        ("2001:1::4", False),
        ("3fff::1", False),
        ("5f00::1", False),
        ("ff0e::1", False),
        ("::ffff:8.8.8.8", True),
        ("::ffff:100.64.0.1", False),
        ("64:ff9b::808:808", True),
        ("64:ff9b:1::808:808", False),
        ("2002:808:808::1", True),
        ("2002:a00:1::1", False),
        ("2600:1f18::1", True),
    ],
)
def test_reference_agrees_with_the_documented_answers(text, public):
    if ":" in text:
        head, _, last = text.rpartition(":")
        value = v6_to_int(f"{head}:0:0") | v4_to_int(last) if "." in last else v6_to_int(text)
        sample = (6, value)
    else:
        sample = (4, v4_to_int(text))
    assert reference_answer(sample) is public


def test_samples_cover_both_answers_and_every_block():
    assert len(SAMPLES) > 10_000
    assert True in EXPECTED
    assert False in EXPECTED
    for rows, version in ((REFERENCE_IPV4, 4), (REFERENCE_IPV6, 6)):
        for first, last, _, _ in rows:
            assert any(v == version and first <= n <= last for v, n in SAMPLES), (first, last)


# --- the classifier under every installed CPython ---------------------------------------------

CLASSIFY_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import public_ip
print(json.dumps([public_ip.is_public_ip(text) for text in json.load(sys.stdin)]))
"""


def find_python(version):
    """The interpreter for CPython version: pyenv's, else pythonX.Y on PATH, else None."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for candidate in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python")):
        if candidate.is_file():
            return str(candidate)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory, f"python{version}")
        if directory and "shims" not in directory and candidate.is_file():
            return str(candidate)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    return None


@pytest.mark.parametrize(
    "version", SUPPORTED_PYTHONS, ids=[f"cpython{v}" for v in SUPPORTED_PYTHONS]
)
def test_classifier_matches_the_reference(version):
    python = find_python(version)
    if python is None:
        pytest.skip(f"CPython {version} is not installed")
    completed = subprocess.run(
        [python, "-I", "-c", CLASSIFY_SCRIPT, str(HELPERS_DIR)],
        input=json.dumps(ADDRESS_TEXTS),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    answers = json.loads(completed.stdout)
    assert len(answers) == len(ADDRESS_TEXTS)
    disagreements = [
        (text, answer, expected)
        for text, answer, expected in zip(ADDRESS_TEXTS, answers, EXPECTED, strict=True)
        if answer is not expected
    ]
    assert disagreements == [], f"{len(disagreements)} disagreements on CPython {version}"
