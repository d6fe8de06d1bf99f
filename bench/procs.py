"""Process helpers for the benchmark: start servers pinned to a core, wait for
ports, stop them by process group, and read CPU time / RSS of a process tree
from /proc (no psutil needed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CORE = "0"  # systems under test
LOAD_CORE = "1"  # load generator + stand-in upstream
# Everything the benchmark runs gets a higher CPU priority (as root) so that other work on a
# shared machine (a test suite, a build) disturbs the measurement less; all systems alike.
# With autogroup scheduling (the default) nice only ranks processes within one session, so
# each process we start gets its own session and that session's autogroup is niced too.
NICE_LEVEL = os.environ.get("BENCH_NICE", "-10")
NICE = ["nice", "-n", NICE_LEVEL] if os.geteuid() == 0 else []


def pinned(cores: str, argv: list[str]) -> list[str]:
    return [*NICE, "taskset", "-c", cores, *argv]


def boost(pid: int) -> None:
    """Raise the autogroup priority of a session we created (best effort)."""
    if not NICE:
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(NICE_LEVEL)
    except OSError:
        pass


def run_boosted(argv: list[str], timeout: float, env: dict | None = None):
    """subprocess.run for a load generator: own session, boosted, always reaped."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    boost(proc.pid)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@dataclass
class Server:
    """A started server process (the root of a process tree, own session)."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    port: int
    cores: str = SERVER_CORE
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 8) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in lines[-n:])[-600:]

    def stop(self) -> None:
        stop_process(self.proc)


def start_server(
    name: str,
    argv: list[str],
    port: int,
    log_dir: Path,
    cores: str = SERVER_CORE,
    env: dict | None = None,
    cwd: str | None = None,
) -> Server:
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "ab")
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        pinned(cores, argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
    log.close()
    boost(proc.pid)
    return Server(name, proc, log_path, port, cores)


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group we created for `proc`, then SIGKILL it."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)  # leftover children, if any
        return
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _kill_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(entry))
    return children


def tree_pids(root: int) -> list[int]:
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_seconds(root: int) -> float:
    """utime+stime (all threads) summed over the live process tree."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2 :].split()
        total += int(rest[11]) + int(rest[12])  # fields 14, 15: utime, stime
    return total / CLK_TCK


def tree_rss_kib(root: int) -> int:
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def core_busy_seconds() -> dict[str, float]:
    """Busy (non-idle, non-iowait) CPU seconds per core since boot, from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                nums = [int(v) for v in vals]
                out[name[3:]] = (sum(nums[:8]) - nums[3] - nums[4]) / CLK_TCK
    return out


def http_post(url: str, body: bytes, headers: dict, timeout: float = 10.0):
    """One request (for probes/setup). Returns (status, headers, body bytes)."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers or {}), e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, {}, f"{type(e).__name__}: {e}".encode()


def http_get(url: str, headers: dict, timeout: float = 10.0):
    req = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers or {}), e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, {}, f"{type(e).__name__}: {e}".encode()
