"""Slow and greedy clients with real sockets against a balancer whose per-client budgets are on
(as render.py's defaults, scaled down so that a test reaches them quickly): a request must
arrive whole within its deadline (headers and body), a read carries no body, one address holds
a bounded number of requests in progress and a bounded read rate; a configured front-end server
(by address or by token) has its shoppers counted one by one, and nobody else is believed when
naming a shopper. The instance itself holds the same deadline."""
import os
import secrets
import shutil
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from atelier_common import fleet as fleet_tools
from atelier_common.localpg import DATA, wait_for
from atelier_common.testing import answers

DEADLINE = 3
CONNECTIONS = 8
READS = 20  # per second, burst 40
QUESTION = b'{"body": "Is it warm?", "name": "n", "email": "n@example.com", "product_id": 1}'


class Nginx:
    def __init__(self, qa, name, **options):
        self.folder = Path(tempfile.mkdtemp(prefix=f"budgets-{name}-", dir=DATA / "test-fleets"))
        self.folder.chmod(0o755)
        self.port = fleet_tools.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.pidfile = self.folder / "nginx.pid"
        extra = ["--access-log", "off", "--request-deadline", str(DEADLINE)]
        for option, value in options.items():
            extra += [f"--{option.replace('_', '-')}", str(value)]
        conf, _ = fleet_tools.render_balancer(
            "qa", f"127.0.0.1:{self.port}", [f"127.0.0.1:{qa.instance_port}"], self.folder / "nginx",
            self.pidfile, cache=0, write_rate_limit=options.pop("write_rate_limit", 0),
            read_rate_limit=READS, connection_limit=CONNECTIONS, extra=extra)
        fleet_tools.start_balancer(fleet_tools.nginx_binary(), conf, self.pidfile)
        wait_for(lambda: answers(self.base + "/healthz"), 10, "balancer")

    def stop(self):
        fleet_tools.stop_pid(self.pidfile, seconds=10)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def qa(balanced):
    return balanced["qa"]


@pytest.fixture(scope="module")
def limited(qa):
    balancer = Nginx(qa, "limited")
    yield balancer
    balancer.stop()


@pytest.fixture(scope="module")
def fronted(qa):
    """A balancer that knows a storefront server by address (this machine) and one by token."""
    os.environ["BUDGETS_TEST_SHOP_TOKEN"] = secrets.token_urlsafe(24)
    balancer = Nginx(qa, "fronted", write_rate_limit=2, frontend="shop=127.0.0.2/32",
                     frontend_token="app=BUDGETS_TEST_SHOP_TOKEN", cors_origin="https://shop.example")
    balancer.token = os.environ.pop("BUDGETS_TEST_SHOP_TOKEN")
    yield balancer
    balancer.stop()


def status_of(answer: bytes):
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def read_all(sock, timeout):
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return received


def trickle(port: int, head: bytes, drip: bytes, every: float, limit: float):
    """Send head, then drip every `every` seconds until the peer answers or closes (or `limit`
    seconds pass): (seconds it took, what it answered)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        sock.settimeout(every)
        while time.monotonic() - started < limit:
            try:
                answer = sock.recv(65536)
                return time.monotonic() - started, answer + read_all(sock, 1)
            except ConnectionResetError:  # reset_timedout_connection: closed, no answer
                return time.monotonic() - started, b""
            except socket.timeout:
                try:
                    sock.sendall(drip)
                except OSError:
                    return time.monotonic() - started, b""
        return time.monotonic() - started, None


BODY_HEAD = (b"POST /qa/questions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\n\r\n" % len(QUESTION))


def test_a_body_trickled_past_the_deadline_is_408_and_writes_nothing(qa, limited, state):
    """client_body_timeout alone is the gap between two reads: a byte every second would never
    trip it. The deadline counts from the request's first byte."""
    before = state(qa.database_url.owner)
    seconds, answer = trickle(limited.port, BODY_HEAD + QUESTION[:5], b" ", every=1, limit=DEADLINE + 8)
    assert answer is not None, "still open"
    assert status_of(answer) == 408 and b'"message"' in answer, answer[:300]
    assert DEADLINE - 0.5 < seconds < DEADLINE + 2
    assert state(qa.database_url.owner) == before


