"""Paired rounds: the floor and Crossroads measured in turns, for ratios that a drifting
machine does not skew.

The main runs measure each system in its own minutes of the benchmark; on a shared VM the
speed of the core moves over minutes (the same code's CPU per request has moved by 3-20 %
between runs), and a ratio of two measurements taken minutes apart carries that drift.
Here both servers run at once on the server core (one loaded at a time), and each round
measures the floor, Crossroads' compat endpoint and its dynamic route one after the other
(c=16, short runs); each round gives its own ratios, and the report takes their median.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import procs
import systems
from measure import Settings, judge, measured_run, wait_quiet
from systems import Context

CONNS = 16
# a fixed piece of pure-Python work timed on the server core before each run: how fast the
# core is at that moment (a shared VM's speed drifts; the guest sees no steal time for it)
CALIBRATION = ("import time; t = time.perf_counter(); sum(range(3_000_000)); "
               "print((time.perf_counter() - t) * 1000)")
FLOOR = ("floor", "openai-json")  # the leg every ratio is taken against
LEGS = (FLOOR, ("crossroads", "openai-json"), ("crossroads", "dynamic-route"))


def run_paired(ctx: Context, cfg: Settings, rounds: int, duration: float,
               log=print) -> list[dict]:
    """One row per leg per round: system, scenario, round, rps, cpu_us_per_req, status."""
    log(f"== paired rounds: floor and crossroads in turns ({rounds} x {len(LEGS)} runs of "
        f"{duration:g} s at c={CONNS}, core {procs.SERVER_CORE})", flush=True)
    servers: list[procs.Server] = []
    rows: list[dict] = []
    try:
        floor = systems.start_floor(ctx)
        servers.append(floor)
        gateway = systems.start_crossroads(ctx, "crossroads-paired", stream=False)
        servers.append(gateway)
        systems.create_route(gateway)
        targets = {("floor", "openai-json"): (floor, systems.floor_targets(floor)["openai-json"])}
        crossroads = systems.crossroads_targets(gateway)
        for scenario in ("openai-json", "dynamic-route"):
            targets[("crossroads", scenario)] = (gateway, crossroads[scenario])
    except Exception as e:  # Unavailable, or a set-up step that broke: no server left behind
        log(f"  unavailable: {e}", flush=True)
        for server in servers:
            server.stop()
        return failed_rows(str(e))
    short = replace(cfg, duration=duration, warmup=min(cfg.warmup, 1.0))
    try:
        for r in range(1, rounds + 1):
            for leg in LEGS:
                server, target = targets[leg]
                row = {"system": leg[0], "scenario": leg[1], "round": r}
                wait_quiet(cfg, log)
                row["calibration_ms"] = calibrate()
                try:
                    res = measured_run(server, target, {"conns": CONNS}, short)
                except Exception as e:  # a broken run must not stop the benchmark
                    row["status"] = f"failed: load generator: {e}"[:300]
                    rows.append(row)
                    continue
                row["status"], _ = judge(res, target)
                row.update({k: res.get(k) for k in ("rps", "cpu_us_per_req", "p50_ms",
                                                     "p99_ms", "other_cpu_core0_pct")})
                log(f"  round {r} {leg[0]:<11} {leg[1]:<14} {row.get('rps') or 0:>9.1f} req/s"
                    f"  cpu {row.get('cpu_us_per_req') or 0:7.1f} us/req  core speed "
                    f"{row['calibration_ms'] or 0:5.1f} ms  {row['status'][:60]}", flush=True)
                rows.append(row)
    finally:
        for server in servers:
            server.stop()
    return rows


def calibrate() -> float | None:
    """Milliseconds the calibration work took on the server core (None if it could not run)."""
    try:
        out = subprocess.run(["taskset", "-c", procs.SERVER_CORE, sys.executable, "-c",
                              CALIBRATION], capture_output=True, text=True, timeout=30)
        return round(float(out.stdout.strip()), 1)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def ratios(rows: list[dict], leg: tuple[str, str], field: str) -> list[float]:
    """``leg``'s ``field`` over the floor's, round by round (rounds where either run failed
    are left out)."""
    by_round: dict[int, dict[tuple[str, str], dict]] = {}
    for row in rows:
        if row.get("status") == "ok":
            by_round.setdefault(row["round"], {})[(row["system"], row["scenario"])] = row
    out = []
    for legs in by_round.values():
        floor, mine = legs.get(FLOOR), legs.get(leg)
        if floor and mine and floor.get(field) and mine.get(field):
            out.append(round(mine[field] / floor[field], 3))
    return out


def failed_rows(reason: str) -> list[dict]:
    """What the report shows when the paired rounds could not run at all."""
    return [{"system": s, "scenario": sc, "round": 0, "status": f"failed: {reason}"[:300]}
            for s, sc in LEGS]
