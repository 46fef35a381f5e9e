"""s3:// inputs against moto's S3 server on 127.0.0.1: same reports as local files, pruned
listings, streamed reads, and every failure named by its URL.

Nothing here may reach AWS: the fixtures point boto3 at the local server with fake credentials,
switch off the instance metadata endpoint and config files, and a guard fails any test that
resolves or connects to anything but a loopback address.
"""

import copy
import gzip
import ipaddress
import json
import logging
import os
import pickle
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import boto3
import pytest
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.server import ThreadedMotoServer
from repo import REPO_ROOT
from test_replay_support import (
    SAMPLE_ALERTS,
    SAMPLE_INPUTS,
    SAMPLE_RECORDS,
    alerts,
    external_get,
    mixed_records,
    private_get,
    rule_report,
    run_cli,
)

from detection_replay import cli, s3_inputs
from detection_replay.engine import Replay
from detection_replay.inputs import CHUNK_BYTES, UnreadableInput, discover
from detection_replay.rules import load_rules
from detection_replay.s3_inputs import S3Reader, S3Source, covering_folders

SAMPLES = REPO_ROOT / "samples" / "cloudtrail"
SAMPLE_BUCKET = "org-trail"
REGION = "us-east-1"
# Environment variables that could send boto3 elsewhere or hand it other credentials.
FOREIGN_AWS_SETTINGS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


