"""Inputs straight from S3: `s3://bucket/prefix` listed, pruned to days, and streamed.

A prefix is walked like a local directory (``inputs.discover``): the objects of a folder in
name order, then each subfolder in name order, hidden names (a leading ``.``) skipped at every
level, so a bucket and a copy of it on disk are replayed in the same order and give the same
report. A URL not ending in ``/`` names a folder when objects lie under ``<url>/``, else one
object, which is read whatever its name (like a file named on the command line).

``--since``/``--until`` prune CloudTrail's delivery layout
``[prefix/]AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/``: accounts and regions
are listed one level at a time (delimiter ``/``), then only the year, month or day folders that
cover the requested days are listed, so a week of a bucket holding years lists a week.

Objects are streamed: the body is read in the chunks ``inputs`` asks for (no download to disk,
no whole object in memory) and decoded there exactly like a local file, gzip found by content.

boto3 costs about half a second to import, so it is imported only when an s3:// input is given.
"""

import argparse
import os
import re
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

from detection_replay.sources import (
    DIGEST_REASON,
    S3_SCHEME,
    ReadOnce,
    Source,
    UnreadableInput,
    is_digest_location,
    repeat_reason,
)

LOGS_FOLDER = "AWSLogs"
TRAIL_FOLDER = "CloudTrail"
# An AWS Organizations ID: an organisation trail adds this level above the account IDs.
ORG_ID = re.compile(r"o-[a-z0-9]{10,32}")
DAY_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")

# Listing and reading many objects for a long time: retry throttling and transient errors the
# standard way (exponential backoff with jitter), and never hang on a dead connection.
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60

# ClientError codes worth a plainer word; the code itself is always shown too.
PLAIN_ERRORS = {
    "NoSuchBucket": "no such bucket",
    "NoSuchKey": "no such object",
    "AccessDenied": "access denied",
    "AllAccessDisabled": "access to this bucket has been disabled",
    "InvalidAccessKeyId": "the AWS access key ID is not valid",
    "SignatureDoesNotMatch": "the AWS secret key does not match the access key ID",
    "ExpiredToken": "the AWS credentials have expired",
    "InvalidObjectState": "the object is archived (restore it before reading)",
}

OPTIONS_HELP = """\
INPUT may be s3://bucket/prefix (listed recursively) or s3://bucket/key, mixed with local paths;
objects are streamed, never downloaded whole. Credentials come from boto3's standard chain
(environment, --profile or AWS_PROFILE, SSO, container or instance role); AWS_ENDPOINT_URL_S3
points at an S3-compatible server. No credentials or an unknown profile: one line on stderr and
exit 2, before anything is read; so do a bucket that does not exist and S3 out of reach. A
listing or an object that cannot be read (access denied, deleted meanwhile, corrupt) is an
unreadable input named by its URL, the rest is still replayed, exit 3; so is an s3:// INPUT
under which nothing at all is found."""


class S3SetupError(Exception):
    """S3 cannot be used at all (no credentials, unknown profile): nothing is read."""


def is_s3_url(argument):
    return str(argument).startswith(S3_SCHEME)


def parse_s3_url(url):
    """(bucket, key or prefix) of an s3:// URL; the bucket is "" when the URL names none."""
    bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
    return bucket, prefix


def s3_url(bucket, key=""):
    return f"{S3_SCHEME}{bucket}/{key}"


def day(text):
    """A --since/--until value: a calendar day, YYYY-MM-DD (argparse type)."""
    try:
        if DAY_FORMAT.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a day as YYYY-MM-DD")


def add_arguments(parser):
    group = parser.add_argument_group("S3 inputs", OPTIONS_HELP)
    group.add_argument(
        "--profile",
        help="AWS profile from the shared config/credentials files (default: AWS_PROFILE, "
        "else boto3's default chain)",
    )
    group.add_argument(
        "--region", help="AWS region of the S3 client (default: AWS_REGION or the profile's)"
    )
    group.add_argument(
        "--since",
        type=day,
        metavar="YYYY-MM-DD",
        help="first day (inclusive, UTC) to read from s3:// inputs laid out as CloudTrail "
        "delivers (AWSLogs/[org-id/]account/CloudTrail/region/YYYY/MM/DD/); only the folders "
        "of the days asked for are listed. Local inputs are always read whole",
    )
    group.add_argument(
        "--until",
        type=day,
        metavar="YYYY-MM-DD",
        help="last day (inclusive, UTC) to read from s3:// inputs, as --since",
    )


