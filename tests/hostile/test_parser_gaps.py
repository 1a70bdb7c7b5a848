"""Requests two HTTP parsers could read differently, unknown method tokens and doubled slashes,
sent as raw bytes to an instance directly (as if the balancer were bypassed) and through the
balancer: each is the contract's JSON error (or the plain read), runs no view it was not meant
for, and writes nothing."""
import json
import socket

import pytest

QUESTION = json.dumps({"body": "Is it warm?", "name": "n", "email": "n@example.com",
                       "product_id": 1}).encode()


def exchange(port: int, data: bytes, timeout: float = 5) -> tuple:
    """(status, headers as a lowercase dict, body) of the first answer to raw bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def post(path: bytes, extra: bytes, body: bytes = QUESTION, method: bytes = b"POST") -> bytes:
    return (method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\n" + extra + b"\r\n" + body)


def length(body: bytes = QUESTION) -> bytes:
    return b"Content-Length: %d\r\n" % len(body)


CHUNKED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(QUESTION), QUESTION)
SMUGGLING = {
    "length-and-chunked": post(b"/qa/questions", length(CHUNKED) + b"Transfer-Encoding: chunked\r\n", CHUNKED),
    "two-lengths": post(b"/qa/questions", length() + length()),
    "two-different-lengths": post(b"/qa/questions", length() + b"Content-Length: 5\r\n"),
    "plus-length": post(b"/qa/questions", b"Content-Length: +%d\r\n" % len(QUESTION)),
    "bare-cr-in-header": post(b"/qa/questions", length() + b"X-Note: a\rb\r\n"),
    "space-before-colon": post(b"/qa/questions", b"Content-Length : %d\r\n" % len(QUESTION)),
    "gzip-coding": post(b"/qa/questions", b"Transfer-Encoding: gzip\r\n", CHUNKED),
    "get-with-body": post(b"/qa/questions?product_id=1", length(), method=b"GET"),
}


@pytest.fixture(scope="module")
def qa(balanced):
    return balanced["qa"]


def assert_json_error(status, headers, body, expected):
    assert status in expected, (status, body[:200])
    assert headers["content-type"].startswith("application/json")
    assert "message" in json.loads(body)


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_the_instance_refuses_ambiguous_framing(qa, state, name):
    before = state(qa.database_url.owner)
    status, headers, body = exchange(qa.instance_port, SMUGGLING[name])
    assert_json_error(status, headers, body, {400})
    assert state(qa.database_url.owner) == before


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_the_balancer_refuses_ambiguous_framing(qa, state, name):
    before = state(qa.database_url.owner)
    status, headers, body = exchange(qa.port, SMUGGLING[name])
    # nginx itself: 400, or 501 for a coding it does not know; both as the contract's JSON
    assert_json_error(status, headers, body, {400, 501})
    assert headers["access-control-allow-origin"] == "*"
    assert state(qa.database_url.owner) == before


@pytest.mark.parametrize("method", [b"DELETE_", b"POST_", b"PUT.", b"DELETE"])
def test_an_unknown_method_token_never_runs_the_post_view(qa, state, method):
    before = state(qa.database_url.owner)
    # nginx reads a method of capitals and `_` only: anything else is a malformed request (400)
    for port, expected in ((qa.instance_port, {405}), (qa.port, {405} if method.isalpha() or b"_" in method
                                                              else {400})):
        status, headers, body = exchange(port, post(b"/qa/questions", length(), method=method))
        assert_json_error(status, headers, body, expected)
        assert headers["access-control-allow-origin"] == "*"
    assert state(qa.database_url.owner) == before


def test_doubled_slashes_are_read_as_one_and_never_redirect_to_the_host(balanced):
    products = balanced["products"]
    for port in (products.instance_port, products.port):
        plain = exchange(port, b"GET /products/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = exchange(
            port, b"GET /products//7 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        assert status == 200 and "location" not in headers, (status, headers)
        assert json.loads(body) == json.loads(plain[2])
        assert b"evil.example" not in body


@pytest.mark.parametrize("request_bytes,status", [
    (b"TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
    (b"GET / HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n", 501),
])
def test_the_balancers_own_405_501_505_are_json_with_cors(qa, request_bytes, status):
    got, headers, body = exchange(qa.port, request_bytes)
    assert_json_error(got, headers, body, {status})
    assert headers["access-control-allow-origin"] == "*"
    assert headers.get("x-request-id")
