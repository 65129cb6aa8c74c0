"""Drives the PyPI package hibp-downloader against a leakdex server.

Usage: python hibp_downloader_check.py BASE_URL DATA_DIR FIRST LAST HASH_TYPE EXPECTED_DIR [STATUS_LOG]

Downloads the prefixes FIRST..LAST, compares every stored file (gzip of the range body) with
EXPECTED_DIR/<PREFIX>.txt, then downloads again with the local cache disabled: the client sends
the ETags it stored, and the server must answer each with 304.

The client's own log goes to hibp-downloader-HASH_TYPE.log beside DATA_DIR, without colour, and
is printed only when the check fails.
"""

import atexit
import gzip
import logging
import sys
import urllib.request
from pathlib import Path

base_url, data_dir, first, last, hash_type, expected_dir = sys.argv[1:7]
# For a server without leakdex's /metrics (nginx serving an export): its access log of one
# status per line witnesses the 304s.
status_log = sys.argv[7] if len(sys.argv) > 7 else None

import hibp_downloader  # noqa: E402

# The client logs at INFO level to standard error, in colour, when it is imported (it reads
# --quiet from the command line only then). Keep that log in a plain file instead.
log_path = Path(data_dir).with_name(f"hibp-downloader-{hash_type}.log")
client_log = logging.getLogger(hibp_downloader.LOGGER_NAME)
for handler in list(client_log.handlers):
    client_log.removeHandler(handler)
log_file = logging.FileHandler(log_path, mode="w")
log_file.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s"))
client_log.addHandler(log_file)
client_log.propagate = False
succeeded = False


def show_log_on_failure():
    """On any failure (a wrong answer, an error from the client, an exception), print its log."""
    if not succeeded:
        log_file.flush()
        print(f"--- hibp-downloader's log ({log_path}):", file=sys.stderr)
        sys.stderr.write(log_path.read_text() if log_path.exists() else "(empty)\n")


atexit.register(show_log_on_failure)

hibp_downloader.PWNEDPASSWORDS_API_URL = base_url
from hibp_downloader.commands import hibp_download  # noqa: E402

hibp_download.PWNEDPASSWORDS_API_URL = base_url
from hibp_downloader.lib.app import invoke_app  # noqa: E402


def run(extra):
    sys.argv = [
        "hibp-downloader", "--data-path", data_dir, "--quiet", "download",
        "--hash-type", hash_type, "--first-hash", first, "--last-hash", last,
        "--processes", "1", "--http-max-retries", "1",
    ] + extra
    try:
        invoke_app()
    except SystemExit as e:
        if e.code not in (0, None):
            raise


def stored():
    out = {}
    for path in Path(data_dir, hash_type).rglob("*.gz"):
        out[path.name[:5].upper()] = path
    return out


run([])
files = stored()
passed = failed = 0
for prefix_value in range(int(first, 16), int(last, 16) + 1):
    prefix = f"{prefix_value:05X}"
    want = Path(expected_dir, f"{prefix}.txt").read_bytes()
    path = files.get(prefix)
    if path is None:
        print(f"hibp-downloader: {prefix} was not downloaded", file=sys.stderr)
        failed += 1
        continue
    got = gzip.decompress(path.read_bytes())
    if got != want:
        print(f"hibp-downloader: {prefix}: stored body differs from the server's", file=sys.stderr)
        failed += 1
    else:
        passed += 1


def not_modified_count():
    """304s the server has sent, from its Prometheus metrics (or the status log)."""
    if status_log:
        return sum(1 for line in open(status_log) if line.strip() == "304")
    text = urllib.request.urlopen(f"{base_url}/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith('leakdex_http_requests_total{route="range",status="304"}'):
            return int(line.split()[-1])
    return 0


# Again without the local cache: the client sends its ETags and must get a 304 for each.
# (hibp-downloader keeps its old metadata file on a 304, so the server's count is the witness.)
before = not_modified_count()
run(["--local-cache-ttl", "0"])
prefixes = int(last, 16) - int(first, 16) + 1
got_304 = not_modified_count() - before
if got_304 != prefixes:
    print(f"hibp-downloader: {got_304} answers of 304 to {prefixes} requests with ETags", file=sys.stderr)
    failed += 1
else:
    passed += 1
for prefix, path in stored().items():
    if gzip.decompress(path.read_bytes()) != Path(expected_dir, f"{prefix}.txt").read_bytes():
        print(f"hibp-downloader: {prefix}: changed after the ETag round", file=sys.stderr)
        failed += 1

print(f"hibp-downloader ({hash_type}): {passed} passed, {failed} failed")
succeeded = failed == 0 and passed > 0
sys.exit(0 if succeeded else 1)
