"""Real ``crossroads serve`` processes, a private redis-server and a private PostgreSQL
cluster, for the multi-process tests. Everything started here is stopped by its own pid."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import httpx
from harness import ADMIN_TOKEN

CLI = str(Path(sys.executable).with_name("crossroads"))
ACCOUNT = "local"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def wait_until(check: Any, deadline: float, what: str, step: float = 0.02) -> Any:
    """Poll ``check()`` until it returns a truthy value; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(step)
    raise AssertionError(f"{what}: not within {deadline} s (last: {last!r})")


class Gateway:
    """``crossroads serve`` in its own process group."""

    def __init__(self, env: dict[str, str], data_dir: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        full = dict(os.environ)
        full.update({"CROSSROADS_ADMIN_TOKEN": ADMIN_TOKEN}, **env)
        self.log_path = data_dir / f"serve-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [CLI, "serve", "--port", str(self.port), "--data-dir", str(data_dir),
             "--workers", str(workers)], env=full, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.http = httpx.Client(base_url=self.url, timeout=10)
        wait_until(self._healthy, 30, f"gateway on port {self.port} to start")

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"crossroads serve exited: {self.log_path.read_text()[-2000:]}")
        return self.http.get("/healthz").status_code == 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, f"/client/v4/accounts/{ACCOUNT}/ai-gateway{path}",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, **kw)

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get("/healthz").json()
        return data

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def chat_body(model: str = "openai/gpt-4o-mini") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


CHAT_HEADERS = {"Authorization": "Bearer sk-callers-own-key",
                "cf-aig-authorization": f"Bearer {ADMIN_TOKEN}"}


def chat_path(gateway: str = "default") -> str:
    return f"/v1/{ACCOUNT}/{gateway}/compat/chat/completions"


class RedisServer:
    """A private redis-server on its own port (never the shared one), killable mid-test."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        wait_until(lambda: redis.Redis(port=self.port, socket_timeout=0.5).ping(), 10,
                   "private redis-server")
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class PostgresCluster:
    """A throwaway PostgreSQL cluster under /tmp (initdb as the postgres user), own port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="crossroads-pg-"))
        self.data = self.dir / "data"
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bindir:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = bindir[-1]
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run(self.as_postgres + [str(self.bin / args[0]), *args[1:]], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def init(self) -> PostgresCluster:
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self.start()

    def start(self) -> PostgresCluster:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")
        return self

    def kill(self) -> None:
        """Stop at once, as a crash would (immediate mode: no checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def remove(self) -> None:
        try:
            self.kill()
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Result(NamedTuple):
    status: int
    headers: dict[str, str]
    target: str


async def drive(targets: list[str], n: int, concurrency: int, *, path: str | None = None,
                model: str = "openai/gpt-4o-mini",
                after: dict[int, Callable[[], None]] | None = None) -> list[Result]:
    """Send ``n`` chat requests round-robin over ``targets`` (base URLs), at most
    ``concurrency`` at a time. ``after[k]`` runs (in a thread) once ``k`` have completed.
    (aiohttp, not httpx: httpx's pool costs more CPU than the gateways at 500 connections.)"""
    path = path or chat_path()
    gate = asyncio.Semaphore(concurrency)
    done = 0
    results: list[Result] = []
    connector = aiohttp.TCPConnector(limit=concurrency + 10)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        async def one(i: int) -> None:
            nonlocal done
            target = targets[i % len(targets)]
            async with gate:
                async with client.post(target + path, json=chat_body(model),
                                       headers=CHAT_HEADERS) as r:
                    await r.read()
                    results.append(Result(r.status, {k.lower(): v for k, v in r.headers.items()},
                                          target))
            done += 1
            if after and done in after:
                await asyncio.to_thread(after[done])

        await asyncio.gather(*[one(i) for i in range(n)])
    return results


def statuses(results: list[Result]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in results:
        out[r.status] = out.get(r.status, 0) + 1
    return out
