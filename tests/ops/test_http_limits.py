"""Slow and oversized requests against `tierwise serve` on raw sockets: a head over
TIERWISE_MAX_HEADER_BYTES is refused (431), a body over TIERWISE_MAX_BODY_BYTES too (413),
a body that trickles or never comes is cut off after TIERWISE_BODY_TIMEOUT_SECONDS (408),
each with the connection closed; a client gone mid-body is logged as 499; an idle
keep-alive connection is closed after TIERWISE_KEEP_ALIVE_TIMEOUT_SECONDS; plain uvicorn
applies the same limits; and what is not covered: a head that never ends."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ops.scrape import parse, value
from tests.ops.serving import Service, running

pytestmark = pytest.mark.slow
HEAD_LIMIT = 16 * 1024
BODY_LIMIT = 100_000
SCORE_HEAD = (b"POST /v1/score HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running(tmp_path_factory.mktemp("limits"), TIERWISE_MAX_HEADER_BYTES=str(HEAD_LIMIT),
                 TIERWISE_BODY_TIMEOUT_SECONDS="1", TIERWISE_MAX_BODY_BYTES=str(BODY_LIMIT),
                 TIERWISE_KEEP_ALIVE_TIMEOUT_SECONDS="1") as started:
        yield started


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response from the socket: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes the connection (False: still open at the timeout)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def logged(service: Service, request_ids: set[str]) -> list[dict[str, Any]]:
    """The request lines of these requests, once each has one (lines are written after the
    response is sent)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [r for r in service.records()
                 if r["logger"] == "tierwise.requests" and r["request_id"] in request_ids]
        if {r["request_id"] for r in lines} == request_ids or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def error_code(body: bytes) -> str:
    error = json.loads(body)["error"]
    assert error["message"] and error["details"], error
    return str(error["code"])


@pytest.mark.parametrize("where", ["header", "request line", "many headers"])
def test_a_head_over_the_limit_is_refused(service: Service, where: str) -> None:
    big = b"a" * (1 << 20)  # 1 MB
    if where == "header":
        head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + big + b"\r\n\r\n"
    elif where == "request line":  # over our limit, under httptools' own (below)
        head = b"GET /healthz?q=" + big[:32 * 1024] + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    else:
        head = (b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
                + b"".join(b"X-%d: v\r\n" % i for i in range(3000)) + b"\r\n")
    with service.connect() as sock:
        sock.sendall(head)
        status, headers, body = read_response(sock)
        assert (status, error_code(body)) == (431, "headers_too_large")
        assert headers["connection"] == "close" and closed_by_server(sock)


def test_a_request_line_over_64_kib_is_refused_by_uvicorn(service: Service) -> None:
    """httptools refuses URLs over 65,535 bytes itself: uvicorn answers a plain-text 400."""
    with service.connect() as sock:
        sock.sendall(b"GET /healthz?q=" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert status == 400 and headers["connection"] == "close" and closed_by_server(sock)


def test_a_head_under_the_limit_is_served(service: Service) -> None:
    with service.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Fill: "
                     + b"a" * (HEAD_LIMIT - 200) + b"\r\n\r\n")
        assert read_response(sock)[0] == 200


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_that_trickles_is_cut_off(service: Service, framing: str) -> None:
    """One byte (or one one-byte chunk) every 0.2 s: answered 408 long before the body ends,
    and the connection closed."""
    if framing == "chunked":
        head, piece = SCORE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", b"1\r\n \r\n"
    else:
        head, piece = SCORE_HEAD + b"Content-Length: 1000\r\n\r\n", b" "
    with service.connect() as sock:
        sock.sendall(head)
        sent = 0
        while sent < 1000 and not select.select([sock], [], [], 0.2)[0]:  # 200 s at most
            sock.sendall(piece)
            sent += 1
        status, headers, body = read_response(sock)
        assert (status, error_code(body)) == (408, "request_timeout")
        assert sent < 100 and headers["connection"] == "close" and closed_by_server(sock)


