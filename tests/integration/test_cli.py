"""The README's quickstart, as a new user runs it: `crossroads serve` as a real process and
the CLI commands against the same data directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from harness import StandinServer, free_socket
from standins.openai import STATE

CLI = str(Path(sys.executable).parent / "crossroads")
ROUTE = {"name": "support", "elements": [
    {"id": "start", "type": "start", "outputs": {"next": {"elementId": "plan"}}},
    {"id": "plan", "type": "conditional",
     "properties": {"conditions": {"metadata.plan": {"$eq": "paid"}}},
     "outputs": {"true": {"elementId": "big"}, "false": {"elementId": "small"}}},
    {"id": "big", "type": "model",
     "properties": {"provider": "openai", "model": "gpt-4o", "timeout": 30000, "retries": 1},
     "outputs": {"success": {"elementId": "end"}, "fallback": {"elementId": "small"}}},
    {"id": "small", "type": "model",
     "properties": {"provider": "openai", "model": "gpt-4o-mini", "timeout": 30000,
                    "retries": 2},
     "outputs": {"success": {"elementId": "end"}}},
    {"id": "end", "type": "end", "outputs": {}}]}


def cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def served(tmp_path: Path, openai_up: StandinServer):  # type: ignore[no-untyped-def]
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, CROSSROADS_UPSTREAM_OPENAI=openai_up.url + "/v1")
    env.pop("CROSSROADS_ADMIN_TOKEN", None)
    proc = subprocess.Popen([CLI, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise AssertionError("gateway did not start: " + (proc.stderr.read() if proc.stderr
                                                            else ""))
    yield url, tmp_path, env, proc
    proc.terminate()
    proc.wait(10)


def test_quickstart(served, openai_up: StandinServer) -> None:  # type: ignore[no-untyped-def]
    url, cwd, env, proc = served
    out = cli(cwd, env, "keys", "add", "--provider", "openai", "--secret", "sk-quickstart-1234")
    assert out.returncode == 0, out.stderr
    tok = cli(cwd, env, "tokens", "create")
    assert tok.returncode == 0, tok.stderr
    token = tok.stdout.strip().splitlines()[-1]
    assert token.startswith("cxr_")
    body = {"model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "What is Cloudflare?"}]}
    r = None
    for _ in range(100):  # the running server sees the CLI's changes within its poll interval
        r = httpx.post(url + "/v1/local/default/compat/chat/completions", json=body,
                       headers={"cf-aig-authorization": f"Bearer {token}"})
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert r is not None and r.status_code == 200, r.text if r else None
    assert openai_up.app[STATE].calls[-1]["headers"]["Authorization"] == \
        "Bearer sk-quickstart-1234"
    (cwd / "support.json").write_text(json.dumps(ROUTE))
    saved = cli(cwd, env, "routes", "save", "support.json")
    assert saved.returncode == 0 and "deployed v1" in saved.stdout, saved.stderr
    explained = cli(cwd, env, "routes", "explain", "support", "--metadata", '{"plan": "paid"}')
    assert explained.returncode == 0, explained.stderr
    assert json.loads(explained.stdout)["path"] == ["start", "plan", "big", "end"]
    for _ in range(100):
        r = httpx.post(url + "/v1/local/default/compat/chat/completions",
                       json=dict(body, model="dynamic/support"),
                       headers={"cf-aig-authorization": f"Bearer {token}",
                                "cf-aig-metadata": '{"plan": "paid"}'})
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert r.status_code == 200 and r.headers["cf-aig-model"] == "gpt-4o"
    time.sleep(0.5)  # the batch writer flushes every 0.2 s
    logs = cli(cwd, env, "logs")
    assert logs.returncode == 0 and "gpt-4o-mini" in logs.stdout and "support" in logs.stdout
    assert "sk-quickstart-1234" not in logs.stdout
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert "admin token" in err.lower()
    assert "sk-quickstart-1234" not in err


def test_routes_versions_diff_rollback(tmp_path: Path) -> None:
    env = dict(os.environ)
    (tmp_path / "r.json").write_text(json.dumps(ROUTE))
    assert cli(tmp_path, env, "routes", "save", "r.json").returncode == 0
    v2 = json.loads(json.dumps(ROUTE))
    v2["elements"][1]["properties"]["conditions"]["metadata.plan"]["$eq"] = "pro"
    (tmp_path / "r2.json").write_text(json.dumps(v2))
    saved = cli(tmp_path, env, "routes", "save", "r2.json")
    assert "saved v2 (not deployed" in saved.stdout
    diff = cli(tmp_path, env, "routes", "diff", "support", "1", "2")
    assert '"paid" → "pro"' in diff.stdout
    assert "deployed v2" in cli(tmp_path, env, "routes", "deploy", "support", "2").stdout
    shown = json.loads(cli(tmp_path, env, "routes", "show", "support").stdout)
    assert shown["version"] == 2
    assert "rolled back support to v1" in cli(tmp_path, env, "routes", "rollback",
                                              "support").stdout
    assert json.loads(cli(tmp_path, env, "routes", "show", "support").stdout)["version"] == 1
    bad = json.loads(json.dumps(ROUTE))
    bad["elements"][2]["properties"]["retries"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    v = cli(tmp_path, env, "routes", "validate", "bad.json")
    assert v.returncode == 1 and 'element "big"' in v.stderr + v.stdout


def test_gateways_tokens_keys(tmp_path: Path) -> None:
    env = dict(os.environ)
    assert cli(tmp_path, env, "gateways", "create", "team-a", "--set",
               "cache_ttl=300").returncode == 0
    listed = cli(tmp_path, env, "gateways", "list")
    assert "team-a" in listed.stdout and "default" in listed.stdout
    up = cli(tmp_path, env, "gateways", "update", "team-a", "--set", "rate_limiting_limit=5",
             "--set", "rate_limiting_interval=60")
    assert json.loads(up.stdout)["rate_limiting_limit"] == 5
    bad = cli(tmp_path, env, "gateways", "update", "team-a", "--set", "retry_max_attempts=9")
    assert bad.returncode == 1
    assert cli(tmp_path, env, "keys", "add", "--gateway", "team-a", "--provider", "anthropic",
               "--secret", "sk-ant-secret-9999").returncode == 0
    keys = cli(tmp_path, env, "keys", "list", "--gateway", "team-a")
    assert "anthropic" in keys.stdout and "sk-ant-secret-9999" not in keys.stdout
    nokey = cli(tmp_path, env, "keys", "add", "--provider", "nope", "--secret", "x")
    assert nokey.returncode == 1 and "unknown provider" in nokey.stderr
    empty = cli(tmp_path, env, "keys", "add", "--provider", "openai", "--secret", "")
    assert empty.returncode == 1 and "key is empty" in empty.stderr
    assert "openai" not in cli(tmp_path, env, "keys", "list").stdout
    assert cli(tmp_path, env, "tokens", "create", "--gateway", "team-a").returncode == 0
    assert "team-a" in cli(tmp_path, env, "tokens", "list", "--gateway", "team-a").stdout
    db = (tmp_path / "data" / "crossroads.db").read_bytes()
    assert b"sk-ant-secret-9999" not in db
    assert cli(tmp_path, env, "db", "upgrade").returncode == 0
    for sub in ("gateways", "tokens", "keys", "routes", "logs", "db", "serve"):
        assert cli(tmp_path, env, sub, "--help").returncode == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_cloudflare_docs_curl_example(served, openai_up: StandinServer) -> None:  # type: ignore[no-untyped-def]
    """The Fetch example of the dynamic-routing usage page, host changed."""
    url, cwd, env, _ = served
    cli(cwd, env, "keys", "add", "--provider", "openai", "--secret", "sk-x")
    token = cli(cwd, env, "tokens", "create").stdout.strip().splitlines()[-1]
    route = json.loads(json.dumps(ROUTE))
    route["name"] = "gemini-2.0-flash"
    (cwd / "g.json").write_text(json.dumps(route))
    assert cli(cwd, env, "routes", "save", "g.json").returncode == 0
    for _ in range(100):
        out = subprocess.run([
            "curl", "-s", "-X", "POST", f"{url}/v1/local/default/compat/chat/completions",
            "--header", f"cf-aig-authorization: Bearer {token}",
            "--header", "Content-Type: application/json",
            "--data", '{"model": "dynamic/gemini-2.0-flash", "messages": [{"role": "user", '
                      '"content": "What is Cloudflare?"}]}'], capture_output=True, text=True)
        if '"choices"' in out.stdout:
            break
        time.sleep(0.05)
    assert json.loads(out.stdout)["choices"][0]["message"]["content"]