# --- the local S3 server and an AWS-free environment -------------------------------------


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """moto's S3 server on a free loopback port, and boto3 pointed at it with fake credentials."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    nowhere = tmp_path_factory.mktemp("aws") / "absent"
    with pytest.MonkeyPatch.context() as patch:
        for name in FOREIGN_AWS_SETTINGS:
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "AKIAREPLAYTESTS00000")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "replay-tests-secret")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_REGION", REGION)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("AWS_CONFIG_FILE", str(nowhere))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
        # Every service (S3, and IAM for the access-denied test) goes to the local server.
        patch.setenv("AWS_ENDPOINT_URL", url)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield url
    server.stop()


@pytest.fixture(autouse=True)
def one_process(monkeypatch):
    """The server's thread runs in this process, so in-process replays here default to one
    process (forking would be refused anyway, with a note on stderr). Workers reading S3 are
    tested from a child process below."""
    monkeypatch.setattr(cli, "default_jobs", lambda: 1)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail the test on any name lookup or connection that is not to a loopback address."""
    attempts = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def is_loopback(host):
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host in LOOPBACK_NAMES

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            attempts.append(address)
            raise ConnectionRefusedError(f"test guard: no connection to {address}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not is_loopback(str(host)):
            attempts.append(host)
            raise socket.gaierror(f"test guard: no lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    assert attempts == [], "something tried to leave the machine"


@pytest.fixture(scope="module")
def s3(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def new_bucket(s3, name, objects=()):
    """A bucket holding {key: bytes}."""
    s3.create_bucket(Bucket=name)
    for key, body in dict(objects).items():
        s3.put_object(Bucket=name, Key=key, Body=body)
    return name


@pytest.fixture(scope="module")
def sample_bucket(s3):
    """The sample dataset uploaded under its real CloudTrail key layout (AWSLogs/...)."""
    files = sorted(path for path in SAMPLES.rglob("*") if path.is_file())
    assert len(files) == 334
    new_bucket(s3, SAMPLE_BUCKET)
    for path in files:
        s3.upload_file(str(path), SAMPLE_BUCKET, path.relative_to(SAMPLES).as_posix())
    return SAMPLE_BUCKET


@pytest.fixture(scope="module")
def rule_set():
    with load_rules(REPO_ROOT) as loaded:
        yield loaded


def delivery_object(records):
    """A CloudTrail delivery file: one gzip-compressed {"Records": [...]} object."""
    return gzip.compress(json.dumps({"Records": records}).encode())


def files_of(account):
    return sum(1 for path in (SAMPLES / "AWSLogs" / account).rglob("*") if path.is_file())


def replay_json(capsys, *argv):
    status, out, err = run_cli(capsys, *argv, "--format", "json", "--no-progress")
    return status, json.loads(out), err


def comparable(document):
    """A report without timing, and with each input named from AWSLogs/ on (path or URL)."""
    document = copy.deepcopy(document)
    for timing in ("seconds", "events_per_second"):
        del document[timing]
    for rule in document["rules"]:
        for alert in rule["alerts"]:
            where = alert["first_event_at"]
            alert["first_event_at"] = where[where.index("AWSLogs/") :]
    return document


# --- S3 and local inputs give the same report ---------------------------------------------


@pytest.mark.parametrize(
    "s3_inputs",
    [
        pytest.param(["s3://{bucket}"], id="bucket root"),
        pytest.param(
            ["s3://{bucket}/AWSLogs", "--since", "2026-11-20", "--until", "2026-11-20"],
            id="pruned to the sample day",
        ),
        pytest.param(
            ["s3://{bucket}/AWSLogs/123456789012/", "{samples}/AWSLogs/444455556666"],
            id="one account from S3, the other from disk",
        ),
    ],
)
def test_s3_and_the_local_directory_give_identical_reports(capsys, sample_bucket, s3_inputs):
    local_status, local, _ = replay_json(capsys, SAMPLES)
    argv = [arg.format(bucket=sample_bucket, samples=SAMPLES) for arg in s3_inputs]
    s3_status, remote, err = replay_json(capsys, *argv)
    assert (local["records_read"], local["alert_count"], local["inputs_read"]) == (
        SAMPLE_RECORDS,
        SAMPLE_ALERTS,
        SAMPLE_INPUTS,
    )
    assert s3_status == local_status == cli.EXIT_OK
    assert comparable(remote) == comparable(local)
    assert err == ""
    if argv[0].endswith("/"):  # the inputs really came from S3
        first = rule_report(remote)["alerts"][0]["first_event_at"]
        assert first.startswith(f"s3://{sample_bucket}/AWSLogs/123456789012/CloudTrail/")


def test_workers_read_s3_as_one_process_does_while_the_listing_goes_on(capsys, sample_bucket):
    """The command (one thread) lists the first objects, forks workers, and lists the rest
    while they read: each task carries its objects, and their reader by its settings."""
    _, local, _ = replay_json(capsys, SAMPLES)
    command = [sys.executable, "-m", "detection_replay", "--path", REPO_ROOT, "--jobs", "3"]
    completed = subprocess.run(
        [*command, "--format", "json", "--no-progress", f"s3://{sample_bucket}"],
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == cli.EXIT_OK, completed.stderr
    assert completed.stderr == b""  # in particular, no "pass 1 runs in one process"
    assert comparable(json.loads(completed.stdout)) == comparable(local)


def test_each_process_gets_a_client_of_its_own(endpoint, monkeypatch):
    """A forked worker must not use the parent's pooled connections: S3 keeps them alive, and
    two processes on one socket would read each other's responses."""
    reader = S3Reader()
    parents = reader.client
    assert reader.client is parents
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a forked child
    workers = reader.client
    assert workers is not parents
    assert reader.client is workers


def test_an_object_sent_to_a_worker_keeps_the_reader_the_worker_inherited(endpoint):
    reader = S3Reader(region=REGION)
    source = S3Source("s3://b/k.json.gz", bucket="b", key="k.json.gz", listed_size=7, reader=reader)
    sent = pickle.loads(pickle.dumps(source))
    assert sent == source
    assert sent.reader is reader


def test_a_worker_without_that_reader_makes_one_or_names_why_it_cannot(endpoint, monkeypatch):
    made = s3_inputs.reader_with(None, "eu-central-1", None, None)
    assert made.settings == (None, "eu-central-1", None, None)
    assert s3_inputs.reader_with(None, "eu-central-1", None, None) is made
    unset_credentials(monkeypatch)
    unusable = s3_inputs.reader_with(None, "eu-north-1", None, None)
    with pytest.raises(UnreadableInput, match="no AWS credentials found"):
        unusable.open_object("b", "k.json.gz")


def test_the_progress_bar_counts_the_listed_object_sizes(capsys, monkeypatch, s3):
    objects = {f"p/{n}.json.gz": delivery_object([external_get(n)]) for n in range(3)}
    bucket = new_bucket(s3, "progress", objects)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, out, err = run_cli(capsys, f"s3://{bucket}/p/")
    assert status == cli.EXIT_OK
    assert "replay:" in err
    assert "Replayed 3 input(s)" in out
    listed = list(discover([f"s3://{bucket}/p/"]))
    assert [source.size for source in listed] == [len(body) for body in objects.values()]


# --- listing: order, hidden keys, objects named by URL ------------------------------------

WALK_TREE = {
    "b.jsonl": 1,
    "a.jsonl": 2,
    "a/d.jsonl": 3,
    # S3 lists "a-b/" before "a/" ("-" sorts before "/"); the local walk takes "a" first.
    "a-b/c.jsonl": 4,
    "z/e.jsonl": 5,
    ".hidden.jsonl": 6,
    ".git/objects.jsonl": 7,
    "z/.partial.jsonl": 8,
}
WALK_ORDER = ["a.jsonl", "b.jsonl", "a/d.jsonl", "a-b/c.jsonl", "z/e.jsonl"]


def test_a_prefix_is_walked_in_the_local_walks_order_skipping_hidden_keys(s3, tmp_path):
    body = {name: json.dumps(external_get(minute)).encode() for name, minute in WALK_TREE.items()}
    objects = {f"logs/{name}": data for name, data in body.items()}
    objects["logs/z/"] = b""  # a folder marker, as the S3 console creates: not an input
    bucket = new_bucket(s3, "walk-order", objects)
    for name, data in body.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    local = [source.name for source in discover([str(tmp_path)])]
    remote = [source.name for source in discover([f"s3://{bucket}/logs"])]
    assert [name[len(f"{tmp_path}/") :] for name in local] == WALK_ORDER
    assert [name[len(f"s3://{bucket}/logs/") :] for name in remote] == WALK_ORDER


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("logs/a.jsonl", ["logs/a.jsonl"], id="an object"),
        pytest.param(".hidden.jsonl", [".hidden.jsonl"], id="a hidden object named outright"),
        pytest.param("logs/a", ["logs/a/d.jsonl"], id="a folder named without its slash"),
        pytest.param("logs/a/", ["logs/a/d.jsonl"], id="a folder"),
    ],
)
def test_a_url_names_an_object_or_a_folder(s3, path, expected):
    objects = {"logs/a.jsonl": b"{}", "logs/a/d.jsonl": b"{}", ".hidden.jsonl": b"{}"}
    bucket = new_bucket(s3, f"named-{len(path)}-{path.count('.')}", objects)
    sources = list(discover([f"s3://{bucket}/{path}"]))
    assert [source.name for source in sources] == [f"s3://{bucket}/{key}" for key in expected]
    assert all(source.listing_error is None for source in sources)


# --- --since/--until: only the needed folders are listed ----------------------------------

PRUNE_BUCKET = "pruned-trail"
ACCOUNT = "AWSLogs/111122223333/"
ORG_ACCOUNT = "AWSLogs/o-exampleorg1/444455556666/"
REGION_FOLDERS = [
    f"{ACCOUNT}CloudTrail/eu-west-1/",
    f"{ACCOUNT}CloudTrail/us-east-1/",
    f"{ORG_ACCOUNT}CloudTrail/us-east-1/",
]
DELIVERY_DAYS = [
    date(2025, 12, 31),
    date(2026, 1, 1),
    date(2026, 10, 30),
    date(2026, 10, 31),
    *(date(2026, 11, day) for day in (1, 2, 7, 8, 15, 30)),
    date(2026, 12, 1),
    date(2026, 12, 2),
]


def day_key(region_folder, day):
    account = region_folder.split("/")[-4]
    region = region_folder.split("/")[-2]
    stamp = f"{day:%Y%m%d}T1200Z"
    return f"{region_folder}{day:%Y/%m/%d}/{account}_CloudTrail_{region}_{stamp}_x.json.gz"


@pytest.fixture(scope="module")
def pruned_bucket(s3):
    """Two accounts (one under an organisation trail), three regions, days over two years."""
    objects = {}
    for region_folder in REGION_FOLDERS:
        for day in DELIVERY_DAYS:
            record = external_get(0, eventTime=f"{day}T12:00:00Z")
            objects[day_key(region_folder, day)] = delivery_object([record])
    # Digest files are not events: a pruned listing never goes there.
    objects[f"{ACCOUNT}CloudTrail-Digest/us-east-1/2026/11/01/digest.json.gz"] = b"{}"
    return new_bucket(s3, PRUNE_BUCKET, objects)


def listed_prefixes(reader):
    """Record the Prefix of every ListObjectsV2 call the reader's client makes."""
    prefixes = []

    def record(params, **_):
        prefixes.append(params["Prefix"])

    reader.client.meta.events.register("provide-client-params.s3.ListObjectsV2", record)
    return prefixes


def expected_listing(day_folders, *, years_listed=False, regions=REGION_FOLDERS):
    """The prefixes a pruned walk of the whole AWSLogs/ lists, in order."""
    structure = {
        REGION_FOLDERS[0]: ["AWSLogs/", f"{ACCOUNT}CloudTrail/"],
        REGION_FOLDERS[2]: ["AWSLogs/o-exampleorg1/", f"{ORG_ACCOUNT}CloudTrail/"],
    }
    listing = []
    for region in regions:
        listing += structure.get(region, [])
        listing += [region] if years_listed else []
        listing += [region + folder for folder in day_folders]
    return listing


@pytest.mark.parametrize(
    ("since", "until", "day_folders", "days"),
    [
        pytest.param(
            "2026-11-01", "2026-11-01", ["2026/11/01/"], [date(2026, 11, 1)], id="one day"
        ),
        pytest.param(
            "2026-11-01",
            "2026-11-07",
            [f"2026/11/0{day}/" for day in range(1, 8)],
            [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 7)],
            id="a week lists its seven days",
        ),
        pytest.param(
            "2026-10-31",
            "2026-12-01",
            ["2026/10/31/", "2026/11/", "2026/12/01/"],
            [date(2026, 10, 31), *DELIVERY_DAYS[4:10], date(2026, 12, 1)],
            id="a whole month in one listing",
        ),
        pytest.param(
            "2025-12-31",
            "2026-12-31",
            ["2025/12/31/", "2026/"],
            DELIVERY_DAYS,
            id="a whole year in one listing",
        ),
    ],
)
def test_since_until_list_only_the_folders_of_those_days(
    pruned_bucket, since, until, day_folders, days
):
    reader = S3Reader(since=date.fromisoformat(since), until=date.fromisoformat(until))
    prefixes = listed_prefixes(reader)
    sources = list(reader.discover(f"s3://{pruned_bucket}/AWSLogs/"))
    assert prefixes == expected_listing(day_folders)
    expected = [f"s3://{pruned_bucket}/{day_key(r, d)}" for r in REGION_FOLDERS for d in days]
    assert [source.name for source in sources] == expected


@pytest.mark.parametrize(
    ("since", "until", "day_folders", "days"),
    [
        pytest.param(None, "2026-01-01", ["2025/", "2026/01/01/"], DELIVERY_DAYS[:2], id="until"),
        pytest.param("2026-12-01", None, ["2026/12/"], DELIVERY_DAYS[-2:], id="since"),
    ],
)
def test_an_open_end_is_bounded_by_the_years_each_region_has(
    pruned_bucket, since, until, day_folders, days
):
    reader = S3Reader(
        since=since and date.fromisoformat(since), until=until and date.fromisoformat(until)
    )
    prefixes = listed_prefixes(reader)
    sources = list(reader.discover(f"s3://{pruned_bucket}"))
    # From the bucket root, "/AWSLogs/" is listed too (a trail whose key prefix is "/").
    assert prefixes == [*expected_listing(day_folders, years_listed=True), "/AWSLogs/"]
    assert [source.name for source in sources] == [
        f"s3://{pruned_bucket}/{day_key(r, d)}" for r in REGION_FOLDERS for d in days
    ]


@pytest.mark.parametrize(
    ("url_path", "listing", "region_folders"),
    [
        pytest.param(
            "AWSLogs/o-exampleorg1/",
            [
                "AWSLogs/o-exampleorg1/",
                f"{ORG_ACCOUNT}CloudTrail/",
                f"{REGION_FOLDERS[2]}2026/10/31/",
                f"{REGION_FOLDERS[2]}2026/11/",
            ],
            REGION_FOLDERS[2:],
            id="an organisation trail",
        ),
        pytest.param(
            f"{REGION_FOLDERS[1]}2026/11/",
            [f"{REGION_FOLDERS[1]}2026/11/"],
            REGION_FOLDERS[1:2],
            id="a month folder: clipped to it",
        ),
        pytest.param(
            f"{REGION_FOLDERS[1]}2026/10/",
            [f"{REGION_FOLDERS[1]}2026/10/31/"],
            REGION_FOLDERS[1:2],
            id="an earlier month: only its days in range",
        ),
    ],
)
def test_a_url_inside_the_layout_prunes_from_where_it_points(
    endpoint, pruned_bucket, url_path, listing, region_folders
):
    reader = S3Reader(since=date(2026, 10, 31), until=date(2026, 11, 30))
    prefixes = listed_prefixes(reader)
    sources = list(reader.discover(f"s3://{pruned_bucket}/{url_path}"))
    assert prefixes == listing
    assert sources
    assert all(source.name.startswith(f"s3://{pruned_bucket}/{url_path}") for source in sources)
    assert {source.name.split("/")[-5] for source in sources} == {
        folder.split("/")[-2] for folder in region_folders
    }


@pytest.mark.parametrize(
    ("first", "last", "folders"),
    [
        pytest.param(date(2026, 11, 20), date(2026, 11, 20), ["2026/11/20/"], id="one day"),
        pytest.param(
            date(2026, 12, 30),
            date(2027, 1, 2),
            ["2026/12/30/", "2026/12/31/", "2027/01/01/", "2027/01/02/"],
            id="across new year",
        ),
        pytest.param(date(2028, 2, 1), date(2028, 2, 29), ["2028/02/"], id="leap February"),
        pytest.param(
            date(2027, 2, 1), date(2027, 3, 1), ["2027/02/", "2027/03/01/"], id="month and a day"
        ),
        pytest.param(
            date(2025, 11, 30),
            date(2027, 1, 31),
            ["2025/11/30/", "2025/12/", "2026/", "2027/01/"],
            id="days, month, year, month",
        ),
        pytest.param(date(9999, 12, 31), date(9999, 12, 31), ["9999/12/31/"], id="last day"),
        pytest.param(date(2026, 11, 2), date(2026, 11, 1), [], id="empty range"),
    ],
)
def test_covering_folders_are_the_fewest_that_hold_exactly_the_days(first, last, folders):
    assert covering_folders(first, last) == folders


def test_days_without_objects_are_an_unreadable_input(capsys, pruned_bucket):
    url = f"s3://{pruned_bucket}/AWSLogs/"
    status, document, _ = replay_json(capsys, url, "--since", "2024-01-01", "--until", "2024-12-31")
    assert status == cli.EXIT_UNREADABLE_INPUT
    (item,) = document["unreadable"]
    assert item["input"] == url
    assert item["error"].startswith("no object for 2024-01-01 to 2024-12-31 under this URL")


# --- digest files, empty key segments, overlapping URLs ----------------------------------

TRAIL_DAY = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/20/"
DIGEST_DAY = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/20/"
DIGEST = gzip.compress(
    json.dumps({"awsAccountId": "111122223333", "digestStartTime": "x", "logFiles": []}).encode()
)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("", id="the bucket"),
        pytest.param("AWSLogs/111122223333/", id="an account"),
        pytest.param(f"{DIGEST_DAY}d.json.gz", id="a digest file named"),
    ],
)
def test_digest_files_in_s3_are_skipped_as_on_disk(capsys, s3, tmp_path, path):
    objects = {
        f"{TRAIL_DAY}a.json.gz": delivery_object(mixed_records()),
        f"{DIGEST_DAY}d.json.gz": DIGEST,
    }
    bucket = new_bucket(s3, f"digests-{len(path)}", objects)
    for key, body in objects.items():
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(body)
    local = replay_json(capsys, "--strict", tmp_path / path)
    remote = replay_json(capsys, "--strict", f"s3://{bucket}/{path}")
    assert remote[0] == local[0]
    assert comparable(remote[1]) == comparable(local[1])
    assert remote[1]["digest_files_skipped"] == 1
    assert remote[1]["malformed"] == 0


