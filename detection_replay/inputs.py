"""Finding the inputs and reading CloudTrail records out of them, one at a time.

Formats are told apart by content, never by file name: gzip by its magic bytes (members of a
concatenated gzip file one after another), anything else as it is; then the text is split into
records by detection_replay.framing. Content the replay cannot read (bz2, xz, zstd or zip
archives, UTF-16 or UTF-32 text) is named as unsupported instead of being read as junk records.
Decompression hands on at most DECOMPRESSED_CHUNK_BYTES at a time, so a small file that expands
enormously is read in bounded memory like any other.
"""

import os
import stat
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

from detection_replay import s3_inputs
from detection_replay.framing import RecordReader
from detection_replay.sources import (
    DIGEST_REASON,
    S3_SCHEME,
    STDIN_NAME,
    ReadOnce,
    Source,
    UnreadableInput,
    is_digest_location,
    repeat_reason,
)
from detection_replay.text import display_path

GZIP_MAGIC = b"\x1f\x8b"
# zlib's window-bits value that reads a gzip header and checks the gzip trailer (CRC, size).
GZIP_WBITS = 16 + zlib.MAX_WBITS
# Compressed bytes read at a time: large enough to make per-read overhead vanish.
CHUNK_BYTES = 256 * 1024
# The most decompressed bytes produced from one piece of input (bounds memory on gzip bombs).
DECOMPRESSED_CHUNK_BYTES = 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
# Content the replay does not read, by its first bytes.
UNSUPPORTED_MAGIC = (
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive"),
    (GZIP_MAGIC, "gzip-compressed data inside gzip"),
    (b"\x00\x00\xfe\xff", "UTF-32 text"),
    (b"\xff\xfe\x00\x00", "UTF-32 text"),
    (b"\xfe\xff", "UTF-16 text"),
    (b"\xff\xfe", "UTF-16 text"),
)
SUPPORTED = "read: JSON (UTF-8), plain or gzip"
# What an input whose every value is malformed most likely holds, by the keys of its first
# value (the first entry whose keys it all has). Said instead of a bare "malformed", so that a
# replay of the wrong files is not mistaken for a quiet day.
FOREIGN_SHAPES = (
    (
        {"detail-type", "detail"},
        'EventBridge events, which carry the CloudTrail record under "detail" (unwrap them: '
        'jq -c \'select(."detail-type" | endswith("via CloudTrail")) | .detail\')',
    ),
    (
        {"messageType", "logEvents"},
        "CloudWatch Logs subscription messages, which carry each CloudTrail record as a string "
        "(unwrap them: jq -c '.logEvents[].message | fromjson')",
    ),
    (
        {"digestStartTime", "logFiles"},
        "CloudTrail digest files (hashes of the log files, not events)",
    ),
)
NOT_JSON = (
    "text that is not JSON, such as CSV (CloudTrail Lake and Athena export query results as "
    "CSV): replay the JSON log files the trail delivers"
)


@dataclass
class Discovery:
    """What walking the arguments found besides sources: directories without files."""

    empty_directories: list


