"""Open-loop (fixed-rate) HTTP load generator.

Request i is due at t0 + i/rate whether or not earlier requests have finished
(up to --connections are in flight on the wire; the rest wait in the client
pool). Latency is measured from the *intended* send time, so a stall in the
server shows up as latency for every request that should have been sent during
it (no coordinated omission). Prints one JSON line with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time

import aiohttp


def percentile(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return 0.0
    k = max(0, math.ceil(p / 100 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def read_headers(path: str) -> dict:
    headers = {"Content-Type": "application/json"}
    with open(path) as f:
        for line in f:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip()] = v.strip()
    return headers


async def run(args) -> dict:
    with open(args.body_file, "rb") as f:
        body = f.read()
    headers = read_headers(args.headers_file)
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    lat: list[float] = []
    counts = {"ok": 0, "non2xx": 0, "socket_errors": 0, "first_status": 0, "first_body": ""}
    total = int(args.rate * args.duration)
    warm = int(args.rate * args.warmup)
    interval = 1.0 / args.rate

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(index: int, intended: float) -> None:
            try:
                async with session.post(args.url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError, OSError):
                if index >= warm:
                    counts["socket_errors"] += 1
                return
            if index < warm:
                return
            lat.append(time.perf_counter() - intended)
            if 200 <= status < 300:
                counts["ok"] += 1
            else:
                counts["non2xx"] += 1
                if not counts["first_status"]:
                    counts["first_status"] = status
                    counts["first_body"] = payload[:300].decode(errors="replace")

        tasks: set[asyncio.Task] = set()
        t0 = time.perf_counter() + 0.05
        i = 0
        late = 0
        while i < warm + total:
            now = time.perf_counter()
            due = t0 + i * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            if now - due > 0.005:
                late += 1
            while i < warm + total and t0 + i * interval <= now:
                task = asyncio.create_task(one(i, t0 + i * interval))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
        await asyncio.gather(*list(tasks))
        elapsed = time.perf_counter() - t0 - args.warmup

    lat.sort()
    ms = 1000.0
    return {
        "requests": counts["ok"] + counts["non2xx"],
        "sent": warm + total,
        "ok": counts["ok"],
        "non2xx": counts["non2xx"],
        "socket_errors": counts["socket_errors"],
        "timeouts": 0,
        "duration_s": round(elapsed, 3),
        "target_rate": args.rate,
        "rps": round(counts["ok"] / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": percentile(lat, 50) * ms,
        "p90_ms": percentile(lat, 90) * ms,
        "p99_ms": percentile(lat, 99) * ms,
        "p999_ms": percentile(lat, 99.9) * ms,
        "max_ms": (lat[-1] if lat else 0.0) * ms,
        "mean_ms": (sum(lat) / len(lat) if lat else 0.0) * ms,
        "first_status": counts["first_status"],
        "first_body": counts["first_body"],
        "late_wakeups": late,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--body-file", required=True)
    ap.add_argument("--headers-file", required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests per second")
    ap.add_argument("--duration", type=float, required=True, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds first")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    try:
        import uvloop
    except ImportError:
        print(json.dumps(asyncio.run(run(args))))
    else:
        print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
