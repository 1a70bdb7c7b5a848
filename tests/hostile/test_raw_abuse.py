"""What no OpenAPI description generates, sent through the balancers: oversized and endless
bodies, JSON nested or sized to hurt the parser, invalid UTF-8, header floods and slow clients
(slowloris). Every answer is the contract's JSON error without internals, nothing is written,
and the service keeps answering everyone else."""
import json
import socket
import time
from contextlib import closing

import pytest
import requests

from atelier_common.localpg import ROOT

QUESTION = {"body": "Is it warm?", "name": "n", "email": "n@example.com", "product_id": 1}
# The clone's own folder stands for any path of the machine (wherever the clone is).
SHOWS_INTERNALS = ("Traceback", "psycopg", "nginx/", "gunicorn", "<html", str(ROOT), ".py")


def counts(target):
    """Rows and sequence positions of the service's tables (as the owner)."""
    import psycopg2

    with closing(psycopg2.connect(target.database_url.owner)) as conn, conn.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S') ORDER BY 1")
        state = {}
        for (name,) in cur.fetchall():
            if name.endswith("_seq"):
                cur.execute(f'SELECT last_value, is_called FROM "{name}"')
                state[name] = cur.fetchone()
            else:
                cur.execute(f'SELECT count(*) FROM "{name}"')
                state[name] = cur.fetchone()[0]
    return state


def assert_contract_error(response, status):
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    assert "message" in response.json()
    assert not any(marker in response.text for marker in SHOWS_INTERNALS), response.text
    assert response.headers.get("Server", "nginx") == "nginx"  # server_tokens off: no version
    assert response.headers.get("X-Request-Id")


def raw(port: int, data: bytes, read_timeout: float = 5) -> bytes:
    """Send bytes as they are (no client library cleaning them) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
    return b"".join(chunks)


@pytest.fixture(scope="module")
def qa(balanced):
    return balanced["qa"]


def test_bodies_above_the_limit_are_413_and_write_nothing(qa, balanced):
    before = counts(qa)
    big = dict(QUESTION, body="x" * 200_000)
    assert_contract_error(requests.post(qa.base + "/qa/questions", json=big, timeout=10), 413)

    def endless():  # chunked, no Content-Length: the limit must hold while reading
        for _ in range(100):
            yield b"[" + b"1," * 5000 + b"1]"

    response = requests.post(qa.base + "/qa/questions", data=endless(), timeout=10,
                             headers={"Content-Type": "application/json"})
    assert_contract_error(response, 413)
    reviews = balanced["reviews"]
    assert_contract_error(requests.post(reviews.base + "/reviews", data=b"{" * 70_000, timeout=10,
                                        headers={"Content-Type": "application/json"}), 413)
    assert counts(qa) == before


@pytest.mark.parametrize("body", [
    b"[" * 5000 + b"]" * 5000,
    b'{"body": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    b'{"product_id": ' + b"9" * 50_000 + b"}",          # an integer Python refuses to parse
    json.dumps({"body": "x", "name": "n", "email": "n@example.com", "product_id": 1,
                "padding": ["y" * 100] * 500}).encode(),  # 50 KB of ignored keys
    b'{"body": "\xff\xfe\xfd", "name": "n", "email": "n@example.com", "product_id": 1}',
    b'{"body": "\\ud800", "name": "n", "email": "n@example.com", "product_id": 1}',
    b"\x00" * 1000,
], ids=["deep-array", "deep-field", "huge-integer", "padded", "invalid-utf8", "lone-surrogate", "nul-bytes"])
def test_bodies_built_to_hurt_the_parser_are_4xx_and_write_nothing(qa, body):
    before = counts(qa)
    started = time.monotonic()
    response = requests.post(qa.base + "/qa/questions", data=body, timeout=10,
                             headers={"Content-Type": "application/json"})
    assert time.monotonic() - started < 2
    assert response.status_code in (400, 422, 201), response.text[:300]
    if response.status_code == 201:  # the padded body is a valid question: extra keys are ignored
        assert body.startswith(b'{"body": "x"')
        return
    assert_contract_error(response, response.status_code)
    assert counts(qa) == before


@pytest.mark.parametrize("path", [
    b"/qa/questions?product_id=%ff%fe", b"/qa/questions/%ff/answers", b"/qa/questions?product_id=1%00",
    b"/qa/questions/\xff\xfe/answers", b"/qa/questions?product_id=" + b"9" * 5000,
    b"/qa/questions?" + b"&".join(b"a%d=1" % i for i in range(1000)),
])
def test_unreadable_paths_and_queries_are_4xx(qa, path):
    answer = raw(qa.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status_line, _, rest = answer.partition(b"\r\n")
    status = int(status_line.split()[1])
    assert 400 <= status < 500, answer[:300]
    body = rest.partition(b"\r\n\r\n")[2]
    assert b"message" in body and not any(m.encode() in body for m in SHOWS_INTERNALS), body[:300]


def test_header_floods_are_refused_by_the_balancer(qa):
    one_huge = {"X-Flood": "a" * 20_000}
    assert_contract_error(requests.get(qa.base + "/qa/questions?product_id=1", headers=one_huge, timeout=5),
                          400)
    many = {f"X-Flood-{i}": "b" * 200 for i in range(200)}  # 40 KB of headers
    assert_contract_error(requests.get(qa.base + "/qa/questions?product_id=1", headers=many, timeout=5), 400)
    # 150 small headers fit nginx's buffers and reach the service, whose HTTP parser takes
    # 100 at most: its 400 is the contract's JSON too (atelier_common/worker.py).
    small = {f"X-F{i}": "c" for i in range(150)}
    response = requests.get(qa.base + "/qa/questions?product_id=1", headers=small, timeout=5)
    assert_contract_error(response, 400)
    assert requests.get(qa.base + "/qa/questions?product_id=1", timeout=5).status_code == 200


def test_slowloris_is_cut_off_and_other_clients_are_served(qa):
    """60 connections that send a header line every 2 s and never finish: nginx closes them
    (client_header_timeout 10 s counts the whole header), while normal requests are answered
    at once all along."""
    slow = []
    for _ in range(60):
        sock = socket.create_connection(("127.0.0.1", qa.port), timeout=5)
        sock.sendall(b"GET /qa/questions?product_id=1 HTTP/1.1\r\nHost: x\r\n")
        slow.append(sock)
    started = time.monotonic()
    latencies = []
    closed = set()
    try:
        while time.monotonic() - started < 14 and len(closed) < len(slow):
            for i, sock in enumerate(slow):
                if i in closed:
                    continue
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    closed.add(i)
            t = time.monotonic()
            assert requests.get(qa.base + "/qa/questions?product_id=2", timeout=5).status_code == 200
            latencies.append(time.monotonic() - t)
            time.sleep(2)
        for i, sock in enumerate(slow):  # an answered or reset connection reads as closed
            if i not in closed:
                sock.settimeout(0.5)
                try:
                    sock.recv(1024)  # EOF (b"") or an error answer: the server is done with it
                    closed.add(i)
                except socket.timeout:
                    pass  # still open
                except OSError:
                    closed.add(i)
    finally:
        for sock in slow:
            sock.close()
    elapsed = time.monotonic() - started
    assert len(closed) == len(slow), f"{len(slow) - len(closed)} slow connections still open after {elapsed:.0f} s"
    assert elapsed < 15
    assert max(latencies) < 0.5, latencies