def test_a_body_that_never_comes_is_cut_off(service: Service) -> None:
    with service.connect() as sock:
        sock.sendall(SCORE_HEAD + b"Content-Length: 10\r\n\r\n")
        status, _, body = read_response(sock)
        assert (status, error_code(body)) == (408, "request_timeout")
        assert closed_by_server(sock)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_and_the_connection_closed(service: Service,
                                                                   framing: str) -> None:
    with service.connect() as sock:
        if framing == "chunked":  # streamed: refused once past the limit
            sock.sendall(SCORE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"a" * 10_000
            for _ in range(BODY_LIMIT // len(chunk) + 1):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:  # declared: refused before a byte of it is read
            sock.sendall(SCORE_HEAD + b"Content-Length: %d\r\n\r\n" % (BODY_LIMIT + 1))
        status, headers, body = read_response(sock)
        assert (status, error_code(body)) == (413, "payload_too_large")
        assert headers["connection"] == "close" and closed_by_server(sock)


def test_a_client_that_leaves_mid_body_is_logged_as_499(service: Service) -> None:
    with service.connect() as sock:
        sock.sendall(SCORE_HEAD + b"X-Request-ID: left-early\r\nContent-Length: 100\r\n\r\n{")
    lines = logged(service, {"left-early"})
    assert [(r["route"], r["status"]) for r in lines] == [("/v1/score", 499)]
    samples = parse(httpx.get(service.url + "/metrics", timeout=10).text)
    assert value(samples, "tierwise_http_requests_total", route="/v1/score", method="POST",
                 status="499") >= 1


def test_an_idle_keep_alive_connection_is_closed(service: Service) -> None:
    with service.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200
        assert closed_by_server(sock)  # within the socket's 10 s; the setting says 1 s


def test_a_head_that_never_ends_is_not_timed_out(service: Service) -> None:
    """What docs/configuration.md says is not covered: uvicorn's httptools mode has no head
    deadline and the application runs only once the head is complete, so a connection
    that sends nothing, or part of a head, stays open (put a proxy with a header timeout in
    front). If this starts failing, the server gained a head timeout: update the docs."""
    with service.connect(timeout=3) as silent, service.connect(timeout=3) as partial:
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        # three times the keep-alive and body timeouts
        assert not closed_by_server(silent) and not closed_by_server(partial)
        partial.sendall(b"1\r\n\r\n")
        assert read_response(partial)[0] == 200


def test_plain_uvicorn_applies_the_same_limits(tmp_path: Path) -> None:
    with running(tmp_path, kind="uvicorn", TIERWISE_MAX_HEADER_BYTES=str(HEAD_LIMIT),
                 TIERWISE_BODY_TIMEOUT_SECONDS="1") as plain, plain.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (1 << 20)
                     + b"\r\n\r\n")
        assert read_response(sock)[0] == 431
        with plain.connect() as slow:
            slow.sendall(SCORE_HEAD + b"Content-Length: 10\r\n\r\n")
            assert read_response(slow)[0] == 408


def test_refusals_are_logged_once_with_their_route(service: Service) -> None:
    refusals = {
        "r431": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: r431\r\nX-Big: "
                + b"a" * HEAD_LIMIT + b"\r\n\r\n",
        "r413": SCORE_HEAD + b"X-Request-ID: r413\r\nContent-Length: %d\r\n\r\n" % (
            BODY_LIMIT + 1),
        "r408": SCORE_HEAD + b"X-Request-ID: r408\r\nContent-Length: 10\r\n\r\n",
    }
    for head in refusals.values():
        with service.connect() as sock:
            sock.sendall(head)
            read_response(sock)
    lines = logged(service, set(refusals))
    assert sorted((r["request_id"], r["route"], r["status"]) for r in lines) == [
        ("r408", "/v1/score", 408), ("r413", "/v1/score", 413), ("r431", "/healthz", 431)]
    assert not [r for r in service.records() if r["logger"] == "uvicorn.access"]
