"""Stand-in upstream: nginx (Debian package) answering fixed OpenAI and Anthropic
responses, JSON under /json/v1/... and SSE under /sse/v1/..., from a generated
config in a temporary directory, pinned to the load core."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from procs import LOAD_CORE, Server, start_server, wait_port

WORDS = (
    "Hello there! This is a fixed answer from the benchmark stand-in upstream, "
    "sent in twenty small pieces."
).split()
PROMPT_TOKENS, COMPLETION_TOKENS = 21, 20
OPENAI_MODEL = "gpt-4o-mini-2024-07-18"
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _pieces(n: int = 20) -> list[str]:
    words = (WORDS * 3)[:n]
    return [w + " " for w in words]


def openai_json() -> str:
    text = "".join(_pieces()).strip()
    return _dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": 1700000000,
            "model": OPENAI_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
            "system_fingerprint": "fp_bench",
        }
    )


def openai_sse() -> str:
    """20 chunks (role+text, 18 texts, finish), a usage chunk, then [DONE]."""
    base = {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": OPENAI_MODEL,
        "system_fingerprint": "fp_bench",
    }
    pieces = _pieces(19)
    events = []
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        events.append({**base, "choices": [choice]})
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    events.append({**base, "choices": [finish]})
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }
    events.append({**base, "choices": [], "usage": usage})
    return "".join(f"data: {_dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def anthropic_json() -> str:
    return _dumps(
        {
            "id": "msg_bench0001",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": [{"type": "text", "text": "".join(_pieces()).strip()}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
        }
    )


def anthropic_sse() -> str:
    start_msg = {
        "id": "msg_bench0001",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1},
    }
    events: list[tuple[str, dict]] = [
        ("message_start", {"type": "message_start", "message": start_msg}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for piece in _pieces():
        delta = {"type": "text_delta", "text": piece}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(f"event: {name}\ndata: {_dumps(data)}\n\n" for name, data in events)


NOT_FOUND = _dumps({"error": {"message": "stand-in: no such path", "type": "not_found"}})

# path -> (content type, body)
ROUTES = {
    "/json/v1/chat/completions": ("application/json", openai_json),
    "/sse/v1/chat/completions": ("text/event-stream", openai_sse),
    "/json/v1/messages": ("application/json", anthropic_json),
    "/sse/v1/messages": ("text/event-stream", anthropic_sse),
}


def _nginx_quote(text: str) -> str:
    for bad in ("$", "'", "\\"):
        if bad in text:
            raise ValueError(f"stand-in payload must not contain {bad!r}")
    return "'" + text.replace("\n", "\\n") + "'"


def nginx_conf(tmp: Path, port: int) -> str:
    locations = []
    for path, (ctype, body) in ROUTES.items():
        extra = "add_header Cache-Control no-cache;" if "event-stream" in ctype else ""
        # nginx caps one config token at 4 KiB: split long bodies into variables.
        text = body()
        parts = [text[i : i + 3000] for i in range(0, len(text), 3000)]
        sets = " ".join(f"set $p{i} {_nginx_quote(part)};" for i, part in enumerate(parts))
        joined = "".join(f"$p{i}" for i in range(len(parts)))
        locations.append(
            f"    location = {path} {{ default_type {ctype}; {extra}\n"
            f'      {sets}\n      return 200 "{joined}"; }}'
        )
    temp_dirs = "\n".join(
        f"  {kind}_temp_path {tmp}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
{temp_dirs}
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
{chr(10).join(locations)}
    location / {{ default_type application/json; return 404 {_nginx_quote(NOT_FOUND)}; }}
  }}
}}
"""


def nginx_binary() -> str:
    for cand in ("nginx", "/usr/sbin/nginx"):
        found = shutil.which(cand)
        if found:
            return found
    raise RuntimeError("nginx not found (apt-get install nginx)")


def start_standin(tmp: Path, port: int, log_dir: Path) -> Server:
    conf_dir = tmp / "nginx"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "nginx.conf"
    conf.write_text(nginx_conf(conf_dir, port))
    argv = [nginx_binary(), "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")]
    server = start_server("standin-nginx", argv, port, log_dir, cores=LOAD_CORE)
    if not wait_port(port, 10, server.proc):
        err = (
            (conf_dir / "error.log").read_text(errors="replace")[-500:]
            if (conf_dir / "error.log").exists()
            else ""
        )
        server.stop()
        raise RuntimeError(f"nginx stand-in did not start: {server.log_tail()} {err}")
    return server