EMPTY_SEGMENTS = {
    f"logs/{TRAIL_DAY}a.json.gz": [external_get(0)],
    # A trail whose key prefix is "logs/" writes below "logs//"; one whose prefix is "/", "/".
    f"logs//{TRAIL_DAY}b.json.gz": [external_get(5, sourceIPAddress="45.33.32.156")],
    f"/{TRAIL_DAY}c.json.gz": [external_get(10, sourceIPAddress="9.9.9.9")],
}
DAY = ["--since", "2026-11-20", "--until", "2026-11-20"]


@pytest.mark.parametrize(
    ("path", "options", "keys"),
    [
        pytest.param("", [], list(EMPTY_SEGMENTS), id="the bucket"),
        pytest.param("logs/", [], list(EMPTY_SEGMENTS)[:2], id="the trail prefix"),
        pytest.param("logs/", DAY, list(EMPTY_SEGMENTS)[:2], id="the trail prefix, one day"),
        pytest.param("", DAY, list(EMPTY_SEGMENTS)[2:], id="the bucket, one day"),
    ],
)
def test_keys_with_an_empty_folder_name_are_read(capsys, s3, path, options, keys):
    objects = {key: delivery_object(records) for key, records in EMPTY_SEGMENTS.items()}
    bucket = new_bucket(s3, f"empty-segments-{len(path)}-{len(options)}", objects)
    status, document, _ = replay_json(capsys, f"s3://{bucket}/{path}", *options)
    assert status == cli.EXIT_OK
    assert document["records_read"] == len(keys)
    first_seen = sorted(
        alert["first_event_at"] for rule in document["rules"] for alert in rule["alerts"]
    )
    assert first_seen == sorted(f"s3://{bucket}/{key} line 1 record 1" for key in keys)


