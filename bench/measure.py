"""Run one scenario against one running system: probe it once, then for each
connection count a warm-up and a measured wrk run (plus optionally a fixed-rate
run), reading the server tree's CPU time and RSS around each measured run.
Never raises for a failing system: failures become rows with a status."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import loadgen
import procs
from workload import Target


@dataclass
class Settings:
    duration: float = 10.0
    warmup: float = 2.0
    rate: float = 500.0
    tmp: Path = Path("/tmp")
    quiet_budget: float = 90.0  # total seconds we may wait for other load to go away


def wait_quiet(cfg: Settings, log=print) -> float | None:
    """Before a run (servers idle), wait while the machine stays busy (other processes,
    or a server still working off a backlog),
    spending at most cfg.quiet_budget seconds over the whole benchmark. Returns the
    last measured foreign load in % of one core, or None if not measured."""
    load = None
    while True:
        busy0, t0 = procs.core_busy_seconds(), time.monotonic()
        time.sleep(0.5)
        busy1, wall = procs.core_busy_seconds(), time.monotonic() - t0
        load = sum(busy1.values()) - sum(busy0.values())
        load = load / wall * 100
        if load < QUIET_PCT or cfg.quiet_budget <= 0:
            return load
        log(f"  machine busy between runs ({load:.0f}% of a core); waiting for it to calm down")
        time.sleep(min(3.0, cfg.quiet_budget))
        cfg.quiet_budget -= 3.5


def base_row(system: str, scenario: str, load: str, target: Target | None) -> dict:
    return {
        "system": system,
        "scenario": scenario,
        "load": load,
        "stream": bool(target and target.stream),
        "status": "ok",
    }


def failed_rows(system: str, scenario: str, loads: list[str], reason: str) -> list[dict]:
    rows = []
    for load in loads:
        row = base_row(system, scenario, load, None)
        row["status"] = reason if reason.startswith("not measured") else f"failed: {reason}"
        rows.append(row)
    return rows


def probe(target: Target) -> str | None:
    """One request; returns a failure reason or None."""
    headers = {"Content-Type": "application/json", **target.headers}
    status, _, body = procs.http_post(target.url, target.body, headers, timeout=15)
    snippet = body[:160].decode(errors="replace").replace("\n", " ")
    if status == 0:
        return f"probe: {snippet}"
    if not 200 <= status < 300:
        return f"probe: HTTP {status}: {snippet}"
    if target.stream and b"data:" not in body:
        return f"probe: streaming answer has no SSE data lines: {snippet}"
    return None


def judge(result: dict, target: Target) -> tuple[str, str]:
    """(status, note) for one load run."""
    requests = result["requests"]
    notes = []
    if target.count_header:
        hits = result.get("hdr_hit", 0)
        ratio = hits / requests if requests else 0.0
        result["cache_hit_ratio"] = round(ratio, 4)
        notes.append(f"{target.count_header}: HIT {hits}/{requests}")
    first = f"first HTTP {result['first_status']}: {result['first_body'][:120]}"
    if result["ok"] == 0:
        if result["non2xx"]:
            return f"failed: no 2xx responses ({first})", "; ".join(notes)
        return f"failed: no responses ({result['socket_errors']} socket errors)", ""
    if result["non2xx"]:
        return f"failed: {result['non2xx']}/{requests} non-2xx ({first})", "; ".join(notes)
    if result["socket_errors"] > 0.01 * max(1, requests):
        return f"failed: {result['socket_errors']} socket errors/timeouts", "; ".join(notes)
    if result["socket_errors"]:
        notes.append(f"{result['socket_errors']} socket errors")
    if target.count_header and result.get("cache_hit_ratio", 0) < 0.9:
        return f"failed: cache hit ratio {result['cache_hit_ratio']:.2f}", "; ".join(notes)
    return "ok", "; ".join(notes)


def settled_cpu(server: procs.Server, step: float = 0.2, quiet: float = 0.02,
                limit: float = 30.0) -> float:
    """The server tree's CPU seconds once it has gone quiet (under ``quiet`` of a core over
    ``step`` s): work a run leaves behind, such as log rows still being written, is charged
    to that run, and the warm-up's leftovers are not charged to the measurement."""
    prev = procs.tree_cpu_seconds(server.pid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(step)
        cur = procs.tree_cpu_seconds(server.pid)
        if cur - prev < quiet * step:
            return cur
        prev = cur
    return prev


def measured_run(server: procs.Server, target: Target, load: dict, cfg: Settings) -> dict:
    """Warm up, then measure; returns the loadgen result plus CPU/RSS."""
    if "rate" in load:
        cpu0 = settled_cpu(server)
        busy0, t0 = procs.core_busy_seconds(), time.monotonic()
        res = loadgen.run_fixed_rate(
            target.url, target.body, target.headers, load["rate"], cfg.duration, cfg.tmp
        )
        cpu1 = settled_cpu(server)
        served = res.get("sent", res["requests"])
    else:
        conns = load["conns"]
        loadgen.run_wrk(
            target.url, target.body, target.headers, conns, cfg.warmup, cfg.tmp,
            count_header=target.count_header,
        )  # fmt: skip
        cpu0 = settled_cpu(server)
        busy0, t0 = procs.core_busy_seconds(), time.monotonic()
        res = loadgen.run_wrk(
            target.url, target.body, target.headers, conns, cfg.duration, cfg.tmp,
            count_header=target.count_header,
        )  # fmt: skip
        cpu1 = settled_cpu(server)
        served = res["requests"]
    busy1, wall = procs.core_busy_seconds(), time.monotonic() - t0
    core = procs.SERVER_CORE
    if wall > 0 and core in busy0 and core in busy1:
        # CPU time on the server core that the server tree did not use: other processes
        # on the machine (e.g. a test run) competing with the measurement.
        own = (cpu1 - cpu0) if server.cores == core else 0.0
        res["other_cpu_core0_pct"] = round(
            max(0.0, busy1[core] - busy0[core] - own) / wall * 100, 1
        )
    res["cpu_s"] = round(cpu1 - cpu0, 3)
    res["cpu_us_per_req"] = round((cpu1 - cpu0) / served * 1e6, 1) if served else None
    res["rss_mib"] = round(procs.tree_rss_kib(server.pid) / 1024, 1)
    return res


QUIET_PCT = 15.0  # idle machine: other processes use less than this % of one core
NOISY_PCT = 5.0  # flag a run when other processes used more of the server core than this

KEEP = (
    "rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms", "requests", "ok",
    "non2xx", "socket_errors", "duration_s", "cpu_s", "cpu_us_per_req", "rss_mib",
    "cache_hit_ratio", "target_rate", "late_wakeups", "other_cpu_core0_pct",
)  # fmt: skip


def load_label(load: dict) -> str:
    return f"rate={load['rate']:g}/s" if "rate" in load else f"c={load['conns']}"


def run_scenario(
    server: procs.Server,
    system: str,
    scenario: str,
    target: Target,
    loads: list[dict],
    cfg: Settings,
    log=print,
) -> list[dict]:
    labels = [load_label(load) for load in loads]
    if not server.alive():
        return failed_rows(system, scenario, labels, f"server exited: {server.log_tail(3)}")
    reason = probe(target)
    if reason:
        log(f"  {system}/{scenario}: {reason}")
        return failed_rows(system, scenario, labels, reason)
    rows = []
    for load, label in zip(loads, labels, strict=True):
        row = base_row(system, scenario, label, target)
        if "conns" in load:
            row["conns"] = load["conns"]
        if not server.alive():
            row["status"] = f"failed: server exited: {server.log_tail(3)}"
            rows.append(row)
            continue
        wait_quiet(cfg, log)
        try:
            res = measured_run(server, target, load, cfg)
        except Exception as e:  # a broken load run must not stop the benchmark
            row["status"] = f"failed: load generator: {e}"[:300]
            rows.append(row)
            continue
        row["status"], row["note"] = judge(res, target)
        other = res.get("other_cpu_core0_pct")
        if other is not None and other > NOISY_PCT and "," not in server.cores:
            noisy = f"noisy: other processes used {other:.0f}% of core 0"
            row["note"] = "; ".join(x for x in (row["note"], noisy) if x)
        row.update({k: res[k] for k in KEEP if k in res})
        log(
            f"  {system:<22} {scenario:<15} {label:<12} {row.get('rps', 0):>9.1f} req/s "
            f"p50 {row.get('p50_ms', 0):7.2f} ms  p99 {row.get('p99_ms', 0):7.2f} ms  "
            f"cpu {row.get('cpu_us_per_req') or 0:7.1f} us/req  "
            f"rss {row.get('rss_mib', 0):6.1f} MiB"
            f"  {row['status'][:80]}"
        )
        rows.append(row)
    return rows
