"""Systems under test that live in this repository: the stand-in itself
(standin-direct), the floor proxy, and the Crossroads gateway (set up through
its CLI and management API). Each start function returns a procs.Server or
raises Unavailable with a one-line reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import procs
from workload import ANTHROPIC_MODEL, OPENAI_MODEL, Target, chat_body, route_elements

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CROSSROADS_BIN = REPO / ".venv" / "bin" / "crossroads"
GATEWAY = "default"


class Unavailable(Exception):
    """A system or scenario cannot be measured; str(exc) says why."""


@dataclass
class Context:
    tmp: Path  # scratch dir (deleted at the end)
    log_dir: Path  # server logs (kept with the results)
    standin_port: int
    unavailable: dict = field(default_factory=dict)  # system -> reason found during setup

    @property
    def standin(self) -> str:
        return f"http://127.0.0.1:{self.standin_port}"


# ---------------------------------------------------------------- standin-direct


def standin_targets(ctx: Context) -> dict[str, Target]:
    base = ctx.standin
    return {
        "openai-json": Target(f"{base}/json/v1/chat/completions", chat_body()),
        "openai-sse": Target(
            f"{base}/sse/v1/chat/completions", chat_body(stream=True), stream=True
        ),
    }


# ---------------------------------------------------------------- floor


def start_floor(ctx: Context, wrap: list[str] | None = None,
                start_timeout: float = 20) -> procs.Server:
    port = procs.free_port()
    argv = [
        sys.executable, str(HERE / "floor_proxy.py"), "--port", str(port),
        "--upstream", f"{ctx.standin}/json/v1", "--stream-upstream", f"{ctx.standin}/sse/v1",
    ]  # fmt: skip
    server = procs.start_server("floor", [*(wrap or []), *argv], port, ctx.log_dir)
    if not procs.wait_port(port, start_timeout, server.proc):
        server.stop()
        raise Unavailable(f"floor proxy did not start: {server.log_tail()}")
    return server


def floor_targets(server: procs.Server) -> dict[str, Target]:
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
    return {
        "openai-json": Target(url, chat_body()),
        "openai-sse": Target(url, chat_body(stream=True), stream=True),
    }


# ---------------------------------------------------------------- crossroads


def _cli(args: list[str], env: dict, timeout: float = 60) -> str:
    try:
        proc = subprocess.run(
            [str(CROSSROADS_BIN), *args],
            capture_output=True, text=True, env=env, timeout=timeout, cwd=str(REPO),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"`crossroads {' '.join(args[:2])}` failed: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        raise Unavailable(
            f"`crossroads {' '.join(args[:2])}` exited {proc.returncode}: {' | '.join(tail)[-400:]}"
        )
    return proc.stdout


def start_crossroads(ctx: Context, name: str, stream: bool, workers: int = 1,
                     redis_url: str | None = None, wrap: list[str] | None = None,
                     start_timeout: float = 45, extra_env: dict | None = None) -> procs.Server:
    """Fresh data dir, a gateway token and stored provider keys via the CLI, then
    `crossroads serve`; upstreams point at the stand-in (JSON or SSE answers).
    With ``redis_url``: counters in Redis and a gateway rate limit (never reached) on, so
    every request makes its atomic Redis round trip. ``wrap`` prefixes the server's command
    (bench/icount.py runs it under valgrind)."""
    if not CROSSROADS_BIN.exists():
        raise Unavailable(f"{CROSSROADS_BIN.relative_to(REPO)} not found (package not installed)")
    data_dir = ctx.tmp / f"data-{name}"
    data_dir.mkdir(parents=True, exist_ok=True)
    admin = "bench-admin-" + os.urandom(8).hex()
    kind = "sse" if stream else "json"
    env = dict(os.environ)
    env.update(
        CROSSROADS_ADMIN_TOKEN=admin,
        CROSSROADS_DATA_DIR=str(data_dir),
        CROSSROADS_UPSTREAM_OPENAI=f"{ctx.standin}/{kind}/v1",
        CROSSROADS_UPSTREAM_ANTHROPIC=f"{ctx.standin}/{kind}",
    )
    dd = ["--data-dir", str(data_dir)]
    if redis_url:
        if subprocess.run(["redis-cli", "-u", redis_url, "ping"], capture_output=True,
                          text=True).stdout.strip() != "PONG":
            raise Unavailable(f"no Redis answering at {redis_url}")
        env["CROSSROADS_REDIS_URL"] = redis_url
        _cli(["gateways", "update", GATEWAY, *dd, "--set", "rate_limiting_limit=1000000000",
              "--set", "rate_limiting_interval=60"], env)
    out = _cli(["tokens", "create", *dd, "--gateway", GATEWAY], env)
    lines = [line.strip() for line in out.strip().splitlines() if line.strip()]
    if not lines:
        raise Unavailable("`crossroads tokens create` printed no token")
    token = lines[-1]
    for provider in ("openai", "anthropic"):
        _cli(
            ["keys", "add", *dd, "--gateway", GATEWAY, "--provider", provider,
             "--secret", "sk-bench"],
            env,
        )  # fmt: skip
    port = procs.free_port()
    argv = [
        str(CROSSROADS_BIN), "serve", "--host", "127.0.0.1", "--port", str(port),
        *dd, "--workers", str(workers),
    ]  # fmt: skip
    cores = procs.SERVER_CORE if workers == 1 else "0,1"
    env.update(extra_env or {})
    server = procs.start_server(name, [*(wrap or []), *argv], port, ctx.log_dir, cores=cores,
                                env=env, cwd=str(REPO))
    if not procs.wait_port(port, start_timeout, server.proc):
        server.stop()
        raise Unavailable(f"`crossroads serve` did not listen on :{port}: {server.log_tail(4)}")
    server.extra.update(token=token, admin=admin, stream=stream)
    return server


def crossroads_targets(server: procs.Server) -> dict[str, Target]:
    url = f"http://127.0.0.1:{server.port}/v1/local/{GATEWAY}/compat/chat/completions"
    auth = {"cf-aig-authorization": f"Bearer {server.extra['token']}"}
    stream = bool(server.extra.get("stream"))
    sfx = "sse" if stream else "json"
    targets = {
        f"openai-{sfx}": Target(url, chat_body(OPENAI_MODEL, stream), dict(auth), stream=stream),
        f"anthropic-{sfx}": Target(
            url, chat_body(ANTHROPIC_MODEL, stream), dict(auth), stream=stream
        ),
    }
    if not stream:
        meta = json.dumps({"tier": "pro", "user": "u1"}, separators=(",", ":"))
        targets["dynamic-route"] = Target(
            url, chat_body("dynamic/bench"), {**auth, "cf-aig-metadata": meta}
        )
        targets["cache-hit"] = Target(
            url,
            chat_body(),
            {**auth, "cf-aig-cache-ttl": "3600"},
            count_header="cf-aig-cache-status",
        )
    return targets


def create_route(server: procs.Server) -> str:
    """Create (and if needed deploy) the `bench` dynamic route; returns a note."""
    base = f"http://127.0.0.1:{server.port}/client/v4/accounts/local/ai-gateway/gateways/{GATEWAY}"
    headers = {
        "Authorization": f"Bearer {server.extra['admin']}",
        "Content-Type": "application/json",
    }
    body = json.dumps({"name": "bench", "elements": route_elements()}).encode()
    status, _, raw = procs.http_post(f"{base}/routes", body, headers)
    if not 200 <= status < 300:
        raise Unavailable(f"POST /routes -> HTTP {status}: {raw[:200].decode(errors='replace')}")
    try:
        doc = json.loads(raw)
        route = doc.get("result", doc)
        route_id = route["id"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise Unavailable(f"POST /routes answer has no result.id: {raw[:200]!r}") from e
    if (route.get("deployment") or {}).get("version_id"):
        return "route created (deployed on create)"
    version_id = (route.get("version") or {}).get("version_id")
    if not version_id:
        status, _, raw = procs.http_get(f"{base}/routes/{route_id}/versions", headers)
        try:
            listing = json.loads(raw).get("result")
            if isinstance(listing, dict):
                listing = listing.get("versions") or listing.get("data")
            version_id = listing[0].get("version_id") or listing[0].get("id")
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "route created; no version found to deploy (assuming live)"
    dep = json.dumps({"version_id": version_id, "comment": "bench"}).encode()
    status, _, raw = procs.http_post(f"{base}/routes/{route_id}/deployments", dep, headers)
    if not 200 <= status < 300:
        return f"route created; deploy -> HTTP {status} (assuming live)"
    return "route created and deployed"
