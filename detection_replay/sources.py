"""What an input is, for both listings: local paths (inputs.py) and s3:// URLs (s3_inputs.py).

The two listings share these and nothing else, so the package's imports run one way:
inputs imports s3_inputs, and both import this module, which imports neither.
"""

import os
from dataclasses import dataclass

STDIN_NAME = "-"
S3_SCHEME = "s3://"
# CloudTrail's digest files (integrity hashes, not events) live beside the logs:
# AWSLogs/[<org-id>/]<account>/CloudTrail-Digest/...
DIGEST_DIRECTORY = "CloudTrail-Digest"
AWS_LOGS_DIRECTORY = "AWSLogs"
DIGEST_REASON = "digest file"


class UnreadableInput(Exception):
    """An input that could not be read, or not to its end; the message says why."""


@dataclass(frozen=True)
class Source:
    """One input: a file path, or standard input when `path` is None.

    `skipped` says why an input found while walking a directory is not read (a named pipe, a
    CloudTrail digest file, an input already read, ...); `listing_error` why a directory could
    not be listed. `identity` is what makes two names one input (a file's device and inode, an
    object's bucket and key); None when there is nothing to read.
    """

    name: str
    path: str | None = None
    listing_error: str | None = None
    skipped: str | None = None
    # True for a CloudTrail digest file: counted, not reported as a problem.
    digest: bool = False
    identity: tuple | None = None

    @property
    def size(self):
        if self.path is None:
            return 0
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0


def is_digest_location(folders):
    """Whether a file in these folders (outermost first) is a CloudTrail digest file."""
    folders = list(folders)
    return (
        DIGEST_DIRECTORY in folders
        and AWS_LOGS_DIRECTORY in folders
        and folders.index(AWS_LOGS_DIRECTORY) < folders.index(DIGEST_DIRECTORY)
    )


class ReadOnce:
    """The inputs and folders one listing has handed out, so that none is read twice.

    An input named twice, a file named beside the directory holding it, overlapping s3://
    prefixes: the second time, the input is reported as skipped (naming the first) instead of
    being read again, which would count its records and matches twice.
    """

    def __init__(self):
        self._first_names = {}

    def earlier_name(self, identity, name):
        """The name `identity` was handed out under before, or None (it is taken now)."""
        if identity is None:
            return None
        earlier = self._first_names.get(identity)
        if earlier is None:
            self._first_names[identity] = name
        return earlier

    def forget(self, identity):
        """Hand `identity` out again (a folder that turned out to hold nothing)."""
        self._first_names.pop(identity, None)

    def repeated(self, source):
        """`source`, or a skipped stand-in when its input was handed out before."""
        earlier = self.earlier_name(source.identity, source.name)
        if earlier is None:
            return source
        return Source(source.name, skipped=repeat_reason(source.name, earlier))


def repeat_reason(name, earlier, kind="input"):
    """Why an input (or a folder: `kind`) found again is not read again."""
    done = "walked" if kind == "folder" else "read"
    if earlier == name:
        return f"named more than once, or inside a folder also named: {done} once"
    return f"the same {kind} as {earlier}: {done} once"
