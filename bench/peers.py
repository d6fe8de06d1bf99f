"""Peer gateways measured for comparison: Portkey's gateway (npm) and the
LiteLLM proxy (PyPI). Installs are cached under bench/.peers-node and
bench/.peers-venv (git-ignored), so reruns skip them. Each is pinned to the
server core and pointed at the stand-in's JSON OpenAI endpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import procs
from systems import Context, Unavailable
from workload import OPENAI_MODEL, Target, chat_body

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / ".peers-node"
VENV_DIR = HERE / ".peers-venv"
PORTKEY_PKG = os.environ.get("BENCH_PORTKEY_PKG", "@portkey-ai/gateway@1.15.2")
LITELLM_PKG = os.environ.get("BENCH_LITELLM_PKG", "litellm[proxy]==1.108.7")
PORTKEY_DIR = NODE_DIR / "node_modules" / "@portkey-ai" / "gateway"
PORTKEY_ENTRY = PORTKEY_DIR / "build" / "start-server.js"
LITELLM_BIN = VENV_DIR / "bin" / "litellm"


def _run(argv: list[str], cwd: Path, timeout: float, log: Path) -> None:
    with open(log, "ab") as out:
        try:
            proc = subprocess.run(
                argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Unavailable(f"`{' '.join(argv[:3])}` failed: {e}") from e
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-2:]
        raise Unavailable(f"`{' '.join(argv[:3])}` exited {proc.returncode}: {' | '.join(tail)}")


def _installed_marker(directory: Path) -> Path:
    return directory / ".bench-installed"


def ensure_portkey(log_dir: Path) -> None:
    marker = _installed_marker(NODE_DIR)
    if PORTKEY_ENTRY.exists() and marker.exists() and marker.read_text() == PORTKEY_PKG:
        return
    if not shutil.which("node") or not shutil.which("npm"):
        raise Unavailable("node/npm not installed")
    NODE_DIR.mkdir(exist_ok=True)
    (NODE_DIR / "package.json").write_text(
        json.dumps({"name": "crossroads-bench-peers", "private": True}) + "\n"
    )
    _run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", PORTKEY_PKG],
        NODE_DIR, 600, log_dir / "install-portkey.log",
    )  # fmt: skip
    if not PORTKEY_ENTRY.exists():
        raise Unavailable(f"npm install did not produce {PORTKEY_ENTRY.relative_to(HERE)}")
    marker.write_text(PORTKEY_PKG)


def ensure_litellm(log_dir: Path) -> None:
    marker = _installed_marker(VENV_DIR)
    if LITELLM_BIN.exists() and marker.exists() and marker.read_text() == LITELLM_PKG:
        return
    log = log_dir / "install-litellm.log"
    if not (VENV_DIR / "bin" / "python").exists():
        python = shutil.which("python3") or "python3"
        _run([python, "-m", "venv", str(VENV_DIR)], HERE, 300, log)
    pip = str(VENV_DIR / "bin" / "pip")
    _run([pip, "install", "--quiet", "--disable-pip-version-check", LITELLM_PKG], HERE, 900, log)
    if not LITELLM_BIN.exists():
        raise Unavailable("pip install did not produce bench/.peers-venv/bin/litellm")
    marker.write_text(LITELLM_PKG)


def install_all(ctx: Context) -> None:
    """Install (or confirm cached) peers before any measurement; failures are
    remembered in ctx.unavailable and reported as "not measured"."""
    for name, ensure in (("portkey", ensure_portkey), ("litellm", ensure_litellm)):
        t0 = time.monotonic()
        try:
            ensure(ctx.log_dir)
        except Unavailable as e:
            ctx.unavailable[name] = str(e)
            print(f"  {name}: install failed: {e}", flush=True)
        else:
            print(f"  {name}: ready ({time.monotonic() - t0:.0f} s)", flush=True)


def _check(ctx: Context, name: str) -> None:
    if name in ctx.unavailable:
        raise Unavailable(ctx.unavailable[name])


def start_portkey(ctx: Context) -> procs.Server:
    _check(ctx, "portkey")
    port = procs.free_port()
    argv = ["node", str(PORTKEY_ENTRY), f"--port={port}", "--headless"]
    env = {"NODE_ENV": "production"}
    server = procs.start_server("portkey", argv, port, ctx.log_dir, env=env, cwd=str(PORTKEY_DIR))
    if not procs.wait_port(port, 60, server.proc):
        server.stop()
        raise Unavailable(f"portkey gateway did not listen: {server.log_tail(4)}")
    return server


def portkey_targets(ctx: Context, server: procs.Server) -> dict[str, Target]:
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"{ctx.standin}/json/v1",
        "Authorization": "Bearer sk-bench",
    }
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
    return {"openai-json": Target(url, chat_body("gpt-4o-mini"), headers)}


def litellm_config(ctx: Context) -> str:
    return f"""model_list:
  - model_name: {OPENAI_MODEL}
    litellm_params:
      model: {OPENAI_MODEL}
      api_base: {ctx.standin}/json/v1
      api_key: sk-bench
litellm_settings:
  set_verbose: false
  json_logs: false
  turn_off_message_logging: true
  drop_params: true
  telemetry: false
general_settings:
  disable_spend_logs: true
  disable_error_logs: true
"""


def start_litellm(ctx: Context) -> procs.Server:
    _check(ctx, "litellm")
    config = ctx.tmp / "litellm.yaml"
    config.write_text(litellm_config(ctx))
    port = procs.free_port()
    argv = [
        str(LITELLM_BIN), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
        "--num_workers", "1",
    ]  # fmt: skip
    master_key = "sk-bench-" + os.urandom(16).hex()  # auth on, like the gateway's
    env = {
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
    }
    server = procs.start_server("litellm", argv, port, ctx.log_dir, env=env, cwd=str(ctx.tmp))
    if not procs.wait_port(port, 120, server.proc):
        server.stop()
        raise Unavailable(f"litellm proxy did not listen: {server.log_tail(4)}")
    server.extra["master_key"] = master_key
    return server


def litellm_targets(server: procs.Server) -> dict[str, Target]:
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {server.extra['master_key']}"}
    return {"openai-json": Target(url, chat_body(OPENAI_MODEL), headers)}
