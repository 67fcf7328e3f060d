"""Each response goes out in one write: the transport collects the writes of one event-loop
step and sends them together in the same turn; closing sends first, aborting drops."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.serve.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport
from tests.conftest import RunningServer


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_writes_of_one_step_go_out_together() -> None:
    async def run() -> FakeTransport:
        real = FakeTransport()
        t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"")
        t.writelines([b"{", b"}"])
        assert real.writes == [] and t.get_write_buffer_size() == 21
        assert t.get_extra_info("peername") == "info:peername"  # the rest is the real one's
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        t.write(b"next")
        t.close()  # sends first
        assert real.writes[-1] == b"next" and real.closed
        return real

    asyncio.run(run())


def test_abort_drops_what_is_collected() -> None:
    async def run() -> None:
        real = FakeTransport()
        t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"lost")
        t.abort()
        await asyncio.sleep(0)
        assert real.writes == [] and real.aborted

    asyncio.run(run())


def test_the_server_runs_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tierwise serve` hands uvicorn this protocol (the test servers use it too)."""
    import uvicorn
    from uvicorn.importer import import_from_string

    from app.serve import server

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(server, "_check_registry", lambda settings: None)
    server.run_server(host="127.0.0.1", port=1, workers=1)
    assert import_from_string(seen["http"]) is CoalescingHttpToolsProtocol
    assert issubclass(CoalescingHttpToolsProtocol, HttpToolsProtocol)


def test_a_keep_alive_connection_gets_whole_answers(serve: Any) -> None:
    """Several requests on one connection: each answer complete, in order."""
    from app.config import Settings
    from app.main import create_app

    running: RunningServer = serve(create_app(Settings(auth_enabled=False)))
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as s:
        got = b""
        for _ in range(3):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        while got.count(b"HTTP/1.1 200") < 3 or not got.endswith(b"}"):
            chunk = s.recv(65536)
            assert chunk
            got += chunk
    assert got.count(b"HTTP/1.1 200 OK") == 3
