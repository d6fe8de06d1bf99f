"""The three examples of Cloudflare's "Using a dynamic route" page, with only the host changed:
the OpenAI JS SDK (run by node), curl (tests/integration/test_cli.py), and the Workers binding
(its Python counterpart, crossroads.Gateway, in tests/integration/test_binding.py); and the
example of its "Non-realtime WebSockets API" page (node's ``ws``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import RunningGateway, StandinServer
from standins import workers_ai
from standins.openai import STATE

JS = Path(__file__).resolve().parent.parent / "js"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    if not all((JS / "node_modules" / name).exists() for name in ("openai", "ws")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=JS, check=True,
                       capture_output=True, timeout=300)
    return JS / "node_modules"


def test_openai_js_sdk_example(node_modules: Path, gateway: RunningGateway,
                               openai_up: StandinServer) -> None:
    gateway.create_route("support")
    env = dict(os.environ, CF_AIG_TOKEN=gateway.token(), ACCOUNT_ID="local",
               GATEWAY_ID="default", GATEWAY_HOST=gateway.url, ROUTE_NAME="support")
    out = subprocess.run(["node", "openai-sdk-example.mjs"], cwd=JS, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    message = json.loads(out.stdout)
    assert message["role"] == "assistant" and message["content"] == "Hello from the stand-in."
    sent = openai_up.app[STATE].calls[-1]
    assert sent["json"]["model"] == "gpt-4o-mini"
    assert sent["headers"]["Authorization"] == "Bearer sk-stored-secret-123456"


def test_websockets_api_example(node_modules: Path,
                                gateway_factory: Callable[..., RunningGateway],
                                standin: Callable[..., StandinServer]) -> None:
    up = standin(workers_ai.create_app())
    gw = gateway_factory({"CROSSROADS_UPSTREAM_WORKERS_AI":
                          up.url + "/client/v4/accounts/{account}/ai"})
    env = dict(os.environ, CF_AIG_TOKEN=gw.token(), ACCOUNT_ID="local", GATEWAY_ID="default",
               GATEWAY_HOST=gw.url.replace("http://", "ws://"),
               WORKERS_AI_TOKEN="workers-ai-token")
    out = subprocess.run(["node", "websocket-example.mjs"], cwd=JS, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    message = json.loads(out.stdout)
    assert message["type"] == "universal.created"
    assert message["metadata"]["eventId"] == "my-request" and message["metadata"]["logId"]
    assert message["response"]["result"]["response"] == workers_ai.ANSWER
    sent = workers_ai.calls(up.app)[-1]
    assert sent["path"] == "/client/v4/accounts/local/ai/run/@cf/meta/llama-3.1-8b-instruct"
    assert sent["headers"]["Authorization"] == "Bearer workers-ai-token"
