"""Splitting decompressed input into records, whatever the shape, with bounded memory.

An input is a sequence of top-level JSON values, one after another with or without whitespace
between them: JSON Lines, a CloudTrail delivery object ``{"Records": [...]}`` (a trail writes one
per file, on one line and without a final newline, so ``cat``/``zcat`` of several files puts
them back to back), a JSON array, a pretty-printed document, or several of any of these. A
top-level array's elements are records, and so are the elements of a delivery object's
``Records``; any other top-level value is one record.

Three ways through, fastest first, all giving the same records:
- an input of at most WHOLE_DOCUMENT_BYTES that is a single JSON value is decoded by orjson in
  one call (a CloudTrail file, a JSON array, a pretty-printed document);
- otherwise each line that is a complete JSON value on its own is decoded by orjson (JSON Lines);
- anything else (values back to back on a line, a value spread over lines, a line longer than
  WHOLE_DOCUMENT_BYTES, or a value orjson rejects) goes through a structural scanner that finds
  where each record starts and ends without decoding it, and hands each record to orjson alone.
  So one undecodable value (``1e400``, ``NaN``, a lone surrogate escape, an invalid UTF-8 byte,
  nesting past orjson's limit) makes one malformed record, and its neighbours are still read.

The scanner keeps only the record it is in: memory follows the largest record (at most
RECORD_BYTES, past which the record is malformed and skipped), never the input. Inside a large
delivery object or array it first lets orjson try the text up to the next `}` before `,` or `]`
(see _quick_element), so the Python scanner only walks the records orjson cannot take at once.

Why not a streaming parser such as ijson (yajl2_c): it stops at the first value it cannot decode
(`NaN`, `1e400`, an invalid UTF-8 byte), losing the rest of the stream, turns a lone surrogate
escape into "?" and rejects integers orjson accepts; so a record would decode differently, or
not at all, depending on the size of the file it came in. Here every record, in every file,
is decoded by the same orjson call.

Where the structure itself is broken, so that records cannot be told apart any more, the reader
yields a Damage: the input is reported unreadable at that line. Within a one-line value it goes
on at the next line (JSON Lines hold independent values); within a multi-line document the rest
of the input cannot be trusted and reading stops.
"""

import re
import zlib

import orjson

from detection_replay.records import InvalidJson

# Decompressed inputs up to this size that hold one JSON value are decoded in one orjson call.
WHOLE_DOCUMENT_BYTES = 16 * 1024 * 1024
# A record (or a line that is not JSON) larger than this is malformed: it is skipped, not kept.
# Equal to WHOLE_DOCUMENT_BYTES, so a record that large can only occur where the scanner reads,
# and every path judges sizes alike.
RECORD_BYTES = WHOLE_DOCUMENT_BYTES
# Bracket nesting tracked exactly; deeper levels are only counted (orjson rejects anything past
# 1,024 levels, so such a record is malformed whatever its brackets).
TRACKED_DEPTH = 4096

# Errors reading the input under the reader (see detection_replay.inputs.READ_ERRORS).
READ_ERRORS = (OSError, EOFError, zlib.error)
# orjson's messages for a value it cannot represent, as opposed to broken JSON syntax.
_VALUE_ERRORS = ("infinity", "surrogate", "UTF-8", "depth limit", "escaped", "control character")
_END_OF_DATA = "unexpected end of data"

# Whitespace between top-level values; a UTF-8 byte-order mark there too (`cat` of files with one).
_TOP_SPACE = re.compile(rb"(?:[ \t]|\xef\xbb\xbf)*")
_SPACE = re.compile(rb"[ \t]*")
# Everything inside a value up to the next bracket, quote or line end, complete strings included.
_INSIDE = re.compile(rb'[^"\[\]{}\n]*(?:"[^"\\\n]*(?:\\.[^"\\\n]*)*"[^"\[\]{}\n]*)*')
# A string's opening quote and as much of it as is there (to tell "cut by the buffer's end"
# from "broken by a line end").
_STRING_START = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*')
_STRING = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
# A scalar element of an array: up to the next separator.
_SCALAR = re.compile(rb"[^,\]\s]*")
# Where a record object may end inside an array: a closing brace before a comma or bracket.
_RECORD_END = re.compile(rb"\}[ \t]*[,\]]")
# How many such places are tried before the scanner takes over (nested objects end that way too).
QUICK_TRIES = 24
_NOT_FOUND = object()
_DELIVERY_OPENING = re.compile(rb'\{[ \t\n]*"Records"[ \t\n]*:[ \t\n]*\[')
_CLOSING = {ord("}"): ord("{"), ord("]"): ord("[")}
_OPEN_BRACKETS = b"{["
_NEWLINE = ord("\n")


