"""Benchmark driver: starts the nginx stand-in, then each system under test in
turn (pinned to core 0), runs its scenarios, stops it, and writes
bench/results/<timestamp>/{results.json,report.md,report.png}.

Environment knobs (all optional):
  BENCH_DURATION  measured seconds per run (10)     BENCH_WARMUP  warm-up seconds (2)
  BENCH_CONNS     closed-loop connection counts ("1,16,64")
  BENCH_RATE      fixed-rate run, requests/s (500)  BENCH_ONLY    comma list of systems
  BENCH_BUDGET    seconds after which remaining systems are skipped (780)
  BENCH_QUIET_WAIT  total seconds to wait for other processes to calm down (90)
  BENCH_PAIRED_ROUNDS  rounds of floor / compat / dynamic route in turns (5; 0: none)
  BENCH_PAIRED_DURATION  measured seconds per paired run (4)
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import paired
import peers
import procs
import report
import systems
from measure import Settings, failed_rows, load_label, run_scenario
from standin import start_standin
from systems import Context, Unavailable

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


@dataclass
class Scenario:
    key: str  # e.g. "openai-json"
    conns: list[int]
    fixed_rate: bool = False
    prepare: Callable[[procs.Server], str] | None = None  # returns a note


@dataclass
class Instance:
    system: str  # label in the report
    start: Callable[[Context], procs.Server] | None  # None: the stand-in itself
    targets: Callable[[Context, procs.Server], dict]
    scenarios: list[Scenario] = field(default_factory=list)
    cores: str = procs.SERVER_CORE


def build_plan(conns: list[int]) -> list[Instance]:
    low = [c for c in conns if c <= 16] or conns[:1]
    mid = [c for c in conns if c >= 16] or conns[-1:]
    return [
        Instance("standin-direct", None, lambda ctx, s: systems.standin_targets(ctx),
                 [Scenario("openai-json", conns, True), Scenario("openai-sse", low)],
                 cores=procs.LOAD_CORE),
        Instance("floor", systems.start_floor, lambda ctx, s: systems.floor_targets(s),
                 [Scenario("openai-json", conns, True), Scenario("openai-sse", low)]),
        Instance("crossroads",
                 lambda ctx: systems.start_crossroads(ctx, "crossroads", stream=False),
                 lambda ctx, s: systems.crossroads_targets(s),
                 [Scenario("openai-json", conns, True), Scenario("anthropic-json", low),
                  Scenario("dynamic-route", low, prepare=systems.create_route),
                  Scenario("cache-hit", low)]),
        Instance("crossroads",
                 lambda ctx: systems.start_crossroads(ctx, "crossroads-sse", stream=True),
                 lambda ctx, s: systems.crossroads_targets(s),
                 [Scenario("openai-sse", low), Scenario("anthropic-sse", low[-1:])]),
        Instance("crossroads-w2",
                 lambda ctx: systems.start_crossroads(ctx, "crossroads-w2", False, workers=2),
                 lambda ctx, s: systems.crossroads_targets(s),
                 [Scenario("openai-json", mid)], cores="0,1"),
        Instance("crossroads-redis",
                 lambda ctx: systems.start_crossroads(ctx, "crossroads-redis", False,
                                                      redis_url="redis://127.0.0.1:6379/14"),
                 lambda ctx, s: systems.crossroads_targets(s),
                 [Scenario("openai-json", mid),
                  Scenario("dynamic-route", mid[:1], prepare=systems.create_route)]),
        Instance("portkey", peers.start_portkey, peers.portkey_targets,
                 [Scenario("openai-json", conns)]),
        Instance("litellm", peers.start_litellm, lambda ctx, s: peers.litellm_targets(s),
                 [Scenario("openai-json", conns)]),
    ]  # fmt: skip


def loads_for(sc: Scenario, cfg: Settings) -> list[dict]:
    loads = [{"conns": c} for c in sc.conns]
    if sc.fixed_rate and cfg.rate > 0:
        loads.append({"rate": cfg.rate})
    return loads


def run_instance(inst: Instance, ctx: Context, nginx: procs.Server, cfg: Settings) -> list[dict]:
    rows: list[dict] = []
    print(f"== {inst.system} (cores {inst.cores})", flush=True)
    server = nginx
    if inst.start is not None:
        try:
            server = inst.start(ctx)
        except Unavailable as e:
            print(f"  unavailable: {e}", flush=True)
            kind = "not measured" if inst.system in ("portkey", "litellm") else "failed"
            reason = f"not measured: {e}" if kind == "not measured" else str(e)
            for sc in inst.scenarios:
                labels = [load_label(x) for x in loads_for(sc, cfg)]
                rows += failed_rows(inst.system, sc.key, labels, reason)
            return rows
    try:
        time.sleep(0.5)
        targets = inst.targets(ctx, server)
        for sc in inst.scenarios:
            loads = loads_for(sc, cfg)
            labels = [load_label(x) for x in loads]
            target = targets.get(sc.key)
            if target is None:
                rows += failed_rows(inst.system, sc.key, labels, "no target for scenario")
                continue
            note = ""
            if sc.prepare is not None:
                try:
                    note = sc.prepare(server)
                except Unavailable as e:
                    print(f"  {sc.key}: setup failed: {e}", flush=True)
                    rows += failed_rows(inst.system, sc.key, labels, f"setup: {e}")
                    continue
            new = run_scenario(server, inst.system, sc.key, target, loads, cfg)
            for row in new:
                row["cores"] = inst.cores
                if note:
                    row["note"] = "; ".join(x for x in (row.get("note"), note) if x)
            rows += new
    finally:
        if server is not nginx:
            server.stop()
    return rows


def metadata(cfg: Settings) -> dict:
    def version(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "started": datetime.now().isoformat(timespec="seconds"),
        "commit": version(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"]),
        "host": {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release()},
        "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "-v"]),
        "python": sys.version.split()[0],
        "portkey_pkg": peers.PORTKEY_PKG,
        "litellm_pkg": peers.LITELLM_PKG,
        "settings": {"duration_s": cfg.duration, "warmup_s": cfg.warmup, "rate": cfg.rate},
        "pinning": {
            "systems": "core 0 (crossroads-w2: cores 0,1)",
            "load+standin": "core 1 (wrk -t1, nginx 1 worker)",
        },
    }


def main() -> int:
    env = os.environ
    cfg = Settings(
        duration=float(env.get("BENCH_DURATION", "10")),
        warmup=float(env.get("BENCH_WARMUP", "2")),
        rate=float(env.get("BENCH_RATE", "500")),
        quiet_budget=float(env.get("BENCH_QUIET_WAIT", "90")),
    )
    conns = [int(c) for c in env.get("BENCH_CONNS", "1,16,64").split(",") if c.strip()]
    only = {s.strip() for s in env.get("BENCH_ONLY", "").split(",") if s.strip()}
    budget = float(env.get("BENCH_BUDGET", "780"))
    t_start = time.monotonic()

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / stamp
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="crossroads-bench-"))
    cfg.tmp = tmp
    meta = metadata(cfg)
    ctx = Context(tmp=tmp, log_dir=log_dir, standin_port=procs.free_port())
    rows: list[dict] = []
    if not only or only & {"portkey", "litellm"}:
        print("== installing / checking peers", flush=True)
        peers.install_all(ctx)
    nginx = start_standin(tmp, ctx.standin_port, log_dir)
    interrupted = None
    paired_rows: list[dict] = []
    rounds = int(env.get("BENCH_PAIRED_ROUNDS", "5"))
    try:
        if rounds > 0 and (not only or "paired" in only):
            try:
                paired_rows = paired.run_paired(
                    ctx, cfg, rounds, float(env.get("BENCH_PAIRED_DURATION", "4")))
            except Exception as e:  # the systems' own runs still go ahead
                print(f"  paired rounds failed: {type(e).__name__}: {e}", flush=True)
                paired_rows = paired.failed_rows(f"{type(e).__name__}: {e}")
        for inst in build_plan(conns):
            if only and inst.system not in only:
                continue
            if time.monotonic() - t_start > budget:
                for sc in inst.scenarios:
                    labels = [load_label(x) for x in loads_for(sc, cfg)]
                    rows += failed_rows(inst.system, sc.key, labels, "not measured: time budget")
                continue
            rows += run_instance(inst, ctx, nginx, cfg)
    except (KeyboardInterrupt, SystemExit) as e:  # servers are stopped by the finally blocks
        interrupted = f"interrupted ({type(e).__name__}); partial results"
        print(f"bench: {interrupted}", flush=True)
    finally:
        nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    if interrupted:
        meta["interrupted"] = interrupted
    data = {"meta": meta, "rows": rows, "paired": paired_rows}
    data["summary"] = report.summarize(rows, paired_rows)
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    report.write(out, data)
    latest = RESULTS / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(stamp)
    print(f"report: {out / 'report.md'}  ({meta['elapsed_s']} s)", flush=True)
    return 130 if interrupted else 0


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)  # stop our servers even when killed
    sys.exit(main())
