#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets into fuzz/seeds/TARGET/.

Run from anywhere: `python3 fuzz/seeds.py`. The seeds are small (a few KB in all); the golden
indexes themselves are embedded in the targets (`fuzz/src/lib.rs`), not copied here.
"""
import gzip
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
SEEDS = os.path.join(HERE, "seeds")

# The order of GOLDENS in fuzz/src/lib.rs.
GOLDENS = [
    "golden-v1-ntlm", "golden-v1-sha1", "golden-v2-login", "golden-v2-ntlm", "golden-v2-pair",
    "golden-v2-sha1", "golden-v3-login", "golden-v3-ntlm-compact", "golden-v3-ntlm",
    "golden-v3-pair", "golden-v3-sha1-compact", "golden-v3-sha1-none", "golden-v3-sha1",
    "golden-v4-login", "golden-v4-ntlm-compact", "golden-v4-ntlm", "golden-v4-pair",
    "golden-v4-sha1-compact", "golden-v4-sha1-none", "golden-v4-sha1-part", "golden-v4-sha1",
]


def golden(name):
    with gzip.open(os.path.join(DATA, name + ".ldx.gz")) as f:
        return f.read()


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def dump_lines():
    sha1 = b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
    ntlm = b"8846F7EAEE8FB117AD06BDD830B7586C"
    hashes = [
        (0, sha1 + b":42\n" + sha1.lower() + b"\r\n\xef\xbb\xbf" + sha1 + b":18446744073709551615\n\n  " + sha1 + b"\t\n"),
        (0, sha1 + b":3\n" + b"0" * 40 + b":1\n" + b"F" * 40 + b":999999999999999999\n" + sha1 + b":"),
        (1, ntlm + b":7\r\n" + ntlm.lower() + b"\n" + ntlm + b":12 \n"),
        (0, ntlm + b":7\n"),
        (0x20, b"7" * 40 + b":2\n" + b"1" * 40 + b":1\n"),
    ]
    for i, (selector, text) in enumerate(hashes):
        write("dump_lines", f"hashes-{i}", bytes([selector]) + text)
    passwords = b"password\n123456\r\n\xef\xbb\xbfhunter2\nP@ss:word\n\xff\xfe\n\n" + sha1 + b"\n"
    for kind in (0, 1):
        write("dump_lines", f"passwords-{kind}", bytes([kind | 2]) + passwords)
    combo = b"alice:password\nbob@example.com:pa:ss\n:empty\nnocolon\nhttps://site.com:bob:pw\ncarol:\n"
    ulp = (
        b"https://accounts.google.com:alice@example.com:hunter2\n"
        b"https://host:8443/login:user:pa:ss\n"
        b"https://site.com/login|bob|pa ss|word\n"
        b"https://site.com/ bob my pass\n"
        b"android://xyz==@com.app/:carol:letmein\n"
        b"http://[::1]:8080/x:root:toor\n"
        b"site.com|dave|qwerty\n"
        b"site.com:dave:pa:ss\n"
        b"bob@example.com:password\n"
        b"alice:pa:ss\n"
        b"https://host:12345:pa:ss\n"
        b"https://host:1234:pw\n"
        b"192.168.0.1:8080:admin:admin\n"
        b"https://site.com/login | bob | pw\n"
        b" https://site.com:bob:pw\n"
        b"https://[::1\n"
        b"\xc3\x89LODIE@Exemple.fr:mot de passe\n"
    )
    for key in (0, 1, 2):
        write("dump_lines", f"combo-{key}", bytes([4 | key << 3]) + combo)
        write("dump_lines", f"ulp-{key}", bytes([6 | key << 3]) + ulp)
    write("dump_lines", "ulp-ntlm", bytes([7]) + ulp)
    # Range bodies (bit 6), as a downloader tree's files and a range server's answers hold
    # them: CRLF, LF, padding, a BOM, lower case, no final line end; and a few malformed ones.
    bodies = [
        (0x40, b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:3\r\n0000000000000000000000000000000000A:0\r\n"
               b"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:18446744073709551615"),
        (0x40, b"\xef\xbb\xbf1e4c9b93f3f0682250b6cf8331b7ee68fd8:12\n\n 0000000000000000000000000000000000A:1 \n"),
        (0x41, b"6F7EAEE8FB117AD06BDD830B7586C:7\r\n6F7EAEE8FB117AD06BDD830B7586C:0\r\n"
               b"00000000000000000000000000001:00000000000000000001\r\n"),
        (0x42, b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:1\r\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:2\r\n"
               b"0000000000000000000000000000000000A\r\n"),
        (0x43, b"<html><body>Not found</body></html>\n"),
        (0x44, b"6F7EAEE8FB117AD06BDD830B7586C:1\r\n"),
    ]
    for i, (selector, body) in enumerate(bodies):
        write("dump_lines", f"range-body-{i}", bytes([selector]) + body)


def index_bytes():
    for name in ("golden-v3-sha1-none", "golden-v4-sha1-none"):
        data = golden(name)
        write("index_bytes", name, b"\x00" + data)
        write("index_bytes", name + "-verify", b"\x05" + data)
    # The header and section table of every other golden, cut there, with the length and
    # checksums made to match: they reach the checks of the sections' places.
    for name in GOLDENS:
        if name.endswith("-none"):
            continue
        data = bytearray(golden(name))
        version = struct.unpack_from("<I", data, 8)[0]
        end = 64 + (9 if version >= 4 else 8) * 32
        head = data[:end]
        struct.pack_into("<Q", head, 48, len(head))
        struct.pack_into("<I", head, 60, zlib.crc32(bytes(head[:60])))
        write("index_bytes", name + "-head", b"\x00" + bytes(head))


def index_patch():
    for g, name in enumerate(GOLDENS):
        # The golden as it is (all fix-ups, verify on), then a patch in each section.
        write("index_patch", f"{name}", bytes([g, 0x1F, 0x01, 0xFF]))
        patches = b""
        for region in range(3, 12):
            patches += bytes([region | 0x80, 0x10, 0x00, 0x00, 0x01])
        write("index_patch", f"{name}-sections", bytes([g, 0x1F, 0x00]) + patches + b"\xff")
        # A count code raised in the first records, a directory offset moved.
        write(
            "index_patch",
            f"{name}-records",
            bytes([g, 0x1F, 0x00, 0x05, 0x00, 0x00, 0x00, 0xF0, 0x05, 0x12, 0x00, 0x00, 0xF0, 0xFF]),
        )
        write(
            "index_patch",
            f"{name}-dir",
            bytes([g, 0x1F, 0x00, 0xC3, 0x00, 0xA0, 0x01, 0x01, 0xFF]),
        )


def serve_request():
    requests = [
        b"GET /range/5BAA6",
        b"GET /range/5baa6?mode=ntlm\naccept-encoding: gzip, br;q=0.5",
        b"HEAD /range/8846F?mode=NTLM\nadd-padding: true",
        b"GET /range/00000?mode=login\nif-none-match: W/\"x\", *",
        b"GET /range/FFFFF?mode=pair&mode=ntlm\nif-modified-since: Mon, 30 Nov 2026 00:00:00 GMT",
        b"OPTIONS /range/12345",
        b"POST /range/12345",
        b"GET /range/5BAA",
        b"GET /range/5BAAG",
        b"GET /health",
        b"DELETE /metrics",
        b"GET /metrics",
        b"GET /",
        b"GET /range/ABCDE?mode=\nAdd-Padding: TRUE\naccept-encoding: gzip;q=0",
    ]
    for i, r in enumerate(requests):
        for server in (0, 1, 2):
            write("serve_request", f"request-{i}-{server}", bytes([server]) + r)


def serve_http1():
    requests = [
        b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
        b"GET /range/8846F?mode=ntlm HTTP/1.1\r\nHost: x\r\nAdd-Padding: true\r\n\r\n",
        b"HEAD /range/00000 HTTP/1.0\r\n\r\n",
        b"POST /range/5BAA6 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /range/5BAA6 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        b"GET /range/5BAA6 HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n",
        b"GET /range/5BAA6 HTTP/1.1\r\nIf-None-Match: \"x\"\r\nX: \x00\xff\r\n\r\n",
        b"OPTIONS /range/5BAA6 HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    ]
    for i, r in enumerate(requests):
        write("serve_http1", f"request-{i}", b"\x00" + r)
    write("serve_http1", "partition", b"\x01" + requests[0])
    write("serve_http1", "no-sha1", b"\x02" + requests[0])


if __name__ == "__main__":
    shutil.rmtree(SEEDS, ignore_errors=True)
    dump_lines()
    index_bytes()
    index_patch()
    serve_request()
    serve_http1()
