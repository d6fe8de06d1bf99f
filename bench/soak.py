"""Soak test (`make soak`): Crossroads under a fixed request rate for
SOAK_SECONDS (default 600), RSS of its process tree sampled every 5 s.
Reports RSS growth after the warm-up (target < 5 %) and max RSS (< 150 MiB).

Environment: SOAK_SECONDS (600), SOAK_RATE (req/s, 300), SOAK_WARMUP (s, 60, at
most a sixth of the run), SOAK_TARGET (crossroads | floor; floor checks the
harness itself). Writes bench/results/soak-<timestamp>/{soak.md,soak.json,soak.png}.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import procs
import systems
from loadgen import HERE, LOAD_CORE, _write_inputs
from standin import start_standin
from systems import Context, Unavailable

GROWTH_TARGET, MAX_RSS_TARGET_MIB, SAMPLE_EVERY = 5.0, 150.0, 5.0


def start_target(kind: str, ctx: Context):
    if kind == "floor":
        server = systems.start_floor(ctx)
        return server, systems.floor_targets(server)["openai-json"]
    server = systems.start_crossroads(ctx, "crossroads-soak", stream=False)
    return server, systems.crossroads_targets(server)["openai-json"]


def sample_loop(server, gen: subprocess.Popen, seconds: float) -> list[tuple[float, float]]:
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    next_at = t0
    while gen.poll() is None and time.monotonic() - t0 < seconds + 60:
        now = time.monotonic()
        if now >= next_at:
            samples.append((round(now - t0, 1), round(procs.tree_rss_kib(server.pid) / 1024, 2)))
            next_at += SAMPLE_EVERY
        if not server.alive():
            break
        time.sleep(min(0.5, max(0.0, next_at - time.monotonic())))
    samples.append(
        (round(time.monotonic() - t0, 1), round(procs.tree_rss_kib(server.pid) / 1024, 2))
    )
    return samples


def analyse(samples, warmup: float) -> dict:
    after = [s for s in samples if s[0] >= warmup] or samples[-1:]
    base, final = after[0][1], samples[-1][1]
    growth = (final - base) / base * 100 if base else 0.0
    peak = max(s[1] for s in samples)
    return {
        "rss_after_warmup_mib": base,
        "rss_final_mib": final,
        "growth_pct": round(growth, 2),
        "max_rss_mib": peak,
        "growth_pass": growth < GROWTH_TARGET,
        "max_rss_pass": peak < MAX_RSS_TARGET_MIB,
    }


def write_outputs(out: Path, data: dict) -> None:
    (out / "soak.json").write_text(json.dumps(data, indent=2) + "\n")
    a, lg = data["analysis"], data["load"]
    mark = {True: "PASS", False: "FAIL"}
    lines = [
        f"# Crossroads soak — {data['started']}",
        "",
        f"Target `{data['target']}` on core 0 at {data['rate']:g} req/s for {data['seconds']:g} s "
        f"(nginx stand-in and the fixed-rate generator on core 1). RSS of the server process "
        f"tree sampled every {SAMPLE_EVERY:g} s; growth measured from the first sample after "
        f"the {data['warmup']:g} s warm-up to the end.",
        "",
        "| check | target | value | result |",
        "|---|---|---:|---|",
        f"| RSS growth after warm-up | < {GROWTH_TARGET:g} % | {a['growth_pct']:.2f} % "
        f"({a['rss_after_warmup_mib']:.1f} → {a['rss_final_mib']:.1f} MiB) "
        f"| {mark[a['growth_pass']]} |",
        f"| max RSS | < {MAX_RSS_TARGET_MIB:g} MiB | {a['max_rss_mib']:.1f} MiB | "
        f"{mark[a['max_rss_pass']]} |",
        "",
        f"Load: {lg.get('ok', 0):,} ok, {lg.get('non2xx', 0):,} non-2xx, "
        f"{lg.get('socket_errors', 0):,} socket errors; achieved {lg.get('rps', 0):,.1f} req/s; "
        f"latency p50 {lg.get('p50_ms', 0):.2f} ms, p99 {lg.get('p99_ms', 0):.2f} ms, "
        f"max {lg.get('max_ms', 0):.2f} ms. CPU {data.get('cpu_us_per_req', 0):.1f} µs/request.",
        "",
        "![RSS over time](soak.png)",
        "",
    ]
    (out / "soak.md").write_text("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    xs, ys = zip(*data["samples"], strict=True)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(xs, ys, marker=".")
    ax.axvline(data["warmup"], color="grey", linestyle="--", label="end of warm-up")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS MiB (process tree)")
    ax.set_title(f"Soak: {data['target']} at {data['rate']:g} req/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=110)
    plt.close(fig)


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    rate = float(os.environ.get("SOAK_RATE", "300"))
    warmup = min(float(os.environ.get("SOAK_WARMUP", "60")), seconds / 6)
    kind = os.environ.get("SOAK_TARGET", "crossroads")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = HERE / "results" / f"soak-{stamp}"
    (out / "logs").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="crossroads-soak-"))
    ctx = Context(tmp=tmp, log_dir=out / "logs", standin_port=procs.free_port())
    nginx = start_standin(tmp, ctx.standin_port, ctx.log_dir)
    server = gen = None
    try:
        try:
            server, target = start_target(kind, ctx)
        except Unavailable as e:
            print(f"soak: {kind} unavailable: {e}", file=sys.stderr)
            (out / "soak.md").write_text(f"# Crossroads soak\n\nfailed: {e}\n")
            return 1
        body_path, hdr_path = _write_inputs(tmp, target.body, target.headers)
        argv = procs.pinned(LOAD_CORE, [
            sys.executable, str(HERE / "fixedrate.py"),
            "--url", target.url, "--body-file", str(body_path), "--headers-file", str(hdr_path),
            "--rate", str(rate), "--duration", str(seconds), "--warmup", "0",
        ])  # fmt: skip
        print(f"soak: {kind} at {rate:g} req/s for {seconds:g} s (RSS every {SAMPLE_EVERY:g} s)")
        cpu0 = procs.tree_cpu_seconds(server.pid)
        gen = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        procs.boost(gen.pid)
        samples = sample_loop(server, gen, seconds)
        cpu1 = procs.tree_cpu_seconds(server.pid)
        stdout, stderr = gen.communicate(timeout=120)
        try:
            load = json.loads(stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            load = {"error": stderr.strip()[-400:]}
    finally:
        if gen is not None and gen.poll() is None:
            procs.stop_process(gen, grace=2)
        if server is not None:
            server.stop()
        nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    data = {
        "started": stamp, "target": kind, "rate": rate, "seconds": seconds, "warmup": warmup,
        "samples": samples, "analysis": analyse(samples, warmup), "load": load,
        "cpu_us_per_req": (cpu1 - cpu0) / max(1, load.get("sent", 1)) * 1e6,
    }  # fmt: skip
    write_outputs(out, data)
    latest = HERE / "results" / "soak-latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(out.name)
    print((out / "soak.md").read_text())
    return 0


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)  # stop our servers even when killed
    sys.exit(main())