class Damage:
    """Where an input's structure breaks so that its records cannot be told apart any more."""

    __slots__ = ("fatal", "line", "reason")

    def __init__(self, line, reason, fatal):
        self.line = line
        self.reason = reason
        # True when the rest of the input is not read.
        self.fatal = fatal

    def __str__(self):
        return f"line {self.line}: {self.reason}"


class _Broken(Exception):
    """The structure breaks at `position` (inside the current top-level value)."""

    def __init__(self, reason, position):
        super().__init__(reason)
        self.reason = reason
        self.position = position


class _Truncated(Exception):
    """The input ends inside the current top-level value."""


def is_delivery_object(value):
    """A CloudTrail delivery object: Records, an array, is its first key (as the scanner sees)."""
    return (
        type(value) is dict
        and type(value.get("Records")) is list
        and next(iter(value)) == "Records"
    )


def records_of_value(line, value):
    """(line, index, record) for one decoded top-level value."""
    if type(value) is list:
        return [(line, index, record) for index, record in enumerate(value, 1)]
    if is_delivery_object(value):
        return [(line, index, record) for index, record in enumerate(value["Records"], 1)]
    return [(line, 0, value)]


def decode(text):
    """A record's decoded value, or InvalidJson saying why it is not one."""
    if len(text) > RECORD_BYTES:
        return InvalidJson(f"record larger than {RECORD_BYTES // (1024 * 1024)} MiB")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        return InvalidJson(error.msg)


def _is_value_error(message):
    return any(word in message for word in _VALUE_ERRORS)