def usage_problem(args):
    """What is wrong with the S3 options on the command line, or None."""
    if args.since is None and args.until is None:
        return None
    if not any(is_s3_url(argument) for argument in args.inputs):
        return "--since/--until select days of s3:// inputs; no s3:// input was given"
    if args.since is not None and args.until is not None and args.since > args.until:
        return f"--since {args.since} is after --until {args.until}"
    return None


def reader_for(args):
    """An S3Reader for the command line's s3:// inputs, or None when there are none.

    Raises S3SetupError, before anything is read, when there are no credentials, the profile
    is unknown, S3 cannot be reached or a bucket does not exist.
    """
    urls = [argument for argument in args.inputs if is_s3_url(argument)]
    if not urls:
        return None
    reader = S3Reader(profile=args.profile, region=args.region, since=args.since, until=args.until)
    reader.check_buckets(urls)
    return reader


@dataclass(frozen=True)
class S3Source(Source):
    """One S3 object, used wherever a Source is: `name` is its s3:// URL."""

    bucket: str = ""
    key: str = ""
    # As listed; 0 for an object named on the command line (not listed, so not known).
    listed_size: int = 0
    reader: "S3Reader | None" = field(default=None, compare=False, repr=False)

    @property
    def size(self):
        return self.listed_size

    def open_stream(self):
        """A context manager giving the object's body as a binary stream (read, tell)."""
        return self.reader.open_object(self.bucket, self.key)


# Each live S3Reader by its settings, so that a forked worker uses the reader it inherited.
_readers = weakref.WeakValueDictionary()


