"""Load generators: wrk (closed loop, N connections) with bench/wrk_post.lua, and
the fixed-rate generator bench/fixedrate.py (open loop, latency measured from
the intended send time). Both run pinned to the load core."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from procs import LOAD_CORE, pinned, run_boosted

HERE = Path(__file__).resolve().parent
LUA = HERE / "wrk_post.lua"


def _write_inputs(tmp: Path, body: bytes, headers: dict) -> tuple[Path, Path]:
    fd, body_path = tempfile.mkstemp(prefix="body-", suffix=".json", dir=tmp)
    os.write(fd, body)
    os.close(fd)
    fd, hdr_path = tempfile.mkstemp(prefix="headers-", suffix=".txt", dir=tmp)
    os.write(fd, "".join(f"{k}: {v}\n" for k, v in headers.items()).encode())
    os.close(fd)
    return Path(body_path), Path(hdr_path)


def parse_wrk(stdout: str) -> dict:
    raw: dict = {}
    for line in stdout.splitlines():
        if not line.startswith("BENCH "):
            continue
        _, key, *rest = line.split(" ", 2)
        value = rest[0] if rest else ""
        if key == "first_body":
            raw[key] = value
            continue
        try:
            raw[key] = float(value)
        except ValueError:
            raw[key] = value
    if "requests" not in raw:
        raise RuntimeError("wrk printed no BENCH summary: " + stdout[-400:])
    duration = raw["duration_us"] / 1e6
    errors = sum(
        int(raw.get(k, 0)) for k in ("err_connect", "err_read", "err_write", "err_timeout")
    )
    return {
        "requests": int(raw["requests"]),
        "ok": int(raw.get("ok", 0)),
        "non2xx": int(raw.get("non2xx", 0)),
        "socket_errors": errors,
        "timeouts": int(raw.get("err_timeout", 0)),
        "duration_s": round(duration, 3),
        "rps": round(raw.get("ok", 0) / duration, 1) if duration else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "p999_ms": raw["p999_us"] / 1000,
        "max_ms": raw["lat_max_us"] / 1000,
        "mean_ms": raw["lat_mean_us"] / 1000,
        "first_status": int(raw.get("first_status", 0)),
        "first_body": str(raw.get("first_body", ""))[:300],
        "hdr_hit": int(raw.get("hdr_hit", 0)),
        "hdr_miss": int(raw.get("hdr_miss", 0)),
        "hdr_none": int(raw.get("hdr_none", 0)),
    }


def run_wrk(
    url: str,
    body: bytes,
    headers: dict,
    conns: int,
    duration: float,
    tmp: Path,
    count_header: str | None = None,
    timeout_s: int = 10,
) -> dict:
    body_path, hdr_path = _write_inputs(tmp, body, headers)
    env = dict(os.environ)
    env.update(
        BENCH_BODY_FILE=str(body_path),
        BENCH_HEADERS_FILE=str(hdr_path),
        BENCH_COUNT_HEADER=(count_header or "").lower(),
    )
    argv = pinned(LOAD_CORE, [
        "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s}s", "--latency", "-s", str(LUA), url,
    ])  # fmt: skip
    proc = run_boosted(argv, timeout=duration + timeout_s + 30, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return parse_wrk(proc.stdout)


def run_fixed_rate(
    url: str,
    body: bytes,
    headers: dict,
    rate: float,
    duration: float,
    tmp: Path,
    conns: int = 64,
) -> dict:
    body_path, hdr_path = _write_inputs(tmp, body, headers)
    argv = pinned(LOAD_CORE, [
        sys.executable, str(HERE / "fixedrate.py"),
        "--url", url, "--body-file", str(body_path), "--headers-file", str(hdr_path),
        "--rate", str(rate), "--duration", str(duration), "--connections", str(conns),
    ])  # fmt: skip
    proc = run_boosted(argv, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"fixedrate exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