OTHER_DAY = "AWSLogs/444455556666/CloudTrail/us-east-1/2026/11/20/"
NAMED_AGAIN = "named more than once, or inside a folder also named"


@pytest.mark.parametrize(
    ("paths", "options", "skipped"),
    [
        pytest.param(
            ["AWSLogs/", "AWSLogs/111122223333/"],
            [],
            [("AWSLogs/111122223333/", f"{NAMED_AGAIN}: walked once")],
            id="a prefix, then one inside it",
        ),
        pytest.param(
            ["AWSLogs/111122223333/", ""],
            [],
            [("AWSLogs/111122223333/", f"{NAMED_AGAIN}: walked once")],
            id="a prefix, then the bucket",
        ),
        pytest.param(
            [f"{TRAIL_DAY}a.json.gz", "AWSLogs"],
            [],
            [(f"{TRAIL_DAY}a.json.gz", f"{NAMED_AGAIN}: read once")],
            id="an object, then a prefix holding it",
        ),
        pytest.param(
            [f"{TRAIL_DAY}a.json.gz", f"{TRAIL_DAY}a.json.gz", "AWSLogs/"],
            [],
            [(f"{TRAIL_DAY}a.json.gz", f"{NAMED_AGAIN}: read once")] * 2,
            id="an object named twice, then a prefix holding it",
        ),
        pytest.param(
            ["AWSLogs/", ""],
            DAY,
            [
                (TRAIL_DAY, f"{NAMED_AGAIN}: walked once"),
                (OTHER_DAY, f"{NAMED_AGAIN}: walked once"),
            ],
            id="pruned to a day: the day folders once",
        ),
    ],
)
def test_overlapping_urls_read_each_object_once(capsys, s3, paths, options, skipped):
    objects = {
        f"{TRAIL_DAY}a.json.gz": delivery_object(mixed_records()),
        f"{TRAIL_DAY}b.json.gz": delivery_object([external_get(8)]),
        f"{OTHER_DAY}c.json.gz": delivery_object([external_get(9, sourceIPAddress="9.9.9.9")]),
    }
    bucket = new_bucket(s3, f"overlap-{len(paths[0])}-{len(options)}", objects)
    status, document, err = replay_json(
        capsys, *(f"s3://{bucket}/{path}" for path in paths), *options
    )
    assert status == cli.EXIT_OK
    assert (document["records_read"], document["inputs_read"]) == (6, 3)
    assert [alert["events"] for alert in rule_report(document)["alerts"]] == [3, 1]
    assert document["skipped_inputs"] == [
        {"input": f"s3://{bucket}/{path}", "reason": reason} for path, reason in skipped
    ]
    assert f"skipped: s3://{bucket}/{skipped[0][0]}: " in err


