from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import RunningGateway, ServerThread, StandinServer
from standins import openai as openai_standin


@pytest.fixture(scope="session")
def server_thread() -> Iterator[ServerThread]:
    t = ServerThread()
    yield t
    t.stop()


@pytest.fixture
def standin(server_thread: ServerThread) -> Iterator[Callable[..., StandinServer]]:
    started: list[StandinServer] = []

    def make(app: Any) -> StandinServer:
        s = StandinServer(server_thread, app).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def openai_up(standin: Callable[..., StandinServer]) -> StandinServer:
    """A stand-in OpenAI server; its scriptable state is ``openai_up.app[STATE]``."""
    return standin(openai_standin.create_app())


@pytest.fixture
def gateway_factory(server_thread: ServerThread, tmp_path: Path
                    ) -> Iterator[Callable[..., RunningGateway]]:
    started: list[RunningGateway] = []

    def make(env: dict[str, str] | None = None, data_dir: Path | None = None,
             **runtime_kw: Any) -> RunningGateway:
        d = data_dir or tmp_path / f"gw{len(started)}"
        gw = RunningGateway(server_thread, d, env or {}, **runtime_kw).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def gateway(gateway_factory: Callable[..., RunningGateway], openai_up: StandinServer
            ) -> RunningGateway:
    """A gateway whose openai upstream is the stand-in, with a stored key."""
    gw = gateway_factory({"CROSSROADS_UPSTREAM_OPENAI": openai_up.url + "/v1"})
    gw.put_key("openai", "sk-stored-secret-123456")
    return gw
