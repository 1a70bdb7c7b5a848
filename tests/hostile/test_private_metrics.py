"""/metrics (per-route traffic, errors, pool state) is private: the public balancer and the
instance's public port answer 404 for every spelling of the path; the instance's own metrics
listener (METRICS_LISTEN) and the balancer's metrics listener (render.py --metrics-listen,
reachable only where the operator binds it) serve it."""
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
import requests

from atelier_common import fleet as fleet_tools
from atelier_common.localpg import DATA, wait_for
from atelier_common.testing import answers

SPELLINGS = [b"/metrics", b"/metrics/", b"//metrics", b"/%6detrics", b"/metric%73", b"/metrics%2f",
             b"/metrics?x=1", b"/./metrics", b"/qa/../metrics", b"/metrics%2F", b"/%2fmetrics"]


def get(port: int, path: bytes) -> tuple:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture(scope="module")
def private(balanced):
    """A qa instance with its metrics listener, behind a balancer with its own."""
    qa = balanced["qa"]
    folder = Path(tempfile.mkdtemp(prefix="metrics-", dir=DATA / "test-fleets"))
    folder.chmod(0o755)
    ports = {name: fleet_tools.free_port() for name in ("instance", "instance_metrics", "balancer", "metrics")}
    fleet_tools.start_instance("qa", ports["instance"], qa.database_url, folder / "instance.pid",
                               folder / "instance.log", METRICS_LISTEN=f"127.0.0.1:{ports['instance_metrics']}")
    wait_for(lambda: answers(f"http://127.0.0.1:{ports['instance']}/readyz"), 30, "instance")
    conf, _ = fleet_tools.render_balancer(
        "qa", f"127.0.0.1:{ports['balancer']}", [f"127.0.0.1:{ports['instance']}"], folder / "nginx",
        folder / "nginx.pid", cache=1, write_rate_limit=0,
        extra=["--metrics-listen", f"127.0.0.1:{ports['metrics']}",
               "--metrics-upstream", f"127.0.0.1:{ports['instance_metrics']}"])
    fleet_tools.start_balancer(fleet_tools.nginx_binary(), conf, folder / "nginx.pid")
    wait_for(lambda: answers(f"http://127.0.0.1:{ports['balancer']}/healthz"), 10, "balancer")
    yield ports
    fleet_tools.stop_pid(folder / "nginx.pid", seconds=10)
    fleet_tools.stop_pid(folder / "instance.pid", seconds=20)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("path", SPELLINGS)
def test_no_public_route_reaches_metrics(private, path):
    for port in (private["balancer"], private["instance"]):
        status, body = get(port, path)
        assert status in (400, 404), (port, path, status, body[:200])  # 400: a path nginx cannot read
        assert b"atelier_http" not in body and b"message" in body


def test_the_metrics_listeners_serve_them(private):
    requests.get(f"http://127.0.0.1:{private['balancer']}/qa/questions?product_id=1", timeout=5)
    for url in (f"http://127.0.0.1:{private['instance_metrics']}/metrics",
                f"http://127.0.0.1:{private['metrics']}/metrics",
                f"http://127.0.0.1:{private['metrics']}/metrics/0"):
        response = requests.get(url, timeout=5)
        assert response.status_code == 200 and "atelier_http_requests_total" in response.text, url
    # The metrics listener serves nothing else: not the API, not health.
    assert requests.get(f"http://127.0.0.1:{private['metrics']}/qa/questions?product_id=1",
                        timeout=5).status_code == 404
    assert requests.get(f"http://127.0.0.1:{private['metrics']}/metrics/1", timeout=5).status_code == 404


def test_the_balancers_of_the_other_services_hide_metrics_too(balanced):
    for service in ("products", "reviews"):
        for path in (b"/metrics", b"//metrics", b"/%6detrics", b"/metrics%2f"):
            status, body = get(balanced[service].port, path)
            assert status == 404 and b"atelier_http" not in body