# --- streaming ------------------------------------------------------------------------------


def test_objects_are_streamed_in_chunks_never_read_whole(monkeypatch, s3, rule_set):
    from botocore.response import StreamingBody

    records = [private_get(minute % 600) for minute in range(4000)]
    body = "".join(json.dumps(record) + "\n" for record in records).encode()
    assert len(body) > 3 * CHUNK_BYTES
    bucket = new_bucket(s3, "big-object", {"big.jsonl": body})
    read_sizes = []
    real_read = StreamingBody.read

    def spy(self, amt=None):
        read_sizes.append(amt)
        return real_read(self, amt)

    monkeypatch.setattr(StreamingBody, "read", spy)
    result = Replay(rule_set).run(discover([f"s3://{bucket}/big.jsonl"]))
    assert result.totals.records_read == 4000
    assert result.unreadable == []
    assert len(read_sizes) > 3
    assert set(read_sizes) == {CHUNK_BYTES}


# --- what cannot be read -----------------------------------------------------------------

CORRUPT = {
    "truncated gzip": (lambda good: good[: len(good) // 2], "truncated compressed data"),
    "garbage after the gzip magic": (lambda good: b"\x1f\x8b" + b"\x00" * 64, ""),
    "not a JSON document": (lambda good: b'{"Records": [', "not a valid JSON document"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_a_corrupt_object_is_unreadable_by_its_url_and_the_rest_replays(capsys, s3, case):
    corrupt, reason = CORRUPT[case]
    good = delivery_object(mixed_records())
    bucket = new_bucket(
        s3, f"corrupt-{len(case)}", {"a/good.json.gz": good, "a/bad.json.gz": corrupt(good)}
    )
    status, document, err = replay_json(capsys, f"s3://{bucket}/a/")
    assert status == cli.EXIT_UNREADABLE_INPUT
    (item,) = document["unreadable"]
    assert item["input"] == f"s3://{bucket}/a/bad.json.gz"
    assert reason in item["error"]
    assert document["records_read"] == 4
    assert document["alert_count"] == 1
    assert f"unreadable: s3://{bucket}/a/bad.json.gz" in err


def test_an_object_deleted_after_it_was_listed_is_unreadable_by_its_url(s3, rule_set):
    objects = {f"day/{n}.json.gz": delivery_object([external_get(n)]) for n in range(3)}
    bucket = new_bucket(s3, "vanishing", objects)
    sources = list(discover([f"s3://{bucket}/day/"]))
    s3.delete_object(Bucket=bucket, Key="day/1.json.gz")
    result = Replay(rule_set).run(sources)
    assert result.unreadable == [
        {"input": f"s3://{bucket}/day/1.json.gz", "error": "no such object (NoSuchKey)"}
    ]
    assert result.totals.records_read == 2
    assert [alert.events for alert in alerts(result)] == [2]


@pytest.mark.parametrize(
    ("argument", "error"),
    [
        pytest.param("s3://{bucket}/nothing/here/", "no object at or under this URL", id="prefix"),
        pytest.param("s3://{bucket}/nothing-here", "no such object (NoSuchKey)", id="key"),
        pytest.param("s3:///AWSLogs/", "no bucket in this S3 URL", id="no bucket"),
    ],
)
def test_a_url_that_finds_nothing_is_unreadable(capsys, sample_bucket, argument, error):
    url = argument.format(bucket=sample_bucket)
    status, document, _ = replay_json(capsys, url)
    assert status == cli.EXIT_UNREADABLE_INPUT
    assert document["unreadable"] == [{"input": url, "error": error}]


# AWS authorises ListObjectsV2 as s3:ListBucket; moto from 5.2.6 asks for s3:ListObjectsV2
# (no IAM action), so the user is granted both names and the test holds on either release.
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListObjectsV2", "s3:GetObject"],
            "Resource": ["arn:aws:s3:::guarded", "arn:aws:s3:::guarded/*"],
        },
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::guarded/secret/*"},
    ],
}


@pytest.fixture
def restricted_user(endpoint, s3, monkeypatch):
    """Credentials of an IAM user who may read bucket `guarded` except secret/, then moto
    checks every request against IAM policies (it accepts anything by default)."""
    iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION)
    iam.create_user(UserName="replayer")
    iam.put_user_policy(UserName="replayer", PolicyName="replay", PolicyDocument=json.dumps(POLICY))
    key = iam.create_access_key(UserName="replayer")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    yield
    monkeypatch.undo()  # authorisation off again before cleaning up as the test's admin
    iam.delete_access_key(UserName="replayer", AccessKeyId=key["AccessKeyId"])
    iam.delete_user_policy(UserName="replayer", PolicyName="replay")
    iam.delete_user(UserName="replayer")


def test_access_denied_objects_and_listings_are_unreadable_by_their_urls(capsys, s3, request):
    new_bucket(
        s3,
        "guarded",
        {
            "open/a.json.gz": delivery_object(mixed_records()),
            "secret/b.json.gz": delivery_object([external_get(5)]),
        },
    )
    new_bucket(s3, "forbidden", {"logs/c.json.gz": delivery_object([external_get(6)])})
    request.getfixturevalue("restricted_user")
    status, document, _ = replay_json(capsys, "s3://guarded/", "s3://forbidden/logs/")
    assert status == cli.EXIT_UNREADABLE_INPUT
    assert document["unreadable"] == [
        {"input": "s3://guarded/secret/b.json.gz", "error": "access denied (AccessDenied)"},
        {"input": "s3://forbidden/logs/", "error": "access denied (AccessDenied)"},
    ]
    assert document["records_read"] == 4
    assert document["alert_count"] == 1


# --- S3 out of reach: one line, nothing read --------------------------------------------


def unset_credentials(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        pytest.param(
            None,
            ["s3://no-such-bucket/AWSLogs/"],
            "s3://no-such-bucket/: no such bucket",
            id="bucket",
        ),
        pytest.param(
            unset_credentials,
            ["s3://{bucket}/AWSLogs/"],
            "cannot use S3: no AWS credentials found",
            id="no credentials",
        ),
        pytest.param(
            None,
            ["s3://{bucket}/AWSLogs/", "--profile", "no-such-profile"],
            "cannot use S3: The config profile (no-such-profile) could not be found",
            id="unknown profile",
        ),
    ],
)
def test_s3_out_of_reach_is_one_line_on_stderr_and_exit_2(
    capsys, monkeypatch, sample_bucket, setup, *, argv, message
):
    if setup:
        setup(monkeypatch)
    argv = [arg.format(bucket=sample_bucket) for arg in argv]
    status, out, err = run_cli(capsys, *argv)
    assert status == cli.EXIT_USAGE
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"detection-replay: error: {message}")


CONSOLE_SCRIPT = Path(sys.executable).with_name("detection-replay")


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="package not installed in this env")
def test_the_installed_command_without_credentials_prints_one_line_no_traceback(endpoint):
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    completed = subprocess.run(
        [CONSOLE_SCRIPT, "s3://any-bucket/AWSLogs/", "--path", REPO_ROOT],
        capture_output=True,
        check=False,
        timeout=120,
        env=environment,
    )
    assert completed.returncode == cli.EXIT_USAGE
    assert completed.stdout == b""
    assert completed.stderr.decode().count("\n") == 1
    assert b"no AWS credentials found" in completed.stderr
    assert b"Traceback" not in completed.stderr


# --- credentials, profile and region ----------------------------------------------------


@pytest.mark.parametrize("chosen_by", ["--profile", "AWS_PROFILE"])
def test_a_profile_supplies_the_credentials_and_region(
    endpoint, monkeypatch, tmp_path, sample_bucket, chosen_by
):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[replay-test]\naws_access_key_id = AKIAPROFILEEXAMPLE01\n"
        "aws_secret_access_key = profile-secret\n"
    )
    config = tmp_path / "config"
    config.write_text("[profile replay-test]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    unset_credentials(monkeypatch)
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    if chosen_by == "AWS_PROFILE":
        monkeypatch.setenv("AWS_PROFILE", "replay-test")
        reader = S3Reader()
    else:
        reader = S3Reader(profile="replay-test")
    signatures = []

    def record(request, **_):
        header = request.headers["Authorization"]
        signatures.append(header.decode() if isinstance(header, bytes) else header)

    reader.client.meta.events.register("before-send.s3", record)
    sources = list(reader.discover(f"s3://{sample_bucket}/AWSLogs/123456789012/CloudTrail/"))
    assert len(sources) == files_of("123456789012")
    assert reader.client.meta.region_name == "eu-west-1"
    assert signatures
    assert all("Credential=AKIAPROFILEEXAMPLE01/" in header for header in signatures)


def test_region_option_sets_the_clients_region(endpoint):
    assert S3Reader(region="ap-southeast-2").client.meta.region_name == "ap-southeast-2"


# --- command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["{samples}", "--since", "2026-11-01"],
            "--since/--until select days of s3:// inputs; no s3:// input was given",
            id="dates without an s3 input",
        ),
        pytest.param(
            ["s3://b/", "--since", "2026-11-02", "--until", "2026-11-01"],
            "--since 2026-11-02 is after --until 2026-11-01",
            id="since after until",
        ),
    ],
)
def test_since_until_usage_errors_exit_2(capsys, argv, message):
    status, out, err = run_cli(capsys, *[arg.format(samples=SAMPLES) for arg in argv])
    assert status == cli.EXIT_USAGE
    assert out == ""
    assert err.strip() == f"detection-replay: error: {message}"


@pytest.mark.parametrize("value", ["2026-11-31", "11/01/2026", "20261101", "2026-1-1"])
def test_a_day_must_be_a_real_yyyy_mm_dd(capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["s3://b/", "--since", value])
    assert exit_info.value.code == cli.EXIT_USAGE
    assert "is not a day as YYYY-MM-DD" in capsys.readouterr().err


def test_s3_support_does_not_import_boto3_until_an_s3_input_is_given():
    # boto3 takes about 0.4 s to import: a local replay must not pay for it here.
    code = "import sys, detection_replay.s3_inputs; print('boto3' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, timeout=60, text=True
    )
    assert completed.stdout.strip() == "False"
