"""A pytest fork server: the test command of a mutation run without paying for imports each time.

Most of a test run's time is importing pytest, panther_analysis_tool, panther_core and their
dependencies; none of that code is mutated. The server imports them once, then for every request
forks a child that runs ``pytest.main`` with the request's arguments in the request's directory,
writing to the client's own stdout and stderr (passed over the socket). The project's modules -
the rule, the helpers and the tests - are never imported by the server, so every child loads the
files as they are on disk at that moment, mutated or not.

    python mutation/forkserver.py serve SOCKET   # in the tree under test
    MUTATION_FORKSERVER=SOCKET python -I -S mutation/forkserver.py run PYTEST-ARGS...
                                                 # a test command: exits as pytest would

If the client is killed (cosmic-ray's timeout), the server kills the child it was running.
"""

import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import sys

PRELOAD = (
    "pytest",
    "_pytest.python",
    "_pytest.fixtures",
    "hypothesis",
    "yaml",
    "panther_analysis_tool.analysis_utils",
    "panther_core.rule",
    "panther_core.enriched_event",
    # The key-value store's client and its stand-ins (tests/conftest.py, test_address_history.py).
    "boto3",
    "botocore.config",
    "panther_detection_helpers.caching",
    "moto",
    "moto.core.botocore_stubber",
    "moto.dynamodb.models",
    "detection_replay.kv_store",
)
EXIT = struct.Struct("!i")
POLL_SECONDS = 0.01
SOCKET_VARIABLE = "MUTATION_FORKSERVER"


def _warm_aws_models():
    """Parse DynamoDB's service model once (boto3 caches it per session), offline."""
    import boto3  # noqa: PLC0415

    boto3.resource("dynamodb", region_name="us-east-1")


def serve(path):
    for name in PRELOAD:
        __import__(name)
    _warm_aws_models()
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    print(f"forkserver ready on {path}", flush=True)
    while True:
        connection, _ = listener.accept()
        with connection:
            handle(listener, connection)


def handle(listener, connection):
    message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 2)
    request = json.loads(message)
    child = os.fork()
    if child == 0:
        listener.close()
        connection.close()
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        os._exit(run_pytest(request))
    for fd in fds:
        os.close(fd)
    status = wait_unless_abandoned(child, connection)
    with contextlib.suppress(OSError):  # the client is gone: nobody to tell
        connection.sendall(EXIT.pack(status))


# The tests that state each mutated file's behaviour most directly. They run first, so a mutant
# is usually killed within a second (the run stops at the first failure); a survivor still runs
# every test of the command.
TESTS_FIRST = {
    "rules/aws_vpce_s3_external_ip.py": ["tests/test_rule.py", "tests/test_overrides.py"],
    "rules/aws_vpce_s3_external_ip_bulk_access.py": ["tests/test_bulk_rule.py"],
    "rules/aws_vpce_access_denied.py": ["tests/test_vpce_family.py"],
    "rules/aws_vpce_external_principal.py": ["tests/test_vpce_family.py"],
    "rules/aws_vpce_sensitive_api_calls.py": ["tests/test_vpce_family.py"],
    "rules/aws_vpce_many_secrets_read.py": ["tests/test_many_secrets_rule.py"],
    "global_helpers/vpce_family.py": ["tests/test_vpce_family.py", "tests/test_overrides.py"],
    "global_helpers/public_ip.py": ["tests/test_public_ip.py"],
    "global_helpers/cloudtrail_fields.py": ["tests/test_cloudtrail_fields.py"],
    "global_helpers/cloudtrail_context.py": ["tests/test_cloudtrail_context.py"],
    "global_helpers/ip_enrichment.py": ["tests/test_ip_enrichment.py"],
    "global_helpers/address_history.py": ["tests/test_address_history.py"],
}
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mutated_file(tree):
    """The file of TESTS_FIRST that differs from the repository's copy in this tree, if any."""
    for name in TESTS_FIRST:
        try:
            with (
                open(os.path.join(tree, name), "rb") as mine,
                open(os.path.join(REPOSITORY, name), "rb") as original,
            ):
                if mine.read() != original.read():
                    return name
        except OSError:
            continue
    return None


def relevant_first(args, tree):
    """The pytest arguments with the mutated file's own test files moved to the front."""
    first = TESTS_FIRST.get(mutated_file(tree), [])
    ahead = [arg for arg in first if arg in args]
    return ahead + [arg for arg in args if arg not in ahead]


def run_pytest(request):
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]
    request["args"] = relevant_first(request["args"], request["cwd"])
    sys.argv = ["pytest", *request["args"]]
    sys.dont_write_bytecode = True
    try:
        # Imported here: the client runs without site-packages. Preloaded, so this is free.
        import pytest  # noqa: PLC0415

        # Preloaded plugins cannot be assertion-rewritten; pytest warns, harmlessly.
        quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
        code = int(pytest.main([*quiet, *request["args"]]))
    except BaseException:  # any failure to run counts as a failed test run
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def wait_unless_abandoned(child, connection):
    """The child's exit status; the child is killed if the client goes away first."""
    with selectors.DefaultSelector() as selector:
        selector.register(connection, selectors.EVENT_READ)
        while True:
            done, status = os.waitpid(child, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                return code if code >= 0 else 128 - code
            if selector.select(timeout=POLL_SECONDS) and not connection.recv(1):
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                return 1


def run(path, args):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    request = json.dumps({"cwd": os.getcwd(), "args": args}).encode()
    socket.send_fds(client, [request], [1, 2])
    reply = b""
    while len(reply) < EXIT.size:
        chunk = client.recv(EXIT.size - len(reply))
        if not chunk:
            return 98
        reply += chunk
    return EXIT.unpack(reply)[0]


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "serve":
        serve(*rest)
    else:
        sys.exit(run(os.environ[SOCKET_VARIABLE], rest))