def test_headers_trickled_past_the_deadline_are_cut_off(limited):
    seconds, answer = trickle(limited.port, b"GET /qa/questions?product_id=1 HTTP/1.1\r\nHost: x\r\n",
                              b"X-Slow: 1\r\n", every=1, limit=20)
    # nginx's client_header_timeout is fixed at 10 s and counts the whole header (one timer).
    assert answer is not None and seconds < 12, (seconds, answer)  # closed (nginx sends no 408 here)


@pytest.mark.parametrize("extra", [b"Content-Length: 5\r\n\r\nhello", b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"])
@pytest.mark.parametrize("method", [b"GET", b"OPTIONS"])
def test_a_read_with_a_body_is_400_at_once(limited, method, extra):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        sock.sendall(method + b" /qa/questions?product_id=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra)
        answer = read_all(sock, 5)
    assert status_of(answer) == 400 and b'"message"' in answer, answer[:300]
    assert time.monotonic() - started < 1


def test_a_read_with_an_empty_body_is_served(limited):
    response = requests.get(limited.base + "/qa/questions?product_id=1", headers={"Content-Length": "0"}, timeout=5)
    assert response.status_code == 200


def test_one_address_holds_a_bounded_number_of_requests_and_others_are_served(limited):
    """Slow-body writes hold requests in progress; beyond the limit one address gets 429 at
    once, while the held ones end by the deadline."""
    held = []
    try:
        for _ in range(CONNECTIONS * 3):
            sock = socket.create_connection(("127.0.0.1", limited.port), timeout=5)
            sock.sendall(BODY_HEAD + QUESTION[:5])
            held.append(sock)
        time.sleep(0.5)
        refused = []
        for sock in held:
            sock.settimeout(0.2)
            try:
                answer = sock.recv(4096)
            except socket.timeout:
                continue
            refused.append(status_of(answer))
        assert len(refused) == len(held) - CONNECTIONS, refused
        assert set(refused) == {429}
        # A request from the same address is refused too while the slots are held …
        assert requests.get(limited.base + "/qa/questions?product_id=1", timeout=5).status_code == 429
        # … and once the deadline has ended the slow ones, served again.
        time.sleep(DEADLINE + 0.5)
        assert requests.get(limited.base + "/qa/questions?product_id=1", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_reads_have_a_generous_rate_limit(limited):
    time.sleep(2.5)  # the bucket of the earlier tests drains
    with requests.Session() as session:
        statuses = [session.get(limited.base + "/healthz/", timeout=5).status_code for _ in range(3)]
        statuses += [session.get(limited.base + "/qa/questions?product_id=1", timeout=5).status_code
                     for _ in range(READS * 4)]
    assert statuses[:2 * READS] == [200] * (2 * READS)   # a burst of 2 × rate passes undelayed
    assert 429 in statuses                                 # a flood does not


def write_statuses(base, count, headers=None):
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: requests.put(base + "/qa/questions/987654/helpful",
                                                     headers=headers or {}, timeout=15).status_code,
                             range(count)))


def test_a_front_end_known_by_token_has_each_shopper_counted_alone(fronted):
    """write rate 2/s (burst 4): 6 writes at once from one shopper: some 429; from 6 shoppers
    named by the token-holding front-end: none."""
    one = write_statuses(fronted.base, 8, {"X-Atelier-Client": fronted.token, "X-Forwarded-For": "203.0.113.1"})
    assert 429 in one
    time.sleep(3)
    with ThreadPoolExecutor(8) as pool:
        many = list(pool.map(lambda i: requests.put(
            fronted.base + "/qa/questions/987654/helpful", timeout=15,
            headers={"X-Atelier-Client": fronted.token, "X-Forwarded-For": f"203.0.113.{10 + i}"}).status_code,
            range(8)))
    assert 429 not in many, many


def test_without_the_token_x_forwarded_for_is_not_believed(fronted):
    time.sleep(3)
    forged = {"X-Atelier-Client": "guess-" + secrets.token_urlsafe(24)}
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: requests.put(
            fronted.base + "/qa/questions/987654/helpful", timeout=15,
            headers={**forged, "X-Forwarded-For": f"198.51.100.{i}"}).status_code, range(8)))
    assert 429 in statuses  # rotating X-Forwarded-For does not buy a new budget