class S3Reader:
    """Lists and streams S3 objects with one boto3 client, honouring --since/--until."""

    def __init__(self, profile=None, region=None, since=None, until=None):
        import boto3  # noqa: PLC0415 (about 0.4 s: only runs with s3:// inputs pay it)
        from botocore.config import Config  # noqa: PLC0415
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        # Everything botocore raises for one request: a ClientError (an S3 error response) or
        # a BotoCoreError (connection, timeout, streaming, checksum, parameter validation).
        self.errors = (ClientError, BotoCoreError)
        self.since, self.until = since, until
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
            credentials = session.get_credentials()
            config = Config(
                retries={"mode": "standard"},
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=READ_TIMEOUT_SECONDS,
                user_agent_extra="detection-replay",
            )
            self._session, self._config = session, config
            self._client, self._client_pid = session.client("s3", config=config), os.getpid()
        except (BotoCoreError, ValueError) as error:  # unknown profile, invalid region, ...
            raise S3SetupError(f"cannot use S3: {error}") from None
        if credentials is None:
            raise S3SetupError(
                "cannot use S3: no AWS credentials found (environment, --profile/AWS_PROFILE, "
                "shared config and credentials files, SSO, container or instance role)"
            )
        self.settings = (profile, region, since, until)
        _readers.setdefault(self.settings, self)

    def __reduce__(self):
        # The S3 inputs a task sends to a worker name their reader by its settings: a session
        # and its connections are not to be copied, and the worker has its own (reader_with).
        return (reader_with, self.settings)

    @property
    def client(self):
        """This process's client: a forked worker must not share the parent's open connections
        (two processes reading one socket get each other's responses)."""
        if self._client_pid != os.getpid():
            self._client = self._session.client("s3", config=self._config)
            self._client_pid = os.getpid()
        return self._client

    def check_buckets(self, urls):
        """Fail fast on a bucket that does not exist, or on S3 out of reach (one call each).

        Any other refusal (access denied to the bucket itself, a rejected key) is left to the
        listing, which names the inputs it affects: objects may still be readable.
        """
        for bucket in dict.fromkeys(parse_s3_url(url)[0] for url in urls):
            if not bucket:
                continue  # discover() reports the URL
            try:
                self.client.head_bucket(Bucket=bucket)
            except self.errors[0] as error:  # ClientError: S3 answered
                if error.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                    raise S3SetupError(f"{s3_url(bucket)}: no such bucket") from None
            except self.errors as error:  # BotoCoreError: no answer after the retries, or an
                # invalid bucket name: nothing could be read from this bucket anyway
                raise S3SetupError(f"{s3_url(bucket)}: {error}") from None

    # --- listing -------------------------------------------------------------------------

    def discover(self, url, read_once=None):
        """Sources for one s3:// argument, in local-walk order; failures as unreadable ones.

        A folder `read_once` (shared by every argument of one listing) has seen walked is
        reported as skipped rather than listed again; objects are checked by the caller.
        """
        bucket, prefix = parse_s3_url(url)
        if not bucket:
            yield Source(url, listing_error="no bucket in this S3 URL")
            return
        found = False
        for source in self._sources(bucket, prefix, read_once or ReadOnce()):
            found = True
            yield source
        if not found:
            yield Source(url, listing_error=self._nothing_found())

    def _nothing_found(self):
        if self.since is None and self.until is None:
            return "no object at or under this URL"
        days = f"{self.since or 'the first day'} to {self.until or 'the last day'}"
        return (
            f"no object for {days} under this URL in CloudTrail's layout "
            "(AWSLogs/[org-id/]account/CloudTrail/region/YYYY/MM/DD/)"
        )

    def _sources(self, bucket, prefix, read_once):
        folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        if self.since is not None or self.until is not None:
            yield from self._layout(bucket, folder, read_once)
            return
        found = False
        for source in self._walk(bucket, folder, read_once):
            found = True
            yield source
        if not found and folder != prefix:
            # Nothing under <prefix>/: the URL names one object (opening it says if it exists),
            # which the caller checks for repeats by its key, not as a folder.
            read_once.forget(_folder_identity(bucket, folder))
            yield self._object_source(bucket, {"Key": prefix})

    def _pages(self, bucket, folder):
        paginator = self.client.get_paginator("list_objects_v2")
        return paginator.paginate(Bucket=bucket, Prefix=folder, Delimiter="/")

    def _walk(self, bucket, folder, read_once):
        """The objects under `folder` as os.walk would give them: files, then subfolders."""
        if (walked_before := self._walked_before(bucket, folder, read_once)) is not None:
            yield walked_before
            return
        subfolders = []
        try:
            for page in self._pages(bucket, folder):
                for item in page.get("Contents", ()):
                    name = item["Key"][len(folder) :]
                    # "" is the folder's own marker object (the console's "Create folder").
                    if name and not name.startswith("."):
                        yield self._object_source(bucket, item)
                subfolders.extend(entry["Prefix"] for entry in page.get("CommonPrefixes", ()))
        except self.errors as error:
            yield self._listing_failure(bucket, folder, error)
            return
        for name in _visible_names(subfolders, folder):
            yield from self._walk(bucket, f"{folder}{name}/", read_once)

    @staticmethod
    def _walked_before(bucket, folder, read_once):
        """A skipped source for a folder this listing walked before, else None (and it is now)."""
        url = s3_url(bucket, folder)
        earlier = read_once.earlier_name(_folder_identity(bucket, folder), url)
        if earlier is None:
            return None
        return Source(url, skipped=repeat_reason(url, earlier, "folder"))

    def _subfolder_names(self, bucket, folder):
        """Sorted, visible subfolder names of `folder` within CloudTrail's layout (where no level
        is empty: accounts, regions, dates); raises what botocore raises."""
        subfolders = []
        for page in self._pages(bucket, folder):
            subfolders.extend(entry["Prefix"] for entry in page.get("CommonPrefixes", ()))
        return [name for name in _visible_names(subfolders, folder) if name]

    def _listing_failure(self, bucket, folder, error):
        return Source(s3_url(bucket, folder), listing_error=describe_s3_error(error, self.errors))

    # --- CloudTrail's layout, pruned to --since/--until ----------------------------------

    def _layout(self, bucket, folder, read_once):
        parts = folder.split("/")[:-1]
        if LOGS_FOLDER in parts:
            logs_at = len(parts) - 1 - parts[::-1].index(LOGS_FOLDER)
            yield from self._below_logs(bucket, folder, parts[logs_at + 1 :], read_once)
            return
        # The bucket root or the trail's own key prefix: AWSLogs/ is right below, and below an
        # empty folder name for a trail whose prefix was set ending in "/" (CloudTrail then
        # writes "logs//AWSLogs/...", and at the bucket root "/AWSLogs/..."): one more listing.
        for logs in (f"{folder}{LOGS_FOLDER}/", f"{folder}/{LOGS_FOLDER}/"):
            yield from self._below_logs(bucket, logs, [], read_once)

    def _below_logs(self, bucket, folder, levels, read_once):
        """Descend from `folder`, whose path below AWSLogs/ is `levels`, to the day folders."""
        account_at = 1 if levels and ORG_ID.fullmatch(levels[0]) else 0
        depth = len(levels)
        if depth == account_at + 1:
            # An account: its trail's objects are in CloudTrail/ (no need to list the others:
            # CloudTrail-Digest/ and CloudTrail-Insight/ hold no events).
            trail = f"{folder}{TRAIL_FOLDER}/"
            yield from self._below_logs(bucket, trail, [*levels, TRAIL_FOLDER], read_once)
            return
        if depth > account_at + 1 and levels[account_at + 1] != TRAIL_FOLDER:
            return  # CloudTrail-Digest/ and the like, named in the URL itself
        if depth <= account_at or depth == account_at + 2:
            # AWSLogs/ (accounts or organisation IDs), AWSLogs/<org-id>/ (accounts), or
            # .../CloudTrail/ (regions): one level, listed with a delimiter.
            try:
                names = self._subfolder_names(bucket, folder)
            except self.errors as error:
                yield self._listing_failure(bucket, folder, error)
                return
            for name in names:
                yield from self._below_logs(bucket, f"{folder}{name}/", [*levels, name], read_once)
            return
        date_levels = levels[account_at + 3 :]
        region_folder = folder[: len(folder) - sum(len(level) + 1 for level in date_levels)]
        try:
            day_folders = self._day_folders(bucket, region_folder, date_levels)
        except self.errors as error:
            yield self._listing_failure(bucket, region_folder, error)
            return
        if len(date_levels) > 3 and day_folders:
            day_folders = [folder]  # below a day folder the URL itself named: just that
        for day_folder in day_folders:
            yield from self._flat(bucket, day_folder, read_once)

    def _flat(self, bucket, folder, read_once):
        """The objects under a year, month or day folder, from one listing without delimiter.

        A month of a busy region is thousands of objects in a few calls, where walking it
        folder by folder would take a call per day. The keys (at most a year of one region)
        are put in the local walk's order before any is yielded.
        """
        if (walked_before := self._walked_before(bucket, folder, read_once)) is not None:
            yield walked_before
            return
        found = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=folder):
                for item in page.get("Contents", ()):
                    names = item["Key"][len(folder) :].split("/")
                    if _is_walked(names):
                        found.append((_walk_order(names), item))
        except self.errors as error:
            found.append((((2, ""),), self._listing_failure(bucket, folder, error)))  # last
        found.sort(key=lambda entry: entry[0])
        for _, item in found:
            yield item if isinstance(item, Source) else self._object_source(bucket, item)

    def _object_source(self, bucket, item):
        key = item["Key"]
        digest = is_digest_location(key.split("/")[:-1])  # as the local walk: counted, not read
        return S3Source(
            s3_url(bucket, key),
            skipped=DIGEST_REASON if digest else None,
            digest=digest,
            identity=("s3 object", bucket, key),
            bucket=bucket,
            key=key,
            listed_size=item.get("Size", 0),
            reader=self,
        )

    def _day_folders(self, bucket, region_folder, date_levels):
        """The YYYY/, YYYY/MM/ or YYYY/MM/DD/ folders of a region that hold the days asked."""
        span = _span_of(date_levels)
        if span is None:
            return []  # not a date folder: nothing of CloudTrail's
        first, last = span
        since, until = self.since or first, self.until or last
        if (self.since is None or self.until is None) and not date_levels:
            # An open end at the region level: bound it by the years the region has.
            names = self._subfolder_names(bucket, region_folder)
            years = [int(name) for name in names if len(name) == 4 and name.isdigit()]
            years = [year for year in years if year >= date.min.year]
            if not years:
                return []
            since = self.since or date(min(years), 1, 1)
            until = self.until or date(max(years), 12, 31)
        since, until = max(since, first), min(until, last)
        return [region_folder + prefix for prefix in covering_folders(since, until)]

    # --- reading -------------------------------------------------------------------------

    @contextmanager
    def open_object(self, bucket, key):
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except self.errors as error:
            raise UnreadableInput(describe_s3_error(error, self.errors)) from None
        body = _StreamedBody(response["Body"], self.errors)
        try:
            yield body
        finally:
            body.close()


