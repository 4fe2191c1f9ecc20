#!/usr/bin/python3
"""Reads the counters bench/malloccount.so keeps in its MALLOCCOUNT_FILE
(the layout is in the comment at the top of bench/malloccount.c), and
asks it for backtraces.

    bench/malloccount.py FILE                  the counters now
    bench/malloccount.py FILE --trace 50 [--buckets main,libevent,openssl,libc]
        the next 50 allocations of those buckets (all: no --buckets) each
        append a backtrace to the MALLOCCOUNT_TRACE file of the process

Version 1 of the file, native byte order (x86-64: little-endian):

    offset  size  field
         0     8  magic "MALLOCC1"
         8     4  version (1)
        12     4  nbuckets: buckets in use
        16     8  pid of the last process that mapped it
        24     8  frees
        32     8  refreshes: walks of the loaded objects
        40     8  trace_left (signed), written by a reader
        48     8  trace_mask (bucket bits; 0: all), written by a reader
        56    72  reserved
       128   256  names: 16 bytes each, NUL-padded, 16 of them
       384   128  allocs: u64 per bucket
       512   128  bytes: u64 per bucket (asked for)
"""

import argparse
import json
import os
import struct
import sys

HEAD = struct.Struct("=8sIIQQQqQ")
MAGIC = b"MALLOCC1"
MAXBUCKETS = 16
NAMES_AT, ALLOCS_AT, BYTES_AT, SIZE = 128, 384, 512, 640
TRACE_AT = 40


def read(path):
    """The counters: {pid, frees, refreshes, allocs: {bucket: n}, bytes:
    {bucket: n}, total}; None if the file is missing or not one of ours."""
    try:
        with open(path, "rb") as f:
            raw = f.read(SIZE)
    except OSError:
        return None
    if len(raw) < SIZE or raw[:8] != MAGIC:
        return None
    magic, version, nb, pid, frees, refreshes, _, _ = HEAD.unpack_from(raw)
    if version != 1 or not 0 < nb <= MAXBUCKETS:
        return None
    names = [raw[NAMES_AT + 16 * i:NAMES_AT + 16 * (i + 1)].split(b"\0")[0].decode()
             for i in range(nb)]
    allocs = struct.unpack_from("=%dQ" % nb, raw, ALLOCS_AT)
    nbytes = struct.unpack_from("=%dQ" % nb, raw, BYTES_AT)
    return {"pid": pid, "frees": frees, "refreshes": refreshes,
            "allocs": dict(zip(names, allocs)), "bytes": dict(zip(names, nbytes)),
            "total": sum(allocs)}


def delta(a, b):
    """What happened between two read()s of one process: {by_object,
    bytes_by_object, total, frees}; None if either is missing or they are
    of different processes."""
    if not a or not b or a["pid"] != b["pid"]:
        return None
    by = {k: b["allocs"][k] - a["allocs"].get(k, 0) for k in b["allocs"]}
    nb = {k: b["bytes"][k] - a["bytes"].get(k, 0) for k in b["bytes"]}
    return {"by_object": by, "bytes_by_object": nb, "total": sum(by.values()),
            "frees": b["frees"] - a["frees"]}


def sanitized(binary):
    """Whether a program links the sanitizers' runtime (it must come first
    in the list of objects: no LD_PRELOAD of ours then)."""
    try:
        with open(binary, "rb") as f:
            return b"libasan.so" in f.read()
    except OSError:
        return False


def trace(path, n, buckets=None):
    """Ask for the next n allocations' backtraces (of these bucket names,
    or all); the process writes them to its MALLOCCOUNT_TRACE file."""
    cur = read(path)
    if cur is None:
        raise ValueError("%s: no malloccount file" % path)
    names = list(cur["allocs"])
    mask = 0
    for b in buckets or []:
        if b not in names:
            raise ValueError("unknown bucket %r (known: %s)" % (b, ", ".join(names)))
        mask |= 1 << names.index(b)
    fd = os.open(path, os.O_RDWR)
    try:
        # The mask first: the counter starts tracing once trace_left > 0.
        os.pwrite(fd, struct.pack("=Q", mask), TRACE_AT + 8)
        os.pwrite(fd, struct.pack("=q", n), TRACE_AT)
    finally:
        os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--trace", type=int, metavar="N")
    ap.add_argument("--buckets", help="comma-separated bucket names (default: all)")
    a = ap.parse_args()
    if a.trace is not None:
        trace(a.file, a.trace, [b for b in (a.buckets or "").split(",") if b])
    cur = read(a.file)
    if cur is None:
        sys.exit("%s: no malloccount file" % a.file)
    json.dump(cur, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