def test_a_front_end_known_by_address_has_each_shopper_counted_alone(fronted):
    """From 127.0.0.2 (the configured front-end's address): each named shopper alone."""
    time.sleep(3)

    def put(i):
        with socket.create_connection(("127.0.0.1", fronted.port), timeout=10,
                                      source_address=("127.0.0.2", 0)) as sock:
            sock.sendall(b"PUT /qa/questions/987654/helpful HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"X-Forwarded-For: 192.0.2.%d\r\nContent-Length: 0\r\n\r\n" % (10 + i))
            return status_of(read_all(sock, 10))

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(put, range(8)))
    assert 429 not in statuses and set(statuses) == {404}, statuses


@pytest.fixture(scope="module")
def strict_instance(qa):
    """A qa instance of its own with a 2 s request deadline (reached directly, no balancer)."""
    folder = Path(tempfile.mkdtemp(prefix="budgets-instance-", dir=DATA / "test-fleets"))
    port = fleet_tools.free_port()
    fleet_tools.start_instance("qa", port, qa.database_url, folder / "instance.pid", folder / "instance.log",
                               REQUEST_DEADLINE_SECONDS=2)
    wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"), 30, "instance")
    yield port
    fleet_tools.stop_pid(folder / "instance.pid", seconds=20)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("head,drip", [
    (b"GET /qa/questions?product_id=1 HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n"),
    (BODY_HEAD + QUESTION[:5], b" "),
], ids=["headers", "body"])
def test_the_instance_holds_a_whole_request_deadline(qa, strict_instance, state, head, drip):
    before = state(qa.database_url.owner)
    seconds, answer = trickle(strict_instance, head, drip, every=0.5, limit=10)
    assert answer is not None and status_of(answer) == 408, answer
    assert b'"message"' in answer and 1.5 < seconds < 3.5
    assert state(qa.database_url.owner) == before
    assert answers(f"http://127.0.0.1:{strict_instance}/readyz")


@pytest.mark.parametrize("origin,allowed", [("https://shop.example", "https://shop.example"),
                                            ("https://evil.example", None), (None, None)])
def test_the_balancers_own_answers_name_only_the_configured_origin(fronted, origin, allowed):
    headers = {"Origin": origin} if origin else {}
    response = requests.request("TRACE", fronted.base + "/qa/questions", headers=headers, timeout=5)
    assert response.status_code == 405 and response.json() == {"message": "method not allowed"}
    assert response.headers.get("Access-Control-Allow-Origin") == allowed
    assert response.headers["Vary"] == "Origin"


@pytest.fixture(scope="module")
def behind_load_balancer(qa):
    """As on AWS: a load balancer (here: this machine) in front, the front-end behind it."""
    balancer = Nginx(qa, "behind-lb", write_rate_limit=2, real_ip_from="127.0.0.1/32",
                     frontend="shop=198.51.100.0/24")
    yield balancer
    balancer.stop()


def test_behind_a_load_balancer_the_front_ends_shoppers_are_counted_alone(behind_load_balancer):
    """X-Forwarded-For: <shopper>, <front-end> (the load balancer appended the front-end)."""
    def put(xff):
        return requests.put(behind_load_balancer.base + "/qa/questions/987654/helpful", timeout=15,
                            headers={"X-Forwarded-For": xff}).status_code

    with ThreadPoolExecutor(8) as pool:
        shoppers = list(pool.map(lambda i: put(f"203.0.113.{20 + i}, 198.51.100.5"), range(8)))
    assert set(shoppers) == {404}, shoppers
    time.sleep(3)
    with ThreadPoolExecutor(8) as pool:  # one shopper, 8 writes at once: beyond its burst of 4
        one = list(pool.map(lambda i: put("203.0.113.99, 198.51.100.5"), range(8)))
    assert 429 in one
    time.sleep(3)
    with ThreadPoolExecutor(8) as pool:  # not a front-end: rotating the first entry buys nothing
        forged = list(pool.map(lambda i: put(f"203.0.113.{40 + i}, 192.0.2.7"), range(8)))
    assert 429 in forged