def reader_with(profile, region, since, until):
    """The S3Reader this process has for these settings (a forked worker: its parent's), else a
    new one; one that cannot be made fails each object it is asked for, naming why."""
    reader = _readers.get((profile, region, since, until))
    if reader is not None:
        return reader
    try:
        return S3Reader(profile, region, since, until)
    except S3SetupError as error:
        return _UnusableReader(str(error))


class _UnusableReader:
    def __init__(self, reason):
        self.reason = reason

    def open_object(self, bucket, key):
        raise UnreadableInput(self.reason)


class _StreamedBody:
    """A StreamingBody read in the caller's chunks, its failures as UnreadableInput."""

    def __init__(self, body, errors):
        self._body = body
        self._errors = errors
        self._position = 0

    def read(self, size=-1):
        if size is None or size < 0:
            # The whole object at once is exactly what streaming avoids; inputs never asks.
            raise ValueError("S3 objects are read in chunks: give read() a size")
        try:
            data = self._body.read(size)
        except self._errors as error:
            raise UnreadableInput(describe_s3_error(error, self._errors)) from None
        self._position += len(data)
        return data

    def tell(self):
        return self._position

    def close(self):
        self._body.close()


def describe_s3_error(error, errors):
    """One line for a botocore error: a plain phrase and the S3 error code, or its message."""
    client_error = errors[0]
    if isinstance(error, client_error):
        details = error.response.get("Error", {})
        code = details.get("Code") or "error"
        text = PLAIN_ERRORS.get(code) or details.get("Message") or "request failed"
        return f"{text} ({code})"
    return str(error) or type(error).__name__


