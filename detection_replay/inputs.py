"""Finding the inputs and reading CloudTrail records out of them, one at a time.

Formats are told apart by content, never by file name:
- gzip is recognised by its magic bytes, anything else is read as it is;
- a first line that is a complete JSON value starts JSON Lines, read line by line. A line holding
  a CloudTrail delivery object ``{"Records": [...]}`` (a trail writes one per file, on one line)
  gives its records one by one;
- a file opening with ``[``, or whose first line is the opening of a longer JSON value, is one
  JSON document: a delivery object, an array of records, or a single record. A document is
  decoded whole, so memory follows the largest single file, never the whole input.
"""

import os
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import orjson

from detection_replay.records import InvalidJson

STDIN_NAME = "-"
S3_SCHEME = "s3://"
GZIP_MAGIC = b"\x1f\x8b"
# zlib's window-bits value that reads a gzip header and checks the gzip trailer (CRC, size).
GZIP_WBITS = 16 + zlib.MAX_WBITS
# Compressed bytes read at a time: large enough to make per-read overhead vanish, small enough
# that a chunk's decompressed size stays a few megabytes.
CHUNK_BYTES = 256 * 1024
# Errors that mean "this input cannot be read (any further)": missing or unreadable paths,
# corrupt or truncated gzip streams.
READ_ERRORS = (OSError, EOFError, zlib.error)
# How often, in lines, the reader reports how far it has got through the file.
PROGRESS_EVERY_LINES = 4096


class UnreadableInput(Exception):
    """An input that could not be read, or not to its end; the message says why."""


@dataclass(frozen=True)
class Source:
    """One input: a file path, or standard input when `path` is None."""

    name: str
    path: str | None = None
    # Set when the input could not even be listed (e.g. a directory without read permission).
    listing_error: str | None = None

    @property
    def size(self):
        if self.path is None:
            return 0
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0


def discover(arguments, s3=None):
    """Sources for the command-line arguments, in order; directories walked recursively.

    Inside a directory, files are taken in sorted path order (a CloudTrail layout sorts by
    account, region and time) and hidden files and directories are skipped. A path named
    on the command line is always read, whatever its name. `s3` is the s3_inputs.S3Reader
    for s3:// arguments (one with boto3's defaults is made when needed).
    """
    for argument in arguments:
        if argument == STDIN_NAME:
            yield Source(STDIN_NAME)
        elif argument.startswith(S3_SCHEME):  # listed and streamed by s3_inputs
            s3 = s3 or _default_s3_reader()
            yield from s3.discover(argument)
        elif os.path.isdir(argument):
            yield from _walk(argument)
        else:
            yield Source(argument, argument)


def _default_s3_reader():
    from detection_replay.s3_inputs import S3Reader  # noqa: PLC0415 (boto3: only when used)

    return S3Reader()


def _walk(directory):
    problems = []
    for root, dirnames, filenames in os.walk(directory, onerror=problems.append):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                # Plain strings, not pathlib: thousands of small files make its cost show.
                path = os.path.join(root, name)
                yield Source(path, path)
        yield from _listing_failures(problems)
    yield from _listing_failures(problems)


def _listing_failures(problems):
    while problems:
        error = problems.pop(0)
        yield Source(error.filename or "?", listing_error=describe_error(error))


def describe_error(error):
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, EOFError):
        return f"truncated compressed data ({error})"
    return str(error) or type(error).__name__


@contextmanager
def open_source(source):
    """(lines, raw): the input's decompressed lines, and the file under them (for progress)."""
    if source.listing_error:
        raise UnreadableInput(source.listing_error)
    open_stream = getattr(source, "open_stream", None)
    if open_stream is not None:  # an S3 object (s3_inputs.S3Source), streamed in chunks
        with open_stream() as raw:
            yield lines_of(_chunks(raw)), raw
        return
    if source.path is None:
        yield lines_of(_chunks(sys.stdin.buffer)), sys.stdin.buffer
        return
    with open(source.path, "rb") as raw:
        yield lines_of(_chunks(raw)), raw


def _chunks(raw):
    """The input's bytes in large pieces, gunzipped when they start with the gzip magic.

    zlib is driven directly rather than through gzip.GzipFile: with many small CloudTrail
    files, GzipFile's per-read Python overhead costs more than the decompression itself.
    """
    head = raw.read(CHUNK_BYTES)
    if head[:2] == GZIP_MAGIC:
        yield from _gunzipped(head, raw)
        return
    while head:
        yield head
        head = raw.read(CHUNK_BYTES)


def _gunzipped(data, raw):
    decompressor = zlib.decompressobj(wbits=GZIP_WBITS)
    while data:
        while data:
            output = decompressor.decompress(data)
            if output:
                yield output
            data = b""
            if decompressor.eof and decompressor.unused_data:
                # Concatenated gzip members (allowed by the format): go on with the next one.
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=GZIP_WBITS)
        data = raw.read(CHUNK_BYTES)
    if not decompressor.eof:
        raise EOFError("the gzip stream ends before its end-of-stream marker")


def lines_of(chunks):
    """Split byte chunks into lines (without the newline), in constant memory per line."""
    pending = []  # pieces of a line that spans chunks, joined once its end is found
    for chunk in chunks:
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        lines = chunk.split(b"\n")
        if pending:
            pending.append(lines[0])
            lines[0] = b"".join(pending)
        pending = [lines.pop()]
        yield from lines
    last = b"".join(pending)
    if last:
        yield last


def read_records(lines, report_position=None):
    """Yield (line, index, value) for each record; `value` is the decoded JSON or InvalidJson.

    `line` is the 1-based line in the file (0 for a multi-line document) and `index` the
    1-based position inside a delivery object or array (0 for a JSON Lines record).
    """
    report = report_position or _ignore
    lines = iter(lines)
    number, first_line = _first_content_line(lines)
    if first_line is None:
        return
    if first_line.lstrip()[:1] == b"[":
        yield from _document_records(first_line, lines)
        return
    try:
        first_value = orjson.loads(first_line)
    except orjson.JSONDecodeError as error:
        if error.pos >= len(first_line.rstrip()):
            # The first line is only the opening of a value: a pretty-printed document.
            yield from _document_records(first_line, lines)
            return
        first_value = InvalidJson(error.msg)
    yield from _line_records(number, first_value)
    yield from _json_lines(lines, number + 1, report)


def _ignore():
    return None


def _first_content_line(lines):
    for number, line in enumerate(lines, 1):
        if line.strip():
            return number, line
    return 0, None


def _document_records(first_line, other_lines):
    try:
        document = orjson.loads(b"\n".join([first_line, *other_lines]))
    except orjson.JSONDecodeError as error:
        raise UnreadableInput(f"not a valid JSON document ({error})") from None
    for index, record in enumerate(_records_of(document), 1):
        yield 0, index, record


def _records_of(value):
    if type(value) is dict:
        records = value.get("Records")
        if type(records) is list:
            return records
    if type(value) is list:
        return value
    return (value,)


def _line_records(number, value):
    if type(value) is dict and type(value.get("Records")) is list:
        for index, record in enumerate(value["Records"], 1):
            yield number, index, record
    else:
        yield number, 0, value


def _json_lines(lines, start, report):
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    for number, line in enumerate(lines, start):
        if not number % PROGRESS_EVERY_LINES:
            report()
        try:
            value = loads(line)
        except decode_error as error:
            if not line.strip():
                continue
            value = InvalidJson(error.msg)
        if type(value) is dict and "Records" in value:
            yield from _line_records(number, value)
        else:
            yield number, 0, value
