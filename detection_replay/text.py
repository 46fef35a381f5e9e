"""Text taken from logs and file names, made safe to print and to encode.

A log field or a file name can hold anything: newlines and terminal escape sequences that would
forge report lines or recolour the terminal, and (for file names) bytes that are not UTF-8.
"""

import os
import sys

# Line and paragraph separators and the bidirectional overrides reorder or break lines on
# terminals just as control characters do.
_UNSAFE_FORMAT_CHARACTERS = "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _escape(code):
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


# Unicode's control characters (category Cc) are exactly C0, DEL and C1.
_CONTROL_CHARACTERS = [*range(0x20), *range(0x7F, 0xA0)]
_ESCAPES = {
    code: _escape(code) for code in [*_CONTROL_CHARACTERS, *map(ord, _UNSAFE_FORMAT_CHARACTERS)]
}


def printable(text):
    """`text` with control characters, line separators and bidi overrides escaped as \\xNN."""
    return str(text).translate(_ESCAPES)


def display_path(path):
    """A path as valid Unicode text: bytes that are not UTF-8 shown as \\xNN escapes."""
    path = os.fsdecode(path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path


def say(message):
    """One line on stderr; nothing when stderr is closed or broken (the exit status still tells)."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(f"{message}\n")
        stream.flush()
    except (OSError, ValueError):
        pass