def _folder_identity(bucket, folder):
    return ("s3 folder", bucket, folder)


def _visible_names(prefixes, folder):
    """Subfolder names from CommonPrefixes, sorted as the local walk sorts directory names.

    S3 sorts whole keys ("a-b/" before "a/", as "-" < "/"); the local walk sorts the names
    ("a" before "a-b"), so the names are sorted again without their trailing "/". An empty
    name is a real folder: "logs//AWSLogs/..." is what CloudTrail writes for the key prefix
    "logs/", and "/AWSLogs/..." for "/".
    """
    names = (prefix[len(folder) : -1] for prefix in prefixes)
    return sorted(name for name in names if not name.startswith("."))


def _is_walked(names):
    """Whether a key, as its names below the folder listed, is one the walk reads: no hidden
    name at any level (empty folder names included, as in _visible_names), and not the
    folder's own marker object ("x/", an empty last name)."""
    return bool(names[-1]) and not any(name.startswith(".") for name in names)


def _walk_order(names):
    """Sort key putting relative key paths in os.walk's order, as the local walk takes them:
    a folder's objects (by name) before its subfolders (by name), at every level."""
    return (*((1, folder) for folder in names[:-1]), (0, names[-1]))


def _span_of(date_levels):
    """(first, last) day that the folders YYYY[/MM[/DD]] below a region hold; None if no date."""
    if not all(level.isdigit() for level in date_levels[:3]):
        return None
    numbers = [int(level) for level in date_levels[:3]]
    try:
        if not numbers:
            return date.min, date.max
        if len(numbers) == 1:
            return date(numbers[0], 1, 1), date(numbers[0], 12, 31)
        if len(numbers) == 2:
            return date(*numbers, 1), _month_end(date(*numbers, 1))
        return date(*numbers), date(*numbers)
    except ValueError:
        return None


def _month_end(day_):
    if day_.month == 12:
        return day_.replace(day=31)
    return day_.replace(month=day_.month + 1, day=1) - timedelta(days=1)


def covering_folders(first, last):
    """The fewest YYYY/, YYYY/MM/ and YYYY/MM/DD/ folders holding exactly the days first..last.

    Whole years and whole months are listed as one folder: a listing returns up to 1,000 keys
    per call, and a day of a busy trail holds hundreds, so fewer folders mean fewer calls.
    """
    folders = []
    current = first
    while current <= last:
        year_end = date(current.year, 12, 31)
        month_end = _month_end(current)
        if (current.month, current.day) == (1, 1) and year_end <= last:
            folders.append(f"{current.year:04d}/")
            covered = year_end
        elif current.day == 1 and month_end <= last:
            folders.append(f"{current.year:04d}/{current.month:02d}/")
            covered = month_end
        else:
            folders.append(f"{current.year:04d}/{current.month:02d}/{current.day:02d}/")
            covered = current
        if covered >= last:
            break
        current = covered + timedelta(days=1)
    return folders
