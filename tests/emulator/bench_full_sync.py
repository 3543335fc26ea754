#!/usr/bin/env python3
"""Measure what a full sync costs the emulator.

    python3 tests/emulator/bench_full_sync.py [--numbers 1000000]
        [--seed-file FILE] [--page-size 5000] [--passes 2]

Generates a seed with make_seed.py (unless --seed-file is given), starts
the emulator with it, then fetches every page of the number table with
change tracking (Prefer: odata.track-changes, odata.maxpagesize) over one
keep-alive connection, following @odata.nextLink verbatim to the final
@odata.deltaLink. Prints seconds per pass and rows/s. The client side
(reading bytes, json.loads per page) is part of the figure, so the
emulator's own cost is lower still.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from launcher import Emulator  # noqa: E402


def full_sync(emu, token, entity_set, page_size, parse=True):
    conn = emu.connection(timeout=300)
    headers = {"Authorization": "Bearer " + token,
               "Accept": "application/json", "OData-Version": "4.0",
               "OData-MaxVersion": "4.0",
               "Prefer": "odata.track-changes, odata.maxpagesize=%d"
               % page_size}
    path = "/api/data/v9.2/%s?$select=inogic_phonenumber,inogic_optinstatus," \
        "_inogic_configurationid_value,statecode,modifiedon" % entity_set
    rows = pages = nbytes = 0
    t0 = time.perf_counter()
    while True:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit("HTTP %d: %r" % (resp.status, data[:300]))
        nbytes += len(data)
        pages += 1
        if parse:
            doc = json.loads(data)
            rows += len(doc["value"])
            link = doc.get("@odata.nextLink")
        else:       # only find the link: measures the emulator, not json
            rows += data.count(b'"@odata.etag"')
            at = data.rfind(b'"@odata.nextLink":"')
            link = json.loads(data[at + 18:-1]) if at > 0 else None
        if link is None:
            assert b"@odata.deltaLink" in data
            break
        path = link[len(emu.base_url):]
    conn.close()
    return time.perf_counter() - t0, rows, pages, nbytes


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return line.split(":", 1)[1].strip()
    return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--numbers", type=int, default=1000000)
    ap.add_argument("--configurations", type=int, default=10)
    ap.add_argument("--seed-file")
    ap.add_argument("--page-size", type=int, default=5000)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--no-parse", action="store_true",
                    help="do not json.loads pages (emulator cost only)")
    args = ap.parse_args()
    seed = args.seed_file
    tmp = None
    if seed is None:
        fd, tmp = tempfile.mkstemp(suffix=".json", prefix="dvemu-seed-")
        os.close(fd)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(HERE, "make_seed.py"),
                        "--configurations", str(args.configurations),
                        "--numbers", str(args.numbers), "-o", tmp],
                       check=True)
        print("make_seed: %d numbers in %.1f s"
              % (args.numbers, time.perf_counter() - t0))
        seed = tmp
    try:
        t0 = time.perf_counter()
        with Emulator(seed=seed, start_timeout=600) as emu:
            print("emulator start + seed load: %.1f s"
                  % (time.perf_counter() - t0))
            token = emu.token()
            for n in range(args.passes):
                secs, rows, pages, nbytes = full_sync(
                    emu, token, "inogic_optinoptoutnumbers", args.page_size,
                    parse=not args.no_parse)
                print("pass %d: %d rows in %d pages, %.1f MB, %.1f s "
                      "(%.0f rows/s)" % (n + 1, rows, pages, nbytes / 1e6,
                                         secs, rows / secs))
            print("emulator RSS: %s" % rss(emu.pid))
    finally:
        if tmp:
            os.unlink(tmp)


if __name__ == "__main__":
    main()
