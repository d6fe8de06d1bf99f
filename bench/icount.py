"""Instructions per request, counted by valgrind's callgrind: a measure of the gateway's own
cost that does not move with the noise of a shared machine (the same code, inputs and
settings count the same within a fraction of a percent, whatever else the machine does).

    make icount                 # or: .venv/bin/python bench/icount.py [--requests 500]

Each system runs under ``valgrind --tool=callgrind`` against the nginx stand-in; after a
warm-up the counters are zeroed (``callgrind_control -z``), N requests are sent one after
another on one keep-alive connection, and the counters are dumped (``callgrind_control -d``).
The count covers every thread of the process (the SQLite log writer included) but not the
kernel: syscalls cost the same for every system, so the ratios here are the user-space
share of the CPU ratios in the main benchmark.

Under valgrind a process runs ~50x slower, so work that runs on a timer rather than per
request would be charged ~50x too much to each request: Crossroads is started with its
config poll every 60 s (0.5 s by default) and its log flush interval at 8 s (0.2 s), which
keeps the log batches about as large as at full speed. Results go to stdout and
bench/results/icount-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import procs
import systems
from standin import start_standin
from systems import Context, Unavailable
from workload import Target

HERE = Path(__file__).resolve().parent
CROSSROADS_SCENARIOS = ("openai-json", "anthropic-json", "dynamic-route")
SLOW_ENV = {"CROSSROADS_CONFIG_POLL_INTERVAL": "60", "CROSSROADS_LOG_FLUSH_INTERVAL": "8"}


def callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--vgdb=yes"]


def count(server: procs.Server, target: Target, out: Path, n: int, warmup: int) -> int:
    """Instructions for ``n`` requests to ``target`` (after ``warmup`` uncounted ones)."""
    path = "/" + target.url.split("/", 3)[3]
    headers = {"content-type": "application/json", **target.headers}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)

    def send() -> None:
        conn.request("POST", path, target.body, headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise Unavailable(f"HTTP {resp.status}: {data[:200]!r}")

    for _ in range(warmup):
        send()
    # the warm-up's log batches are written (flush interval 8 s), so work done once per process
    # (e.g. compiling each size of the log writer's INSERT statements) is not charged to the
    # requests counted
    time.sleep(10)
    conn.close()  # idle past the server's keep-alive timeout: a new connection
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    send()  # connected before the count starts
    subprocess.run(["callgrind_control", "-z", str(server.pid)], capture_output=True,
                   check=True, timeout=120)
    for _ in range(n):
        send()
    time.sleep(10)  # the log batch of these requests is written (flush interval 8 s)
    subprocess.run(["callgrind_control", "-d", str(server.pid)], capture_output=True,
                   check=True, timeout=120)
    conn.close()
    dumps = sorted(out.parent.glob(out.name + ".*"), key=lambda p: p.stat().st_mtime)
    if not dumps:
        raise Unavailable("callgrind wrote no dump")
    found = re.search(r"^summary: (\d+)", dumps[-1].read_text(errors="replace"), re.M)
    if not found:
        raise Unavailable(f"no summary in {dumps[-1].name}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--only", default="",
                    help="comma-separated scenarios or systems to count (e.g. "
                         "openai-json,dynamic-route or crossroads); default: all")
    ap.add_argument("--keep", action="store_true",
                    help="keep callgrind's dumps (one per scenario) for callgrind_annotate "
                         "and print where they are")
    args = ap.parse_args()
    only = {x for x in args.only.split(",") if x}
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install valgrind")
    tmp = Path(tempfile.mkdtemp(prefix="crossroads-icount-"))
    log_dir = tmp / "logs"
    log_dir.mkdir()
    port = procs.free_port()
    standin = start_standin(tmp, port, log_dir)
    ctx = Context(tmp=tmp, log_dir=log_dir, standin_port=port)
    rows: list[dict] = []
    try:
        plan = [
            ("floor", lambda w: systems.start_floor(ctx, wrap=w, start_timeout=300),
             lambda s: {"openai-json": systems.floor_targets(s)["openai-json"]}),
            ("crossroads",
             lambda w: systems.start_crossroads(ctx, "crossroads", False, wrap=w,
                                                start_timeout=300, extra_env=SLOW_ENV),
             lambda s: _crossroads_targets(s)),
        ]
        for name, start, targets in plan:
            scenarios = ["openai-json"] if name == "floor" else list(CROSSROADS_SCENARIOS)
            if only and name not in only and not only.intersection(scenarios):
                continue
            out = tmp / f"{name}.callgrind"
            server = start(callgrind(out))
            try:
                for scenario, target in targets(server).items():
                    if only and name not in only and scenario not in only:
                        continue
                    total = count(server, target, out, args.requests, args.warmup)
                    rows.append({"system": name, "scenario": scenario,
                                 "instructions_per_request": round(total / args.requests)})
                    print(f"{name:12s} {scenario:15s} {total / args.requests:12,.0f} "
                          "instructions/request", flush=True)
            finally:
                server.stop()
    finally:
        standin.stop()
    floor = next((r["instructions_per_request"] for r in rows if r["system"] == "floor"), None)
    if floor:
        for r in rows:
            r["vs_floor"] = round(r["instructions_per_request"] / floor, 2)
            print(f"{r['system']:12s} {r['scenario']:15s} {r['vs_floor']:5.2f}x the floor")
    (HERE / "results").mkdir(exist_ok=True)
    dest = HERE / "results" / f"icount-{datetime.now():%Y%m%d-%H%M%S}.json"
    dest.write_text(json.dumps({"requests": args.requests, "rows": rows}, indent=1))
    print(f"written: {dest}")
    if args.keep:
        print(f"dumps kept in {tmp} (<system>.callgrind.<n>: scenario n in the order above)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def _crossroads_targets(server: procs.Server) -> dict[str, Target]:
    systems.create_route(server)
    t = systems.crossroads_targets(server)
    return {k: t[k] for k in CROSSROADS_SCENARIOS}


if __name__ == "__main__":
    main()