def file_identity(path):
    """(device, inode) of an existing path, following links; None when it cannot be stat'ed."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


def is_digest_path(path):
    """A CloudTrail digest file: AWSLogs/<account>/CloudTrail-Digest/... (not event records)."""
    return is_digest_location(os.path.normpath(path).split(os.sep)[:-1])


def discover(arguments, excluded=frozenset(), discovery=None, s3=None):
    """Sources for the command-line arguments, in order; directories walked recursively.

    Inside a directory, files are taken in sorted path order, hidden files and directories are
    skipped, named pipes, sockets and devices are reported and not read, and files whose
    (device, inode) is in `excluded` (the report being written) are left out. A path named on
    the command line is always read, whatever its name or kind (`<(zcat ...)` is a pipe).
    Nothing is read twice: a file, object or standard input found again (named twice, inside a
    directory or prefix also named, reached through a link) and a directory or S3 folder walked
    before are reported as skipped, naming where they were found first.
    `s3` is the s3_inputs.S3Reader for s3:// arguments (one with boto3's defaults when needed).
    """
    read_once = ReadOnce()
    for argument in arguments:
        if argument == STDIN_NAME:
            sources = [Source(STDIN_NAME, identity=_stdin_identity())]
        elif argument.startswith(S3_SCHEME):  # listed and streamed by s3_inputs
            s3 = s3 or s3_inputs.S3Reader()
            sources = s3.discover(argument, read_once)
        elif os.path.isdir(argument):
            found = yield from _walk(argument, excluded, read_once)
            if not found and discovery is not None:
                discovery.empty_directories.append(display_path(argument))
            continue
        elif is_digest_path(argument):
            name = display_path(argument)
            sources = [Source(name, argument, skipped=DIGEST_REASON, digest=True)]
        else:
            sources = [Source(display_path(argument), argument, identity=file_identity(argument))]
        for source in sources:
            yield read_once.repeated(source)


def _stdin_identity():
    """Standard input's identity: the file it reads when it is one (`- < day.json` beside
    day.json reads it once), else standard input itself."""
    try:
        status = os.fstat(sys.stdin.fileno())
    except (AttributeError, OSError, ValueError):
        return (STDIN_NAME,)
    if stat.S_ISREG(status.st_mode):
        return status.st_dev, status.st_ino
    return (STDIN_NAME,)


def _walk(directory, excluded, read_once):
    """Sources under `directory`; returns how many files it found (read or skipped)."""
    name = display_path(directory)
    identity = file_identity(directory)
    earlier = read_once.earlier_name(identity and ("directory", *identity), name)
    if earlier is not None:
        yield Source(name, skipped=repeat_reason(name, earlier, "folder"))
        return 1
    try:
        with os.scandir(directory) as listing:
            entries = sorted(
                (entry for entry in listing if not entry.name.startswith(".")),
                key=lambda entry: entry.name,
            )
    except OSError as error:
        yield Source(name, listing_error=describe_error(error))
        return 1
    found = 0
    subdirectories = []
    for entry in entries:
        path = entry.path  # plain strings, not pathlib: thousands of small files make it show
        try:
            status = os.stat(path)
        except OSError:
            found += 1
            yield Source(display_path(path), path)  # a broken link: reported when opened
            continue
        if stat.S_ISDIR(status.st_mode):
            subdirectories.append(path)
            continue
        found += 1
        identity = (status.st_dev, status.st_ino)
        if identity in excluded:
            continue  # the report being written: never an input
        if not stat.S_ISREG(status.st_mode):
            kind = _special_kind(status.st_mode)
            yield Source(display_path(path), skipped=f"{kind}, not a regular file; not read")
        elif is_digest_path(path):
            yield Source(display_path(path), path, skipped=DIGEST_REASON, digest=True)
        else:
            yield read_once.repeated(Source(display_path(path), path, identity=identity))
    for path in subdirectories:
        found += yield from _walk(path, excluded, read_once)
    return found


def _special_kind(mode):
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def describe_error(error):
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, EOFError):
        return f"truncated compressed data ({error})"
    return str(error) or type(error).__name__


def no_cloudtrail_record(count, first_value, first_problem):
    """Why an input that yielded `count` values, none of them a CloudTrail record, is not read
    as one: what its values look like, going by the first."""
    said = f"no CloudTrail record among its {count:,} value(s)"
    if type(first_value) is dict:
        for keys, description in FOREIGN_SHAPES:
            if keys <= first_value.keys():
                return f"{said}: they look like {description}"
    elif first_problem.startswith("not valid JSON"):
        return f"{said}: {NOT_JSON}"
    return f"{said} (the first: {first_problem})"


@contextmanager
def open_source(source):
    """(chunks, raw): the input's decompressed bytes in bounded pieces, and the file under them."""
    if source.listing_error:
        raise UnreadableInput(source.listing_error)
    open_stream = getattr(source, "open_stream", None)
    if open_stream is not None:  # an S3 object (s3_inputs.S3Source), streamed in chunks
        with open_stream() as raw:
            yield text_chunks(raw), raw
        return
    if source.path is None:
        stdin = sys.stdin.buffer if sys.stdin is not None else None
        if stdin is None:
            raise UnreadableInput("standard input is closed")
        yield text_chunks(stdin), stdin
        return
    with open(source.path, "rb") as raw:
        yield text_chunks(raw), raw


def read_records(chunks, report_position=None):
    """(line, index, value) for each record, and a framing.Damage where the structure breaks."""
    return RecordReader(chunks, report_position)


def text_chunks(raw):
    """The input's text in bounded pieces: gunzipped, checked, BOM dropped, line ends unified."""
    head = raw.read(CHUNK_BYTES)
    if head[:2] == GZIP_MAGIC:
        chunks = _gunzipped(head, raw)
    else:
        _refuse_unsupported(head)
        chunks = _plain(head, raw)
    return _unified_line_ends(_checked_head(chunks))


def _refuse_unsupported(head):
    for magic, kind in UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            raise UnreadableInput(f"unsupported content: {kind} ({SUPPORTED})")
    # JSON text in UTF-8 holds no NUL byte; UTF-16/32 text without a BOM starts with one.
    if b"\x00" in head[:4]:
        raise UnreadableInput(f"unsupported content: UTF-16 or UTF-32 text or binary ({SUPPORTED})")


def _plain(head, raw):
    while head:
        yield head
        head = raw.read(CHUNK_BYTES)


def _checked_head(chunks):
    """The decompressed text, its first bytes checked, a leading UTF-8 byte-order mark dropped."""
    chunks = iter(chunks)
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= 8:
            break
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    else:
        _refuse_unsupported(head)
    if head:
        yield head
    yield from chunks


def _gunzipped(data, raw):
    decompressor = zlib.decompressobj(wbits=GZIP_WBITS)
    while True:
        output = decompressor.decompress(data, DECOMPRESSED_CHUNK_BYTES)
        if output:
            yield output
        data = decompressor.unconsumed_tail
        if decompressor.eof:
            # Concatenated gzip members (`cat *.json.gz`): go on with the next one, if any.
            data = decompressor.unused_data or raw.read(CHUNK_BYTES)
            if not data:
                return
            decompressor = zlib.decompressobj(wbits=GZIP_WBITS)
        elif not data and len(output) < DECOMPRESSED_CHUNK_BYTES:
            # All input consumed and no output held back: zlib needs more.
            data = raw.read(CHUNK_BYTES)
            if not data:
                raise EOFError("the gzip stream ends before its end-of-stream marker")


def _unified_line_ends(chunks):
    """CR LF and a lone CR (old Mac line ends) become LF, so every line ends in LF.

    JSON forbids a raw CR inside a string, so this changes nothing a record could hold.
    """
    held = b""
    for piece in chunks:
        chunk = held + piece
        held = b""
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):  # its LF may open the next piece
                chunk, held = chunk[:-1], b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if chunk:
            yield chunk
    if held:
        yield b"\n"
