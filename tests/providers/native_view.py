"""A provider-neutral view of the native request bodies the adapters build, so one
conformance suite can check every provider: system text, turns of items, declared tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class View:
    system: str = ""
    # (role, [item]) with role "user" | "assistant" | "tool"; items are tuples:
    # ("text", str) ("image", "inline"|"url") ("call", name, args) ("result", ref, text)
    turns: list[tuple[str, list[tuple]]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)


def _anthropic(b: dict[str, Any]) -> View:
    sys_blocks = b.get("system") or []
    v = View(system="".join(s["text"] for s in sys_blocks),
             tools=[t["name"] for t in b.get("tools") or []])
    for turn in b["messages"]:
        items: list[tuple] = []
        for blk in turn["content"]:
            t = blk["type"]
            if t == "text":
                items.append(("text", blk["text"]))
            elif t == "image":
                items.append(("image", "inline" if blk["source"]["type"] == "base64" else "url"))
            elif t == "tool_use":
                items.append(("call", blk["name"], blk["input"]))
            elif t == "tool_result":
                items.append(("result", blk["tool_use_id"], blk["content"]))
        v.turns.append((turn["role"], items))
    return v


def _gemini(b: dict[str, Any]) -> View:
    sys_parts = (b.get("systemInstruction") or {}).get("parts") or []
    decls = [d for t in b.get("tools") or [] for d in t["functionDeclarations"]]
    v = View(system="".join(p["text"] for p in sys_parts), tools=[d["name"] for d in decls])
    for c in b["contents"]:
        items: list[tuple] = []
        for p in c["parts"]:
            if "text" in p:
                items.append(("text", p["text"]))
            elif "inlineData" in p or "fileData" in p:
                items.append(("image", "inline" if "inlineData" in p else "url"))
            elif "functionCall" in p:
                items.append(("call", p["functionCall"]["name"], p["functionCall"]["args"]))
            elif "functionResponse" in p:
                fr = p["functionResponse"]
                items.append(("result", fr["name"], orjson.dumps(fr["response"]).decode()))
        v.turns.append(("assistant" if c["role"] == "model" else "user", items))
    return v


def _bedrock(b: dict[str, Any]) -> View:
    tools = ((b.get("toolConfig") or {}).get("tools")) or []
    v = View(system="".join(s["text"] for s in b.get("system") or []),
             tools=[t["toolSpec"]["name"] for t in tools])
    for m in b["messages"]:
        items: list[tuple] = []
        for blk in m["content"]:
            if "text" in blk:
                items.append(("text", blk["text"]))
            elif "image" in blk:
                items.append(("image", "inline"))
            elif "toolUse" in blk:
                items.append(("call", blk["toolUse"]["name"], blk["toolUse"]["input"]))
            elif "toolResult" in blk:
                tr = blk["toolResult"]
                items.append(("result", tr["toolUseId"], orjson.dumps(tr["content"]).decode()))
        v.turns.append((m["role"], items))
    return v


def _cohere_items(m: dict[str, Any]) -> list[tuple]:
    content = m.get("content")
    if m["role"] == "tool":
        return [("result", m["tool_call_id"], content)]
    items: list[tuple] = []
    if isinstance(content, str) and content:
        items.append(("text", content))
    for part in content if isinstance(content, list) else []:
        if part["type"] == "text":
            items.append(("text", part["text"]))
        else:
            url = part["image_url"]["url"]
            items.append(("image", "inline" if url.startswith("data:") else "url"))
    for tc in m.get("tool_calls") or []:
        items.append(("call", tc["function"]["name"], orjson.loads(tc["function"]["arguments"])))
    return items


def _cohere(b: dict[str, Any]) -> View:
    v = View(tools=[t["function"]["name"] for t in b.get("tools") or []])
    for m in b["messages"]:
        if m["role"] == "system":
            v.system += m["content"]
        else:
            v.turns.append((m["role"], _cohere_items(m)))
    return v


READERS = {"anthropic": _anthropic, "google-ai-studio": _gemini, "google-vertex-ai": _gemini,
           "vertex-claude": _anthropic, "aws-bedrock": _bedrock, "cohere": _cohere}


def view(kind: str, body: bytes) -> View:
    return READERS[kind](orjson.loads(body))


def items(v: View, kind: str) -> list[tuple]:
    return [it for _, its in v.turns for it in its if it[0] == kind]