class RecordReader:
    """Yields (line, index, value) for every record of `chunks` (decompressed bytes), and Damage.

    `line` is the 1-based line where the record's top-level value starts, `index` the 1-based
    position inside a delivery object or array (0 for a record that is a top-level value).
    `value` is the decoded record, or InvalidJson for one that could not be decoded.
    """

    def __init__(self, chunks, report=None):
        self._chunks = iter(chunks)
        self._report = report
        # A bytearray: appending a chunk costs the chunk, not the whole buffer again.
        self.data = bytearray()
        self.eof = False
        self.pos = 0
        # Bytes before `mark` are still needed (the record being scanned); None: none are.
        self.mark = None
        # Line number at buffer position `_line_pos`, advanced lazily by counting newlines.
        self._line = 1
        self._line_pos = 0
        # The top-level value being scanned: its line, whether it is an array or delivery
        # object, whether it was found to go on over several lines (None: not known yet), and
        # where its first line starts while that line may still have to be judged.
        self._value_line = 0
        self._container = False
        self._multiline = None
        self._first_line_start = None
        # An error reading the input (a truncated gzip stream, an I/O error): the records
        # before it are still yielded, the incomplete one at its end is not, then it is raised.
        self._read_error = None
        self._deeper = 0

    # --- the buffer ---------------------------------------------------------------------------

    def _pull(self):
        """Append the next chunk; False at the end. Drops the bytes no longer needed first."""
        if self._first_line_start is not None and self.pos - self._first_line_start > RECORD_BYTES:
            self._first_line_start = None  # too long a first line to judge: let it go
        keep = self.pos
        for needed in (self.mark, self._first_line_start):
            if needed is not None:
                keep = min(keep, needed)
        if keep and keep >= len(self.data) // 2:
            self.line_at(keep)
            del self.data[:keep]
            self.pos -= keep
            self._line_pos -= keep
            if self.mark is not None:
                self.mark -= keep
            if self._first_line_start is not None:
                self._first_line_start -= keep
        try:
            for chunk in self._chunks:
                if self._report:
                    self._report()
                if chunk:
                    self.data += chunk
                    return True
        except READ_ERRORS as error:
            self._read_error = error
        self.eof = True
        return False

    def _available(self, position):
        """True when the byte at `position` is in the buffer, pulling as needed.

        Pulling may drop the buffer's head and shift every position: callers pass positions
        as `self.pos + offset` and re-read `self.pos` afterwards.
        """
        offset = position - self.pos
        while self.pos + offset >= len(self.data):
            if self.eof or not self._pull():
                return False
        return True

    def line_at(self, position):
        if position < self._line_pos:
            return self._line - self.data.count(b"\n", position, self._line_pos)
        self._line += self.data.count(b"\n", self._line_pos, position)
        self._line_pos = position
        return self._line

    # --- the three ways through ---------------------------------------------------------------

    def __iter__(self):
        yield from self._records()
        if self._read_error is not None:
            raise self._read_error

    def _records(self):
        while not self.eof and len(self.data) <= WHOLE_DOCUMENT_BYTES:
            self._pull()
        if self.eof and self._read_error is None:
            try:
                value = orjson.loads(self.data)
            except orjson.JSONDecodeError:
                pass
            else:
                start = len(self.data) - len(self.data.lstrip())
                yield from records_of_value(self.line_at(start), value)
                return
        yield from self._lines()

    def _lines(self):
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        while True:
            end = self.data.find(b"\n", self.pos)
            while end < 0 and not self.eof and len(self.data) - self.pos <= WHOLE_DOCUMENT_BYTES:
                searched = len(self.data) - self.pos
                self._pull()
                end = self.data.find(b"\n", self.pos + searched)
            if end < 0:
                if self.pos >= len(self.data) or self._read_error is not None:
                    return
                if len(self.data) - self.pos > WHOLE_DOCUMENT_BYTES:
                    if not (yield from self._scan_line()):
                        return
                    continue
                end = len(self.data)
            try:
                value = loads(self.data[self.pos : end])
            except decode_error:
                if self.data[self.pos : end].strip(b" \t"):
                    if not (yield from self._scan_line()):
                        return
                    continue
            else:
                yield from records_of_value(self.line_at(self.pos), value)
            self.pos = end + 1

    # --- the scanner --------------------------------------------------------------------------

    def _scan_line(self):
        """Read the top-level values that start on the line at `pos`; False when reading stops.

        Leaves `pos` at the start of the line after the last value read, or at the end.
        """
        while True:
            if not self._skip_inline_space(_TOP_SPACE):
                return True
            if self.data[self.pos] == _NEWLINE:
                self.pos += 1
                return True
            go_on = yield from self._top_level_value()
            if go_on is not None:
                return go_on

    def _skip_inline_space(self, pattern=_SPACE):
        """Skip spaces on this line; False at the end of the input."""
        while True:
            self.pos = pattern.match(self.data, self.pos).end()
            if self.pos < len(self.data):
                return True
            if not self._pull():
                return False

    def _top_level_value(self):
        """One top-level value at `pos`; None to go on along the same line, else as _scan_line."""
        self._value_line = self.line_at(self.pos)
        self._first_line_start, self._multiline = self.pos, None
        first = self.data[self.pos]
        self._container = first == ord("[")
        try:
            if first == ord("{"):
                self._available(self.pos + 64)
                opening = _DELIVERY_OPENING.match(self.data, self.pos)
                if opening is None:
                    yield self._record(0, self._frame())
                else:
                    self._container = True
                    self.pos = opening.end()
                    yield from self._elements(delivery=True)
            elif first == ord("["):
                self.pos += 1
                yield from self._elements(delivery=False)
            else:
                yield self._record(0, self._rest_of_line())
        except _Broken as broken:
            item, go_on = self._after_break(broken)
            yield item
            return go_on
        except _Truncated:
            if self._read_error is None:  # else the read error says what happened
                yield self._after_truncation()
            return False
        finally:
            self._first_line_start = None
            self.mark = None
        if not self._skip_inline_space():
            return False
        if self.data[self.pos] == _NEWLINE:
            self.pos += 1
            return True
        return None  # another value follows on the same line (values back to back)

    def _record(self, index, span):
        start, end = span
        if start is None:
            value = InvalidJson(f"record larger than {RECORD_BYTES // (1024 * 1024)} MiB")
        else:
            value = decode(self.data[start:end])
        self.mark = None
        return self._value_line, index, value

    def _elements(self, delivery):
        """The records of a top-level array or a delivery object's Records, then its closing."""
        index = 0
        self._skip_space()
        if self.data[self.pos] == ord("]"):
            self.pos += 1
        else:
            while True:
                index += 1
                value = self._quick_element()
                if value is _NOT_FOUND:
                    yield self._record(index, self._element())
                else:
                    yield self._value_line, index, value
                self._skip_space()
                separator = self.data[self.pos]
                self.pos += 1
                if separator == ord("]"):
                    break
                if separator != ord(","):
                    raise _Broken(f"expected , or ] after record {index}", self.pos - 1)
                self._skip_space()
        if delivery:
            self._skip_space()
            if self.data[self.pos] == ord(","):  # more keys after Records: not records
                self._frame(opened=b"{")
            elif self.data[self.pos] == ord("}"):
                self.pos += 1
            else:
                raise _Broken("expected } after the Records array", self.pos)

    def _skip_space(self):
        """Skip whitespace inside a top-level value, line ends too; the next byte is there."""
        while True:
            if not self._skip_inline_space():
                raise _Truncated
            if self.data[self.pos] != _NEWLINE:
                return
            self._cross_line()
            self.pos += 1

    def _quick_element(self):
        """The object at `pos` decoded by orjson alone, when its end is easily found.

        A record object in a delivery object or array ends at a `}` followed by `,` or `]`.
        The first such `}` may close a nested object instead, or sit inside a string; then the
        text up to it is not a complete JSON value and orjson says so, and the next one is
        tried. Text that orjson decodes completely is exactly the object that starts at `pos`
        (a JSON value is closed by its own last bracket), so a success is never a wrong split.
        Anything else is left to the scanner (_element), which finds the end exactly.
        """
        data, start = self.data, self.pos
        if data[start] != ord("{"):
            return _NOT_FOUND
        search = start
        for _ in range(QUICK_TRIES):
            end = _RECORD_END.search(data, search)
            if end is None or end.start() - start > RECORD_BYTES:
                return _NOT_FOUND
            search = end.start() + 1
            # Balanced braces (strings holding braces aside) first: a failed decode costs more.
            if data.count(b"{", start, search) != data.count(b"}", start, search):
                continue
            try:
                value = orjson.loads(data[start : end.start() + 1])
            except orjson.JSONDecodeError as error:
                if error.msg != _END_OF_DATA:
                    return _NOT_FOUND  # a bad value, or a break: the scanner finds out which
                continue
            self.pos = end.start() + 1
            return value
        return _NOT_FOUND

    def _element(self):
        first = self.data[self.pos]
        if first in _OPEN_BRACKETS:
            return self._frame()
        self.mark = self.pos
        if first == ord('"'):
            while True:
                string = _STRING.match(self.data, self.pos)
                if string is not None:
                    self.pos = string.end()
                    return self.mark, self.pos
                self._string_cut_or_broken()
        while True:
            end = _SCALAR.match(self.data, self.pos).end()
            if end - self.mark > RECORD_BYTES:
                raise _Broken("a value larger than the record limit", end)
            if end < len(self.data) or not self._pull():
                self.pos = end
                return self.mark, end

    def _rest_of_line(self):
        """A top-level value that is no object or array: the rest of its line is one record."""
        self.mark = self.pos
        while True:
            end = self.data.find(b"\n", self.pos)
            if end >= 0:
                self.pos = end
                return self.mark, end
            if self.mark is not None and len(self.data) - self.mark > RECORD_BYTES:
                self.mark = None  # go on to the line's end, but keep none of it
            self.pos = len(self.data)
            if not self._pull():
                return self.mark, len(self.data)

    def _frame(self, opened=None):
        """Scan an object or array from `pos` (or, given `opened`, from inside one) to its end.

        Returns (start, end) of its bytes, or (None, None) when it is larger than RECORD_BYTES;
        leaves `pos` after it.
        """
        self.mark = self.pos
        if opened is None:
            stack = bytearray(self.data[self.pos : self.pos + 1])
            self.pos += 1
        else:
            stack = bytearray(opened)
        self._deeper = 0  # levels past TRACKED_DEPTH, counted only
        while True:
            self.pos = _INSIDE.match(self.data, self.pos).end()
            if self.pos >= len(self.data):
                if self.mark is not None and self.pos - self.mark > RECORD_BYTES:
                    self.mark = None  # go on to the record's end, but keep none of it
                if not self._pull():
                    raise _Truncated
                continue
            byte = self.data[self.pos]
            if byte == _NEWLINE:
                self._cross_line()
                self.pos += 1
            elif byte == ord('"'):
                self._string_cut_or_broken()
            elif self._bracket(stack, byte):
                if self.mark is None or self.pos - self.mark > RECORD_BYTES:
                    return None, None
                return self.mark, self.pos

    def _bracket(self, stack, byte):
        """Open or close a bracket (at `pos`); True when none is left open."""
        self.pos += 1
        if byte in _OPEN_BRACKETS:
            if len(stack) < TRACKED_DEPTH:
                stack.append(byte)
            else:
                self._deeper += 1
            return False
        if self._deeper:
            self._deeper -= 1
            return False
        if stack[-1] != _CLOSING[byte]:
            raise _Broken(f"{chr(byte)} closes {chr(stack[-1])}", self.pos - 1)
        stack.pop()
        return not stack

    def _string_cut_or_broken(self):
        """At a string (at `pos`) that is not complete in the buffer: pull more, or it breaks."""
        partial = _STRING_START.match(self.data, self.pos).end()
        if self.data[partial : partial + 1] == b"\\":  # an escape: is its second byte there?
            partial += 1
        if partial < len(self.data):  # stopped by a line end: a JSON string holds no newline
            raise _Broken("a string is not closed at the end of its line", partial)
        if partial - self.pos > RECORD_BYTES:
            raise _Broken("a string larger than the record limit", partial)
        if not self._pull():
            raise _Truncated

    def _cross_line(self):
        """The top-level value goes on past the line end at `pos`: a document, or a cut line?

        A pretty-printed document goes on with what JSON allows next; a JSON Lines record cut
        short does not (the next line is another record). So the first time a value crosses a
        line end, its first line, and its first line with the next non-blank line, must still
        read as the beginning of one JSON value. A first line over RECORD_BYTES is not judged.
        """
        if self._multiline:
            return
        start = self._first_line_start
        if start is None or self.pos - start > RECORD_BYTES:
            self._multiline, self._first_line_start = True, None
            return
        first_line = self.data[start : self.pos]
        if not _is_open_start(first_line):
            raise _Broken("not valid JSON, and the line ends inside a value", self.pos)
        offset = 1
        while True:
            end = self.data.find(b"\n", self.pos + offset)
            if end < 0 and not self.eof and len(self.data) - self.pos <= RECORD_BYTES:
                self._pull()
                continue
            end = len(self.data) if end < 0 else end
            following = self.data[self.pos + offset : end]
            if following.strip() or end >= len(self.data):
                break
            offset = end + 1 - self.pos
        if not _is_open_start(first_line + b"\n" + following):
            raise _Broken("not valid JSON, and the line ends inside a value", self.pos)
        self._multiline, self._first_line_start = True, None

    # --- after a break ----------------------------------------------------------------------

    def _after_break(self, broken):
        """(what to report, go on?) when the structure breaks at `broken.position`.

        Within a one-line value the rest of the line is skipped and reading goes on at the next
        line; a multi-line document cannot be trusted past a break, so reading stops.
        """
        self.mark = None
        line = self.line_at(broken.position)
        if self._multiline:
            self.pos = len(self.data)
            reason = (
                f"not a valid JSON document from here on ({broken.reason}; the value began on "
                f"line {self._value_line}), so the rest of the input is not read. JSON Lines "
                "must hold one record per line (jq -c)"
            )
            return Damage(line, reason, fatal=True), False
        self._skip_to_next_line(broken.position)
        if self._container:
            reason = (
                f"the records cannot be told apart from here on ({broken.reason}), so the rest "
                "of the line is skipped"
            )
            return Damage(line, reason, fatal=False), True
        return (self._value_line, 0, InvalidJson(broken.reason)), True

    def _after_truncation(self):
        self.mark = None
        self.pos = len(self.data)
        if self._multiline or self._container:
            reason = (
                "not a valid JSON document: the input ends inside the value that began on line "
                f"{self._value_line}"
            )
            return Damage(self.line_at(len(self.data)), reason, fatal=True)
        return self._value_line, 0, InvalidJson("the input ends before the record is complete")

    def _skip_to_next_line(self, position):
        self.pos = position
        while True:
            end = self.data.find(b"\n", self.pos)
            if end >= 0:
                self.pos = end + 1
                return
            self.pos = len(self.data)
            if not self._pull():
                return


def _is_open_start(text):
    """Does `text` read as the beginning of a JSON value (complete, or cut at its end)?"""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as error:
        return error.msg == _END_OF_DATA or _is_value_error(error.msg)
    return True
