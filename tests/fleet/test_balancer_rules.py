"""What the balancer itself answers: nginx's own errors in the contract's JSON shape with CORS,
the write rate limit, gzip; and the render.py variants."""
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from atelier_common import fleet as fleet_tools

QUESTION = {"body": "Does it run small?", "name": "shopper", "email": "shopper@example.com", "product_id": 7}


def assert_contract_error(response, status, retry_after=False):
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) <= {"message", "errors"} and isinstance(body["message"], str) and body["message"]
    if "errors" in body:
        assert all(isinstance(problems, list) for problems in body["errors"].values())
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["X-Request-Id"]
    assert ("Retry-After" in response.headers) == retry_after
    if retry_after:
        assert int(response.headers["Retry-After"]) >= 1


@pytest.fixture(scope="module")
def qa(start_fleet):
    fleet = start_fleet("qa", instances=1)
    fleet.balancer = fleet.add_balancer(write_rate_limit=10)  # the default of `make up`
    fleet.unlimited = fleet.add_balancer(write_rate_limit=0)
    return fleet


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_body_too_large_is_413_json_and_writes_nothing(qa):
    before = qa.value("SELECT count(*) FROM question")
    response = qa.unlimited.post("/qa/questions", data=b"{" + b" " * 100_000 + b"}",
                                headers={"Content-Type": "application/json"})
    assert_contract_error(response, 413)
    assert list(response.json()["errors"]) == ["request"]
    assert qa.value("SELECT count(*) FROM question") == before


def test_write_rate_limit_is_429_json_with_retry_after_and_reads_are_not_limited(qa):
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda _: requests.put(qa.balancer.base + "/qa/questions/123456/helpful",
                                                       timeout=15), range(40)))
    limited = [answer for answer in answers if answer.status_code == 429]
    assert limited and len(limited) <= 40 - 20  # a burst of 20 passes (paced), the rest is 429
    assert {answer.status_code for answer in answers} <= {404, 429}  # 404: no such question
    assert_contract_error(limited[0], 429, retry_after=True)
    with ThreadPoolExecutor(40) as pool:
        reads = list(pool.map(lambda _: requests.get(qa.balancer.base + "/qa/questions?product_id=1",
                                                     timeout=15), range(40)))
    assert {read.status_code for read in reads} == {200}


def test_a_sequential_writer_is_paced_not_rejected(qa):
    """Without `nodelay`, writes a little faster than the rate wait their turn."""
    time.sleep(2.5)  # let the previous test's burst drain
    session = requests.Session()
    started = time.monotonic()
    statuses = [session.put(qa.balancer.base + "/qa/questions/123456/helpful").status_code for _ in range(25)]
    assert statuses == [404] * 25
    assert time.monotonic() - started >= 2.0  # paced at 10/s: 24 intervals of 0.1 s


def test_malformed_and_oversized_requests_are_json(qa):
    for data, status in [(b"GARBAGE\r\n\r\n", 400),
                         (b"GET /qa/questions?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
                         (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 400)]:
        head, _, body = raw_request(qa.balancer.port, data).partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
        assert b"\r\nContent-Type: application/json" in head and b"\r\nAccess-Control-Allow-Origin: *" in head
        assert set(requests.models.complexjson.loads(body)) <= {"message", "errors"}


def test_gzip_for_json_when_asked(qa):
    for i in range(40):
        assert qa.unlimited.post("/qa/questions", json={**QUESTION, "body": f"question {i} " + "x" * 50}).status_code == 201
    zipped = qa.unlimited.get("/qa/questions?product_id=7&count=100", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and len(zipped.json()["results"]) == 40
    plain = qa.unlimited.get("/qa/questions?product_id=7&count=100", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.json() == zipped.json()


def test_every_instance_down_is_502_json(start_own_fleet):
    fleet = start_own_fleet("qa", instances=2)
    balancer = fleet.add_balancer()
    fleet.kill_instance(0)
    fleet.kill_instance(1)
    assert_contract_error(balancer.get("/qa/questions?product_id=1"), 502, retry_after=True)
    assert_contract_error(balancer.put("/qa/questions/1/helpful"), 502, retry_after=True)
    assert_contract_error(balancer.post("/qa/questions", json=QUESTION), 502, retry_after=True)


def render(*args) -> str:
    return subprocess.run([sys.executable, str(fleet_tools.RENDER), *args], check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.parametrize("service", ["products", "qa", "reviews"])
@pytest.mark.parametrize("cache,rate", [("1", "10"), ("0", "0")])
def test_render_variants_are_valid_nginx(tmp_path, service, cache, rate):
    config = render("--service", service, "--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:2",
                    "--upstream", "127.0.0.1:3", "--cache", cache, "--write-rate-limit", rate,
                    "--prefix", str(tmp_path), "--real-ip-from", "10.0.0.0/16")
    assert ("proxy_cache_path" in config) == (cache == "1")
    assert ("limit_req " in config) == (rate != "0")
    assert config.count("server 127.0.0.1:") == 2 and "set_real_ip_from 10.0.0.0/16;" in config
    assert "{{" not in config
    path = tmp_path / "nginx.conf"
    path.write_text(config)
    fleet_tools.nginx_check(fleet_tools.nginx_binary(), path)


def test_the_front_renders_valid_nginx(tmp_path):
    config = render("--front", "--service", "qa", "--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:2",
                    "--upstream", "127.0.0.1:3", "--prefix", str(tmp_path))
    assert "proxy_cache" not in config and "proxy_next_upstream off;" in config and "{{" not in config
    path = tmp_path / "nginx.conf"
    path.write_text(config)
    fleet_tools.nginx_check(fleet_tools.nginx_binary(), path)


def test_every_answer_has_its_own_request_id_even_from_the_cache(qa):
    first = qa.unlimited.get("/qa/questions?product_id=424242")
    second = qa.unlimited.get("/qa/questions?product_id=424242")
    assert second.headers["X-Cache-Status"] == "HIT"
    write = qa.unlimited.put("/qa/questions/424242/helpful")
    ids = [answer.headers["X-Request-Id"] for answer in (first, second, write)]
    assert all(len(request_id) == 32 and "," not in request_id for request_id in ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize("method", ["DELETE", "PATCH"])
def test_another_write_method_keeps_its_405_and_writes_nothing(qa, method):
    """The balancer sends every write to the instances as POST (so that nginx resends one only
    when it reached no instance); the instance must see the client's own method, or a DELETE
    would land on the POST route and create a question."""
    before = qa.value("SELECT count(*) FROM question")
    response = qa.unlimited.session.request(method, qa.unlimited.base + "/qa/questions",
                                            json=QUESTION, timeout=15)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"] and "GET" in response.headers["Allow"]
    assert qa.value("SELECT count(*) FROM question") == before
